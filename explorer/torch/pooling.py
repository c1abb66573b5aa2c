"""Pooling and resampling: nn.MaxPool2d, nn.AvgPool2d, adaptive pools, mean, nn.Upsample."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from explorer.torch.base import Fn
from explorer.torch.registry import as_int, dims, ints, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer


def _stride(layer: Layer) -> tuple[int, int]:
    a = layer.attrs
    return ints(a["stride"] if a["stride"] is not None else a["kernel"])


@torch_op("maxpool")
def maxpool(layer: Layer) -> nn.Module:
    a = layer.attrs
    return nn.MaxPool2d(ints(a["kernel"]), _stride(layer), ints(a["padding"]), ints(a["dilation"]),
                        ceil_mode=bool(a["ceil_mode"]))


@torch_op("avgpool")
def avgpool(layer: Layer) -> nn.Module:
    a = layer.attrs
    return nn.AvgPool2d(ints(a["kernel"]), _stride(layer), ints(a["padding"]), ceil_mode=bool(a["ceil_mode"]))


@torch_op("adaptive_avgpool")
def adaptive_avgpool(layer: Layer) -> nn.Module:
    return nn.AdaptiveAvgPool2d(ints(layer.attrs["size"]))


@torch_op("adaptive_maxpool")
def adaptive_maxpool(layer: Layer) -> nn.Module:
    return nn.AdaptiveMaxPool2d(ints(layer.attrs["size"]))


@torch_op("mean")
def mean(layer: Layer) -> nn.Module:
    axes = layer.attrs["axes"]
    axes = tuple(as_int(a) for a in (axes if isinstance(axes, tuple) else (axes,)))
    keep = bool(layer.attrs["keepdim"])
    return Fn(lambda x: x.mean(dim=axes, keepdim=keep), f"dim={axes}, keepdim={keep}")


@torch_op("upsample")
def upsample(layer: Layer) -> nn.Module:
    """nn.Upsample with the spec's scale (floor(H * scale), as the spec infers) or size."""
    mode, scale = str(layer.attrs["mode"]), layer.attrs["scale"]
    corners = None if mode == "nearest" else False
    if scale is not None:
        return nn.Upsample(scale_factor=float(scale), mode=mode, align_corners=corners)
    return nn.Upsample(size=dims(layer.shape[2:]), mode=mode, align_corners=corners)
