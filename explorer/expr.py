"""Spec expressions -> sympy, by a whitelisted walk over Python's ``ast``.

Spec text never reaches ``eval``, ``exec``, ``sympify`` or ``parse_expr``. Only the node types
below are accepted; everything else (attribute access, subscripts, lambdas, comprehensions,
unknown calls) is refused with a message naming what was seen. Sizes are bounded before and
during the walk so that no expression takes unbounded time: the text length, the nesting depth,
integer literals and powers with numeric exponents.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy

from explorer.errors import ExpressionError, brief, did_you_mean

MAX_TEXT = 2000  # characters in one expression
MAX_DEPTH = 60  # nesting of the expression tree
MAX_EXPONENT = 64  # |n| in x**n
MAX_LITERAL = 10**30  # largest integer literal
MAX_RESULT_DIGITS = 40  # largest number a constant power may produce
MAX_TERMS = 2_000  # terms one expression may expand to (sympy.expand), counted before expanding

Value = Any  # sympy.Expr or sympy boolean

_BINOPS: dict[type, Callable[[Value, Value], Value]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: sympy.floor(a / b),
    ast.Mod: lambda a, b: sympy.Mod(a, b),
}
_COMPARE: dict[type, Callable[[Value, Value], Value]] = {
    ast.Eq: sympy.Eq,
    ast.NotEq: sympy.Ne,
    ast.Lt: sympy.Lt,
    ast.LtE: sympy.Le,
    ast.Gt: sympy.Gt,
    ast.GtE: sympy.Ge,
}


class make_divisible(sympy.Function):  # type: ignore[misc]  # noqa: N801 - sympy has no type stubs
    """torchvision/timm ``_make_divisible``, exactly; stays a named function until its args are numbers.

    ``new = max(min_value, int(v + divisor/2) // divisor * divisor)``; one more ``divisor`` when
    ``new < 0.9 * v``. Kept unexpanded so formulas stay readable; compiled code uses
    :func:`make_divisible_numpy`.
    """

    nargs = (2, 3)

    @classmethod
    def eval(cls, v: Value, divisor: Value, min_value: Value | None = None) -> Value | None:
        args = (v, divisor) if min_value is None else (v, divisor, min_value)
        if not all(a.is_number for a in args):
            return None
        if not divisor.is_Integer or divisor <= 0:
            raise ExpressionError(f"make_divisible: the divisor must be a positive integer, got {divisor}")
        low = divisor if min_value is None else min_value
        new = sympy.Max(low, sympy.floor(v / divisor + sympy.Rational(1, 2)) * divisor)
        return new + divisor if new < sympy.Rational(9, 10) * v else new


def make_divisible_numpy(v: Any, divisor: Any, min_value: Any = None) -> Any:
    """Vectorized make_divisible for lambdify (float64, exact for the integers it returns)."""
    import numpy as np

    low = divisor if min_value is None else min_value
    new = np.maximum(low, np.floor(v / divisor + 0.5) * divisor)
    return np.where(new < 0.9 * v, new + divisor, new)


class round_even(sympy.Function):  # type: ignore[misc]  # noqa: N801 - shown as round(x) in formulas
    """Python's ``round(x)``: the nearest integer, a half to the even one (``round(2.5) == 2``,
    ``round(3.5) == 4``), as the Python code specs are translated from rounds (torchvision's
    RegNet widths, Ultralytics' depth multiples). Compiled studies use numpy's ``rint`` (the same
    rule); it stays unevaluated until its argument is a number."""

    nargs = 1
    is_integer = True

    @classmethod
    def eval(cls, x: Value) -> Value | None:
        if x.is_Integer:
            return x
        if not x.is_Rational:
            return None
        low = sympy.floor(x)
        rest = x - low
        if rest != sympy.Rational(1, 2):
            return low if rest < sympy.Rational(1, 2) else low + 1
        return low if low % 2 == 0 else low + 1

    def _sympystr(self, printer: Any) -> str:
        return f"round({printer._print(self.args[0])})"


class log2(sympy.Function):  # type: ignore[misc]  # noqa: N801 - the name users write
    """Base-2 logarithm: exact where it is a rational (``log2(8) == 3``); compiled studies use
    numpy's ``log2``, exact at powers of two, so ``floor(log2(n))`` agrees with the exact path."""

    nargs = 1

    @classmethod
    def eval(cls, x: Value) -> Value | None:
        if x.is_Rational and x > 0:
            value = sympy.log(x, 2)
            return value if value.is_Rational else None
        return None

    def _eval_evalf(self, prec: int) -> Value:
        return sympy.log(self.args[0], 2).evalf(prec)


def _round(x: Value, ndigits: Value | None = None) -> Value:
    if ndigits is not None:
        raise ExpressionError("round() takes one argument here (to the nearest integer, halves to even)")
    return round_even(x)


def _log(x: Value, base: Value | None = None) -> Value:
    return sympy.log(x) if base is None else sympy.log(x, base)


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "floor": sympy.floor,
    "ceil": sympy.ceiling,
    "min": sympy.Min,
    "max": sympy.Max,
    "abs": sympy.Abs,
    "round": _round,
    "make_divisible": make_divisible,
    "log": _log,
    "log2": log2,
    "exp": sympy.exp,
    "sqrt": sympy.sqrt,
}
_ARITY = {"floor": (1, 1), "ceil": (1, 1), "abs": (1, 1), "round": (1, 1),
          "min": (1, 32), "max": (1, 32), "make_divisible": (2, 3), "dim": (2, 2),
          "log": (1, 2), "log2": (1, 1), "exp": (1, 1), "sqrt": (1, 1)}
_CONSTANTS = {"True": sympy.true, "False": sympy.false, "true": sympy.true, "false": sympy.false}


@dataclass
class Scope:
    """Names an expression may use, and how to read a tensor's shape for ``dim(x, axis)``."""

    names: Mapping[str, Value]
    shape_of: Callable[[str], tuple[Value, ...]] | None = None
    extra: dict[str, Value] = field(default_factory=dict)

    def lookup(self, name: str) -> Value:
        if name in self.extra:
            return self.extra[name]
        if name in self.names:
            return self.names[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        known = list(self.names) + list(self.extra)
        err = ExpressionError(f"unknown name '{name}'{did_you_mean(name, known)}")
        err.unknown = name
        raise err


def as_expr(value: Any) -> Value:
    """A sympy object or a Python number as a sympy object; text is refused (use :func:`parse`)."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, (bool, int, float, Fraction)):
        return number(value)
    raise TypeError(f"expected a sympy object or a number, got {type(value).__name__}")


def number(value: bool | int | float | Fraction) -> Value:
    """A YAML or literal number as an exact sympy number (floats by their decimal text)."""
    if isinstance(value, bool):
        return sympy.true if value else sympy.false
    if isinstance(value, int):
        if abs(value) > MAX_LITERAL:
            raise ExpressionError(f"integer {value} is too large (limit 1e30)")
        return sympy.Integer(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ExpressionError(f"number {value} is not finite")
        if abs(value) > MAX_LITERAL:
            raise ExpressionError(f"number {value} is too large (limit 1e30)")
        return sympy.Rational(repr(float(value)))  # float(): numpy's float64 has its own repr
    return sympy.Rational(value.numerator, value.denominator)


def parse(text: object, scope: Scope) -> Value:
    """Parse a spec value (number, bool or expression text) into a sympy object."""
    if isinstance(text, (bool, int, float)):
        return number(text)
    if not isinstance(text, str):
        raise ExpressionError(f"expected a number or an expression, got {type(text).__name__} {brief(text)}")
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"expression is {len(text)} characters long (limit {MAX_TEXT})")
    if not text.isascii():  # Python folds identifiers to NFKC: 'ﬁ' would silently read as 'fi'
        bad = next(c for c in text if not c.isascii())
        raise ExpressionError(f"expression {text!r} has the non-ASCII character {bad!r}; names are ASCII")
    if _bracket_depth(text) > MAX_DEPTH:
        raise ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels")
    try:
        with warnings.catch_warnings():  # '2if n else 3' parses with a SyntaxWarning on stderr
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        msg = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise ExpressionError(f"cannot parse expression {text!r}: {msg}") from None
    try:
        value = _Walker(scope).visit(tree.body, 0)
    except RecursionError:
        raise ExpressionError(f"expression {text!r} nests too deeply") from None
    except (TypeError, ValueError, AttributeError) as exc:  # e.g. a comparison used as a number
        raise ExpressionError(f"cannot evaluate {text!r}: {exc}") from None
    check_terms(value, MAX_TERMS, f"expression {text!r}")
    return value


def check_terms(value: Value, limit: int, what: str) -> None:
    """Refuse ``value`` when expanding it would give more than ``limit`` terms."""
    n = expanded_terms(value, limit)
    if n > limit:
        raise ExpressionError(f"{what} would expand to more than {limit:,} terms (limit {limit:,})")


def expanded_terms(value: Value, limit: int) -> int:
    """An upper estimate of the terms ``sympy.expand`` gives, without expanding; stops past ``limit``.

    Sums add, products multiply, ``b**n`` (integer n) has the multinomial count C(t + |n| - 1, |n|)
    for a base of t terms; other functions count 1 but their arguments are checked too.
    """
    memo: dict[Any, int] = {}

    def terms(e: Any) -> int:
        if e in memo:
            return memo[e]
        args = getattr(e, "args", ())
        if not args:
            n = 1
        elif isinstance(e, sympy.Add):
            n = min(sum(terms(a) for a in args), limit + 1)
        elif isinstance(e, sympy.Mul):
            n = 1
            for a in args:
                n = min(n * terms(a), limit + 1)
        elif isinstance(e, sympy.Pow) and e.exp.is_Integer:
            k = min(abs(int(e.exp)), MAX_EXPONENT * 64)
            n = min(math.comb(terms(e.base) + k - 1, k), limit + 1)
        else:
            n = 1
            if max((terms(a) for a in args), default=1) > limit:
                n = limit + 1
        memo[e] = n
        return n

    return terms(value)


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


class _Walker:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def visit(self, node: ast.AST, depth: int) -> Value:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels")
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"{_describe(node)} is not allowed in expressions")
        return method(node, depth + 1)

    def visit_Constant(self, node: ast.Constant, depth: int) -> Value:
        if isinstance(node.value, (bool, int, float)):
            return number(node.value)
        raise ExpressionError(f"constant {node.value!r} is not a number")

    def visit_Name(self, node: ast.Name, depth: int) -> Value:
        return self.scope.lookup(node.id)

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Value:
        operand = self.visit(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return sympy.Not(_as_bool(operand))
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> Value:
        left = self.visit(node.left, depth)
        right = self.visit(node.right, depth)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ExpressionError("division by zero")
        return op(left, right)

    def visit_BoolOp(self, node: ast.BoolOp, depth: int) -> Value:
        values = [_as_bool(self.visit(v, depth)) for v in node.values]
        return sympy.And(*values) if isinstance(node.op, ast.And) else sympy.Or(*values)

    def visit_Compare(self, node: ast.Compare, depth: int) -> Value:
        parts = []
        left = self.visit(node.left, depth)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.visit(comparator, depth)
            fn = _COMPARE.get(type(op))
            if fn is None:
                raise ExpressionError(f"comparison {type(op).__name__} is not allowed")
            parts.append(fn(left, right))
            left = right
        return sympy.And(*parts)

    def visit_IfExp(self, node: ast.IfExp, depth: int) -> Value:
        cond = _as_bool(self.visit(node.test, depth))
        if cond is sympy.true:
            return self.visit(node.body, depth)
        if cond is sympy.false:
            return self.visit(node.orelse, depth)
        body, orelse = self.visit(node.body, depth), self.visit(node.orelse, depth)
        if is_condition(body) or is_condition(orelse):
            body, orelse = _as_bool(body), _as_bool(orelse)
            return sympy.Or(sympy.And(cond, body), sympy.And(sympy.Not(cond), orelse))
        return sympy.Piecewise((body, cond), (orelse, True))

    def visit_Call(self, node: ast.Call, depth: int) -> Value:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(f"{_describe(node.func)} cannot be called; functions: {_fn_list()}")
        name = node.func.id
        if node.keywords:
            raise ExpressionError(f"{name}() takes no keyword arguments")
        if name not in FUNCTIONS and name != "dim":
            raise ExpressionError(f"unknown function '{name}'{did_you_mean(name, FUNCTIONS)}; functions: {_fn_list()}")
        lo, hi = _ARITY[name]
        if not lo <= len(node.args) <= hi:
            raise ExpressionError(f"{name}() takes {lo}..{hi} arguments, got {len(node.args)}")
        if name == "dim":
            return self._dim(node, depth)
        args = [self.visit(a, depth) for a in node.args]
        return FUNCTIONS[name](*args)

    def _dim(self, node: ast.Call, depth: int) -> Value:
        ref = node.args[0]
        if not isinstance(ref, ast.Name) or self.scope.shape_of is None:
            raise ExpressionError("dim(tensor, axis) takes the name of an earlier layer or input")
        shape = self.scope.shape_of(ref.id)
        axis = self.visit(node.args[1], depth)
        if not axis.is_Integer or not -len(shape) <= int(axis) < len(shape):
            raise ExpressionError(f"dim(): axis {axis} is out of range for a tensor of rank {len(shape)}")
        return shape[int(axis)]


def _power(base: Value, exponent: Value) -> Value:
    if not exponent.is_number:
        raise ExpressionError(f"the exponent of a power must be a number, got {exponent}")
    if abs(exponent) > MAX_EXPONENT:
        raise ExpressionError(f"exponent {exponent} is too large (limit {MAX_EXPONENT})")
    if base.is_number and base != 0:
        digits = float(abs(exponent)) * abs(float(sympy.log(abs(base), 10)))
        if digits > MAX_RESULT_DIGITS:
            raise ExpressionError(f"{base}**{exponent} is too large (more than {MAX_RESULT_DIGITS} digits)")
    return base**exponent


def is_condition(value: Value) -> bool:
    """True/False, a comparison, or and/or/not of them (a sympy Symbol is not one)."""
    return value in (sympy.true, sympy.false) or isinstance(
        value, (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction))


def _as_bool(value: Value) -> Value:
    if is_condition(value):
        return value
    if value.is_number:
        return sympy.true if value != 0 else sympy.false
    return sympy.Ne(value, 0)


def _describe(node: ast.AST) -> str:
    names = {
        "Attribute": "attribute access",
        "Subscript": "subscripting",
        "Lambda": "lambda",
        "ListComp": "a list comprehension",
        "SetComp": "a set comprehension",
        "DictComp": "a dict comprehension",
        "GeneratorExp": "a generator expression",
        "Starred": "unpacking",
        "NamedExpr": "assignment (:=)",
        "JoinedStr": "an f-string",
        "Await": "await",
    }
    return names.get(type(node).__name__, f"'{type(node).__name__}'")


def _fn_list() -> str:
    return ", ".join(sorted(FUNCTIONS) + ["dim"])
