"""explorer measure and time_callable: behaviour, not speed (loose bounds, no timed assertions)."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from explorer.errors import ExplorerError
from explorer.measure import measure
from explorer.measure.timing import spread, time_callable

torch = pytest.importorskip("torch")


TINY = {
    "name": "tiny",
    "variables": {"batch": {"default": 1, "min": 1, "max": 8}, "resolution": {"default": 16, "min": 8, "max": 64}},
    "inputs": {"x": ["batch", 3, "resolution", "resolution"]},
    "layers": [
        {"name": "c1", "op": "conv2d", "out": 8, "kernel": 3, "padding": 1},
        {"name": "bn", "op": "batchnorm"},
        {"name": "r1", "op": "relu"},
        {"name": "pool", "op": "adaptive_avgpool"},
        {"name": "flat", "op": "flatten"},
        {"name": "fc", "op": "linear", "out": 10},
    ],
}
FAST = {"rounds": 3, "warmup": 1, "min_time_s": 0.002}


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return path


def busy(n: int = 20_000) -> int:
    return sum(range(n))


def test_time_callable_busy_loop() -> None:
    t = time_callable(busy, rounds=5, number=3, clock="thread_cpu")
    assert (t.rounds, t.number, t.clock, len(t.samples_s)) == (5, 3, "thread_cpu", 5)
    assert 0 < t.best_s <= t.median_s <= max(t.samples_s)
    assert t.best_s == t.cpu_best_s and t.wall_best_s > 0
    assert t.spread >= 0


def test_time_callable_sleep_is_wall_time_not_cpu_time() -> None:
    t = time_callable(lambda: time.sleep(0.002), rounds=3, warmup=0, number=2, clock="wall")
    assert t.clock == "wall" and t.best_s >= 0.002  # a sleep lasts at least what it was asked
    assert t.cpu_best_s is not None and t.cpu_best_s < t.best_s  # and sleeping costs the thread little CPU


def test_autorange_repeats_short_calls_within_a_round() -> None:
    calls = []
    t = time_callable(lambda: calls.append(1), rounds=2, warmup=0, min_time_s=0.001)
    assert t.number > 10 and len(calls) >= 2 * t.number


def test_default_clock_follows_torch_threads() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert time_callable(busy, rounds=1, number=1).clock == "thread_cpu"
        torch.set_num_threads(2)
        assert time_callable(busy, rounds=1, number=1).clock == "wall"
    finally:
        torch.set_num_threads(before)


def test_bad_timing_arguments() -> None:
    with pytest.raises(ValueError, match="rounds >= 1"):
        time_callable(busy, rounds=0)
    with pytest.raises(ValueError, match="clock must be one of"):
        time_callable(busy, clock="tsc")


def test_spread_is_iqr_over_median() -> None:
    assert spread([1.0]) == 0.0
    assert spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4.0 - 2.0) / 3.0)


def test_measure_per_layer_covers_every_layer(tiny) -> None:
    from explorer.spec import load_spec

    before = torch.get_num_threads()
    m = measure(load_spec(tiny), {"resolution": 24}, per_layer=True, **FAST)
    assert torch.get_num_threads() == before  # restored
    assert (m.spec, m.values, m.threads, m.dtype, m.device_kind) == ("tiny", {"batch": 1, "resolution": 24}, 1,
                                                                   "fp32", "cpu")
    assert m.total.best_s > 0 and m.torch_version == torch.__version__ and m.device
    assert [r.path for r in m.layers] == ["c1", "bn", "r1", "pool", "flat", "fc"]
    assert [r.op for r in m.layers] == ["conv2d", "batchnorm", "relu", "adaptive_avgpool", "flatten", "linear"]
    assert all(r.timing.best_s > 0 for r in m.layers)
    assert m.layers_sum_s == pytest.approx(sum(r.timing.best_s for r in m.layers))


def test_measure_inline_layer_rows(tiny) -> None:
    from explorer.spec import load_spec

    m = measure(load_spec(tiny), per_layer=True, layer_timing="inline", **FAST)
    assert m.layer_timing == "inline" and [r.path for r in m.layers] == ["c1", "bn", "r1", "pool", "flat", "fc"]
    assert all(r.timing.rounds == 3 and r.timing.number == 1 and r.timing.best_s > 0 for r in m.layers)
    assert m.to_dict()["layer_timing"] == "inline"
    with pytest.raises(ExplorerError, match="layer timing must be one of isolated, inline, got 'x'"):
        measure(load_spec(tiny), per_layer=True, layer_timing="x")


def test_measure_half_precision_and_threads(tiny) -> None:
    from explorer.spec import load_spec

    m = measure(load_spec(tiny), dtype="bf16", threads=2, **FAST)
    assert (m.dtype, m.threads, m.total.clock) == ("bf16", 2, "wall")


def test_measure_bad_device_and_threads(tiny) -> None:
    from explorer.spec import load_spec

    spec = load_spec(tiny)
    with pytest.raises(ExplorerError, match="device must be cpu, cuda or cuda:N, got 'tpu'"):
        measure(spec, device="tpu")
    with pytest.raises(ExplorerError, match="threads must be at least 1, got 0"):
        measure(spec, threads=0)


def test_cli_table(run, tiny) -> None:
    code, out, err = run("measure", tiny, "--per-layer", "--rounds", "2", "--warmup", "1", "--min-time", "0.002")
    assert code == 0, err
    assert out.startswith("tiny  batch=1  resolution=16\ndevice: ")
    assert "1 thread, fp32, torch " + torch.__version__ in out
    assert "clock:  thread_cpu, best of 2 rounds" in out
    for layer in ("c1", "bn", "r1", "pool", "flat", "fc"):
        assert f"\n{layer} " in out
    assert "sum of layer rows: " in out and "\ntotal: " in out
    code, out, err = run("measure", tiny, "--per-layer", "--layer-timing", "inline", "--rounds", "2")
    assert code == 0 and "(timestamps between the layers of whole runs)" in out


def test_cli_json_and_csv(run, tiny) -> None:
    code, out, _ = run("measure", tiny, "--set", "batch=2", "--format", "json", "--per-layer", "--rounds", "2",
                       "--min-time", "0.002")
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"spec", "values", "device", "device_kind", "threads", "dtype", "torch_version", "total",
                         "layers", "layers_sum_s", "layer_timing", "runtime"}
    assert data["layer_timing"] == "isolated"
    assert set(data["total"]) == {"best_s", "median_s", "spread", "rounds", "number", "clock", "samples_s",
                                  "wall_best_s", "wall_median_s", "cpu_best_s", "cpu_median_s"}
    assert data["values"]["batch"] == 2 and len(data["layers"]) == 6
    code, out, _ = run("measure", tiny, "--format", "csv", "--rounds", "2", "--min-time", "0.002")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("name,op,best_s,median_s,spread,") and lines[1].startswith("TOTAL,,")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cli_cuda_without_cuda_is_one_line(run, tiny) -> None:
    code, out, err = run("measure", tiny, "--device", "cuda")
    assert code == 2 and out == ""
    assert err.startswith("error: --device cuda: CUDA is not available (") and err.count("\n") == 1


def test_cli_layer_torch_rejects_is_one_line(run, tmp_path) -> None:
    bad = {**TINY, "layers": [{"name": "pool", "op": "avgpool", "kernel": 2, "padding": 2}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    code, out, err = run("measure", path)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"{path}:") and "layer 'pool': torch cannot run this avgpool layer: pad should be" in err


@pytest.mark.parametrize("argv,message", [
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--threads", "0"], "threads must be at least 1, got 0"),
    (["--dtype", "int8"], "invalid choice: 'int8'"),
    (["--set", "depth=3"], "unknown variable 'depth'"),
])
def test_cli_bad_arguments(run, tiny, argv, message) -> None:
    code, out, err = run("measure", tiny, *argv)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
