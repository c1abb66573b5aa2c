"""Convolutions: nn.Conv1d, nn.Conv2d, nn.Conv3d and nn.ConvTranspose2d with the spec's attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from explorer.torch.registry import as_int, ints, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer


_CONV: dict[int, Any] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _per_dim(value: Any, d: int) -> tuple[int, ...]:
    values = value if isinstance(value, tuple) else (value,) * d
    return tuple(int(v) for v in values)


@torch_op("conv1d", "conv2d", "conv3d")
def conv(layer: Layer) -> nn.Module:
    a, d = layer.attrs, len(layer.in_shapes[0]) - 2
    padding = a["padding"] if a["padding"] in ("same", "valid") else _per_dim(a["padding"], d)
    module: nn.Module = _CONV[d](as_int(layer.in_shapes[0][1]), as_int(a["out"]), _per_dim(a["kernel"], d),
                                 _per_dim(a["stride"], d), padding, _per_dim(a["dilation"], d), as_int(a["groups"]),
                                 bias=bool(a["bias"]))
    return module


@torch_op("conv_transpose2d")
def conv_transpose2d(layer: Layer) -> nn.Module:
    a = layer.attrs
    return nn.ConvTranspose2d(as_int(layer.in_shapes[0][1]), as_int(a["out"]), ints(a["kernel"]),
                              ints(a["stride"]), ints(a["padding"]), ints(a["output_padding"]),
                              as_int(a["groups"]), bias=bool(a["bias"]), dilation=ints(a["dilation"]))
