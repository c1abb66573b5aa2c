"""ONNX front end: an ``.onnx`` file (the ``onnx`` package only, no runtime) -> :class:`Graph`.

Shapes come from the file (``onnx.shape_inference`` fills what the exporter left out); a symbolic
batch dim (``dim_param``) becomes ``batch``. Small integer tensors (``Constant``, ``Shape``,
``Gather``, ``Concat``... on shapes) are evaluated here, so that a ``Reshape`` gets its target;
layer names come from torch's ``pkg.torch.onnx.name_scopes`` metadata when present, else from the
node names. The operator table is :data:`ONNX` (docs/import.md).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError
from explorer.importers.aten import UNEXPECTED, Emit, merged_range, pair, trim
from explorer.importers.ir import Dim, Graph, Names, Node, Unknown, Variable, ident

CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def import_onnx(path: str, inputs: Sequence[tuple[str, tuple[int, ...]]], dynamic: set[str]) -> Graph:
    """Read ``path`` and map its nodes."""
    model = _load(path)
    return _OnnxWalker(model, dict(inputs), dynamic).run(Path(path).name)


def _load(path: str) -> Any:
    try:
        import onnx
    except ImportError:
        raise ExplorerError("importing an .onnx file needs the onnx package: pip install onnx") from None
    p = Path(path)
    if not p.is_file():
        raise ExplorerError(f"cannot read '{path}': no such file")
    try:
        model = onnx.load(str(p))
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # a truncated or foreign file: protobuf raises its own errors
        raise ExplorerError(f"cannot read '{path}' as ONNX: {type(exc).__name__}: {str(exc)[:200]}") from None


Handler = Callable[["_OnnxWalker", Any], "Emit | None"]
ONNX: dict[str, Handler] = {}


def onnx_op(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            ONNX[name] = fn
        return fn

    return register


class _OnnxWalker:
    def __init__(self, model: Any, overrides: dict[str, tuple[int, ...]], dynamic: set[str]) -> None:
        from onnx import numpy_helper

        self.model, self.graph, self.dynamic = model, model.graph, dynamic
        self.overrides = overrides
        self.consts: dict[str, Any] = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes: dict[str, list[Dim]] = {}
        self.refs: dict[str, str] = {}
        self.names = Names()
        self.nodes: list[Node] = []
        self.unknown_at: dict[str, list[str]] = {}
        self.symbols: dict[str, str] = {}
        self.fixed: dict[str, list[Dim]] = {}
        self.scope: tuple[tuple[str, ...], tuple[str, ...], bool] = ((), (), False)
        self.current: Any = None

    def run(self, source: str) -> Graph:
        inputs = self._inputs()
        for vi in [*self.graph.value_info, *self.graph.output]:
            self.shapes[vi.name] = self._dims(vi)
        for node in self.graph.node:
            self._node(node)
        outputs = [self.refs[o.name] for o in self.graph.output if o.name in self.refs]
        name = ident(Path(source).stem) or "model"
        return Graph(name=name, source=source, inputs=inputs, nodes=self.nodes, outputs=outputs,
                     variables=self._variables(), notes=self._notes(), fixed_inputs=self.fixed,
                     placeholders=[Unknown(w, tuple(p)) for w, p in self.unknown_at.items()])

    def _inputs(self) -> dict[str, list[Dim]]:
        result: dict[str, list[Dim]] = {}
        for vi in self.graph.input:
            if vi.name in self.consts:
                continue
            dims = self._dims(vi, first_input=not result)
            if vi.name in self.overrides:
                dims = self._override(vi.name, dims)
            unknown = [k for k, d in enumerate(dims) if isinstance(d, str) and d.startswith("?")]
            if unknown:
                raise ExplorerError(f"input '{vi.name}': dim {unknown[0]} has no size in the file "
                                    f"('{str(dims[unknown[0]])[1:]}'); give it with --input {vi.name}=...")
            name = ident(vi.name)
            self.names.taken.add(name)
            self.refs[vi.name] = name
            self.shapes[vi.name] = dims
            if "resolution" in self.dynamic and len(dims) == 4 and isinstance(dims[2], int) and dims[2] == dims[3]:
                self.fixed[name] = list(dims)
                self.resolution = dims[2]
                dims = [*dims[:2], "resolution", "resolution"]
            result[name] = dims
        if not result:
            raise ExplorerError("the ONNX graph has no input (every input is an initializer)")
        return result

    def _override(self, name: str, dims: list[Dim]) -> list[Dim]:
        shape = self.overrides[name]
        if len(shape) != len(dims):
            raise ExplorerError(f"--input {name}: the file's input has rank {len(dims)}, got {list(shape)}")
        return [d if isinstance(d, str) and k == 0 else shape[k] for k, d in enumerate(dims)]

    def _dims(self, vi: Any, first_input: bool = False) -> list[Dim]:
        dims: list[Dim] = []
        for k, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.dim_param and (d.dim_param in self.symbols or (first_input and k == 0)):
                if "batch" not in self.dynamic:
                    raise ExplorerError(f"input '{vi.name}': dim {k} is symbolic ('{d.dim_param}'); give its size "
                                        f"with --input {vi.name}=... or keep batch dynamic")
                self.symbols.setdefault(d.dim_param, "batch")
                dims.append(self.symbols[d.dim_param])
            else:
                dims.append(f"?{d.dim_param}")
        return dims

    def _node(self, node: Any) -> None:
        if self._fold_constant(node):
            return
        self.current = node
        self.scope = _scope(node)
        handler = ONNX.get(node.op_type)
        try:
            emit = handler(self, node) if handler else None
        except UNEXPECTED:  # an attribute pattern the handler does not cover: unsupported
            emit = None
        if emit is None:
            self._unknown(node)
            return
        path, classes, leaf = self.scope
        name = self.names.layer(path, emit.op, leaf) if path else self.names.make(node.name or node.op_type)
        self.nodes.append(Node(name, emit.op, emit.inputs, emit.attrs, path, classes))
        for out in node.output:
            self.refs[out] = name

    def _unknown(self, node: Any) -> None:
        path, classes, _ = self.scope
        self.unknown_at.setdefault(f"onnx.{node.op_type}", []).append(node.name or ".".join(path) or "?")
        shape = self.out_shape()
        if any(isinstance(d, str) and d.startswith("?") for d in shape):
            raise ExplorerError(f"node '{node.name}' ({node.op_type}): unsupported, and its output shape is unknown")
        name = self.names.make(*path, node.op_type.lower()) if path else self.names.make(node.name or node.op_type)
        inputs = [self.refs[i] for i in node.input if i in self.refs]
        self.nodes.append(Node(name, "opaque", inputs, {"shape": shape, "what": f"onnx.{node.op_type}"}, path, classes))
        for out in node.output:
            self.refs[out] = name

    # -- small integer tensors (shapes) -------------------------------------------------------------

    def _fold_constant(self, node: Any) -> bool:
        from onnx import helper

        if node.op_type == "Constant":
            attr = node.attribute[0]
            self.consts[node.output[0]] = _np().asarray(helper.get_attribute_value(attr)) if attr.name != "value" \
                else _to_array(helper.get_attribute_value(attr))
            return True
        if node.op_type == "Shape" and node.input[0] in self.shapes:
            dims = self.shapes[node.input[0]]
            start, end = _int_attr(node, "start", 0), _int_attr(node, "end", len(dims))
            self.consts[node.output[0]] = _np().asarray(dims[start:end], dtype=object)
            return True
        if not node.input or not all(i in self.consts or not i for i in node.input):
            return False
        value = _evaluate(node, [self.consts.get(i) for i in node.input])
        if value is None:
            return False
        self.consts[node.output[0]] = value
        return True

    # -- helpers for the handlers --------------------------------------------------------------------

    def ref(self, name: str, partner: str | None = None) -> str:
        if name in self.refs:
            return self.refs[name]
        if name in self.consts:
            return self._parameter(name, partner)
        raise ExplorerError(f"tensor '{name}' is used before it is defined")

    def _parameter(self, name: str, partner: str | None) -> str:
        value = self.consts[name]
        shape: list[Dim] = [int(s) for s in value.shape]
        if partner is not None and partner in self.refs:
            other = self.shapes.get(partner, [])
            for k in range(1, min(len(shape), len(other)) + 1):
                if shape[-k] != 1 and other[-k] != 1:
                    shape[-k] = f"dim({self.refs[partner]}, {len(other) - k})"
        layer = self.names.make(name)
        self.nodes.append(Node(layer, "parameter", [], {"shape": shape}, (), ()))
        self.refs[name] = layer
        return layer

    def weight(self, name: str) -> tuple[int, ...] | None:
        value = self.consts.get(name)
        return None if value is None else tuple(int(s) for s in value.shape)

    def in_shape(self, name: str) -> list[Dim]:
        return self.shapes.get(name, [])

    def out_shape(self) -> list[Dim]:
        return self.shapes.get(self.current.output[0], [])

    def attr(self, node: Any, name: str, default: Any) -> Any:
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def _variables(self) -> list[Variable]:
        first = next(iter(self.graph.input))
        result = []
        if "batch" in self.symbols.values():
            default = self.overrides.get(first.name, (1,))[0]
            result.append(Variable("batch", default, 1, 1024, "images per forward pass"))
        if self.fixed:
            r = getattr(self, "resolution", 224)
            result.append(Variable("resolution", r, min(16, r), max(4096, r), "input height and width in pixels"))
        return result

    def _notes(self) -> list[str]:
        if not self.fixed:
            return []
        return ["The input size is fixed (by the file or --input); the spec keeps 'resolution' as a variable, "
                "where it stands for the same layers on an input of that size."]


def _np() -> Any:
    import numpy

    return numpy


def _to_array(tensor: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)


def _int_attr(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _evaluate(node: Any, values: list[Any]) -> Any:
    """A shape computation on constant inputs (numbers or the dims of a Shape), or None."""
    np = _np()
    op, v = node.op_type, values
    axes = [int(a) for a in next((x.ints for x in node.attribute if x.name == "axes"), [])]
    if op in ("Cast", "Identity"):
        return v[0]
    if op == "Gather":
        return np.take(v[0], np.asarray(v[1]).astype(int), axis=_int_attr(node, "axis", 0))
    if op == "Concat":
        return np.concatenate([np.atleast_1d(x) for x in v], axis=_int_attr(node, "axis", 0))
    if op == "Unsqueeze":
        return np.reshape(v[0], (1,)) if np.ndim(v[0]) == 0 else np.expand_dims(v[0], tuple(axes or v[1].tolist()))
    if op == "Squeeze":
        return np.squeeze(v[0])
    if op == "Reshape" and v[0].dtype == object or op == "Reshape" and v[0].size <= 16:
        return np.reshape(v[0], [int(d) for d in v[1]])
    if op in ("Mul", "Add", "Sub", "Div") and all(x.dtype != object for x in v):
        fn = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.floor_divide}[op]
        return fn(v[0], v[1])
    return None


def _scope(node: Any) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    props = {p.key: p.value for p in node.metadata_props}
    scopes = _literal(props.get("pkg.torch.onnx.name_scopes"))
    hierarchy = _literal(props.get("pkg.torch.onnx.class_hierarchy"))
    if len(scopes) < 2:
        return (), (), False
    modules = [s for s in scopes[:-1] if s]
    path = tuple(modules[-1].split(".")) if modules else ()
    classes_q = hierarchy[1:-1] if len(hierarchy) == len(scopes) else []
    classes = tuple(c.rsplit(".", 1)[-1] for c in classes_q)
    classes = (*classes, *(["module"] * len(path)))[: len(path)] if len(classes) != len(path) else classes
    leaf = bool(classes_q) and classes_q[-1].startswith("torch.nn.modules.") and not classes_q[-1].endswith(CONTAINERS)
    return path, classes, leaf


def _literal(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = ast.literal_eval(text)  # torch writes Python list literals; literal_eval builds no code
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


# -- the operator table -----------------------------------------------------------------------------

def _unary(op: str) -> Handler:
    def handler(w: _OnnxWalker, node: Any) -> Emit | None:
        return Emit(op, [w.ref(node.input[0])])

    return handler


for _onnx_name, _op in (("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("HardSwish", "hardswish"),
                        ("Identity", "identity"), ("Dropout", "dropout"), ("LeakyRelu", "leaky_relu")):
    onnx_op(_onnx_name)(_unary(_op))


@onnx_op("HardSigmoid")
def hard_sigmoid(w: _OnnxWalker, node: Any) -> Emit | None:
    alpha, beta = float(w.attr(node, "alpha", 0.2)), float(w.attr(node, "beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-9:  # torch's hardsigmoid only
        return None
    return Emit("hardsigmoid", [w.ref(node.input[0])])


@onnx_op("Clip")
def clip(w: _OnnxWalker, node: Any) -> Emit | None:
    bounds = [float(w.consts[i]) if i and i in w.consts else None for i in list(node.input[1:3]) + [None] * 2][:2]
    if bounds != [0.0, 6.0]:
        return None
    return Emit("relu6", [w.ref(node.input[0])])


@onnx_op("Gelu")
def gelu(w: _OnnxWalker, node: Any) -> Emit | None:
    approximate = w.attr(node, "approximate", "none")
    return Emit("gelu", [w.ref(node.input[0])], trim({"approximate": approximate}, {"approximate": "none"}))


@onnx_op("Softmax")
def softmax(w: _OnnxWalker, node: Any) -> Emit | None:
    return Emit("softmax", [w.ref(node.input[0])], trim({"axis": int(w.attr(node, "axis", -1))}, {"axis": -1}))


@onnx_op("Conv")
def conv(w: _OnnxWalker, node: Any) -> Emit | None:
    shape = w.weight(node.input[1])
    bias = len(node.input) > 2 and bool(node.input[2])
    if shape is None or len(shape) != 4 or (bias and w.weight(node.input[2]) is None):
        return None
    if w.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    pads = list(w.attr(node, "pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        return None
    attrs = {"out": shape[0], "kernel": pair(list(shape[2:])), "stride": pair(w.attr(node, "strides", [1, 1])),
             "padding": pair(pads[:2]), "dilation": pair(w.attr(node, "dilations", [1, 1])),
             "groups": int(w.attr(node, "group", 1)), "bias": bias}
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}
    return Emit("conv2d", [w.ref(node.input[0])], trim(attrs, defaults))


@onnx_op("BatchNormalization")
def batchnorm(w: _OnnxWalker, node: Any) -> Emit | None:
    if any(w.weight(i) is None for i in node.input[1:5]):
        return None
    return Emit("batchnorm", [w.ref(node.input[0])])


@onnx_op("LayerNormalization")
def layernorm(w: _OnnxWalker, node: Any) -> Emit | None:
    rank = len(w.in_shape(node.input[0]))
    axis = int(w.attr(node, "axis", -1))
    dims = rank - (axis % rank) if rank else 1
    if len(node.input) < 3 or not node.input[2]:
        return None
    return Emit("layernorm", [w.ref(node.input[0])], trim({"dims": dims}, {"dims": 1}))


@onnx_op("Gemm")
def gemm(w: _OnnxWalker, node: Any) -> Emit | None:
    shape = w.weight(node.input[1])
    if shape is None or len(shape) != 2 or int(w.attr(node, "transA", 0)) or float(w.attr(node, "alpha", 1.0)) != 1:
        return None
    out = shape[0] if int(w.attr(node, "transB", 0)) else shape[1]
    bias = len(node.input) > 2 and bool(node.input[2])
    return Emit("linear", [w.ref(node.input[0])], trim({"out": out, "bias": bias}, {"bias": True}))


@onnx_op("MatMul")
def matmul(w: _OnnxWalker, node: Any) -> Emit | None:
    shape = w.weight(node.input[1])
    if shape is not None:
        return Emit("linear", [w.ref(node.input[0])], {"out": shape[-1], "bias": False}) if len(shape) == 2 else None
    return Emit("matmul", [w.ref(node.input[0]), w.ref(node.input[1])])


def _binary(op: str) -> Handler:
    def handler(w: _OnnxWalker, node: Any) -> Emit | None:
        a, b = node.input[0], node.input[1]
        scalar = next((x for x in (a, b) if x in w.consts and w.consts[x].size == 1), None)
        if scalar is not None and op in ("mul", "div"):
            other = b if scalar == a else a
            value = float(w.consts[scalar].reshape(-1)[0])
            return Emit("scale", [w.ref(other)], {"value": value if op == "mul" else 1 / value})
        return Emit(op, [w.ref(a, partner=b), w.ref(b, partner=a)])

    return handler


for _onnx_name, _op in (("Add", "add"), ("Mul", "mul"), ("Sub", "sub"), ("Div", "div")):
    onnx_op(_onnx_name)(_binary(_op))


def _pool(op: str) -> Handler:
    def handler(w: _OnnxWalker, node: Any) -> Emit | None:
        kernel = list(w.attr(node, "kernel_shape", []))
        pads = list(w.attr(node, "pads", [0] * 2 * len(kernel)))
        if len(kernel) != 2 or pads[:2] != pads[2:] or w.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            return None
        attrs: dict[str, Any] = {"kernel": pair(kernel), "stride": pair(w.attr(node, "strides", kernel)),
                                 "padding": pair(pads[:2]), "ceil_mode": bool(w.attr(node, "ceil_mode", 0))}
        if op == "maxpool":
            attrs["dilation"] = pair(w.attr(node, "dilations", [1, 1]))
        return Emit(op, [w.ref(node.input[0])], trim(attrs, {"padding": 0, "ceil_mode": False, "dilation": 1}))

    return handler


onnx_op("MaxPool")(_pool("maxpool"))
onnx_op("AveragePool")(_pool("avgpool"))
onnx_op("GlobalAveragePool")(lambda w, node: Emit("adaptive_avgpool", [w.ref(node.input[0])]))
onnx_op("GlobalMaxPool")(lambda w, node: Emit("adaptive_maxpool", [w.ref(node.input[0])]))


@onnx_op("ReduceMean")
def reduce_mean(w: _OnnxWalker, node: Any) -> Emit | None:
    rank = len(w.in_shape(node.input[0]))
    axes = [int(a) for a in (w.consts[node.input[1]] if len(node.input) > 1 and node.input[1] in w.consts
                             else w.attr(node, "axes", []))]
    if not axes or not rank:
        return None
    keep = bool(w.attr(node, "keepdims", 1))
    if rank == 4 and keep and sorted(a % rank for a in axes) == [2, 3]:
        return Emit("adaptive_avgpool", [w.ref(node.input[0])])
    attrs = {"axes": axes[0] if len(axes) == 1 else axes, "keepdim": keep}
    return Emit("mean", [w.ref(node.input[0])], trim(attrs, {"keepdim": False}))


@onnx_op("Flatten")
def flatten(w: _OnnxWalker, node: Any) -> Emit | None:
    rank = len(w.in_shape(node.input[0]))
    axis = int(w.attr(node, "axis", 1)) % max(rank, 1)
    if axis != 1 or rank < 2:  # ONNX Flatten always gives rank 2; axis 1 is torch.flatten(x, 1)
        return None
    return Emit("flatten", [w.ref(node.input[0])])


@onnx_op("Reshape", "Squeeze", "Unsqueeze")
def reshape(w: _OnnxWalker, node: Any) -> Emit | None:
    src, out = w.in_shape(node.input[0]), w.out_shape()
    if not src or not out or any(isinstance(d, str) and d.startswith("?") for d in [*src, *out]):
        return None
    merged = merged_range(src, out)
    if merged is not None:
        start, end = merged
        return Emit("flatten", [w.ref(node.input[0])], trim({"start": start, "end": end}, {"start": 1, "end": -1}))
    return Emit("reshape", [w.ref(node.input[0])], {"shape": out})


@onnx_op("Concat")
def concat(w: _OnnxWalker, node: Any) -> Emit | None:
    if len(node.input) == 1:
        return Emit("identity", [w.ref(node.input[0])])
    return Emit("concat", [w.ref(i) for i in node.input], trim({"axis": int(w.attr(node, "axis", 1))}, {"axis": 1}))


@onnx_op("Transpose")
def transpose(w: _OnnxWalker, node: Any) -> Emit | None:
    perm = [int(p) for p in w.attr(node, "perm", [])]
    return Emit("permute", [w.ref(node.input[0])], {"dims": perm}) if perm else None
