"""The torch op table: one builder per explorer op, registered with ``@torch_op("conv2d")``.

A builder receives a :class:`explorer.graph.Layer` of a graph built at one configuration (every
variable bound, so shapes and attributes are sympy numbers) and returns an ``nn.Module`` whose
``forward(*inputs)`` returns the layer's output (a tuple for multi-output ops: split, chunk).
This module imports no torch: the builders live in the sibling modules, loaded by
:func:`explorer.torch.load_builders`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from explorer.ops.base import pair

if TYPE_CHECKING:
    from torch import nn

    from explorer.graph import Layer

Builder = Callable[["Layer"], "nn.Module"]
TORCH_OPS: dict[str, Builder] = {}


def torch_op(*names: str) -> Callable[[Builder], Builder]:
    """Register one builder for one or several explorer ops: ``@torch_op("relu")``."""

    def register(fn: Builder) -> Builder:
        for name in names:
            TORCH_OPS[name] = fn
        return fn

    return register


def as_int(value: Any) -> int:
    """A bound sympy integer (or a Python number) as int."""
    return int(value)


def ints(value: Any) -> tuple[int, int]:
    """An int-or-pair attribute (kernel, stride...) as an (h, w) tuple of ints."""
    h, w = pair(value)
    return int(h), int(w)


def dims(shape: Any) -> tuple[int, ...]:
    """A bound shape as a tuple of ints."""
    return tuple(int(d) for d in shape)
