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


def _torch_ceil_out(size: int, k: int, s: int, p: int, d: int) -> int:
    """torch's rule as written in aten (pooling_output_shape with ceil_mode)."""
    out = -(-(size + 2 * p - d * (k - 1) - 1) // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def test_ceil_mode_pool_size_equals_torch_rule() -> None:
    import sympy

    from explorer.ops.pooling import _ceil_out

    x = sympy.Symbol("x")
    for k in range(1, 6):
        for s in range(1, 5):
            for p in range(0, k // 2 + 1):
                for d in (1, 2):
                    e = _ceil_out(x, k, s, p, d)
                    for size in range(max(1, d * (k - 1) + 1 - 2 * p), 40):
                        assert int(e.xreplace({x: size})) == _torch_ceil_out(size, k, s, p, d), (size, k, s, p, d)


def test_c2f_concat_over_instances_hand_count() -> None:
    from explorer.analysis import analyze

    spec = load_spec(CORPUS / "c2f.yaml")
    for n, c, r in ((2, 32, 64), (3, 16, 32)):
        h = c // 2
        conv = lambda cin, cout, k: cin * cout * k * k + 2 * cout  # noqa: E731 - conv (no bias) + batchnorm
        params = conv(c, 2 * h, 1) + n * 2 * conv(h, h, 3) + conv((2 + n) * h, c, 1)
        macs = r * r * (c * 2 * h + n * 2 * h * h * 9 + (2 + n) * h * c)
        result = analyze(spec, {"n": n, "c": c, "resolution": r})
        assert result.totals["params"] == params
        assert result.totals["macs"] == macs
        cat = next(row for row in result.layers if row.name == "cat")
        assert cat.output_shape == [1, (2 + n) * h, r, r]


def test_instance_refs_errors(tmp_path: Path) -> None:
    from explorer.errors import SpecError
    from explorer.graph import build

    text = (CORPUS / "c2f.yaml").read_text()
    with pytest.raises(SpecError, match="needs the repeat count of 'm' to be a number"):
        build(load_spec(CORPUS / "c2f.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace('"m.*"', '"cv1.*"'))
    with pytest.raises(SpecError, match="'cv1' is not a repeated layer"):
        build(load_spec(bad), {"n": 2})


def test_structure_is_bound_or_built_per_value() -> None:
    spec = load_spec(CORPUS / "densenet_style.yaml")
    ev = Evaluator(spec, Target(load_device("t4"), "fp16"), fixed={"d2": 2}, searched=["d1", "growth"])
    assert ev.structural == ["d1"]
    metrics, valid = ev.vector({"d1": [1.0, 2.0, 2.0], "growth": [8.0, 8.0, 16.0]})
    assert valid.all()
    assert len(ev._models) == 2  # one graph per distinct d1  # noqa: SLF001
    bools = Evaluator(load_spec(CORPUS / "variable_bool.yaml"), Target(load_device("t4"), "fp16"))
    assert bools.structural == ["fused"]


def test_identity_only_is_invalid_not_a_crash(run) -> None:
    code, out, err = run("analyze", str(CORPUS / "identity_only.yaml"), "--hardware", "t4")
    assert code == 0, err
    ev = Evaluator(load_spec(CORPUS / "identity_only.yaml"), Target(load_device("t4"), "fp16"))
    metrics, key = ev.scalar({"batch": 1})
    assert metrics is None


def test_formula_refuses_in_one_line_when_out_of_time() -> None:
    from explorer.cost import Costs
    from explorer.errors import SpecError
    from explorer.graph import build

    costs = Costs(build(load_spec(CORPUS / "googlenet_style.yaml")))
    with pytest.raises(SpecError, match="does not simplify within"):
        costs.formula("bytes_read", seconds=0.001)


def test_formula_of_ceil_pool_chains(run) -> None:
    for name in ("pool_chain", "googlenet_style", "squeezenet_style", "inception_style"):
        code, out, err = run("formula", str(CORPUS / f"{name}.yaml"))
        assert code == 0, err
        assert out.startswith("macs = ")


def test_sweep_counts_distinct_architectures(tmp_path: Path, run) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({
        "name": "s", "spec": str(CORPUS / "searched_depth.yaml"), "hardware": "t4", "dtype": "fp16",
        "search": {"width": {"type": "float", "low": 1.0, "high": 1.09, "step": 0.01},
                   "batch": {"type": "categorical", "choices": [1, 2]}},
        "objectives": [{"metric": "latency", "direction": "minimize"},
                       {"metric": "params", "direction": "maximize"}],
        "sampler": "exhaustive", "output": str(tmp_path / "out")}))
    code, out, err = run("sweep", str(study), "-o", str(tmp_path / "f.csv"))
    assert code == 0, err
    # width 1.00..1.09: make_divisible(32 w, 8) = 32 throughout; make_divisible(64 w, 8) = 64 below
    # w = 1.0625 and 72 from 1.07: 2 architectures per batch, 4 in all
    assert "20 valid (4 distinct architectures)" in err
    front = int(err.split(" = ")[1].split()[0])
    assert front <= 4 and f"({front} rows)" in err


def test_missed_part_of_the_front() -> None:
    import numpy as np

    from explorer.study.pareto import axis_gaps, missed

    exact = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    found = np.array([[2.0, 2.0], [0.5, 2.5]])
    assert missed(exact, found).tolist() == [True, False, True]
    assert axis_gaps(exact, found).tolist() == [1.0, 0.5]


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "llama3_8b"])
def test_in_place_program_equals_the_plain_one(name: str) -> None:
    """run_into (every operation writing into its row of a reused table) gives the same numbers,
    bit for bit, as run (a new array per operation), twice in a row on the same workspace."""
    import numpy as np

    ev = Evaluator(load_spec(name), Target(load_device("a100_80gb_sxm"), "fp16"))
    model = next(m for m in ev._models.values() if not isinstance(m, Exception))
    program = model.program
    rng = np.random.default_rng(0)
    ws = program.workspace(64)
    for _ in range(2):
        args = [rng.integers(1, 9, 64).astype(float) * (1 + (k % 3)) for k in range(len(program.args))]
        plain = program.run(args)
        table = program.run_into(ws, args)
        for reg in range(program.size):
            want = np.broadcast_to(np.asarray(plain[reg], dtype=np.float64), (64,))
            assert np.array_equal(table[reg], want, equal_nan=True), (name, reg)


def test_repeat_count_is_part_of_the_architecture() -> None:
    """Two configurations that differ only in a repeat count (no tensor dim changes) are different
    architectures: a study must not reuse one's metrics for the other (regression)."""
    from explorer.hardware.predict import predict
    from explorer.study.evaluate import Target

    spec = load_spec("resnet50")
    values = {k: v.default for k, v in spec.variables.items()}
    ev = Evaluator(spec, Target(load_device("a100_80gb_sxm"), "fp16"), fixed={"batch": 1}, searched=["depth"])
    a, b = dict(values, depth=3), dict(values, depth=5)
    assert ev.key(a) != ev.key(b)
    for v in (a, b):
        got, _ = ev.scalar(v)
        assert got is not None
        assert got["params"] == predict(spec, v, hardware="a100_80gb_sxm", dtype="fp16").analysis.totals["params"]
