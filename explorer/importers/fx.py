"""The fallback when torch.export cannot trace a model: ``torch.fx.symbolic_trace`` + ShapeProp.

fx keeps the torch.nn leaf modules as calls (``call_module``), so they are mapped by module class
(:data:`MODULES`); functions and tensor methods by name (:data:`FUNCTIONS`). Shapes are the traced
(concrete) ones: the inputs are still written with ``batch`` and ``resolution``, and
:func:`explorer.importers.import_model` checks that the spec builds at other sizes (else it keeps the
traced sizes). Functions called inside a custom module carry no module path here, so blocks fold
less than with torch.export.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from explorer.errors import ExplorerError
from explorer.importers.aten import UNEXPECTED, Emit, merged_range, pair, trim
from explorer.importers.ir import Calls, Dim, Graph, Names, Node, Unknown, Variable, ident

ModuleHandler = Callable[[Any, "_FxWalker", Any], "Emit | None"]
MODULES: dict[str, ModuleHandler] = {}


def module(*names: str) -> Callable[[ModuleHandler], ModuleHandler]:
    def register(fn: ModuleHandler) -> ModuleHandler:
        for name in names:
            MODULES[name] = fn
        return fn

    return register


def import_fx(source: str, model: Any, inputs: Sequence[Any], dynamic: set[str], reason: str) -> Graph:
    """Trace with fx and map; ``reason`` is why torch.export failed (said in the notes)."""
    import torch
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        gm = symbolic_trace(model)
        with torch.no_grad():
            ShapeProp(gm).propagate(*[torch.randn(*spec.shape) for spec in inputs])
    except Exception as exc:
        raise ExplorerError(f"torch.export could not trace the model ({reason}), nor could torch.fx: "
                            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
                            ) from None
    walker = _FxWalker(gm, inputs, dynamic)
    graph = walker.run(source)
    graph.notes.insert(0, f"Traced with torch.fx (torch.export failed: {reason}).")
    return graph


class _FxWalker:
    def __init__(self, gm: Any, inputs: Sequence[Any], dynamic: set[str]) -> None:
        self.gm, self.inputs, self.dynamic = gm, inputs, dynamic
        self.modules = dict(gm.named_modules())
        self.names = Names()
        self.refs: dict[str, str] = {}
        self.nodes: list[Node] = []
        self.used: set[str] = set()  # parameter names (state-dict keys) read
        self.unknown_at: dict[str, list[str]] = {}
        self.fixed: dict[str, list[Dim]] = {}
        self.current: Any = None
        self.calls = Calls()

    def run(self, source: str) -> Graph:
        graph_inputs: dict[str, list[Dim]] = {}
        outputs: list[str] = []
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        for spec, node in zip(self.inputs, placeholders, strict=False):
            name = ident(spec.name)
            self.names.taken.add(name)
            self.refs[node.name] = name
            graph_inputs[name] = self._symbolic(name, list(spec.shape))
        for node in self.gm.graph.nodes:
            if node.op in ("call_module", "call_function", "call_method", "get_attr") and _tensor(node):
                self._node(node)
            elif node.op == "output":
                outputs = [self.refs[a.name] for a in _flat(node.args[0]) if hasattr(a, "name") and a.name in self.refs]
        notes = self._unused()
        return Graph(name=ident(source.split()[0].split(":")[-1]) or "model", source=source, inputs=graph_inputs,
                     nodes=self.nodes, outputs=outputs, variables=self._variables(), notes=notes,
                     placeholders=[Unknown(w, tuple(p)) for w, p in self.unknown_at.items()],
                     fixed_inputs=self.fixed)

    def _symbolic(self, name: str, shape: list[int]) -> list[Dim]:
        dims: list[Dim] = list(shape)
        if "batch" in self.dynamic and dims:
            dims[0] = "batch"
        if "resolution" in self.dynamic and len(shape) == 4 and shape[2] == shape[3]:
            dims[2] = dims[3] = "resolution"
        if dims != shape:
            self.fixed[name] = list(shape)
        return dims

    def _variables(self) -> list[Variable]:
        first = self.inputs[0].shape
        result = []
        if "batch" in self.dynamic:
            result.append(Variable("batch", first[0], 1, 1024, "images per forward pass"))
        if "resolution" in self.dynamic and len(first) == 4 and first[2] == first[3]:
            result.append(Variable("resolution", first[2], min(16, first[2]), max(4096, first[2]),
                                   "input height and width in pixels"))
        return result

    def _node(self, node: Any) -> None:
        self.current = node
        if node.op == "get_attr":
            self._parameter(node)
            return
        if node.op == "call_module":
            mod = self.modules[node.target]
            handler = MODULES.get(type(mod).__name__)
            try:
                emit = handler(mod, self, node) if handler else None
            except UNEXPECTED:
                emit = None
            key, path = type(mod).__name__, tuple(str(node.target).split("."))
            if emit is not None:
                self.used.update(f"{node.target}.{p}" for p, _ in mod.named_parameters())
        else:
            key, path = _function_name(node), ()
            handler_f = FUNCTIONS.get(key)
            try:
                emit = handler_f(self, node) if handler_f else None
            except UNEXPECTED:
                emit = None
        if emit is ALIAS_FX:
            self.refs[node.name] = self.ref(node.args[0])
            return
        if emit is None:
            self._unknown(node, key, path)
            return
        name = self.names.layer(path, emit.op, True) if path else self.names.make(node.name)
        owner = self.modules[node.target] if node.op == "call_module" else None  # fx: no module of a function
        attrs = {**emit.attrs, **self.calls.attrs(emit.op, owner, name)}
        self.nodes.append(Node(name, emit.op, emit.inputs, attrs, path[:-1] if path else (), ()))
        self.refs[node.name] = name

    def _unknown(self, node: Any, key: str, path: tuple[str, ...]) -> None:
        self.unknown_at.setdefault(key, []).append(".".join(path) or node.name)
        inputs = [self.ref(a) for a in _flat(node.args) if hasattr(a, "name") and a.name in self.refs]
        name = self.names.make(*path) if path else self.names.make(node.name)
        self.nodes.append(Node(name, "opaque", inputs, {"shape": self.out_dims(), "what": key}, (), ()))
        self.refs[node.name] = name

    def _parameter(self, node: Any) -> None:
        name = self.names.make(str(node.target))
        shape = [int(s) for s in node.meta["tensor_meta"].shape]
        self.nodes.append(Node(name, "parameter", [], {"shape": shape}, (), ()))
        self.refs[node.name] = name
        self.used.add(str(node.target))

    def _unused(self) -> list[str]:
        unused = [k for k, _ in self.gm.named_parameters() if k not in self.used]
        for key in unused:
            shape = [int(s) for s in self.gm.get_parameter(key).shape]
            self.nodes.append(Node(self.names.make("unused", key), "parameter", [], {"shape": shape}, (), ()))
        if not unused:
            return []
        return [f"{len(unused)} parameter tensor(s) the traced forward does not read are kept as 'parameter' "
                f"layers (unused_*) so params match the model: " + ", ".join(unused[:6])]

    # -- helpers for the handlers --------------------------------------------------------------------

    def ref(self, arg: Any) -> str:
        if not hasattr(arg, "name") or arg.name not in self.refs:
            raise ExplorerError(f"import: '{arg}' is not a tensor defined before its use")
        return self.refs[arg.name]

    def shape(self, arg: Any) -> list[int]:
        return [int(s) for s in arg.meta["tensor_meta"].shape]

    def out_dims(self) -> list[Dim]:
        return self._dims(self.shape(self.current))

    def _dims(self, shape: list[int]) -> list[Dim]:
        """Traced sizes, with the batch written as ``batch`` where dim 0 is the traced batch."""
        dims: list[Dim] = list(shape)
        if "batch" in self.dynamic and dims and self.inputs and dims[0] == self.inputs[0].shape[0]:
            dims[0] = "batch"
        return dims


ALIAS_FX = Emit("<alias>", [])


def _tensor(node: Any) -> bool:
    meta = node.meta.get("tensor_meta")
    return meta is not None and hasattr(meta, "shape")


def _flat(args: Any) -> list[Any]:
    if isinstance(args, (list, tuple)):
        return [x for a in args for x in _flat(a)]
    return [args]


def _function_name(node: Any) -> str:
    target = node.target
    if node.op == "call_method":
        return f"Tensor.{target}"
    return f"{getattr(target, '__module__', '') or ''}.{getattr(target, '__name__', str(target))}".lstrip(".")


# -- modules -----------------------------------------------------------------------------------------

@module("Conv2d")
def conv2d(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    if mod.padding_mode != "zeros":
        return None
    padding = mod.padding if isinstance(mod.padding, str) else pair(list(mod.padding))
    attrs = {"out": mod.out_channels, "kernel": pair(list(mod.kernel_size)), "stride": pair(list(mod.stride)),
             "padding": padding, "dilation": pair(list(mod.dilation)), "groups": mod.groups,
             "bias": mod.bias is not None}
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}
    return Emit("conv2d", [w.ref(node.args[0])], trim(attrs, defaults))


@module("Linear")
def linear(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    return Emit("linear", [w.ref(node.args[0])], trim({"out": mod.out_features, "bias": mod.bias is not None},
                                                        {"bias": True}))


@module("BatchNorm1d", "BatchNorm2d")
def batchnorm(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    return Emit("batchnorm", [w.ref(node.args[0])], trim({"affine": bool(mod.affine)}, {"affine": True}))


@module("LayerNorm")
def layernorm(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    if mod.elementwise_affine and mod.bias is None:
        return None
    attrs = {"dims": len(mod.normalized_shape), "affine": bool(mod.elementwise_affine)}
    return Emit("layernorm", [w.ref(node.args[0])], trim(attrs, {"dims": 1, "affine": True}))


def _same(op: str) -> ModuleHandler:
    def handler(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
        return Emit(op, [w.ref(node.args[0])])

    return handler


for _cls, _op in (("ReLU", "relu"), ("ReLU6", "relu6"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("SiLU", "silu"),
                  ("Hardswish", "hardswish"), ("Hardsigmoid", "hardsigmoid"), ("LeakyReLU", "leaky_relu"),
                  ("Dropout", "dropout"), ("Dropout2d", "dropout"), ("Identity", "identity")):
    module(_cls)(_same(_op))


@module("GELU")
def gelu(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    return Emit("gelu", [w.ref(node.args[0])], trim({"approximate": mod.approximate}, {"approximate": "none"}))


@module("Softmax")
def softmax(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    return Emit("softmax", [w.ref(node.args[0])], trim({"axis": mod.dim if mod.dim is not None else -1},
                                                         {"axis": -1}))


@module("MaxPool2d", "AvgPool2d")
def pool(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    avg = type(mod).__name__ == "AvgPool2d"
    if avg and mod.divisor_override is not None:
        return None
    attrs = {"kernel": pair(mod.kernel_size), "stride": pair(mod.stride or mod.kernel_size),
             "padding": pair(mod.padding), "ceil_mode": bool(mod.ceil_mode)}
    if not avg:
        attrs["dilation"] = pair(mod.dilation)
    return Emit("avgpool" if avg else "maxpool", [w.ref(node.args[0])],
                trim(attrs, {"padding": 0, "ceil_mode": False, "dilation": 1}))


@module("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
def adaptive(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    size = mod.output_size
    if size is None or (isinstance(size, tuple) and None in size):
        return None
    op = "adaptive_avgpool" if type(mod).__name__ == "AdaptiveAvgPool2d" else "adaptive_maxpool"
    return Emit(op, [w.ref(node.args[0])], trim({"size": pair(size)}, {"size": 1}))


@module("Flatten")
def flatten_module(mod: Any, w: _FxWalker, node: Any) -> Emit | None:
    return Emit("flatten", [w.ref(node.args[0])], trim({"start": mod.start_dim, "end": mod.end_dim},
                                                         {"start": 1, "end": -1}))


# -- functions and tensor methods --------------------------------------------------------------------

FunctionHandler = Callable[[_FxWalker, Any], "Emit | None"]


def _binary(op: str) -> FunctionHandler:
    def handler(w: _FxWalker, node: Any) -> Emit | None:
        a, b = node.args[0], node.args[1]
        if hasattr(a, "name") and hasattr(b, "name"):
            return Emit(op, [w.ref(a), w.ref(b)])
        if op == "mul" and isinstance(b, (int, float)) and hasattr(a, "name"):
            return Emit("scale", [w.ref(a)], {"value": b})
        return None

    return handler


def _unary(op: str) -> FunctionHandler:
    def handler(w: _FxWalker, node: Any) -> Emit | None:
        return Emit(op, [w.ref(node.args[0])])

    return handler


def _flatten(w: _FxWalker, node: Any) -> Emit | None:
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
    return Emit("flatten", [w.ref(node.args[0])], trim({"start": start, "end": end}, {"start": 1, "end": -1}))


def _cat(w: _FxWalker, node: Any) -> Emit | None:
    tensors = list(node.args[0])
    axis = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if len(tensors) == 1:
        return Emit("identity", [w.ref(tensors[0])])
    return Emit("concat", [w.ref(t) for t in tensors], trim({"axis": axis}, {"axis": 1}))


def _view(w: _FxWalker, node: Any) -> Emit | None:
    src, out = w._dims(w.shape(node.args[0])), w.out_dims()
    merged = merged_range(src, out)
    if merged is not None:
        return Emit("flatten", [w.ref(node.args[0])], trim({"start": merged[0], "end": merged[1]},
                                                             {"start": 1, "end": -1}))
    return Emit("reshape", [w.ref(node.args[0])], {"shape": out})


def _adaptive_avg(w: _FxWalker, node: Any) -> Emit | None:
    size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
    return Emit("adaptive_avgpool", [w.ref(node.args[0])], trim({"size": pair(size)}, {"size": 1}))


def _alias(w: _FxWalker, node: Any) -> Emit | None:
    return ALIAS_FX


FUNCTIONS: dict[str, FunctionHandler] = {
    "_operator.add": _binary("add"), "_operator.iadd": _binary("add"), "torch.add": _binary("add"),
    "_operator.mul": _binary("mul"), "_operator.imul": _binary("mul"), "torch.mul": _binary("mul"),
    "_operator.sub": _binary("sub"), "_operator.truediv": _binary("div"),
    "torch.flatten": _flatten, "Tensor.flatten": _flatten,
    "torch.cat": _cat, "torch.concat": _cat,
    "Tensor.view": _view, "Tensor.reshape": _view, "torch.reshape": _view,
    "torch.nn.functional.adaptive_avg_pool2d": _adaptive_avg,
    "torch.relu": _unary("relu"), "torch.nn.functional.relu": _unary("relu"), "Tensor.relu": _unary("relu"),
    "torch.sigmoid": _unary("sigmoid"), "torch.nn.functional.sigmoid": _unary("sigmoid"),
    "torch.nn.functional.silu": _unary("silu"), "torch.nn.functional.hardswish": _unary("hardswish"),
    "torch.nn.functional.hardsigmoid": _unary("hardsigmoid"), "torch.tanh": _unary("tanh"),
    "torch.nn.functional.dropout": _unary("dropout"),
    "Tensor.contiguous": _alias, "Tensor.clone": _alias, "Tensor.detach": _alias,
}
