"""Issue 9: every spec that analyze accepts can be swept and studied; compiled metrics are exact.

The corpus (tests/specs_issue9/) holds the shapes that broke studies: ceil_mode pool chains
(GoogLeNet, SqueezeNet, Inception), growing concat repeats (DenseNet), searched depths, booleans
that depend on variables, concat over a repeat's instances (YOLOv8 C2f), variables named like
functions, an identity-only spec and a spec without ``batch``. Bundled specs run too.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from evalcheck import mismatches, sample

from explorer.hardware import load_device
from explorer.spec import SPECS_DIR, load_spec
from explorer.study.evaluate import Evaluator, Target

CORPUS = Path(__file__).parent / "specs_issue9"
CORPUS_SPECS = sorted(CORPUS.glob("*.yaml"))
BUNDLED = sorted(SPECS_DIR.glob("*.yaml"))
ALL = CORPUS_SPECS + BUNDLED


def _id(p: Path) -> str:
    return p.stem


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_compiled_metrics_equal_analyze_hardware(path: Path) -> None:
    spec = load_spec(path)
    ev = Evaluator(spec, Target(load_device("t4"), "fp16"))
    rng = random.Random(9)
    bad: list[str] = []
    for _ in range(3 if path.parent == CORPUS else 2):
        bad += mismatches(ev, spec, sample(spec, rng))
    assert not bad


def _study_file(tmp_path: Path, path: Path, sampler: str = "random") -> Path:
    """Every variable with a finite domain searched over (at most) its first three values."""
    spec = load_spec(path)
    search = {}
    for name, var in spec.variables.items():
        try:
            values = var.values()[:3]
        except Exception:  # noqa: BLE001 - a continuous domain: left at its default
            continue
        search[name] = {"type": "categorical", "choices": values}
    study = {"name": path.stem, "spec": str(path), "hardware": "t4", "dtype": "fp16", "search": search,
             "objectives": [{"metric": "latency", "direction": "minimize"},
                            {"metric": "params", "direction": "maximize"}],
             "constraints": ["peak_memory <= 16 GB"], "sampler": sampler, "n_trials": 20, "seed": 0,
             "output": str(tmp_path / "out")}
    out = tmp_path / f"{path.stem}.study.yaml"
    out.write_text(yaml.safe_dump(study))
    return out


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_sweep_and_study_run_succeed(path: Path, tmp_path: Path, run) -> None:
    study = _study_file(tmp_path, path)
    code, out, err = run("sweep", str(study), "-o", str(tmp_path / "front.csv"))
    assert code == 0, err
    assert "distinct architectures" in err
    code, out, err = run("study", "run", str(study), "--quiet")
    assert code == 0, err
    assert "20 trials in storage" in err
