"""Compiled study metrics vs ``analyze --hardware`` (``explorer.predict``) at one configuration."""

from __future__ import annotations

import random
from typing import Any

from explorer.cost import Precision
from explorer.errors import SpecError
from explorer.hardware.predict import predict
from explorer.spec import Spec
from explorer.study.evaluate import Evaluator, Target


def reference(spec: Spec, values: dict[str, Any], target: Target) -> dict[str, float] | None:
    """The study metrics from the exact path, or None when the configuration is invalid."""
    try:
        p = predict(spec, values, hardware=target.device, execution=target.execution,
                    precision=Precision(target.dtype, target.weight_dtype, target.kv_dtype))
    except SpecError:
        return None
    t = p.totals
    if t.latency_s <= 0:
        return None
    totals = p.analysis.totals
    out = {k: float(totals[k]) for k in ("params", "macs", "flops", "bytes_read", "bytes_written", "kv_cache_bytes")}
    out.update(latency=t.latency_s, throughput=t.throughput_per_s, peak_memory=float(t.peak_memory_bytes),
               weight_bytes=float(t.weight_bytes), utilization=t.utilization, intensity=t.arithmetic_intensity)
    return out


def sample(spec: Spec, rng: random.Random) -> dict[str, Any]:
    """A configuration: each variable at its default, min or a random value of its domain."""
    values = {}
    for name, var in spec.variables.items():
        pool = [var.default]
        try:
            domain = var.values()
            pool += [domain[0], rng.choice(domain), rng.choice(domain[: max(1, len(domain) // 4)])]
        except SpecError:
            pool += [v for v in (var.min,) if v is not None]
        values[name] = rng.choice(pool)
    return values


def mismatches(ev: Evaluator, spec: Spec, values: dict[str, Any]) -> list[str]:
    """Differences (relative > 1e-9, or validity) between the evaluator and the exact path."""
    got, _ = ev.scalar(values)
    want = reference(spec, values, ev.target)
    if (got is None) != (want is None):
        return [f"{values}: valid {got is not None} vs exact {want is not None}"]
    if got is None or want is None:
        return []
    return [f"{values}: {k} {got[k]!r} vs {v!r}" for k, v in want.items()
            if abs(got[k] - v) > 1e-9 * max(abs(v), 1e-30)]
