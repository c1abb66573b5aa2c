"""Costs of one configuration, as exact integers per layer and in total."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from explorer.cost import (
    METRICS,
    Costs,
    Precision,
    as_int,
    build_for,
    check_shapes,
    exact,
    resolve_values,
    substitution,
)
from explorer.errors import SpecError
from explorer.graph import Model
from explorer.spec import Spec


# the unit of every count in an analysis (bytes at the analysis's precision)
UNITS = {"params": "1", "macs": "MAC", "flops": "FLOP", "bytes_read": "B", "bytes_written": "B",
         "kv_cache_bytes": "B"}


@dataclass
class LayerRow:
    name: str
    op: str
    category: str
    output_shape: list[int]
    count: int
    metrics: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


class CostTotals(TypedDict):
    """Exact totals of one configuration (integers; bytes at the analysis's precision)."""

    params: int
    macs: int
    flops: int
    bytes_read: int
    bytes_written: int
    kv_cache_bytes: int


@dataclass
class Analysis:
    spec: Spec
    model: Model
    costs: Costs
    values: dict[str, Any]
    totals: CostTotals
    layers: list[LayerRow]

    def to_dict(self) -> dict[str, Any]:
        p = self.costs.precision
        return {
            "spec": self.spec.name,
            "variables": self.values,
            "precision": {"activations": p.activations, "weights": p.weights or p.activations,
                          "kv_cache": p.kv or p.activations},
            "units": dict(UNITS),
            "totals": self.totals,
            "layers": [{"name": r.name, "op": r.op, "category": r.category, "output_shape": r.output_shape,
                        "count": r.count, **r.metrics, **r.extra} for r in self.layers],
        }


def analyze(spec: Spec, overrides: Mapping[str, Any] | None = None,
            precision: Precision | None = None) -> Analysis:
    """Exact per-layer and total costs at the defaults with ``overrides`` applied."""
    values = resolve_values(spec, overrides)
    model = build_for(spec, values)
    costs = Costs(model, precision)
    subs = substitution(model, values)
    check_shapes(model, subs)
    rows = []
    for layer, metrics in costs.layers:
        try:
            numbers = {m: as_int(exact(metrics[m], subs), m) for m in METRICS}
            _non_negative(numbers)
        except SpecError as exc:
            exc.layer = layer.path
            raise exc.located(spec.path, layer.line) from None
        shape = [int(exact(d, subs)) for d in layer.shape]
        rows.append(LayerRow(layer.path, layer.op, layer.category, shape, int(exact(layer.count, subs)), numbers))
    totals = cast(CostTotals, {m: sum(r.metrics[m] for r in rows) for m in METRICS})
    return Analysis(spec, model, costs, values, totals, rows)


def _non_negative(numbers: Mapping[str, int]) -> None:
    """A safety net: no count is ever negative (an attribute outside its domain that slipped through)."""
    for m, v in numbers.items():
        if v < 0:
            raise SpecError(f"{m} is {v:,}, a negative count: an attribute is outside its domain")
