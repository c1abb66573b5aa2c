"""Convolutions: nn.Conv2d and nn.ConvTranspose2d with the spec's attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from explorer.torch.registry import as_int, ints, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer


@torch_op("conv2d")
def conv2d(layer: Layer) -> nn.Module:
    a = layer.attrs
    padding = a["padding"] if a["padding"] in ("same", "valid") else ints(a["padding"])
    return nn.Conv2d(as_int(layer.in_shapes[0][1]), as_int(a["out"]), ints(a["kernel"]), ints(a["stride"]),
                     padding, ints(a["dilation"]), as_int(a["groups"]), bias=bool(a["bias"]))


@torch_op("conv_transpose2d")
def conv_transpose2d(layer: Layer) -> nn.Module:
    a = layer.attrs
    return nn.ConvTranspose2d(as_int(layer.in_shapes[0][1]), as_int(a["out"]), ints(a["kernel"]),
                              ints(a["stride"]), ints(a["padding"]), ints(a["output_padding"]),
                              as_int(a["groups"]), bias=bool(a["bias"]), dilation=ints(a["dilation"]))
