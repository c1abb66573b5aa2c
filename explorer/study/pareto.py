"""Non-dominated filtering and hypervolume, on objectives oriented so that larger is better."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def oriented(values: Any, directions: Sequence[str]) -> np.ndarray:
    """(n, k) objective values with minimized columns negated: every column is 'larger is better'."""
    v = np.asarray(values, dtype=np.float64).reshape(-1, len(directions))
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    out: np.ndarray = v * sign
    return out


def non_dominated(points: Any) -> np.ndarray:
    """Mask of the points no other point dominates (>= everywhere, > somewhere); duplicates all kept."""
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if p.shape[1] == 2:
        return _front_2d(p)
    keep = np.zeros(n, dtype=bool)
    order = np.lexsort(tuple(-p[:, j] for j in reversed(range(p.shape[1]))))
    front: list[int] = []
    for i in order:
        if front:
            f = p[front]
            dominated = np.any(np.all(f >= p[i], axis=1) & np.any(f > p[i], axis=1))
            if dominated:
                continue
        front.append(i)
        keep[i] = True
    return keep


def _front_2d(p: np.ndarray) -> np.ndarray:
    """O(n log n): sort by x descending (ties: y descending), keep points whose y beats every earlier y."""
    order = np.lexsort((-p[:, 1], -p[:, 0]))
    xs, ys = p[order, 0], p[order, 1]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(ys)[:-1]])
    keep_sorted = ys > best_before
    # Points equal to a kept point are not dominated by it: keep exact duplicates of front points.
    same_as_prev = np.concatenate([[False], (xs[1:] == xs[:-1]) & (ys[1:] == ys[:-1])])
    for i in np.nonzero(same_as_prev)[0]:
        keep_sorted[i] = keep_sorted[i - 1]
    keep = np.zeros(len(p), dtype=bool)
    keep[order] = keep_sorted
    return keep


def hypervolume(points: Any, reference: Any) -> float:
    """Volume dominated by ``points`` above ``reference`` (maximization orientation)."""
    p = np.asarray(points, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    p = p[np.all(p > ref, axis=1)]
    if len(p) == 0:
        return 0.0
    if p.shape[1] == 2:
        p = p[non_dominated(p)]
        order = np.argsort(-p[:, 0])
        xs, ys = p[order, 0], p[order, 1]
        widths = xs - np.concatenate([xs[1:], [ref[0]]])
        return float(np.sum(widths * (ys - ref[1])))
    from optuna._hypervolume import compute_hypervolume  # exact WFG; optuna minimizes

    return float(compute_hypervolume(-p, -ref))


def missed(exact: Any, found: Any) -> np.ndarray:
    """Mask of the ``exact`` points that no ``found`` point matches or dominates (>= everywhere)."""
    e = np.asarray(exact, dtype=np.float64)
    f = np.asarray(found, dtype=np.float64).reshape(-1, e.shape[1] if e.ndim == 2 else 0)
    if len(f) == 0:
        return np.ones(len(e), dtype=bool)
    covered = np.zeros(len(e), dtype=bool)
    for i in range(0, len(e), 1024):  # (chunk, found, k) comparisons
        covered[i:i + 1024] = np.any(np.all(f[None, :, :] >= e[i:i + 1024, None, :], axis=2), axis=1)
    return ~covered


def axis_gaps(exact: Any, found: Any) -> np.ndarray:
    """Per objective, how far the exact front's best value lies beyond the found front's best (>= 0)."""
    e = np.asarray(exact, dtype=np.float64)
    f = np.asarray(found, dtype=np.float64).reshape(-1, e.shape[1])
    if len(f) == 0:
        return np.full(e.shape[1], np.inf)
    gaps: np.ndarray = np.maximum(e.max(axis=0) - f.max(axis=0), 0.0)
    return gaps
