"""Roofline prediction (Williams et al. 2009): attainable = min(peak, bandwidth x intensity).

Per layer: time = max(flops / achievable compute, bytes / achievable bandwidth) + launch overhead;
layers that neither compute nor move data (views, dropout) take no time. The model runs its layers
one after another (no overlap between layers, no fusion), so latency is the sum of layer times.
Everything is a sympy expression, numbers when the model was built at one configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy

from explorer.cost import Costs, Precision
from explorer.hardware.memory import MemoryProfile, memory_profile
from explorer.hardware.profile import Device

ZERO = sympy.Integer(0)
TOTAL_KEYS = ("latency_s", "throughput_per_s", "utilization", "arithmetic_intensity", "weight_bytes",
              "peak_memory_bytes", "kv_cache_bytes", "fits")


@dataclass(frozen=True)
class LayerTime:
    path: str
    flops: Any
    bytes: Any
    compute_s: Any
    memory_s: Any
    time_s: Any


class Roofline:
    """A model's costs placed on a device at a precision."""

    def __init__(self, costs: Costs, device: Device, dtype: str | None = None,
                 memory_budget: float | None = None) -> None:
        self.costs = costs
        self.device = device
        self.dtype = dtype or costs.precision.activations
        self.peak = device.peak_for(self.dtype)
        self.compute_rate = self.peak * device.compute_efficiency
        self.memory_rate = device.bandwidth * device.bandwidth_efficiency
        self.capacity = memory_budget if memory_budget is not None else device.capacity
        self.layers = [self._layer(layer, m) for layer, m in costs.layers]

    @property
    def precision(self) -> Precision:
        return self.costs.precision

    def _layer(self, layer: Any, metrics: dict[str, Any]) -> LayerTime:
        flops = metrics["flops"]
        moved = metrics["bytes_read"] + metrics["bytes_written"]
        compute_s = flops / self.compute_rate
        memory_s = moved / self.memory_rate
        works = layer.cost.moves_data or layer.cost.flops != 0
        overhead = layer.count * self.device.launch_overhead if works else ZERO
        return LayerTime(layer.path, flops, moved, compute_s, memory_s, _max(compute_s, memory_s) + overhead)

    @cached_property
    def memory(self) -> MemoryProfile:
        return memory_profile(self.costs.model, self.precision)

    @cached_property
    def totals(self) -> dict[str, Any]:
        flops = self.costs.totals["flops"]
        moved = self.costs.totals["bytes_read"] + self.costs.totals["bytes_written"]
        latency = sympy.Add(*(t.time_s for t in self.layers))
        peak_memory = self.memory.peak()
        idle = latency == 0  # nothing computes or moves (an identity-only model)
        return {
            "latency_s": latency,
            "throughput_per_s": sympy.oo if idle else self.batch / latency,
            "utilization": ZERO if idle else flops / latency / self.peak,
            "arithmetic_intensity": ZERO if moved == 0 else flops / moved,
            "weight_bytes": self.memory.weight_bytes,
            "peak_memory_bytes": peak_memory,
            "kv_cache_bytes": self.memory.kv_cache_bytes,
        }

    @property
    def batch(self) -> Any:
        """Samples per forward pass: the ``batch`` variable, else the first input's leading dim."""
        model = self.costs.model
        if "batch" in model.bound:
            return model.bound["batch"]
        if "batch" in model.symbols:
            return model.symbols["batch"]
        return next(iter(model.inputs.values())).shape[0]

    def ridge_point(self) -> float:
        """FLOP/byte at which achievable compute and bandwidth meet."""
        return self.compute_rate / self.memory_rate


class LayerArrays:
    """Per-layer numbers over configurations, each of shape (n_layers, n) (or broadcastable to it).

    Values are per instance of a layer; ``count`` is its multiplicity (repeats, ``when``).
    ``works[l]`` is False for layers that neither compute nor move data (views, no-ops). Fields
    are given as keywords, or computed on first access by ``fetch(name)`` (a latency model that
    never reads ``macs`` does not pay for it).
    """

    FIELDS = ("count", "flops", "macs", "act_read_bytes", "weight_read_bytes", "int_read_bytes",
              "written_bytes", "out_numel")

    def __init__(self, ops: list[str], works: Any, fetch: Any = None, **values: Any) -> None:
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"unknown layer fields {sorted(unknown)}")
        self.ops, self.works, self._fetch = ops, works, fetch
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only called for fields not computed yet
        if name in LayerArrays.FIELDS and self.__dict__.get("_fetch") is not None:
            value = self._fetch(name)
            setattr(self, name, value)
            return value
        raise AttributeError(name)


def layer_times(target: Any, a: LayerArrays) -> Any:
    """Seconds per layer, (n_layers, n): the roofline of :class:`Roofline`, on numpy arrays.

    ``count * (max(flops / compute_rate, bytes / memory_rate) + launch_overhead)``, the overhead only
    for layers that work. ``target`` has ``device`` and ``dtype``. The evaluator of studies and
    sweeps sums these over layers: this is the one function to replace for another latency model.
    """
    import numpy as np

    device = target.device
    compute_rate = device.peak_for(target.dtype) * device.compute_efficiency
    memory_rate = device.bandwidth * device.bandwidth_efficiency
    memory_s = (a.act_read_bytes + a.written_bytes) + (a.weight_read_bytes + a.int_read_bytes)
    memory_s = memory_s / memory_rate
    busy = np.maximum(a.flops / compute_rate, memory_s)
    overhead = np.where(np.asarray(a.works, dtype=bool), device.launch_overhead, 0.0)
    busy += overhead.reshape((-1,) + (1,) * (np.ndim(busy) - 1))  # busy is a new array: in place
    return a.count * busy


# Each layer's time depends only on its own row (op, works and fields): the evaluator may then
# compute identical rows once and weight them. A model with fusion across layers must not say so.
layer_times.per_layer = True  # type: ignore[attr-defined]


def _max(a: Any, b: Any) -> Any:
    if getattr(a, "is_number", False) and getattr(b, "is_number", False):
        return a if a >= b else b
    return sympy.Max(a, b, evaluate=False)


def bound(t: LayerTime) -> str:
    """compute / memory for a layer evaluated to numbers; '-' when it does nothing."""
    if t.compute_s == 0 and t.memory_s == 0:
        return "-"
    return "compute" if t.compute_s >= t.memory_s else "memory"
