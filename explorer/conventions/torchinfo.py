"""torchinfo ``summary(model, input_size).total_mult_adds``: parameter counts times output size.

Source: torchinfo/layer_info.py ``LayerInfo.calculate_macs`` (lines 225-245) and
torchinfo/model_statistics.py ``ModelStatistics.__init__`` (31-33: only leaf layers,
``is_leaf_layer = not any(children)``). For each parameter named ``weight`` or ``bias``:
``numel(p) * y[0] * prod(y[2:])`` for a class whose name contains "Conv", else ``numel(p) * y[0]``.
Layers without parameters count 0; so does ``nn.MultiheadAttention`` (not a leaf, and its
``out_proj`` child is never called as a module). torchinfo runs under ``torch.no_grad()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from explorer.conventions.base import (
    ACTIVATIONS,
    CONVS,
    ELEMENTWISE,
    LLM,
    POOLING,
    VIEWS,
    Convention,
    Ctx,
    Formula,
    Rule,
    View,
    not_modelled,
    zeros,
)

_NO_PARAMS = "does not count layers without parameters"


def _conv(v: View, c: Ctx) -> int:
    return (v.weight_numel + (v.y[1] if v.bias else 0)) * v.y[0] * math.prod(v.y[2:])


def _linear(v: View, c: Ctx) -> int:
    return (v.weight_numel + (v.y[-1] if v.bias else 0)) * v.y[0]


def _affine(numel: Callable[[View], int]) -> Formula:
    return lambda v, c: numel(v) * v.y[0] if v.affine else 0


TABLE = {
    **{op: Rule(_conv, "counts (weight + bias) × output positions: conv MACs plus the bias") for op in CONVS},
    "conv_transpose2d": Rule(_conv, "counts (weight + bias) × output positions, on the (larger) output"),
    "linear": Rule(_linear, "counts a Linear as (weight + bias) × y[0]: once per sample, not per token, "
                   "plus the bias"),
    "matmul": Rule(lambda v, c: 0, _NO_PARAMS),
    "attention": Rule(lambda v, c: 0, "does not see the fused attention path "
                      "(nn.MultiheadAttention is not a leaf; out_proj is never called)"),
    "batchnorm": Rule(_affine(lambda v: 2 * v.x[1]), "counts BatchNorm as its 2C affine parameters per sample"),
    "groupnorm": Rule(_affine(lambda v: 2 * v.x[1]), "counts GroupNorm as its 2C affine parameters per sample"),
    "layernorm": Rule(_affine(lambda v: 2 * math.prod(v.x[-int(v.a("dims")):])),
                      "counts LayerNorm as its 2D affine parameters per sample"),
    "embedding": Rule(lambda v, c: v.weight_numel * v.y[0], "counts an Embedding as its whole table per sample"),
    **zeros(ACTIVATIONS, "does not count activations (no parameters)"),
    **zeros(POOLING,
            "does not count pooling (no parameters)"),
    **zeros(ELEMENTWISE, "does not count element-wise arithmetic (no parameters)"),
    **zeros(("concat", "channel_shuffle", "parameter", "constant", "pad", "pixel_shuffle"), _NO_PARAMS),
    **zeros(VIEWS, "views and no-ops: nothing to count"),
    **not_modelled(LLM, "torchinfo"),
}

CONVENTION = Convention(
    name="torchinfo", tool="torchinfo.summary(model, input_size).total_mult_adds", version="1.8.0",
    source="torchinfo/layer_info.py: LayerInfo.calculate_macs; torchinfo/model_statistics.py: ModelStatistics",
    unit="mult-adds", ours="macs", table=TABLE, sees_functional=False,
    summary="(weight + bias) numel × output positions (conv) or × batch (others), leaf modules only",
)
