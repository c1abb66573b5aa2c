"""Pooling and resampling."""

from __future__ import annotations

from typing import Any

import sympy

from explorer.errors import SpecError
from explorer.ops.base import REQUIRED, Attr, Cost, OpCall, OpResult, numel, op, pair
from explorer.ops.conv import conv_out

MAX_ADAPTIVE = 1024  # output size of adaptive pooling: the window sum has one term per output row

_POOL_ATTRS = {
    "kernel": Attr(REQUIRED, "exprs", check="pos_int"),
    "stride": Attr(None, "exprs", doc="default: the kernel", check="pos_int"),
    "padding": Attr(0, "exprs", check="nonneg_int"),
    "ceil_mode": Attr(False, "bool"),
}


def _ceil_out(size: sympy.Expr, k: sympy.Expr, s: sympy.Expr, p: sympy.Expr, d: sympy.Expr) -> sympy.Expr:
    """torch ceil_mode: round up, but the last window must start inside the input or left padding.

    torch computes ``o = ceil((size + 2p - d(k-1) - 1) / s) + 1`` and drops one window when
    ``(o - 1) s >= size + p``. The last start index allowed is ``floor((size + p - 1) / s)``, and with
    torch's ``p <= k / 2`` at most one window is ever dropped, so the same count is
    ``min(ceil(...), floor((size + p - 1) / s)) + 1``: no Piecewise, no relational for sympy to decide
    (a chain of such pools stays cheap to build; checked against torch in tests/test_ops.py).
    """
    up = sympy.ceiling((size + 2 * p - d * (k - 1) - 1) / s)
    last = sympy.floor((size + p - 1) / s)
    if up.is_number and last.is_number:
        return sympy.Min(up, last) + 1
    return sympy.Min(up, last, evaluate=False) + 1


def _pool_out(call: OpCall) -> tuple[tuple[Any, ...], sympy.Expr]:
    call.require_rank(4)
    n, c, h, w = call.x
    (kh, kw) = pair(call["kernel"])
    (sh, sw) = pair(call["stride"] if call["stride"] is not None else call["kernel"])
    (ph, pw) = pair(call["padding"])
    dil = (1, 1) if "dilation" not in call.attrs else pair(call["dilation"])
    if call["ceil_mode"]:
        ho = _ceil_out(h, kh, sh, ph, dil[0])
        wo = _ceil_out(w, kw, sw, pw, dil[1])
    else:
        ho, wo = conv_out(h, kh, sh, ph, dil[0]), conv_out(w, kw, sw, pw, dil[1])
    return (n, c, ho, wo), kh * kw


@op("maxpool", "pooling", {**_POOL_ATTRS, "dilation": Attr(1, "exprs", check="pos_int")}, aliases=("maxpool2d",))
def maxpool(call: OpCall) -> OpResult:
    """Max pooling: k*k - 1 comparisons per output."""
    out, window = _pool_out(call)
    return OpResult([out], Cost(flops=numel(out) * (window - 1)))


@op("avgpool", "pooling", _POOL_ATTRS, aliases=("avgpool2d",))
def avgpool(call: OpCall) -> OpResult:
    """Average pooling: k*k - 1 adds and 1 divide per output."""
    out, window = _pool_out(call)
    return OpResult([out], Cost(flops=numel(out) * window))


def adaptive_windows(size: sympy.Expr, out: int) -> sympy.Expr:
    """Sum of torch's adaptive window lengths: sum_i ceil((i+1)H/o) - floor(iH/o)."""
    return sum((sympy.ceiling((i + 1) * size / out) - sympy.floor(i * size / out) for i in range(out)),
               sympy.Integer(0))


def _adaptive(call: OpCall) -> tuple[tuple[Any, ...], sympy.Expr]:
    call.require_rank(4)
    n, c, h, w = call.x
    oh, ow = pair(call["size"])
    for o in (oh, ow):
        if not (o.is_Integer and 0 < o <= MAX_ADAPTIVE):
            raise SpecError(f"adaptive pooling size must be an integer from 1 to {MAX_ADAPTIVE}, got {o}")
    window_sum = adaptive_windows(h, int(oh)) * adaptive_windows(w, int(ow))
    return (n, c, oh, ow), n * c * window_sum


@op("adaptive_avgpool", "pooling", {"size": Attr(1, "exprs", check="pos_int")}, aliases=("adaptive_avgpool2d",))
def adaptive_avgpool(call: OpCall) -> OpResult:
    """Adaptive average pooling: each output sums its window and divides once."""
    out, summed = _adaptive(call)
    return OpResult([out], Cost(flops=summed))


@op("adaptive_maxpool", "pooling", {"size": Attr(1, "exprs", check="pos_int")}, aliases=("adaptive_maxpool2d",))
def adaptive_maxpool(call: OpCall) -> OpResult:
    """Adaptive max pooling: window - 1 comparisons per output."""
    out, summed = _adaptive(call)
    return OpResult([out], Cost(flops=summed - numel(out)))


@op("mean", "pooling", {"axes": Attr(REQUIRED, "exprs", check="int"), "keepdim": Attr(False, "bool")})
def mean(call: OpCall) -> OpResult:
    """Mean over axes: n - 1 adds and 1 divide per output, i.e. one FLOP per input element."""
    axes = call["axes"] if isinstance(call["axes"], tuple) else (call["axes"],)
    rank = len(call.x)
    for a in axes:
        if not -rank <= int(a) < rank:
            raise SpecError(f"axis {a} is out of range for a tensor of rank {rank}")
    idx = {int(a) % rank for a in axes}
    keep = call["keepdim"]
    out = tuple((sympy.Integer(1) if i in idx else d) for i, d in enumerate(call.x) if keep or i not in idx)
    return OpResult([out], Cost(flops=numel(call.x)))


# FLOPs per output: a weighted sum of the neighbours (k mul + k - 1 add); the interpolation weights
# depend only on the output's row and column and are not counted (docs/ops.md)
UPSAMPLE_FLOPS = {"nearest": 0, "bilinear": 7, "bicubic": 31}  # 1, 2 x 2 and 4 x 4 neighbours


@op("upsample", "pooling", {"scale": Attr(None, check="positive"), "size": Attr(None, "exprs", check="pos_int"),
                            "mode": Attr("nearest", "str", choices=tuple(UPSAMPLE_FLOPS))})
def upsample(call: OpCall) -> OpResult:
    """Upsampling of [N, C, H, W]: nearest copies (0 FLOPs); bilinear 7, bicubic 31 FLOPs per output."""
    call.require_rank(4)
    n, c, h, w = call.x
    if (call["scale"] is None) == (call["size"] is None):
        raise SpecError("upsample takes exactly one of 'scale' and 'size'")
    if call["scale"] is not None:
        ho, wo = sympy.floor(h * call["scale"]), sympy.floor(w * call["scale"])
    else:
        ho, wo = pair(call["size"])
    out = (n, c, ho, wo)
    return OpResult([out], Cost(flops=UPSAMPLE_FLOPS[call["mode"]] * numel(out)))
