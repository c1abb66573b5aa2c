"""torchsummary ``summary(model, input_size=(C, H, W))``: one row per module call, its params and sizes.

Source: torchsummary/torchsummary.py ``summary`` (lines 9-115): a forward hook on every module
except ``nn.Sequential``, ``nn.ModuleList`` and the model itself, so container blocks (ResNet's
``Bottleneck``, MobileNetV2's ``InvertedResidual``) are rows too, right after their children; a
module called twice is listed and counted twice. A row's ``Param #`` is ``numel(weight) +
numel(bias)`` of that module (nothing for modules without a ``weight``), "Total params" their sum.
The size lines assume 4 bytes per number: "Input size (MB)" is prod(input_size)·4 / 2**20,
"Forward/backward pass size (MB)" 2·Σ prod(output shape without batch)·4 / 2**20 over the rows
(the -1 batch makes the product negative; ``abs`` undoes it), "Params size (MB)" total·4 / 2**20.
A module returning a tuple holding None (``nn.MultiheadAttention(..., need_weights=False)``,
as torchvision's ViT calls it) raises AttributeError in the hook: no table at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from explorer.conventions.base import CONVS, LLM, Convention, Ctx, Rule, View, module_class, not_modelled, zeros

if TYPE_CHECKING:
    from explorer.analysis import Analysis

MB = 1024**2

def _weight_bias(v: View, c: Ctx) -> int:
    return v.weight_numel + (v.y[1] if v.op.startswith("conv") else v.y[-1]) * v.bias


def _affine(v: View, c: Ctx) -> int:
    """weight and bias of C (norms over channels) or of the normalized shape (LayerNorm)."""
    if not v.affine:
        return 0
    return 2 * (math.prod(v.x[-int(v.a("dims")):]) if v.op == "layernorm" else v.x[1])


def _attention(v: View, c: Ctx) -> int:
    return c.fail("nn.MultiheadAttention returns (output, None) with need_weights=False; the hook calls "
                  "None.size() and raises AttributeError", v.path)


_NOT_A_MODULE = "does not list it (no module: a tensor operation or a functional call)"

TABLE = {
    **{op: Rule(_weight_bias, "lists a conv with weight + bias") for op in CONVS},
    "conv_transpose2d": Rule(_weight_bias, "lists a transposed conv with weight + bias"),
    "linear": Rule(_weight_bias, "lists a Linear with weight + bias"),
    "embedding": Rule(lambda v, c: v.weight_numel, "lists an Embedding with its table"),
    **{op: Rule(_affine, "lists a norm with its affine weight and bias (running statistics are buffers)")
       for op in ("batchnorm", "layernorm", "groupnorm")},
    "attention": Rule(_attention, "raises on nn.MultiheadAttention's (output, None)"),
    **zeros(("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "gelu", "mish",
             "pad", "pixel_shuffle",
             "softmax", "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "upsample", "dropout",
             "identity"), "lists modules without weight as 0 params"),
    **zeros(("matmul", "add", "mul", "sub", "div", "scale", "mean", "concat", "channel_shuffle", "flatten",
             "reshape", "permute", "transpose", "expand", "select", "slice", "split", "chunk", "crop", "opaque"),
            _NOT_A_MODULE),
    "parameter": Rule(lambda v, c: 0, "does not count a bare nn.Parameter of the model (only module "
                      "weight and bias)"),
    "constant": Rule(lambda v, c: 0, "does not list a buffer (no module, no weight)"),
    **not_modelled(LLM, "torchsummary"),
}


def _outputs(v: View, c: Ctx) -> int:
    """Output elements of one sample over the rows this layer makes (its module, containers it closes)."""
    rows = (module_class(v) is not None) + len(v.closes)
    return rows * math.prod(v.y[1:])


OUTPUTS = {op: Rule(_outputs, "output elements of one sample, per row") for op in TABLE}


@dataclass
class Row:
    """One line of torchsummary's table."""

    key: str  # "Conv2d-1": class name and 1-based call index
    output_shape: list[int]  # batch shown as -1
    params: int
    layer: str  # the explorer layer it comes from


@dataclass
class Summary:
    """What torchsummary prints for a spec: the rows, the totals and its four size lines (MB)."""

    rows: list[Row]
    total_params: int
    trainable_params: int
    input_mb: float
    forward_backward_mb: float
    params_mb: float
    total_mb: float


def summary(analysis: Analysis) -> Summary:
    """torchsummary's table for an analysis (``ExplorerError`` when the tool raises on the model)."""
    from explorer.conventions import evaluate, views
    from explorer.cost import exact, substitution
    from explorer.errors import ExplorerError

    result = evaluate(analysis, CONVENTION)
    if result.error:
        raise ExplorerError(f"torchsummary cannot run this model: {result.error}")
    vs, _ = views(analysis)
    rows: list[Row] = []
    for v, row in zip(vs, analysis.layers):
        for _ in range(int(row.count)):
            cls = module_class(v)
            if cls is not None:
                rows.append(Row(f"{cls}-{len(rows) + 1}", [-1, *v.y[1:]], TABLE[v.op].fn(v, Ctx(0)), v.path))
            rows += [Row(f"{c}-{len(rows) + 1 + i}", [-1, *v.y[1:]], 0, v.path) for i, c in enumerate(v.closes)]
    total = sum(r.params for r in rows)
    outputs = sum(math.prod(r.output_shape[1:]) for r in rows)
    subs = substitution(analysis.model, analysis.values)
    first = next(iter(analysis.model.inputs.values())).out_shapes[0]
    sample = math.prod(int(exact(d, subs)) for d in first[1:])  # input_size excludes the batch
    input_mb, fb_mb, params_mb = sample * 4.0 / MB, 2.0 * outputs * 4.0 / MB, total * 4.0 / MB
    return Summary(rows, total, total, input_mb, fb_mb, params_mb, params_mb + fb_mb + input_mb)


CONVENTION = Convention(
    name="torchsummary", tool="torchsummary.summary(model, input_size=(C, H, W)): Total params", version="1.5.1",
    source="torchsummary/torchsummary.py: summary (register_hook, hook, the size lines)",
    unit="params", ours="params", table=TABLE, extra={"output elements per sample": OUTPUTS}, sees_functional=False,
    summary="one row per module call (containers included, Sequential excluded): weight + bias numel; "
            "sizes at 4 bytes per number",
)
