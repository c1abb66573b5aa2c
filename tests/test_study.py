"""Studies: evaluator exactness, Pareto fronts, constraints, resume, workers, sweeps, bad files."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.cost import Precision
from explorer.hardware import load_device
from explorer.spec import load_spec
from explorer.study.config import load_study
from explorer.study.evaluate import METRICS, SCENARIO_METRICS, Evaluator, Target
from explorer.study.pareto import hypervolume, non_dominated, oriented
from explorer.study.run import Objective

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((Path(__file__).parent / "bad_studies").glob("*.yaml"))

SMALL = """name: small
spec: mobilenet_v2
hardware: jetson_orin_nano_8gb
dtype: fp16
search:
  width: {{type: float, low: 0.35, high: 1.4, step: 0.05}}
  resolution: {{type: int, low: 96, high: 320, step: 32}}
  batch: {{type: categorical, choices: [1, 4, 16, 64]}}
fixed: {{classes: 1000}}
objectives:
  - {{metric: throughput, direction: maximize}}
  - {{metric: macs_per_sample, direction: maximize}}
constraints:
  - peak_memory <= 200 MB
  - latency <= 30 ms
sampler: {sampler}
n_trials: {n}
seed: 3
output: {out}
"""


def small_study(tmp_path: Path, sampler: str = "random", n: int = 30) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL.format(sampler=sampler, n=n, out=tmp_path / "out"))
    return path


def exact_metrics(spec_name: str, device: str, dtype: str, values: dict) -> dict:
    from explorer.hardware.predict import predict

    spec = load_spec(spec_name)
    p = predict(spec, values, hardware=device, precision=Precision(dtype))
    a = p.analysis
    t = {**a.totals, **p.totals.as_dict()}
    t["bytes"] = t["bytes_read"] + t["bytes_written"]
    batch = a.values["batch"]
    t["macs / batch"], t["flops / batch"] = t["macs"] / batch, t["flops"] / batch
    return {m: t[src] for m, (src, _) in METRICS.items() if m not in SCENARIO_METRICS and t[src] is not None}


@pytest.mark.parametrize("spec_name,device,dtype,cases", [
    ("mobilenet_v2", "jetson_orin_nano_8gb", "fp16",
     [{"width": 0.35, "resolution": 96, "batch": 1}, {"width": 1.4, "resolution": 224, "batch": 48}]),
    ("resnet50", "a100_80gb_sxm", "bf16", [{"depth": 23, "width": 0.5, "batch": 7}, {"depth": 1, "batch": 256}]),
    ("gpt2", "rtx_4090", "fp16", [{"depth": 6, "dim": 512, "heads": 8, "seq": 256, "batch": 3}]),
    ("vit_b_16", "h100_sxm", "bf16", [{"depth": 24, "dim": 1024, "heads": 16, "resolution": 384, "batch": 2}]),
    ("unet", "t4", "fp16", [{"resolution": 380, "batch": 2, "width": 0.5}]),
])
def test_compiled_metrics_equal_exact_analysis(spec_name, device, dtype, cases) -> None:
    spec = load_spec(spec_name)
    ev = Evaluator(spec, Target(load_device(device), dtype))
    for case in cases:
        values = {k: v.default for k, v in spec.variables.items()} | case
        want = exact_metrics(spec_name, device, dtype, case)
        got, _ = ev.scalar(values)
        vec, valid = ev.vector({k: np.array([v, v]) for k, v in values.items()})
        assert valid.all()
        for m in want:
            assert got[m] == pytest.approx(want[m], rel=1e-12), m
            assert vec[m][1] == pytest.approx(want[m], rel=1e-12), m
        assert all(np.isnan(got[m]) for m in SCENARIO_METRICS)  # a request's metrics need a scenario


def test_vector_marks_invalid_configurations() -> None:
    spec = load_spec("unet")
    ev = Evaluator(spec, Target(load_device("t4"), "fp16"))
    values = {k: np.full(3, float(v.default)) for k, v in spec.variables.items()}
    values["resolution"] = np.array([572.0, 188.0, 60.0])  # 60: the bottom feature map vanishes
    _, valid = ev.vector(values)
    assert valid.tolist() == [True, True, False]
    metrics, _ = ev.scalar({k: v[2] for k, v in values.items()})
    assert metrics is None


def test_same_architecture_is_evaluated_once() -> None:
    study = load_study(ROOT / "studies" / "quickstart.yaml")
    objective = Objective(study)
    label = study.targets[0].label
    base = {"batch": 1, "resolution": 224, "classes": 1000}
    m1, first1, key1 = objective.evaluate({**base, "width": 0.75}, label, 0)
    m2, first2, key2 = objective.evaluate({**base, "width": 0.8}, label, 1)  # rounds to other channels
    m3, first3, key3 = objective.evaluate({**base, "width": 0.76}, label, 2)  # same channels as 0.75
    assert key1 == key3 != key2 and first3 == 0 and m3 == m1
    assert objective.evaluations == 2


@pytest.mark.parametrize("k", [2, 3])
def test_non_dominated_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    p = rng.integers(0, 8, size=(300, k)).astype(float)
    mask = non_dominated(p)
    for i in range(len(p)):
        dominated = any(np.all(p[j] >= p[i]) and np.any(p[j] > p[i]) for j in range(len(p)))
        assert mask[i] == (not dominated)


def test_hypervolume_by_hand() -> None:
    # maximize both, reference (0, 0): points (3,1), (2,2), (1,3) -> 3 + 2 + 1 = 6 unit squares
    assert hypervolume([[3, 1], [2, 2], [1, 3], [1, 1]], [0, 0]) == 6.0
    assert hypervolume([[1, 1, 1], [2, 0.5, 0.5]], [0, 0, 0]) == pytest.approx(1 + 0.25)
    assert oriented([[1, 2]], ["maximize", "minimize"]).tolist() == [[1, -2]]


def _front(run, path: Path, tmp_path: Path) -> list[dict]:
    out = tmp_path / "front.json"
    code, _, _ = run("study", "pareto", path, "-o", out, "--plot", tmp_path / "front.png")
    assert code == 0
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads(out.read_text())
    assert data["targets"] == [{"device": "jetson_orin_nano_8gb", "name": data["targets"][0]["name"],
                                "dtype": "fp16", "weight_dtype": "fp16"}]
    assert data["units"]["latency"] == "s" and data["units"]["peak_memory"] == "B"
    for r in data["rows"]:  # counts stay integers, whatever the storage made of them
        assert isinstance(r["params"], int) and isinstance(r["macs"], int) and isinstance(r["peak_memory"], int)
        assert (r["device"], r["dtype"]) == ("jetson_orin_nano_8gb", "fp16")
    return data["rows"]


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_front_is_feasible_and_non_dominated(run, tmp_path, sampler) -> None:
    path = small_study(tmp_path, sampler, 25)
    code, _, _ = run("study", "run", path, "--quiet")
    assert code == 0
    front = _front(run, path, tmp_path)
    assert front
    for r in front:
        assert r["feasible"] and r["peak_memory"] <= 200e6 and r["latency"] <= 30e-3
    pts = [(r["throughput"], r["macs_per_sample"]) for r in front]
    for a, b in itertools.permutations(pts, 2):
        assert not (b[0] >= a[0] and b[1] >= a[1] and b != a)


def _trials(path: Path):
    from explorer.study.run import open_study

    study = load_study(path)
    return study, open_study(study, create=False).get_trials(deepcopy=False)


def test_resume_keeps_the_first_trials(run, tmp_path) -> None:
    path = small_study(tmp_path, "tpe", 20)
    assert run("study", "run", path, "--quiet")[0] == 0
    _, first = _trials(path)
    assert run("study", "run", path, "--quiet", "--n-trials", "40")[0] == 0
    _, after = _trials(path)
    assert len(after) == 40
    for a, b in zip(first, after[:20]):
        assert (a.number, a.params, a.values, a.state) == (b.number, b.params, b.values, b.state)
    assert run("study", "run", path, "--quiet", "--n-trials", "40")[0] == 0  # already complete: nothing new
    assert len(_trials(path)[1]) == 40


def test_two_worker_processes_make_exactly_n_trials(run, tmp_path) -> None:
    path = small_study(tmp_path, "random", 24)
    assert run("study", "run", path, "--quiet", "--workers", "2")[0] == 0
    _, trials = _trials(path)
    assert sorted(t.number for t in trials) == list(range(24))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


def test_two_separate_processes_share_one_journal(tmp_path) -> None:
    path = small_study(tmp_path, "random", 20)
    journal = f"journal:{tmp_path / 'out' / 'journal.log'}"
    cmd = [sys.executable, "-m", "explorer.cli", "study", "run", str(path), "--quiet", "--storage", journal]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    from explorer.study.run import open_study

    trials = open_study(load_study(path, storage=journal), create=False).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(20))


def test_sweep_front_is_exact(run, tmp_path) -> None:
    path = small_study(tmp_path)
    from explorer.study.sweep import sweep

    study = load_study(path)
    result = sweep(study)
    assert result.size == 22 * 8 * 4
    pts = result.objectives[result.feasible]
    brute = non_dominated(pts)
    assert brute.sum() == result.front.sum()
    # spot-check a few configurations against the exact engine
    for i in np.random.default_rng(0).choice(result.size, 5, replace=False):
        values = {k: result.columns[k][i] for k in ("width", "resolution", "batch")}
        values = {"width": round(float(values["width"]), 2), "resolution": int(values["resolution"]),
                  "batch": int(values["batch"])}
        want = exact_metrics("mobilenet_v2", "jetson_orin_nano_8gb", "fp16", values)
        assert result.columns["latency"][i] == pytest.approx(want["latency"], rel=1e-12)
    code, _, err = run("sweep", path, "-o", tmp_path / "s.csv", "--plot", tmp_path / "s.svg")
    assert code == 0 and "exact Pareto front" in err
    assert (tmp_path / "s.csv").read_text().count("\n") == result.front.sum() + 1


def test_exhaustive_sampler_and_compare(run, tmp_path) -> None:
    path = small_study(tmp_path, "tpe", 40)
    assert run("study", "run", path, "--quiet")[0] == 0
    code, out, _ = run("study", "compare", path)
    assert code == 0
    ratio = float(out.split("reaches ")[1].split(" %")[0])
    assert 0 < ratio <= 100.0 + 1e-9
    ex = tmp_path / "ex.yaml"
    ex.write_text(path.read_text().replace("sampler: tpe", "sampler: exhaustive"))
    code, out, _ = run("study", "run", ex)
    assert code == 0 and "throughput" in out


def test_hardware_as_a_search_dimension(run, tmp_path) -> None:
    path = tmp_path / "hw.yaml"
    path.write_text(SMALL.format(sampler="random", n=20, out=tmp_path / "out").replace(
        "hardware: jetson_orin_nano_8gb", "hardware: [jetson_orin_nano_8gb, t4, raspberry_pi_5]"))
    assert run("study", "run", path, "--quiet")[0] == 0
    study, trials = _trials(path)
    assert len(study.targets) == 3
    assert {t.params["target"] for t in trials} <= {t.label for t in study.targets}


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_study_file(run, path: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, here or anywhere
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    code, out, err = run("study", "run", path)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{path}:") and expected in err, err
    assert list(tmp_path.iterdir()) == []


def test_bundled_studies_load() -> None:
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        study = load_study(path)
        assert study.targets and study.objectives


def test_ctrl_c_stops_cleanly(tmp_path) -> None:
    import signal

    from optuna.trial import TrialState

    from explorer.study.run import open_study

    path = small_study(tmp_path, "random", 100_000)
    proc = subprocess.Popen([sys.executable, "-m", "explorer.cli", "study", "run", str(path), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    study = load_study(path)
    _wait_for_trials(study, 10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: every finished trial is in" in err and "Traceback" not in err
    trials = open_study(study, create=False).get_trials(deepcopy=False)
    assert all(t.state != TrialState.RUNNING for t in trials)  # the one in flight was closed as failed


def _wait_for_trials(study, n: int, timeout: float = 120) -> None:
    """Poll the storage of a study run in another process until it holds n trials."""
    import time

    from explorer.study.run import open_study

    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            if len(open_study(study, create=False).get_trials(deepcopy=False)) >= n:
                return
        except Exception:  # noqa: BLE001 - the storage may not exist yet
            continue
    raise AssertionError(f"the study never reached {n} trials")


def test_what_optuna_dashboard_reads(run, tmp_path) -> None:
    """Objective names, one numeric user attribute per metric and the constraint values, as any
    Optuna client (optuna-dashboard included) reads them through Optuna's public API."""
    import optuna

    path = small_study(tmp_path, "random", 12)
    assert run("study", "run", path, "--quiet")[0] == 0
    study = load_study(path)
    ostudy = optuna.load_study(study_name=study.name, storage=study.storage)
    assert ostudy.metric_names == ["throughput", "macs_per_sample"]
    complete = ostudy.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert complete
    for t in complete:
        assert set(METRICS) <= set(t.user_attrs)
        assert all(isinstance(t.user_attrs[m], float) for m in METRICS)
        assert t.values == [t.user_attrs["throughput"], t.user_attrs["macs_per_sample"]]
        violations = t.system_attrs["constraints"]  # the list form optuna-dashboard shows
        assert len(violations) == 2
        assert (violations[0] <= 0) == (t.user_attrs["peak_memory"] <= 200e6)
        assert (violations[1] <= 0) == (t.user_attrs["latency"] <= 30e-3)
        assert t.user_attrs["explorer"]["feasible"] == all(v <= 0 for v in violations)
