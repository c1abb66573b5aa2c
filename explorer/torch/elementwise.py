"""Element-wise arithmetic with broadcasting: add/mul of k inputs chain k - 1 binary ops."""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Any

from torch import nn

from explorer.torch.base import Fn
from explorer.torch.registry import torch_op

if TYPE_CHECKING:
    from explorer.graph import Layer

_BINARY = {"add": operator.add, "mul": operator.mul, "sub": operator.sub, "div": operator.truediv}


def _fold(fn: Any) -> Any:
    return lambda *xs: functools.reduce(fn, xs)


@torch_op(*_BINARY)
def nary(layer: Layer) -> nn.Module:
    return Fn(_fold(_BINARY[layer.op]), layer.op)


@torch_op("scale")
def scale(layer: Layer) -> nn.Module:
    value = float(layer.attrs["value"])
    return Fn(lambda x: x * value, f"value={value}")
