"""ptflops ``get_model_complexity_info(..., backend='pytorch')[0]``: module hooks + patched functionals.

Source: ptflops/pytorch_ops.py ``MODULES_MAPPING`` (hooks: ``conv_flops_counter_hook``,
``linear_flops_counter_hook``, ``bn_flops_counter_hook``, ``relu_flops_counter_hook``,
``pool_flops_counter_hook``, ``upsample_flops_counter_hook``, ``multihead_attention_counter_hook``)
and ``FUNCTIONAL_MAPPING``; ptflops/pytorch_engine.py ``patch_functional``, ``patch_tensor_ops``,
``compute_average_flops_cost``, ``get_flops_pytorch``.

Each formula returns ``(module part, functional part)``. The tool prints
``int(sum(module parts) / N + sum(functional parts))``: module hooks are divided by the batch N
(the root's first input), patched functionals are not. A module whose forward calls a patched
functional counts twice (nn.ReLU -> F.relu, nn.GELU -> F.gelu, the pooling modules).
Python operators (``a + b``, ``a * b``, ``a @ b``) are never patched.
"""

from __future__ import annotations

from typing import Any

import math
from fractions import Fraction

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


def _mha(v: View, c: Ctx) -> tuple[int, int]:
    """multihead_attention_counter_hook on (q, k, v); the fast path calls no patched functional."""
    b, qlen, qdim = v.ins[0]
    klen, kdim = v.ins[-1][1], v.ins[-1][2]
    heads = int(v.a("heads"))
    flops = qlen * qdim  # q scaling
    flops += qlen * qdim * qdim + 2 * klen * kdim * kdim  # q, k, v projections (ptflops uses kdim^2)
    if v.bias:
        flops += (qlen + 2 * klen) * qdim
    flops += heads * (qlen * klen * (qdim // heads) + qlen * klen + qlen * klen * (kdim // heads))
    flops += qlen * kdim * (kdim + 1)  # out projection, "bias is always enabled"
    return b * flops, 0


def _upsample(v: View, c: Ctx) -> tuple[int, float]:
    """Module: C·Ho·Wo (output[0], the first sample). F.interpolate: size -> prod(size)·N·C,
    scale s -> numel(x)·s**2 (a float)."""
    module = math.prod(v.y[1:])
    if v.a("size") is not None:
        size = v.a("size")
        spatial = math.prod(size) if isinstance(size, tuple) else int(size) ** 2
        return module, spatial * v.x[0] * v.x[1]
    return module, v.numel_x * float(v.a("scale")) ** 2


def _twice(note: str) -> Rule:
    return Rule(lambda v, c: (v.numel_x, v.numel_x), note)


TABLE = {
    **{op: Rule(lambda v, c: (v.conv_macs + (v.numel_y if v.bias else 0), 0), "counts conv MACs plus the bias")
       for op in CONVS},
    "conv_transpose2d": Rule(lambda v, c: (v.convt_macs + (v.numel_y if v.bias else 0), 0),
                             "counts transposed-conv MACs plus the bias"),
    "linear": Rule(lambda v, c: (v.rows * (v.x[-1] * v.y[-1] + (v.y[-1] if v.bias else 0)), 0),
                   "counts Linear MACs plus the bias"),
    "matmul": Rule(lambda v, c: (0, 0), "does not see a @ b (the operator is not patched)"),
    "attention": Rule(_mha, "counts nn.MultiheadAttention with its own hook: q scaling, biases, softmax "
                      "and a bias on out_proj on top of the MACs"),
    "batchnorm": Rule(lambda v, c: (v.numel_x * (2 if v.affine else 1), 0),
                      "counts BatchNorm as 2 per element (1 without affine)"),
    "groupnorm": Rule(lambda v, c: (v.numel_x * (2 if v.affine else 1), 0),
                      "counts GroupNorm as 2 per element (1 without affine)"),
    "layernorm": Rule(lambda v, c: (v.numel_x, 0), "counts LayerNorm as 1 per element (it has no .affine)"),
    "relu": _twice("counts ReLU twice, module hook + patched F.relu: 2 per element"),
    "gelu": _twice("counts GELU twice, module hook + patched F.gelu: 2 per element"),
    "relu6": Rule(lambda v, c: (v.numel_y, 0), "counts ReLU6 as 1 per element (its F.hardtanh is not patched)"),
    "leaky_relu": Rule(lambda v, c: (v.numel_y, 0), "counts LeakyReLU as 1 per element"),
    "silu": Rule(lambda v, c: (0, v.numel_x), "counts SiLU as 1 per element (patched F.silu)"),
    "softmax": Rule(lambda v, c: (0, v.numel_x), "counts Softmax as 1 per element (patched F.softmax)"),
    **zeros(("sigmoid", "tanh", "hardsigmoid", "hardswish", "mish"), "does not count this activation (no hook, no patch)"),
    **{op: _twice("counts pooling as 1 per input element, twice for a module (hook + patched F.*pool*)")
       for op in ("maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool")},
    "upsample": Rule(_upsample, "counts upsampling per output element: module hook on the first sample "
                     "+ patched F.interpolate"),
    **zeros(("add", "mul", "sub", "div", "scale"), "does not see +, *, -, / (Python operators are not patched)"),
    **zeros(("mean", "embedding", "concat", "channel_shuffle", "parameter", "constant", "pad", "pixel_shuffle"),
            "does not count it (not mapped)"),
    **zeros(("identity", "dropout", "flatten", "reshape", "permute", "transpose", "expand", "select", "slice",
             "split", "chunk", "crop", "opaque"), "views and no-ops: nothing to count"),
    **not_modelled(LLM, "ptflops"),
}


def _parts(raw: tuple[int, float] | int) -> tuple[int, float]:
    """(module, functional); a plain 0 from the zero rules is (0, 0)."""
    return raw if isinstance(raw, tuple) else (raw, 0)


def _combine(raw: tuple[int, float], v: View, c: Ctx) -> Fraction | float:
    module, functional = _parts(raw)
    if not v.exact_type:  # a function call (no module) or a subclass: type(m) not in MODULES_MAPPING, no hook
        module = 0
    share = Fraction(module, c.batch)
    return share + functional if not isinstance(functional, float) else float(share) + functional


def _face(raw: tuple[int, float], v: View, c: Ctx) -> int | float:
    """The layer's count at the full batch: module part (when a module) + functional part."""
    module, functional = _parts(raw)
    return (module if v.exact_type else 0) + functional


def _split(raws: list[tuple[int, float]], views: list[View]) -> tuple[int, float]:
    parts = [_parts(r) for r in raws]
    return sum(p[0] if v.exact_type else 0 for p, v in zip(parts, views)), sum(p[1] for p in parts)


def _total(raws: list[tuple[int, float]], c: Ctx, views: list[View]) -> int:
    """compute_average_flops_cost: flops_sum / __batch_counter__ (a float), + functional, int()."""
    module, functional = _split(raws, views)
    return int(module / c.batch + functional)


def _notes(raws: list[Any], c: Ctx, views: list[View]) -> list[tuple[str, int | Fraction | float]]:
    module, functional = _split(raws, views)
    out: list[tuple[str, int | Fraction | float]] = []
    if c.batch != 1:
        out.append((f"divides module-hook counts by the batch size {c.batch} (functional ones are not)",
                    Fraction(module, c.batch) - module))
    exact = Fraction(module, c.batch) + Fraction(functional)
    if exact != _total(raws, c, views):
        out.append(("truncates its total to an integer", _total(raws, c, views) - exact))
    return out


CONVENTION = Convention(
    name="ptflops", tool="ptflops.get_model_complexity_info(model, ..., backend='pytorch')[0]", version="0.7.5",
    source="ptflops/pytorch_ops.py: MODULES_MAPPING, FUNCTIONAL_MAPPING, *_counter_hook; "
           "ptflops/pytorch_engine.py: get_flops_pytorch, compute_average_flops_cost",
    unit="MACs", ours="macs", table=TABLE, combine=_combine, face=_face, total=_total, notes=_notes,
    summary="MACs plus biases; ReLU, GELU and pools counted twice (hook + patched functional); "
            "module hooks divided by the batch",
)
