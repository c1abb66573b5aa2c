"""One module per command group; each exposes ``register(subparsers)``."""

from __future__ import annotations

from explorer.commands import analyze, hardware

REGISTER = [analyze.register, hardware.register]
