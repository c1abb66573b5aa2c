"""Gated MLPs (SwiGLU, GeGLU) and mixture-of-experts layers, each one layer (docs/ops.md)."""

from __future__ import annotations

from typing import Any

import sympy

from explorer.errors import SpecError
from explorer.ops.activation import GELU_TANH, PER_ELEMENT
from explorer.ops.base import REQUIRED, Attr, Cost, OpCall, OpResult, fmt_shape, numel, op
from explorer.ops.conv import dense_flops

ACT_FLOPS = {"silu": PER_ELEMENT["silu"], "gelu": PER_ELEMENT["gelu"], "gelu_tanh": GELU_TANH}
_ACT = Attr("silu", "str", choices=tuple(ACT_FLOPS), doc="silu: SwiGLU; gelu, gelu_tanh: GeGLU")


def _features(call: OpCall) -> tuple[Any, Any, Any]:
    """(rows, input features, output features) of a layer acting on the last dim."""
    shape = call.x
    if len(shape) < 1:
        raise SpecError(f"{call.op} needs an input of rank >= 1, got {fmt_shape(shape)}")
    out = call["out"] if call["out"] is not None else shape[-1]
    return numel(shape[:-1]), shape[-1], out


def gated_cost(rows: Any, d: Any, hidden: Any, out: Any, act: str, bias: bool) -> Cost:
    """down(act(x W_gate) * (x W_up)) for ``rows`` tokens: one expert, or a dense gated MLP."""
    macs = rows * (2 * d * hidden + hidden * out)
    flops = (2 * dense_flops(rows * d * hidden, rows * hidden, bias)  # gate and up projections
             + rows * hidden * (ACT_FLOPS[act] + 1)  # act(gate), then * up
             + dense_flops(rows * hidden * out, rows * out, bias))  # down projection
    params = 2 * d * hidden + hidden * out + ((2 * hidden + out) if bias else 0)
    return Cost(params=params, macs=macs, flops=flops)


@op("gated_mlp", "linear", {
    "hidden": Attr(REQUIRED, doc="hidden features (intermediate size)", check="pos_int"),
    "act": _ACT,
    "out": Attr(None, doc="output features, default: the input's", check="pos_int"),
    "bias": Attr(False, "bool"),
}, aliases=("swiglu",))
def gated_mlp(call: OpCall) -> OpResult:
    """Gated MLP on the last dim: down(act(gate(x)) * up(x)) (SwiGLU with silu, GeGLU with gelu)."""
    rows, d, out = _features(call)
    cost = gated_cost(rows, d, call["hidden"], out, call["act"], call["bias"])
    return OpResult([(*call.x[:-1], out)], cost)


@op("moe", "linear", {
    "experts": Attr(REQUIRED, doc="number of experts E", check="pos_int"),
    "top_k": Attr(2, doc="experts per token k", check="pos_int"),
    "hidden": Attr(REQUIRED, doc="hidden features of each expert (a gated MLP)", check="pos_int"),
    "act": _ACT,
    "out": Attr(None, doc="output features, default: the input's", check="pos_int"),
    "bias": Attr(False, "bool", doc="biases in the experts (the router has none)"),
}, aliases=("mixture_of_experts",))
def moe(call: OpCall) -> OpResult:
    """Sparse mixture of gated-MLP experts with a linear router and top-k routing (Mixtral)."""
    rows, d, out = _features(call)
    experts, k, hidden = call["experts"], call["top_k"], call["hidden"]
    if call.check(sympy.Max(k - experts, 0), sympy.Integer(0)) is False:
        raise SpecError(f"top_k {k} is larger than experts {experts}")
    expert = gated_cost(1, d, hidden, out, call["act"], call["bias"])  # one expert, one token
    active = rows * k  # (token, expert) pairs
    router_macs = rows * d * experts
    flops = (dense_flops(router_macs, rows * experts, False)
             + rows * (5 * experts - 2)  # softmax over the experts
             + rows * k * (experts - 1)  # top-k: k passes of a max over E
             + rows * (2 * k - 1)  # renormalize the k weights: k - 1 adds, k divides
             + active * expert.flops
             + rows * out * (2 * k - 1))  # weighted sum of k expert outputs
    touched = sympy.Min(experts, active)  # experts whose weights the tokens in flight read
    cost = Cost(params=d * experts + experts * expert.params, macs=router_macs + active * expert.macs,
                flops=flops, weight_read=d * experts + touched * expert.params,
                parts={"router": router_macs, "experts": active * expert.macs})
    return OpResult([(*call.x[:-1], out)], cost)
