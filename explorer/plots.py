"""Charts (matplotlib, imported lazily): the roofline and Pareto fronts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    """Write :func:`roofline_figure` to ``output``."""
    out = check_output(output)
    plt = _pyplot()
    fig = roofline_figure(pred, label)
    try:
        _save(fig, out)
    finally:
        plt.close(fig)
    return out


def roofline_figure(pred: Any, label: int = 6) -> Any:
    """Log-log roofline: compute roofs, bandwidth slope, ridge point, one point per kernel
    (area by share of time, colour by kernel class), the slowest labelled, the whole model as a star.
    Kernels that take time but do no FLOPs (concat, copies, pooling without arithmetic) have no
    place on these axes: they are drawn at the left edge as triangles, sized by their time."""
    plt = _pyplot()
    device = pred.device
    latency = pred.totals.latency_s
    timed = [k for k in pred.kernels if k.time_s > 0]
    points = [(k.name, k.klass, k.flops / k.bytes, k.flops * k.count / k.time_s, k.time_s)
              for k in timed if k.bytes > 0 and k.flops > 0]
    idle = [(k.name, k.time_s) for k in timed if k.flops <= 0]
    compute_rate = device.peak_for(pred.dtype) * device.compute_efficiency
    memory_rate = device.bandwidth * device.bandwidth_efficiency
    scale, prefix = next(((f, p) for f, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"))
                          if compute_rate >= f), (1.0, ""))
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    xs = [p[2] for p in points] or [1.0]
    lo, hi = min(min(xs), 0.1) / 2, max(max(xs), compute_rate / memory_rate) * 4
    _roofs(ax, device, pred.dtype, compute_rate / scale, memory_rate / scale, lo, hi, scale)
    classes = sorted({p[1] for p in points})
    cmap = plt.get_cmap("tab20", max(len(classes), 1))
    for i, klass in enumerate(classes):
        sel = [p for p in points if p[1] == klass]
        ax.scatter([p[2] for p in sel], [p[3] / scale for p in sel], s=[15 + 4000 * p[4] / latency for p in sel],
                   color=cmap(i), alpha=0.6, edgecolors="k", linewidths=0.3, label=klass)
    seen: set[tuple[float, float]] = set()
    notes: list[tuple[float, float, str]] = []
    for name, _, x, y, _ in sorted(points, key=lambda p: -p[4]):
        spot = (round(x, 3), round(y, -6))
        if len(seen) >= label:
            break
        if spot not in seen:  # identical layers (repeated blocks) sit on one spot: label the first
            seen.add(spot)
            notes.append((x, y / scale, name))
    totals = pred.analysis.totals
    model_perf = totals["flops"] / latency / scale if latency > 0 else 0.0
    ax.scatter([pred.totals.arithmetic_intensity], [model_perf], marker="*", s=300, color="crimson",
               edgecolors="k", zorder=5, label=f"whole model ({model_perf:.3g} {prefix}FLOP/s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if idle:
        bottom = ax.get_ylim()[0]
        share = sum(t for _, t in idle) / latency if latency > 0 else 0.0
        ax.scatter([lo * 1.15] * len(idle), [bottom * 1.6] * len(idle), marker="<",
                   s=[15 + 4000 * t / latency for _, t in idle], facecolors="none", edgecolors="k", zorder=4,
                   label=f"no FLOPs, time only ({len(idle)} kernels, {100 * share:.1f} % of the time; "
                         "left edge)")
        slowest = max(idle, key=lambda x: x[1])
        notes.append((lo * 1.15, bottom * 1.6, slowest[0]))
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP/B)")
    ax.set_ylabel(f"attained performance ({prefix}FLOP/s)")
    ax.set_title(f"{pred.analysis.spec.name} on {device.name} ({pred.dtype}, {pred.execution.mode}), "
                 f"latency {latency * 1e3:.3g} ms")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    place_labels(fig, ax, notes)
    return fig


def _roofs(ax: Any, device: Any, dtype: str, compute_rate: float, beta: float, lo: float, hi: float,
           scale: float = 1.0) -> None:
    """Roofs in units of ``scale`` FLOP/s (compute_rate and beta already divided by it)."""
    import numpy as np

    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    by_peak: dict[float, list[str]] = {}
    for name, peak in device.peak.items():
        by_peak.setdefault(peak, []).append(name)
    for peak, dtypes in sorted(by_peak.items()):
        achievable = peak * device.compute_efficiency / scale
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


@dataclass(frozen=True)
class Objective:
    """One axis of a Pareto chart: a study metric, its direction and its kind of unit."""

    metric: str
    direction: str  # maximize / minimize
    dimension: str  # time, bytes, count, rate, fraction, intensity (explorer.study.evaluate.METRICS)
    item: str = "samples"  # what a rate counts: img, tokens, sequences


@dataclass(frozen=True)
class Limit:
    """A constraint to draw: ``metric op value`` (base units), as written in the study."""

    metric: str
    op: str
    value: float
    text: str


_COUNT_UNITS = {"macs": "MAC", "flops": "FLOP", "params": "params", "macs_per_sample": "MAC/sample",
                "flops_per_sample": "FLOP/sample"}


def display_unit(metric: str, dimension: str, values: Any, item: str = "samples") -> tuple[float, str]:
    """(divisor, unit) for showing ``values`` of a metric in human units chosen from their
    magnitude: seconds as ms or us, bytes as MB or GB, counts as GMAC, rates as img/s or K img/s."""
    import numpy as np

    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    ref = float(np.median(v)) if len(v) else 1.0
    if dimension == "time":
        for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if ref >= scale:
                return scale, unit
        return 1e-9, "ns"
    if dimension == "fraction":
        return 0.01, "%"
    if dimension == "intensity":
        return 1.0, "FLOP/B"
    base = {"bytes": "B", "rate": f"{item}/s"}.get(dimension, _COUNT_UNITS.get(metric, ""))
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if ref >= scale:
            sep = "" if base in ("B", "MAC", "FLOP", "MAC/sample", "FLOP/sample") else " "
            return scale, f"{prefix}{sep}{base}" if base else prefix
    return 1.0, base


def axis_label(o: Objective, unit: str) -> str:
    """``latency (ms), minimize``: the full metric name, its unit and the direction."""
    name = o.metric.replace("_", " ")
    return f"{name} ({unit}), {o.direction}" if unit else f"{name}, {o.direction}"


def pareto_chart(values: Any, feasible: Any, front: Any, labels: list[str], objectives: list[Objective],
                 title: str, output: str | Path, limits: Sequence[Limit] = (), invalid: int = 0,
                 max_points: int = 20_000) -> Path:
    """Write :func:`pareto_figure` to ``output`` (png, svg or pdf)."""
    out = check_output(output)
    plt = _pyplot()
    fig = pareto_figure(values, feasible, front, labels, objectives, title, limits, invalid, max_points)
    try:
        _save(fig, out)
    finally:
        plt.close(fig)
    return out


def pareto_figure(values: Any, feasible: Any, front: Any, labels: list[str], objectives: list[Objective],
                  title: str, limits: Sequence[Limit] = (), invalid: int = 0, max_points: int = 20_000) -> Any:
    """Every evaluated configuration (feasible grey, infeasible red crosses; invalid ones, which have
    no metrics, counted in the legend), the feasible non-dominated front in blue with a few of its
    points labelled (the two ends and the knee, placed so that no two labels overlap), and the
    constraint limits on the axes as dashed lines. ``values``: (configurations, objectives) in base
    units. Two objectives: one panel; three or more: pairwise panels; one: value per trial."""
    import numpy as np

    plt = _pyplot()
    v = np.asarray(values, dtype=float)
    feasible, front = np.asarray(feasible, bool), np.asarray(front, bool)
    rest = np.nonzero(~front)[0]
    if len(rest) > max_points:  # keep the picture readable and the file small
        rest = np.random.default_rng(0).choice(rest, max_points, replace=False)
    k = v.shape[1]
    units = [display_unit(o.metric, o.dimension, v[:, i], o.item) for i, o in enumerate(objectives)]
    shown = v / np.array([u[0] for u in units]) if k else v
    if k == 1:
        return _single_figure(plt, shown[:, 0], feasible, front, labels, objectives[0], units[0][1], title,
                              limits, units[0][0], invalid)
    pairs = [(0, 1)] if k == 2 else [(i, j) for i in range(k) for j in range(i + 1, k)]
    cols = min(len(pairs), 3)
    rows_n = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(7 * cols, 5.5 * rows_n), dpi=110, squeeze=False)
    f = np.nonzero(front)[0]
    for ax, (i, j) in zip(axes.flat, pairs):
        ok, bad = rest[feasible[rest]], rest[~feasible[rest]]
        ax.scatter(shown[ok, i], shown[ok, j], s=10, color="0.6", alpha=0.5, label=f"feasible ({int(feasible.sum())})")
        ax.scatter(shown[bad, i], shown[bad, j], s=12, color="tab:red", marker="x", alpha=0.5,
                   label=f"infeasible: violates a constraint ({int((~feasible).sum())})")
        order = f[np.argsort(shown[f, i])]
        ax.plot(shown[order, i], shown[order, j], "-o", color="tab:blue", ms=5, lw=1.2,
                label=f"Pareto front ({len(f)})")
        if invalid:
            ax.scatter([], [], marker="s", facecolors="none", edgecolors="0.4",
                       label=f"invalid: no valid tensor shapes ({invalid}, not drawn)")
        ax.set_xlabel(axis_label(objectives[i], units[i][1]))
        ax.set_ylabel(axis_label(objectives[j], units[j][1]))
        _limits(ax, limits, {objectives[i].metric: ("x", units[i][0]), objectives[j].metric: ("y", units[j][0])})
        for axis, idx in (("x", i), ("y", j)):
            pos = shown[:, idx][np.isfinite(shown[:, idx]) & (shown[:, idx] > 0)]
            if len(pos) and pos.max() / max(pos.min(), 1e-300) > 100:
                getattr(ax, f"set_{axis}scale")("log")
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    off_axes = [c.text for c in limits if c.metric not in {o.metric for o in objectives}]
    fig.suptitle(title + (f"\nconstraints also applied: {'; '.join(off_axes)}" if off_axes else ""), fontsize=10)
    fig.tight_layout()
    if k == 2 and len(f):
        i, j = pairs[0]
        order = f[np.argsort(shown[f, i])]
        chosen = _chosen_points(shown[order][:, [i, j]], axes.flat[0])
        place_labels(fig, axes.flat[0], [(shown[order[c], i], shown[order[c], j], labels[order[c]]) for c in chosen])
    return fig


def _limits(ax: Any, limits: Sequence[Limit], on: dict[str, tuple[str, float]]) -> None:
    """Dashed lines at the constraint limits of the metrics on this panel's axes."""
    for c in limits:
        if c.metric in on:
            axis, scale = on[c.metric]
            line = ax.axvline if axis == "x" else ax.axhline
            line(c.value / scale, color="tab:red", ls="--", lw=1, label=f"constraint: {c.text}")


def _chosen_points(points: Any, ax: Any, most: int = 5) -> list[int]:
    """Which front points to label (front sorted along x): both ends, the knee (farthest from the
    line between the ends, in the axes' own scale) and evenly spaced ones, ``most`` at most."""
    import numpy as np

    n = len(points)
    if n <= most:
        return list(range(n))
    p = np.array(points, dtype=float)
    for col, scale in ((0, ax.get_xscale()), (1, ax.get_yscale())):
        if scale == "log":
            p[:, col] = np.log10(np.maximum(p[:, col], 1e-300))
    span = p.max(axis=0) - p.min(axis=0)
    p = (p - p.min(axis=0)) / np.where(span > 0, span, 1.0)
    a, b = p[0], p[-1]
    e = b - a  # distance of each point to the line through the ends (2-D cross product)
    d = np.abs(e[0] * (p[:, 1] - a[1]) - e[1] * (p[:, 0] - a[0])) / max(float(np.hypot(*e)), 1e-12)
    chosen = {0, n - 1, int(np.argmax(d))}
    for extra in np.linspace(0, n - 1, most):
        if len(chosen) >= most:
            break
        chosen.add(int(round(extra)))
    return sorted(chosen)


def place_labels(fig: Any, ax: Any, items: list[tuple[float, float, str]]) -> list[Any]:
    """Annotate points so that no two labels (nor a label and the legend) overlap and each stays
    inside the axes: for each label, the first of a few offsets around its point that fits; a
    label that fits nowhere is left out. Returns the labels drawn."""
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    taken = [legend.get_window_extent(renderer)] if legend is not None else []
    drawn = []
    offsets = [(6, 6, "left"), (6, -14, "left"), (-6, 6, "right"), (-6, -14, "right"),
               (10, 18, "left"), (-10, 18, "right"), (10, -26, "left"), (-10, -26, "right"),
               (16, 32, "left"), (-16, -40, "right")]
    for x, y, text in items:
        for dx, dy, ha in offsets:
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7, ha=ha,
                               arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5} if abs(dy) > 14 else None)
            box = note.get_window_extent(renderer)
            fits = (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1)
            if fits and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                drawn.append(note)
                break
            note.remove()
    return drawn


def _single_figure(plt: Any, v: Any, feasible: Any, front: Any, labels: list[str], o: Objective, unit: str,
                   title: str, limits: Sequence[Limit], scale: float, invalid: int) -> Any:
    """One objective: its value per evaluated configuration in order, the best ones marked."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    x = np.arange(len(v))
    ax.scatter(x[feasible], v[feasible], s=10, color="0.6", label=f"feasible ({int(feasible.sum())})")
    ax.scatter(x[~feasible], v[~feasible], s=12, color="tab:red", marker="x",
               label=f"infeasible: violates a constraint ({int((~feasible).sum())})")
    best = np.nonzero(front)[0]
    ax.scatter(x[best], v[best], s=40, color="tab:blue", label=f"best ({len(best)})", zorder=3)
    if invalid:
        ax.scatter([], [], marker="s", facecolors="none", edgecolors="0.4",
                   label=f"invalid: no valid tensor shapes ({invalid}, not drawn)")
    ax.set_xlabel("configuration (evaluation order)")
    ax.set_ylabel(axis_label(o, unit))
    _limits(ax, limits, {o.metric: ("y", scale)})
    pos = v[np.isfinite(v) & (v > 0)]
    if len(pos) and pos.max() / max(pos.min(), 1e-300) > 100:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    place_labels(fig, ax, [(x[n], v[n], labels[n]) for n in best[:5]])
    return fig
