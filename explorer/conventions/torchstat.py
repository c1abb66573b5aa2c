"""torchstat ``stat(model, (C, H, W))``: two numbers per leaf module, ``Flops`` and ``MAdd``.

Source: torchstat/compute_flops.py (``compute_Conv2d_flops`` 25-47, ``compute_BatchNorm2d_flops``
50-57, ``compute_ReLU_flops`` 60-68, ``compute_Pool2d_flops`` 71-74, ``compute_Linear_flops`` 77-81,
``compute_Upsample_flops`` 83-91) and torchstat/compute_madd.py (``compute_*_madd``); the leaf
modules are patched in torchstat/model_hook.py ``ModelHook._sub_module_call_hook``.

``Flops`` (the count here) is MAC-like and covers the whole batch; ``MAdd`` (multiply + add, the
minus-one rule, reported beside it) is per sample. ``stat()`` itself always feeds batch 1.
A module called several times keeps only its last call (its buffers are overwritten); a Linear on
an input that is not 2-D raises AssertionError, so torchstat has no number for such a model.
"""

from __future__ import annotations

import math

from explorer.conventions.base import (
    LLM,
    Convention,
    Ctx,
    Rule,
    View,
    last_call_only,
    not_modelled,
    zeros,
)

_UNSUPPORTED = "does not count it (prints 'not supported')"
_LAST = "; a module called several times keeps only its last call"


def _linear_flops(v: View, c: Ctx) -> int:
    if len(v.x) != 2:
        return c.fail(f"a Linear on a {len(v.x)}-D input raises AssertionError in compute_Linear_flops", v.path)
    return v.x[0] * v.x[1] * v.y[1]


def _bn_flops(v: View, c: Ctx) -> int:
    """compute_BatchNorm2d_flops: numel(x), x2 when affine; BatchNorm2d only (a 4-D input)."""
    return v.numel_x * (2 if v.affine else 1) if len(v.x) == 4 else 0


def _bn_madd(v: View, c: Ctx) -> int:
    """compute_BatchNorm2d_madd: 4·C·H·W (sub mean, div std, mul, add), per sample."""
    return 4 * math.prod(v.x[1:]) if len(v.x) == 4 else 0


FLOPS = {
    "conv2d": Rule(lambda v, c: v.conv_macs + (v.numel_y if v.bias else 0), "counts conv MACs plus the bias"),
    **zeros(("conv1d", "conv3d"), "does not count Conv1d or Conv3d (only nn.Conv2d is supported)"),
    "conv_transpose2d": Rule(lambda v, c: 0, "does not count transposed convs (not supported)"),
    "linear": Rule(_linear_flops, "counts Linear MACs, bias ignored (2-D input only)"),
    "batchnorm": Rule(_bn_flops, "counts BatchNorm as 2 per element (1 without affine)"),
    "relu": Rule(lambda v, c: v.numel_x, "counts ReLU as 1 per element" + _LAST),
    "relu6": Rule(lambda v, c: v.numel_x, "counts ReLU6 as 1 per element" + _LAST),
    "leaky_relu": Rule(lambda v, c: v.numel_x, "counts LeakyReLU as 1 per element" + _LAST),
    "maxpool": Rule(lambda v, c: v.numel_x, "counts max pooling as 1 per input element"),
    "avgpool": Rule(lambda v, c: v.numel_x, "counts average pooling as 1 per input element"),
    "upsample": Rule(lambda v, c: v.x[0] * math.prod(v.y[2:]), "counts upsampling as N·Ho·Wo (channels dropped)"),
    "attention": Rule(lambda v, c: 0, "does not see nn.MultiheadAttention (not a leaf module)"),
    **zeros(("matmul", "add", "mul", "sub", "div", "scale", "mean"), "does not see tensor arithmetic (no module)"),
    **zeros(("layernorm", "groupnorm", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "gelu", "mish", "softmax",
             "pad", "pixel_shuffle",
             "adaptive_avgpool", "adaptive_maxpool", "embedding", "identity", "dropout", "flatten"), _UNSUPPORTED),
    **zeros(("concat", "channel_shuffle", "parameter", "constant", "reshape", "permute", "transpose", "expand", "select",
             "slice", "split", "chunk", "crop", "opaque"), "copies and views: nothing to count"),
    **not_modelled(LLM, "torchstat"),
}


def _conv_madd(v: View, c: Ctx) -> int:
    """(2·kh·kw·Cin/g - 1 + bias) per output element of one sample."""
    return (2 * v.kernel * (v.x[1] // v.groups) - 1 + (1 if v.bias else 0)) * math.prod(v.y[1:])


def _convt_madd(v: View, c: Ctx) -> int:
    """Same per element, over the *input* pixels: Cout·Hi·Wi."""
    return (2 * v.kernel * (v.x[1] // v.groups) - 1 + (1 if v.bias else 0)) * v.y[1] * math.prod(v.x[2:])


MADD = {
    **FLOPS,
    "conv2d": Rule(_conv_madd, "counts conv as 2·K - 1 (+1 with bias) per output element, per sample"),
    **zeros(("conv1d", "conv3d"), "does not count Conv1d or Conv3d (only nn.Conv2d is supported)"),
    "conv_transpose2d": Rule(_convt_madd, "counts a transposed conv per input pixel, per sample"),
    "linear": Rule(lambda v, c: v.y[-1] * (2 * v.x[-1] - 1), "counts Linear as 2I - 1 per output, per sample"),
    "batchnorm": Rule(_bn_madd, "counts BatchNorm as 4 per element, per sample"),
    "relu": Rule(lambda v, c: math.prod(v.x[1:]), "counts ReLU as 1 per element, per sample" + _LAST),
    "relu6": Rule(lambda v, c: math.prod(v.x[1:]), "counts ReLU6 as 1 per element, per sample" + _LAST),
    "leaky_relu": Rule(lambda v, c: 0, "does not count LeakyReLU's MAdd (not supported)"),
    "maxpool": Rule(lambda v, c: (v.kernel - 1) * math.prod(v.y[1:]), "counts kh·kw - 1 per output, per sample"),
    "avgpool": Rule(lambda v, c: v.kernel * math.prod(v.y[1:]), "counts kh·kw per output, per sample"),
    "softmax": Rule(lambda v, c: 3 * math.prod(v.x[1:]) - 1, "counts Softmax as 3n - 1 over a whole sample"),
    "upsample": Rule(lambda v, c: 0, "does not count upsampling's MAdd (not supported)"),
    **not_modelled(LLM, "torchstat"),
}


CONVENTION = Convention(
    name="torchstat", tool="torchstat.stat(model, (C, H, W)): total Flops (MAdd beside it)", version="0.0.7",
    source="torchstat/compute_flops.py: compute_*_flops; torchstat/compute_madd.py: compute_*_madd; "
           "torchstat/model_hook.py: ModelHook",
    unit="Flops", ours="macs", table=last_call_only(FLOPS), extra={"MAdd": last_call_only(MADD)},
    sees_functional=False,
    summary="Flops: conv MACs plus bias, Linear MACs, 1 per element for BN/ReLU/pools; MAdd per sample",
)
