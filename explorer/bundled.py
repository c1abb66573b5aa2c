"""Where the bundled specs, hardware profiles and studies are: ``specs/``, ``hardware/`` and
``studies/`` at the top of a source checkout (an editable install reads them there), or
``explorer/_bundled/`` inside an installed wheel (setup.py copies them in when the wheel is built).
Names resolve from any directory: ``explorer analyze resnet50``, ``explorer study run quickstart``."""

from __future__ import annotations

from pathlib import Path

KINDS = ("specs", "hardware", "studies")
_HERE = Path(__file__).resolve().parent


def folder(kind: str) -> Path:
    """The folder of one kind of bundled file."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of bundled file {kind!r}; one of {', '.join(KINDS)}")
    installed = _HERE / "_bundled" / kind
    return installed if installed.is_dir() else _HERE.parent / kind
