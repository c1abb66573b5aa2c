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
    Column("class", "kernel class", align="<"),
    Column("bound", "bound", align="<"),
    Column("time_s", "time", report.seconds),
    Column("share", "share", lambda v: f"{100 * v:.1f}%"),
]


def register(sub: Any) -> None:
    from explorer.commands.analyze import add_precision_args

    p = sub.add_parser("hardware", help="list hardware profiles, or show one with its sources")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("name", nargs="?", help="profile name or path (for 'show')")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("roofline", help="log-log roofline chart of a spec's layers on a device")
    p.add_argument("spec")
    p.add_argument("--hardware", required=True, metavar="NAME|PATH")
    add_precision_args(p)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-o", "--output", default="roofline.png", help="PNG or SVG file (default roofline.png)")
    p.add_argument("--label", type=int, default=6, help="label this many of the slowest kernels")
    p.add_argument("--execution", choices=("eager", "fused"),
                   help="one kernel per layer, or conv/linear + norm + activation fused (default: the profile's)")
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
                     "bandwidth": report.human(d.bandwidth, "B/s"), "memory": report.human(d.capacity, "B"),
                     "model": "measured" if d.measured is not None else "datasheet"})
    print(report.table(rows, [Column("id", "profile", align="<"), Column("kind", "kind", align="<"),
                              Column("model", "times", align="<"),
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
    if d.launch_overhead_fused is not None:
        rows.append({"what": "launch overhead (fused)", "value": report.seconds(d.launch_overhead_fused),
                     "source": d.sources["launch_overhead_fused"]})
    if d.interconnect is not None:
        link = d.interconnect
        rows.append({"what": f"interconnect {link.name}".strip(), "value": report.human(link.bandwidth, "B/s"),
                     "source": d.sources["interconnect.bandwidth"]})
        rows.append({"what": "interconnect latency", "value": report.seconds(link.latency),
                     "source": d.sources["interconnect.latency"]})
    lines.append(report.table(rows, [Column("what", "", align="<"), Column("value", "value"),
                                     Column("source", "source", align="<")]))
    ridges = ", ".join(f"{k} {d.ridge_point(k):.1f}" for k in d.peak)
    lines += ["", f"ridge point (peak FLOP/s / bandwidth, FLOP/byte): {ridges}", ""]
    lines += execution_lines(d)
    return "\n".join(lines)


def execution_lines(d: Any) -> list[str]:
    """Whether times come from measurement or the datasheet, and each class's law."""
    m = d.measured
    if m is None:
        lines = [f"execution model: DATASHEET (no measurement): every kernel class runs at peak x efficiency and "
                 f"bandwidth x efficiency, combined as a roofline (max); default mode {d.execution_mode}"]
        for klass, eff in d.class_efficiency.items():
            parts = [f"{k} x{v:g}" for k, v in eff.items() if k != "source"]
            lines.append(f"  {klass}: {', '.join(parts)}  ({eff.get('source', '')})")
        return lines
    lines = [f"execution model: MEASURED at {m.dtype} ({m.source}); kernel times add up (combine {m.combine}); "
             f"default mode {d.execution_mode}"]
    rows = []
    for klass, t in m.classes.items():
        def rates(curve: Any, unit: str, scale: float) -> str:
            if curve is None:
                return "-"
            vals = [f"{1 / s / scale:.3g}" if s else "free" for s in curve.seconds]
            if len(vals) == 1:
                return f"{vals[0]} {unit}"
            return f"{min(vals, key=lambda v: float('inf') if v == 'free' else float(v))}..." \
                   f"{max(vals, key=lambda v: -1 if v == 'free' else float(v))} {unit} over {len(vals)} sizes"
        rows.append({"class": klass, "overhead": report.seconds(t.overhead_s),
                     "compute": rates(t.per_flop, "GFLOP/s", 1e9), "bandwidth": rates(t.per_byte, "GB/s", 1e9),
                     "fit": t.source})
    lines.append(report.table(rows, [Column("class", "kernel class", align="<"), Column("overhead", "fixed cost"),
                                     Column("compute", "compute", align="<"), Column("bandwidth", "bandwidth", align="<"),
                                     Column("fit", "fit on microbenchmarks", align="<")]))
    return lines


def predict(args: argparse.Namespace, spec: Any, overrides: dict[str, Any]) -> Any:
    """The library's prediction at one configuration, from the command's arguments."""
    from explorer.commands.analyze import precision_from_args
    from explorer.hardware.predict import predict as run
    from explorer.units import parse_quantity

    budget = parse_quantity(args.memory_budget, "bytes") if getattr(args, "memory_budget", None) else None
    return run(spec, overrides, hardware=args.hardware, precision=precision_from_args(args, spec),
               execution=getattr(args, "execution", None), memory_budget=budget, tp=getattr(args, "tp", 1) or 1)


def serve_on_hardware(args: argparse.Namespace, spec: Any, overrides: dict[str, Any]) -> int:
    """``--prompt P --generate G``: a request's time to first token, time per output token and
    tokens per second (explorer/hardware/serving.py)."""
    from explorer.commands.analyze import precision_from_args
    from explorer.hardware.serving import Scenario, serve

    s = serve(spec, overrides, hardware=args.hardware, scenario=Scenario(args.prompt, args.generate),
              precision=precision_from_args(args, spec), execution=getattr(args, "execution", None),
              tp=args.tp or 1)
    if args.format == "json":
        print(report.to_json({"spec": spec.name, "hardware": args.hardware, "serving": s.__dict__,
                              "units": {"time": "s", "tokens_per_s": "tokens/s", "memory": "B"}}))
        return 0
    tpot = "n/a (one token)" if s.time_per_output_token_s is None else report.seconds(s.time_per_output_token_s)
    rows = [("prompt / generated tokens", f"{s.prompt} / {s.generate} per sequence, batch {s.batch}"),
            ("tensor parallelism", f"{s.tp} device(s); figures per device" if s.tp > 1 else "1 device"),
            ("time to first token", report.seconds(s.time_to_first_token_s)),
            ("time per output token", tpot + ("" if s.decode_first_s is None else
                                              f" (first {report.seconds(s.decode_first_s)}, last "
                                              f"{report.seconds(s.decode_last_s or 0.0)})")),
            ("request latency", report.seconds(s.latency_s)),
            ("output tokens per second", f"{s.tokens_per_s:,.1f} tokens/s"),
            ("weights", report.human(s.weight_bytes, "B")),
            ("KV cache at the end", report.human(s.kv_cache_bytes, "B")),
            ("peak memory", report.human(s.peak_memory_bytes, "B"))]
    print(f"{spec.name} on {args.hardware}: a request of {s.prompt} prompt tokens, {s.generate} generated")
    print(report.table([{"what": a, "value": b} for a, b in rows],
                       [Column("what", "", align="<"), Column("value", "", align="<")]))
    return 0


def analyze_on_hardware(args: argparse.Namespace, spec: Any, overrides: dict[str, Any]) -> int:
    from explorer.commands.analyze import COST_COLUMNS, emit

    p = predict(args, spec, overrides)
    data = p.to_dict()
    if args.sort == "time":
        data["layers"].sort(key=lambda r: -r["time_s"])
    hw = data["hardware"]
    data["header"] = (f"on {p.device.name}, {p.dtype} (weights {p.weight_dtype}), {p.execution.mode} execution, "
                      f"{hw['model']} model; peak memory at '{p.peak_at}'; capacity {report.human(p.capacity_bytes, 'B')}")
    columns = HW_COLUMNS if args.per_layer else COST_COLUMNS
    emit(args, data, columns)
    return 0


def cmd_roofline(args: argparse.Namespace) -> int:
    from explorer.cost import parse_assignments
    from explorer.plots import check_output, roofline_chart
    from explorer.spec import load_spec

    spec = load_spec(args.spec)
    check_output(args.output, [spec.path])  # before any work: never over the spec it reads
    path = roofline_chart(predict(args, spec, parse_assignments(args.set)), args.output, label=args.label)
    print(f"wrote {path}")
    return 0
