"""The importers' neutral graph: explorer layers with module scopes, before folding and writing.

A front end (torch, onnx) turns its model into a :class:`Graph` of :class:`Node` objects whose
``op`` and ``attrs`` are already explorer's (docs/ops.md); :mod:`explorer.importers.fold` groups
them into blocks and :mod:`explorer.importers.writer` writes the spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Dim = int | str  # a number, or an explorer expression ("batch", "resolution", "dim(cat, 1)")


@dataclass
class Node:
    """One explorer layer: a unique flat name, the op, its inputs (names) and attributes.

    ``scope`` is the module path of the layer's owner (``("layer1", "0")`` for the add of a ResNet
    block, ``("layer1", "0", "conv1")`` for a convolution) and ``classes`` the module class at each
    level; folding groups layers by scope.
    """

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    scope: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unknown:
    """An operator the front end cannot map: its name, how often it occurs, and where."""

    what: str
    where: tuple[str, ...]

    @property
    def line(self) -> str:
        places = list(dict.fromkeys(self.where))
        shown = ", ".join(places[:3]) + (f", ... ({len(places) - 3} more places)" if len(places) > 3 else "")
        return f"unsupported operator {self.what}: {len(self.where)} occurrence(s), at {shown}"


@dataclass
class Variable:
    """A spec variable the importer declares (batch, resolution)."""

    name: str
    default: int
    low: int
    high: int
    description: str


@dataclass
class Graph:
    """A whole imported model: inputs (name -> shape), layers in execution order, outputs."""

    name: str
    source: str
    inputs: dict[str, list[Dim]]
    nodes: list[Node]
    outputs: list[str]
    variables: list[Variable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    placeholders: list[Unknown] = field(default_factory=list)
    fixed_inputs: dict[str, list[Dim]] = field(default_factory=dict)  # concrete sizes, if resolution fails


class Names:
    """Unique layer names (identifiers without dots) made from module paths."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self.taken: set[str] = set(taken or ())

    def layer(self, path: tuple[str, ...], op: str, leaf: bool) -> str:
        """A layer's name: its module path (a leaf module), or the path and the op; a path that starts
        with an index (a top-level ``Sequential``) starts with the op instead (``conv2d_0``)."""
        parts = path if leaf and path else (*path, op)
        if parts[0][:1].isdigit():
            parts = (op, *path)
        return self.make(*parts)

    def make(self, *parts: str) -> str:
        base = ident("_".join(p for p in parts if p)) or "layer"
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


def ident(text: str) -> str:
    """``layer1.0.conv1`` -> ``layer1_0_conv1``; a leading digit gets ``l`` before it."""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")
    name = re.sub(r"_+", "_", name)
    return f"l{name}" if name[:1].isdigit() else name


class Calls:
    """How the model calls each layer, for the spec's ``called:``, ``module:`` and ``shares:`` keys
    (docs/spec-language.md): module-hooking counters (thop, ptflops, torchstat...) see only modules.

    An op with a torch module class of its own (conv2d: nn.Conv2d, relu: nn.ReLU) is a module call
    when the module that runs it is an instance of that class: nothing to write for the class itself,
    ``module: LayerNorm2d`` for a subclass, ``shares: relu`` when the same module instance (one
    without weights) ran before. Anywhere else it is a function call inside another module's
    forward (``F.relu`` in GoogLeNet's BasicConv2d): ``called: functional``.
    """

    def __init__(self) -> None:
        self.first: dict[tuple[int, str], str] = {}  # (module instance, op) -> the layer of its first call

    def attrs(self, op: str, module: Any, name: str) -> dict[str, Any]:
        import torch.nn as nn

        from explorer.conventions.base import CLASSES

        names = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d") if op == "batchnorm" else (CLASSES.get(op),)
        bases = tuple(getattr(nn, n) for n in names if n is not None and hasattr(nn, n))
        if not bases:
            return {}
        if not isinstance(module, bases):
            return {"called": "functional"}
        out: dict[str, Any] = {}
        cls = type(module)
        if cls not in bases:
            out["module"] = cls.__name__
        key = (id(module), op)
        if key in self.first and not any(True for _ in module.parameters()):
            out["shares"] = self.first[key]
        self.first.setdefault(key, name)
        return out
