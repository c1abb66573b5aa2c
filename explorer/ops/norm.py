"""Normalization layers (inference mode). Per-element formulas are in docs/ops.md."""

from __future__ import annotations

import sympy

from explorer.errors import SpecError
from explorer.ops.base import Attr, Cost, OpCall, OpResult, numel, op


def _stats_flops(groups: sympy.Expr, n: sympy.Expr) -> sympy.Expr:
    """Normalizing groups of n elements: mean n, variance 3n, rstd 2, scale n -> 5n + 2 per group."""
    return groups * (5 * n + 2)


@op("batchnorm", "norm", {"affine": Attr(True, "bool")}, aliases=("batchnorm2d", "bn"))
def batchnorm(call: OpCall) -> OpResult:
    """Inference BatchNorm on [N, C, ...]: per-channel scale and shift, 2 FLOPs per element."""
    if len(call.x) < 2:
        raise SpecError("batchnorm needs an input [N, C, ...]")
    c = call.x[1]
    params = 2 * c if call["affine"] else sympy.Integer(0)
    return OpResult([call.x], Cost(params=params, buffers=2 * c, flops=2 * numel(call.x)))


@op("layernorm", "norm", {"dims": Attr(1, doc="how many trailing dims are normalized", check="pos_int"),
                          "affine": Attr(True, "bool")})
def layernorm(call: OpCall) -> OpResult:
    """LayerNorm over the last ``dims`` dims: 5n + 2 per group, plus 2 per element when affine."""
    k = int(call["dims"])
    if not 1 <= k <= len(call.x):
        raise SpecError(f"dims={k} must be between 1 and the input rank {len(call.x)}")
    n = numel(call.x[-k:])
    total = numel(call.x)
    flops = _stats_flops(total / n, n) + (2 * total if call["affine"] else 0)
    return OpResult([call.x], Cost(params=2 * n if call["affine"] else sympy.Integer(0), flops=flops))


@op("groupnorm", "norm", {"groups": Attr(32, check="pos_int"), "affine": Attr(True, "bool")})
def groupnorm(call: OpCall) -> OpResult:
    """GroupNorm on [N, C, ...]: statistics per (sample, group), affine per channel."""
    if len(call.x) < 2:
        raise SpecError("groupnorm needs an input [N, C, ...]")
    c, g = call.x[1], call["groups"]
    if call.check(sympy.Mod(c, g), sympy.Integer(0)) is False:
        raise SpecError(f"groups={g} does not divide the channels {c}")
    total = numel(call.x)
    groups = call.x[0] * g
    flops = _stats_flops(groups, total / groups) + (2 * total if call["affine"] else 0)
    return OpResult([call.x], Cost(params=2 * c if call["affine"] else sympy.Integer(0), flops=flops))


@op("rmsnorm", "norm", {"weight": Attr(True, "bool", doc="elementwise gain (LLaMA); false: none")})
def rmsnorm(call: OpCall) -> OpResult:
    """RMSNorm over the last dim: 3n + 2 per row, plus 1 per element with a weight."""
    n = call.x[-1]
    total = numel(call.x)
    flops = _rms_flops(total / n, n) + (total if call["weight"] else 0)
    return OpResult([call.x], Cost(params=n if call["weight"] else sympy.Integer(0), flops=flops))


def _rms_flops(rows: sympy.Expr, n: sympy.Expr) -> sympy.Expr:
    """Per row of n: squares n, sum n - 1, mean 1, add eps 1, rsqrt 1, scale n -> 3n + 2."""
    return rows * (3 * n + 2)
