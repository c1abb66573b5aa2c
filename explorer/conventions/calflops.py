"""calflops ``calculate_flops(model, args=[x])``: patched torch.nn.functional calls, FLOPs and MACs.

Source: calflops/pytorch_ops.py ``_patch_functionals`` and ``_patch_tensor_methods`` (lines 452-525),
``_conv_flops_compute`` (83-125), ``_conv_trans_flops_compute`` (128-171), ``_linear_flops_compute``
(37-40), ``_batch_norm_flops_compute`` (174-189), ``_layer_norm/_group_norm_flops_compute``
(192-226), the activation and pooling computes (43-80), ``_upsample_flops_compute`` (229-251),
``_softmax_flops_compute`` (254-255). The count is calflops' first return value, FLOPs; its MACs
(the second) are reported beside it. Module classes do not matter, only the functionals they call:
nn.ReLU6 calls F.hardtanh, which is not patched. Python operators are not patched.
"""

from __future__ import annotations

import math
from typing import Any

from explorer.conventions.base import (
    CONVS,
    LLM,
    Convention,
    Ctx,
    Formula,
    Rule,
    View,
    not_modelled,
    zeros,
)


def _conv_out(v: View) -> int:
    """The output positions calflops recomputes from the arguments ('same' pads d·(k-1)//2 each side),
    over every spatial dim (_conv_flops_compute serves F.conv1d, F.conv2d and F.conv3d)."""
    kernel, stride, dilation = v.dims("kernel"), v.dims("stride", 1), v.dims("dilation", 1)
    pad = v.a("padding")
    if pad == "same":
        pads: tuple[Any, ...] = tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))
    elif pad == "valid":
        pads = (0,) * len(kernel)
    else:
        pads = v.dims("padding", 0)
    return math.prod((i + 2 * p - (d * (k - 1) + 1)) // s + 1
                     for i, k, s, p, d in zip(v.x[2:], kernel, stride, pads, dilation))


def _conv_macs(v: View, c: Ctx) -> int:
    return v.kernel * v.x[1] * (v.y[1] // v.groups) * v.x[0] * _conv_out(v)


def _conv_flops(v: View, c: Ctx) -> int:
    return 2 * _conv_macs(v, c) + (v.y[1] * v.x[0] * _conv_out(v) if v.bias else 0)


def _convt_macs(v: View, c: Ctx) -> int:
    """weight.shape[1] is Cout/g, divided by g again: (Cout/g)//g filters per channel, per input pixel."""
    return v.kernel * v.x[1] * ((v.y[1] // v.groups) // v.groups) * v.x[0] * math.prod(v.x[2:])


def _convt_flops(v: View, c: Ctx) -> int:
    positions = _conv_out(v)  # the forward-conv formula, as calflops uses it for the bias
    return 2 * _convt_macs(v, c) + ((v.y[1] // v.groups) * v.x[0] * positions if v.bias else 0)


def _upsample(v: View, c: Ctx) -> int:
    """F.interpolate: with a size, prod(size) (no N·C); with a scale, numel(x) (the product is dropped)."""
    size = v.a("size")
    if size is not None:
        return math.prod(size) if isinstance(size, tuple) else int(size)
    return v.numel_x


def _norm(affine: int, plain: int) -> Formula:
    return lambda v, c: v.numel_x * (affine if v.affine else plain)


_ONE = "counts {} as 1 per element"

FLOPS = {
    **{op: Rule(_conv_flops, "counts a conv as 2 FLOPs per MAC plus the bias (no minus-one)") for op in CONVS},
    "conv_transpose2d": Rule(_convt_flops, "counts a transposed conv as 2 × (MACs / g) plus a bias term"),
    "linear": Rule(lambda v, c: 2 * v.numel_x * v.y[-1], "counts a Linear as 2 FLOPs per MAC, bias ignored"),
    "matmul": Rule(lambda v, c: 0, "does not see a @ b (the operator is not patched)"),
    "attention": Rule(lambda v, c: 0, "does not see the fused attention path (no patched functional runs)"),
    "batchnorm": Rule(_norm(2, 1), "counts BatchNorm as 2 per element (1 without affine)"),
    "layernorm": Rule(_norm(5, 4), "counts LayerNorm as 5 per element (4 without affine)"),
    "groupnorm": Rule(_norm(5, 4), "counts GroupNorm as 5 per element (4 without affine)"),
    **{op: Rule(lambda v, c: v.numel_x, _ONE.format(name)) for op, name in
       (("relu", "ReLU"), ("leaky_relu", "LeakyReLU"), ("silu", "SiLU"), ("gelu", "GELU"), ("softmax", "Softmax"))},
    "relu6": Rule(lambda v, c: 0, "does not count ReLU6 (nn.ReLU6 calls F.hardtanh, not patched)"),
    **zeros(("sigmoid", "tanh", "hardsigmoid", "hardswish", "mish"), "does not count this activation (not patched)"),
    **{op: Rule(lambda v, c: v.numel_x, "counts pooling as 1 per input element")
       for op in ("maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool")},
    "upsample": Rule(_upsample, "counts upsampling as prod(size) or numel(x) (no per-output count)"),
    **zeros(("add", "mul", "sub", "div", "scale"), "does not see +, *, -, / (Python operators are not patched)"),
    "embedding": Rule(lambda v, c: 0, "does not count Embedding (patched to 0)"),
    **zeros(("mean", "concat", "channel_shuffle", "parameter", "constant", "pad", "pixel_shuffle"),
            "does not count it (not patched)"),
    **zeros(("identity", "dropout", "flatten", "reshape", "permute", "transpose", "expand", "select", "slice",
             "split", "chunk", "crop", "opaque"), "views and no-ops: nothing to count"),
    **not_modelled(LLM, "calflops"),
}

MACS = {
    **{op: Rule(lambda v, c: 0, "MACs only for conv, linear, matmul") for op in FLOPS},
    **{op: Rule(_conv_macs, "conv MACs") for op in CONVS},
    "conv_transpose2d": Rule(_convt_macs, "transposed-conv MACs divided by g"),
    "linear": Rule(lambda v, c: v.numel_x * v.y[-1], "Linear MACs"),
    **not_modelled(LLM, "calflops"),
}

CONVENTION = Convention(
    name="calflops", tool="calflops.calculate_flops(model, args=[x])[0] (FLOPs; MACs beside it)", version="0.3.2",
    source="calflops/pytorch_ops.py: _patch_functionals, _conv_flops_compute, _linear_flops_compute, "
           "_batch_norm_flops_compute, _pool_flops_compute, _upsample_flops_compute",
    unit="FLOPs", ours="flops", table=FLOPS, extra={"MACs": MACS},
    summary="2 x MACs plus conv biases; 1 per element for ReLU/GELU/pools/BN (2 affine); ReLU6 0",
)
