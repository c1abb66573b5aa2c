"""Prediction at one configuration: exact costs placed on a device through its execution model.

``explorer.predict(spec, values, hardware=..., dtype=..., execution=...)`` returns a
:class:`Prediction`: totals (latency, throughput, utilization, peak memory...), one row per kernel
and one per layer. ``explorer analyze --hardware`` prints it; studies evaluate the same model
vectorized (``explorer/study/evaluate.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from explorer.analysis import Analysis, analyze
from explorer.cost import Precision, exact, substitution
from explorer.hardware.execution import ExecutionModel, model_for
from explorer.hardware.kernels import kernel_metrics, plan
from explorer.hardware.memory import MemoryProfile, memory_profile
from explorer.hardware.profile import Device, load_device
from explorer.spec import Spec


@dataclass(frozen=True)
class KernelTime:
    """One kernel: the layers it runs, its class, work and predicted time (``count`` runs)."""

    name: str
    klass: str
    layers: list[str]
    count: int
    flops: int  # per run
    bytes: int  # per run
    key: float
    compute_s: float  # per run
    memory_s: float  # per run
    overhead_s: float  # per run
    time_s: float  # all runs

    @property
    def bound(self) -> str | None:
        if self.compute_s == 0 and self.memory_s == 0:
            return None
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class Totals:
    latency_s: float
    throughput_per_s: float | None  # None when nothing takes time (a model of views only)
    utilization: float
    arithmetic_intensity: float
    weight_bytes: int
    peak_memory_bytes: int
    kv_cache_bytes: int
    fits: bool
    tp: int = 1  # tensor-parallel degree: every figure above is per device
    allreduce_s: float = 0.0  # part of latency_s: all-reduces between the tp devices
    tokens_per_s: float | None = None  # batch x seq / latency, for a spec with a seq variable

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Prediction:
    analysis: Analysis
    device: Device
    dtype: str
    weight_dtype: str
    execution: ExecutionModel
    kernels: list[KernelTime]
    totals: Totals
    capacity_bytes: float
    memory: MemoryProfile
    layer_kernel: dict[str, str] = field(default_factory=dict)  # layer path -> kernel name
    kv_dtype: str | None = None
    group_size: int = 128

    @property
    def peak_at(self) -> str | None:
        return self.memory.steps[self.memory.peak_step()] if self.memory.steps else None

    def layer_rows(self) -> list[dict[str, Any]]:
        """The analysis rows with each layer's kernel, class and time (a fused kernel's time is on
        its first layer; the layers it absorbed show 0 and name it)."""
        by_anchor = {k.layers[0]: k for k in self.kernels}
        latency = self.totals.latency_s
        rows = []
        for r in self.analysis.to_dict()["layers"]:
            k = by_anchor.get(r["name"])
            moved = r["bytes_read"] + r["bytes_written"]
            row = {**r, "bytes": moved, "intensity": r["flops"] / moved if moved else 0.0,
                   "kernel": self.layer_kernel.get(r["name"]), "class": k.klass if k else None,
                   "bound": k.bound if k else None, "time_s": k.time_s if k else 0.0}
            row["share"] = row["time_s"] / latency if latency else 0.0
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        data = self.analysis.to_dict()
        data["layers"] = self.layer_rows()
        data["totals"].update(self.totals.as_dict())
        data["kernels"] = [{"name": k.name, "class": k.klass, "layers": k.layers, "count": k.count,
                            "flops": k.flops, "bytes": k.bytes, "compute_s": k.compute_s, "memory_s": k.memory_s,
                            "overhead_s": k.overhead_s, "time_s": k.time_s, "bound": k.bound}
                           for k in self.kernels]
        data["units"].update({"latency_s": "s", "throughput_per_s": "1/s", "peak_memory_bytes": "B",
                              "weight_bytes": "B", "utilization": "1", "arithmetic_intensity": "FLOP/B",
                              "time_s": "s", "share": "1", "intensity": "FLOP/B"})
        data["hardware"] = {"device": self.device.id, "name": self.device.name, "dtype": self.dtype,
                            "weight_dtype": self.weight_dtype, "kv_dtype": self.kv_dtype,
                            "group_size": self.group_size, "execution": self.execution.mode,
                            "model": "measured" if self.execution.measured else "datasheet",
                            "model_source": self.execution.source, "capacity_bytes": self.capacity_bytes,
                            "peak_at": self.peak_at, "units": {"time": "s", "memory": "B", "rate": "1/s"}}
        return data


def predict(spec: Spec, values: Mapping[str, Any] | None = None, *, hardware: str | Device,
            dtype: str | None = None, weight_dtype: str | None = None, kv_dtype: str | None = None,
            precision: Precision | None = None, execution: str | None = None,
            memory_budget: float | None = None, tp: int = 1) -> Prediction:
    """Exact costs at one configuration, timed kernel by kernel on a device. The precision is
    ``precision``, or built from ``dtype`` (default: the spec's), ``weight_dtype`` and ``kv_dtype``.
    ``tp`` > 1: tensor parallelism (explorer/hardware/serving.py): figures per device, plus the
    all-reduces' time."""
    from explorer.hardware.serving import split_values

    device = hardware if isinstance(hardware, Device) else load_device(hardware)
    precision = precision or Precision(dtype or spec.dtype, weight_dtype, kv_dtype)
    dtype = precision.activations
    model = model_for(device, dtype, execution)  # a measured profile names the precision it was measured at
    device.peak_for(dtype)
    if tp > 1:
        values = split_values(spec, {**{k: v.default for k, v in spec.variables.items()}, **(values or {})}, tp)
    result = analyze(spec, values, precision)
    return place(result, device, model, memory_budget, tp)


def place(result: Analysis, device: Device, model: ExecutionModel, memory_budget: float | None = None,
          tp: int = 1) -> Prediction:
    import numpy as np

    from explorer.hardware.serving import allreduce_seconds, reduced
    from explorer.ops.base import numel
    from explorer.spec import DTYPE_BYTES

    subs = substitution(result.model, result.values)
    kernels: list[KernelTime] = []
    layer_kernel: dict[str, str] = {}
    for km in kernel_metrics(result.costs, plan(result.model, model.mode)):
        flops, moved = int(exact(km.flops, subs)), int(exact(km.bytes, subs))
        key = float(exact(km.key, subs))
        count = int(exact(km.count, subs))
        k = km.kernel
        active = (flops > 0 or moved > 0 or k.klass == "view") and count > 0
        compute, memory, t = model.times(k.klass, flops, moved, key, active)
        overhead = model.timing(k.klass).overhead_s if active else 0.0
        kernels.append(KernelTime(k.name, k.klass, [layer.path for layer in k.layers], count, flops, moved, key,
                                  float(compute), float(memory), overhead, float(t) * count))
        for layer in k.layers:
            layer_kernel[layer.path] = k.name
    latency = float(np.sum([k.time_s for k in kernels]))
    allreduce = 0.0
    if tp > 1:  # each reduced layer's output, all-reduced across the devices, count times
        act = DTYPE_BYTES.get(result.costs.precision.activations, 4)
        points = [(int(exact(layer.count, subs)), int(exact(numel(layer.shape), subs)) * act)
                  for layer in result.model.layers if reduced(layer)]
        allreduce = float(allreduce_seconds(sum(c * b for c, b in points), sum(c for c, _ in points), tp, device))
        latency += allreduce
    mem = memory_profile(result.model, result.costs.precision)
    weight_bytes = int(exact(mem.weight_bytes, subs))
    kv_bytes = int(exact(mem.kv_cache_bytes, subs))
    peak = int(exact(mem.peak(), subs))
    capacity = memory_budget if memory_budget is not None else device.capacity
    flops, moved = result.totals["flops"], result.totals["bytes_read"] + result.totals["bytes_written"]
    batch = _batch(result)
    peak_rate = device.peak_for(model.dtype or result.costs.precision.activations)
    totals = Totals(latency_s=latency, throughput_per_s=batch / latency if latency else None,
                    utilization=flops / latency / peak_rate if latency else 0.0,
                    arithmetic_intensity=flops / moved if moved else 0.0, weight_bytes=weight_bytes,
                    peak_memory_bytes=peak, kv_cache_bytes=kv_bytes, fits=peak <= capacity, tp=tp,
                    allreduce_s=allreduce,
                    tokens_per_s=batch * float(result.values["seq"]) / latency
                    if "seq" in result.values and latency else None)
    precision = result.costs.precision
    return Prediction(result, device, precision.activations, precision.weight_dtype, model, kernels, totals,
                      capacity, mem, layer_kernel, kv_dtype=precision.kv_dtype, group_size=precision.group_size)


def _batch(result: Analysis) -> float:
    """Samples per forward pass: the ``batch`` variable, else the first input's leading dim."""
    if "batch" in result.values:
        return float(result.values["batch"])
    first = next(iter(result.model.inputs.values()))
    return float(exact(first.shape[0], substitution(result.model, result.values)))
