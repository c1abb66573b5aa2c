"""Element-wise arithmetic between tensors, with numpy broadcasting."""

from __future__ import annotations

from explorer.ops.base import Attr, Cost, OpCall, OpResult, numel, op
from explorer.ops.linear import broadcast


def _nary(call: OpCall) -> OpResult:
    out = call.shapes[0]
    for shape in call.shapes[1:]:
        out = broadcast(call, out, shape)
    return OpResult([out], Cost(flops=(len(call.shapes) - 1) * numel(out)))


for _name, _doc in (("add", "residual add: (k - 1) adds per output element for k inputs"),
                    ("mul", "broadcasting multiply (e.g. squeeze-excitation): (k - 1) per element"),
                    ("sub", "subtract: 1 per output element"),
                    ("div", "divide: 1 per output element")):
    op(_name, "elementwise", inputs=(2, 2) if _name in ("sub", "div") else (2, 16), doc=_doc)(_nary)


@op("scale", "elementwise", {"value": Attr(1)})
def scale(call: OpCall) -> OpResult:
    """Multiply by a constant: 1 FLOP per element."""
    return OpResult([call.x], Cost(flops=numel(call.x)))
