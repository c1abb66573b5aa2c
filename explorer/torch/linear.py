"""Linear, matmul and multi-head attention, every product an explicit mm/bmm.

Attention is written out (projections, ``q @ k^T``, scale, mask, softmax, ``@ v``, output
projection) instead of calling scaled_dot_product_attention, so that
``torch.utils.flop_counter.FlopCounterMode`` sees each of its matmuls (docs/torch-bridge.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from explorer.torch.base import Fn
from explorer.torch.registry import as_int, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer


class TiedLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` shared with the layer ``tied`` (set by :func:`tie_weights`)."""

    def __init__(self, tied: str, fin: int, fout: int, bias: bool) -> None:
        super().__init__()
        self.tied, self.in_features, self.out_features = tied, fin, fout
        self.weight: nn.Parameter | None = None
        self.bias = nn.Parameter(torch.zeros(fout)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.weight is not None, f"weight not tied to '{self.tied}' yet"
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, tied={self.tied!r}"


@torch_op("linear")
def linear(layer: Layer) -> nn.Module:
    a = layer.attrs
    fin, fout = as_int(layer.in_shapes[0][-1]), as_int(a["out"])
    if a["tied"]:
        return TiedLinear(str(a["tied"]), fin, fout, bool(a["bias"]))
    return nn.Linear(fin, fout, bias=bool(a["bias"]))


@torch_op("matmul")
def matmul(layer: Layer) -> nn.Module:
    if layer.attrs["transpose_b"]:
        return Fn(lambda a, b: torch.matmul(a, b.transpose(-2, -1)), "a @ b^T")
    return Fn(torch.matmul, "a @ b")


class Attention(nn.Module):
    """Multi-head attention on [B, S, D] (keys and values from a second input [B, T, Dk] if given)."""

    def __init__(self, d: int, dk: int, heads: int, head_dim: int, out: int, bias: bool, causal: bool) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim, self.causal = heads, head_dim, causal
        self.q_proj = nn.Linear(d, inner, bias=bias)
        self.k_proj = nn.Linear(dk, inner, bias=bias)
        self.v_proj = nn.Linear(dk, inner, bias=bias)
        self.out_proj = nn.Linear(inner, out, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)  # [B, h, n, hd]

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if kv is None else kv
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(kv)), self._heads(self.v_proj(kv))
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.head_dim ** -0.5  # [B, h, S, T]
        if self.causal:
            s, t = scores.shape[-2:]
            mask = torch.ones(s, t, dtype=torch.bool, device=x.device).triu(t - s + 1)
            scores = scores.masked_fill(mask, float("-inf"))
        context = torch.matmul(scores.softmax(dim=-1), v)  # [B, h, S, hd]
        b, _, s, _ = context.shape
        return self.out_proj(context.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))


@torch_op("attention")
def attention(layer: Layer) -> nn.Module:
    a = layer.attrs
    d, dk = as_int(layer.in_shapes[0][-1]), as_int(layer.in_shapes[-1][-1])
    heads = as_int(a["heads"])
    head_dim = as_int(a["head_dim"]) if a["head_dim"] is not None else d // heads
    out = as_int(a["out"]) if a["out"] is not None else d
    return Attention(d, dk, heads, head_dim, out, bool(a["bias"]), bool(a["causal"]))
