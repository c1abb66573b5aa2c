"""Unbounded work refused up front with a true one-line message (issue 10, items 10 and 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sympy

from explorer import yamlfile
from explorer.analysis import analyze
from explorer.errors import SpecError
from explorer.ops import REGISTRY, Attr, Cost, OpDef, OpResult
from explorer.spec import MAX_LAYER_ENTRIES, loads_spec

HEAD = "name: big\ninputs:\n  x: [1, 8]\nlayers:\n"


def _one_line(run, *argv: object) -> str:
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_100k_layers_refused_by_count_before_loading(run, tmp_path: Path) -> None:
    spec = tmp_path / "flat.yaml"
    spec.write_text(HEAD + "".join(f"  - {{name: l{i}, op: relu}}\n" for i in range(100_000)))
    line = _one_line(run, "analyze", spec)
    # the first entry past the limit is on line 4 + limit + 1
    assert line == (f"{spec}:{5 + MAX_LAYER_ENTRIES}: too many layers: more than {MAX_LAYER_ENTRIES:,} "
                    f"layer entries (limit {MAX_LAYER_ENTRIES:,})")


def test_layers_in_blocks_count_too() -> None:
    half = MAX_LAYER_ENTRIES // 2 + 1
    text = ("name: b\ninputs:\n  x: [1, 8]\nblocks:\n  a:\n    layers:\n"
            + "      - {op: relu}\n" * half + "layers:\n" + "  - {op: relu}\n" * half)
    with pytest.raises(SpecError, match="too many layers"):
        loads_spec(text)


def test_file_over_the_size_cap_is_not_read(run, tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    spec.write_text(HEAD + "  - {op: relu}\n" + "#" * yamlfile.MAX_BYTES)
    size = spec.stat().st_size
    assert _one_line(run, "analyze", spec) == f"{spec}: file is {size:,} bytes (limit {yamlfile.MAX_BYTES:,})"


def test_yaml_node_cap(tmp_path: Path) -> None:
    text = "a: [" + "1," * (yamlfile.MAX_NODES + 1) + "1]\n"
    with pytest.raises(SpecError, match=f"more than {yamlfile.MAX_NODES:,} YAML nodes"):
        yamlfile.loads(text, "t.yaml", SpecError)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_not_a_regular_file(run, path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    assert _one_line(run, "analyze", path) == f"{path}: cannot read file: not a regular file"
    assert _one_line(run, "hardware", "show", path) == f"{path}: cannot read file: not a regular file"
    assert _one_line(run, "study", "run", path) == f"{path}: cannot read file: not a regular file"


def test_study_spec_dev_zero(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    study = tmp_path / "s.yaml"
    study.write_text("name: s\nspec: /dev/zero\nhardware: t4\nsearch:\n  batch: {type: int, low: 1, high: 2}\n"
                     "objectives:\n  - {metric: latency, direction: minimize}\n")
    line = _one_line(run, "study", "run", study)
    assert line == f"{study}:2: spec: cannot read file: not a regular file"
    assert not (tmp_path / "explorer-out").exists()


def test_fifo_does_not_block(run, tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    assert _one_line(run, "analyze", fifo) == f"{fifo}: cannot read file: not a regular file"


def test_directory(run, tmp_path: Path) -> None:
    assert _one_line(run, "analyze", tmp_path) == f"{tmp_path}: cannot read file: Is a directory"


def test_formula_expansion_refused_before_expanding(run, tmp_path: Path) -> None:
    names = [f"v{i}" for i in range(6)]
    spec = tmp_path / "blowup.yaml"
    spec.write_text("name: b\nvariables:\n" + "".join(f"  {v}: {{default: 1, min: 1, max: 4}}\n" for v in names)
                    + "inputs:\n  x: [1, 8]\nlayers:\n"
                    + f"  - {{name: a, op: linear, out: '({'+'.join(names)})**64'}}\n")
    # C(64 + 5, 5) = 11,238,513 terms: refused from the count, within the exponent limit of 64
    line = _one_line(run, "formula", spec)
    assert line == (f"{spec}:12: layer 'a': attribute 'out': expression '({'+'.join(names)})**64' would "
                    "expand to more than 2,000 terms (limit 2,000)")


def test_expanded_terms_is_the_multinomial_count() -> None:
    from explorer.expr import expanded_terms

    a, b, c = sympy.symbols("a b c")
    for k in (1, 2, 5):
        e = (a + b + c) ** k
        assert expanded_terms(e, 10**9) == len(sympy.Add.make_args(sympy.expand(e)))
    assert expanded_terms((a + b) * (a + c + 1), 10**9) == 6  # upper estimate: 6 before collecting
    assert expanded_terms((a + b) ** 64, 10) == 11  # stops past the limit


def test_closed_form_cap(tmp_path: Path) -> None:
    from explorer.cost import Costs
    from explorer.graph import build

    names = [f"v{i}" for i in range(6)]
    text = ("name: b\nvariables:\n" + "".join(f"  {v}: {{default: 1, min: 1, max: 4}}\n" for v in names)
            + "inputs:\n  x: [1, 8]\nlayers:\n"
            + "".join(f"  - {{op: linear, out: '({'+'.join(names)})**{k}'}}\n" for k in (7, 8)))
    costs = Costs(build(loads_spec(text)))  # each within 2,000 terms; their product is not
    with pytest.raises(SpecError, match="the closed form would expand to more than 5,000 terms"):
        costs.formula("macs")


def test_negative_count_is_never_printed(monkeypatch) -> None:
    """The final safety net: a handler that slips a negative count through is refused, naming the layer."""
    neg = OpDef("neg", lambda call: OpResult([call.x], Cost(params=sympy.Integer(-280))), "elementwise",
                {"k": Attr(1)}, (1, 1), "test op")
    monkeypatch.setitem(REGISTRY, "neg", neg)
    spec = loads_spec(HEAD + "  - {name: bad, op: neg}\n", "t.yaml")
    with pytest.raises(SpecError) as info:
        analyze(spec)
    assert str(info.value) == "t.yaml:5: layer 'bad': params is -280, a negative count: an attribute is outside its domain"
