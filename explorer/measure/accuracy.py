"""``explorer accuracy``: predicted against measured latency over a grid of configurations.

Every configuration is measured through the torch bridge (:func:`explorer.measure.measure`) and
predicted by the execution model (:func:`explorer.hardware.predict.predict`). The report gives the
model's mean absolute percentage error, the share of predictions within +-10 %, and rank
correlations (Spearman's rho, Kendall's tau-b), beside the same figures for a MACs-only baseline:
latency = c x MACs with the one constant c that best fits the same measurements (least relative
squares), the strongest a MAC count can do. The baseline sees the measurements; the model does not.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.errors import ExplorerError


@dataclass(frozen=True)
class Scores:
    mape: float  # percent
    within_10: float  # share in [0, 1]
    spearman: float
    kendall: float
    worst: float  # largest absolute percentage error

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Point:
    label: str
    values: dict[str, Any]
    macs: int
    measured_s: float
    spread: float  # relative spread of the measurement's rounds
    predicted_s: float
    baseline_s: float = 0.0

    @property
    def error(self) -> float:
        return self.predicted_s / self.measured_s - 1.0


@dataclass(frozen=True)
class Report:
    spec: str
    device: str
    hardware: str
    execution: str
    dtype: str
    threads: int
    points: list[Point]
    model: Scores
    baseline: Scores
    seconds_per_mac: float

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "device": self.device, "hardware": self.hardware, "execution": self.execution,
                "dtype": self.dtype, "threads": self.threads, "model": self.model.as_dict(),
                "baseline": {**self.baseline.as_dict(), "seconds_per_mac": self.seconds_per_mac},
                "points": [{**p.__dict__, "error": p.error} for p in self.points]}


def ranks(x: Sequence[float]) -> Any:
    """Ranks from 1, ties given their average rank."""
    import numpy as np

    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    r = np.empty(len(a))
    r[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):
        tie = a == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def spearman(x: Any, y: Any) -> float:
    import numpy as np

    if len(x) < 2:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x: Any, y: Any) -> float:
    """Kendall's tau-b (ties in either variable accounted for)."""
    concordant = discordant = tx = ty = 0
    pairs = list(zip((float(v) for v in x), (float(v) for v in y)))
    for (a1, b1), (a2, b2) in itertools.combinations(pairs, 2):
        dx, dy = (a1 > a2) - (a1 < a2), (b1 > b2) - (b1 < b2)
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx == dy:
            concordant += 1
        else:
            discordant += 1
    denom = ((concordant + discordant + tx) * (concordant + discordant + ty)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


def scores(predicted: Sequence[float], measured: Sequence[float]) -> Scores:
    import numpy as np

    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    err = np.abs(p / m - 1.0)
    return Scores(float(100 * err.mean()), float((err <= 0.10).mean()), spearman(p, m), kendall(p, m),
                  float(100 * err.max()))


def macs_constant(macs: Sequence[float], measured: Sequence[float]) -> float:
    """The c minimizing sum((c x macs / t - 1)^2): the best single seconds-per-MAC."""
    import numpy as np

    r = np.asarray(macs, dtype=float) / np.asarray(measured, dtype=float)
    return float(r.sum() / (r * r).sum()) if (r * r).sum() else 0.0


def grid(spec: Any, axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values (``--grid width=0.5,1.0 --grid resolution=160,224``)."""
    for name in axes:
        if name not in spec.variables:
            from explorer.errors import did_you_mean

            raise ExplorerError(f"--grid {name}: unknown variable{did_you_mean(name, spec.variables)}; "
                                f"variables: {', '.join(spec.variables)}")
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))] or [{}]


def run(spec: Any, configs: Sequence[Mapping[str, Any]], *, hardware: str, device: str = "cpu", threads: int = 1,
        dtype: str | None = None, execution: str | None = None, runtime: str | None = None, rounds: int = 5,
        progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Measure and predict every configuration; score the model and the MACs baseline. The runtime
    defaults to the execution mode's counterpart: PyTorch eager for eager, ONNX Runtime for fused."""
    from explorer.hardware.predict import predict
    from explorer.hardware.profile import load_device
    from explorer.measure import measure

    device_profile = load_device(hardware)
    mode = execution or device_profile.execution_mode
    runtime = runtime or ("torch" if mode == "eager" else "onnxruntime")

    dtype = dtype or spec.dtype
    points: list[Point] = []
    device_name = ""
    exec_mode = execution
    for i, values in enumerate(configs):
        label = " ".join(f"{k}={v}" for k, v in values.items()) or "defaults"
        if progress:
            progress(i, len(configs), label)
        pred = predict(spec, dict(values), hardware=device_profile, dtype=dtype, execution=mode)
        exec_mode = pred.execution.mode
        m = measure(spec, dict(values), device=device, threads=threads, dtype=dtype, rounds=rounds, runtime=runtime)
        device_name = m.device
        points.append(Point(label, dict(values), int(pred.analysis.totals["macs"]), m.total.best_s,
                            m.total.spread, pred.totals.latency_s))
    if progress:
        progress(len(configs), len(configs), "done")
    c = macs_constant([p.macs for p in points], [p.measured_s for p in points])
    points = [Point(p.label, p.values, p.macs, p.measured_s, p.spread, p.predicted_s, c * p.macs) for p in points]
    measured = [p.measured_s for p in points]
    return Report(spec.name, device_name, str(hardware), f"{exec_mode} ({runtime})", dtype, threads, points,
                  scores([p.predicted_s for p in points], measured), scores([p.baseline_s for p in points], measured),
                  c)
