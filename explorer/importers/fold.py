"""Block folding: module instances with identical layers become one block, chained runs a ``repeat``.

A *scope* is the set of layers a module (``layer1.1``) produced. A scope is folded when its module
is not a bare container (``Sequential``, ``ModuleList``), it is contiguous in execution order, has
exactly one output used outside it, reads no other layer by name in its attributes, and its
*structure* (ops, wiring, and every attribute except scalar numbers, with the module path stripped
from the layer names) occurs at least twice in the model. The outermost such scopes win. Each
structure is one block; the scalar attributes that differ between its instances become block
parameters (``out``, ``stride``...), passed as ``args``. Consecutive sibling instances with the
same arguments, each fed by the previous one, become a single layer with ``repeat: n``. Everything
else stays a plain layer (docs/import.md).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from explorer.importers.ir import Node, ident


CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
Position = tuple[int, str]  # (layer index in the body, attribute)


@dataclass
class Block:
    name: str
    description: str
    inputs: list[str]
    layers: list[Node]
    output: str
    params: list[str] = field(default_factory=list)
    module: str | None = None  # the container class each instance is (spec 'module:'), None for a leaf module


@dataclass
class Call:
    """A layer instantiating a block (``repeat`` chained copies)."""

    name: str
    block: str
    inputs: list[str]
    repeat: int = 1
    args: dict[str, Any] = field(default_factory=dict)


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
    signature: str  # the structure: everything but scalar numeric attributes
    body: list[Node]
    values: dict[Position, int | float]  # the scalar numeric attributes


def fold(nodes: Sequence[Node], outputs: Sequence[str]) -> Folded:
    """The layers with repeated module instances folded into blocks (see the module docstring)."""
    instances = _instances(nodes, outputs)
    counts = Counter(i.signature for i in instances)
    candidates = [i for i in instances if counts[i.signature] >= 2]
    while True:  # a structure chosen only once (its other instances sit inside bigger blocks) is not a block
        chosen = _outermost(candidates)
        chosen_counts = Counter(i.signature for i in chosen)
        single = {s for s, n in chosen_counts.items() if n < 2}
        if not single:
            return _assemble(nodes, outputs, chosen)
        candidates = [i for i in candidates if i.signature not in single]


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
    local = {n.name: _readable(_local(n.name, prefix), n.op) for n in body}
    if len(set(local.values())) != len(local):
        return None
    if any(n.attrs.get("shares") is not None and n.attrs["shares"] not in inside for n in body) or any(
            n.attrs.get("shares") in inside for n in (*nodes[:start], *nodes[end:])):
        return None  # a module instance called both inside and outside: 'shares' must name a layer in scope
    names = ["input"] + [f"input{k}" for k in range(1, len(inputs))]
    outside = dict(zip(inputs, names, strict=True))
    renamed = [Node(local[n.name], n.op, [_rename(r, local, outside) for r in n.inputs], _local_attrs(n.attrs, local),
                    n.scope, n.classes) for n in body]
    values = {(k, key): v for k, n in enumerate(renamed) for key, v in n.attrs.items() if _scalar(v)}
    shape = [[n.name, n.op, n.inputs, {k: ("#" if _scalar(v) else v) for k, v in n.attrs.items()}] for n in renamed]
    signature = json.dumps([*shape, local[exits[0]]], sort_keys=True, default=str)
    cls = body[0].classes[len(path) - 1] if len(body[0].classes) >= len(path) else "block"
    if cls in CONTAINERS:
        return None
    return _Instance(path, cls, start, end, inputs, exits[0], signature, renamed, values)


def _local_attrs(attrs: dict[str, Any], local: dict[str, str]) -> dict[str, Any]:
    """A layer's attributes inside a block: ``shares:`` names the block's own layer."""
    if attrs.get("shares") is None:
        return dict(attrs)
    return {**attrs, "shares": local[attrs["shares"]]}


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _local(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else name


def _readable(name: str, op: str) -> str:
    """A local name that is only an index (``0`` in a Sequential) gets its op: ``conv2d_0``."""
    return f"{op}_{name}" if name[:1].isdigit() else name


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
    groups: dict[str, list[_Instance]] = {}
    for inst in chosen:
        groups.setdefault(inst.signature, []).append(inst)
    block_of: dict[str, str] = {}
    params_of: dict[str, dict[Position, str]] = {}
    for signature, members in groups.items():
        name = _block_name(members[0].cls, folded.blocks)
        block_of[signature] = name
        params_of[signature] = _parameters(members)
        folded.blocks[name] = _block(name, members, params_of[signature])
    renamed: dict[str, str] = {}
    taken = {n.name for n in nodes}
    by_start = {run[0].start: run for run in _runs(chosen, params_of)}
    k = 0
    while k < len(nodes):
        run = by_start.get(k)
        if run is None:
            node = nodes[k]
            folded.layers.append(Node(node.name, node.op, [_follow(r, renamed) for r in node.inputs], node.attrs,
                                      node.scope, node.classes))
            k += 1
            continue
        name = _run_name(run, nodes, taken)
        first = run[0]
        args = {param: first.values[pos] for pos, param in params_of[first.signature].items()}
        folded.layers.append(Call(name, block_of[first.signature], [_follow(r, renamed) for r in first.inputs],
                                  len(run), args))
        for inst in run:
            renamed[inst.output] = name
        k = run[-1].end
    folded.outputs = [_follow(o, renamed) for o in outputs]
    return folded


def _parameters(members: list[_Instance]) -> dict[Position, str]:
    """Block parameters: the scalar attributes that differ between instances; positions whose values
    agree in every instance share one parameter (conv1.out and conv2.out are both ``planes``)."""
    varying = [pos for pos in members[0].values if len({m.values[pos] for m in members}) > 1]
    names: dict[Position, str] = {}
    pattern_name: dict[tuple[Any, ...], str] = {}
    used: set[str] = set()
    body = members[0].body
    for pos in varying:
        pattern = tuple(m.values[pos] for m in members)
        if pattern in pattern_name:
            names[pos] = pattern_name[pattern]
            continue
        layer, key = pos
        name = key if key not in used and key not in RESERVED else ident(f"{body[layer].name}_{key}")
        while name in used:
            name += "_"
        used.add(name)
        names[pos] = pattern_name[pattern] = name
    return names


RESERVED = {"batch", "resolution", "height", "width", "in", "input", "min", "max", "dim", "abs", "ceil", "floor",
            "round", "make_divisible", "i"}


def _block(name: str, members: list[_Instance], params: dict[Position, str]) -> Block:
    first = members[0]
    layers = []
    for k, node in enumerate(first.body):
        attrs = {key: (params[(k, key)] if (k, key) in params else v) for key, v in node.attrs.items()}
        layers.append(Node(node.name, node.op, node.inputs, attrs, node.scope, node.classes))
    where = ", ".join(".".join(m.path) for m in members[:3]) + (" ..." if len(members) > 3 else "")
    # The instance's module is a container (a row of its own in torchsummary) unless it is itself the module
    # of one of its layers (LayerNorm2d: permute, layernorm with module: LayerNorm2d, permute).
    leaf = any(n.scope == first.path and "module" in n.attrs for n in first.body)
    return Block(name, f"{first.cls} ({where})", ["input"] + [f"input{k}" for k in range(1, len(first.inputs))],
                 layers, _local_output(first), list(dict.fromkeys(params.values())),
                 None if leaf or first.cls == "block" else first.cls)


def _local_output(inst: _Instance) -> str:
    prefix = ident("_".join(inst.path)) + "_"
    op = next(n.op for n in inst.body if n.name == _readable(_local(inst.output, prefix), n.op)
              or n.name == _local(inst.output, prefix))
    return _readable(_local(inst.output, prefix), op)


def _follow(ref: str, renamed: dict[str, str]) -> str:
    node, _, index = ref.partition(":")
    return renamed[node] if node in renamed else ref


def _runs(chosen: list[_Instance], params_of: dict[str, dict[Position, str]]) -> list[list[_Instance]]:
    """Consecutive siblings with one structure and the same arguments, each fed by the previous one."""
    runs: list[list[_Instance]] = []
    for inst in chosen:
        last = runs[-1][-1] if runs else None
        if (last is not None and last.signature == inst.signature and last.end == inst.start
                and last.path[:-1] == inst.path[:-1] and inst.inputs == [last.output]
                and all(last.values[p] == inst.values[p] for p in params_of[inst.signature])):
            runs[-1].append(inst)
        else:
            runs.append([inst])
    return runs


def _run_name(run: list[_Instance], nodes: Sequence[Node], taken: set[str]) -> str:
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
    taken.add(name)
    return name


def _block_name(cls: str, blocks: dict[str, Block]) -> str:
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls).lower() or "block"
    base = ident(base)
    name, n = base, 2
    while name in blocks:
        name, n = f"{base}_{n}", n + 1
    return name
