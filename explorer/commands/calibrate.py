"""``explorer calibrate`` (fit a measured profile) and ``explorer accuracy`` (predicted vs measured)."""

from __future__ import annotations

import argparse
from typing import Any

from explorer import report
from explorer.report import Column


def register(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="time every kernel class on this machine and write a measured profile")
    p.add_argument("-o", "--output", required=True, metavar="PROFILE.yaml", help="profile file to write")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                   help="time kernels in eager PyTorch (an eager profile, default) or in ONNX Runtime with graph "
                        "optimizations (a fused profile: conv + norm + activation as one kernel)")
    p.add_argument("--quick", action="store_true", help="a fifth of the microbenchmarks (for a smoke test)")
    p.add_argument("--classes", help="comma-separated kernel classes to measure (default: all)")
    p.add_argument("--rounds", type=int, help="timing rounds per microbenchmark, the best kept (default 5; 3 quick)")
    p.add_argument("--name", help="profile name (default: the device, precision and threads)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("accuracy", help="measure and predict a grid of configurations; error and rank scores")
    p.add_argument("spec")
    p.add_argument("--hardware", required=True, metavar="NAME|PATH", help="profile to predict with "
                   "(one written by 'explorer calibrate' on this machine)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a variable's values (repeatable; the grid is every combination)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="fix a variable")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype")
    p.add_argument("--execution", choices=("eager", "fused"), help="default: the profile's mode")
    p.add_argument("--runtime", choices=("torch", "onnxruntime"),
                   help="what the measurement runs in (default: torch for eager, onnxruntime for fused)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--plot", metavar="FILE.png", help="predicted-vs-measured chart (log-log, y = x, +-10 %% band)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_accuracy)


def _bar(quiet: bool, what: str) -> Any:
    """A progress callback (tqdm on stderr), or None when quiet."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=0, desc=what, unit="bench", leave=False, dynamic_ncols=True)

    def update(i: int, n: int, label: str) -> None:
        bar.total = n
        bar.n = i
        bar.set_postfix_str(label[:40], refresh=True)

    return update, bar.close


def cmd_calibrate(args: argparse.Namespace) -> int:
    from explorer.errors import ExplorerError
    from explorer.measure.calibrate import calibrate
    out = _profile_path(args.output)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if classes:
        from explorer.hardware.kernels import KERNEL_CLASSES

        unknown = [c for c in classes if c not in KERNEL_CLASSES]
        if unknown:
            raise ExplorerError(f"--classes: unknown kernel class '{unknown[0]}'; known: {', '.join(KERNEL_CLASSES)}")
    if args.threads < 1:
        raise ExplorerError(f"--threads must be at least 1, got {args.threads}")
    update, close = _bar(args.quiet, "calibrating")
    try:
        cal = calibrate(device=args.device, threads=args.threads, dtype=args.dtype, classes=classes,
                        scale=0.2 if args.quick else 1.0, rounds=args.rounds or (3 if args.quick else 5),
                        min_time_s=0.004 if args.quick else 0.01, runtime=args.runtime, progress=update)
    finally:
        close()
    import yaml

    text = "# Written by explorer calibrate: every figure below was measured on this machine.\n"
    text += yaml.safe_dump(cal.profile(args.name), sort_keys=False, width=120)
    from explorer.outputs import write_atomic

    write_atomic(out, lambda tmp: tmp.write_text(text))  # whole or not at all
    rows = [{"class": k, "n": f.samples, "dropped": f.dropped, "overhead": report.seconds(f.timing.overhead_s),
             "mape": f"{f.mape:.1f} %", "max": f"{f.max_error:.1f} %"} for k, f in cal.fits.items()]
    print(f"{cal.source}")
    print(report.table(rows, [Column("class", "kernel class", align="<"), Column("n", "samples"),
                              Column("dropped", "outliers"), Column("overhead", "fixed cost"),
                              Column("mape", "fit MAPE"), Column("max", "worst")]))
    for label, reason in cal.failed:
        print(f"skipped {label}: {reason}")
    print(f"wrote {out}")
    return 0


def _profile_path(text: str) -> Any:
    """Where the profile goes, checked before minutes of measuring: a .yaml file that can be written."""
    from explorer.outputs import check_file

    return check_file(text, (".yaml", ".yml"), "a profile")


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    from explorer.cost import parse_assignments
    from explorer.errors import ExplorerError

    axes: dict[str, list[Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not text:
            raise ExplorerError(f"--grid takes NAME=V1,V2,..., got {item!r}")
        axes[name.strip()] = [parse_assignments([f"{name}={v}"])[name.strip()] for v in text.split(",")]
    return axes


def cmd_accuracy(args: argparse.Namespace) -> int:
    from explorer.cost import parse_assignments, resolve_values
    from explorer.measure import accuracy
    from explorer.spec import load_spec

    spec = load_spec(args.spec)
    fixed = parse_assignments(args.set)
    configs = [{**fixed, **c} for c in accuracy.grid(spec, parse_grid(args.grid))]
    for c in configs:
        resolve_values(spec, c)  # names and domains, before anything runs
    plot = None
    if args.plot:
        from explorer.plots import check_output

        from explorer.hardware.profile import resolve

        plot = check_output(args.plot, [spec.path, resolve(args.hardware)])
    update, close = _bar(args.quiet, "measuring")
    try:
        rep = accuracy.run(spec, configs, hardware=args.hardware, device=args.device, threads=args.threads,
                           dtype=args.dtype, execution=args.execution, runtime=args.runtime, rounds=args.rounds,
                           progress=update)
    finally:
        close()
    if args.format == "json":
        print(report.to_json(rep.to_dict()))
    elif args.format == "csv":
        rows = [{"config": p.label, "measured_s": p.measured_s, "spread": p.spread, "predicted_s": p.predicted_s,
                 "error": p.error, "macs": p.macs, "baseline_s": p.baseline_s} for p in rep.points]
        print(report.to_csv(rows, list(rows[0])), end="")
    else:
        print(format_report(rep))
    if plot is not None:
        from explorer.plots import accuracy_chart

        print(f"wrote {accuracy_chart(rep, plot)}")
    return 0


def format_report(rep: Any) -> str:
    rows = [{"config": p.label, "measured": report.seconds(p.measured_s), "spread": f"{100 * p.spread:.1f} %",
             "predicted": report.seconds(p.predicted_s), "error": f"{100 * p.error:+.1f} %",
             "baseline": f"{100 * (p.baseline_s / p.measured_s - 1):+.1f} %"} for p in rep.points]
    lines = [f"{rep.spec} on {rep.device}, {rep.dtype}, {rep.threads} thread(s); predicted with {rep.hardware} "
             f"({rep.execution})", ""]
    lines.append(report.table(rows, [Column("config", "configuration", align="<"), Column("measured", "measured"),
                                     Column("spread", "spread"), Column("predicted", "predicted"),
                                     Column("error", "error"), Column("baseline", "MACs-only error")]))
    score_rows = []
    for name, s in (("execution model", rep.model), ("MACs-only baseline", rep.baseline)):
        score_rows.append({"what": name, "mape": f"{s.mape:.1f} %", "within": f"{100 * s.within_10:.0f} %",
                           "rho": f"{s.spearman:.3f}", "tau": f"{s.kendall:.3f}", "worst": f"{s.worst:.1f} %"})
    lines += ["", report.table(score_rows, [Column("what", "", align="<"), Column("mape", "MAPE"),
                                            Column("within", "within +-10 %"), Column("rho", "Spearman"),
                                            Column("tau", "Kendall"), Column("worst", "worst")])]
    lines.append(f"(baseline: latency = {rep.seconds_per_mac * 1e9:.4g} ns x MACs, its constant fitted on these "
                 f"measurements)")
    return "\n".join(lines)
