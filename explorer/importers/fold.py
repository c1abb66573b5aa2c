"""Block folding: module instances with identical layers become one block, chained runs a ``repeat``.

A *scope* is the set of layers a module (``layer1.1``) produced. A scope is folded when it is
contiguous in execution order, has exactly one output used outside it, reads no other layer by
name in its attributes, and its *signature* (ops, attributes and wiring, with the module path
stripped from the layer names) occurs at least twice in the model. The outermost such scopes win;
each distinct signature is one block, and consecutive sibling instances where each one feeds the
next become a single layer with ``repeat: n``. Everything else stays a plain layer (docs/import.md).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from explorer.importers.ir import Node, ident


@dataclass
class Block:
    name: str
    description: str
    inputs: list[str]
    layers: list[Node]
    output: str


@dataclass
class Call:
    """A layer instantiating a block (``repeat`` chained copies)."""

    name: str
    block: str
    inputs: list[str]
    repeat: int = 1


@dataclass
class Folded:
    blocks: dict[str, Block] = field(default_factory=dict)
    layers: list[Node | Call] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class _Instance:
    path: tuple[str, ...]
    cls: str
    start: int
    end: int  # exclusive
    inputs: list[str]
    output: str
    signature: str
    body: list[Node]


def fold(nodes: Sequence[Node], outputs: Sequence[str]) -> Folded:
    """The layers with repeated module instances folded into blocks (see the module docstring)."""
    instances = _instances(nodes, outputs)
    counts = Counter(i.signature for i in instances)
    chosen = _outermost([i for i in instances if counts[i.signature] >= 2])
    return _assemble(nodes, outputs, chosen)


def _instances(nodes: Sequence[Node], outputs: Sequence[str]) -> list[_Instance]:
    spans: dict[tuple[str, ...], list[int]] = {}
    for k, node in enumerate(nodes):
        for depth in range(1, len(node.scope) + 1):
            spans.setdefault(node.scope[:depth], []).append(k)
    used_by: dict[str, set[int]] = {}
    for k, node in enumerate(nodes):
        for ref in node.inputs:
            used_by.setdefault(ref.split(":")[0], set()).add(k)
    result = []
    for path, members in spans.items():
        if len(members) < 2 or members[-1] - members[0] + 1 != len(members):
            continue
        inst = _instance(nodes, path, members[0], members[-1] + 1, used_by, set(outputs))
        if inst is not None:
            result.append(inst)
    return result


def _instance(nodes: Sequence[Node], path: tuple[str, ...], start: int, end: int,
              used_by: dict[str, set[int]], graph_outputs: set[str]) -> _Instance | None:
    body = list(nodes[start:end])
    inside = {n.name for n in body}
    if any("dim(" in json.dumps(n.attrs) for n in body):
        return None
    exits = [n.name for n in body if n.name in graph_outputs
             or any(not start <= k < end for k in used_by.get(n.name, ()))]
    if len(exits) != 1:
        return None
    inputs = list(dict.fromkeys(r for n in body for r in n.inputs if r.split(":")[0] not in inside))
    if not inputs:
        return None
    prefix = ident("_".join(path)) + "_"
    local = {n.name: _local(n.name, prefix) for n in body}
    if len(set(local.values())) != len(local):
        return None
    names = ["input"] + [f"input{k}" for k in range(1, len(inputs))]
    outside = dict(zip(inputs, names, strict=True))
    renamed = [Node(local[n.name], n.op, [_rename(r, local, outside) for r in n.inputs], dict(n.attrs), n.scope,
                    n.classes) for n in body]
    signature = json.dumps([[n.name, n.op, n.inputs, n.attrs] for n in renamed] + [local[exits[0]]],
                           sort_keys=True, default=str)
    cls = body[0].classes[len(path) - 1] if len(body[0].classes) >= len(path) else "block"
    return _Instance(path, cls, start, end, inputs, exits[0], signature, renamed)


def _local(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else name


def _rename(ref: str, local: dict[str, str], outside: dict[str, str]) -> str:
    if ref in outside:
        return outside[ref]
    node, _, index = ref.partition(":")
    return local[node] + (f":{index}" if index else "")


def _outermost(candidates: list[_Instance]) -> list[_Instance]:
    chosen: list[_Instance] = []
    for inst in sorted(candidates, key=lambda i: (len(i.path), i.start)):
        if all(inst.end <= c.start or inst.start >= c.end for c in chosen):
            chosen.append(inst)
    return sorted(chosen, key=lambda i: i.start)


def _assemble(nodes: Sequence[Node], outputs: Sequence[str], chosen: list[_Instance]) -> Folded:
    folded = Folded()
    block_of: dict[str, str] = {}
    for inst in chosen:
        if inst.signature not in block_of:
            block_of[inst.signature] = _block_name(inst.cls, folded.blocks)
            folded.blocks[block_of[inst.signature]] = Block(
                block_of[inst.signature], f"{inst.cls} ({'.'.join(inst.path)} and others alike)",
                ["input"] + [f"input{k}" for k in range(1, len(inst.inputs))], inst.body, _local_output(inst))
    renamed: dict[str, str] = {}
    runs = _runs(chosen)
    by_start = {run[0].start: run for run in runs}
    k = 0
    while k < len(nodes):
        run = by_start.get(k)
        if run is None:
            node = nodes[k]
            folded.layers.append(Node(node.name, node.op, [_follow(r, renamed) for r in node.inputs], node.attrs,
                                      node.scope, node.classes))
            k += 1
            continue
        name = _run_name(run, nodes)
        folded.layers.append(Call(name, block_of[run[0].signature], [_follow(r, renamed) for r in run[0].inputs],
                                  len(run)))
        for inst in run:
            renamed[inst.output] = name
        k = run[-1].end
    folded.outputs = [_follow(o, renamed) for o in outputs]
    return folded


def _local_output(inst: _Instance) -> str:
    prefix = ident("_".join(inst.path)) + "_"
    return _local(inst.output, prefix)


def _follow(ref: str, renamed: dict[str, str]) -> str:
    node, _, index = ref.partition(":")
    return renamed[node] if node in renamed else ref


def _runs(chosen: list[_Instance]) -> list[list[_Instance]]:
    """Consecutive siblings with one signature, each fed by the previous one's output."""
    runs: list[list[_Instance]] = []
    for inst in chosen:
        last = runs[-1][-1] if runs else None
        if (last is not None and last.signature == inst.signature and last.end == inst.start
                and last.path[:-1] == inst.path[:-1] and inst.inputs == [last.output]):
            runs[-1].append(inst)
        else:
            runs.append([inst])
    return runs


def _run_name(run: list[_Instance], nodes: Sequence[Node]) -> str:
    taken = {n.name for n in nodes}
    first, last = run[0].path, run[-1].path
    if len(run) == 1:
        base = ident("_".join(first))
    else:
        parent = first[:-1]
        whole = all(n.scope[: len(parent)] != parent or run[0].start <= k < run[-1].end for k, n in enumerate(nodes))
        base = ident("_".join(parent)) if whole and parent else ident("_".join(first)) + f"to{last[-1]}"
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _block_name(cls: str, blocks: dict[str, Block]) -> str:
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls).lower() or "block"
    base = ident(base)
    name, n = base, 2
    while name in blocks:
        name, n = f"{base}_{n}", n + 1
    return name
