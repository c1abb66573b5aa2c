"""Compiled study metrics vs ``analyze --hardware`` (exact analysis + sympy roofline) at one configuration."""

from __future__ import annotations

import random
from typing import Any

from explorer.analysis import analyze
from explorer.cost import Precision
from explorer.errors import SpecError
from explorer.hardware import Roofline
from explorer.spec import Spec
from explorer.study.evaluate import Evaluator, Target


def reference(spec: Spec, values: dict[str, Any], target: Target) -> dict[str, float] | None:
    """The study metrics from the exact path, or None when the configuration is invalid."""
    try:
        result = analyze(spec, values, Precision(target.dtype, target.weight_dtype))
    except SpecError:
        return None
    roof = Roofline(result.costs, target.device, target.dtype)
    t = roof.totals
    if float(t["latency_s"]) <= 0:
        return None
    out = {k: float(result.totals[k]) for k in ("params", "macs", "flops", "bytes_read", "bytes_written")}
    out.update(latency=float(t["latency_s"]), throughput=float(t["throughput_per_s"]),
               peak_memory=float(t["peak_memory_bytes"]), weight_bytes=float(t["weight_bytes"]),
               utilization=float(t["utilization"]), intensity=float(t["arithmetic_intensity"]))
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
