"""Execution model: kernel classes, fusion plans, measured per-class laws, fitting, accuracy scores."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from explorer.analysis import analyze
from explorer.cost import Precision
from explorer.errors import HardwareError
from explorer.hardware.execution import Curve
from explorer.hardware.kernels import CLASSIFY, KERNEL_CLASSES, kernel_class, kernel_metrics, plan
from explorer.hardware.predict import predict
from explorer.hardware.profile import load_device
from explorer.measure import accuracy
from explorer.measure.fit import Sample, fit_class, knots, nnls
from explorer.ops import REGISTRY
from explorer.spec import loads_spec

CHAIN = """
name: chain
inputs: {x: [1, 8, 16, 16]}
layers:
  - {name: conv, op: conv2d, out: 16, kernel: 3, padding: 1, bias: false}
  - {name: bn, op: batchnorm}
  - {name: act, op: relu}
  - {name: dw, op: conv2d, out: 16, kernel: 3, padding: 1, groups: 16, bias: false}
  - {name: pw, op: conv2d, out: 8, kernel: 1, bias: false}
  - {name: add, op: add, inputs: [pw, x]}
  - {name: flat, op: flatten}
"""


def test_every_op_has_a_kernel_class():
    assert set(REGISTRY) <= set(CLASSIFY), sorted(set(REGISTRY) - set(CLASSIFY))
    spec = loads_spec(CHAIN)
    classes = [kernel_class(layer) for layer in analyze(spec).model.layers]
    assert classes == ["conv_dense", "norm", "elementwise", "conv_depthwise", "conv_pointwise", "elementwise",
                       "view"]
    assert all(c in KERNEL_CLASSES for c in classes)


def test_fused_plan_folds_bn_and_drops_intermediate_traffic():
    result = analyze(loads_spec(CHAIN), precision=Precision("fp32"))
    eager = kernel_metrics(result.costs, plan(result.model, "eager"))
    fused = kernel_metrics(result.costs, plan(result.model, "fused"))
    assert [k.kernel.name for k in fused] == ["conv+2", "dw", "pw+1"]
    assert len(eager) == 7
    conv = fused[0]
    # conv reads x (8*16*16) and its weights (16*8*9), writes 16*16*16: bn and relu add nothing
    assert int(conv.bytes) == 4 * (8 * 256 + 16 * 8 * 9 + 16 * 256)
    assert int(conv.flops) == int(eager[0].flops) + int(eager[2].flops)  # bn folded: no FLOPs
    pw = fused[2]  # pw + residual add: reads dw's output, weights and x; writes once
    assert int(pw.bytes) == 4 * (16 * 256 + 8 * 16 + 8 * 256 + 8 * 256)


def _measured_profile(tmp_path, combine="sum"):
    text = textwrap.dedent(f"""
        name: test cpu
        kind: cpu
        peak: {{fp32: {{value: 100 GFLOP/s, source: test}}}}
        memory: {{bandwidth: {{value: 10 GB/s, source: test}}, capacity: {{value: 1 GB, source: test}}}}
        measured:
          source: hand-written for a test
          dtype: fp32
          combine: {combine}
          default: elementwise
          classes:
            conv_dense:
              overhead: 10 us
              compute: {{unit: GFLOP/s, at: [64, 256], rate: [10, 40]}}
              bandwidth: {{unit: GB/s, at: [1000], rate: [20]}}
            elementwise:
              overhead: 2 us
              bandwidth: {{unit: GB/s, at: [1000], rate: [10]}}
        """)
    path = tmp_path / "measured.yaml"
    path.write_text(text)
    return path


def test_measured_profile_times_by_hand(tmp_path):
    spec = loads_spec("""
name: one
inputs: {x: [1, 8, 16, 16]}
layers:
  - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1, bias: false}
  - {name: act, op: relu}
""")
    p = predict(spec, hardware=load_device(_measured_profile(tmp_path)))
    conv, act = p.kernels
    flops = 2 * 4 * 256 * 8 * 9 - 4 * 256  # MACs x 2 minus one add per output (no bias)
    moved = 4 * (8 * 256 + 4 * 8 * 9 + 4 * 256)
    # key = output plane 256: 40 GFLOP/s (the second knot)
    assert conv.flops == flops and conv.bytes == moved
    assert conv.time_s == pytest.approx(10e-6 + flops / 40e9 + moved / 20e9, rel=1e-12)
    # relu: a class with no compute curve; reads and writes 1024 floats at 10 GB/s
    assert act.time_s == pytest.approx(2e-6 + 8 * 1024 / 10e9, rel=1e-12)
    assert p.totals.latency_s == pytest.approx(conv.time_s + act.time_s, rel=1e-12)
    # interpolation in log2(key) between the knots: key 128 is halfway between 64 and 256
    curve = Curve((64.0, 256.0), (1 / 10e9, 1 / 40e9))
    assert curve(128.0) == pytest.approx((1 / 10e9 + 1 / 40e9) / 2)
    assert curve(16.0) == pytest.approx(1 / 10e9) and curve(1e6) == pytest.approx(1 / 40e9)


def test_measured_profile_refuses_other_precisions(tmp_path):
    device = load_device(_measured_profile(tmp_path))
    spec = loads_spec(CHAIN)
    with pytest.raises(HardwareError, match="calibrated at fp32, not fp16"):
        predict(spec, hardware=device, dtype="fp16")


def test_fused_execution_is_faster_and_views_are_free():
    spec = loads_spec(CHAIN)
    eager = predict(spec, hardware="a100_80gb_sxm", dtype="fp16", execution="eager")
    fused = predict(spec, hardware="a100_80gb_sxm", dtype="fp16", execution="fused")
    assert fused.totals.latency_s < eager.totals.latency_s
    assert len(fused.kernels) == 3
    device = load_device("a100_80gb_sxm")
    overhead = device.launch_overhead
    # eager: every layer that works pays the launch overhead; a view launches nothing on a datasheet device;
    # fused kernels are launched as a graph / by a serving engine: the profile's fused launch overhead
    assert sum(k.overhead_s for k in eager.kernels) == pytest.approx(6 * overhead)
    assert sum(k.overhead_s for k in fused.kernels) == pytest.approx(3 * device.launch_overhead_for("fused"))
    assert device.launch_overhead_for("fused") < overhead


def test_nnls_matches_known_solution():
    rng = np.random.default_rng(1)
    a = rng.random((30, 4))
    x = np.array([0.5, 0.0, 2.0, 1.0])
    assert np.allclose(nnls(a, a @ x), x, atol=1e-9)
    # a negative unconstrained optimum is clipped to zero
    b = a @ np.array([1.0, -1.0, 0.5, 0.0])
    assert (nnls(a, b) >= 0).all()


def test_fit_recovers_known_parameters_from_synthetic_timings():
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(120):
        f, q, key = 10 ** rng.uniform(5, 9), 10 ** rng.uniform(3, 7), 2 ** rng.uniform(4, 14)
        per_flop = 1 / 50e9 if key < 1024 else 1 / 10e9
        t = 8e-6 + f * per_flop + q / 20e9
        samples.append(Sample(f, q, key, t * (1 + 0.01 * rng.standard_normal())))
    fit = fit_class(samples, knots([s.key for s in samples], 1.0), (1000.0,))
    assert fit.timing.overhead_s == pytest.approx(8e-6, rel=0.1)
    assert 1 / fit.timing.per_flop(64.0) == pytest.approx(50e9, rel=0.05)
    assert 1 / fit.timing.per_flop(8192.0) == pytest.approx(10e9, rel=0.05)
    assert 1 / fit.timing.per_byte(1e6) == pytest.approx(20e9, rel=0.1)
    assert fit.mape < 3


def test_rank_correlations_by_hand():
    assert accuracy.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert accuracy.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one swapped pair of 4: 5 concordant, 1 discordant -> tau = 4/6
    assert accuracy.kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # spearman with d^2 = 2: 1 - 6*2/(4*15) = 0.8
    assert accuracy.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    s = accuracy.scores([1.05, 2.5, 3.0], [1.0, 2.0, 3.0])
    assert s.mape == pytest.approx(100 * (0.05 + 0.25 + 0) / 3)
    assert s.within_10 == pytest.approx(2 / 3)
    c = accuracy.macs_constant([1, 2], [2.0, 4.0])
    assert c == pytest.approx(2.0) and math.isfinite(c)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "vit_b_16", "gpt2", "llama3_8b"])
@pytest.mark.parametrize("execution", ["eager", "fused"])
@pytest.mark.parametrize("profile", ["datasheet", "measured"])
def test_compiled_studies_equal_predict_in_every_mode(tmp_path, name, execution, profile):
    """Studies and sweeps time kernels exactly as explorer.predict does, whatever the mode and profile."""
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from evalcheck import mismatches, sample

    from explorer.spec import load_spec
    from explorer.study.evaluate import Evaluator, Target

    if profile == "datasheet":
        device, dtype = load_device("a100_80gb_sxm"), "fp16"
    else:
        device, dtype = load_device(_measured_profile(tmp_path)), "fp32"
    spec = load_spec(name)
    ev = Evaluator(spec, Target(device, dtype, execution=execution))
    rng = random.Random(3)
    bad = []
    for _ in range(2):
        bad += mismatches(ev, spec, sample(spec, rng))
    assert not bad
