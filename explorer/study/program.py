"""Sympy expressions -> a flat numpy program: one register per distinct subexpression.

The expressions of a built graph share their subexpressions (a pooled size appears in every later
shape). Walking each expression tree once and giving every distinct node its own register turns a
chain of ceil/floor/min sizes into a chain of array operations, each one op deep: no global
simplification, no lambdify, no name clash between a variable and a function (a variable may be
called ``floor``). Evaluation is exact for the integers float64 holds (< 2**53): a rational
coefficient ``p/q`` is applied as ``x * p / q`` (one correctly rounded division), so ``floor`` and
``ceil`` of sizes see the exact quotient.

Each register also records its degree in ``batch`` (``None`` when ``batch`` sits inside a floor,
min, make_divisible..., or the degree is not a small non-negative integer): the evaluator splits
expressions of degree <= 1 into ``x1 * batch + x0`` and evaluates them once per architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from explorer import expr as ex
from explorer.errors import SpecError


def _sum(*xs: Any) -> Any:
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out = out + x
    return out


def _sum_into(o: Any, *xs: Any) -> None:
    np.add(xs[0], xs[1], out=o)
    for x in xs[2:]:
        np.add(o, x, out=o)


_sum.into = _sum_into  # type: ignore[attr-defined]


def _prod(*xs: Any) -> Any:
    out = xs[0] * xs[1]
    for x in xs[2:]:
        out = out * x
    return out


def _mul_parts(node: Any) -> tuple[Any, list[Any], list[Any]]:
    """(rational coefficient, numerator factors, denominator factors) of a product."""
    coeff, rest = node.as_coeff_Mul()
    if not coeff.is_Rational:
        coeff, rest = sympy.Integer(1), node
    num, den = [], []
    for f in sympy.Mul.make_args(rest):
        if isinstance(f, sympy.Pow) and f.exp.is_Integer and f.exp < 0:
            den.append(f.base if f.exp == -1 else sympy.Pow(f.base, -f.exp))
        else:
            num.append(f)
    return coeff, num, den


def _quotient(n_num: int, coeff: Any) -> Callable[..., Any]:
    """prod(numerator) * p / (q * prod(denominator)): one division, correctly rounded."""
    p, q = float(coeff.p), float(coeff.q)

    def quotient(*xs: Any) -> Any:
        top: Any = p
        for k, x in enumerate(xs[:n_num]):
            top = x if k == 0 and p == 1.0 else top * x  # 1 * x is x: no copy
        if len(xs) == n_num:
            return top / q if q != 1.0 else top
        bottom: Any = q
        for k, x in enumerate(xs[n_num:]):
            bottom = x if k == 0 and q == 1.0 else bottom * x
        return top / bottom

    def into(o: Any, *xs: Any) -> None:  # the same operations in the same order, into row o
        nums, dens = xs[:n_num], xs[n_num:]
        if not nums:
            o.fill(p)
        elif p == 1.0:
            np.copyto(o, nums[0]) if len(nums) == 1 else np.multiply(nums[0], nums[1], out=o)
        else:
            np.multiply(nums[0], p, out=o)
        for x in nums[2 if p == 1.0 else 1:]:
            np.multiply(o, x, out=o)
        if not dens:
            if q != 1.0:
                np.divide(o, q, out=o)
            return
        bottom: Any = q
        for k, x in enumerate(dens):
            bottom = x if k == 0 and q == 1.0 else bottom * x
        np.divide(o, bottom, out=o)

    quotient.into = into  # type: ignore[attr-defined]
    return quotient


def _power(n: int) -> Callable[[Any], Any]:
    def power(x: Any) -> Any:
        out = x
        for _ in range(n - 1):
            out = out * x
        return out

    def into(o: Any, x: Any) -> None:
        np.copyto(o, x) if n == 1 else np.multiply(x, x, out=o)
        for _ in range(n - 2):
            np.multiply(o, x, out=o)

    power.into = into  # type: ignore[attr-defined]
    return power


def _piecewise(*args: Any) -> Any:
    """args: e0, c0, e1, c1, ...: the first ei whose ci holds (sympy ends with a True condition)."""
    out = args[-2]
    for k in range(len(args) - 4, -1, -2):
        out = np.where(args[k + 1], args[k], out)
    return out


def _reduce(fn: Any) -> Callable[..., Any]:
    def reduce(*xs: Any) -> Any:
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return out

    def into(o: Any, *xs: Any) -> None:
        fn(xs[0], xs[1], out=o)
        for x in xs[2:]:
            fn(o, x, out=o)

    reduce.into = into  # type: ignore[attr-defined]
    return reduce


def _generic_into(fn: Callable[..., Any]) -> Callable[..., None]:
    def into(o: Any, *xs: Any) -> None:
        o[...] = fn(*xs)
    return into


def _ufunc_into(fn: Any) -> Callable[..., None]:
    def into(o: Any, *xs: Any) -> None:
        fn(*xs, out=o)
    return into


def _into(fn: Any) -> Callable[..., None]:
    """The in-place form of an operation: its own, a float ufunc's ``out=``, or a copy."""
    own = getattr(fn, "into", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    if fn in (np.floor, np.ceil, np.abs, np.mod):
        return _ufunc_into(fn)
    return _generic_into(fn)


@dataclass
class Workspace:
    """A program's registers as the rows of one table (and a view of each row, made once)."""

    table: Any
    rows: list[Any]


_UNARY: dict[type, Callable[[Any], Any]] = {
    sympy.floor: np.floor, sympy.ceiling: np.ceil, sympy.Abs: np.abs, ex.round_even: np.rint,
    sympy.log: np.log, sympy.exp: np.exp, ex.log2: np.log2,
}
_NARY: dict[type, Callable[..., Any]] = {
    sympy.Min: _reduce(np.minimum), sympy.Max: _reduce(np.maximum), sympy.Mod: np.mod,
    ex.make_divisible: ex.make_divisible_numpy,
    sympy.And: _reduce(np.logical_and), sympy.Or: _reduce(np.logical_or), sympy.Not: np.logical_not,
    sympy.Eq: np.equal, sympy.Ne: np.not_equal, sympy.Lt: np.less, sympy.Le: np.less_equal,
    sympy.Gt: np.greater, sympy.Ge: np.greater_equal,
}
_POLY = (sympy.Add, sympy.Mul, sympy.Pow)


@dataclass
class Program:
    """Registers 0..len(args)-1 are the arguments; constants are stored as floats."""

    args: list[sympy.Symbol]
    batch: sympy.Symbol | None = None
    code: list[tuple[Callable[..., Any], tuple[int, ...], int]] = field(default_factory=list)
    consts: dict[int, Any] = field(default_factory=dict)
    degree: list[int | None] = field(default_factory=list)
    _reg: dict[Any, int] = field(default_factory=dict)
    _into: list[tuple[Callable[..., None], tuple[int, ...], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for a in self.args:
            self._reg[a] = len(self.degree)
            self.degree.append(1 if a == self.batch else 0)

    @property
    def size(self) -> int:
        return len(self.degree)

    def add(self, e: Any) -> int:
        """The register holding ``e`` (compiled on first sight, children first)."""
        e = ex.as_expr(e)
        reg = self._reg.get(e)
        if reg is not None:
            return reg
        stack = [(e, False)]
        while stack:  # iterative post-order: deep chains never hit the recursion limit
            node, ready = stack.pop()
            if node in self._reg:
                continue
            kids = self._children(node)
            if ready or not kids:
                self._reg[node] = self._emit(node, [self._reg[k] for k in kids])
                continue
            stack.append((node, True))
            stack.extend((k, False) for k in kids if k not in self._reg)
        return self._reg[e]

    def _children(self, node: Any) -> tuple[Any, ...]:
        if node.is_Number or node in (sympy.true, sympy.false) or node.is_Symbol:
            return ()
        if isinstance(node, sympy.Piecewise):
            return tuple(x for pair in node.args for x in pair)
        if isinstance(node, sympy.Mul):
            _, num, den = _mul_parts(node)
            return (*num, *den)
        if isinstance(node, sympy.Pow):
            return (node.base,)
        return tuple(node.args)

    def _const(self, value: Any, degree: int | None = 0) -> int:
        reg = len(self.degree)
        self.consts[reg] = value
        self.degree.append(degree)
        return reg

    def _emit(self, node: Any, kids: list[int]) -> int:
        if node.is_Symbol:
            raise SpecError(f"no value for '{node}' (not a variable of the spec)")
        if node is sympy.true or node is sympy.false:
            return self._const(bool(node))
        if node.is_Number:
            if not node.is_real:
                raise SpecError(f"the value {node} is not a real number")
            return self._const(float(node) if node.is_finite else np.inf)
        fn, deg = self._op(node, kids)
        reg = len(self.degree)
        self.code.append((fn, tuple(kids), reg))
        self.degree.append(deg)
        return reg

    def _op(self, node: Any, kids: list[int]) -> tuple[Callable[..., Any], int | None]:
        degs = [self.degree[k] for k in kids]
        known = None not in degs
        if isinstance(node, sympy.Add):
            return _sum, max(degs) if known else None  # type: ignore[type-var]
        if isinstance(node, sympy.Mul):
            coeff, num, den = _mul_parts(node)
            if den:
                return _quotient(len(num), coeff), (sum(d for d in degs if d is not None)
                                                    if known and not any(degs[len(num):]) else None)
            total = sum(d for d in degs if d is not None) if known else None
            return _quotient(len(num), coeff), total
        if isinstance(node, sympy.Pow):
            return self._pow(node, degs[0])
        if isinstance(node, sympy.Piecewise):
            return _piecewise, (0 if all(d == 0 for d in degs) else None)
        fn = _UNARY.get(type(node)) or _NARY.get(type(node))
        if fn is None:
            raise SpecError(f"cannot evaluate '{type(node).__name__}' in a compiled study")
        return fn, (0 if all(d == 0 for d in degs) else None)

    def _pow(self, node: Any, deg: int | None) -> tuple[Callable[..., Any], int | None]:
        n = node.exp
        if n.is_Integer and 0 < n <= 64:
            return _power(int(n)), (None if deg is None else deg * int(n))
        if n.is_Integer and -64 <= n < 0:
            inv = _power(-int(n))
            return (lambda x: 1.0 / inv(x)), (0 if deg == 0 else None)
        if n.is_number and n.is_real:
            e = float(n)
            return (lambda x: np.power(x, e)), (0 if deg == 0 else None)
        raise SpecError(f"cannot evaluate the power {node} in a compiled study")

    def workspace(self, m: int) -> Workspace:
        """A (registers, m) array for :meth:`run_into`, constants already in place."""
        table = np.empty((self.size, m))
        for k, v in self.consts.items():
            table[k] = v
        return Workspace(table, list(table))

    def run_into(self, ws: Workspace, values: Sequence[Any]) -> Any:
        """All registers as rows of the workspace's table, each operation writing into its row (no
        array allocated per operation; the table is reused across calls). Same operations in the
        same order as :meth:`run`: the same numbers."""
        rows = ws.rows
        for i, v in enumerate(values):
            rows[i][...] = v
        if len(self._into) != len(self.code):
            self._into = [(_into(fn), ins, reg) for fn, ins, reg in self.code]
        for into, ins, reg in self._into:
            into(rows[reg], *[rows[i] for i in ins])
        return ws.table

    def run(self, values: Sequence[Any]) -> list[Any]:
        """All registers for these argument arrays (or scalars)."""
        regs: list[Any] = [None] * self.size
        regs[: len(self.args)] = values
        for k, v in self.consts.items():
            regs[k] = v
        for fn, ins, out in self.code:
            regs[out] = fn(*[regs[i] for i in ins])
        return regs
