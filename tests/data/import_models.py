"""Small torch models for tests/test_import.py, imported as ``import_models:NAME`` (tests/data on the path)."""

from __future__ import annotations

import torch
from torch import nn


class Unsupported(nn.Module):
    """A conv, then two operators explorer does not model (cumsum once, erf twice), then a pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cumsum(self.conv(x), dim=1)
        return self.pool(torch.erf(torch.erf(y))).flatten(1)


class WithUnused(nn.Module):
    """A linear layer and a parameter the forward never reads (an auxiliary head in eval)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 5)
        self.aux = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def unsupported() -> nn.Module:
    return Unsupported()


def with_unused() -> nn.Module:
    return WithUnused()


def not_a_module() -> int:
    return 3
