"""explorer's own convention: exact MACs (bias excluded) and exact FLOPs, from the op handlers.

Every op counts what :mod:`explorer.ops` computes (docs/ops.md): MACs are the products of dot
products; FLOPs count every operation, with the minus-one rule (a dot product of n terms is
n multiplies and n - 1 adds; a bias turns the -1 into +0).
"""

from __future__ import annotations

from explorer.conventions.base import Convention, Rule
from explorer.ops import REGISTRY

_MACS = Rule(lambda v, c: v.macs, "exact MACs from explorer's op handler (docs/ops.md)")
_FLOPS = Rule(lambda v, c: v.flops, "exact FLOPs from explorer's op handler (docs/ops.md)")

TABLE = {op: _MACS for op in REGISTRY}
FLOPS = {op: _FLOPS for op in REGISTRY}

CONVENTION = Convention(
    name="explorer", tool="explorer analyze", version="this build", source="explorer/ops/*.py",
    unit="MACs", ours="macs", table=TABLE, extra={"FLOPs": FLOPS},
    summary="exact MACs (bias excluded) and FLOPs (minus-one rule), every op counted",
)
