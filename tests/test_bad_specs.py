"""One bad spec per failure mode, each with its expected message on the first line (# expect: ...)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

BAD = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_spec_gives_one_line_and_exit_2(path: Path, run, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # anything a spec managed to execute would land here
    start = time.perf_counter()
    code, out, err = run("analyze", path)
    elapsed = time.perf_counter() - start
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{path}:"), lines[0]
    assert _expected(path) in lines[0]
    assert "Traceback" not in err
    assert elapsed < 1.0
    assert os.listdir(tmp_path) == []


def test_every_failure_mode_has_a_file() -> None:
    names = {p.stem for p in BAD}
    for needed in ("unknown_op", "unknown_input", "cycle", "add_shape_mismatch", "concat_shape_mismatch",
                   "channels_non_integer", "channels_non_positive", "unknown_variable", "value_outside_domain",
                   "duplicate_names", "yaml_syntax", "missing_attribute", "mistyped_attribute",
                   "forbidden_import", "forbidden_attribute", "forbidden_lambda", "forbidden_comprehension",
                   "huge_power", "deep_nesting", "huge_repeat",
                   # issue 10: tracebacks (6), unbounded work (10), silently wrong numbers (11), messages (12)
                   "layer_name_list", "block_name_list", "input_index_not_ascii", "repeat_true", "repeat_condition",
                   "channel_shuffle_rank1", "integer_too_long", "nested_repeats", "nested_repeats_inner",
                   "groups_negative", "kernel_zero", "dilation_zero", "padding_negative", "axis_fraction",
                   "select_index_fraction", "permute_dims_fraction", "variable_min_nan", "variable_default_huge",
                   "variable_default_inf", "variable_default_nan", "variable_not_ascii", "expression_not_ascii",
                   "yaml_too_deep", "yaml_recursive_alias", "adaptive_size_huge", "layer_name_too_long"):
        assert needed in names


def test_set_outside_domain(run) -> None:
    code, _, err = run("analyze", "resnet50", "--set", "batch=5000")
    assert code == 2 and "variable 'batch': 5000 is above max 1024" in err


def test_set_unknown_variable(run) -> None:
    code, _, err = run("analyze", "resnet50", "--set", "widht=1")
    assert code == 2 and "unknown variable 'widht' (did you mean 'width'?)" in err


def test_set_off_grid(run) -> None:
    code, _, err = run("analyze", "resnet50", "--set", "resolution=100")
    assert code == 2 and "not on the grid" in err


def test_missing_file(run) -> None:
    code, _, err = run("analyze", "nope.yaml")
    assert code == 2 and err.startswith("nope.yaml: cannot read file")


@pytest.mark.parametrize(("value", "message"), [("nan", "variable 'width': nan is not a finite number"),
                                                ("1e40", "variable 'width': 1e+40 is too large (limit 1e30)")])
def test_set_not_finite_or_huge(run, tmp_path: Path, value: str, message: str) -> None:
    spec = tmp_path / "free.yaml"
    spec.write_text("name: t\nvariables:\n  width: {default: 1.0}\ninputs:\n  x: [1, 8]\n"
                    "layers:\n  - {op: linear, out: 4 * width}\n")
    code, _, err = run("analyze", spec, "--set", f"width={value}")
    assert code == 2 and err.strip() == f"{spec}:3: {message}"
