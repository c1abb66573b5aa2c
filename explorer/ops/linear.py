"""Linear layers, matmul and multi-head attention (all of whose matmuls are counted)."""

from __future__ import annotations

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


def broadcast(call: OpCall, a: tuple, b: tuple) -> tuple:
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
    "head_dim": Attr(None, doc="default: dim / heads", check="pos_int"),
    "out": Attr(None, doc="output features, default: the input's", check="pos_int"),
    "causal": Attr(False, "bool", doc="causal mask (counted dense, as executed by standard kernels)"),
    "bias": Attr(True, "bool"),
}, inputs=(1, 2))
def attention(call: OpCall) -> OpResult:
    """Multi-head attention on [B, S, D] (second input: keys/values source [B, T, Dk])."""
    q_in = call.shapes[0]
    kv_in = call.shapes[-1]
    for shape in (q_in, kv_in):
        call.require_rank(3, shape)
    b, s, d = q_in
    t, dk = kv_in[1], kv_in[2]
    heads = call["heads"]
    hd = call["head_dim"] if call["head_dim"] is not None else d / heads
    if call.check(sympy.Mod(hd, 1), sympy.Integer(0)) is False:
        raise SpecError(f"dim {d} is not divisible by heads {heads}")
    inner = heads * hd
    out = call["out"] if call["out"] is not None else d
    bias = call["bias"]
    parts = {
        "q_proj": b * s * d * inner,
        "kv_proj": 2 * b * t * dk * inner,
        "scores": b * heads * s * t * hd,  # Q K^T
        "context": b * heads * s * t * hd,  # softmax(.) V
        "out_proj": b * s * inner * out,
    }
    proj_flops = (dense_flops(parts["q_proj"], b * s * inner, bias)
                  + dense_flops(parts["kv_proj"], 2 * b * t * inner, bias)
                  + dense_flops(parts["out_proj"], b * s * out, bias))
    scores = b * heads * s * t
    flops = (proj_flops
             + scores * (2 * hd - 1)  # Q K^T
             + scores  # scale by 1/sqrt(head_dim)
             + b * heads * s * (5 * t - 2)  # softmax over t keys
             + b * heads * s * hd * (2 * t - 1))  # weights @ V
    params = (d * inner + 2 * dk * inner + inner * out) + ((3 * inner + out) if bias else 0)
    macs = sum(parts.values(), sympy.Integer(0))
    return OpResult([(b, s, out)], Cost(params=params, macs=macs, flops=flops, parts=parts, checks=(hd,)))
