"""thop ``profile(model, inputs=(x,))[0]``: forward hooks on exact module types, a MAC-style count.

Source: thop/profile.py ``register_hooks`` (lines 21-66; unregistered types and functional calls
count 0, subclasses are not matched), thop/vision/basic_hooks.py ``count_convNd``,
``count_normalization``, ``count_linear``, ``count_softmax``, ``count_avgpool``,
``count_adap_avgpool``, ``count_upsample`` and thop/vision/calc_func.py. thop sums float64 and
returns a float; every count here is an integer below 2**53, so the float is exact.
"""

from __future__ import annotations

from explorer.conventions.base import (
    CONVS,
    LLM,
    Convention,
    Ctx,
    Rule,
    View,
    not_modelled,
    zeros,
)

_ZERO_OPS = "does not count it (registered as zero_ops)"
_NOT_REGISTERED = "does not count it (no hook registered for the module)"


def _adaptive_avg(v: View, c: Ctx) -> int:
    """count_adap_avgpool: int((prod(Hi/Ho, Wi/Wo) + 1) * numel(y)), kernel ratio in float64."""
    kernel = 1.0
    for i, o in zip(v.x[2:], v.y[2:]):
        kernel *= i / o
    return int((kernel + 1) * v.numel_y)


def _softmax(v: View, c: Ctx) -> int:
    """calculate_softmax: (numel / F) * (F exp + (F - 1) add + F div), F = x[dim]."""
    f = v.x[int(v.a("axis"))]
    return (v.numel_x // f) * (3 * f - 1)


_UPSAMPLE = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259}

TABLE = {
    **{op: Rule(lambda v, c: v.numel_y * (v.x[1] // v.groups) * v.kernel, "counts conv MACs, bias ignored "
                "(count_convNd)") for op in CONVS},
    "conv_transpose2d": Rule(lambda v, c: v.numel_y * (v.x[1] // v.groups) * v.kernel,
                             "counts a transposed conv like a conv on its (larger) output: "
                             "numel(y)·(Cin/g)·kh·kw"),
    "linear": Rule(lambda v, c: v.x[-1] * v.numel_y, "counts Linear MACs, bias ignored"),
    "matmul": Rule(lambda v, c: 0, "does not see a @ b (no module)"),
    "attention": Rule(lambda v, c: 0, "does not see the fused attention path "
                      "(nn.MultiheadAttention has no hook; out_proj is never called)"),
    "batchnorm": Rule(lambda v, c: 2 * v.numel_x * (2 if v.affine else 1),
                      "counts BatchNorm as 4 ops per element (2 without affine)"),
    "layernorm": Rule(lambda v, c: 2 * v.numel_x * (2 if v.affine else 1),
                      "counts LayerNorm as 4 ops per element (2 without affine)"),
    "groupnorm": Rule(lambda v, c: 0, _NOT_REGISTERED),
    "softmax": Rule(_softmax, "counts Softmax as 3F - 1 per row of F"),
    "avgpool": Rule(lambda v, c: v.numel_y, "counts average pooling as 1 per output element (kernel ignored)"),
    "adaptive_avgpool": Rule(_adaptive_avg, "counts adaptive average pooling as (Hi/Ho·Wi/Wo + 1) per output"),
    "upsample": Rule(lambda v, c: v.numel_y * _UPSAMPLE.get(str(v.a("mode")), 0),
                     "counts upsampling as 1 per output element (11 bilinear)"),
    **zeros(("relu", "relu6", "maxpool", "adaptive_maxpool", "dropout"), _ZERO_OPS),
    "leaky_relu": Rule(lambda v, c: 0, "does not count LeakyReLU (count_relu returns 0)"),
    **zeros(("sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "gelu", "mish", "embedding"), _NOT_REGISTERED),
    "pad": Rule(lambda v, c: 0, "does not count padding (nn.ZeroPad2d is zero_ops; other pads have no hook)"),
    "pixel_shuffle": Rule(lambda v, c: 0, "does not count nn.PixelShuffle (zero_ops)"),
    **zeros(("add", "mul", "sub", "div", "scale", "mean"), "does not see tensor arithmetic (no module)"),
    **zeros(("concat", "channel_shuffle", "parameter", "constant", "identity", "flatten", "reshape", "permute", "transpose",
             "expand", "select", "slice", "split", "chunk", "crop", "opaque"), "copies, views and no-ops: nothing to count"),
    **not_modelled(LLM, "thop"),
}

CONVENTION = Convention(
    name="thop", tool="thop.profile(model, inputs=(x,))[0]", version="0.1.1.post2209072238",
    source="thop/profile.py: register_hooks; thop/vision/basic_hooks.py: count_convNd, count_normalization, "
           "count_linear, count_softmax, count_avgpool, count_adap_avgpool, count_upsample",
    unit="MACs", ours="macs", table=TABLE, sees_functional=False, exact_types=True,
    summary="MACs of conv and linear (bias ignored); norms 4 per element; hooks on exact module types only",
)
