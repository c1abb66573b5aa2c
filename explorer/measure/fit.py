"""Fitting a kernel class's timing law to measured samples (docs/hardware.md, "Calibration").

The law is linear in its parameters, so a fit is a non-negative least-squares problem::

    t = a + F x sum_k phi_k(log2 key) p_k + Q x sum_j psi_j(log2 Q) q_j

with ``phi``/``psi`` the hat functions of piecewise-linear interpolation between knots. Residuals
are relative (each row divided by its measured time), so a 10 us kernel counts as much as a 10 ms
one; a small penalty on differences between neighbouring knots keeps curves smooth where samples
are sparse. Samples whose relative residual is far outside the rest (a timing disturbed by another
process) are dropped once, and the fit repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from explorer.hardware.execution import ClassTiming, Curve


@dataclass(frozen=True)
class Sample:
    flops: float
    bytes: float
    key: float
    seconds: float
    label: str = ""


@dataclass(frozen=True)
class Fit:
    timing: ClassTiming
    samples: int
    dropped: int
    mape: float  # over the kept samples, in percent
    max_error: float  # percent
    residuals: tuple[float, ...]  # relative residual of each kept sample
    note: str = ""  # what was done after the fit (an in-context scale)


def knots(values: Sequence[float], per_octave: float, limit: int = 24) -> tuple[float, ...]:
    """Log-spaced knots spanning the values (one when they span less than a step)."""
    import numpy as np

    lo, hi = np.log2(max(min(values), 1.0)), np.log2(max(max(values), 1.0))
    n = int(np.ceil((hi - lo) * per_octave)) + 1
    n = max(1, min(n, limit))
    if n == 1 or hi - lo < 1e-9:
        return (float(2 ** ((lo + hi) / 2)),)
    return tuple(float(2**x) for x in np.linspace(lo, hi, n))


def _hats(x: Any, at: tuple[float, ...]) -> Any:
    """Interpolation weights of x (log2 space) on the knots: rows sum to 1, flat outside."""
    import numpy as np

    lx = np.log2(np.maximum(x, 1.0))
    la = np.log2(np.asarray(at))
    w = np.zeros((len(lx), len(at)))
    if len(at) == 1:
        w[:, 0] = 1.0
        return w
    lx = np.clip(lx, la[0], la[-1])
    j = np.clip(np.searchsorted(la, lx, side="right") - 1, 0, len(at) - 2)
    frac = (lx - la[j]) / (la[j + 1] - la[j])
    rows = np.arange(len(lx))
    w[rows, j] = 1.0 - frac
    w[rows, j + 1] = frac
    return w


def nnls(a: Any, b: Any, max_iter: int | None = None) -> Any:
    """Lawson-Hanson non-negative least squares: argmin ||a x - b|| with x >= 0."""
    import numpy as np

    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    tol = 10 * np.finfo(float).eps * np.linalg.norm(a, 1) * max(m, n)
    for _ in range(max_iter or 3 * n):
        if passive.all() or w[~passive].max(initial=-np.inf) <= tol:
            break
        j = np.argmax(np.where(passive, -np.inf, w))
        passive[j] = True
        while True:
            s = np.zeros(n)
            s[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if s[passive].min() > 0:
                break
            neg = passive & (s <= 0)
            alpha = np.min(x[neg] / (x[neg] - s[neg]))
            x = x + alpha * (s - x)
            passive &= x > tol
            x[~passive] = 0.0
        x = s
        w = a.T @ (b - a @ x)
    return x


def fit_class(samples: Sequence[Sample], compute_at: tuple[float, ...], bytes_at: tuple[float, ...],
              smooth: float = 0.05, reject: float = 4.0) -> Fit:
    """Fit overhead, seconds per FLOP at ``compute_at`` keys and per byte at ``bytes_at`` sizes."""
    import numpy as np

    f = np.array([s.flops for s in samples], dtype=float)
    q = np.array([s.bytes for s in samples], dtype=float)
    key = np.array([s.key for s in samples], dtype=float)
    t = np.array([s.seconds for s in samples], dtype=float)
    design = np.hstack([np.ones((len(t), 1)), f[:, None] * _hats(key, compute_at),
                        q[:, None] * _hats(np.maximum(q, 1.0), bytes_at)])
    keep = np.ones(len(t), dtype=bool)
    for _ in range(2):
        x = _solve(design[keep], t[keep], len(compute_at), len(bytes_at), smooth)
        rel = design @ x / t - 1.0
        mad = np.median(np.abs(rel[keep] - np.median(rel[keep]))) + 1e-3
        outliers = np.abs(rel - np.median(rel[keep])) > reject * 1.4826 * mad
        if not (outliers & keep).any() or keep.sum() - (outliers & keep).sum() < design.shape[1] + 2:
            break
        keep &= ~outliers
    rel = design @ x / t - 1.0
    timing = _timing(x, compute_at, bytes_at)
    kept = np.abs(rel[keep])
    return Fit(timing, int(len(t)), int((~keep).sum()), float(100 * kept.mean()), float(100 * kept.max()),
               tuple(float(r) for r in rel[keep]))


def _solve(design: Any, t: Any, nk: int, nj: int, smooth: float) -> Any:
    """Relative-error NNLS with column scaling and a smoothness penalty between neighbouring knots."""
    import numpy as np

    a = design / t[:, None]
    b = np.ones(len(t))
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    a = a / scale
    penalty = []
    for start, count in ((1, nk), (1 + nk, nj)):
        for i in range(count - 1):
            row = np.zeros(a.shape[1])
            # penalize the difference of the unscaled coefficients, relative to their size
            row[start + i], row[start + i + 1] = 1.0 / scale[start + i], -1.0 / scale[start + i + 1]
            norm = np.abs(row).max()
            penalty.append(smooth * row / norm if norm else row)
    if penalty:
        a = np.vstack([a, np.array(penalty)])
        b = np.concatenate([b, np.zeros(len(penalty))])
    return nnls(a, b) / scale


def _timing(x: Any, compute_at: tuple[float, ...], bytes_at: tuple[float, ...]) -> ClassTiming:
    nk = len(compute_at)
    per_flop = tuple(float(v) for v in x[1:1 + nk])
    per_byte = tuple(float(v) for v in x[1 + nk:])
    return ClassTiming(float(x[0]), Curve(compute_at, per_flop) if any(per_flop) else None,
                       Curve(bytes_at, per_byte) if any(per_byte) else None)
