"""Hardware profiles (``hardware/*.yaml``, docs/hardware.md): peak compute per precision, memory
bandwidth and capacity, optional achievable fractions and launch overhead, each with its source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from explorer import yamlfile
from explorer.errors import ExplorerError, HardwareError, brief, did_you_mean
from explorer.units import parse_quantity

HARDWARE_DIR = Path(__file__).resolve().parent.parent.parent / "hardware"
PRECISIONS = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8")


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


class ProfileFile(_Strict):
    name: str
    kind: Literal["gpu", "cpu", "npu", "edge", "tpu"]
    description: str = ""
    peak: dict[str, Quantity]
    memory: Memory
    efficiency: Efficiency = Efficiency()
    launch_overhead: Quantity | None = None

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

    def peak_for(self, dtype: str) -> float:
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
    return Device(
        id=path.stem, name=f.name, kind=f.kind, description=f.description, peak=peak,
        bandwidth=number(f.memory.bandwidth, "bandwidth", ("memory", "bandwidth"), 0.0),
        capacity=number(f.memory.capacity, "bytes", ("memory", "capacity"), 0.0),
        compute_efficiency=number(f.efficiency.compute, "count", ("efficiency", "compute"), 1.0),
        bandwidth_efficiency=number(f.efficiency.bandwidth, "count", ("efficiency", "bandwidth"), 1.0),
        launch_overhead=number(f.launch_overhead, "time", ("launch_overhead",), 0.0, zero_ok=True),
        sources=sources, path=doc.path,
    )


def bundled() -> list[Device]:
    return [load_device(p) for p in sorted(HARDWARE_DIR.glob("*.yaml"))]
