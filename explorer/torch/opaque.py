"""Builder for ``opaque``: zeros of the declared shape (the placeholder has no computation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from explorer.torch.registry import dims, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer


class Opaque(nn.Module):
    """Returns zeros of a fixed shape whatever its inputs (an unmodelled operator's stand-in)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, *inputs: Any) -> torch.Tensor:
        like = inputs[0] if inputs else None
        if like is None:
            return torch.zeros(self.shape)
        return torch.zeros(self.shape, dtype=like.dtype, device=like.device)


@torch_op("opaque")
def build_opaque(layer: Layer) -> nn.Module:
    return Opaque(dims(layer.out_shapes[0]))
