"""Linear layers, matmul and multi-head attention (all of whose matmuls are counted)."""

from __future__ import annotations

from typing import Any

from dataclasses import replace

import sympy

from explorer.errors import SpecError
from explorer.ops.base import REQUIRED, Attr, Cost, OpCall, OpResult, fmt_shape, numel, op
from explorer.ops.conv import dense_flops


@op("linear", "linear", {
    "out": Attr(REQUIRED, doc="output features", check="pos_int"),
    "in": Attr(None, doc="input features, checked against the input (optional)", check="pos_int"),
    "bias": Attr(True, "bool"),
    "tied": Attr(None, "ref", doc="layer whose weight this one shares (e.g. an embedding): no new params"),
})
def linear(call: OpCall) -> OpResult:
    """y = x W^T + b on the last dim of an input of any rank."""
    shape = call.x
    if len(shape) < 1:
        raise SpecError(f"linear needs an input of rank >= 1, got {fmt_shape(shape)}")
    fin, fout, bias = shape[-1], call["out"], call["bias"]
    if call["in"] is not None and call.check(call["in"], fin) is False:
        raise SpecError(f"linear expects {call['in']} input features, but its input is {fmt_shape(shape)}")
    rows = numel(shape[:-1])
    macs = rows * fin * fout
    weights = fin * fout
    params = (0 if call["tied"] else weights) + (fout if bias else 0)
    cost = Cost(params=params, macs=macs, flops=dense_flops(macs, rows * fout, bias),
                weight_read=weights + (fout if bias else 0))
    return OpResult([(*shape[:-1], fout)], cost)


def broadcast(call: OpCall, a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """numpy broadcasting of two shapes; unequal non-1 dims are an error."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else sympy.Integer(1)
        y = b[-i] if i <= len(b) else sympy.Integer(1)
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        else:
            if call.check(x, y) is False:
                raise SpecError(f"shapes {fmt_shape(a)} and {fmt_shape(b)} do not broadcast")
            out.append(x)
    return tuple(reversed(out))


@op("matmul", "matmul", {"transpose_b": Attr(False, "bool", doc="multiply by the second input transposed")},
    inputs=(2, 2))
def matmul(call: OpCall) -> OpResult:
    """[..., M, K] @ [..., K, N] with broadcast batch dims."""
    a, b = call.shapes
    if len(a) < 2 or len(b) < 2:
        raise SpecError(f"matmul needs rank >= 2 inputs, got {fmt_shape(a)} and {fmt_shape(b)}")
    if call["transpose_b"]:
        b = (*b[:-2], b[-1], b[-2])
    m, k, k2, n = a[-2], a[-1], b[-2], b[-1]
    if call.check(k, k2) is False:
        raise SpecError(f"matmul inner dims differ: {fmt_shape(a)} @ {fmt_shape(b)}")
    batch = broadcast(call, a[:-2], b[:-2])
    macs = numel(batch) * m * k * n
    return OpResult([(*batch, m, n)], Cost(macs=macs, flops=dense_flops(macs, numel(batch) * m * n, False)))


@op("attention", "attention", {
    "heads": Attr(REQUIRED, check="pos_int"),
    "kv_heads": Attr(None, doc="key/value heads (GQA; 1 = MQA); default: heads (MHA); must divide heads",
                     check="pos_int"),
    "head_dim": Attr(None, doc="default: dim / heads", check="pos_int"),
    "out": Attr(None, doc="output features, default: the input's", check="pos_int"),
    "causal": Attr(False, "bool", doc="causal mask (counted dense, as executed by standard kernels)"),
    "bias": Attr(True, "bool"),
    "rope": Attr(False, "bool", doc="rotary position embeddings on q and k (3 FLOPs per element)"),
    "window": Attr(None, doc="sliding window: each query attends to min(window, keys) keys", check="pos_int"),
    "fused": Attr(True, "bool", doc="FlashAttention-style; false: the score matrix is written and read"),
    "kv_cache": Attr(False, "bool", doc="keys and values live in a KV cache (decoder inference)"),
    "cached": Attr(0, doc="tokens already in the KV cache before this step (needs kv_cache: true)",
                   check="nonneg_int"),
}, inputs=(1, 2))
def attention(call: OpCall) -> OpResult:
    """Multi-head attention on [B, S, D] (second input: keys/values source [B, T, Dk])."""
    q_in = call.shapes[0]
    kv_in = call.shapes[-1]
    for shape in (q_in, kv_in):
        call.require_rank(3, shape)
    b, s, d = q_in
    t_new, dk = kv_in[1], kv_in[2]
    heads = call["heads"]
    kv_heads = call["kv_heads"] if call["kv_heads"] is not None else heads
    hd = call["head_dim"] if call["head_dim"] is not None else d / heads
    if call.check(sympy.Mod(hd, 1), sympy.Integer(0)) is False:
        raise SpecError(f"dim {d} is not divisible by heads {heads}")
    if call.check(sympy.Mod(heads, kv_heads), sympy.Integer(0)) is False:
        raise SpecError(f"kv_heads {kv_heads} does not divide heads {heads}")
    cached = call["cached"]
    if not call["kv_cache"] and cached != 0:
        raise SpecError(f"cached={cached} needs kv_cache: true")
    if call.check(sympy.Max(-cached, 0), sympy.Integer(0)) is False:
        raise SpecError(f"cached is {cached}, negative (is seq larger than the context?)")
    window = call["window"]
    if window is not None and call.check(sympy.Max(1 - window, 0), sympy.Integer(0)) is False:
        raise SpecError(f"window must be at least 1, got {window}")
    keys = _window(cached + t_new, window)  # keys each query attends to
    inner, kv_inner = heads * hd, kv_heads * hd
    out = call["out"] if call["out"] is not None else d
    bias = call["bias"]
    parts = {
        "q_proj": b * s * d * inner,
        "kv_proj": 2 * b * t_new * dk * kv_inner,
        "scores": b * heads * s * keys * hd,  # Q K^T
        "context": b * heads * s * keys * hd,  # softmax(.) V
        "out_proj": b * s * inner * out,
    }
    proj_flops = (dense_flops(parts["q_proj"], b * s * inner, bias)
                  + dense_flops(parts["kv_proj"], 2 * b * t_new * kv_inner, bias)
                  + dense_flops(parts["out_proj"], b * s * out, bias))
    scores = b * heads * s * keys
    flops = (proj_flops
             + scores * (2 * hd - 1)  # Q K^T
             + scores  # scale by 1/sqrt(head_dim)
             + b * heads * s * (5 * keys - 2)  # softmax over the keys
             + b * heads * s * hd * (2 * keys - 1))  # weights @ V
    if call["rope"]:
        flops += ROPE_FLOPS * b * hd * (s * heads + t_new * kv_heads)
    params = (d * inner + 2 * dk * kv_inner + inner * out) + ((inner + 2 * kv_inner + out) if bias else 0)
    macs = sum(parts.values(), sympy.Integer(0))
    cost = Cost(params=params, macs=macs, flops=flops, parts=parts, checks=(hd, heads / kv_heads),
                scratch=sympy.Integer(0) if call["fused"] else scores)
    if call["kv_cache"]:
        per_token = 2 * b * kv_inner  # one key and one value vector per kv head
        cost = replace(cost, kv_cache=per_token * _window(cached + t_new, call["window"]),
                       kv_read=per_token * _window(cached, call["window"]), kv_write=per_token * t_new)
    return OpResult([(b, s, out)], cost)


ROPE_FLOPS = 3  # x * cos + rotate_half(x) * sin per element of q and k (sign folded into the sin table)


def _window(n: sympy.Expr, window: sympy.Expr | None) -> sympy.Expr:
    """min(window, n), or n without a window."""
    return n if window is None else sympy.Min(window, n)
