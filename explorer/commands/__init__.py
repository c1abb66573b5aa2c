"""One module per command group; each exposes ``register(subparsers)``."""

from __future__ import annotations

from explorer.commands import analyze, compare, hardware, measure, study

REGISTER = [analyze.register, hardware.register, study.register, compare.register, measure.register]
