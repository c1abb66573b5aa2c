from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.cli import main

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
REFS = json.loads((DATA / "torchvision_counts.json").read_text())


def ref_rows(*models: str) -> list[dict]:
    return [r for r in REFS["rows"] if r["model"] in models]


def overrides(row: dict) -> dict:
    values = {"resolution": row["resolution"], "batch": row["batch"]}
    if "width_mult" in row["kwargs"]:
        values["width"] = row["kwargs"]["width_mult"]
    return values


@pytest.fixture
def run(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
