"""Hardware profiles (``hardware/*.yaml``, docs/hardware.md): peak compute per precision, memory
bandwidth and capacity, optional achievable fractions and launch overhead, each with its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from explorer import yamlfile
from explorer.bundled import folder as _bundled_folder
from explorer.errors import ExplorerError, HardwareError, brief, did_you_mean
from explorer.units import parse_quantity

HARDWARE_DIR = _bundled_folder("hardware")
PRECISIONS = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8")
FP8_FORMATS = ("fp8_e4m3", "fp8_e5m2")  # both run at the fp8 tensor-core rate on Hopper and Ada


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantity(_Strict):
    value: str | int | float
    source: str = Field(min_length=1)

    @field_validator("value", mode="before")
    @classmethod
    def _not_bool(cls, v: object) -> object:
        if isinstance(v, bool):  # pydantic would read true as 1.0
            raise ValueError("must be a number with a unit, not true/false")
        return v


class Memory(_Strict):
    bandwidth: Quantity
    capacity: Quantity


class Efficiency(_Strict):
    compute: Quantity | None = None
    bandwidth: Quantity | None = None


class InterconnectDef(_Strict):
    """The link between devices for tensor parallelism: per-direction bandwidth and per-message latency."""

    name: str = ""
    bandwidth: Quantity
    latency: Quantity


@dataclass(frozen=True)
class Interconnect:
    name: str
    bandwidth: float  # B/s, per direction
    latency: float  # s per message


class ClassEfficiency(_Strict):
    """A datasheet profile's per-class achievable fractions (of the profile-wide ones)."""

    compute: Quantity | None = None
    bandwidth: Quantity | None = None


class Execution(_Strict):
    mode: Literal["eager", "fused"] = "eager"
    classes: dict[str, ClassEfficiency] = {}


class CurveFile(_Strict):
    """Rates at keys: ``{unit: GFLOP/s, at: [1024, 4096], rate: [12.5, 40.1]}``; a null rate is free."""

    unit: str
    at: list[float] = Field(min_length=1)
    rate: list[float | None] = Field(min_length=1)


class MeasuredClass(_Strict):
    overhead: str | float
    compute: CurveFile | None = None
    bandwidth: CurveFile | None = None
    fit: str = ""


class Measured(_Strict):
    """Written by ``explorer calibrate``: per-class timings fitted on microbenchmarks."""

    source: str = Field(min_length=1)
    dtype: str
    combine: Literal["sum", "max"] = "sum"
    threads: int | None = None
    classes: dict[str, MeasuredClass]
    default: str  # the class whose timing stands in for classes that were not measured


class ProfileFile(_Strict):
    name: str
    kind: Literal["gpu", "cpu", "npu", "edge", "tpu"]
    description: str = ""
    peak: dict[str, Quantity]
    memory: Memory
    efficiency: Efficiency = Efficiency()
    launch_overhead: Quantity | None = None
    launch_overhead_fused: Quantity | None = None  # per kernel when launched as a graph / by a serving engine
    interconnect: InterconnectDef | None = None
    execution: Execution = Execution()
    measured: Measured | None = None

    @field_validator("peak")
    @classmethod
    def _precisions(cls, v: dict[str, Quantity]) -> dict[str, Quantity]:
        for key in v:
            if key not in PRECISIONS:
                raise ValueError(f"unknown precision '{key}'{did_you_mean(key, PRECISIONS)}; "
                                 f"known: {', '.join(PRECISIONS)}")
        if not v:
            raise ValueError("at least one precision is needed")
        return v


@dataclass(frozen=True)
class Device:
    """A profile with every number in base units (FLOP/s, B/s, B, s)."""

    id: str
    name: str
    kind: str
    description: str
    peak: dict[str, float]
    bandwidth: float
    capacity: float
    compute_efficiency: float
    bandwidth_efficiency: float
    launch_overhead: float
    sources: dict[str, str]
    path: str
    execution_mode: str = "eager"
    class_efficiency: dict[str, dict[str, Any]] = field(default_factory=dict)
    measured: Any = None  # an ExecutionModel fitted by explorer calibrate, or None (datasheet)
    launch_overhead_fused: float | None = None  # None: the eager launch overhead in every mode
    interconnect: Interconnect | None = None

    def launch_overhead_for(self, mode: str) -> float:
        """Fixed cost per kernel in an execution mode: eager framework dispatch and launch, or the
        fused mode's (kernels replayed as a CUDA graph or launched by a serving engine)."""
        if mode == "fused" and self.launch_overhead_fused is not None:
            return self.launch_overhead_fused
        return self.launch_overhead

    def peak_for(self, dtype: str) -> float:
        """Peak compute for ``dtype``; fp8_e4m3 and fp8_e5m2 run at the profile's ``fp8`` peak."""
        if dtype not in self.peak and dtype in FP8_FORMATS and "fp8" in self.peak:
            return self.peak["fp8"]
        if dtype not in self.peak:
            raise HardwareError(f"{self.name} has no {dtype} peak in its profile; it has "
                                f"{', '.join(self.peak)} (choose one with --dtype)", path=self.path)
        return self.peak[dtype]

    def ridge_point(self, dtype: str) -> float:
        """Arithmetic intensity (FLOP/byte) where the roofline turns from memory- to compute-bound."""
        return self.peak_for(dtype) / self.bandwidth


def resolve(name: str | Path) -> Path:
    """A profile path, or a bundled profile's name (``explorer hardware`` lists them)."""
    return yamlfile.find(name, HARDWARE_DIR, HardwareError, "hardware profile")


def load_device(name: str | Path) -> Device:
    path = resolve(name)
    doc = yamlfile.load(path, HardwareError)
    if not isinstance(doc.data, dict):
        raise HardwareError("a hardware profile is a mapping (name, kind, peak, memory)", path=doc.path, line=1)
    try:
        f = ProfileFile.model_validate(doc.data)
    except ValidationError as exc:
        raise yamlfile.pydantic_error(exc, doc, HardwareError, ProfileFile) from None
    return _to_device(f, doc, path)


def _to_device(f: ProfileFile, doc: yamlfile.YamlDoc, path: Path) -> Device:
    sources: dict[str, str] = {}

    def number(q: Quantity | None, dimension: str, key: tuple[Any, ...], default: float,
               zero_ok: bool = False) -> float:
        if q is None:
            return default
        try:
            v = parse_quantity(q.value, dimension)
        except ExplorerError as exc:
            raise HardwareError(f"{'.'.join(key)}: {exc.message}", path=doc.path, line=doc.line(*key)) from None
        if not (v > 0 or (zero_ok and v == 0)):
            raise HardwareError(f"{'.'.join(key)}: must be {'>= 0' if zero_ok else 'positive'}, got {brief(q.value)}",
                                path=doc.path, line=doc.line(*key))
        if dimension == "count" and v > 1:
            raise HardwareError(f"{'.'.join(key)}: an efficiency is a fraction in (0, 1], got {brief(q.value)}",
                                path=doc.path, line=doc.line(*key))
        sources[".".join(key)] = q.source
        return v

    peak = {k: number(q, "compute", ("peak", k), 0.0) for k, q in f.peak.items()}
    classes: dict[str, dict[str, Any]] = {}
    for klass, eff in f.execution.classes.items():
        _check_class(klass, doc, ("execution", "classes", klass))
        where = ("execution", "classes", klass)
        entry: dict[str, Any] = {}
        for what in ("compute", "bandwidth"):
            q = getattr(eff, what)
            if q is not None:
                entry[what] = number(q, "count", (*where, what), 1.0)
                entry["source"] = q.source
        classes[klass] = entry
    return Device(
        id=path.stem, name=f.name, kind=f.kind, description=f.description, peak=peak,
        bandwidth=number(f.memory.bandwidth, "bandwidth", ("memory", "bandwidth"), 0.0),
        capacity=number(f.memory.capacity, "bytes", ("memory", "capacity"), 0.0),
        compute_efficiency=number(f.efficiency.compute, "count", ("efficiency", "compute"), 1.0),
        bandwidth_efficiency=number(f.efficiency.bandwidth, "count", ("efficiency", "bandwidth"), 1.0),
        launch_overhead=number(f.launch_overhead, "time", ("launch_overhead",), 0.0, zero_ok=True),
        sources=sources, path=doc.path, execution_mode=f.execution.mode, class_efficiency=classes,
        measured=_measured(f.measured, doc) if f.measured is not None else None,
        launch_overhead_fused=None if f.launch_overhead_fused is None else
        number(f.launch_overhead_fused, "time", ("launch_overhead_fused",), 0.0, zero_ok=True),
        interconnect=None if f.interconnect is None else Interconnect(
            f.interconnect.name,
            number(f.interconnect.bandwidth, "bandwidth", ("interconnect", "bandwidth"), 0.0),
            number(f.interconnect.latency, "time", ("interconnect", "latency"), 0.0, zero_ok=True)),
    )


def _check_class(klass: str, doc: yamlfile.YamlDoc, key: tuple[Any, ...]) -> None:
    from explorer.hardware.kernels import KERNEL_CLASSES

    if klass not in KERNEL_CLASSES:
        raise HardwareError(f"{'.'.join(key)}: unknown kernel class '{klass}'{did_you_mean(klass, KERNEL_CLASSES)}",
                            path=doc.path, line=doc.line(*key))


def _measured(m: Measured, doc: yamlfile.YamlDoc) -> Any:
    """The fitted per-class timings as an ExecutionModel (mode is chosen when predicting)."""
    from explorer.hardware.execution import ClassTiming, ExecutionModel

    if m.dtype not in PRECISIONS:
        raise HardwareError(f"measured.dtype: unknown precision '{m.dtype}'{did_you_mean(m.dtype, PRECISIONS)}",
                            path=doc.path, line=doc.line("measured", "dtype"))
    classes: dict[str, ClassTiming] = {}
    for klass, c in m.classes.items():
        where = ("measured", "classes", klass)
        _check_class(klass, doc, where)
        classes[klass] = ClassTiming(_quantity(c.overhead, "time", doc, (*where, "overhead"), zero_ok=True),
                                     _curve(c.compute, "compute", doc, (*where, "compute")),
                                     _curve(c.bandwidth, "bandwidth", doc, (*where, "bandwidth")), source=c.fit)
    if m.default not in classes:
        raise HardwareError(f"measured.default: '{m.default}' is not one of the measured classes "
                            f"({', '.join(classes)})", path=doc.path, line=doc.line("measured", "default"))
    return ExecutionModel("eager", m.combine, classes, classes[m.default], measured=True, dtype=m.dtype,
                          source=m.source)


def _quantity(value: Any, dimension: str, doc: yamlfile.YamlDoc, key: tuple[Any, ...], zero_ok: bool = False) -> float:
    import math

    try:
        v = parse_quantity(value, dimension)
    except ExplorerError as exc:
        raise HardwareError(f"{'.'.join(map(str, key))}: {exc.message}", path=doc.path, line=doc.line(*key)) from None
    if not math.isfinite(v) or not (v > 0 or (zero_ok and v == 0)):
        raise HardwareError(f"{'.'.join(map(str, key))}: must be a finite {'non-negative' if zero_ok else 'positive'} "
                            f"number, got {value!r}", path=doc.path, line=doc.line(*key))
    return v


def _curve(c: CurveFile | None, dimension: str, doc: yamlfile.YamlDoc, key: tuple[Any, ...]) -> Any:
    """Rates at keys -> seconds per unit at keys; all-null rates mean the term is free."""
    from explorer.hardware.execution import Curve

    if c is None:
        return None
    if len(c.at) != len(c.rate):
        raise HardwareError(f"{'.'.join(key)}: 'at' has {len(c.at)} keys but 'rate' has {len(c.rate)} values",
                            path=doc.path, line=doc.line(*key))
    if any(not (a > 0) for a in c.at) or any(b <= a for a, b in zip(c.at, c.at[1:])):
        raise HardwareError(f"{'.'.join(key)}.at: keys must be positive and increasing, got {c.at}",
                            path=doc.path, line=doc.line(*key, "at"))
    if all(r is None for r in c.rate):
        return None
    scale = _quantity(f"1 {c.unit}", dimension, doc, (*key, "unit"))
    seconds = tuple(0.0 if r is None else 1.0 / (_quantity(r, "count", doc, (*key, "rate")) * scale)
                    for r in c.rate)
    return Curve(tuple(float(a) for a in c.at), seconds)


def bundled() -> list[Device]:
    return [load_device(p) for p in sorted(HARDWARE_DIR.glob("*.yaml"))]
