"""Ops that move or re-view data, the learned ``parameter`` tensor and ``embedding``.

Views return torch views (no copy) where torch has one; concat and channel_shuffle copy.
Shapes that a spec gives with -1 or variables are taken from the inferred output shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from explorer.torch.base import Fn
from explorer.torch.registry import as_int, dims, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer


@torch_op("identity", "dropout")
def identity(layer: Layer) -> nn.Module:
    """Dropout is the identity at inference."""
    return nn.Identity()


@torch_op("flatten")
def flatten(layer: Layer) -> nn.Module:
    return nn.Flatten(as_int(layer.attrs["start"]), as_int(layer.attrs["end"]))


@torch_op("reshape")
def reshape(layer: Layer) -> nn.Module:
    shape = dims(layer.shape)
    return Fn(lambda x: x.reshape(shape), f"shape={list(shape)}")


@torch_op("permute")
def permute(layer: Layer) -> nn.Module:
    order = tuple(as_int(d) for d in layer.attrs["dims"])
    return Fn(lambda x: x.permute(order), f"dims={order}")


@torch_op("transpose")
def transpose(layer: Layer) -> nn.Module:
    a, b = as_int(layer.attrs["dim0"]), as_int(layer.attrs["dim1"])
    return Fn(lambda x: x.transpose(a, b), f"dim0={a}, dim1={b}")


@torch_op("expand")
def expand(layer: Layer) -> nn.Module:
    shape = dims(layer.shape)
    return Fn(lambda x: x.expand(shape), f"shape={list(shape)}")


@torch_op("select")
def select(layer: Layer) -> nn.Module:
    axis, index = as_int(layer.attrs["axis"]), as_int(layer.attrs["index"])
    return Fn(lambda x: x.select(axis, index), f"axis={axis}, index={index}")


@torch_op("slice")
def slice_(layer: Layer) -> nn.Module:
    a = layer.attrs
    axis, start, end = as_int(a["axis"]), as_int(a["start"]), as_int(a["end"])
    return Fn(lambda x: x.narrow(axis, start, end - start), f"axis={axis}, start={start}, end={end}")


@torch_op("split")
def split(layer: Layer) -> nn.Module:
    axis, sizes = as_int(layer.attrs["axis"]), [as_int(s) for s in layer.attrs["sizes"]]
    return Fn(lambda x: tuple(torch.split(x, sizes, dim=axis)), f"axis={axis}, sizes={sizes}")


@torch_op("chunk")
def chunk(layer: Layer) -> nn.Module:
    axis, k = as_int(layer.attrs["axis"]), as_int(layer.attrs["chunks"])
    return Fn(lambda x: tuple(torch.chunk(x, k, dim=axis)), f"axis={axis}, chunks={k}")


@torch_op("concat")
def concat(layer: Layer) -> nn.Module:
    axis = as_int(layer.attrs["axis"])
    return Fn(lambda *xs: torch.cat(xs, dim=axis), f"axis={axis}")


@torch_op("channel_shuffle")
def channel_shuffle(layer: Layer) -> nn.Module:
    """ShuffleNet: [N, g, C/g, ...] -> transpose the two channel dims -> a contiguous copy."""
    g = as_int(layer.attrs["groups"])

    def shuffle(x: torch.Tensor) -> torch.Tensor:
        n, c, *rest = x.shape
        return x.reshape(n, g, c // g, *rest).transpose(1, 2).reshape(n, c, *rest)

    return Fn(shuffle, f"groups={g}")


class Parameter(nn.Module):
    """A learned tensor (class token, position table), returned as it is: ``forward()``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape) * 0.02)

    def forward(self) -> torch.Tensor:
        # Detached without autograd (inference), so hooks that follow grads (FlopCounterMode's
        # module tracker) do not try to on a leaf.
        return self.weight if torch.is_grad_enabled() else self.weight.detach()


@torch_op("parameter")
def parameter(layer: Layer) -> nn.Module:
    return Parameter(dims(layer.shape))


@torch_op("embedding")
def embedding(layer: Layer) -> nn.Module:
    return nn.Embedding(as_int(layer.attrs["num"]), as_int(layer.attrs["dim"]))


@torch_op("crop")
def crop(layer: Layer) -> nn.Module:
    """Centre crop: offset (H - h) // 2 on each spatial axis, a view."""
    (h, w), (oh, ow) = dims(layer.in_shapes[0][2:]), dims(layer.shape[2:])
    top, left = (h - oh) // 2, (w - ow) // 2
    return Fn(lambda x: x[:, :, top:top + oh, left:left + ow], f"size=[{oh}, {ow}], offset=[{top}, {left}]")


class Constant(nn.Module):
    """A registered buffer, returned as it is (zeros: its values never change a count)."""

    value: torch.Tensor

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("value", torch.zeros(shape))

    def forward(self) -> torch.Tensor:
        return self.value


@torch_op("constant")
def constant(layer: Layer) -> nn.Module:
    return Constant(dims(layer.shape))


_PADS: dict[str, dict[int, Any]] = {
    "constant": {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d},
    "reflect": {1: nn.ReflectionPad1d, 2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d},
    "replicate": {1: nn.ReplicationPad1d, 2: nn.ReplicationPad2d, 3: nn.ReplicationPad3d},
    "circular": {1: nn.CircularPad1d, 2: nn.CircularPad2d, 3: nn.CircularPad3d},
}


@torch_op("pad")
def pad(layer: Layer) -> nn.Module:
    """torch's padding module for the mode and the number of padded dims (F.pad beyond three)."""
    a = layer.attrs
    padding = tuple(int(p) for p in (a["padding"] if isinstance(a["padding"], tuple) else (a["padding"],)))
    mode, value = str(a["mode"]), float(a["value"])
    cls = _PADS[mode].get(len(padding) // 2)
    if cls is None:
        return Fn(lambda x: F.pad(x, padding, mode=mode, value=value), f"padding={list(padding)}, mode={mode}")
    return cls(padding, value) if mode == "constant" else cls(padding)  # type: ignore[no-any-return]


@torch_op("pixel_shuffle")
def pixel_shuffle(layer: Layer) -> nn.Module:
    return nn.PixelShuffle(as_int(layer.attrs["factor"]))
