"""Activations: a fixed number of FLOPs per element (exp, erf, tanh count 1), softmax per row."""

from __future__ import annotations

from collections.abc import Callable

from explorer.errors import SpecError
from explorer.ops.base import Attr, Cost, OpCall, OpResult, numel, op

# FLOPs per element, with the operations counted (docs/ops.md).
PER_ELEMENT = {
    "relu": 1,  # max(x, 0)
    "relu6": 2,  # min(max(x, 0), 6)
    "leaky_relu": 2,  # compare, multiply
    "sigmoid": 4,  # 1 / (1 + exp(-x)): neg, exp, add, div
    "tanh": 1,  # tanh
    "silu": 5,  # x * sigmoid(x)
    "hardsigmoid": 4,  # min(max(x + 3, 0), 6) / 6
    "hardswish": 5,  # x * hardsigmoid(x)
    "gelu": 5,  # 0.5 x (1 + erf(x / sqrt 2)): div, erf, add, mul, mul
    "mish": 5,  # x * tanh(softplus(x)), softplus = log(1 + exp(x)): exp, add, log, tanh, mul
}
GELU_TANH = 9  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))


def _elementwise(per: int) -> Callable[[OpCall], OpResult]:  # factory: handlers that differ only by a constant
    def handler(call: OpCall) -> OpResult:
        return OpResult([call.x], Cost(flops=per * numel(call.x)))

    return handler


for _name, _per in PER_ELEMENT.items():
    if _name not in ("gelu", "leaky_relu"):
        op(_name, "activation", doc=f"{_name}: {_per} FLOP(s) per element")(_elementwise(_per))


@op("leaky_relu", "activation", {"negative_slope": Attr(0.01, doc="slope for x < 0 (torch's default 0.01)")})
def leaky_relu(call: OpCall) -> OpResult:
    """LeakyReLU: x if x >= 0 else slope·x, 2 FLOPs per element (compare, multiply) whatever the slope."""
    return OpResult([call.x], Cost(flops=PER_ELEMENT["leaky_relu"] * numel(call.x)))


@op("gelu", "activation", {"approximate": Attr("none", "str", choices=("none", "tanh"))})
def gelu(call: OpCall) -> OpResult:
    """GELU: 5 FLOPs per element (erf form) or 9 (tanh approximation)."""
    per = PER_ELEMENT["gelu"] if call["approximate"] == "none" else GELU_TANH
    return OpResult([call.x], Cost(flops=per * numel(call.x)))


@op("softmax", "activation", {"axis": Attr(-1, check="int")})
def softmax(call: OpCall) -> OpResult:
    """Softmax over one axis: per row of n, max n-1, sub n, exp n, sum n-1, div n = 5n - 2."""
    axis = int(call["axis"])
    if not -len(call.x) <= axis < len(call.x):
        raise SpecError(f"axis {axis} is out of range for shape rank {len(call.x)}")
    n = call.x[axis]
    rows = numel(call.x) / n
    return OpResult([call.x], Cost(flops=rows * (5 * n - 2)))
