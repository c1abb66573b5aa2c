"""``explorer measure``: time a spec's PyTorch module (the bridge) end to end or per layer."""

from __future__ import annotations

import argparse
from typing import Any

from explorer import report
from explorer.commands.analyze import add_set
from explorer.report import Column

LAYER_COLUMNS = [
    Column("name", "layer", align="<"),
    Column("op", "op", align="<"),
    Column("best_s", "best", report.seconds),
    Column("median_s", "median", report.seconds),
    Column("spread", "spread", lambda v: f"{100 * v:.1f} %"),
    Column("number", "calls/round"),
    Column("share", "share", lambda v: f"{100 * v:.1f} %"),
]
CSV_KEYS = ["name", "op", "best_s", "median_s", "spread", "rounds", "number", "clock", "wall_best_s",
            "wall_median_s", "cpu_best_s", "cpu_median_s"]


def register(sub: Any) -> None:
    p = sub.add_parser("measure", help="time the spec's PyTorch module (random weights) on this machine")
    p.add_argument("spec", help="spec file, or the name of a bundled spec (see 'explorer specs')")
    add_set(p)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--per-layer", action="store_true", help="also time each layer on its real inputs")
    p.add_argument("--layer-timing", choices=("isolated", "inline"), default="isolated",
                   help="per layer: each layer repeated alone (isolated, default) or timestamps inside whole "
                        "runs (inline, rows add up to a run)")
    p.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                   help="eager PyTorch (default) or ONNX Runtime with every graph optimization (fuses layers)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7); the estimate is the best")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--min-time", type=float, default=0.05, metavar="SECONDS",
                   help="shortest round; short calls repeat within a round (default 0.05)")
    p.set_defaults(func=cmd_measure)


def cmd_measure(args: argparse.Namespace) -> int:
    from explorer.cost import parse_assignments
    from explorer.errors import ExplorerError
    from explorer.measure import measure
    from explorer.spec import load_spec

    if args.rounds < 1 or args.warmup < 0 or args.min_time < 0:
        raise ExplorerError(f"--rounds must be >= 1, --warmup and --min-time >= 0, got "
                            f"{args.rounds}, {args.warmup}, {args.min_time}")
    spec = load_spec(args.spec)
    result = measure(spec, parse_assignments(args.set), device=args.device, threads=args.threads,
                     dtype=args.dtype, per_layer=args.per_layer, layer_timing=args.layer_timing,
                     rounds=args.rounds, warmup=args.warmup, min_time_s=args.min_time, runtime=args.runtime)
    data = result.to_dict()
    if args.format == "json":
        print(report.to_json(data))
    elif args.format == "csv":
        print(report.to_csv([*data["layers"], {"name": "TOTAL", **data["total"]}], CSV_KEYS), end="")
    else:
        print(render(data))
    return 0


def render(data: dict[str, Any]) -> str:
    """The readable report: configuration, machine, clock, per-layer rows, total."""
    total = data["total"]
    threads = f"{data['threads']} thread{'s' if data['threads'] != 1 else ''}"
    machine = (f"device: {data['device']} ({data['device_kind']}), {threads}, {data['dtype']}, "
               f"torch {data['torch_version']}")
    clock = f"clock:  {total['clock']}, best of {total['rounds']} rounds x {total['number']} call(s), after warm-up"
    lines = [f"{data['spec']}  " + "  ".join(f"{k}={v}" for k, v in data["values"].items()), machine, clock, ""]
    if data["layers"]:
        rows = [{**r, "share": r["best_s"] / data["layers_sum_s"] if data["layers_sum_s"] else 0.0}
                for r in data["layers"]]
        how = {"isolated": "each layer repeated alone on its real inputs; the total runs them back to back",
               "inline": "timestamps between the layers of whole runs"}[data["layer_timing"]]
        note = f"sum of layer rows: {report.seconds(data['layers_sum_s'])} ({how})"
        lines += [report.table(rows, LAYER_COLUMNS), "", note, ""]
    lines.append(f"total: {report.seconds(total['best_s'])} ± {100 * total['spread']:.1f} % "
                 f"(median {report.seconds(total['median_s'])}; " + wall_cpu(total) + ")")
    return "\n".join(lines)


def wall_cpu(total: dict[str, Any]) -> str:
    parts = [f"wall best {report.seconds(total['wall_best_s'])}"]
    if total["cpu_best_s"] is not None:
        parts.append(f"thread CPU best {report.seconds(total['cpu_best_s'])}")
    return ", ".join(parts)
