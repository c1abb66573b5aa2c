"""Roofline prediction and peak memory against hand computations; hardware files and commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.analysis import analyze
from explorer.cost import Precision
from explorer.hardware import Roofline, bound, bundled, load_device
from explorer.spec import loads_spec

DATA = Path(__file__).parent / "data"
TOY = DATA / "hardware" / "toy.yaml"
TOY_OVERHEAD = DATA / "hardware" / "toy_overhead.yaml"
BAD = sorted((Path(__file__).parent / "bad_hardware").glob("*.yaml"))

TWO_LAYERS = """
name: two
inputs:
  x: [1, 16, 8, 8]
layers:
  - {name: c, op: conv2d, out: 16, kernel: 1, bias: false}
  - {name: r, op: relu}
"""


def roofline(text: str, device: Path = TOY, values: dict | None = None, dtype: str = "fp32") -> tuple:
    result = analyze(loads_spec(text), values, Precision(dtype))
    return result, Roofline(result.costs, load_device(device), dtype)


def test_two_layers_by_hand() -> None:
    _, roof = roofline(TWO_LAYERS)
    # conv 1x1, 16 -> 16 on 8x8: flops = (2*16 - 1) * 16 * 64; bytes = 4 * (1024 in + 256 w + 1024 out)
    conv_flops, conv_bytes = (2 * 16 - 1) * 16 * 64, 4 * (1024 + 256 + 1024)
    relu_flops, relu_bytes = 1024, 4 * 2048
    c, r = roof.layers
    assert float(c.compute_s) == pytest.approx(conv_flops / 100e9)
    assert float(c.memory_s) == pytest.approx(conv_bytes / 10e9)
    assert float(c.time_s) == pytest.approx(conv_bytes / 10e9)  # memory-bound: 9.216 us > 0.317 us
    assert bound(c) == "memory" and bound(r) == "memory"
    assert float(r.time_s) == pytest.approx(relu_bytes / 10e9)
    latency = float(roof.totals["latency_s"])
    assert latency == pytest.approx((conv_bytes + relu_bytes) / 10e9)
    assert float(roof.totals["throughput_per_s"]) == pytest.approx(1 / latency)
    assert float(roof.totals["utilization"]) == pytest.approx((conv_flops + relu_flops) / latency / 100e9)
    assert float(roof.totals["arithmetic_intensity"]) == pytest.approx(
        (conv_flops + relu_flops) / (conv_bytes + relu_bytes))


def test_efficiency_and_launch_overhead() -> None:
    _, roof = roofline(TWO_LAYERS, TOY_OVERHEAD)
    conv_bytes, relu_bytes = 4 * 2304, 4 * 2048
    expected = (conv_bytes + relu_bytes) / (10e9 * 0.8) + 2 * 1e-6
    assert float(roof.totals["latency_s"]) == pytest.approx(expected)
    assert float(roof.totals["latency_s"]) == pytest.approx(sum(float(t.time_s) for t in roof.layers))


def test_views_cost_no_time() -> None:
    _, roof = roofline(TWO_LAYERS + "  - {name: f, op: flatten}\n  - {name: d, op: dropout}\n", TOY_OVERHEAD)
    assert [float(t.time_s) for t in roof.layers[2:]] == [0.0, 0.0]


LINEAR = """
name: lin
variables:
  batch: {default: 1, min: 1, max: 4096}
inputs:
  x: [batch, 1024]
layers:
  - {name: fc, op: linear, out: 1024, bias: false}
"""


def test_layer_moves_from_memory_to_compute_bound_as_batch_grows() -> None:
    bounds = {}
    for b in (1, 8, 64, 512):
        _, roof = roofline(LINEAR, values={"batch": b})
        t = roof.layers[0]
        bounds[b] = bound(t)
        intensity = float(t.flops) / float(t.bytes)
        ridge = 100e9 / 10e9
        assert bounds[b] == ("compute" if intensity >= ridge else "memory")
    assert bounds[1] == "memory" and bounds[512] == "compute"


def peak(text: str) -> tuple[int, str, int]:
    _, roof = roofline(text)
    mem = roof.memory
    return int(mem.peak()), mem.steps[mem.peak_step()], int(mem.weight_bytes)


def test_peak_memory_chain() -> None:
    # x (4096 B) -> c (4096) -> r (4096): step c holds x + c, step r holds c + r (x is dead)
    total, at, weights = peak(TWO_LAYERS)
    assert weights == 16 * 16 * 4
    assert total == weights + 8192 and at == "c"


def test_peak_memory_residual_block() -> None:
    text = """
name: res
inputs:
  x: [1, 16, 8, 8]
layers:
  - {name: c1, op: conv2d, out: 32, kernel: 1, bias: false}
  - {name: c2, op: conv2d, out: 16, kernel: 1, bias: false}
  - {name: add, op: add, inputs: [c2, x]}
"""
    # steps: c1: x + c1 = 4096 + 8192; c2: x + c1 + c2 = 16384 (x waits for the add); add: x + c2 + add
    total, at, weights = peak(text)
    assert weights == (16 * 32 + 32 * 16) * 4
    assert (total - weights, at) == (16384, "c2")


def test_peak_memory_concat_skip() -> None:
    text = """
name: skip
inputs:
  x: [1, 16, 8, 8]
layers:
  - {name: d, op: conv2d, out: 16, kernel: 1, bias: false}
  - {name: p, op: maxpool, kernel: 2}
  - {name: u, op: upsample, scale: 2}
  - {name: cat, op: concat, inputs: [u, d], axis: 1}
  - {name: o, op: conv2d, out: 2, kernel: 1, bias: false}
"""
    # d: x + d = 8192; p: d + p = 5120; u: d + p + u = 9216; cat: d + u + cat = 16384; o: cat + o = 8704
    total, at, weights = peak(text)
    assert weights == (16 * 16 + 32 * 2) * 4
    assert (total - weights, at) == (16384, "cat")


def test_views_share_their_input_buffer() -> None:
    text = TWO_LAYERS + "  - {name: f, op: flatten}\n  - {name: fc, op: linear, out: 10, bias: false}\n"
    # flatten aliases r: at fc, live = r (4096) + fc out (40)
    _, roof = roofline(text)
    assert [int(v) for v in roof.memory.live] == [8192, 8192, 4096, 4136]


def test_symbolic_peak_memory_matches_numeric() -> None:
    from explorer.cost import Costs, exact, substitution
    from explorer.graph import build
    from explorer.spec import load_spec

    spec = load_spec("resnet18")
    device = load_device("a100_80gb_sxm")
    symbolic = Roofline(Costs(build(spec)), device, "fp32")
    for res in (96, 224, 320):
        values = {k: v.default for k, v in spec.variables.items()} | {"resolution": res}
        numeric = Roofline(analyze(spec, {"resolution": res}).costs, device, "fp32")
        subs = substitution(symbolic.costs.model, values)
        for key in ("latency_s", "peak_memory_bytes", "utilization"):
            assert float(exact(symbolic.totals[key], subs)) == pytest.approx(float(numeric.totals[key]))


def test_bundled_profiles() -> None:
    devices = {d.id: d for d in bundled()}
    assert len(devices) >= 12
    for d in devices.values():
        assert d.peak and d.bandwidth > 0 and d.capacity > 0
        assert all(d.sources.values())
    assert devices["h100_sxm"].peak["bf16"] == pytest.approx(989.5e12)
    assert devices["hi3519av100"].peak["int8"] == pytest.approx(1.7e12)
    kinds = {d.kind for d in devices.values()}
    assert {"gpu", "cpu", "npu", "edge"} <= kinds


def test_analyze_hardware_json_keys(run) -> None:
    code, out, _ = run("analyze", "resnet18", "--hardware", "a100_80gb_sxm", "--dtype", "fp16", "--format",
                       "json", "--per-layer", "--memory-budget", "4GB")
    data = json.loads(out)
    assert code == 0
    assert {"latency_s", "throughput_per_s", "utilization", "arithmetic_intensity", "weight_bytes",
            "peak_memory_bytes", "fits"} <= set(data["totals"])
    assert data["totals"]["fits"] is True
    assert {"intensity", "bound", "time_s"} <= set(data["layers"][0])
    assert data["totals"]["latency_s"] == pytest.approx(sum(r["time_s"] for r in data["layers"]))
    # fp16 weights: params plus the BN running mean and variance (2 x 4800 channels in ResNet-18)
    assert data["totals"]["weight_bytes"] == 2 * (data["totals"]["params"] + 2 * 4800)


def test_sort_by_time_and_budget(run) -> None:
    code, out, _ = run("analyze", "vgg16", "--hardware", "t4", "--dtype", "fp16", "--per-layer", "--sort", "time",
                       "--memory-budget", "100MB")
    assert code == 0
    rows = [line for line in out.splitlines() if "conv2d" in line or "linear" in line]
    assert rows[0].split()[0] in {"fc1", "stage1.conv.1.conv", "stage2.conv.1.conv"}
    assert "fits" in out and "False" in out


def test_device_without_precision(run) -> None:
    code, _, err = run("analyze", "resnet18", "--hardware", "hi3519av100")
    assert code == 2 and "has no fp32 peak" in err and "int8" in err


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_roofline_plot(run, tmp_path, fmt: str) -> None:
    out = tmp_path / f"roof.{fmt}"
    code, _, _ = run("roofline", "resnet50", "--hardware", "a100_80gb_sxm", "--dtype", "fp16", "-o", out)
    assert code == 0
    data = out.read_bytes()
    assert len(data) > 10_000
    if fmt == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.image

        assert matplotlib.image.imread(str(out)).shape[0] > 300
    else:
        assert b"<svg" in data[:500]


def test_hardware_commands(run) -> None:
    code, out, _ = run("hardware")
    assert code == 0 and "h100_sxm" in out and "raspberry_pi_5" in out
    code, out, _ = run("hardware", "show", "h100_sxm")
    assert code == 0 and "nvidia.com" in out and "ridge point" in out


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_hardware_file(run, path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    code, out, err = run("hardware", "show", path)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(str(path) + ":")
    assert expected in err
