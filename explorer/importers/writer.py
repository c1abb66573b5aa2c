"""Write an imported graph as a spec a person would keep: variables first, blocks, one flow-style
line per layer, ``inputs:`` only where a layer does not take the previous layer's output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from explorer.importers.fold import Block, Call, Folded
from explorer.importers.ir import Graph, Node


def render(graph: Graph, folded: Folded, description: str) -> str:
    """The spec text."""
    parts = [f"name: {_flow(graph.name)}", "description: |-", *[f"  {line}" for line in description.splitlines()],
             f"source: {_flow(graph.source)}"]
    if graph.variables:
        parts.append("variables:")
        parts += [f"  {v.name}: " + _flow({"default": v.default, "min": v.low, "max": v.high,
                                             "description": v.description}) for v in graph.variables]
    parts.append("inputs:")
    parts += [f"  {name}: {_flow(shape)}" for name, shape in graph.inputs.items()]
    if folded.blocks:
        parts += ["", "blocks:"]
        for block in folded.blocks.values():
            parts += _block(block)
    first = next(iter(graph.inputs))
    parts += ["", "layers:", *_layers(folded.layers, first, "  ")]
    parts += ["", f"outputs: {_flow(graph.outputs)}", ""]
    return "\n".join(parts)


def _block(block: Block) -> list[str]:
    lines = [f"  {block.name}:"]
    if block.description:
        lines.append(f"    description: {_flow(block.description)}")
    if block.module:
        lines.append(f"    module: {_flow(block.module)}")
    if block.params:
        lines.append(f"    params: {_flow({p: None for p in block.params})}")
    if block.inputs != ["input"]:
        lines.append(f"    inputs: {_flow(block.inputs)}")
    lines.append("    layers:")
    lines += _layers(block.layers, block.inputs[0], "      ")
    if block.output != block.layers[-1].name:
        lines.append(f"    output: {block.output}")
    return lines


def _layers(items: Sequence[Node | Call], first: str, indent: str) -> list[str]:
    lines, previous = [], first
    for item in items:
        entry = _entry(item, previous)
        lines.append(f"{indent}- {_flow(entry)}")
        previous = item.name
    return lines


def _entry(item: Node | Call, previous: str) -> dict[str, Any]:
    if isinstance(item, Call):
        entry: dict[str, Any] = {"name": item.name, "block": item.block}
        if item.repeat > 1:
            entry["repeat"] = item.repeat
        if item.args:
            entry["args"] = dict(item.args)
    else:
        entry = {"name": item.name, "op": item.op}
    implicit = [previous] if not (isinstance(item, Node) and item.op == "parameter") else []
    if item.inputs != implicit and item.inputs:
        entry["inputs"] = item.inputs[0] if len(item.inputs) == 1 else list(item.inputs)
    if isinstance(item, Node):
        entry.update(item.attrs)
    return entry


def _flow(value: Any) -> str:
    text = str(yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 20))
    return text.strip().removesuffix("\n...")
