"""Quantities with explicit units: ``989 TFLOP/s``, ``3.35 TB/s``, ``80 GB``, ``8 GiB``, ``5 us``.

Decimal prefixes are powers of 1000 (datasheet convention), binary ones (KiB, MiB, GiB, TiB) of 1024.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, DecimalException

from explorer.errors import ExplorerError, brief

_DECIMAL = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}
# dimension -> accepted unit bodies (after the prefix)
DIMENSIONS = {
    "compute": ("FLOP/s", "FLOPS", "OP/s", "OPS"),
    "bandwidth": ("B/s",),
    "bytes": ("B",),
    "time": tuple(_TIME),
    "count": ("",),
    "rate": ("/s",),
    "intensity": ("FLOP/B",),
}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/]*)\s*$")


def parse_quantity(text: object, dimension: str) -> float:
    """``"3.35 TB/s"`` -> 3.35e12 (for dimension ``bandwidth``). Plain numbers are taken as base units."""
    if isinstance(text, bool):
        raise ExplorerError(f"expected a {dimension} quantity, got {brief(text)}")
    if isinstance(text, (int, float)):
        return _finite(Decimal(text), text)
    if not isinstance(text, str):
        raise ExplorerError(f"expected a {dimension} quantity like {example(dimension)!r}, got {brief(text)}")
    m = _QUANTITY.match(text)
    if not m:
        raise ExplorerError(f"cannot read {text!r} as a {dimension} quantity (e.g. {example(dimension)!r})")
    number, unit = Decimal(m.group(1)), m.group(2)
    scale = unit_scale(unit, dimension)
    if scale is None:
        raise ExplorerError(f"unknown {dimension} unit {unit!r} in {text!r}; use e.g. {example(dimension)!r}")
    try:
        return _finite(number * Decimal(repr(scale)), text)
    except DecimalException:  # past the decimal context's exponent range (1e9999999 TFLOP/s)
        raise ExplorerError(f"{brief(text)} is too large (not a finite number)") from None


def _finite(value: Decimal, text: object) -> float:
    """A quantity as a float, refusing NaN and values past the float range (1e400 -> inf)."""
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if math.isnan(result):
        raise ExplorerError(f"{brief(text)} is not a number")
    if math.isinf(result):
        raise ExplorerError(f"{brief(text)} is too large (not a finite number)")
    return result


def unit_scale(unit: str, dimension: str) -> float | None:
    if dimension == "time":
        return _TIME.get(unit)
    for body in DIMENSIONS[dimension]:
        if not unit.endswith(body):
            continue
        prefix = unit[: len(unit) - len(body)]
        if prefix in _DECIMAL:
            return _DECIMAL[prefix]
        if prefix in _BINARY and dimension in ("bytes", "bandwidth"):
            return _BINARY[prefix]
    return None


def example(dimension: str) -> str:
    return {"compute": "312 TFLOP/s", "bandwidth": "2.04 TB/s", "bytes": "80 GB", "time": "10 ms",
            "count": "3.5M", "rate": "1000 /s", "intensity": "20 FLOP/B"}[dimension]
