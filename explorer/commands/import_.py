"""``explorer import``: a PyTorch factory or an ONNX file written as a spec (docs/import.md)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError


def register(sub: Any) -> None:
    p = sub.add_parser("import", help="write a spec from a PyTorch model (package.module:factory) or an .onnx file")
    p.add_argument("source", help="package.module:factory (e.g. torchvision.models:resnet50) or model.onnx")
    p.add_argument("-o", "--output", required=True, metavar="SPEC", help="the spec to write (.yaml)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=SHAPE",
                   help="an input and its traced shape, e.g. x=1,3,224,224 (default for torch: x=1,3,224,224; "
                        "ONNX: the file's shapes); repeat for several inputs")
    p.add_argument("--dynamic", default="batch,resolution", metavar="DIMS",
                   help="sizes kept as variables: batch, resolution, both (default) or none")
    p.add_argument("--kwargs", metavar="JSON", help="keyword arguments of the factory, a JSON object")
    p.add_argument("--allow-unknown", action="store_true",
                   help="write unsupported operators as zero-cost 'opaque' placeholders (listed in the "
                        "description) instead of failing")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from explorer.importers import import_model
    from explorer.outputs import check_file, write_atomic

    inputs = [parse_input(text) for text in args.input]
    dynamic = parse_dynamic(args.dynamic)
    reads = [args.source] if Path(args.source).suffix.lower() == ".onnx" else []
    out = check_file(args.output, (".yaml", ".yml"), "the spec", inputs=reads)
    if out.exists() and not args.force:
        raise ExplorerError(f"'{out}' exists; use --force to overwrite it")
    result = import_model(args.source, inputs=inputs, dynamic=dynamic, kwargs=args.kwargs,
                          allow_unknown=args.allow_unknown)

    def write(tmp: Path) -> None:
        tmp.write_text(result.text, encoding="utf-8")

    write_atomic(out, write)
    print(summary(out, result))
    return 0


def parse_input(text: str) -> tuple[str, tuple[int, ...]]:
    """``x=1,3,224,224`` (or ``1x3x224x224``) as ("x", (1, 3, 224, 224))."""
    name, sep, shape = text.partition("=")
    dims = [d for d in re.split(r"[,x]", shape.strip().strip("[]()")) if d.strip()]
    if not sep or not name.strip() or not dims or not all(d.strip().isdigit() and int(d) > 0 for d in dims):
        raise ExplorerError(f"--input: expected NAME=SHAPE with positive sizes, e.g. x=1,3,224,224, got '{text}'")
    return name.strip(), tuple(int(d) for d in dims)


def parse_dynamic(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return [] if parts == ["none"] else parts


def summary(out: Path, result: Any) -> str:
    graph = result.graph
    variables = ", ".join(f"{v.name}={v.default}" for v in graph.variables) or "none"
    lines = [f"wrote {out}: {result.layers} layers, {result.blocks} block(s); variables {variables}"]
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"placeholder (zero cost, not counted): {u.line}" for u in result.placeholders]
    return "\n".join(lines)
