"""Bundled specs reproduce the reference architectures exactly (tests/data from shared/refs)."""

from __future__ import annotations

import pytest
import sympy

from explorer.analysis import analyze
from explorer.cost import Costs, exact, substitution
from explorer.graph import build
from explorer.spec import load_spec
from tests.conftest import REFS, overrides, ref_rows

ROWS = REFS["rows"]


def _id(row: dict) -> str:
    width = row["kwargs"].get("width_mult")
    return f"{row['model']}-{row['resolution']}" + (f"-w{width}" if width else "")


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_params_equal_torchvision(row: dict) -> None:
    result = analyze(load_spec(row["model"]), overrides(row))
    assert result.totals["params"] == row["params"]


@pytest.mark.parametrize("row", ref_rows("resnet18", "resnet50", "vgg16", "mobilenet_v2"), ids=_id)
def test_macs_equal_half_of_flop_counter(row: dict) -> None:
    result = analyze(load_spec(row["model"]), overrides(row))
    assert 2 * result.totals["macs"] == row["torch_flop_counter_flops"]


def test_vit_b_16_full_count() -> None:
    result = analyze(load_spec("vit_b_16"))
    assert result.totals["params"] == 86_567_656
    assert result.totals["macs"] == 17_563_828_224
    # The breakdown in the refs' note, layer by layer.
    by_name = {r.name: r.metrics["macs"] for r in result.layers}
    assert by_name["conv_proj"] == 115_605_504
    assert by_name["head"] == 768_000
    attn = [r for r in result.layers if r.op == "attention"]
    assert len(attn) == 12
    assert all(r.metrics["macs"] == 348_585_984 + 2 * 29_805_312 + 116_195_328 for r in attn)


def test_vit_formula_is_closed_form_in_depth() -> None:
    spec = load_spec("vit_b_16")
    costs = Costs(build(spec))
    formula = costs.formula("macs")
    depth = costs.symbols["depth"]
    assert depth in formula.free_symbols
    values = {k: v.default for k, v in spec.variables.items()}
    assert exact(formula, substitution(costs.model, values)) == 17_563_828_224
    for d in (1, 6, 24):
        unrolled = analyze(spec, {"depth": d}).totals["macs"]
        assert exact(formula, substitution(costs.model, {**values, "depth": d})) == unrolled


def test_gpt2_small_params() -> None:
    result = analyze(load_spec("gpt2"))
    assert result.totals["params"] == 124_439_808
    head = next(r for r in result.layers if r.name == "lm_head")
    assert head.metrics["params"] == 0  # tied to wte


def test_unet_matches_original_paper_param_count() -> None:
    # Ronneberger et al. 2015, Fig. 1: 23 convs; sum of k*k*Ci*Co + Co over them.
    def c(i: int, o: int, k: int = 3) -> int:
        return i * o * k * k + o

    ladder = [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512),
              (512, 1024), (1024, 1024)]
    expected = sum(c(i, o) for i, o in ladder)
    for ch in (512, 256, 128, 64):
        expected += c(2 * ch, ch, 2) + c(2 * ch, ch) + c(ch, ch)
    expected += c(64, 2, 1)
    result = analyze(load_spec("unet"))
    assert expected == 31_030_658
    assert result.totals["params"] == expected
    assert result.layers[-1].output_shape == [1, 2, 388, 388]


def test_mobilenet_v2_macs_formula_at_every_reference() -> None:
    spec = load_spec("mobilenet_v2")
    costs = Costs(build(spec))
    formula = costs.formula("macs")
    for row in ref_rows("mobilenet_v2"):
        values = {k: v.default for k, v in spec.variables.items()}
        values.update(overrides(row))
        assert exact(formula, substitution(costs.model, values)) * 2 == row["torch_flop_counter_flops"]


def test_mobilenet_v2_formula_cli(run) -> None:
    code, out, _ = run("formula", "mobilenet_v2", "--metric", "macs")
    assert code == 0
    assert out.startswith("macs = ") and "make_divisible" in out and "resolution" in out


def test_totals_are_sums_of_rows() -> None:
    for name in ("resnet50", "vit_b_16", "unet", "gpt2"):
        result = analyze(load_spec(name))
        for metric, total in result.totals.items():
            assert total == sum(r.metrics[metric] for r in result.layers)
        costs = result.costs
        assert sympy.simplify(costs.totals["macs"] - sum(m["macs"] for _, m in costs.layers)) == 0
