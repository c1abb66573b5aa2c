"""ptflops ``get_model_complexity_info(..., backend='aten')[0]``: a TorchDispatchMode over six aten ops.

Source: ptflops/aten_ops.py ``ATEN_OPS_MAPPING`` (lines 109-116: aten.mm, aten.matmul, aten.addmm,
aten.bmm, aten.convolution, aten._convolution), ``conv_flop``/``conv_flop_count`` (71-106, bias
counted), ``addmm_flop`` (36-54, bias counted), ``matmul_flop`` (23-33), ``bmm_flop`` (57-68);
ptflops/aten_engine.py. Every other aten op counts 0. A Linear with a bias runs as aten.addmm
(an input of rank > 2 is flattened first), without one as aten.mm.
"""

from __future__ import annotations

from explorer.conventions.base import (
    ACTIVATIONS,
    CONVS,
    DATA,
    ELEMENTWISE,
    LLM,
    NORMS,
    POOLING,
    VIEWS,
    Convention,
    Rule,
    not_modelled,
    zeros,
)

_NOT_MAPPED = "does not count it (not in ATEN_OPS_MAPPING)"

TABLE = {
    **{op: Rule(lambda v, c: v.conv_macs + (v.numel_y if v.bias else 0), "counts conv MACs plus the bias")
       for op in CONVS},
    "conv_transpose2d": Rule(lambda v, c: v.convt_macs + (v.numel_y if v.bias else 0),
                             "counts transposed-conv MACs plus the bias"),
    "linear": Rule(lambda v, c: v.rows * v.x[-1] * v.y[-1] + (v.rows * v.y[-1] if v.bias else 0),
                   "counts Linear MACs plus the bias (aten.addmm)"),
    "matmul": Rule(lambda v, c: v.matmul_macs, "counts a matmul's MACs (aten.bmm / aten.mm)"),
    "attention": Rule(lambda v, c: 0, "does not see the fused attention path "
                      "(aten._native_multi_head_attention is not mapped)"),
    **zeros(NORMS, "does not count normalization (not mapped)"),
    **zeros(ACTIVATIONS, "does not count activations (not mapped)"),
    **zeros(POOLING,
            "does not count pooling or resampling (not mapped)"),
    **zeros(ELEMENTWISE, "does not count element-wise arithmetic (not mapped)"),
    **zeros(DATA, _NOT_MAPPED),
    **zeros(VIEWS, "views and no-ops: nothing to count"),
    **not_modelled(LLM, "ptflops (aten)"),
}

CONVENTION = Convention(
    name="ptflops-aten", tool="ptflops.get_model_complexity_info(model, ..., backend='aten')[0]", version="0.7.5",
    source="ptflops/aten_ops.py: ATEN_OPS_MAPPING, conv_flop, addmm_flop, matmul_flop, bmm_flop",
    unit="MACs", ours="macs", table=TABLE,
    summary="MACs plus biases of conv, linear and matmul; nothing else",
)
