"""The pieces every convention table is written with: a layer view, rules and the Convention record.

A convention reproduces what one counting tool prints for a PyTorch model equivalent to a spec.
Each tool module holds ONE table, ``TABLE = {op: Rule(formula, note)}``, with a formula per
explorer op (every op of :data:`explorer.ops.REGISTRY` appears, the ones the tool does not count
as explicit zeros). A formula sees the layer as plain integers (:class:`View`) and returns the
tool's count for one instance of that layer; the note says, in a few words, how the tool counts
the op (it becomes the explanation of a difference, see :mod:`explorer.conventions.compare`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy

Number = int | Fraction | float
Formula = Callable[["View", "Ctx"], Any]


@dataclass
class View:
    """One layer as the tool would see it: integer shapes and plain attribute values."""

    path: str
    op: str
    category: str
    ins: list[tuple[int, ...]]
    outs: list[tuple[int, ...]]
    attrs: dict[str, Any]
    macs: int = 0  # explorer's own counts for one instance (the `explorer` convention)
    flops: int = 0
    functional: bool = False  # the torch model calls it as a function (torch.nn.functional), not as a module
    module: str | None = None  # the spec's ``module:``: a subclass of the op's torch class (LayerNorm2d)
    reused: bool = False  # the same torch module is called again later in the forward
    closes: tuple[str, ...] = ()  # torch container modules (not nn.Sequential) whose output this layer is

    @property
    def exact_type(self) -> bool:
        """A module of the op's own torch class: what tools that look modules up by exact type
        (``type(m) in registry``: thop, ptflops) recognise. Functional calls and subclasses are not."""
        if self.functional:
            return False
        return self.module is None or self.module.rsplit(".", 1)[-1] == standard_class(self)

    @property
    def x(self) -> tuple[int, ...]:
        """The first input shape (the output shape for ops without inputs)."""
        return self.ins[0] if self.ins else self.outs[0]

    @property
    def y(self) -> tuple[int, ...]:
        return self.outs[0]

    @property
    def n(self) -> int:
        """The op's batch: the first dim of its input."""
        return self.x[0]

    @property
    def numel_x(self) -> int:
        return math.prod(self.x)

    @property
    def numel_y(self) -> int:
        return math.prod(self.y)

    def a(self, name: str) -> Any:
        return self.attrs.get(name)

    def pair(self, name: str, default: Any = None) -> tuple[Any, Any]:
        """An int-or-pair attribute (kernel, stride, padding...) as (h, w)."""
        value = self.attrs.get(name)
        if value is None:
            value = default
        if isinstance(value, tuple):
            return value[0], value[1]
        return value, value

    @property
    def bias(self) -> bool:
        return bool(self.attrs.get("bias", False))

    @property
    def affine(self) -> bool:
        return bool(self.attrs.get("affine", True))

    # -- shared geometry (the same for every tool) ---------------------------------------------
    def dims(self, name: str, default: Any = None) -> tuple[Any, ...]:
        """An int-or-list attribute (kernel, stride, padding...) with one value per spatial dim."""
        value = self.attrs.get(name)
        if value is None:
            value = default
        return value if isinstance(value, tuple) else (value,) * (len(self.x) - 2)

    @property
    def kernel(self) -> int:
        """Kernel elements per channel: kh·kw for a 2-D conv, k for 1-D, kd·kh·kw for 3-D."""
        return int(math.prod(self.dims("kernel")))

    @property
    def groups(self) -> int:
        return int(self.attrs.get("groups") or 1)

    @property
    def conv_macs(self) -> int:
        """ConvNd: N·Cout·Ho·Wo·(Cin/g)·kh·kw = N·Ho·Wo·numel(weight) (any number of spatial dims)."""
        return self.numel_y * (self.x[1] // self.groups) * self.kernel

    @property
    def convt_macs(self) -> int:
        """ConvTranspose2d: N·Hi·Wi·Cin·(Cout/g)·kh·kw = N·Hi·Wi·numel(weight), from the input pixels."""
        return self.numel_x * (self.y[1] // self.groups) * self.kernel

    @property
    def weight_numel(self) -> int:
        """Elements of the torch module's weight (conv, linear, norms, embedding)."""
        if self.op in CONVS:
            return self.y[1] * (self.x[1] // self.groups) * self.kernel
        if self.op == "conv_transpose2d":
            return self.x[1] * (self.y[1] // self.groups) * self.kernel
        if self.op == "linear":
            return int(self.x[-1] * self.y[-1])
        if self.op == "embedding":
            return int(self.attrs["num"] * self.attrs["dim"])
        raise KeyError(self.op)

    @property
    def rows(self) -> int:
        """Linear: M, the product of all leading dims of the input."""
        return math.prod(self.x[:-1])

    @property
    def matmul_macs(self) -> int:
        """[..., M, K] @ [..., K, N] with broadcast batch dims: numel(out)·K (explorer's MACs)."""
        return self.numel_y * self.x[-1]


CONVS = ("conv1d", "conv2d", "conv3d")  # forward convolutions, one per number of spatial dims

# explorer op -> the torch module class the op is by default (ops absent are no module: tensor operations)
CLASSES = {
    "conv1d": "Conv1d", "conv2d": "Conv2d", "conv3d": "Conv3d", "conv_transpose2d": "ConvTranspose2d", "linear": "Linear", "layernorm": "LayerNorm",
    "groupnorm": "GroupNorm", "relu": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU", "sigmoid": "Sigmoid",
    "tanh": "Tanh", "silu": "SiLU", "hardsigmoid": "Hardsigmoid", "hardswish": "Hardswish", "gelu": "GELU", "mish": "Mish",
    "softmax": "Softmax", "maxpool": "MaxPool2d", "avgpool": "AvgPool2d", "adaptive_avgpool": "AdaptiveAvgPool2d",
    "adaptive_maxpool": "AdaptiveMaxPool2d", "upsample": "Upsample", "dropout": "Dropout", "identity": "Identity",
    "embedding": "Embedding", "attention": "MultiheadAttention", "pixel_shuffle": "PixelShuffle",
}
_PADS = {"constant": "ConstantPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}


def standard_class(v: View) -> str | None:
    """The torch class an op layer is by default (BatchNorm2d for a 4-D batchnorm), None for tensor ops."""
    if v.op == "batchnorm":
        return f"BatchNorm{len(v.x) - 2}d" if len(v.x) > 2 else "BatchNorm1d"
    if v.op == "pad":  # nn.ConstantPad2d, nn.ReflectionPad1d... by mode and the number of padded dims
        padded = len(v.a("padding")) // 2 if isinstance(v.a("padding"), tuple) else 1
        return f"{_PADS[str(v.a('mode'))]}{padded}d" if padded <= 3 else None
    return CLASSES.get(v.op)


def module_class(v: View) -> str | None:
    """The class name of the module the layer is (the spec's ``module:`` or the op's own class), or
    None when it is no module (a function call, a tensor operation)."""
    if v.functional:
        return None
    if v.module is not None:
        return v.module.rsplit(".", 1)[-1]
    return standard_class(v)


@dataclass
class Ctx:
    """What a whole model run shares: the batch the tool sees, and warnings or a tool failure."""

    batch: int
    errors: dict[str, str] = field(default_factory=dict)  # why the tool raises -> first layer where
    facts: list[str] = field(default_factory=list)  # how the torch model calls its layers (the spec's called/module)

    def fail(self, message: str, layer: str) -> int:
        """The tool raises on this model: record why; the layer counts 0 and the tool has no total."""
        self.errors.setdefault(message, layer)
        return 0


@dataclass(frozen=True)
class Rule:
    """One table entry: the formula, a short note ("counts X as ..."), and a tool key (fvcore)."""

    fn: Formula
    note: str
    key: str | Callable[[View], str | None] | None = None

    def key_of(self, v: View) -> str | None:
        return self.key(v) if callable(self.key) else self.key


def zero(note: str) -> Rule:
    """An op the tool does not count, with the reason."""
    return Rule(lambda v, c: 0, note)


# Op groups that most tables treat alike (each table still names every op, via these).
NORMS = ("batchnorm", "layernorm", "groupnorm")
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "gelu", "mish",
    "softmax")
POOLING = ("maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "mean", "upsample")
ELEMENTWISE = ("add", "mul", "sub", "div", "scale")
DATA = ("embedding", "concat", "channel_shuffle", "parameter", "constant", "pad", "pixel_shuffle")
VIEWS = ("identity", "dropout", "flatten", "reshape", "permute", "transpose", "expand", "select", "slice",
    "split", "chunk", "crop", "opaque")


LLM = ("rmsnorm", "gated_mlp", "moe")  # ops added for LLMs; no tool reference derived yet


def not_modelled(ops: tuple[str, ...], tool: str) -> dict[str, Rule]:
    """Ops whose count by this tool is not derived yet: the tool gets no total (said, not guessed)."""
    def fail(v: View, c: Ctx) -> int:
        return c.fail(f"{tool}'s count of '{v.op}' is not modelled yet (no reference derived)", v.path)

    return {op: Rule(fail, "not modelled yet: no reference derived for this tool") for op in ops}


def zeros(ops: tuple[str, ...] | list[str], note: str) -> dict[str, Rule]:
    """Several ops the tool does not count for the same reason."""
    rule = zero(note)
    return {op: rule for op in ops}


def per_element(k: int, note: str, of: str = "x", key: str | None = None) -> Rule:
    """k per element of the input (``of="x"``) or of the output (``of="y"``)."""
    if of == "x":
        return Rule(lambda v, c: k * v.numel_x, note, key)
    return Rule(lambda v, c: k * v.numel_y, note, key)


def last_call_only(table: Mapping[str, Rule]) -> dict[str, Rule]:
    """Wrap every formula: a module the forward calls again later is overwritten by that call
    (torchstat and flopth keep a per-module buffer that each call replaces)."""
    def wrap(rule: Rule) -> Rule:
        return Rule(lambda v, c: 0 if v.reused else rule.fn(v, c), rule.note, rule.key)
    return {op: wrap(rule) for op, rule in table.items()}


@dataclass(frozen=True)
class Convention:
    """One tool's way of counting: the table and how per-layer counts become its printed total."""

    name: str
    tool: str  # the tool and the call whose number this is
    version: str
    source: str  # source file(s) and function(s) the table follows
    unit: str  # what the tool calls its number
    ours: str  # explorer metric the count is compared with: "macs" or "flops"
    table: Mapping[str, Rule]
    extra: Mapping[str, Mapping[str, Rule]] = field(default_factory=dict)  # secondary numbers (MAdd...)
    sees_functional: bool = True  # False: module hooks only, torch.nn.functional calls count 0
    exact_types: bool = False  # True: modules looked up by exact type (thop): subclasses count 0 too
    combine: Callable[[Any, View, Ctx], Number] | None = None  # raw formula value -> layer count
    face: Callable[[Any, View, Ctx], Number] | None = None  # raw -> layer count before global adjustments
    total: Callable[[list[Any], Ctx, list[View]], int] | None = None  # raw values -> the printed total
    notes: Callable[[list[Any], Ctx, list[View]], list[tuple[str, Number]]] | None = None  # global differences
    summary: str = ""
    printed: Callable[[int], str] | None = None  # the total as the tool itself prints it ("1.82142G")


def plain(value: Any) -> Any:
    """sympy numbers -> int / Fraction / float; tuples element-wise; everything else as is."""
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, sympy.Basic):
        if value.is_Integer:
            return int(value)
        if value.is_Rational:
            return Fraction(int(value.p), int(value.q))
        if value.is_Float:
            return float(value)
        if value in (sympy.true, sympy.false):
            return bool(value)
    return value


def as_json_number(value: Number) -> int | float:
    """An exact integer when it is one, else a float (ptflops' per-layer shares)."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else float(value)
