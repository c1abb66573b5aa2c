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


# attention (GQA, RoPE, windows, KV cache) is built in explorer/torch/llm.py
