"""The op registry: one handler per op, each declaring its attributes and inputs.

A handler receives an :class:`OpCall` (input shapes and resolved attributes) and returns the
output shapes and the op's :class:`Cost` under explorer's own convention (docs/ops.md).
Memory traffic is not computed here: the engine derives reads and writes from the tensors
(see :mod:`explorer.cost`), the handler only says how many weight elements it reads, whether
it moves data at all (views and no-ops do not), and what it moves beyond its inputs and outputs:
``scratch`` (an internal tensor written and read back, e.g. unfused attention scores) and the
KV cache (``kv_cache`` resident, ``kv_read``, ``kv_write``, in the KV-cache dtype).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import sympy

from explorer.errors import SpecError

Expr = Any  # a sympy expression
Shape = tuple[Expr, ...]
REQUIRED = object()

CATEGORIES = ("conv", "linear", "matmul", "attention", "norm", "activation", "pooling",
              "elementwise", "embedding", "data", "shape")


@dataclass(frozen=True)
class Attr:
    """One op attribute. ``kind``: expr, exprs (one or several), shape, bool, str.

    ``check`` names the domain of each numeric value (a key of :data:`CHECKS`), tested where the
    value is a number (or becomes one at the variables' defaults).
    """

    default: Any = REQUIRED
    kind: str = "expr"
    choices: tuple[str, ...] = ()
    doc: str = ""
    check: str = ""


CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "int": ("an integer", lambda v: v.is_Integer),
    "pos_int": ("a positive integer", lambda v: v.is_Integer and v > 0),
    "nonneg_int": ("a non-negative integer", lambda v: v.is_Integer and v >= 0),
    "dim": ("a positive integer or -1", lambda v: v.is_Integer and (v > 0 or v == -1)),
    "positive": ("a positive number", lambda v: v.is_Rational and v > 0),
    "fraction": ("a number from 0 to 1", lambda v: v.is_Rational and 0 <= v <= 1),
}


def domain_problem(check: str, value: Any) -> str | None:
    """Why a numeric attribute value is outside its domain, or None (also for non-numbers)."""
    if not check or not getattr(value, "is_number", value in (sympy.true, sympy.false)):
        return None
    what, ok = CHECKS[check]
    return None if ok(value) else f"must be {what}, got {fmt_shape((value,))[1:-1]}"


@dataclass(frozen=True)
class Cost:
    """What one op costs under explorer's convention (counts, not bytes)."""

    params: Expr = sympy.Integer(0)
    macs: Expr = sympy.Integer(0)
    flops: Expr = sympy.Integer(0)
    buffers: Expr = sympy.Integer(0)
    weight_read: Expr | None = None  # weight elements read; None means params + buffers
    moves_data: bool = True  # False for views and no-ops: no activation reads or writes
    parts: dict[str, Expr] = field(default_factory=dict)  # a named split of macs, e.g. attention
    checks: tuple[Expr, ...] = ()  # inner sizes that must be positive integers (a head dim)
    scratch: Expr = sympy.Integer(0)  # internal activation elements written once and read once (scores)
    kv_cache: Expr = sympy.Integer(0)  # KV-cache elements resident while the model runs
    kv_read: Expr = sympy.Integer(0)  # KV-cache elements read (the cached keys and values)
    kv_write: Expr = sympy.Integer(0)  # KV-cache elements written (the new tokens' keys and values)


@dataclass
class OpCall:
    """What a handler sees: its input shapes and its resolved attributes."""

    op: str
    shapes: list[Shape]
    attrs: dict[str, Any]
    check: Callable[[Expr, Expr], bool | None]  # equal? True/False/None (undecided)

    def __getitem__(self, key: str) -> Any:
        return self.attrs[key]

    @property
    def x(self) -> Shape:
        return self.shapes[0]

    def fail(self, message: str) -> SpecError:
        return SpecError(message)

    def require_equal(self, a: Expr, b: Expr, what: str) -> None:
        if self.check(a, b) is False:
            raise SpecError(f"{what}: {a} != {b}")

    def require_rank(self, rank: int | tuple[int, ...], shape: Shape | None = None) -> None:
        shape = self.x if shape is None else shape
        ranks = (rank,) if isinstance(rank, int) else rank
        if len(shape) not in ranks:
            want = " or ".join(str(r) for r in ranks)
            raise SpecError(f"{self.op} needs a rank-{want} input, got shape {fmt_shape(shape)}")


@dataclass(frozen=True)
class OpResult:
    outputs: list[Shape]
    cost: Cost


@dataclass(frozen=True)
class OpDef:
    name: str
    fn: Callable[[OpCall], OpResult]
    category: str
    attrs: dict[str, Attr]
    inputs: tuple[int, int]  # min, max number of inputs
    doc: str


REGISTRY: dict[str, OpDef] = {}
ALIASES: dict[str, str] = {}


def op(
    name: str,
    category: str,
    attrs: dict[str, Attr] | None = None,
    inputs: tuple[int, int] = (1, 1),
    aliases: Sequence[str] = (),
    doc: str | None = None,
) -> Callable[[Callable[[OpCall], OpResult]], Callable[[OpCall], OpResult]]:
    """Register a handler: ``@op("relu", "activation")``."""
    assert category in CATEGORIES, category

    def register(fn: Callable[[OpCall], OpResult]) -> Callable[[OpCall], OpResult]:
        text = doc or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        REGISTRY[name] = OpDef(name, fn, category, dict(attrs or {}), inputs, text)
        for alias in aliases:
            ALIASES[alias] = name
        return fn

    return register


def numel(shape: Shape) -> Expr:
    return reduce(lambda a, b: a * b, shape, sympy.Integer(1))


def fmt_shape(shape: Shape) -> str:
    """``[1, 4.8, 30, 30]``: rationals as decimals, symbols as they are."""
    def one(d: Any) -> str:
        if getattr(d, "is_Rational", False) and not d.is_Integer:
            return f"{float(d):g}"
        return str(d)

    return "[" + ", ".join(one(d) for d in shape) + "]"


def pair(value: Any) -> tuple[Expr, Expr]:
    """An int-or-pair attribute (kernel, stride...) as (h, w)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise SpecError(f"expected one value or two (h, w), got {len(value)}")
        return value[0], value[1]
    return value, value

