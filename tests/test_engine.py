"""The engine: closed forms agree with unrolled graphs, compiled evaluation with exact evaluation."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.cost import METRICS, exact, substitution
from explorer.spec import loads_spec

COND_SPEC = """
name: cond
variables:
  width: {default: 1.0, min: 0.5, max: 2.0, step: 0.5}
  n: {default: 3, min: 1, max: 8}
inputs:
  x: [1, 8, 16, 16]
blocks:
  res:
    params: {c: 8}
    layers:
      - {name: conv, op: conv2d, out: c, kernel: 3, padding: 1}
      - {name: act, op: relu, when: "width > 1"}
      - {name: add, op: add, inputs: [act, input]}
layers:
  - {name: body, block: res, repeat: n}
  - {name: head, op: linear, out: 4}
"""


def _values(spec, **kw):
    values = {k: v.default for k, v in spec.variables.items()}
    values.update(kw)
    return values


@pytest.mark.parametrize("name,var,choices", [("resnet50", "depth", [1, 2, 6, 23, 36]),
                                              ("resnet18", "depth", [1, 2, 3]),
                                              ("gpt2", "depth", [1, 12, 48])])
def test_variable_repeat_is_closed_form(name: str, var: str, choices: list[int]) -> None:
    spec = explorer.load_spec(name)
    costs = explorer.symbolic_costs(spec)
    assert costs.symbols[var] in costs.totals["macs"].free_symbols
    for d in choices:
        values = _values(spec, **{var: d})
        unrolled = explorer.analyze(spec, {var: d}).totals
        subs = substitution(costs.model, values)
        for metric in METRICS:
            assert exact(costs.totals[metric], subs) == unrolled[metric], (metric, d)


def test_symbolic_when_and_repeat() -> None:
    spec = loads_spec(COND_SPEC)
    costs = explorer.symbolic_costs(spec)
    for width, n in itertools.product([0.5, 1.0, 1.5, 2.0], [1, 2, 5]):
        unrolled = explorer.analyze(spec, {"width": width, "n": n})
        subs = substitution(costs.model, _values(spec, width=width, n=n))
        assert exact(costs.totals["flops"], subs) == unrolled.totals["flops"]
        relus = [r for r in unrolled.layers if r.op == "relu"]
        assert len(relus) == (n if width > 1 else 0)


def test_compiled_matches_exact_over_a_grid() -> None:
    spec = explorer.load_spec("mobilenet_v2")
    costs = explorer.symbolic_costs(spec)
    compiled = costs.compile()
    widths = np.array(spec.variables["width"].values())
    res = np.array(spec.variables["resolution"].values())
    w, r = np.meshgrid(widths, res)
    got = compiled(batch=np.ones_like(w), width=w, resolution=r, classes=1000)
    for i in range(0, w.size, 7):
        wi, ri = float(w.flat[i]), int(r.flat[i])
        want = explorer.analyze(spec, {"width": round(wi, 2), "resolution": ri}).totals
        for metric in METRICS:
            assert got[metric].flat[i] == want[metric], (metric, wi, ri)


def test_analyze_json_keys(run) -> None:
    code, out, _ = run("analyze", "resnet18", "--format", "json", "--per-layer")
    data = json.loads(out)
    assert code == 0
    assert set(data) >= {"variables", "totals", "layers"}
    assert set(data["totals"]) >= set(METRICS)
    layer = data["layers"][0]
    assert {"name", "op", "output_shape", *METRICS} <= set(layer)
    assert data["variables"]["resolution"] == 224
    for metric in METRICS:
        assert data["totals"][metric] == sum(layer[metric] for layer in data["layers"])


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_analyze_formats(run, fmt: str) -> None:
    code, out, _ = run("analyze", "resnet18", "--format", fmt, "--per-layer", "--set", "resolution=160")
    assert code == 0
    if fmt == "csv":
        assert out.splitlines()[0].startswith("name,op,output_shape,count,params,macs")
        assert out.splitlines()[-1].startswith("TOTAL")
    elif fmt == "markdown":
        assert "| layer | op |" in out
    else:
        assert "layer1.0.conv1" in out and "G" in out


def test_exact_table_prints_integers(run) -> None:
    _, out, _ = run("analyze", "resnet50", "--exact")
    assert "4,089,184,256" in out  # torch_flop_counter_flops / 2 at 224


def test_formula_latex_and_all(run) -> None:
    code, out, _ = run("formula", "vit_b_16", "--metric", "all")
    assert code == 0 and len(out.strip().splitlines()) == len(METRICS)
    code, out, _ = run("formula", "vit_b_16", "--latex")
    assert code == 0 and "\\left\\lfloor" in out


def test_validate_and_specs(run) -> None:
    code, out, _ = run("validate", "resnet50", "unet")
    assert code == 0 and out.count(": ok") == 2
    code, out, _ = run("specs")
    for name in ("resnet18", "resnet50", "vgg16", "mobilenet_v2", "vit_b_16", "unet", "gpt2"):
        assert name in out


def test_tiny_spec_from_the_issue(tmp_path, run) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text("""name: tiny
variables:
  batch: {default: 1, min: 1, max: 256}
  width: {default: 1.0, min: 0.25, max: 2.0}
  resolution: {default: 32, min: 16, max: 128, step: 16}
inputs:
  x: [batch, 3, resolution, resolution]
layers:
  - {name: c1, op: conv2d, out: "make_divisible(16 * width, 8)", kernel: 3, padding: 1}
  - {name: r1, op: relu}
  - {name: pool, op: adaptive_avgpool, size: 1}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out: 10}
""")
    code, out, _ = run("analyze", path, "--format", "json", "--set", "width=0.75")
    totals = json.loads(out)["totals"]
    c = 16  # make_divisible(12, 8) = 16
    assert totals["params"] == (27 * c + c) + (c * 10 + 10)
    assert totals["macs"] == 32 * 32 * c * 27 + c * 10


MBV3_RESIDUAL = """name: mbv3_residual
variables:
  batch: {default: 1, min: 1}
  width: {default: 1.0, min: 0.25, max: 2.0}
  resolution: {default: 32, min: 8, max: 256}
inputs:
  x: [batch, 16, resolution, resolution]
layers:
  - {name: expand, op: conv2d, out: "make_divisible(16 * width, 8)", kernel: 1}
  - {name: project, op: conv2d, out: "make_divisible(24 * width, 8)", kernel: 1, stride: STRIDE}
  - {name: add, op: add, inputs: [project, expand], when: "make_divisible(24 * width, 8) == make_divisible(16 * width, 8)"}
"""


def test_when_guards_its_shape_checks(tmp_path, run) -> None:
    """MobileNetV3's residual rule: channels compared under a `when` that is false at the defaults
    are not compared there (formula works); a mismatch that holds anyway names the `when`."""
    path = tmp_path / "mbv3.yaml"
    path.write_text(MBV3_RESIDUAL.replace("STRIDE", "1"))
    code, out, err = run("formula", path)
    assert code == 0, err
    assert run("analyze", path, "--set", "width=0.5")[0] == 0
    path.write_text(MBV3_RESIDUAL.replace("STRIDE", "2").replace("default: 1.0", "default: 0.25"))
    code, _, err = run("formula", path)
    assert code == 2 and "exists only where its 'when' holds" in err and "layer 'add'" in err, err


DATA = Path(__file__).parent / "data"


def test_let_names_expressions_in_order() -> None:
    """Spec-level and block-level ``let:`` (hand count: width 0.5 -> c = ceil(32 x 0.5 / 8) x 8 = 16,
    c2 = 32, the block's mid = 16)."""
    from explorer.analysis import analyze
    from explorer.spec import load_spec

    a = analyze(load_spec(DATA / "let_and_block_args.yaml"), {"width": 0.5})
    shapes = {r.name: r.output_shape for r in a.layers}
    assert shapes == {"stem": [1, 16, 32, 32], "p.a": [1, 16, 32, 32], "p.b": [1, 32, 32, 32]}
    assert a.totals["params"] == (3 * 9 * 16 + 16) + (16 * 9 * 16 + 16) + (16 * 32 + 32)


def test_block_args_take_lists_words_and_earlier_params() -> None:
    """``kernel: [1, 7]``, ``padding: same`` and a default ``expand: "4 * squeeze"``, against torch."""
    torch = pytest.importorskip("torch")
    from explorer.analysis import analyze
    from explorer.spec import load_spec

    a = analyze(load_spec(DATA / "block_args.yaml"))
    first = torch.nn.Conv2d(8, 8, (1, 7), padding=(0, 3))  # expand = 4 * squeeze = 8
    second = torch.nn.Conv2d(8, 2, 3, padding="same")
    x = torch.randn(1, 8, 32, 32)
    assert a.totals["params"] == sum(p.numel() for m in (first, second) for p in m.parameters())
    assert a.layers[-1].output_shape == list(second(first(x)).shape)


def test_block_param_defaults_take_lists_and_words() -> None:
    """A default may be a list or a word, and a later default may name an earlier list: against torch."""
    torch = pytest.importorskip("torch")
    from explorer.analysis import analyze
    from explorer.spec import load_spec

    a = analyze(load_spec(DATA / "block_defaults.yaml"))
    convs = [torch.nn.Conv2d(8, 8, (1, 7), padding=(0, 3)), torch.nn.Conv2d(8, 8, (1, 7), padding="same"),
             torch.nn.Conv2d(8, 4, (7, 1), padding=(3, 0)), torch.nn.Conv2d(4, 4, (7, 1), padding="same")]
    x = torch.randn(1, 8, 32, 32)
    shapes = []
    for conv in convs:
        x = conv(x)
        shapes.append(list(x.shape))
    assert [r.output_shape for r in a.layers] == shapes
    assert [r.metrics["params"] for r in a.layers] == [sum(p.numel() for p in c.parameters()) for c in convs]


def test_let_clash_is_an_error(tmp_path) -> None:
    from explorer.errors import SpecError
    from explorer.spec import load_spec

    path = tmp_path / "clash.yaml"
    path.write_text((DATA / "let_and_block_args.yaml").read_text().replace('  c2: "2 * c"', '  width: "2"'))
    with pytest.raises(SpecError, match="also a variable"):
        load_spec(path)
