"""Convolutions. MACs exclude bias; FLOPs count every multiply and add (docs/ops.md)."""

from __future__ import annotations

import sympy

from explorer.errors import SpecError
from explorer.ops.base import REQUIRED, Attr, Cost, OpCall, OpResult, fmt_shape, numel, op, pair

_CONV_ATTRS = {
    "out": Attr(REQUIRED, doc="output channels", check="pos_int"),
    "in": Attr(None, doc="input channels, checked against the input (optional)", check="pos_int"),
    "kernel": Attr(REQUIRED, "exprs", doc="kernel size, k or one per spatial dim ([kh, kw])", check="pos_int"),
    "stride": Attr(1, "exprs", check="pos_int"),
    "padding": Attr(0, "exprs", choices=("same", "valid"), doc="int, one per spatial dim, 'same' or 'valid'",
                    check="nonneg_int"),
    "dilation": Attr(1, "exprs", check="pos_int"),
    "groups": Attr(1, check="pos_int"),
    "bias": Attr(True, "bool"),
}


def conv_out(size: sympy.Expr, k: sympy.Expr, s: sympy.Expr, p: sympy.Expr, d: sympy.Expr) -> sympy.Expr:
    """torch.nn.Conv2d: floor((H + 2p - d(k-1) - 1)/s) + 1."""
    return sympy.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1


def _check_groups(call: OpCall, cin: sympy.Expr, cout: sympy.Expr, g: sympy.Expr) -> None:
    if call["in"] is not None and call.check(call["in"], cin) is False:
        raise SpecError(f"{call.op} expects {call['in']} input channels, but its input is {fmt_shape(call.x)}")
    for name, c in (("input", cin), ("output", cout)):
        if g != 1 and call.check(sympy.Mod(c, g), sympy.Integer(0)) is False:
            raise SpecError(f"groups={g} does not divide the {name} channels {c}")


def dense_flops(macs: sympy.Expr, outputs: sympy.Expr, bias: bool) -> sympy.Expr:
    """A dot product of n terms is n multiplies and n-1 adds; a bias turns the -1 into +0."""
    return 2 * macs if bias else 2 * macs - outputs


def per_dim(value: object, d: int, what: str) -> tuple[sympy.Expr, ...]:
    """An int-or-list attribute (kernel, stride...) as one value per spatial dim."""
    if isinstance(value, tuple):
        if len(value) != d:
            raise SpecError(f"{what}: expected one value or one per spatial dim ({d}), got {len(value)}")
        return value
    return (value,) * d


def _conv(call: OpCall, d: int) -> OpResult:
    """A d-D convolution on [N, C, *spatial] (conv1d, conv2d, conv3d share it)."""
    call.require_rank(d + 2)
    n, cin, *sizes = call.x
    cout, g, bias = call["out"], call["groups"], call["bias"]
    kernel, stride, dilation = (per_dim(call[k], d, k) for k in ("kernel", "stride", "dilation"))
    padding = call["padding"]
    if padding == "same":
        if any(s != 1 for s in stride):
            raise SpecError("padding 'same' needs stride 1 (as in torch)")
        out = tuple(sizes)
    else:
        pads = (0,) * d if padding == "valid" else per_dim(padding, d, "padding")
        out = tuple(conv_out(*a) for a in zip(sizes, kernel, stride, pads, dilation))
    _check_groups(call, cin, cout, g)
    per_output = cin / g * numel(kernel)
    outputs = n * cout * numel(out)
    macs = outputs * per_output
    params = cout * per_output + (cout if bias else 0)
    return OpResult([(n, cout, *out)], Cost(params=params, macs=macs, flops=dense_flops(macs, outputs, bias)))


@op("conv1d", "conv", _CONV_ATTRS)
def conv1d(call: OpCall) -> OpResult:
    """1-D convolution on [N, C, L] (audio, sequences)."""
    return _conv(call, 1)


@op("conv2d", "conv", _CONV_ATTRS)
def conv2d(call: OpCall) -> OpResult:
    """2-D convolution on [N, C, H, W]."""
    return _conv(call, 2)


@op("conv3d", "conv", _CONV_ATTRS)
def conv3d(call: OpCall) -> OpResult:
    """3-D convolution on [N, C, D, H, W] (video, volumes)."""
    return _conv(call, 3)


@op("conv_transpose2d", "conv", {**_CONV_ATTRS, "output_padding": Attr(0, "exprs", check="nonneg_int"),
                                 "padding": Attr(0, "exprs", check="nonneg_int")})
def conv_transpose2d(call: OpCall) -> OpResult:
    """Transposed 2-D convolution: each input element scatters into Co/g x kh x kw outputs."""
    call.require_rank(4)
    n, cin, h, w = call.x
    cout, g, bias = call["out"], call["groups"], call["bias"]
    (kh, kw), (sh, sw) = pair(call["kernel"]), pair(call["stride"])
    (ph, pw), (dh, dw), (oph, opw) = pair(call["padding"]), pair(call["dilation"]), pair(call["output_padding"])
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    _check_groups(call, cin, cout, g)
    macs = n * cin * h * w * (cout / g) * kh * kw
    # Outputs that receive at least one product (all of them when stride <= kernel): adds = macs - those.
    outputs = n * cout * sympy.Min(ho, h * kh) * sympy.Min(wo, w * kw)
    params = cin * cout / g * kh * kw + (cout if bias else 0)
    return OpResult([(n, cout, ho, wo)], Cost(params=params, macs=macs, flops=dense_flops(macs, outputs, bias)))


