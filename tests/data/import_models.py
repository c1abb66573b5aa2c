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


class NewOps(nn.Module):
    """conv1d, conv3d, pixel shuffle, three paddings, bicubic and nearest upsampling, a buffer used as a
    tensor, mish and a leaky ReLU with its own slope (the batch stays a variable)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.c3 = nn.Conv3d(2, 4, 3, padding=1)
        self.ps = nn.PixelShuffle(2)
        self.pad = nn.ReflectionPad2d(1)
        self.zp = nn.ZeroPad2d((1, 2, 0, 1))
        self.up = nn.Upsample(scale_factor=2, mode="bicubic", align_corners=False)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.act = nn.Mish()
        self.lr = nn.LeakyReLU(0.2)
        self.register_buffer("mask", torch.ones(1, 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        y = self.c1(x.flatten(2))  # [n, 8, 16]
        z = self.c3(y.reshape(n, 2, 4, 4, 4)).reshape(n, 16, 4, 4)
        z = self.zp(self.pad(self.ps(z)))  # [n, 4, 8, 8] -> [n, 4, 10, 10] -> [n, 4, 11, 13]
        z = self.up2(self.up(z) * self.mask)
        z = torch.nn.functional.pad(z, (1, 1, 1, 1), mode="replicate")
        return self.lr(self.act(z))


def new_ops() -> nn.Module:
    return NewOps()
