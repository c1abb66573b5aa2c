"""Normalization in inference mode: BatchNorm uses running statistics (buffers, not parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from explorer.torch.registry import as_int, dims, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer


class BatchNorm(nn.Module):
    """Inference BatchNorm on [N, C, ...] of any rank: per-channel scale and shift."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, channels: int, affine: bool, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


_TORCH_BATCHNORM = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


@torch_op("batchnorm")
def batchnorm(layer: Layer) -> nn.Module:
    """torch's own class where one takes the rank (as the models counting tools are run on), else ours."""
    channels, affine = as_int(layer.in_shapes[0][1]), bool(layer.attrs["affine"])
    cls = _TORCH_BATCHNORM.get(len(layer.in_shapes[0]))
    return BatchNorm(channels, affine) if cls is None else cls(channels, affine=affine).eval()


@torch_op("layernorm")
def layernorm(layer: Layer) -> nn.Module:
    k = as_int(layer.attrs["dims"])
    return nn.LayerNorm(dims(layer.in_shapes[0][-k:]), elementwise_affine=bool(layer.attrs["affine"]))


@torch_op("groupnorm")
def groupnorm(layer: Layer) -> nn.Module:
    a = layer.attrs
    return nn.GroupNorm(as_int(a["groups"]), as_int(layer.in_shapes[0][1]), affine=bool(a["affine"]))
