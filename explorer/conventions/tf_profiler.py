"""TensorFlow's profiler on a frozen Keras graph: ``profile(graph, options=float_operation()).total_float_ops``.

Source: tensorflow/python/profiler/internal/flops_registry.py (``_unary_op_flops``, ``_rsqrt_flops``,
``_softmax_flops``, ``_binary_per_element_op_flops``, ``_reduction_op_flops``/``_mean_flops``,
``_pool_flops``, ``_calc_mat_mul_flops``, ``_calc_batch_mat_mul_flops``) and
tensorflow/python/ops/nn_ops.py (``_calc_conv_flops``, ``_calc_depthwise_conv_flops``,
``_calc_bias_add_flops``): each graph node's ``RegisterStatistics(type, "flops")`` function, summed;
a node type with no registration (Relu, Relu6, Pad, Reshape, Identity...) counts 0.

How a Keras 3 layer becomes graph nodes (tf.keras.applications models, ``training=False``, the
concrete function frozen with ``convert_variables_to_constants_v2``, no grappler rewrite):
Conv2D -> Conv2D (+ BiasAdd), DepthwiseConv2D -> DepthwiseConv2dNative, Dense -> MatMul + BiasAdd,
BatchNormalization -> ``tf.nn.batch_normalization`` unfused: AddV2(var, eps), Rsqrt (2 per element),
Mul(rsqrt, gamma), Mul(x, .), Mul(mean, .), Sub(beta, .), AddV2(x·., .), i.e. 2·numel(x) + 6·C;
GlobalAveragePooling2D -> Mean; the softmax activation -> Softmax (5 per element).
Layers Keras builds from several TF ops that no bundled model exercises (LayerNormalization,
MultiHeadAttention, GELU, ...) have no verified rule: the convention reports no total for them.
"""

from __future__ import annotations

import math

from explorer.conventions.base import Convention, Ctx, Rule, View, per_element, zeros


def _conv(v: View, c: Ctx) -> int:
    """Conv2D: 2·numel(y)·kh·kw·Cin_per_group (Depthwise: Cin_per_group = 1), + numel(y) for BiasAdd."""
    return 2 * v.conv_macs + (v.numel_y if v.bias else 0)


def _dense(v: View, c: Ctx) -> int:
    """MatMul: 2·K·numel(y); BiasAdd: numel(y)."""
    return 2 * v.x[-1] * v.numel_y + (v.numel_y if v.bias else 0)


def _batchnorm(v: View, c: Ctx) -> int:
    """tf.nn.batch_normalization, unfused: Mul and AddV2 over the tensor, 6·C on the channel vectors."""
    return 2 * v.numel_x + 6 * v.x[1]


def _global_mean(v: View, c: Ctx) -> int:
    """Mean (reduce 1, finalize 1): in·1 + out·(1 - 1) = numel(x)."""
    return v.numel_x


def _unverified(v: View, c: Ctx) -> int:
    return c.fail(f"no verified tf-profiler rule for '{v.op}' (Keras builds it from several TF ops)", v.path)


_UNREGISTERED = "counts 0: the TF op has no flops registration"
_UNVERIFIED = "has no verified rule (Keras composes it from several TF ops)"

TABLE = {
    "conv2d": Rule(_conv, "counts Conv2D/DepthwiseConv2dNative as 2 FLOPs per MAC, plus 1 per output for "
                   "BiasAdd"),
    "linear": Rule(_dense, "counts Dense as MatMul 2·K per output, plus 1 per output for BiasAdd"),
    "matmul": Rule(lambda v, c: 2 * v.matmul_macs, "counts BatchMatMul as 2·K per output"),
    "batchnorm": Rule(_batchnorm, "counts unfused inference BatchNormalization as 2 per element plus 6 per channel"),
    **{op: per_element(1, "counts an element-wise binary op as 1 per output element", of="y")
       for op in ("add", "sub", "mul", "div", "scale")},
    **{op: Rule(lambda v, c: v.kernel * v.numel_y, "counts pooling as kh·kw per output element")
       for op in ("maxpool", "avgpool")},
    "mean": Rule(_global_mean, "counts Mean as 1 per input element"),
    "adaptive_avgpool": Rule(_global_mean, "counts global average pooling (Mean) as 1 per input element"),
    "softmax": per_element(5, "counts Softmax as 5 per element"),
    **zeros(("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "upsample", "adaptive_maxpool", "embedding"),
            _UNREGISTERED),
    **{op: Rule(_unverified, _UNVERIFIED)
       for op in ("silu", "hardsigmoid", "hardswish", "gelu", "layernorm", "groupnorm", "attention",
                  "conv_transpose2d")},
    **zeros(("identity", "dropout", "flatten", "reshape", "permute", "transpose", "expand", "select", "slice",
             "split", "chunk", "crop", "concat", "channel_shuffle", "parameter"),
            "copies, views and constants: no FLOPs registered"),
}


def _weights(v: View, c: Ctx) -> int:
    if v.op in ("conv2d", "linear"):
        return v.weight_numel + ((v.y[1] if v.op == "conv2d" else v.y[-1]) if v.bias else 0)
    if v.op == "embedding":
        return v.weight_numel
    if v.op == "batchnorm":
        return 2 * v.x[1] if v.affine else 0
    if v.op == "layernorm":
        return 2 * math.prod(v.x[-int(v.a("dims")):]) if v.affine else 0
    return 0


TRAINABLE = {op: Rule(_weights, "trainable weights (kernels, biases, gamma and beta)") for op in TABLE}
TOTAL = {**TRAINABLE, "batchnorm": Rule(lambda v, c: _weights(v, c) + 2 * v.x[1],
                                        "BatchNormalization adds its non-trainable moving mean and variance")}

CONVENTION = Convention(
    name="tf-profiler",
    tool="tf.compat.v1.profiler.profile(frozen graph, options=ProfileOptionBuilder.float_operation())"
         ".total_float_ops", version="tensorflow 2.21.0 (Keras 3.15.1)",
    source="tensorflow/python/profiler/internal/flops_registry.py: _*_flops; tensorflow/python/ops/nn_ops.py: "
           "_calc_conv_flops, _calc_depthwise_conv_flops, _calc_bias_add_flops",
    unit="float_ops", ours="flops", table=TABLE,
    extra={"trainable params": TRAINABLE, "total params (Keras, with BN moving statistics)": TOTAL},
    summary="2 per MAC plus BiasAdd; unfused BN 2 per element + 6 per channel; Relu 0; Mean 1 per input; "
            "Softmax 5 per element",
)
