"""JSON Schema of specs, studies and hardware profiles (issue 12): shipped files are current, every
bundled file validates, broken ones do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from explorer.schema import KINDS, schema, shipped

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parent.parent
FILES = {"spec": [*sorted((ROOT / "specs").glob("*.yaml")), *sorted((ROOT / "tests" / "specs_issue9").glob("*.yaml"))],
         "study": sorted((ROOT / "studies").glob("*.yaml")),
         "hardware": sorted((ROOT / "hardware").glob("*.yaml"))}


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_schema_is_current(kind: str) -> None:
    assert json.loads(shipped(kind).read_text()) == schema(kind), \
        f"stale: run 'explorer schema {kind} -o {shipped(kind).relative_to(ROOT)}'"


@pytest.mark.parametrize("kind", KINDS)
def test_every_bundled_file_validates(kind: str) -> None:
    validator = jsonschema.Draft202012Validator(schema(kind))
    assert FILES[kind]
    for path in FILES[kind]:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, (path.name, errors[:3])


@pytest.mark.parametrize("kind,doc,fragment", [
    ("spec", {"name": "x", "inputs": {"x": [1, 3]}, "layers": [], "layres": []}, "layres"),
    ("spec", {"name": "x", "layers": []}, "inputs"),
    ("study", {"name": "s", "spec": "resnet50", "hardware": "t4", "search": {}}, "objectives"),
    ("study", {"name": "s", "spec": "resnet50", "hardware": "t4", "search": {},
               "objectives": [{"metric": "latency", "direction": "min"}]}, "min"),
    ("hardware", {"name": "d", "kind": "gpu", "peak": {"fp32": {"value": "1 TFLOP/s"}},
                  "memory": {"bandwidth": {"value": "1 TB/s", "source": "s"}, "capacity": {"value": "1 GB", "source": "s"}}},
     "source"),
])
def test_broken_files_are_rejected(kind: str, doc: dict, fragment: str) -> None:
    errors = [e.message for e in jsonschema.Draft202012Validator(schema(kind)).iter_errors(doc)]
    assert errors and any(fragment in m for m in errors), errors


def test_cli_prints_the_schema(run) -> None:
    code, out, _ = run("schema", "study")
    assert code == 0 and json.loads(out) == schema("study")
