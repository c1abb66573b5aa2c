"""Exhaustive sweep of a discrete design space with the compiled closed forms, vectorized."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.study.config import Study
from explorer.study.evaluate import METRICS, Evaluator, Target
from explorer.study.pareto import non_dominated, oriented

MAX_CONFIGS = 50_000_000


@dataclass
class SweepResult:
    """Every configuration of the grid: variables, metrics, validity, feasibility, front mask."""

    columns: dict[str, np.ndarray]  # variables (+ 'target'), then metrics
    valid: np.ndarray
    feasible: np.ndarray
    front: np.ndarray
    objectives: np.ndarray  # (n, k), oriented: larger is better
    architecture: np.ndarray  # (n,) ids: equal when every tensor dim (and target) is equal
    seconds: float = 0.0

    def distinct(self, mask: np.ndarray) -> int:
        """Distinct architectures among the configurations in ``mask``."""
        return int(len(np.unique(self.architecture[mask])))

    def first_of_each(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` keeping only the first configuration of each architecture (as a study's front
        shows an architecture met again once)."""
        idx = np.nonzero(mask)[0]
        _, first = np.unique(self.architecture[idx], return_index=True)
        out = np.zeros_like(mask)
        out[idx[np.sort(first)]] = True
        return out

    @property
    def size(self) -> int:
        return len(self.valid)

    def rows(self, mask: np.ndarray) -> list[dict[str, Any]]:
        idx = np.nonzero(mask)[0]
        return [{k: _plain(v[i]) for k, v in self.columns.items()} for i in idx]


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    return v.item() if hasattr(v, "item") else v


def sweep(study: Study, evaluators: dict[str, Evaluator] | None = None) -> SweepResult:
    """Evaluate every configuration; the exact Pareto front of the feasible ones."""
    import time

    start = time.perf_counter()
    grid = {k: v for k, v in study.grid().items() if k != "target"}
    total = int(np.prod([len(v) for v in grid.values()])) * len(study.targets)
    if total > MAX_CONFIGS:
        from explorer.errors import StudyError

        raise StudyError(f"the grid has {total:,} configurations (limit {MAX_CONFIGS:,}); coarsen a step",
                         path=study.path)
    evaluators = evaluators if evaluators is not None else {}
    parts = []
    for target in study.targets:
        ev = evaluators.get(target.label) or Evaluator(study.spec, target, fixed=study.fixed, searched=list(grid))
        evaluators[target.label] = ev
        parts.append(_sweep_target(study, ev, target, grid))
    columns = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    valid = np.concatenate([p[1] for p in parts])
    offsets = np.cumsum([0] + [int(p[2].max()) + 1 for p in parts[:-1]])
    architecture = np.concatenate([p[2] + o for p, o in zip(parts, offsets)])
    feasible = valid.copy()
    metrics = {m: columns[m] for m in METRICS}
    for c in study.constraints:
        feasible &= c.holds(metrics)
    objectives = oriented(np.stack([columns[o.metric] for o in study.objectives], axis=1), study.directions)
    front = np.zeros(len(valid), dtype=bool)
    idx = np.nonzero(feasible)[0]
    front[idx[non_dominated(objectives[idx])]] = True
    return SweepResult(columns, valid, feasible, front, objectives, architecture, time.perf_counter() - start)


def _sweep_target(study: Study, ev: Evaluator, target: Target, grid: dict[str, list[Any]]) -> tuple[Any, Any, Any]:
    names = list(grid)
    mesh = np.meshgrid(*[np.asarray(grid[n], dtype=np.float64) for n in names], indexing="ij")
    values = {n: m.ravel() for n, m in zip(names, mesh)}
    n = mesh[0].size if mesh else 1
    for k, v in study.fixed.items():
        values[k] = np.full(n, float(v))
    for k, var in study.spec.variables.items():
        values.setdefault(k, np.full(n, float(var.default)))
    metrics, valid, arch = ev.evaluate(values)
    columns: dict[str, np.ndarray] = {k: values[k] for k in names}
    if len(study.targets) > 1:
        columns["target"] = np.full(n, target.label, dtype=object)
    columns.update({m: np.asarray(metrics[m]).ravel() for m in METRICS})
    return columns, np.asarray(valid).ravel(), np.asarray(arch).ravel()
