"""Every study metric of a spec on one target, for arrays of configurations: derive once, evaluate many.

Variables that a study or sweep does not search (``fixed:`` values, the others at their defaults)
are bound *before* the graph is built, so structure that depends on them (repeat counts, boolean
attributes, ``when:``) is plain numbers. The searched variables stay symbols. When the graph cannot
be built with some of them symbolic (a DenseNet whose repeat count grows the channels, a boolean
attribute ``bias: "fused == 1"`` on a searched ``fused``), those variables are *structural*: one
graph is built per distinct value of them, on demand, and cached.

Each graph is compiled once (:mod:`explorer.study.compiled`) and evaluated layer by layer with
numpy. A configuration is valid when every tensor dim is a positive integer; the tuple of its
structural values and dims identifies the architecture (two width multipliers that round to the
same channels are one architecture, evaluated once in a study).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.errors import ExplorerError, SpecError
from explorer.graph import Model, build
from explorer.hardware import Device
from explorer.hardware.serving import SPLIT, Scenario, check_scenario_spec, split_values
from explorer.spec import Spec
from explorer.study.allocator import retain_freed_memory
from explorer.study.compiled import CompiledModel, unique_rows

# study metric -> (engine quantity, unit dimension for constraints)
METRICS: dict[str, tuple[str, str]] = {
    "throughput": ("throughput_per_s", "rate"),
    "latency": ("latency_s", "time"),
    "params": ("params", "count"),
    "macs": ("macs", "count"),
    "flops": ("flops", "count"),
    "macs_per_sample": ("macs / batch", "count"),
    "flops_per_sample": ("flops / batch", "count"),
    "bytes": ("bytes", "bytes"),
    "bytes_read": ("bytes_read", "bytes"),
    "bytes_written": ("bytes_written", "bytes"),
    "peak_memory": ("peak_memory_bytes", "bytes"),
    "weight_bytes": ("weight_bytes", "bytes"),
    "kv_cache_bytes": ("kv_cache_bytes", "bytes"),
    "utilization": ("utilization", "fraction"),
    "intensity": ("arithmetic_intensity", "intensity"),
    # tokens per second: batch x seq / latency for one step (a spec with a seq variable), or, with a
    # scenario, output tokens per second of the request; time to first token and per output token
    # need the study's scenario (a prompt plus generated tokens; explorer/hardware/serving.py)
    "tokens_per_s": ("tokens_per_s", "rate"),
    "time_to_first_token": ("time_to_first_token_s", "time"),
    "time_per_output_token": ("time_per_output_token_s", "time"),
}
SCENARIO_METRICS = ("time_to_first_token", "time_per_output_token")  # need a study scenario
@dataclass
class Target:
    """A device at a precision."""

    device: Device
    dtype: str
    weight_dtype: str | None = None
    execution: str | None = None  # eager / fused; None: the profile's mode
    kv_dtype: str | None = None
    tp: int = 1  # tensor-parallel degree: metrics are per device, plus all-reduce time
    scenario: Scenario | None = None  # a request: metrics of the prefill and every decode step

    @property
    def label(self) -> str:
        w = f"/{self.weight_dtype}" if self.weight_dtype and self.weight_dtype != self.dtype else ""
        return f"{self.device.id}:{self.dtype}{w}" + (f":tp{self.tp}" if self.tp > 1 else "")


class Evaluator:
    """All metrics of a spec on one target (see the module docstring).

    ``searched``: the variables that vary (None: all of them); every other variable is bound to its
    ``fixed`` value or its default before building. ``model``: an already built graph (no binding).
    """

    def __init__(self, spec: Spec, target: Target, model: Model | None = None, *,
                 fixed: Mapping[str, Any] | None = None, searched: list[str] | None = None) -> None:
        retain_freed_memory()
        self.spec = spec
        self.target = target
        fixed = dict(fixed or {})
        names = list(spec.variables)
        self.searched = names if searched is None else [n for n in names if n in searched]
        self.bound = {n: fixed.get(n, spec.variables[n].default) for n in names
                      if n not in self.searched or n in fixed}
        if target.scenario is not None:  # each step sets seq and context: they vary
            check_scenario_spec(spec)
            self.bound = {n: v for n, v in self.bound.items() if n not in ("seq", "context")}
            self.searched = [n for n in names if n not in self.bound]
        split = [n for n in SPLIT if n in self.bound]
        self.bound.update({n: v for n, v in split_values(spec, self.bound, target.tp).items() if n in split})
        self.searched = [n for n in self.searched if n not in self.bound]
        self._models: dict[tuple[float, ...], CompiledModel | ExplorerError] = {}
        self.structural: list[str] = []
        if model is not None:
            self._models[()] = CompiledModel(model, target)
        else:
            self.structural = self._find_structural()

    # -- structure ----------------------------------------------------------------------------------
    def _find_structural(self) -> list[str]:
        """The fewest searched variables that must be numbers for the graph to build."""
        try:
            self._models[()] = CompiledModel(build(self.spec, self.bound), self.target)
            return []
        except SpecError as exc:
            first = exc
        defaults = {n: self.spec.variables[n].default for n in self.searched}
        try:
            build(self.spec, {**self.bound, **defaults})
        except SpecError:
            raise first from None
        structural = list(self.searched)
        for name in self.searched:  # free every variable the graph can keep symbolic
            trial = [n for n in structural if n != name]
            try:
                build(self.spec, {**self.bound, **{n: defaults[n] for n in trial}})
            except SpecError:
                continue
            structural = trial
        return structural

    def compiled(self, structure: tuple[float, ...]) -> CompiledModel | ExplorerError:
        """The compiled graph for these values of the structural variables (built once)."""
        got = self._models.get(structure)
        if got is None:
            bind = {**self.bound, **{n: _number(v) for n, v in zip(self.structural, structure)}}
            try:
                got = CompiledModel(build(self.spec, bind), self.target)
            except SpecError as exc:  # this structure does not build: its configurations are invalid
                got = exc
            self._models[structure] = got
        return got

    # -- evaluation ---------------------------------------------------------------------------------
    def key(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The architecture: structural values and every distinct tensor dim (no costs computed)."""
        structure = tuple(float(values[n]) for n in self.structural)
        model = self.compiled(structure)
        if isinstance(model, ExplorerError):
            return (*structure, "invalid")
        return (*structure, *model.dims(values))

    def scalar(self, values: Mapping[str, float]) -> tuple[dict[str, float] | None, tuple[Any, ...]]:
        """One configuration -> (metrics, or None when invalid; architecture key)."""
        key = self.key(values)
        metrics, valid = self.vector({k: np.array([float(v)]) for k, v in values.items()})
        if not bool(valid[0]):
            return None, key
        return {m: float(v[0]) for m, v in metrics.items()}, key

    def vector(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        """Arrays of configurations (broadcast together) -> (metrics, valid mask), each of that shape."""
        metrics, valid, _ = self.evaluate(values)
        return metrics, valid

    def evaluate(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        """Like :meth:`vector`, plus an architecture id per configuration (equal ids: equal tensor
        dims and structure, i.e. one architecture at one batch)."""
        if self.target.scenario is None:
            metrics, valid, arch = self._evaluate(self._per_device(values))
            return metrics, valid, arch
        metrics, valid, steps = self.evaluate_steps(values)
        return metrics, valid, steps["arch"]

    def _per_device(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Searched split variables divided by the tensor-parallel degree (NaN where it does not
        divide: such a configuration is invalid)."""
        tp = self.target.tp
        out = dict(values)
        if tp > 1:
            for n in SPLIT:
                if n in out and n in self.searched:
                    v = np.asarray(out[n], dtype=np.float64)
                    out[n] = np.where(np.mod(v, tp) == 0, v / tp, np.nan)
        return out

    def evaluate_steps(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any]]:
        """A request per configuration (the target's scenario): every step evaluated, then combined
        (explorer/hardware/serving.py): (metrics, valid, per-step arrays of shape (n, steps))."""
        scenario = self.target.scenario
        assert scenario is not None
        steps = scenario.steps()
        k = len(steps)
        given = {n: np.asarray(v, dtype=np.float64) for n, v in values.items() if n not in ("seq", "context")}
        shape = np.broadcast_shapes(*(a.shape for a in given.values())) if given else ()
        n = int(np.prod(shape)) if shape else 1
        flat = {name: np.repeat(np.broadcast_to(a, shape).ravel(), k) for name, a in given.items()}
        flat["seq"] = np.tile(np.array([s for s, _ in steps], dtype=np.float64), n)
        flat["context"] = np.tile(np.array([c for _, c in steps], dtype=np.float64), n)
        per, ok, arch = self._evaluate(self._per_device(flat))
        per = {m: v.reshape(n, k) for m, v in per.items()}
        valid = ok.reshape(n, k).all(axis=1)
        lat = per["latency"]
        out = {m: per[m][:, 0].copy() for m in METRICS}
        with np.errstate(invalid="ignore", divide="ignore"):
            for m in ("macs", "flops", "bytes", "bytes_read", "bytes_written"):
                out[m] = per[m].sum(axis=1)
            for m in ("peak_memory", "kv_cache_bytes"):
                out[m] = per[m].max(axis=1)
            total = lat.sum(axis=1)
            samples = per["throughput"][:, 0] * lat[:, 0]  # the batch
            out["latency"] = total
            out["time_to_first_token"] = lat[:, 0]
            out["time_per_output_token"] = lat[:, 1:].mean(axis=1) if k > 1 else np.full(n, np.nan)
            out["tokens_per_s"] = samples * scenario.generate / total
            out["throughput"] = samples / total
            out["utilization"] = (per["utilization"] * lat).sum(axis=1) / total
            out["intensity"] = out["flops"] / out["bytes"]
            out["macs_per_sample"] = out["macs"] / samples
            out["flops_per_sample"] = out["flops"] / samples
        shaped = {m: v.reshape(shape) for m, v in out.items()}
        return shaped, valid.reshape(shape), {"latency": lat, "arch": arch.reshape(n, k)[:, 0].reshape(shape)}

    def _evaluate(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        arrays = {k: np.asarray(values[k], dtype=np.float64) for k in self.spec.variables if k in values}
        missing = [k for k in self.searched if k not in arrays]
        if missing:
            raise SpecError(f"no value for variable(s) {', '.join(missing)}", path=self.spec.path)
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else ()
        flat = {k: np.broadcast_to(a, shape).ravel() for k, a in arrays.items()}
        n = int(np.prod(shape)) if shape else 1
        for name, v in self.bound.items():
            flat[name] = np.full(n, float(v))
        metrics = {m: np.full(n, np.nan) for m in METRICS}
        valid = np.zeros(n, dtype=bool)
        arch = np.full(n, -1, dtype=np.int64)
        offset = 0
        columns = np.stack([flat[k] for k in self.structural], axis=1) if self.structural else np.zeros((n, 0))
        uniq, inverse = unique_rows(columns)
        for k, row in enumerate(uniq):
            model = self.compiled(tuple(float(v) for v in row))
            if isinstance(model, ExplorerError):
                continue
            idx = np.nonzero(inverse == k)[0] if len(uniq) > 1 else slice(None)
            part = {name: col[idx] for name, col in flat.items()}
            size = n if len(uniq) == 1 else len(idx)  # type: ignore[arg-type]
            res, ok, ids = model.evaluate(part, size)
            for m in METRICS:
                if m in res:  # the scenario metrics are made from several steps (evaluate_steps)
                    metrics[m][idx] = res[m]
            valid[idx] = ok
            arch[idx] = ids + offset
            offset += int(ids.max()) + 1 if len(ids) else 0
        if "seq" in flat:  # tokens through the step per second
            metrics["tokens_per_s"] = metrics["throughput"] * flat["seq"]
        return {m: v.reshape(shape) for m, v in metrics.items()}, valid.reshape(shape), arch.reshape(shape)


def _number(v: float) -> Any:
    return int(v) if float(v).is_integer() else float(v)
