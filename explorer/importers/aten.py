"""The ATen op table: one handler per ATen operator (as torch.export writes them), each giving the
explorer op and attributes (docs/import.md has the table). No torch import here: handlers read
the fx node through the :class:`Context` protocol that :mod:`explorer.importers.torch` implements.

A handler returns an :class:`Emit` (a layer), :data:`ALIAS` (the node stands for its first input,
e.g. ``contiguous``) or ``None`` when it cannot map this use of the operator (an unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from explorer.importers.ir import Dim


@dataclass
class Emit:
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


ALIAS = Emit("<alias>", [])


class Context(Protocol):
    """What a handler may ask about the fx node it maps."""

    def ref(self, arg: Any, partner: Any = None) -> str: ...  # the layer name of a tensor argument
    def shape(self, arg: Any) -> tuple[Any, ...]: ...  # torch sizes (int or SymInt) of a tensor argument
    def dim(self, value: Any) -> Dim: ...  # an int or SymInt as a number or an expression
    def weight(self, arg: Any) -> tuple[int, ...] | None: ...  # a parameter argument's shape, marked as used
    def is_tensor(self, arg: Any) -> bool: ...
    def out(self) -> tuple[Any, ...]: ...  # torch sizes of the node's (first) output


Handler = Callable[[Context, Sequence[Any]], "Emit | None"]
ATEN: dict[str, Handler] = {}


def aten(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for ATen operator names (without overload; in-place forms share it)."""

    def register(fn: Handler) -> Handler:
        for name in names:
            ATEN[name] = fn
        return fn

    return register


def _arg(args: Sequence[Any], i: int, default: Any) -> Any:
    return args[i] if len(args) > i else default


UNEXPECTED = (TypeError, ValueError, IndexError, KeyError, AttributeError)  # a use a handler does not cover


def pair(value: Any) -> int | list[int]:
    """A torch int list (kernel, stride...) as one int when both are equal, else [h, w]."""
    vals = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(vals) == 1 or len(set(vals)) == 1:
        return vals[0]
    return vals


@aten("conv1d", "conv2d", "conv3d")
def conv(ctx: Context, a: Sequence[Any]) -> Emit | None:
    w = ctx.weight(a[1])
    bias = _arg(a, 2, None)
    if w is None or len(w) not in (3, 4, 5):
        return None
    if bias is not None:
        ctx.weight(bias)
    padding = _arg(a, 4, 0)
    attrs: dict[str, Any] = {"out": w[0], "kernel": pair(list(w[2:])), "stride": pair(_arg(a, 3, 1)),
                             "padding": padding if isinstance(padding, str) else pair(padding),
                             "dilation": pair(_arg(a, 5, 1)), "groups": int(_arg(a, 6, 1)), "bias": bias is not None}
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}
    return Emit(f"conv{len(w) - 2}d", [ctx.ref(a[0])], trim(attrs, defaults))


@aten("linear")
def linear(ctx: Context, a: Sequence[Any]) -> Emit | None:
    w = ctx.weight(a[1])
    bias = _arg(a, 2, None)
    if w is None or len(w) != 2:
        return None
    if bias is not None:
        ctx.weight(bias)
    return Emit("linear", [ctx.ref(a[0])], trim({"out": w[0], "bias": bias is not None}, {"bias": True}))


@aten("batch_norm", "_native_batch_norm_legit_no_training")
def batch_norm(ctx: Context, a: Sequence[Any]) -> Emit | None:
    for p in a[1:5]:
        if p is not None:
            ctx.weight(p)
    return Emit("batchnorm", [ctx.ref(a[0])], trim({"affine": a[1] is not None}, {"affine": True}))


@aten("layer_norm")
def layer_norm(ctx: Context, a: Sequence[Any]) -> Emit | None:
    weight, bias = _arg(a, 2, None), _arg(a, 3, None)
    if (weight is None) != (bias is None):
        return None
    for p in (weight, bias):
        if p is not None:
            ctx.weight(p)
    attrs = {"dims": len(a[1]), "affine": weight is not None}
    return Emit("layernorm", [ctx.ref(a[0])], trim(attrs, {"dims": 1, "affine": True}))


def _unary(op: str) -> Handler:
    def handler(ctx: Context, a: Sequence[Any]) -> Emit | None:
        return Emit(op, [ctx.ref(a[0])])

    return handler


for _name, _op in (("relu", "relu"), ("relu6", "relu6"), ("sigmoid", "sigmoid"), ("tanh", "tanh"),
                   ("silu", "silu"), ("hardswish", "hardswish"), ("hardsigmoid", "hardsigmoid"), ("mish", "mish")):
    aten(_name)(_unary(_op))


@aten("hardtanh")
def hardtanh(ctx: Context, a: Sequence[Any]) -> Emit | None:
    """ReLU6 is hardtanh(0, 6); other bounds have no explorer op."""
    if (float(_arg(a, 1, -1.0)), float(_arg(a, 2, 1.0))) != (0.0, 6.0):
        return None
    return Emit("relu6", [ctx.ref(a[0])])


@aten("leaky_relu")
def leaky_relu(ctx: Context, a: Sequence[Any]) -> Emit | None:
    slope = float(_arg(a, 1, 0.01))
    return Emit("leaky_relu", [ctx.ref(a[0])], trim({"negative_slope": slope}, {"negative_slope": 0.01}))


@aten("pixel_shuffle")
def pixel_shuffle(ctx: Context, a: Sequence[Any]) -> Emit | None:
    return Emit("pixel_shuffle", [ctx.ref(a[0])], {"factor": int(a[1])})


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@aten("pad", "constant_pad_nd")
def pad(ctx: Context, a: Sequence[Any]) -> Emit | None:
    """F.pad (aten.pad: input, pad, mode, value) and aten.constant_pad_nd (input, pad, value)."""
    constant_nd = not isinstance(_arg(a, 2, "constant"), str)
    mode = "constant" if constant_nd else str(_arg(a, 2, "constant"))
    value = _arg(a, 2 if constant_nd else 3, None)
    if mode not in _PAD_MODES:
        return None
    attrs: dict[str, Any] = {"padding": [ctx.dim(p) for p in a[1]], "mode": mode,
                             "value": 0 if value is None else float(value)}
    return Emit("pad", [ctx.ref(a[0])], trim(attrs, {"mode": "constant", "value": 0}))


def _upsample(mode: str) -> Handler:
    """aten.upsample_*2d.vec (input, output_size, [align_corners,] scale_factors): a scale when both
    factors agree, else the traced output size."""
    def handler(ctx: Context, a: Sequence[Any]) -> Emit | None:
        scales = a[-1]
        if isinstance(scales, (list, tuple)) and len(scales) == 2 and scales[0] == scales[1]:
            factor = float(scales[0])
            attrs: dict[str, Any] = {"scale": int(factor) if factor.is_integer() else factor}
        else:
            size = [ctx.dim(v) for v in ctx.out()[2:]]
            attrs = {"size": size[0] if size[0] == size[1] else size}
        attrs["mode"] = mode
        return Emit("upsample", [ctx.ref(a[0])], trim(attrs, {"mode": "nearest"}))

    return handler


aten("upsample_nearest2d")(_upsample("nearest"))
aten("upsample_bilinear2d")(_upsample("bilinear"))
aten("upsample_bicubic2d")(_upsample("bicubic"))


@aten("gelu")
def gelu(ctx: Context, a: Sequence[Any]) -> Emit | None:
    approximate = str(_arg(a, 1, "none"))
    return Emit("gelu", [ctx.ref(a[0])], trim({"approximate": approximate}, {"approximate": "none"}))


@aten("softmax", "_softmax")
def softmax(ctx: Context, a: Sequence[Any]) -> Emit | None:
    return Emit("softmax", [ctx.ref(a[0])], trim({"axis": int(a[1])}, {"axis": -1}))


@aten("dropout", "feature_dropout", "alpha_dropout")
def dropout(ctx: Context, a: Sequence[Any]) -> Emit | None:
    return Emit("dropout", [ctx.ref(a[0])])


@aten("contiguous", "clone", "alias", "detach", "lift_fresh_copy")
def alias(ctx: Context, a: Sequence[Any]) -> Emit | None:
    return ALIAS


def _binary(op: str, scalar_op: str | None) -> Handler:
    def handler(ctx: Context, a: Sequence[Any]) -> Emit | None:
        x, y = a[0], a[1]
        if len(a) > 2 and float(a[2]) != 1.0:  # add(x, y, alpha): alpha * y is not modelled
            return None
        if ctx.is_tensor(x) and ctx.is_tensor(y):
            first = ctx.ref(x, partner=y)
            return Emit(op, [first, ctx.ref(y, partner=x)])
        if scalar_op and ctx.is_tensor(x) and isinstance(y, (int, float)):
            return Emit(scalar_op, [ctx.ref(x)], {"value": y})
        return None

    return handler


aten("add")(_binary("add", None))
aten("sub")(_binary("sub", None))
aten("mul")(_binary("mul", "scale"))
aten("div")(_binary("div", None))


@aten("matmul", "bmm", "mm")
def matmul(ctx: Context, a: Sequence[Any]) -> Emit | None:
    if len(ctx.shape(a[0])) < 2 or len(ctx.shape(a[1])) < 2:
        return None
    return Emit("matmul", [ctx.ref(a[0]), ctx.ref(a[1])])


@aten("max_pool2d")
def max_pool2d(ctx: Context, a: Sequence[Any]) -> Emit | None:
    kernel = a[1]
    stride = _arg(a, 2, []) or kernel
    attrs = {"kernel": pair(kernel), "stride": pair(stride), "padding": pair(_arg(a, 3, 0)),
             "dilation": pair(_arg(a, 4, 1)), "ceil_mode": bool(_arg(a, 5, False))}
    return Emit("maxpool", [ctx.ref(a[0])], trim(attrs, {"padding": 0, "dilation": 1, "ceil_mode": False}))


@aten("avg_pool2d")
def avg_pool2d(ctx: Context, a: Sequence[Any]) -> Emit | None:
    kernel = a[1]
    stride = _arg(a, 2, []) or kernel
    if _arg(a, 6, None) is not None:  # divisor_override
        return None
    attrs = {"kernel": pair(kernel), "stride": pair(stride), "padding": pair(_arg(a, 3, 0)),
             "ceil_mode": bool(_arg(a, 4, False))}
    return Emit("avgpool", [ctx.ref(a[0])], trim(attrs, {"padding": 0, "ceil_mode": False}))


def _adaptive(op: str) -> Handler:
    def handler(ctx: Context, a: Sequence[Any]) -> Emit | None:
        return Emit(op, [ctx.ref(a[0])], trim({"size": pair([int(v) for v in a[1]])}, {"size": 1}))

    return handler


aten("adaptive_avg_pool2d")(_adaptive("adaptive_avgpool"))
aten("adaptive_max_pool2d")(_adaptive("adaptive_maxpool"))


@aten("mean")
def mean(ctx: Context, a: Sequence[Any]) -> Emit | None:
    if len(a) < 2 or a[1] is None:
        return None
    axes = [int(v) for v in a[1]]
    attrs = {"axes": axes[0] if len(axes) == 1 else axes, "keepdim": bool(_arg(a, 2, False))}
    return Emit("mean", [ctx.ref(a[0])], trim(attrs, {"keepdim": False}))


@aten("flatten")
def flatten(ctx: Context, a: Sequence[Any]) -> Emit | None:
    attrs = {"start": int(_arg(a, 1, 0)), "end": int(_arg(a, 2, -1))}
    return Emit("flatten", [ctx.ref(a[0])], trim(attrs, {"start": 1, "end": -1}))


@aten("cat", "concat")
def cat(ctx: Context, a: Sequence[Any]) -> Emit | None:
    tensors = list(a[0])
    if len(tensors) == 1:  # torch.cat([x]) copies x: no arithmetic, the layer is x
        return Emit("identity", [ctx.ref(tensors[0])])
    if len(tensors) > 64:
        return None
    return Emit("concat", [ctx.ref(t) for t in tensors], trim({"axis": int(_arg(a, 1, 0))}, {"axis": 1}))


@aten("permute")
def permute(ctx: Context, a: Sequence[Any]) -> Emit | None:
    rank = len(ctx.shape(a[0]))
    return Emit("permute", [ctx.ref(a[0])], {"dims": [int(d) % rank for d in a[1]]})


@aten("transpose")
def transpose(ctx: Context, a: Sequence[Any]) -> Emit | None:
    return Emit("transpose", [ctx.ref(a[0])], {"dim0": int(a[1]), "dim1": int(a[2])})


@aten("t")
def t(ctx: Context, a: Sequence[Any]) -> Emit | None:
    return Emit("transpose", [ctx.ref(a[0])], {"dim0": 0, "dim1": -1}) if len(ctx.shape(a[0])) == 2 else None


@aten("select")
def select(ctx: Context, a: Sequence[Any]) -> Emit | None:
    size = ctx.shape(a[0])[int(a[1])]
    index = int(a[2])
    if index < 0:
        return None if not isinstance(size, int) else Emit("select", [ctx.ref(a[0])],
                                                           {"axis": int(a[1]), "index": size + index})
    return Emit("select", [ctx.ref(a[0])], {"axis": int(a[1]), "index": index})


@aten("slice")
def slice_(ctx: Context, a: Sequence[Any]) -> Emit | None:
    """A full slice (``x[:, 0]`` writes one) is the tensor itself; a step other than 1 is not modelled."""
    axis, start, end, step = int(_arg(a, 1, 0)), _arg(a, 2, None), _arg(a, 3, None), int(_arg(a, 4, 1))
    size = ctx.shape(a[0])[axis]
    start = 0 if start is None else start
    if step != 1 or not isinstance(start, int) or start < 0:
        return None
    if start == 0 and (end is None or (isinstance(end, int) and isinstance(size, int) and end >= size)
                       or (isinstance(end, int) and end >= 2**62)):
        return ALIAS
    return Emit("slice", [ctx.ref(a[0])], {"axis": axis, "start": start,
                                           "end": _end(ctx, start, ctx.out()[axis])})


def _end(ctx: Context, start: int, length: Any) -> Dim:
    width = ctx.dim(length)
    return start + width if isinstance(width, int) else f"{start} + {width}"


@aten("expand")
def expand(ctx: Context, a: Sequence[Any]) -> Emit | None:
    shape = ctx.shape(a[0])
    target = list(a[1])
    if len(target) != len(shape):
        return None
    dims = [ctx.dim(shape[i]) if _is_minus_one(d) else ctx.dim(d) for i, d in enumerate(target)]
    return Emit("expand", [ctx.ref(a[0])], {"shape": dims})


@aten("reshape", "view", "_unsafe_view", "unsqueeze", "squeeze", "unflatten")
def reshape(ctx: Context, a: Sequence[Any]) -> Emit | None:
    """A view: ``flatten`` when it merges neighbouring dims, else ``reshape`` to the traced sizes
    (symbolic where torch kept them symbolic, so the target follows batch and resolution)."""
    src, out = [ctx.dim(d) for d in ctx.shape(a[0])], [ctx.dim(d) for d in ctx.out()]
    merged = merged_range(src, out)
    if merged is not None:
        start, end = merged
        return Emit("flatten", [ctx.ref(a[0])], trim({"start": start, "end": end}, {"start": 1, "end": -1}))
    return Emit("reshape", [ctx.ref(a[0])], {"shape": out})


def merged_range(src: list[Dim], out: list[Dim]) -> tuple[int, int] | None:
    """(start, end) when ``out`` is ``src`` with dims start..end merged into one, else None."""
    merged = len(src) - len(out) + 1
    if merged < 2:
        return None
    for start in range(len(out)):
        end = start + merged - 1
        if src[:start] == out[:start] and src[end + 1:] == out[start + 1:]:
            return start, end - len(src) if end == len(src) - 1 else end
    return None


def _is_minus_one(value: Any) -> bool:
    return isinstance(value, int) and value == -1


def trim(attrs: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The attributes without those at explorer's default (shorter specs)."""
    return {k: v for k, v in attrs.items() if k not in defaults or defaults[k] != v}
