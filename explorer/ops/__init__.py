"""Op handlers, one per op, in one registry (:data:`REGISTRY`)."""

from __future__ import annotations

from explorer.ops import activation, conv, elementwise, linear, mlp, norm, opaque, pooling, tensor  # noqa: F401
from explorer.ops.base import (
    ALIASES,
    REGISTRY,
    REQUIRED,
    Attr,
    Cost,
    OpCall,
    OpDef,
    OpResult,
    numel,
)

__all__ = ["ALIASES", "REGISTRY", "REQUIRED", "Attr", "Cost", "OpCall", "OpDef", "OpResult", "numel"]
