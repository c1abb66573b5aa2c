"""Charts (matplotlib, imported lazily): the roofline and Pareto fronts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from explorer.outputs import check_file, write_atomic

_FORMATS = (".png", ".svg", ".pdf")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_output(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse a chart path that cannot be written (kind, folder, read-only, an input), before writing."""
    return check_file(path, _FORMATS, "a chart", inputs)


def _save(fig: Any, out: Path) -> None:
    """Save whole or not at all (a full disk leaves no half file)."""
    write_atomic(out, lambda tmp: fig.savefig(tmp, format=out.suffix.lower().lstrip(".")))


def roofline_chart(pred: Any, output: str | Path, label: int = 6) -> Path:
    """Log-log roofline: compute roofs, bandwidth slope, ridge point, one point per kernel
    (area by share of time, colour by kernel class), the slowest labelled, the whole model as a star."""
    out = check_output(output)
    plt = _pyplot()

    device = pred.device
    latency = pred.totals.latency_s
    points = [(k.name, k.klass, k.flops / k.bytes, k.flops * k.count / k.time_s, k.time_s)
              for k in pred.kernels if k.bytes > 0 and k.flops > 0 and k.time_s > 0]
    compute_rate = device.peak_for(pred.dtype) * device.compute_efficiency
    memory_rate = device.bandwidth * device.bandwidth_efficiency
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    xs = [p[2] for p in points] or [1.0]
    lo, hi = min(min(xs), 0.1) / 2, max(max(xs), compute_rate / memory_rate) * 4
    _roofs(ax, device, pred.dtype, compute_rate, memory_rate, lo, hi)
    classes = sorted({p[1] for p in points})
    cmap = plt.get_cmap("tab20", max(len(classes), 1))
    for i, klass in enumerate(classes):
        sel = [p for p in points if p[1] == klass]
        ax.scatter([p[2] for p in sel], [p[3] for p in sel], s=[15 + 4000 * p[4] / latency for p in sel],
                   color=cmap(i), alpha=0.6, edgecolors="k", linewidths=0.3, label=klass)
    seen: set[tuple[float, float]] = set()
    for name, _, x, y, _ in sorted(points, key=lambda p: -p[4]):
        spot = (round(x, 3), round(y, -6))
        if len(seen) >= label:
            break
        if spot not in seen:  # identical layers (repeated blocks) sit on one spot: label the first
            seen.add(spot)
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    totals = pred.analysis.totals
    model_perf = totals["flops"] / latency
    ax.scatter([pred.totals.arithmetic_intensity], [model_perf], marker="*", s=300, color="crimson",
               edgecolors="k", zorder=5, label=f"whole model ({model_perf / 1e12:.3g} TFLOP/s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("attained performance (FLOP/s)")
    ax.set_title(f"{pred.analysis.spec.name} on {device.name} ({pred.dtype}, {pred.execution.mode}), "
                 f"latency {latency * 1e3:.3g} ms")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    try:
        _save(fig, out)
    finally:
        plt.close(fig)
    return out


def _roofs(ax: Any, device: Any, dtype: str, compute_rate: float, beta: float, lo: float, hi: float) -> None:
    import numpy as np

    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    by_peak: dict[float, list[str]] = {}
    for name, peak in device.peak.items():
        by_peak.setdefault(peak, []).append(name)
    for peak, dtypes in sorted(by_peak.items()):
        achievable = peak * device.compute_efficiency
        chosen = dtype in dtypes
        ax.plot(x, np.minimum(achievable, beta * x), color="black" if chosen else "grey",
                lw=2 if chosen else 0.8, ls="-" if chosen else ":", zorder=3 if chosen else 1)
        ax.text(hi, achievable, " " + "/".join(dtypes), va="center", fontsize=7,
                color="black" if chosen else "grey")
    ridge = compute_rate / beta
    ax.axvline(ridge, color="tab:blue", ls="--", lw=0.8)
    ax.text(ridge, compute_rate, f" ridge {ridge:.1f} FLOP/B", color="tab:blue", fontsize=8, va="bottom")


def accuracy_chart(rep: Any, output: str | Path) -> Path:
    """Predicted against measured latency, log-log, with y = x and a +-10 % band; the MACs-only
    baseline beside the execution model."""
    import numpy as np

    out = check_output(output)
    plt = _pyplot()
    measured = np.array([p.measured_s for p in rep.points]) * 1e3
    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=120)
    for key, label, marker, color, s in (("predicted_s", "execution model", "o", "tab:blue", rep.model),
                                         ("baseline_s", "MACs-only baseline", "x", "tab:grey", rep.baseline)):
        y = np.array([getattr(p, key) for p in rep.points]) * 1e3
        ax.scatter(measured, y, marker=marker, color=color, s=22, zorder=3,
                   label=f"{label}: MAPE {s.mape:.1f} %, {100 * s.within_10:.0f} % within +-10 %, "
                         f"Spearman {s.spearman:.3f}")
    lo = min(measured.min(), *(p.predicted_s * 1e3 for p in rep.points)) / 1.3
    hi = max(measured.max(), *(p.predicted_s * 1e3 for p in rep.points)) * 1.3
    x = np.geomspace(lo, hi, 50)
    ax.plot(x, x, color="black", lw=1, label="y = x")
    ax.fill_between(x, x * 0.9, x * 1.1, color="tab:green", alpha=0.15, label="+-10 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{rep.spec}: {rep.execution} on {rep.device}\n{rep.dtype}, {rep.threads} thread(s)", fontsize=9)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
    return out


def pareto_chart(values: Any, feasible: Any, front: Any, labels: list[str], names: list[str],
                 directions: list[str], title: str, output: str | Path, max_points: int = 20_000) -> Path:
    """All trials (infeasible marked), the feasible non-dominated front highlighted and labelled.
    Two objectives: one panel; three or more: pairwise panels."""
    import numpy as np

    out = check_output(output)
    plt = _pyplot()
    v = np.asarray(values, dtype=float)
    feasible, front = np.asarray(feasible, bool), np.asarray(front, bool)
    rest = np.nonzero(~front)[0]
    if len(rest) > max_points:  # keep the picture readable and the file small
        rest = np.random.default_rng(0).choice(rest, max_points, replace=False)
    k = v.shape[1]
    if k == 1:
        return _single_chart(plt, v[:, 0], feasible, front, labels, names[0], directions[0], title, out)
    pairs = [(0, 1)] if k == 2 else [(i, j) for i in range(k) for j in range(i + 1, k)]
    cols = min(len(pairs), 3)
    rows_n = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.5 * cols, 5 * rows_n), dpi=110, squeeze=False)
    for ax, (i, j) in zip(axes.flat, pairs):
        ok = rest[feasible[rest]]
        bad = rest[~feasible[rest]]
        ax.scatter(v[ok, i], v[ok, j], s=10, color="0.6", alpha=0.5, label=f"feasible ({int(feasible.sum())})")
        ax.scatter(v[bad, i], v[bad, j], s=12, color="tab:red", marker="x", alpha=0.5,
                   label=f"infeasible ({int((~feasible).sum())})")
        f = np.nonzero(front)[0]
        order = f[np.argsort(v[f, i])]
        ax.plot(v[order, i], v[order, j], "-o", color="tab:blue", ms=5, lw=1.2, label=f"Pareto front ({len(f)})")
        if k == 2:
            step = max(1, len(order) // 12)
            for n in order[::step]:
                ax.annotate(labels[n], (v[n, i], v[n, j]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xlabel(f"{names[i]} ({'max' if directions[i] == 'maximize' else 'min'})")
        ax.set_ylabel(f"{names[j]} ({'max' if directions[j] == 'maximize' else 'min'})")
        for axis, idx in (("x", i), ("y", j)):
            pos = v[:, idx][np.isfinite(v[:, idx]) & (v[:, idx] > 0)]
            if len(pos) and pos.max() / max(pos.min(), 1e-300) > 100:
                getattr(ax, f"set_{axis}scale")("log")
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        _save(fig, out)
    finally:
        plt.close(fig)
    return out


def _single_chart(plt: Any, v: Any, feasible: Any, front: Any, labels: list[str], name: str,
                  direction: str, title: str, out: Path) -> Path:
    """One objective: its value per evaluated configuration in order, the best ones marked."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    x = np.arange(len(v))
    ax.scatter(x[feasible], v[feasible], s=10, color="0.6", label=f"feasible ({int(feasible.sum())})")
    ax.scatter(x[~feasible], v[~feasible], s=12, color="tab:red", marker="x",
               label=f"infeasible ({int((~feasible).sum())})")
    best = np.nonzero(front)[0]
    ax.scatter(x[best], v[best], s=40, color="tab:blue", label=f"best ({len(best)})", zorder=3)
    for n in best[:12]:
        ax.annotate(labels[n], (x[n], v[n]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("configuration (trial order)")
    ax.set_ylabel(f"{name} ({'max' if direction == 'maximize' else 'min'})")
    pos = v[np.isfinite(v) & (v > 0)]
    if len(pos) and pos.max() / max(pos.min(), 1e-300) > 100:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    try:
        _save(fig, out)
    finally:
        plt.close(fig)
    return out
