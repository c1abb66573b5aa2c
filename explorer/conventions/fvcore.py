"""fvcore ``FlopCountAnalysis(model, x).total()``: one "flop" per MAC, from a jit trace.

Source: fvcore/nn/flop_count.py ``_DEFAULT_SUPPORTED_OPS`` (lines 26-44) and fvcore/nn/jit_handles.py:
``conv_flop_jit`` (127-171), ``linear_flop_jit`` (99-110), ``matmul_flop_jit`` (217-227),
``batchnorm_flop_jit`` (251-258), ``norm_flop_counter`` (230-248), ``elementwise_flop_counter`` (261-279).
Ops in ``_IGNORED_OPS`` (fvcore/nn/jit_analysis.py 28-87) count 0 silently; any other op without a
handle counts 0 and is listed by ``unsupported_ops()``. ``key`` is the ``by_operator()`` name.
Eval mode (the refs' setup): BatchNorm counts 1 per element, 2 when affine.
"""

from __future__ import annotations

from explorer.conventions.base import (
    CONVS,
    LLM,
    Convention,
    Ctx,
    Formula,
    Rule,
    View,
    not_modelled,
    per_element,
    zeros,
)

_UNSUPPORTED = "does not count it (no handle: listed by unsupported_ops())"


def _upsample_key(v: View) -> str | None:
    """upsample_nearest2d and upsample_bilinear2d have handles; aten::upsample_bicubic2d has none."""
    return {"bilinear": "upsample_bilinear2d", "nearest": "upsample_nearest2d"}.get(str(v.a("mode")))


def _norm(affine: int, plain: int) -> Formula:
    return lambda v, c: v.numel_x * (affine if v.affine else plain)


def _conv(v: View, c: Ctx) -> int:
    """A string padding traces as aten::_convolution_mode, which has no handle."""
    return 0 if v.a("padding") in ("same", "valid") else v.conv_macs


TABLE = {
    **{op: Rule(_conv, "counts conv MACs, bias ignored; 0 for padding='same'/'valid' "
                "(aten::_convolution_mode has no handle)", "conv") for op in CONVS},
    "conv_transpose2d": Rule(lambda v, c: v.convt_macs, "counts transposed-conv MACs, bias ignored", "conv"),
    "linear": Rule(lambda v, c: v.numel_x * v.y[-1], "counts Linear MACs, bias ignored", "linear"),
    "matmul": Rule(lambda v, c: v.numel_x * v.y[-1], "counts a matmul as prod(a)·b[-1]", "matmul"),
    "attention": Rule(lambda v, c: 0, "does not see the fused attention path "
                      "(aten::_native_multi_head_attention has no handle)"),
    "batchnorm": Rule(_norm(2, 1), "counts BatchNorm as 2 ops per element (1 without affine)", "batch_norm"),
    "layernorm": Rule(_norm(5, 4), "counts LayerNorm as 5 ops per element (4 without affine)", "layer_norm"),
    "groupnorm": Rule(_norm(5, 4), "counts GroupNorm as 5 ops per element (4 without affine)", "group_norm"),
    "adaptive_avgpool": per_element(1, "counts adaptive average pooling as 1 per input element",
                                    key="adaptive_avg_pool2d"),
    "upsample": Rule(lambda v, c: v.numel_y * {"nearest": 1, "bilinear": 4}.get(str(v.a("mode")), 0),
                     "counts upsampling as 1 per output element (4 bilinear; bicubic has no handle: 0)",
                     _upsample_key),
    "relu": Rule(lambda v, c: 0, "does not count ReLU (aten::relu is in _IGNORED_OPS)"),
    **zeros(("relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "gelu", "mish", "softmax"),
            "does not count activations (no handle: unsupported_ops())"),
    **zeros(("maxpool", "avgpool", "adaptive_maxpool", "mean"), "does not count this pooling (no handle)"),
    **zeros(("add", "mul", "sub", "div", "scale"), "does not count element-wise arithmetic (aten::add/mul: no handle)"),
    "embedding": Rule(lambda v, c: 0, _UNSUPPORTED),
    **zeros(("concat", "channel_shuffle", "parameter", "constant", "pad", "pixel_shuffle", "identity", "dropout", "flatten", "reshape", "permute",
             "transpose", "expand", "select", "slice", "split", "chunk", "crop", "opaque"),
            "copies, views and no-ops: nothing to count (_IGNORED_OPS)"),
    **not_modelled(LLM, "fvcore"),
}

CONVENTION = Convention(
    name="fvcore", tool="fvcore.nn.FlopCountAnalysis(model, x).total()", version="0.1.5.post20221221",
    source="fvcore/nn/jit_handles.py: conv_flop_jit, linear_flop_jit, matmul_flop_jit, batchnorm_flop_jit, "
           "norm_flop_counter, elementwise_flop_counter",
    unit="flops (= MACs)", ours="macs", table=TABLE,
    summary="MACs of conv, linear and matmul; norms and adaptive pooling per element; activations 0",
)
