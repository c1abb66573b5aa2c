"""``opaque``: an explicit zero-cost placeholder for an operator explorer does not model.

Written by ``explorer import --allow-unknown`` (docs/import.md) for operators it cannot map, so that
a spec can still be analyzed: the placeholder has the operator's output shape and costs nothing,
and the spec's description lists every one of them. Zero here is a declared gap, never a count.
"""

from __future__ import annotations

from explorer.ops.base import REQUIRED, Attr, Cost, OpCall, OpResult, op


@op("opaque", "shape", {"shape": Attr(REQUIRED, "shape", check="pos_int",
                                      doc="the output shape of the operator it stands for"),
                        "what": Attr("", "str", doc="the operator it stands for (e.g. aten.foo.default)")},
    inputs=(0, 16))
def opaque(call: OpCall) -> OpResult:
    """A placeholder for an unmodelled operator: the given output shape, zero cost, no traffic."""
    return OpResult([tuple(call["shape"])], Cost(moves_data=False))
