"""Small modules shared by the builders: a stateless function as a module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn


class Fn(nn.Module):
    """A stateless op as a module: ``forward(*inputs) = fn(*inputs)``; ``text`` shows in repr."""

    def __init__(self, fn: Callable[..., Any], text: str = "") -> None:
        super().__init__()
        self.fn = fn
        self.text = text

    def forward(self, *inputs: Any) -> Any:
        return self.fn(*inputs)

    def extra_repr(self) -> str:
        return self.text
