"""The execution model: how long each kernel takes on a device (docs/hardware.md).

Each kernel class ``c`` (:mod:`explorer.hardware.kernels`) has a fixed cost per kernel ``a_c``, a
time per FLOP that may depend on the class's size key, and a time per byte moved that may depend on
the kernel's working set (so a cache-resident kernel can beat DRAM bandwidth)::

    compute_s = F x p_c(key)          p_c: seconds per FLOP, piecewise linear in log2(key)
    memory_s  = Q x q_c(Q)            q_c: seconds per byte, piecewise linear in log2(Q)
    time_s    = a_c + compute_s + memory_s        (combine: sum, fitted by ``explorer calibrate``)
    time_s    = a_c + max(compute_s, memory_s)    (combine: max, the roofline of datasheet profiles)

A kernel runs ``count`` times (a repeat's representative). A datasheet profile without an
``execution`` section gives every class the same roofline: ``p = 1 / (peak x efficiency)``,
``q = 1 / (bandwidth x efficiency)``, ``a = launch_overhead``, combine max, so the eager model is
exactly the classic per-layer roofline. Everything here is numpy: a model is evaluated at one
configuration or vectorized over many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explorer.errors import HardwareError
from explorer.hardware.kernels import KERNEL_CLASSES, MODES

COMBINES = ("sum", "max")


@dataclass(frozen=True)
class Curve:
    """Seconds per unit (FLOP or byte) as a piecewise-linear function of log2(key), flat outside."""

    at: tuple[float, ...]  # keys, increasing
    seconds: tuple[float, ...]  # seconds per unit at each key

    def __call__(self, key: Any) -> Any:
        import numpy as np

        if len(self.at) == 1:
            return np.full(np.shape(key), self.seconds[0]) if np.ndim(key) else self.seconds[0]
        x = np.log2(np.maximum(np.asarray(key, dtype=np.float64), 1.0))
        return np.interp(x, np.log2(self.at), self.seconds)

    @classmethod
    def constant(cls, seconds: float) -> Curve:
        return cls((1.0,), (seconds,))


@dataclass(frozen=True)
class ClassTiming:
    overhead_s: float
    per_flop: Curve | None  # None: FLOPs cost nothing extra in this class
    per_byte: Curve | None
    source: str = ""


@dataclass(frozen=True)
class ExecutionModel:
    """Per-class timing of a device at one precision, and how kernels combine."""

    mode: str
    combine: str
    classes: dict[str, ClassTiming]
    default: ClassTiming
    measured: bool = False
    dtype: str | None = None  # the precision a measured model applies to
    source: str = ""
    overlap: dict[str, float] = field(default_factory=dict)

    def timing(self, klass: str) -> ClassTiming:
        return self.classes.get(klass, self.default)

    def times(self, klass: str, flops: Any, moved: Any, key: Any, active: Any = True) -> tuple[Any, Any, Any]:
        """(compute_s, memory_s, time_s) of one kernel class, numpy-vectorized.

        ``active`` is False for a kernel that does nothing at a configuration (a view that is
        free in this mode, or zero FLOPs and zero bytes): it then costs nothing at all.
        """
        import numpy as np

        t = self.timing(klass)
        flops = np.asarray(flops, dtype=np.float64)
        moved = np.asarray(moved, dtype=np.float64)
        compute = flops * t.per_flop(key) if t.per_flop is not None else np.zeros_like(flops)
        memory = moved * t.per_byte(np.maximum(moved, 1.0)) if t.per_byte is not None else np.zeros_like(moved)
        work = np.maximum(compute, memory) if self.combine == "max" else compute + memory
        total = np.where(active, t.overhead_s + work, 0.0)
        return compute, memory, total


def kernel_times(model: ExecutionModel, classes: list[str], count: Any, flops: Any, moved: Any, key: Any) -> Any:
    """Seconds of each kernel, ``count`` runs included: arrays (n_kernels, n) in and out.

    The vectorized form of :func:`explorer.hardware.predict.place` (studies and sweeps): a kernel
    that neither computes nor moves data costs nothing, except a view in a mode where views are
    framework calls.
    """
    import numpy as np

    shape = np.broadcast_shapes(np.shape(count), np.shape(flops), np.shape(moved), np.shape(key))
    out = np.zeros(shape)
    order: dict[str, list[int]] = {}
    for i, klass in enumerate(classes):
        order.setdefault(klass, []).append(i)
    for klass, rows in order.items():
        # kernels sorted by class (as the study evaluator orders them) are sliced, not copied
        idx: Any = slice(rows[0], rows[-1] + 1) if rows[-1] - rows[0] + 1 == len(rows) else np.array(rows, dtype=np.intp)
        f, q = np.broadcast_to(flops, shape)[idx], np.broadcast_to(moved, shape)[idx]
        active = (f > 0) | (q > 0) if klass != "view" else np.ones(f.shape, dtype=bool)
        _, _, t = model.times(klass, f, q, np.broadcast_to(key, shape)[idx], active)
        out[idx] = np.broadcast_to(count, shape)[idx] * t
    return out


def roofline_model(device: Any, dtype: str, mode: str = "eager") -> ExecutionModel:
    """The datasheet roofline as an execution model: one law for every class."""
    peak = device.peak_for(dtype) * device.compute_efficiency
    bandwidth = device.bandwidth * device.bandwidth_efficiency
    launch = device.launch_overhead_for(mode)
    default = ClassTiming(launch, Curve.constant(1.0 / peak), Curve.constant(1.0 / bandwidth),
                          source="datasheet roofline")
    classes: dict[str, ClassTiming] = {}
    for klass, eff in device.class_efficiency.items():
        c = eff.get("compute", 1.0)
        b = eff.get("bandwidth", 1.0)
        classes[klass] = ClassTiming(launch, Curve.constant(1.0 / (peak * c)),
                                     Curve.constant(1.0 / (bandwidth * b)), source=eff.get("source", ""))
    # a view launches no kernel on the device: free (a measured eager profile says what its call costs)
    classes["view"] = ClassTiming(0.0, None, None, source="datasheet: views launch no kernel")
    return ExecutionModel(mode, "max", classes, default, measured=False, dtype=dtype, source="datasheet")


def model_for(device: Any, dtype: str, mode: str | None = None) -> ExecutionModel:
    """The device's execution model at a precision, in its own mode or the one asked for."""
    mode = mode or device.execution_mode
    if mode not in MODES:
        raise HardwareError(f"unknown execution mode '{mode}'; choose {' or '.join(MODES)}", path=device.path)
    measured = device.measured
    if measured is None:
        return roofline_model(device, dtype, mode)
    if dtype != measured.dtype:
        raise HardwareError(f"{device.name}: this profile was calibrated at {measured.dtype}, not {dtype}; run "
                            f"'explorer calibrate --dtype {dtype}' for a profile at that precision",
                            path=device.path)
    classes = dict(measured.classes)
    if mode == "fused":
        classes["view"] = ClassTiming(0.0, None, None, source="fused: views are free")
    return ExecutionModel(mode, measured.combine, classes, measured.default, measured=True, dtype=measured.dtype,
                          source=measured.source)


def check_class(name: str) -> None:
    if name not in KERNEL_CLASSES and name != "default":
        from explorer.errors import did_you_mean

        raise HardwareError(f"unknown kernel class '{name}'{did_you_mean(name, KERNEL_CLASSES)}; "
                            f"known: {', '.join(KERNEL_CLASSES)}")
