"""The expression language: exact arithmetic, the function set, and what it refuses."""

from __future__ import annotations

import time

import pytest
import sympy

from explorer.errors import ExpressionError
from explorer.expr import Scope, make_divisible, parse

W = sympy.Symbol("width", positive=True)
SCOPE = Scope({"width": W, "n": sympy.Integer(6)})


def torchvision_make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    # Copied from torchvision.models._utils._make_divisible
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("c", [16, 24, 32, 64, 96, 160, 320, 1280])
@pytest.mark.parametrize("w", [0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 2.0])
def test_make_divisible_matches_torchvision(c: int, w: float) -> None:
    symbolic = parse(f"make_divisible({c} * width, 8)", SCOPE)
    assert symbolic.xreplace({W: sympy.Rational(str(w))}) == torchvision_make_divisible(c * w, 8)


def test_make_divisible_min_value_and_bump() -> None:
    assert make_divisible(sympy.Integer(3), 8) == 8  # min_value defaults to the divisor
    assert make_divisible(sympy.Integer(11), 8) == 16  # 8 < 0.9 * 11 -> bump
    assert make_divisible(sympy.Integer(11), 8, 4) == 16


@pytest.mark.parametrize("text,value", [
    ("7 // 2", 3), ("7 % 3", 1), ("2 ** 10", 1024), ("-7 // 2", -4), ("0.1 + 0.2", sympy.Rational(3, 10)),
    ("3 if n > 5 else 4", 3), ("3 if n > 6 else 4", 4), ("min(4, n, 9)", 4), ("max(4, n)", 6),
    ("floor(7 / 2)", 3), ("ceil(7 / 2)", 4), ("abs(-3)", 3),
    ("round(2.5)", 2), ("round(3.5)", 4), ("round(-2.5)", -2), ("round(0.5)", 0), ("round(2.6)", 3),  # as Python
    ("log2(8)", 3), ("sqrt(16)", 4), ("floor(log(1000, 10))", 3), ("exp(0)", 1), ("ceil(log2(n))", 3),
    ("floor(sqrt(n * 3))", 4),
    ("n == 6 and not n < 2", sympy.true), ("1 < n < 10", sympy.true),
])
def test_arithmetic_is_exact(text: str, value: object) -> None:
    assert parse(text, SCOPE) == value


def test_symbolic_conditional_is_piecewise() -> None:
    e = parse("2 if width > 1 else 3", SCOPE)
    assert e.xreplace({W: 2}) == 2 and e.xreplace({W: sympy.Rational(1, 2)}) == 3


@pytest.mark.parametrize("text,message", [
    ("__import__('os').system('touch pwned')", "cannot be called"),
    ("width.real", "attribute access is not allowed"),
    ("(lambda: 1)()", "lambda cannot be called"),
    ("[x for x in (1, 2)]", "list comprehension is not allowed"),
    ("{x: 1 for x in (1,)}", "dict comprehension is not allowed"),
    ("width[0]", "subscripting is not allowed"),
    ("open('x')", "unknown function 'open'"),
    ("9**9**9", "exponent 387420489 is too large"),
    ("10**50", "too large"),
    ("2**width", "exponent of a power must be a number"),
    ("(" * 10000 + "1" + ")" * 10000, "characters long"),
    ("(" * 100 + "1" + ")" * 100, "nests deeper"),
    ("-" * 1500 + "1", "nest"),
    ("'text'", "is not a number"),
    ("1 / 0", "division by zero"),
    ("widht", "did you mean 'width'"),
    ("x := 3", "cannot parse"),
    ("f'{width}'", "f-string"),
])
def test_forbidden_or_invalid(text: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ExpressionError, match=None) as info:
        parse(text, SCOPE)
    assert message in str(info.value)
    assert time.perf_counter() - start < 0.5
