"""Activations: the torch.nn module of the same name (leaky_relu at torch's default slope 0.01)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from explorer.torch.registry import as_int, torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer

MODULES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    "silu": nn.SiLU, "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish,
}


def _plain(layer: Layer) -> nn.Module:
    return MODULES[layer.op]()


torch_op(*MODULES)(_plain)


@torch_op("gelu")
def gelu(layer: Layer) -> nn.Module:
    return nn.GELU(approximate=str(layer.attrs["approximate"]))


@torch_op("softmax")
def softmax(layer: Layer) -> nn.Module:
    return nn.Softmax(dim=as_int(layer.attrs["axis"]))
