"""Activations: the torch.nn module of the same name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from explorer.torch.registry import as_int, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer

MODULES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "silu": nn.SiLU,
    "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish, "mish": nn.Mish,
}


def _plain(layer: Layer) -> nn.Module:
    return MODULES[layer.op]()


torch_op(*MODULES)(_plain)


@torch_op("leaky_relu")
def leaky_relu(layer: Layer) -> nn.Module:
    return nn.LeakyReLU(negative_slope=float(layer.attrs["negative_slope"]))


@torch_op("gelu")
def gelu(layer: Layer) -> nn.Module:
    return nn.GELU(approximate=str(layer.attrs["approximate"]))


@torch_op("softmax")
def softmax(layer: Layer) -> nn.Module:
    return nn.Softmax(dim=as_int(layer.attrs["axis"]))
