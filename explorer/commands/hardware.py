"""``explorer hardware``, ``explorer roofline`` and ``explorer analyze --hardware``."""

from __future__ import annotations

import argparse
from typing import Any

from explorer import report
from explorer.report import Column

HW_COLUMNS = [
    Column("macs", "MACs", report.human),
    Column("flops", "FLOPs", report.human),
    Column("bytes", "bytes", lambda v: report.human(v, "B")),
    Column("intensity", "FLOP/B", lambda v: f"{v:.1f}"),
    Column("bound", "bound", align="<"),
    Column("time_s", "time", report.seconds),
    Column("share", "share", lambda v: f"{100 * v:.1f}%"),
]


def register(sub: Any) -> None:
    p = sub.add_parser("hardware", help="list hardware profiles, or show one with its sources")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("name", nargs="?", help="profile name or path (for 'show')")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("roofline", help="log-log roofline chart of a spec's layers on a device")
    p.add_argument("spec")
    p.add_argument("--hardware", required=True, metavar="NAME|PATH")
    p.add_argument("--dtype")
    p.add_argument("--weight-dtype")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-o", "--output", default="roofline.png", help="PNG or SVG file (default roofline.png)")
    p.add_argument("--label", type=int, default=6, help="label this many of the slowest layers")
    p.set_defaults(func=cmd_roofline)


def cmd_hardware(args: argparse.Namespace) -> int:
    from explorer.hardware import bundled, load_device

    if args.action == "show":
        if not args.name:
            from explorer.errors import ExplorerError

            raise ExplorerError("'explorer hardware show' needs a profile name")
        print(describe(load_device(args.name)))
        return 0
    rows = []
    for d in bundled():
        rows.append({"id": d.id, "name": d.name, "kind": d.kind,
                     "peaks": ", ".join(f"{k} {report.human(v, rate_unit(k))}" for k, v in d.peak.items()),
                     "bandwidth": report.human(d.bandwidth, "B/s"), "memory": report.human(d.capacity, "B")})
    print(report.table(rows, [Column("id", "profile", align="<"), Column("kind", "kind", align="<"),
                              Column("bandwidth", "bandwidth"), Column("memory", "memory"),
                              Column("peaks", "dense peak per precision", align="<")]))
    return 0


def rate_unit(dtype: str) -> str:
    return "OP/s" if dtype.startswith("int") else "FLOP/s"


def describe(d: Any) -> str:
    lines = [f"{d.name}  ({d.id}, {d.kind})", d.description, ""]
    rows = [{"what": f"peak {k}", "value": report.human(v, rate_unit(k)), "source": d.sources[f"peak.{k}"]}
            for k, v in d.peak.items()]
    rows.append({"what": "memory bandwidth", "value": report.human(d.bandwidth, "B/s"),
                 "source": d.sources["memory.bandwidth"]})
    rows.append({"what": "memory capacity", "value": report.human(d.capacity, "B"),
                 "source": d.sources["memory.capacity"]})
    for key, label in (("efficiency.compute", "achievable compute"), ("efficiency.bandwidth", "achievable bandwidth")):
        if key in d.sources:
            value = d.compute_efficiency if key.endswith("compute") else d.bandwidth_efficiency
            rows.append({"what": label, "value": f"{100 * value:.0f} %", "source": d.sources[key]})
    if "launch_overhead" in d.sources:
        rows.append({"what": "launch overhead", "value": report.seconds(d.launch_overhead),
                     "source": d.sources["launch_overhead"]})
    lines.append(report.table(rows, [Column("what", "", align="<"), Column("value", "value"),
                                     Column("source", "source", align="<")]))
    ridges = ", ".join(f"{k} {d.ridge_point(k):.1f}" for k in d.peak)
    lines += ["", f"ridge point (peak FLOP/s / bandwidth, FLOP/byte): {ridges}"]
    return "\n".join(lines)


def predict(args: argparse.Namespace, spec: Any, overrides: dict[str, Any]) -> tuple[Any, Any]:
    """Analyze at one configuration and place it on the device: (Analysis, Roofline)."""
    from explorer.analysis import analyze
    from explorer.cost import Precision
    from explorer.hardware import Roofline, load_device
    from explorer.units import parse_quantity

    device = load_device(args.hardware)
    dtype = args.dtype or spec.dtype
    device.peak_for(dtype)  # a clear error when the device lacks this precision
    precision = Precision(dtype, args.weight_dtype)
    budget = parse_quantity(args.memory_budget, "bytes") if getattr(args, "memory_budget", None) else None
    result = analyze(spec, overrides, precision)
    return result, Roofline(result.costs, device, dtype, budget)


def analyze_on_hardware(args: argparse.Namespace, spec: Any, overrides: dict[str, Any]) -> int:
    from explorer.commands.analyze import COST_COLUMNS, emit
    from explorer.hardware import bound

    result, roof = predict(args, spec, overrides)
    data = result.to_dict()
    latency = float(roof.totals["latency_s"])
    for row, t in zip(data["layers"], roof.layers):
        row.update(bytes=int(t.bytes), intensity=float(t.flops / t.bytes) if t.bytes else 0.0, bound=bound(t),
                   time_s=float(t.time_s), share=float(t.time_s) / latency if latency else 0.0)
    totals = {k: float(v) for k, v in roof.totals.items()}
    for k in ("weight_bytes", "peak_memory_bytes"):
        totals[k] = int(round(totals[k]))
    totals["fits"] = totals["peak_memory_bytes"] <= roof.capacity
    data["totals"].update(totals)
    peak_at = roof.memory.steps[roof.memory.peak_step()] if roof.memory.steps else None
    data["hardware"] = {"device": roof.device.id, "name": roof.device.name, "dtype": roof.dtype,
                        "weight_dtype": roof.precision.weights or roof.dtype,
                        "ridge_point": roof.ridge_point(), "capacity_bytes": roof.capacity, "peak_at": peak_at}
    if args.sort == "time":
        data["layers"].sort(key=lambda r: -r["time_s"])
    data["header"] = (f"on {roof.device.name}, {roof.dtype} (weights {data['hardware']['weight_dtype']}); "
                      f"ridge point (achievable) {roof.ridge_point():.1f} FLOP/B; peak memory at '{peak_at}'; "
                      f"capacity {report.human(roof.capacity, 'B')}")
    columns = HW_COLUMNS if args.per_layer else COST_COLUMNS
    emit(args, data, columns)
    return 0


def cmd_roofline(args: argparse.Namespace) -> int:
    from explorer.cost import parse_assignments
    from explorer.plots import check_output, roofline_chart
    from explorer.spec import load_spec

    spec = load_spec(args.spec)
    check_output(args.output, [spec.path])  # before any work: never over the spec it reads
    result, roof = predict(args, spec, parse_assignments(args.set))
    path = roofline_chart(result, roof, args.output, label=args.label)
    print(f"wrote {path}")
    return 0
