"""One module per command group; each exposes ``register(subparsers)``."""

from __future__ import annotations

from explorer.commands import analyze, calibrate, compare, hardware, study

REGISTER = [analyze.register, hardware.register, calibrate.register, study.register, compare.register]
