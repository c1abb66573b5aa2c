"""flopth ``flopth(model, in_size=[3, H, W])``: a per-leaf-module count, MAC-like, bias included.

Source: flopth/model_viewer.py ``ModelViewer`` (``obtain_leaf_modules``: modules without children;
``apply_forward_hook``: each leaf class's ``__call__`` is patched and the result written into a
``flops`` buffer, so a module called several times keeps its last call; ``show_info``: the int64
sum over leaves) and flopth/helper.py ``compute_flops`` (``compute_Conv2d_flops``,
``compute_BatchNorm2d_flops``, ``compute_Pool2d_flops``, ``compute_ReLU_flops``,
``compute_Tanh_flops``, ``compute_Linear_flops``, ``compute_Upsample_flops``,
``compute_Hardswich_flops``, ``compute_Hardsigmoid_flops``). Any other module class prints
"Op X is not supported at now" and counts 0; functional calls are never seen. ``flopth()``
itself feeds a batch of 1 (``torch.rand([1, *size])``).
"""

from __future__ import annotations

import math

from explorer.conventions.base import (
    CONVS,
    LLM,
    Convention,
    Ctx,
    Rule,
    View,
    last_call_only,
    not_modelled,
    per_element,
    zeros,
)

_UNSUPPORTED = "does not count it (prints 'not supported', counts 0)"
_LAST = "; a module called several times keeps only its last call"


def divide_by_unit(value: int) -> str:
    """flopth/utils.py divide_by_unit: what flopth prints, 6 significant digits and G/M/K."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value > scale:
            return "{:.6}{}".format(value / scale, unit)
    return "{:.6}".format(value / 1.0)


def _conv(v: View, c: Ctx) -> int:
    """compute_Conv2d_flops: kh·kw·Cin·(Cout // g) · N·Ho·Wo, plus Cout·N·Ho·Wo for the bias (1-D and 3-D
    alike, over their spatial dims).

    Also used for ConvTranspose2d (the same isinstance branch), on the (larger) output."""
    positions = v.n * math.prod(v.y[2:])
    return v.kernel * v.x[1] * (v.y[1] // v.groups) * positions + (v.y[1] * positions if v.bias else 0)


def _linear(v: View, c: Ctx) -> int:
    """compute_Linear_flops: x.size(0) · x.size(1) · y.size(1), dims 0 and 1 whatever the rank."""
    return v.x[0] * v.x[1] * v.y[1]


def _pool(v: View, c: Ctx) -> int:
    """compute_Pool2d_flops: numel(x); it asserts a 4-D input."""
    if len(v.x) != 4:
        return c.fail(f"a pooling module on a {len(v.x)}-D input raises AssertionError in compute_Pool2d_flops",
                      v.path)
    return v.numel_x


def _norm(k_affine: int) -> Rule:
    return Rule(lambda v, c: v.numel_x * (k_affine if v.affine else 1),
                "counts BatchNorm/GroupNorm as 2 per element (1 without affine)")


TABLE = {
    **{op: Rule(_conv, "counts conv MACs plus the bias (compute_Conv1d/2d/3d_flops)") for op in CONVS},
    "conv_transpose2d": Rule(_conv, "counts a transposed conv like a conv on its (larger) output: "
                             "kh·kw·Cin·Cout/g per output position, plus the bias"),
    "linear": Rule(_linear, "counts a Linear as x[0]·x[1]·y[1] (dims 0 and 1, not the last: per token "
                   "only on 2-D inputs), bias ignored"),
    "batchnorm": _norm(2),
    "groupnorm": _norm(2),
    "layernorm": Rule(lambda v, c: v.numel_x, "counts LayerNorm as 1 per element (it has no `affine` attribute)"),
    **{op: per_element(1, "counts ReLU-like activations as 1 per input element" + _LAST)
       for op in ("relu", "relu6", "leaky_relu", "gelu")},
    "tanh": per_element(1, "counts Tanh as 1 per input element" + _LAST),
    "hardswish": per_element(1, "counts Hardswish as 1 per output element" + _LAST, of="y"),
    "hardsigmoid": per_element(1, "counts Hardsigmoid as 1 per output element" + _LAST, of="y"),
    "sigmoid": Rule(lambda v, c: 0, "counts Sigmoid as 0"),
    **{op: Rule(_pool, "counts pooling modules as 1 per input element (kernel ignored)")
       for op in ("maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool")},
    "upsample": Rule(lambda v, c: v.n * math.prod(v.y[2:]), "counts upsampling as N·Ho·Wo (channels dropped)"),
    "attention": Rule(lambda v, c: 0, "does not see nn.MultiheadAttention (not a leaf; its out_proj leaf is "
                      "never called)"),
    **zeros(("silu", "mish", "softmax", "embedding", "pad", "pixel_shuffle"), _UNSUPPORTED),
    **zeros(("dropout", "identity"), "counts Dropout and Identity as 0"),
    **zeros(("matmul", "add", "mul", "sub", "div", "scale", "mean"), "does not see tensor arithmetic (no module)"),
    **zeros(("concat", "channel_shuffle", "parameter", "constant", "flatten", "reshape", "permute", "transpose", "expand",
             "select", "slice", "split", "chunk", "crop", "opaque"), "copies and views: nothing to count"),
    **not_modelled(LLM, "flopth"),
}

CONVENTION = Convention(
    name="flopth", tool="flopth.flopth(model, in_size=[C, H, W])[0] (bare_number=True)", version="0.1.6",
    source="flopth/model_viewer.py: ModelViewer.obtain_leaf_modules, apply_forward_hook, show_info; "
           "flopth/helper.py: compute_flops, compute_*_flops",
    unit="FLOPs", ours="macs", table=last_call_only(TABLE), sees_functional=False,
    summary="conv MACs plus bias, Linear x[0]·x[1]·y[1], norms and activations 1-2 per element, leaf modules "
            "only, last call of a reused module",
    printed=divide_by_unit,
)
