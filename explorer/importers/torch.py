"""PyTorch front end: ``package.module:factory`` -> torch.export (symbolic batch and resolution)
-> :class:`explorer.importers.ir.Graph`.

torch is imported here only, when an import runs. ATen operators are mapped by the table in
:mod:`explorer.importers.aten`; ``nn.MultiheadAttention`` (batch_first) becomes one ``attention``
layer; parameters used as tensors (class tokens, positional embeddings) become ``parameter`` layers.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from explorer.errors import ExplorerError
from explorer.importers import aten as table
from explorer.importers.ir import Calls, Dim, Graph, Names, Node, Unknown, Variable, ident
from explorer.importers.symbolic import expression

MHA = "MultiheadAttention"


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]


def load_factory(source: str, kwargs: str | None) -> Any:
    """``pkg.mod:factory`` called with the JSON ``kwargs``, an ``nn.Module`` in eval mode."""
    module_name, _, attr = source.partition(":")
    if not module_name or not attr:
        raise ExplorerError(f"source '{source}': expected package.module:factory or a .onnx file")
    args = _kwargs(kwargs)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an ImportError, or whatever the package raises while importing
        hint = ""
        if "torchvision::" in str(exc):  # its compiled operators do not load against this torch
            hint = ("; torchvision does not match the installed torch (e.g. a CUDA torchvision on a CPU "
                    "torch): install the matching build, e.g. pip install torchvision --index-url "
                    "https://download.pytorch.org/whl/cpu")
        raise ExplorerError(f"source '{source}': cannot import {module_name}: {_one_line(exc)}{hint}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ExplorerError(f"source '{source}': {module_name} has no attribute '{attr}'")
    try:
        model = factory(**args) if callable(factory) and not _is_module(factory) else factory
    except Exception as exc:
        raise ExplorerError(f"source '{source}': {attr}(**{args}) failed: {_one_line(exc)}") from None
    if not _is_module(model):
        raise ExplorerError(f"source '{source}': {attr} gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExplorerError(f"--kwargs: not JSON ({exc.msg} at character {exc.pos}): {text[:80]}") from None
    if not isinstance(value, dict):
        raise ExplorerError(f"--kwargs: expected a JSON object, got {text[:80]}")
    return value


def _is_module(obj: object) -> bool:
    from torch import nn

    return isinstance(obj, nn.Module)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def import_torch(source: str, model: Any, inputs: Sequence[InputSpec], dynamic: set[str]) -> Graph:
    """Trace ``model`` on random inputs of the given shapes and map its graph (unknown operators
    become ``opaque`` placeholders, listed in ``Graph.placeholders``)."""
    try:
        program = export(model, inputs, dynamic)
    except ExportFailed as exc:
        from explorer.importers.fx import import_fx

        return import_fx(source, model, inputs, dynamic, exc.reason)
    walker = _Walker(program, model, inputs, dynamic)
    graph = walker.run(source)
    graph.placeholders = walker.unknown
    return graph


def export(model: Any, inputs: Sequence[InputSpec], dynamic: set[str]) -> Any:
    """torch.export with batch (dim 0) and the spatial dims (2, 3 of rank-4 inputs) dynamic."""
    import torch
    from torch.export import Dim

    args, shapes = [], []
    for spec in inputs:
        dims: dict[int, Any] = {}
        size = list(spec.shape)
        if "batch" in dynamic and size:
            dims[0] = Dim.AUTO
            size[0] = max(size[0], 2)  # torch specializes sizes 0 and 1
        if "resolution" in dynamic and len(size) == 4:
            dims[2] = dims[3] = Dim.AUTO
        args.append(torch.randn(*size))
        shapes.append(dims or None)
    with _quiet(), torch.no_grad():
        try:
            return torch.export.export(model, tuple(args), dynamic_shapes=tuple(shapes))
        except Exception as exc:  # whatever export raises: the fx fallback says why
            raise ExportFailed(_one_line(exc)) from None


class ExportFailed(Exception):
    """torch.export could not trace the model (the fx fallback takes over)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextmanager
def _quiet() -> Iterator[None]:
    """torch.export logs symbolic-shape reasoning as warnings; a user needs none of it."""
    names = ("torch.fx.experimental.symbolic_shapes", "torch._dynamo", "torch.export", "torch._export")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class _Walker:
    """Walks the exported graph in order, emitting one :class:`Node` per mapped operator."""

    def __init__(self, program: Any, model: Any, inputs: Sequence[InputSpec], dynamic: set[str]) -> None:
        self.program, self.model, self.inputs, self.dynamic = program, model, inputs, dynamic
        self.names = Names()
        self.refs: dict[str, str] = {}  # fx node name -> layer name
        self.params: dict[str, str] = {}  # fx placeholder name -> state-dict key (parameters)
        self.buffers: dict[str, str] = {}  # fx placeholder name -> state-dict key (buffers read as tensors)
        self.used: set[str] = set()
        self.nodes: list[Node] = []
        self.unknown_at: dict[str, list[str]] = {}
        self.symbols: dict[str, str] = {}
        self.current: Any = None
        self.scope: Scope = Scope((), (), False)
        self.unused: list[str] = []
        self.fixed: dict[str, list[Dim]] = {}  # inputs whose size the model fixed (torch specialized it)
        self.calls = Calls()

    # -- the walk ---------------------------------------------------------------------------------

    def run(self, source: str) -> Graph:
        sig = self.program.graph_signature
        self.params = {**sig.inputs_to_parameters}
        self.buffers = {**sig.inputs_to_buffers}
        graph_inputs = self._graph_inputs()
        groups = self._mha_groups()
        done: set[str] = set()
        outputs: list[str] = []
        for node in self.program.graph.nodes:
            if node.op == "output":
                outputs = [self.refs[a.name] for a in _flat(node.args[0]) if a is not None and a.name in self.refs]
            elif node.op == "call_function" and node.name not in done and self._is_tensor_node(node):
                group = groups.get(node.name)
                if group:
                    self._attention(group)
                    done.update(n.name for n in group)
                else:
                    self._call(node)
        self._unused_parameters()
        name = ident(source.split()[0].split(":")[-1]) or "model"
        return Graph(name=name, source=source, inputs=graph_inputs, nodes=self.nodes, outputs=outputs,
                     variables=self._variables(), notes=self._notes(), fixed_inputs=self.fixed)

    def _graph_inputs(self) -> dict[str, list[Dim]]:
        user = [n for n in self.program.graph.nodes if n.op == "placeholder"
                and n.name in self.program.graph_signature.user_inputs]
        result: dict[str, list[Dim]] = {}
        for spec, node in zip(self.inputs, user, strict=True):
            sizes = list(node.meta["val"].shape)
            self._name_symbols(spec, sizes)
            name = ident(spec.name)
            self.refs[node.name] = name
            self.names.taken.add(name)
            result[name] = [self.dim(s) for s in sizes]
            if "resolution" in self.dynamic and len(sizes) == 4 and result[name][2:] == [spec.shape[2]] * 2 \
                    and "resolution" not in self.symbols.values():
                self.fixed[name] = list(result[name])
                result[name][2:] = ["resolution", "resolution"]
        return result

    def _name_symbols(self, spec: InputSpec, sizes: list[Any]) -> None:
        square = len(spec.shape) == 4 and spec.shape[2] == spec.shape[3]
        for axis, size in enumerate(sizes):
            if isinstance(size, int) or size.node.expr.is_number:
                continue
            key = str(size.node.expr)
            if axis == 0:
                self.symbols.setdefault(key, "batch")
            elif len(sizes) == 4 and axis >= 2:
                self.symbols.setdefault(key, "resolution" if square else ("height", "width")[axis - 2])

    def _call(self, node: Any) -> None:
        self.current = node
        self.scope = _scope(node)
        key = _aten_name(node.target)
        handler = table.ATEN.get(key)
        try:
            emit = handler(self, node.args) if handler else None
        except table.UNEXPECTED:  # an argument pattern the handler does not cover: unsupported
            emit = None
        if emit is table.ALIAS:
            self.refs[node.name] = self.ref(node.args[0])
        elif emit is None:
            self._unknown(node, key)
        else:
            self._emit(node, emit, key)

    def _emit(self, node: Any, emit: table.Emit, key: str) -> None:
        path, classes, leaf = self.scope
        name = self.names.layer(path, emit.op, leaf)
        module = self.model.get_submodule(".".join(path)) if path else self.model
        attrs = {**emit.attrs, **self.calls.attrs(emit.op, module, name)}
        self.nodes.append(Node(name, emit.op, emit.inputs, attrs, path, classes))
        self.refs[node.name] = name

    def _unknown(self, node: Any, key: str) -> None:
        path, classes, _ = self.scope
        where = ".".join(path) or "(top level)"
        self.unknown_at.setdefault(f"aten.{key}", []).append(where)
        shape = [self.dim(d) for d in self.out()]
        inputs = [self.ref(a) for a in _flat(node.args) if self.is_tensor(a)]
        name = self.names.make(*path, key)
        self.nodes.append(Node(name, "opaque", inputs, {"shape": shape, "what": f"aten.{key}"}, path, classes))
        self.refs[node.name] = name

    @property
    def unknown(self) -> list[Unknown]:
        return [Unknown(what, tuple(where)) for what, where in self.unknown_at.items()]

    # -- nn.MultiheadAttention as one layer ---------------------------------------------------------

    def _mha_groups(self) -> dict[str, list[Any]]:
        """The fx nodes of each batch_first nn.MultiheadAttention call, keyed by its first node."""
        groups: dict[str, list[Any]] = {}
        for node in self.program.graph.nodes:
            path = _mha_path(node)
            if path is None or node.op != "call_function":
                continue
            groups.setdefault(path, []).append(node)
        result: dict[str, list[Any]] = {}
        for path, nodes in groups.items():
            module = self.model.get_submodule(path)
            if getattr(module, "batch_first", False) and getattr(module, "_qkv_same_embed_dim", False):
                result[nodes[0].name] = nodes
        return result

    def _attention(self, group: list[Any]) -> None:
        inside = {n.name for n in group}
        path = _mha_path(group[0]) or ""
        module = self.model.get_submodule(path)
        sources = [a for n in group for a in _flat(n.args)
                   if hasattr(a, "name") and a.name not in inside and a.name not in self.params
                   and a.op != "get_attr" and self._is_tensor_node(a)]
        queries = list(dict.fromkeys(a.name for a in sources))
        exits = [n for n in group if any(u.name not in inside for u in n.users) and self._is_tensor_node(n)]
        self.current = exits[-1] if exits else group[-1]
        inner = _scope(group[0], upto=path)
        self.scope = Scope(inner.path, inner.classes, True)  # the layer takes the module's name
        for name in self.params:
            if self.params[name].startswith(path + "."):
                self.used.add(name)
        if len(queries) != 1 or len(exits) != 1:
            self._unknown(self.current, "multi_head_attention (cross-attention)")
            for n in group:
                self.refs.setdefault(n.name, self.refs[self.current.name])
            return
        attrs = {"heads": module.num_heads, "bias": module.in_proj_bias is not None}
        emit = table.Emit("attention", [self.refs[queries[0]]], table.trim(attrs, {"bias": True}))
        self._emit(exits[0], emit, "attention")
        for n in group:
            self.refs.setdefault(n.name, self.refs[exits[0].name])

    # -- parameters --------------------------------------------------------------------------------

    def _unused_parameters(self) -> None:
        """Parameters the traced forward never reads (auxiliary heads in eval): parameter layers, so
        that the spec's params equal the model's."""
        for fx_name, key in self.params.items():
            if fx_name in self.used:
                continue
            node = next(n for n in self.program.graph.nodes if n.name == fx_name)
            path = tuple(key.split(".")[:-1])
            name = self.names.make("unused", key)
            shape = [int(s) for s in node.meta["val"].shape]
            self.nodes.append(Node(name, "parameter", [], {"shape": shape}, path, ()))
            self.used.add(fx_name)
            self.unused.append(key)

    def _variables(self) -> list[Variable]:
        found = dict.fromkeys([*self.symbols.values(), *(["resolution"] if self.fixed else [])])
        first = self.inputs[0].shape if self.inputs else ()
        result = []
        for name in found:
            if name == "batch":
                result.append(Variable("batch", first[0], 1, 1024, "images per forward pass"))
            else:
                axis = {"resolution": 2, "height": 2, "width": 3}[name]
                value = first[axis]
                result.append(Variable(name, value, min(16, value), max(4096, value),
                                       f"input {'height and width' if name == 'resolution' else name} in pixels"))
        return result

    def _notes(self) -> list[str]:
        notes = []
        if self.unused:
            notes.append(f"{len(self.unused)} parameter tensor(s) the traced forward does not read are kept as "
                         f"'parameter' layers (unused_*) so params match the model: " + ", ".join(self.unused[:6])
                         + (" ..." if len(self.unused) > 6 else ""))
        if self.fixed:
            size = next(iter(self.fixed.values()))[2]
            notes.append(f"The model fixes its input size (torch.export specialized it to {size}); the spec keeps "
                         "'resolution' as a variable, where it stands for the same layers built for that input "
                         "size (learned tensors sized by the token count follow it).")
        return notes

    # -- the Context protocol for the handlers -----------------------------------------------------

    def ref(self, arg: Any, partner: Any = None) -> str:
        if arg.name in self.params or arg.name in self.buffers:
            return self._parameter(arg, partner)
        if arg.name not in self.refs:
            raise ExplorerError(f"import: tensor '{arg.name}' is used before it is defined")
        return self.refs[arg.name]

    def _parameter(self, arg: Any, partner: Any) -> str:
        """A parameter read as a tensor becomes a ``parameter`` layer (a buffer a ``constant`` one),
        placed before its consumer; a dim it shares with the tensor it is combined with is written
        ``dim(that, k)``, so that a positional embedding follows the token count."""
        if arg.name in self.refs:
            return self.refs[arg.name]
        op = "parameter" if arg.name in self.params else "constant"
        key = self.params.get(arg.name) or self.buffers[arg.name]
        sizes = [int(s) for s in arg.meta["val"].shape]
        shape: list[Dim] = list(sizes)
        if partner is not None and self.is_tensor(partner) and partner.name not in self.params \
                and partner.name not in self.buffers:
            other = list(partner.meta["val"].shape)
            other_name = self.ref(partner)
            for k in range(1, min(len(sizes), len(other)) + 1):
                if sizes[-k] > 1 and other[-k] != 1:  # broadcasting: then both are the same size
                    shape[-k] = f"dim({other_name}, {len(other) - k})"
        path = tuple(key.split(".")[:-1])
        name = self.names.make(*key.split("."))
        self.nodes.append(Node(name, op, [], {"shape": shape}, path, ()))
        self.refs[arg.name] = name
        self.used.add(arg.name)
        return name

    def shape(self, arg: Any) -> tuple[Any, ...]:
        return tuple(arg.meta["val"].shape)

    def out(self) -> tuple[Any, ...]:
        val = self.current.meta["val"]
        val = val[0] if isinstance(val, (list, tuple)) else val
        return tuple(val.shape)

    def dim(self, value: Any) -> Dim:
        value = value.meta["val"] if hasattr(value, "meta") else value
        if isinstance(value, int):
            return value
        return expression(value.node.expr, self.symbols)

    def weight(self, arg: Any) -> tuple[int, ...] | None:
        if not hasattr(arg, "name") or arg.name not in self.params:
            return None
        self.used.add(arg.name)
        return tuple(int(s) for s in arg.meta["val"].shape)

    def is_tensor(self, arg: Any) -> bool:
        return hasattr(arg, "meta") and _tensor_like(arg.meta.get("val"))

    def _is_tensor_node(self, node: Any) -> bool:
        return _tensor_like(node.meta.get("val"))


def _tensor_like(val: Any) -> bool:
    if isinstance(val, (list, tuple)):
        return bool(val) and _tensor_like(val[0])
    return hasattr(val, "shape") and hasattr(val, "dtype")


def _flat(args: Any) -> Iterator[Any]:
    if isinstance(args, (list, tuple)):
        for a in args:
            yield from _flat(a)
    else:
        yield args


def _aten_name(target: Any) -> str:
    """``aten.relu_.default`` -> ``relu``; ``aten.add.Tensor`` -> ``add``."""
    text = str(target)
    parts = text.split(".")
    name = parts[1] if len(parts) >= 2 and parts[0] == "aten" else getattr(target, "__name__", text)
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name


@dataclass(frozen=True)
class Scope:
    """Where a node sits: the module path, the class name at each level, and whether the innermost
    module is a torch.nn leaf (a Conv2d, a ReLU), whose name the layer then takes as it is."""

    path: tuple[str, ...]
    classes: tuple[str, ...]
    leaf: bool

    def __iter__(self) -> Iterator[Any]:
        return iter((self.path, self.classes, self.leaf))


CONTAINERS = ("Sequential", "ModuleList", "ModuleDict", MHA)


def _scope(node: Any, upto: str | None = None) -> Scope:
    """The module path of a node (the innermost module that called it) and the class at each level."""
    stack = [v for v in node.meta.get("nn_module_stack", {}).values() if isinstance(v, tuple)]
    path: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    qualified = ""
    for module_path, cls in stack:
        text = module_path if isinstance(module_path, str) else ""
        if not text or text.startswith("_empty"):
            continue
        parts = tuple(p for p in _clean_path(text).split(".") if p)
        qualified = f"{cls.__module__}.{cls.__name__}" if isinstance(cls, type) else str(cls)
        short = qualified.rsplit(".", 1)[-1]
        if len(parts) > len(path):
            classes = (*classes, *([short] * (len(parts) - len(classes))))[: len(parts)]
            path = parts
        if upto is not None and _clean_path(text) == upto:
            break
    leaf = qualified.startswith("torch.nn.modules.") and not qualified.endswith(CONTAINERS)
    return Scope(path, classes, leaf)


def _clean_path(text: str) -> str:
    """nn_module_stack paths as the state dict writes them (``L['self'].layer1[0]`` -> ``layer1.0``)."""
    text = text.replace("L['self'].", "").replace("L['self']", "")
    for a, b in (("['", "."), ("']", ""), ("[", "."), ("]", ""), ("._modules.", ".")):
        text = text.replace(a, b)
    return text.strip(".")


def _mha_path(node: Any) -> str | None:
    for module_path, cls in reversed(list(node.meta.get("nn_module_stack", {}).values())):
        name = cls.__name__ if isinstance(cls, type) else str(cls)
        if name.endswith(MHA):
            return _clean_path(module_path)
    return None
