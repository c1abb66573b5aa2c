"""``explorer study run|pareto|compare`` and ``explorer sweep``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from explorer import report
from explorer.report import Column


def register(sub: Any) -> None:
    p = sub.add_parser("study", help="design-space studies with Optuna (run, pareto, compare)")
    ssub = p.add_subparsers(metavar="ACTION", parser_class=type(p))
    r = ssub.add_parser("run", help="run or resume a study up to n_trials (progress bar, every trial stored)")
    r.add_argument("study")
    r.add_argument("--n-trials", type=int, help="total trials (default: the file's n_trials)")
    r.add_argument("--storage", help="Optuna storage URL, or journal:PATH (default: SQLite in the output folder)")
    r.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    r.add_argument("--quiet", action="store_true", help="no progress bar and no front table")
    r.set_defaults(func=cmd_run)

    f = ssub.add_parser("pareto", help="export the feasible non-dominated trials")
    f.add_argument("study")
    f.add_argument("--storage")
    f.add_argument("-o", "--output", help="front.csv or front.json")
    f.add_argument("--plot", help="front.png or front.svg")
    f.add_argument("--all", action="store_true", help="export every trial, not only the front")
    f.set_defaults(func=cmd_pareto)

    c = ssub.add_parser("compare", help="hypervolume of the study's front vs the exact front of a sweep")
    c.add_argument("study")
    c.add_argument("--storage")
    c.set_defaults(func=cmd_compare)

    ls = ssub.add_parser("list", help="the bundled studies (run one by name: explorer study run quickstart)")
    ls.set_defaults(func=cmd_list)

    s = sub.add_parser("sweep", help="evaluate every configuration of a discrete study, exact Pareto front")
    s.add_argument("study")
    s.add_argument("-o", "--output", help="front.csv or front.json (default: in the study's output folder)")
    s.add_argument("--plot", help="front.png or front.svg")
    s.set_defaults(func=cmd_sweep)


def cmd_list(args: argparse.Namespace) -> int:
    from explorer.study.config import STUDIES_DIR, load_study

    rows = []
    for path in sorted(STUDIES_DIR.glob("*.yaml")):
        st = load_study(path)
        rows.append({"study": path.stem, "spec": st.spec.name, "targets": ", ".join(t.label for t in st.targets),
                     "search": ", ".join(st.search), "sampler": st.file.sampler})
    print(report.table(rows, [Column(k, k, align="<") for k in ("study", "spec", "targets", "search", "sampler")]))
    return 0


def _load(args: argparse.Namespace) -> Any:
    from explorer.study.config import load_study

    return load_study(args.study, storage=getattr(args, "storage", None))


def _outputs(study: Any, table: Any, plot: Any, folder: bool = False) -> tuple[Any, Any]:
    """Check every path the command will write before it writes anything (one line if not)."""
    from explorer.errors import ExplorerError
    from explorer.outputs import check_folder
    from explorer.plots import check_output
    from explorer.study.export import check_table, study_inputs

    inputs = study_inputs(study)
    try:
        if folder:
            check_folder(study.output)
        return (check_table(table, inputs) if table else None, check_output(plot, inputs) if plot else None)
    except ExplorerError as exc:
        raise exc.located(study.path) from None


def cmd_run(args: argparse.Namespace) -> int:
    study = _load(args)
    if study.file.sampler == "exhaustive":
        return _sweep_and_report(study, None, None, quiet=args.quiet)
    from explorer.study.run import run

    n = args.n_trials if args.n_trials is not None else study.file.n_trials
    if args.workers < 1 or n < 1:
        from explorer.errors import ExplorerError

        raise ExplorerError("--workers and --n-trials must be at least 1")
    _outputs(study, study.output / "front.csv", study.output / "front.png", folder=True)
    print(f"study '{study.name}': {study.spec.name} on {', '.join(t.label for t in study.targets)}; "
          f"{study.file.sampler} sampler, {n} trials; storage {study.storage}", file=sys.stderr)
    try:
        summary = run(study, n, args.workers, show_progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted: every finished trial is in {study.storage}; run again to resume", file=sys.stderr)
        return 130
    print(f"{summary['trials']} trials in storage ({summary['new']} made by this run, "
          f"{summary['seconds']:.1f} s)", file=sys.stderr)
    out = _export_front(study, study.output / "front.csv", study.output / "front.png", quiet=args.quiet)
    return out


def cmd_pareto(args: argparse.Namespace) -> int:
    study = _load(args)
    _outputs(study, args.output, args.plot)
    return _export_front(study, args.output, args.plot, every=args.all)


def _export_front(study: Any, output: Any, plot: Any, quiet: bool = False, every: bool = False) -> int:
    from explorer.study.export import columns_of, front_mask, trial_rows, write_rows

    rows = trial_rows(study)
    mask = front_mask(rows, study)
    cols = columns_of(rows, study)
    chosen = rows if every else [r for r, m in zip(rows, mask) if m]
    chosen = sorted(chosen, key=lambda r: r.get(study.objectives[0].metric, 0),
                    reverse=study.directions[0] == "maximize")
    if output:
        print(f"wrote {write_rows(chosen, cols, output, study)} ({len(chosen)} rows)", file=sys.stderr)
    if plot and rows:
        _plot(study, rows, mask, plot)
    if not quiet:
        feasible = sum(r["feasible"] for r in rows)
        print(f"{len(rows)} trials, {feasible} feasible, {int(mask.sum())} on the Pareto front")
        print(front_table(study, [r for r, m in zip(rows, mask) if m]))
    return 0


def front_table(study: Any, rows: list[dict[str, Any]], limit: int = 25) -> str:
    metric_cols = [o.metric for o in study.objectives] + [
        m for m in ("latency", "peak_memory", "params") if m not in [o.metric for o in study.objectives]]
    from explorer.study.evaluate import METRICS

    by_dimension = {"time": report.seconds, "bytes": lambda v: report.human(v, "B"),
                    "rate": lambda v: f"{v:,.1f} /s", "fraction": lambda v: f"{100 * v:.1f} %"}
    fmt = {m: by_dimension[dim] for m, (_, dim) in METRICS.items() if dim in by_dimension}
    cols = [Column(v, v, align="<" if v == "target" else ">") for v in study.search] + \
        ([Column("target", "target", align="<")] if len(study.targets) > 1 else []) + \
        [Column(m, m, fmt.get(m, report.human)) for m in metric_cols]
    rows = sorted(rows, key=lambda r: r[study.objectives[0].metric], reverse=study.directions[0] == "maximize")
    shown = report.table(rows[:limit], cols)
    return shown + (f"\n... {len(rows) - limit} more rows in the export" if len(rows) > limit else "")


def _label(study: Any, row: dict[str, Any]) -> str:
    """``width=0.5, resolution=224, batch=8``: every searched variable by its full name."""
    return ", ".join(f"{k}={row[k]:g}" if isinstance(row.get(k), (int, float)) else f"{row.get(k)}"
                     for k in [*study.search, *(["target"] if len(study.targets) > 1 else [])] if k in row)


def chart_axes(study: Any) -> tuple[list[Any], list[Any]]:
    """The study's objectives and constraints as chart axes (with units) and limit lines."""
    from explorer.plots import Limit, Objective
    from explorer.study.evaluate import METRICS

    item = _item(study.spec)
    axes = [Objective(o.metric, d, METRICS[o.metric][1], item) for o, d in zip(study.objectives, study.directions)]
    return axes, [Limit(c.metric, c.op, c.value, c.text) for c in study.constraints]


def _item(spec: Any) -> str:
    """What a sample of the spec is, for throughput units: an image (a 4-D float input), a
    sequence (integer token ids), else a sample."""
    first = next(iter(spec.inputs.values()), None)
    if first is None:
        return "samples"
    if first.dtype.startswith(("int", "uint")) or first.dtype == "bool":
        return "sequences"
    return "img" if len(first.shape) == 4 else "samples"


def _plot(study: Any, rows: list[dict[str, Any]], mask: Any, path: Any) -> None:
    import numpy as np

    from explorer.plots import pareto_chart

    complete = [i for i, r in enumerate(rows) if r["state"] == "complete"]
    if not complete:  # every trial invalid (e.g. a model that does no work): nothing to draw
        return
    values = np.array([[rows[i][o.metric] for o in study.objectives] for i in complete], dtype=float)
    feasible = np.array([rows[i]["feasible"] for i in complete])
    front = np.asarray(mask)[complete]
    labels = [_label(study, rows[i]) for i in complete]
    axes, limits = chart_axes(study)
    out = pareto_chart(values, feasible, front, labels, axes,
                       f"{study.name}: {len(rows)} trials, {study.file.sampler} sampler", path, limits,
                       invalid=len(rows) - len(complete))
    print(f"wrote {out}", file=sys.stderr)


def cmd_sweep(args: argparse.Namespace) -> int:
    study = _load(args)
    return _sweep_and_report(study, args.output, args.plot)


def _sweep_and_report(study: Any, output: Any, plot: Any, quiet: bool = False) -> int:
    from explorer.plots import pareto_chart
    from explorer.study.export import write_rows
    from explorer.study.sweep import sweep

    out = Path(output) if output else study.output / "sweep_front.csv"
    plot_path = plot or (study.output / "sweep_front.png" if not output else None)
    _outputs(study, out, plot_path)
    result = sweep(study)
    shown = result.first_of_each(result.front)
    rows = result.rows(shown)
    cols = list(result.columns)
    print(f"swept {result.size:,} configurations in {result.seconds:.2f} s: {int(result.valid.sum()):,} valid "
          f"({result.distinct(result.valid):,} distinct architectures), {int(result.feasible.sum()):,} feasible "
          f"({result.distinct(result.feasible):,} distinct), {int(result.front.sum())} configurations on the exact "
          f"Pareto front = {int(shown.sum())} distinct architectures (one row each below)", file=sys.stderr)
    print(f"wrote {write_rows(rows, cols, out, study)} ({len(rows)} rows)", file=sys.stderr)
    if plot_path:
        labels = [""] * result.size
        for i in result.front.nonzero()[0]:
            labels[i] = _label(study, {k: result.columns[k][i] for k in result.columns})
        axes, limits = chart_axes(study)
        valid = result.valid
        pareto_chart((result.objectives * [1 if d == "maximize" else -1 for d in study.directions])[valid],
                     result.feasible[valid], result.front[valid], [t for t, ok in zip(labels, valid) if ok], axes,
                     f"{study.name}: exhaustive sweep of {result.size:,} configurations", plot_path, limits,
                     invalid=int((~valid).sum()))
        print(f"wrote {plot_path}", file=sys.stderr)
    if not quiet:
        print(front_table(study, rows))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from explorer.study.export import front_mask, trial_rows
    from explorer.study.pareto import hypervolume, oriented
    from explorer.study.sweep import sweep

    study = _load(args)
    rows = trial_rows(study)
    exact = sweep(study)
    feasible_exact = exact.objectives[exact.feasible]
    if len(feasible_exact) == 0:
        from explorer.errors import StudyError

        raise StudyError("no configuration of the grid satisfies the constraints", path=study.path)
    reference = feasible_exact.min(axis=0)  # the nadir of every feasible configuration
    hv_exact = hypervolume(exact.objectives[exact.front], reference)
    mask = front_mask(rows, study)
    found = oriented([[r[o.metric] for o in study.objectives] for r, m in zip(rows, mask) if m], study.directions)
    hv_study = hypervolume(found, reference) if len(found) else 0.0
    ratio = hv_study / hv_exact if hv_exact > 0 else float("nan")
    print(f"study '{study.name}': {len(rows)} trials, front of {int(mask.sum())} points")
    print(f"exact front: {int(exact.front.sum())} points out of {int(exact.feasible.sum()):,} feasible "
          f"of {exact.size:,} configurations")
    print(f"hypervolume: study {hv_study:.6g}, exact {hv_exact:.6g} (reference point: the feasible nadir)")
    print(f"the study's front reaches {100 * ratio:.2f} % of the exact front's hypervolume")
    print(_missed_report(study, exact, found))
    return 0 if np.isfinite(ratio) else 1


def _missed_report(study: Any, exact: Any, found: Any) -> str:
    """The part of the exact front the study missed: points no study point matches or dominates,
    and per objective how far the exact front's best lies beyond the study's best."""
    from explorer.study.pareto import axis_gaps, missed

    front = exact.objectives[exact.first_of_each(exact.front)]
    lost = missed(front, found)
    gaps = axis_gaps(front, found)
    lines = [f"missed: {int(lost.sum())} of the exact front's {len(front)} distinct points have no study point "
             "matching or dominating them"]
    for j, o in enumerate(study.objectives):
        sign = 1 if study.directions[j] == "maximize" else -1
        best_exact = sign * front[:, j].max()
        best_found = sign * found[:, j].max() if len(found) else float("nan")
        lines.append(f"  {o.metric}: exact front's best {best_exact:.6g}, study's best {best_found:.6g}, "
                     f"gap {gaps[j]:.6g}")
    return "\n".join(lines)
