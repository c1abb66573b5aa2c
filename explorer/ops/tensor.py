"""Ops that move or re-view data without arithmetic. Each is listed on purpose: zero FLOPs.

Views (flatten, reshape, permute, transpose, expand, select, slice, split, chunk) read and write
nothing; copies (concat, channel_shuffle) read their inputs and write their output.
"""

from __future__ import annotations

from typing import Any

import sympy

from explorer import expr as ex
from explorer.errors import SpecError
from explorer.ops.base import REQUIRED, Attr, Cost, OpCall, OpResult, fmt_shape, numel, op

VIEW = Cost(moves_data=False)
COPY = Cost()


def _axis(call: OpCall, value: Any, rank: int | None = None) -> int:
    rank = len(call.x) if rank is None else rank
    a = int(value)  # attributes of kind 'expr' are integers here
    if not -rank <= a < rank:
        raise SpecError(f"axis {a} is out of range for a tensor of rank {rank} {fmt_shape(call.x)}")
    return int(a % rank)


def _in_range(call: OpCall, value: object, high: object, what: str) -> None:
    """0 <= value <= high, where decidable (numbers, or at the defaults)."""
    v = ex.as_expr(value)
    if v.is_negative or call.check(sympy.Min(v, high), v) is False:
        raise SpecError(f"{what} {value} is out of range 0..{high} for shape {fmt_shape(call.x)}")


for _name in ("identity", "dropout"):
    op(_name, "shape", {"p": Attr(0, check="fraction")} if _name == "dropout" else {},
       doc=f"{_name}: passes its input through (inference)")(lambda call: OpResult([call.x], VIEW))


@op("flatten", "shape", {"start": Attr(1, check="int"), "end": Attr(-1, check="int")})
def flatten(call: OpCall) -> OpResult:
    """Merge dims start..end (torch.flatten)."""
    s, e = _axis(call, call["start"]), _axis(call, call["end"])
    if s > e:
        raise SpecError(f"flatten: start {call['start']} comes after end {call['end']}")
    x = call.x
    return OpResult([(*x[:s], numel(x[s:e + 1]), *x[e + 1:])], VIEW)


@op("reshape", "shape", {"shape": Attr(REQUIRED, "shape", check="dim")}, aliases=("view",))
def reshape(call: OpCall) -> OpResult:
    """Reshape; one dim may be -1 (inferred)."""
    target = list(call["shape"])
    free = [i for i, d in enumerate(target) if d == -1]
    if len(free) > 1:
        raise SpecError("reshape: only one dim may be -1")
    if free:
        known = numel(tuple(d for d in target if d != -1))
        target[free[0]] = numel(call.x) / known
    if call.check(numel(tuple(target)), numel(call.x)) is False:
        raise SpecError(f"reshape of {fmt_shape(call.x)} to {fmt_shape(tuple(target))} changes the element count")
    return OpResult([tuple(target)], VIEW)


@op("permute", "shape", {"dims": Attr(REQUIRED, "shape", check="int")})
def permute(call: OpCall) -> OpResult:
    dims = [_axis(call, d) for d in call["dims"]]
    if sorted(dims) != list(range(len(call.x))):
        raise SpecError(f"permute dims {dims} are not a permutation of 0..{len(call.x) - 1}")
    return OpResult([tuple(call.x[d] for d in dims)], VIEW)


@op("transpose", "shape", {"dim0": Attr(-2, check="int"), "dim1": Attr(-1, check="int")})
def transpose(call: OpCall) -> OpResult:
    a, b = _axis(call, call["dim0"]), _axis(call, call["dim1"])
    x = list(call.x)
    x[a], x[b] = x[b], x[a]
    return OpResult([tuple(x)], VIEW)


@op("expand", "shape", {"shape": Attr(REQUIRED, "shape", check="pos_int")})
def expand(call: OpCall) -> OpResult:
    """Broadcast size-1 dims to a larger shape (a view)."""
    target = tuple(call["shape"])
    if len(target) != len(call.x) or any(d != 1 and call.check(d, t) is False for d, t in zip(call.x, target)):
        raise SpecError(f"cannot expand {fmt_shape(call.x)} to {fmt_shape(target)}")
    return OpResult([target], VIEW)


@op("select", "shape", {"axis": Attr(REQUIRED, check="int"), "index": Attr(0, check="nonneg_int")})
def select(call: OpCall) -> OpResult:
    """Take one index along an axis, dropping it (e.g. a class token)."""
    a = _axis(call, call["axis"])
    _in_range(call, call["index"], call.x[a] - 1, "index")
    return OpResult([call.x[:a] + call.x[a + 1:]], VIEW)


@op("slice", "shape", {"axis": Attr(REQUIRED, check="int"), "start": Attr(0, check="nonneg_int"),
                           "end": Attr(REQUIRED, check="nonneg_int")})
def slice_(call: OpCall) -> OpResult:
    a = _axis(call, call["axis"])
    start, end = call["start"], call["end"]
    _in_range(call, start, call.x[a] - 1, "start")
    _in_range(call, end, call.x[a], "end")
    if call.check(sympy.Max(end - start, 0), end - start) is False or (end - start).is_nonpositive:
        raise SpecError(f"slice: end {end} must be after start {start}")
    return OpResult([(*call.x[:a], end - start, *call.x[a + 1:])], VIEW)


@op("split", "shape", {"axis": Attr(REQUIRED, check="int"), "sizes": Attr(REQUIRED, "shape", check="pos_int")})
def split(call: OpCall) -> OpResult:
    """Split into pieces of the given sizes (outputs name:0, name:1, ...)."""
    a = _axis(call, call["axis"])
    sizes = list(call["sizes"])
    call.require_equal(sum(sizes, sympy.Integer(0)), call.x[a], "split sizes must add up to the axis size")
    return OpResult([(*call.x[:a], s, *call.x[a + 1:]) for s in sizes], VIEW)


@op("chunk", "shape", {"axis": Attr(REQUIRED, check="int"), "chunks": Attr(REQUIRED, check="pos_int")})
def chunk(call: OpCall) -> OpResult:
    """Split into ``chunks`` equal pieces (the axis must divide evenly)."""
    a, k = _axis(call, call["axis"]), call["chunks"]
    if not (k.is_Integer and 1 <= k <= 1024):
        raise SpecError(f"chunks must be an integer between 1 and 1024, got {k}")
    if call.check(sympy.Mod(call.x[a], k), sympy.Integer(0)) is False:
        raise SpecError(f"axis size {call.x[a]} does not divide into {k} chunks")
    piece = (*call.x[:a], call.x[a] / k, *call.x[a + 1:])
    return OpResult([piece] * int(k), VIEW)


@op("concat", "data", {"axis": Attr(1, check="int")}, inputs=(2, 64), aliases=("cat",))
def concat(call: OpCall) -> OpResult:
    """Concatenate along an axis; all other dims must match. Copies its inputs."""
    a = _axis(call, call["axis"])
    first = call.x
    for shape in call.shapes[1:]:
        if len(shape) != len(first) or any(
            i != a and call.check(x, y) is False for i, (x, y) in enumerate(zip(first, shape))
        ):
            raise SpecError(f"concat on axis {a}: shapes {fmt_shape(first)} and {fmt_shape(shape)} differ off the axis")
    total = sum((s[a] for s in call.shapes), sympy.Integer(0))
    return OpResult([(*first[:a], total, *first[a + 1:])], COPY)


@op("channel_shuffle", "data", {"groups": Attr(REQUIRED, check="pos_int")})
def channel_shuffle(call: OpCall) -> OpResult:
    """ShuffleNet channel shuffle: a permuting copy, no arithmetic."""
    if len(call.x) < 2:
        raise SpecError(f"channel_shuffle needs an input [N, C, ...], got shape {fmt_shape(call.x)}")
    if call.check(sympy.Mod(call.x[1], call["groups"]), sympy.Integer(0)) is False:
        raise SpecError(f"groups={call['groups']} does not divide the channels {call.x[1]}")
    return OpResult([call.x], COPY)


@op("parameter", "data", {"shape": Attr(REQUIRED, "shape", check="pos_int")}, inputs=(0, 0))
def parameter(call: OpCall) -> OpResult:
    """A learned tensor (class token, positional embedding): params, no arithmetic."""
    shape = tuple(call["shape"])
    return OpResult([shape], Cost(params=numel(shape), moves_data=False))


@op("embedding", "embedding", {"num": Attr(REQUIRED, doc="vocabulary size", check="pos_int"),
                                     "dim": Attr(REQUIRED, check="pos_int")})
def embedding(call: OpCall) -> OpResult:
    """Table lookup: reads one row of ``dim`` per index; no arithmetic."""
    return OpResult([(*call.x, call["dim"])],
                    Cost(params=call["num"] * call["dim"], weight_read=numel(call.x) * call["dim"]))


@op("crop", "shape", {"size": Attr(REQUIRED, "exprs", doc="[h, w] of the centre crop", check="pos_int")})
def crop(call: OpCall) -> OpResult:
    """Centre crop of [N, C, H, W] to [h, w] (U-Net skip connections): a view."""
    call.require_rank(4)
    size = call["size"] if isinstance(call["size"], tuple) else (call["size"], call["size"])
    for have, want in zip(call.x[2:], size):
        if call.check(sympy.Max(have - want, -1), -1) is True or (have - want).is_negative:
            raise SpecError(f"cannot crop {fmt_shape(call.x)} to {list(size)}: the crop is larger")
    return OpResult([(*call.x[:2], *size)], VIEW)


@op("constant", "data", {"shape": Attr(REQUIRED, "shape", check="pos_int")}, inputs=(0, 0))
def constant(call: OpCall) -> OpResult:
    """A tensor the model holds but does not learn (a registered buffer: an attention mask, anchors,
    a fixed positional table): buffers, no params, no arithmetic; its readers read it."""
    shape = tuple(call["shape"])
    return OpResult([shape], Cost(buffers=numel(shape), moves_data=False))


PAD_MODES = ("constant", "reflect", "replicate", "circular")


@op("pad", "data", {"padding": Attr(REQUIRED, "exprs", doc="before and after each padded dim, last dim first "
                                    "(torch.nn.functional.pad): [left, right] or [left, right, top, bottom] ...",
                                    check="int"),
                    "mode": Attr("constant", "str", choices=PAD_MODES),
                    "value": Attr(0, doc="fill value of the constant mode")})
def pad(call: OpCall) -> OpResult:
    """Padding as torch.nn.functional.pad: a copy into a larger tensor, no arithmetic."""
    padding = call["padding"] if isinstance(call["padding"], tuple) else (call["padding"],)
    rank, mode = len(call.x), call["mode"]
    if len(padding) % 2 or not 2 <= len(padding) <= 2 * rank:
        raise SpecError(f"padding takes two values (before, after) per padded dim, last dim first, at most "
                        f"{2 * rank} for a rank-{rank} input, got {len(padding)}: {list(padding)}")
    dims = len(padding) // 2
    if mode != "constant" and not (dims <= 3 and rank in (dims + 1, dims + 2)):
        raise SpecError(f"{mode} padding of {dims} dim(s) needs an input of rank {dims + 1} or {dims + 2} "
                        f"(torch pads the last 1 to 3 dims), got shape {fmt_shape(call.x)}")
    out = list(call.x)
    for k in range(dims):
        axis = rank - 1 - k
        before, after = padding[2 * k], padding[2 * k + 1]
        size = call.x[axis]
        if mode == "reflect" and (call.check(sympy.Max(before, after, size - 1), size - 1) is False):
            raise SpecError(f"reflect padding must be smaller than the padded dim: {before}, {after} for size {size} "
                            f"(axis {axis})")
        if mode == "circular" and call.check(sympy.Max(before, after, size), size) is False:
            raise SpecError(f"circular padding must be at most the padded dim: {before}, {after} for size {size} "
                            f"(axis {axis})")
        if mode != "constant" and any(getattr(p, "is_negative", False) for p in (before, after)):
            raise SpecError(f"{mode} padding cannot be negative, got {before}, {after} (axis {axis})")
        out[axis] = size + before + after
    return OpResult([tuple(out)], COPY)


@op("pixel_shuffle", "data", {"factor": Attr(REQUIRED, doc="upscale factor r", check="pos_int")})
def pixel_shuffle(call: OpCall) -> OpResult:
    """torch.nn.PixelShuffle: [N, C·r², H, W] -> [N, C, H·r, W·r], a permuting copy, no arithmetic."""
    call.require_rank(4)
    n, c, h, w = call.x
    r = call["factor"]
    if call.check(sympy.Mod(c, r * r), sympy.Integer(0)) is False:
        raise SpecError(f"pixel_shuffle with factor {r} needs channels divisible by {r * r}, got {c} "
                        f"(shape {fmt_shape(call.x)})")
    return OpResult([(n, c / (r * r), h * r, w * r)], COPY)
