"""One module per command group; each exposes ``register(subparsers)``."""

from __future__ import annotations

from explorer.commands import analyze, calibrate, compare, hardware, import_, measure, study

REGISTER = [analyze.register, hardware.register, measure.register, calibrate.register, study.register,
            compare.register, import_.register]
