"""torch.utils.flop_counter.FlopCounterMode: FLOPs = 2 x MACs of conv, mm/addmm, bmm and sdpa only.

Source: torch/utils/flop_counter.py, ``flop_registry`` (torch 2.13: lines 729-751): ``conv_flop``
(conv_flop_count 131-177), ``mm_flop``/``addmm_flop``/``bmm_flop`` (75-111), the
``_scaled_dot_product_*_attention`` formulas (285-311). Ops missing from the registry count 0.
The bias is never counted. ``nn.MultiheadAttention`` in eval + no_grad (torchvision's ViT, the
refs' setup) runs ``aten._native_multi_head_attention``, which is not in the registry: 0.
"""

from __future__ import annotations

from explorer.conventions.base import (
    ACTIVATIONS,
    CONVS,
    DATA,
    ELEMENTWISE,
    NORMS,
    POOLING,
    VIEWS,
    Convention,
    Rule,
    zeros,
)

_NOT_REGISTERED = "does not count it (not in flop_registry)"

TABLE = {
    **{op: Rule(lambda v, c: 2 * v.conv_macs, "counts a conv as 2 FLOPs per MAC (no minus-one, bias ignored)")
       for op in CONVS},
    "conv_transpose2d": Rule(lambda v, c: 2 * v.convt_macs,
                             "counts a transposed conv as 2 FLOPs per MAC (no minus-one, bias ignored)"),
    "linear": Rule(lambda v, c: 2 * v.rows * v.x[-1] * v.y[-1],
                   "counts a Linear as 2 FLOPs per MAC (no minus-one, bias ignored)"),
    "matmul": Rule(lambda v, c: 2 * v.matmul_macs, "counts a matmul as 2 FLOPs per MAC (no minus-one)"),
    "attention": Rule(lambda v, c: 0, "does not see the fused attention path "
                      "(aten._native_multi_head_attention has no flop formula)"),
    **zeros((*NORMS, "rmsnorm"), "does not count normalization (not in flop_registry)"),
    "gated_mlp": Rule(lambda v, c: 2 * v.macs, "counts the three projections as 2 FLOPs per MAC (mm; bias, "
                      "activation and gating ignored)"),
    "moe": Rule(lambda v, c: 2 * v.macs, "counts the router and each expert's mm on the tokens routed to it "
                "(2 FLOPs per MAC; softmax, top-k and the weighted sum ignored)"),
    **zeros(ACTIVATIONS, "does not count activations (not in flop_registry)"),
    **zeros(POOLING,
            "does not count pooling or resampling (not in flop_registry)"),
    **zeros(ELEMENTWISE, "does not count element-wise arithmetic (not in flop_registry)"),
    **zeros(DATA, _NOT_REGISTERED),
    **zeros(VIEWS, "views and no-ops: nothing to count"),
}

CONVENTION = Convention(
    name="torch", tool="torch.utils.flop_counter.FlopCounterMode().get_total_flops()", version="2.13 / 2.14",
    source="torch/utils/flop_counter.py: flop_registry, conv_flop, mm_flop, addmm_flop, bmm_flop",
    unit="FLOPs", ours="flops", table=TABLE,
    summary="2 x MACs of conv, linear and matmul; nothing else",
)
