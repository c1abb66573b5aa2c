"""JSON Schema of the three file formats (specs, studies, hardware profiles), generated from the
pydantic models that validate them, for editors (yaml-language-server) and other tools.

The schemas describe structure (keys, types, required entries); the loaders check more than a
schema can say (expressions, references between layers, units, shapes) and remain the authority.
The files shipped in ``explorer/schemas/`` are these, written by ``explorer schema KIND -o FILE``;
a test fails when they are stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("spec", "study", "hardware")
SHIPPED = Path(__file__).resolve().parent / "schemas"
_INTERNAL = {"spec": ("path", "lines")}  # fields of the model that are not part of the file
_TITLES = {"spec": "explorer spec (specs/*.yaml)", "study": "explorer study (studies/*.yaml)",
           "hardware": "explorer hardware profile (hardware/*.yaml)"}


def _model(kind: str) -> Any:
    if kind == "spec":
        from explorer.spec import Spec

        return Spec
    if kind == "study":
        from explorer.study.config import StudyFile

        return StudyFile
    if kind == "hardware":
        from explorer.hardware.profile import ProfileFile

        return ProfileFile
    from explorer.errors import ExplorerError
    from explorer.errors import did_you_mean

    raise ExplorerError(f"unknown schema '{kind}'{did_you_mean(kind, KINDS)}; one of {', '.join(KINDS)}")


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one kind of file."""
    out: dict[str, Any] = _model(kind).model_json_schema()
    for name in _INTERNAL.get(kind, ()):
        out.get("properties", {}).pop(name, None)
        if name in out.get("required", []):
            out["required"].remove(name)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **out, "title": _TITLES[kind]}


def shipped(kind: str) -> Path:
    """The schema file shipped with the package."""
    return SHIPPED / f"{kind}.schema.json"
