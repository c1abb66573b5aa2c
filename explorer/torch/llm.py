"""Torch builders for the LLM ops: ``rmsnorm``, ``attention`` (GQA, RoPE, sliding window, KV cache),
``gated_mlp`` and ``moe``; every product an explicit matmul so FlopCounterMode sees it.

The modules take plain ints, so a test can assemble a small model from them directly; the
builders (``@torch_op``) read a :class:`explorer.graph.Layer` built at one configuration. The
cached keys and values of a decode step are non-persistent buffers (random, not parameters), and
``forward`` does not append to them: one call is one step, as explorer counts it.
"""

from __future__ import annotations

from collections.abc import Callable

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from explorer.torch.registry import as_int, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer

ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) over the last dim, times a gain when ``weight``."""

    def __init__(self, n: int, weight: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n)) if weight else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y * self.weight if self.weight is not None else y


def rope(x: torch.Tensor, start: int, base: float = 10000.0) -> torch.Tensor:
    """Rotary embedding of [B, h, n, hd] at positions start .. start + n - 1 (rotate-half form)."""
    hd = x.shape[-1]
    inv_freq = 1.0 / base ** (torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd)
    pos = torch.arange(start, start + x.shape[-2], device=x.device, dtype=torch.float32)
    angles = torch.outer(pos, inv_freq)
    emb = torch.cat([angles, angles], dim=-1).to(x.dtype)
    half = hd // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * emb.cos() + rotated * emb.sin()


class Attention(nn.Module):
    """Multi-head attention with GQA, RoPE, a sliding window and a KV cache of ``cached`` tokens."""

    def __init__(self, d: int, heads: int, head_dim: int, *, kv_heads: int | None = None, dk: int | None = None,
                 out: int | None = None, bias: bool = True, causal: bool = False, rope: bool = False,
                 window: int | None = None, cached: int = 0, batch: int = 1) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads or heads, head_dim
        self.causal, self.rope, self.window, self.cached = causal, rope, window, cached
        dk = dk or d
        self.q_proj = nn.Linear(d, heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(dk, self.kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(dk, self.kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(heads * head_dim, out or d, bias=bias)
        held = cached if window is None else min(window, cached)
        shape = (batch, self.kv_heads, held, head_dim)
        self.register_buffer("past_k", torch.randn(shape), persistent=False)
        self.register_buffer("past_v", torch.randn(shape), persistent=False)

    def _split(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, heads, self.head_dim).transpose(1, 2)  # [B, heads, n, hd]

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        src = x if kv is None else kv
        q = self._split(self.q_proj(x), self.heads)
        k, v = self._split(self.k_proj(src), self.kv_heads), self._split(self.v_proj(src), self.kv_heads)
        if self.rope:
            q, k = rope(q, self.cached + k.shape[-2] - q.shape[-2]), rope(k, self.cached)
        past_k, past_v = self.past_k, self.past_v
        assert isinstance(past_k, torch.Tensor) and isinstance(past_v, torch.Tensor)  # registered buffers
        k = torch.cat([past_k.to(k.dtype), k], dim=-2)
        v = torch.cat([past_v.to(v.dtype), v], dim=-2)
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        if self.window is not None and k.shape[-2] > self.window:
            context = self._windowed(q, k, v)
        else:
            context = self._dense(q, k, v)
        b, _, s, _ = context.shape
        out: torch.Tensor = self.o_proj(context.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))
        return out

    def _dense(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.head_dim ** -0.5  # [B, h, S, T]
        if self.causal:
            s, t = scores.shape[-2:]
            mask = torch.ones(s, t, dtype=torch.bool, device=q.device).triu(t - s + 1)
            scores = scores.masked_fill(mask, float("-inf"))
        return torch.matmul(scores.softmax(dim=-1), v)

    def _windowed(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Each query attends to the ``window`` keys ending at its own position (causal band)."""
        w, s, t = self.window, q.shape[-2], k.shape[-2]
        assert w is not None  # only called with a window
        pad = (0, 0, w - 1, 0)
        kw = F.pad(k, pad).unfold(-2, w, 1)[..., t - s:t, :, :]  # [B, h, S, hd, W]
        vw = F.pad(v, pad).unfold(-2, w, 1)[..., t - s:t, :, :]
        scores = torch.matmul(q.unsqueeze(-2), kw).squeeze(-2) * self.head_dim ** -0.5  # [B, h, S, W]
        first = torch.arange(t - s, t, device=q.device)[:, None] - (w - 1) + torch.arange(w, device=q.device)
        scores = scores.masked_fill(first < 0, float("-inf"))  # padding before the first token
        return torch.matmul(scores.softmax(dim=-1).unsqueeze(-2), vw.transpose(-2, -1)).squeeze(-2)


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)): SwiGLU with silu, GeGLU with gelu."""

    def __init__(self, d: int, hidden: int, out: int | None = None, act: str = "silu", bias: bool = False) -> None:
        super().__init__()
        self.act = ACTS[act]
        self.gate_proj = nn.Linear(d, hidden, bias=bias)
        self.up_proj = nn.Linear(d, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, out or d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
        return out


class MoE(nn.Module):
    """Top-k mixture of gated-MLP experts with a linear router; each expert sees only its tokens."""

    def __init__(self, d: int, experts: int, top_k: int, hidden: int, out: int | None = None, act: str = "silu",
                 bias: bool = False) -> None:
        super().__init__()
        self.top_k, self.out = top_k, out or d
        self.gate = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(GatedMLP(d, hidden, out, act, bias) for _ in range(experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])
        probs = self.gate(tokens).softmax(dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        y = tokens.new_zeros(tokens.shape[0], self.out)
        for e, expert in enumerate(self.experts):
            rows, slot = torch.nonzero(chosen == e, as_tuple=True)
            if rows.numel():
                y.index_add_(0, rows, expert(tokens[rows]) * weights[rows, slot, None])
        return y.reshape(*x.shape[:-1], self.out)


def _opt_int(value: object) -> int | None:
    return None if value is None else as_int(value)


@torch_op("rmsnorm")
def rmsnorm(layer: Layer) -> nn.Module:
    return RMSNorm(as_int(layer.in_shapes[0][-1]), bool(layer.attrs["weight"]))


@torch_op("attention")
def attention(layer: Layer) -> nn.Module:
    a = layer.attrs
    b, _, d = (as_int(v) for v in layer.in_shapes[0])
    heads = as_int(a["heads"])
    head_dim = as_int(a["head_dim"]) if a["head_dim"] is not None else d // heads
    return Attention(d, heads, head_dim, kv_heads=_opt_int(a["kv_heads"]), dk=as_int(layer.in_shapes[-1][-1]),
                     out=_opt_int(a["out"]), bias=bool(a["bias"]), causal=bool(a["causal"]), rope=bool(a["rope"]),
                     window=_opt_int(a["window"]), cached=as_int(a["cached"]), batch=b)


@torch_op("gated_mlp")
def gated_mlp(layer: Layer) -> nn.Module:
    a = layer.attrs
    return GatedMLP(as_int(layer.in_shapes[0][-1]), as_int(a["hidden"]), _opt_int(a["out"]), str(a["act"]),
                    bool(a["bias"]))


@torch_op("moe")
def moe(layer: Layer) -> nn.Module:
    a = layer.attrs
    return MoE(as_int(layer.in_shapes[0][-1]), as_int(a["experts"]), as_int(a["top_k"]), as_int(a["hidden"]),
               _opt_int(a["out"]), str(a["act"]), bool(a["bias"]))
