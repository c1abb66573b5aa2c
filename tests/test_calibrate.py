"""calibrate (quick, end to end), the measured profile it writes, and accuracy on a tiny spec."""

from __future__ import annotations

import json

import pytest
import yaml

torch = pytest.importorskip("torch")

from explorer.hardware.kernels import KERNEL_CLASSES  # noqa: E402
from explorer.hardware.predict import predict  # noqa: E402
from explorer.hardware.profile import load_device  # noqa: E402
from explorer.measure.microbench import benches, spec_data  # noqa: E402
from explorer.spec import loads_spec  # noqa: E402

TINY = """
name: tiny
variables:
  width: {default: 16, min: 8, max: 64}
  resolution: {default: 32, min: 16, max: 128}
inputs:
  x: [1, 3, resolution, resolution]
layers:
  - {name: c1, op: conv2d, out: width, kernel: 3, padding: 1, bias: false}
  - {name: bn, op: batchnorm}
  - {name: r1, op: relu}
  - {name: pool, op: adaptive_avgpool, size: 1}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out: 10}
"""


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory):
    from explorer.cli import main

    path = tmp_path_factory.mktemp("cal") / "cpu.yaml"
    assert main(["calibrate", "--quick", "--quiet", "-o", str(path)]) == 0
    return path


def test_microbenchmarks_cover_every_class_and_run_as_their_class():
    from explorer.analysis import analyze
    from explorer.hardware.kernels import kernel_class

    seen = set()
    for b in benches(scale=0.2):
        spec = loads_spec(yaml.safe_dump(spec_data(b)))
        (layer,) = analyze(spec).model.layers
        assert kernel_class(layer) == b.klass, b.label
        seen.add(b.klass)
    assert seen == set(KERNEL_CLASSES)


def test_quick_calibration_writes_a_measured_profile(quick_profile, run):
    doc = yaml.safe_load(quick_profile.read_text())
    assert "measured by explorer calibrate" in doc["measured"]["source"]
    assert doc["measured"]["dtype"] == "fp32" and doc["measured"]["threads"] == 1
    assert set(doc["measured"]["classes"]) == set(KERNEL_CLASSES)
    for klass, entry in doc["measured"]["classes"].items():
        assert "microbenchmarks" in entry["fit"], klass
    assert "measured by explorer calibrate" in doc["peak"]["fp32"]["source"]
    device = load_device(quick_profile)
    assert device.measured is not None and device.measured.combine == "sum"
    code, out, _ = run("hardware", "show", quick_profile)
    assert code == 0 and "execution model: MEASURED at fp32" in out


def test_measured_profile_predicts_positive_times_that_grow_with_size(quick_profile):
    spec = loads_spec(TINY)
    small = predict(spec, {"width": 8, "resolution": 16}, hardware=quick_profile)
    large = predict(spec, {"width": 64, "resolution": 128}, hardware=quick_profile)
    assert 0 < small.totals.latency_s < large.totals.latency_s
    assert all(k.time_s >= 0 for k in large.kernels)


def test_accuracy_on_a_tiny_spec(quick_profile, run, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    plot = tmp_path / "acc.png"
    code, out, err = run("accuracy", spec, "--hardware", quick_profile, "--grid", "width=8,32",
                         "--grid", "resolution=16,64", "--rounds", "2", "--plot", plot, "--quiet")
    assert code == 0, err
    assert "execution model" in out and "MACs-only baseline" in out and "Spearman" in out
    assert out.count("width=") == 4
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run("accuracy", spec, "--hardware", quick_profile, "--grid", "width=8,16", "--rounds", "2",
                         "--format", "json", "--quiet")
    data = json.loads(out)
    assert {"mape", "within_10", "spearman", "kendall"} <= set(data["model"])
    assert "seconds_per_mac" in data["baseline"]
    assert len(data["points"]) == 2 and all(p["measured_s"] > 0 for p in data["points"])


def test_accuracy_and_calibrate_errors(run, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    code, _, err = run("accuracy", spec, "--hardware", "a100_80gb_sxm", "--grid", "depth=1,2")
    assert code == 2 and "unknown variable" in err and "Traceback" not in err
    code, _, err = run("calibrate", "-o", tmp_path)
    assert code == 2 and "folder" in err
    code, _, err = run("calibrate", "-o", tmp_path / "p.txt")
    assert code == 2 and ".yaml" in err
    code, _, err = run("accuracy", spec, "--hardware", "a100_80gb_sxm", "--plot", spec)
    assert code == 2 and "cannot write a chart" in err and spec.read_text() == TINY
    code, _, err = run("calibrate", "--classes", "conv_dens", "-o", tmp_path / "p.yaml")
    assert code == 2 and "unknown kernel class" in err
    assert not (tmp_path / "p.yaml").exists()


def test_onnxruntime_measure_and_fused_calibration(run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    code, out, err = run("measure", spec, "--runtime", "onnxruntime", "--rounds", "2", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["runtime"] == "onnxruntime" and data["total"]["best_s"] > 0
    profile = tmp_path / "fused.yaml"
    code, out, err = run("calibrate", "--runtime", "onnxruntime", "--quick", "--quiet", "--classes",
                         "conv_dense,elementwise,pooling,matmul,norm", "-o", profile)
    assert code == 0, err
    doc = yaml.safe_load(profile.read_text())
    assert doc["execution"]["mode"] == "fused" and "onnxruntime" in doc["measured"]["source"]
    fused = predict(loads_spec(TINY), hardware=profile)
    assert fused.execution.mode == "fused"
    assert [k.klass for k in fused.kernels] == ["conv_stem", "pooling", "matmul"]
    code, _, err = run("measure", spec, "--runtime", "onnxruntime", "--per-layer")
    assert code == 2 and "per-layer" in err
