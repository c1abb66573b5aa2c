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
Layers Keras builds from several TF ops (LayerNormalization, GroupNormalization, MultiHeadAttention,
GELU, SiLU, hard_swish, hard_sigmoid) count their nodes, as measured on two Keras twins of test specs
(tests/data/keras_counts.json, "twins"); settings no twin measured (a causal mask, norms without
affine parameters, grouped transposed convs) give no total rather than a guess.
"""

from __future__ import annotations

import math
from fractions import Fraction

from explorer.conventions.base import LLM, Convention, Ctx, Rule, View, not_modelled, per_element, zeros


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


def _layernorm(v: View, c: Ctx) -> int:
    """LayerNormalization: Mean, SquaredDifference (2), Mean, and 6 ops over the tensor (9·numel), plus
    AddV2(eps), Rsqrt (2) and Neg on the R = numel / D row statistics (4·R)."""
    if not v.affine:
        return _unverified(v, c)
    return 9 * v.numel_x + 4 * (v.numel_x // math.prod(v.x[-int(v.a("dims")):]))


def _groupnorm(v: View, c: Ctx) -> int:
    """GroupNormalization: the same moments (4·numel) and 2 more ops over the tensor, 4 per (sample,
    group), 3 per (sample, channel)."""
    if not v.affine:
        return _unverified(v, c)
    return 6 * v.numel_x + 4 * v.n * int(v.a("groups")) + 3 * v.n * v.x[1]


def _conv_transpose(v: View, c: Ctx) -> Fraction | int:
    """Conv2DBackpropInput: 2·numel(y)·numel(kernel) / (Cout·sh·sw) = 2·numel(y)·kh·kw·Cin / (sh·sw)."""
    if v.groups != 1:
        return _unverified(v, c)
    sh, sw = v.pair("stride", 1)
    value = Fraction(2 * v.numel_y * v.kernel * v.x[1], int(sh) * int(sw)) + (v.numel_y if v.bias else 0)
    return int(value) if value.denominator == 1 else value  # a float in TF when strides do not divide


def _attention(v: View, c: Ctx) -> int:
    """Keras MultiHeadAttention(num_heads=H, key_dim=d): four projections on BatchMatMulV2 (2·K per output)
    with their bias adds, the scores and the context on Einsum (no registration: 0), the 1/sqrt(d) Mul
    and the Softmax (5) per score."""
    if v.a("causal"):
        return _unverified(v, c)
    q, kv = v.ins[0], v.ins[-1]
    n, length, seq = q[0], q[1], kv[1]
    heads = int(v.a("heads"))
    inner = heads * int(v.a("head_dim") or q[-1] // heads)
    b = 1 if v.bias else 0
    proj = 2 * n * length * q[-1] * inner + 4 * n * seq * kv[-1] * inner + b * n * (length + 2 * seq) * inner
    scores = n * heads * length * seq
    return proj + 6 * scores + 2 * n * length * inner * v.y[-1] + b * v.numel_y


def _unverified(v: View, c: Ctx) -> int:
    return c.fail(f"no verified tf-profiler rule for '{v.op}' with these attributes", v.path)


_GELU = {"none": 4, "tanh": 7}  # Mul, Neg, Mul, Erfc (0), Mul / Mul, Pow, Mul, AddV2, Mul, Tanh (0), AddV2, Mul


_UNREGISTERED = "counts 0: the TF op has no flops registration"

TABLE = {
    "conv2d": Rule(_conv, "counts Conv2D/DepthwiseConv2dNative as 2 FLOPs per MAC, plus 1 per output for "
                   "BiasAdd"),
    **not_modelled(("conv1d", "conv3d", "mish"), "tf-profiler"),
    "conv_transpose2d": Rule(_conv_transpose, "counts Conv2DBackpropInput as 2·numel(y)·kh·kw·Cin/(sh·sw), "
                             "plus 1 per output for BiasAdd"),
    "linear": Rule(_dense, "counts Dense as MatMul 2·K per output, plus 1 per output for BiasAdd"),
    "matmul": Rule(lambda v, c: 2 * v.matmul_macs, "counts BatchMatMul as 2·K per output"),
    "attention": Rule(_attention, "counts MultiHeadAttention's projections (2·K per output, with bias adds), "
                      "the scale and the softmax (6 per score), but not its two Einsums"),
    "batchnorm": Rule(_batchnorm, "counts unfused inference BatchNormalization as 2 per element plus 6 per channel"),
    "layernorm": Rule(_layernorm, "counts LayerNormalization as 9 per element plus 4 per row"),
    "groupnorm": Rule(_groupnorm, "counts GroupNormalization as 6 per element plus 4 per group and 3 per "
                      "channel of each sample"),
    **{op: per_element(1, "counts an element-wise binary op as 1 per output element", of="y")
       for op in ("add", "sub", "mul", "div", "scale")},
    **{op: Rule(lambda v, c: v.kernel * v.numel_y, "counts pooling as kh·kw per output element")
       for op in ("maxpool", "avgpool")},
    "mean": Rule(_global_mean, "counts Mean as 1 per input element"),
    "adaptive_avgpool": Rule(lambda v, c: _global_mean(v, c) if math.prod(v.y[2:]) == 1 else _unverified(v, c),
                             "counts global average pooling (Mean) as 1 per input element"),
    "softmax": per_element(5, "counts Softmax as 5 per element"),
    "gelu": Rule(lambda v, c: _GELU[str(v.a("approximate"))] * v.numel_x,
                 "counts GELU's Mul/Neg/Pow/AddV2 nodes: 4 per element (7 with the tanh approximation)"),
    "silu": per_element(2, "counts SiLU as 2 per element (two Mul; Sigmoid has no registration)"),
    "hardswish": per_element(3, "counts hard_swish as 3 per element (AddV2, RealDiv, Mul; Relu6 is 0)"),
    "hardsigmoid": per_element(2, "counts hard_sigmoid as 2 per element (AddV2, RealDiv; Relu6 is 0)"),
    "upsample": Rule(lambda v, c: 2 if v.a("mode") == "nearest" else 0,
                     "counts UpSampling2D as 2 (nearest: two scalar Mul in ops.repeat) or 0 (ResizeBilinear)"),
    **zeros(("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "adaptive_maxpool", "embedding"), _UNREGISTERED),
    **zeros(("identity", "dropout", "flatten", "reshape", "permute", "transpose", "expand", "select", "slice",
             "split", "chunk", "crop", "opaque", "concat", "channel_shuffle", "parameter", "constant", "pad",
             "pixel_shuffle"),
            "copies, views and constants: no FLOPs registered"),
    **not_modelled(LLM, "tf-profiler"),
}


def _weights(v: View, c: Ctx) -> int:
    """Keras' trainable weights of the layer: kernels and biases, gamma and beta."""
    if v.op in ("conv2d", "conv_transpose2d", "linear"):
        return v.weight_numel + ((v.y[-1] if v.op == "linear" else v.y[1]) if v.bias else 0)
    if v.op == "embedding":
        return v.weight_numel
    if v.op in ("batchnorm", "groupnorm"):
        return 2 * v.x[1] if v.affine else 0
    if v.op == "layernorm":
        return 2 * math.prod(v.x[-int(v.a("dims")):]) if v.affine else 0
    if v.op == "attention":
        q, kv = v.ins[0], v.ins[-1]
        inner = int(v.a("heads")) * int(v.a("head_dim") or q[-1] // int(v.a("heads")))
        biases = 3 * inner + v.y[-1] if v.bias else 0
        return (q[-1] + 2 * kv[-1]) * inner + inner * v.y[-1] + biases
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
