"""Exports for programs: exact integers, precision, device and units, totals only, depth."""

from __future__ import annotations

import csv
import io
import json


def test_json_carries_precision_and_units(run) -> None:
    code, out, _ = run("analyze", "resnet18", "--dtype", "fp16", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["precision"] == {"activations": "fp16", "weights": "fp16", "kv_cache": "fp16"}
    assert data["units"]["macs"] == "MAC" and data["units"]["bytes_read"] == "B"
    assert all(isinstance(v, int) for v in data["totals"].values())
    assert "header" not in data


def test_hardware_json_device_units_and_null_bound(run) -> None:
    code, out, _ = run("analyze", "unet", "--hardware", "a100_80gb_sxm", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["hardware"]["device"] == "a100_80gb_sxm" and data["hardware"]["dtype"] == "fp32"
    assert data["units"]["latency_s"] == "s" and data["units"]["peak_memory_bytes"] == "B"
    idle = [r for r in data["layers"] if r["time_s"] == 0]
    assert idle and all(r["bound"] is None for r in idle)  # null, never "-"
    assert {r["bound"] for r in data["layers"]} <= {"compute", "memory", None}


def test_totals_only(run) -> None:
    code, out, _ = run("analyze", "resnet18", "--format", "csv", "--totals")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1
    code, js, _ = run("analyze", "resnet18", "--format", "json", "--totals")
    data = json.loads(js)
    assert "layers" not in data
    assert {k: int(v) for k, v in rows[0].items()} == data["totals"]
    code, _, err = run("analyze", "resnet18", "--totals")
    assert code == 2 and "--format csv or json" in err


def test_depth_collapses_by_path(run) -> None:
    code, out, _ = run("analyze", "resnet50", "--format", "json")
    full = json.loads(out)
    code, out, _ = run("analyze", "resnet50", "--format", "json", "--depth", "1")
    assert code == 0
    data = json.loads(out)
    names = [r["name"] for r in data["layers"]]
    assert len(names) == len(set(names)) and all("." not in n for n in names)
    assert len(names) < len(full["layers"])
    for m in ("params", "macs", "flops", "bytes_read", "bytes_written"):
        assert sum(r[m] for r in data["layers"]) == full["totals"][m]
    stage = next(r for r in data["layers"] if r["name"] == "layer1")
    members = [r for r in full["layers"] if r["name"].startswith("layer1.")]
    assert stage["macs"] == sum(r["macs"] for r in members)
    assert stage["output_shape"] == members[-1]["output_shape"] and stage["op"] == f"{len(members)} layers"
    code, _, err = run("analyze", "resnet50", "--depth", "0")
    assert code == 2 and "--depth" in err


def test_validate_at_set_values(run) -> None:
    code, out, _ = run("validate", "mobilenet_v2", "--set", "width=0.5", "--set", "resolution=96")
    assert code == 0 and "at width=0.5, resolution=96" in out
    code, _, err = run("validate", "mobilenet_v2", "--set", "widht=1")
    assert code == 2 and "did you mean 'width'" in err


def test_numpy_scalars_are_numbers() -> None:
    import numpy as np
    import pytest

    from explorer.analysis import analyze
    from explorer.errors import SpecError
    from explorer.spec import load_spec

    spec = load_spec("mobilenet_v2")
    want = analyze(spec, {"width": 0.5, "resolution": 160}).totals
    assert analyze(spec, {"width": np.float64(0.5), "resolution": np.int64(160)}).totals == want
    with pytest.raises(SpecError, match="expected a number"):
        analyze(spec, {"width": "0.5"})
