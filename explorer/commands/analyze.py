"""``explorer analyze``, ``formula``, ``validate`` and ``specs``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from explorer import report
from explorer.report import Column

COST_COLUMNS = [
    Column("params", "params", report.human),
    Column("macs", "MACs", report.human),
    Column("flops", "FLOPs", report.human),
    Column("bytes_read", "read", lambda v: report.human(v, "B")),
    Column("bytes_written", "written", lambda v: report.human(v, "B")),
]
LAYER_COLUMNS = [Column("name", "layer", align="<"), Column("op", "op", align="<"),
                 Column("output_shape", "output", align="<")]


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="exact params, MACs, FLOPs and memory traffic of a spec")
    p.add_argument("spec", help="spec file, or the name of a bundled spec (see 'explorer specs')")
    add_set(p)
    p.add_argument("--per-layer", action="store_true", help="one row per layer")
    p.add_argument("--depth", type=_depth, metavar="N",
                   help="per-layer rows summed by the first N parts of their path (torchinfo's depth); implies "
                        "--per-layer")
    p.add_argument("--totals", action="store_true",
                   help="with --format csv or json: only the totals (one CSV row; the JSON's totals, precision, "
                        "hardware and units)")
    p.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    p.add_argument("--exact", action="store_true", help="exact integers instead of K/M/G")
    p.add_argument("--convention", metavar="NAME", type=convention_name,
                   help="also count as a tool does: explorer, torch, fvcore, thop, ptflops, ptflops-aten, "
                        "torchinfo, torchstat, calflops, flopth, torchsummary (its own table), tf-profiler "
                        "(docs/conventions.md)")
    add_hardware_args(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("formula", help="closed-form cost of a spec in its variables")
    p.add_argument("spec")
    p.add_argument("--metric", default="macs",
                   choices=("params", "macs", "flops", "bytes_read", "bytes_written", "kv_cache_bytes", "all"))
    p.add_argument("--latex", action="store_true")
    add_set(p, "fix variables to numbers before deriving")
    p.set_defaults(func=cmd_formula)

    p = sub.add_parser("validate", help="check a spec: syntax, references, shapes at the defaults (or --set)")
    p.add_argument("spec", nargs="+")
    add_set(p, help="check at this value instead of the default (repeatable; with several specs, applied to "
                    "those that have the variable)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="the JSON Schema of specs, studies or hardware profiles (for editors)")
    p.add_argument("kind", choices=("spec", "study", "hardware"))
    p.add_argument("-o", "--output", help="write it to this .json file instead of printing it")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("specs", help="list the bundled specs")
    p.set_defaults(func=cmd_specs)


def _depth(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def convention_name(text: str) -> str:
    """argparse type for --convention: a known name, or a one-line error with a suggestion."""
    from explorer.conventions import get
    from explorer.errors import ExplorerError

    try:
        return get(text).name
    except ExplorerError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_set(p: argparse.ArgumentParser, help: str = "set a variable (repeatable)") -> None:
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help=help)


def add_hardware_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hardware", metavar="NAME|PATH", help="predict time on this device (see 'explorer hardware')")
    add_precision_args(p)
    p.add_argument("--memory-budget", metavar="SIZE", help="e.g. 4GB: report whether the model fits")
    p.add_argument("--sort", choices=("order", "time"), default="order", help="layer order in the table")
    p.add_argument("--tp", type=int, default=1, metavar="N",
                   help="tensor parallelism over N devices: heads, kv_heads, hidden and vocab split, all-reduce "
                        "time from the profile's interconnect, figures per device")
    p.add_argument("--prompt", type=int, metavar="P", help="with --generate: an LLM request of P prompt tokens")
    p.add_argument("--generate", type=int, metavar="G",
                   help="generated tokens: time to first token, time per output token, tokens/s")
    p.add_argument("--execution", choices=("eager", "fused"),
                   help="one kernel per layer, or conv/linear + norm + activation fused (default: the profile's)")


def add_precision_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", help="precision for compute and activations: fp32, fp16, bf16, fp8_e4m3, int8, ...")
    p.add_argument("--weight-dtype", help="precision of weights, if different (e.g. int8, int4)")
    p.add_argument("--kv-dtype", help="precision of the KV cache, if different (e.g. fp8_e4m3, int8)")
    p.add_argument("--quant", metavar="SCHEME", help="w4a16, w8a16, w8a8 or fp8: activation and weight dtypes at once")
    p.add_argument("--group-size", type=int, default=128,
                   help="weights per fp16 scale for int4/int8 weights (default 128)")


def precision_from_args(args: argparse.Namespace, spec: Any) -> Any:
    """The Precision named by --quant / --dtype / --weight-dtype / --kv-dtype / --group-size."""
    from explorer.cost import Precision
    from explorer.errors import ExplorerError

    quant = getattr(args, "quant", None)
    kv = getattr(args, "kv_dtype", None)
    group = getattr(args, "group_size", 128)
    if quant:
        if args.dtype or args.weight_dtype:
            raise ExplorerError("--quant sets --dtype and --weight-dtype; give one or the other")
        base = Precision.scheme(quant)
        return Precision(base.activations, base.weights, kv, group)
    return Precision(args.dtype or spec.dtype, args.weight_dtype, kv, group)


def cmd_analyze(args: argparse.Namespace) -> int:
    from explorer.analysis import analyze
    from explorer.cost import parse_assignments
    from explorer.spec import load_spec

    spec = load_spec(args.spec)
    overrides = parse_assignments(args.set)
    if args.hardware and args.convention:
        from explorer.errors import ExplorerError

        raise ExplorerError("--convention and --hardware cannot be combined")
    if (args.prompt is None) != (args.generate is None):
        from explorer.errors import ExplorerError

        raise ExplorerError("--prompt and --generate go together (a request: prompt tokens in, tokens generated)")
    if args.tp < 1:
        from explorer.errors import ExplorerError

        raise ExplorerError(f"--tp: expected a whole number >= 1, got {args.tp}")
    if args.hardware and args.prompt is not None:
        from explorer.commands.hardware import serve_on_hardware

        return serve_on_hardware(args, spec, overrides)
    if args.hardware:
        from explorer.commands.hardware import analyze_on_hardware

        return analyze_on_hardware(args, spec, overrides)
    if args.memory_budget or args.sort != "order" or args.execution or args.prompt is not None or args.tp > 1:
        from explorer.errors import ExplorerError

        raise ExplorerError("--memory-budget, --execution, --sort time, --tp and --prompt/--generate need --hardware")
    result = analyze(spec, overrides, precision_from_args(args, spec))
    if args.convention:
        return _emit_convention(args, result)
    emit(args, result.to_dict(), COST_COLUMNS)
    return 0


def _emit_convention(args: argparse.Namespace, result: Any) -> int:
    """The analysis plus one tool's count: ``totals.count`` and a per-layer ``convention_count``."""
    from explorer.conventions import annotate

    if args.convention == "torchsummary" and args.format != "csv":
        return _emit_torchsummary(args, result)
    data = annotate(result, result.to_dict(), args.convention)
    conv = data["convention"]
    also = "".join(f", {k} {v:,}" for k, v in conv["also"].items() if v is not None)
    printed = f" (prints {conv['printed']})" if "printed" in conv else ""
    shown = "no total: " + conv["error"] if conv["error"] else \
        f"{data['totals']['count']:,} {conv['unit']}{printed}{also}"
    data["header"] = f"convention {conv['name']} ({conv['tool']}, {conv['version']}): {shown}"
    column = Column("convention_count", f"{conv['name']} {conv['unit']}", report.human)
    if args.format == "csv":  # the csv 'count' column is the layer multiplicity: total under its own key
        totals = dict(data["totals"])
        totals["convention_count"] = totals.pop("count")
        data = {**data, "totals": totals}
    emit(args, data, [*COST_COLUMNS, column])
    return 0


def _emit_torchsummary(args: argparse.Namespace, result: Any) -> int:
    """torchsummary's own printout (its rows with --per-layer, then totals and size lines), or the same as JSON."""
    from dataclasses import asdict

    from explorer.conventions.torchsummary import summary

    s = summary(result)
    if args.format == "json":
        print(report.to_json({"spec": result.spec.name, "variables": result.values, "torchsummary": asdict(s)}))
        return 0
    print(f"{result.spec.name}  " + "  ".join(f"{k}={v}" for k, v in result.values.items()))
    text = torchsummary_text(s, args.per_layer)
    print(f"\n```\n{text}\n```" if args.format == "markdown" else text)
    return 0


def torchsummary_text(s: Any, per_layer: bool = True) -> str:
    """The lines torchsummary.summary prints (torchsummary/torchsummary.py, lines 78-114)."""
    rule, double = "-" * 64, "=" * 64
    lines = [rule, "{:>20}  {:>25} {:>15}".format("Layer (type)", "Output Shape", "Param #"), double]
    if per_layer:
        lines += ["{:>20}  {:>25} {:>15}".format(r.key, str(r.output_shape), f"{r.params:,}") for r in s.rows]
    lines += [double, f"Total params: {s.total_params:,}", f"Trainable params: {s.trainable_params:,}",
              f"Non-trainable params: {s.total_params - s.trainable_params:,}", rule,
              "Input size (MB): %0.2f" % s.input_mb, "Forward/backward pass size (MB): %0.2f" % s.forward_backward_mb,
              "Params size (MB): %0.2f" % s.params_mb, "Estimated Total Size (MB): %0.2f" % s.total_mb, rule]
    return "\n".join(lines)


def emit(args: argparse.Namespace, data: dict[str, Any], columns: list[Column]) -> None:
    """Print an analysis in the requested format."""
    depth = getattr(args, "depth", None)
    if depth:
        data = {**data, "layers": report.collapse(data["layers"], depth)}
    rows = data["layers"]
    keys = ["name", "op", "output_shape", "count", *[c.key for c in columns]]
    totals_only = getattr(args, "totals", False)
    if totals_only and args.format not in ("csv", "json"):
        from explorer.errors import ExplorerError

        raise ExplorerError("--totals needs --format csv or json (the table already ends with the totals)")
    if args.format == "json":
        print(report.to_json({k: v for k, v in data.items() if k not in ("layers", "kernels", "header")}
                             if totals_only else {k: v for k, v in data.items() if k != "header"}))
        return
    if args.format == "csv":
        if totals_only:
            print(report.to_csv([data["totals"]], list(data["totals"])), end="")
            return
        total = {"name": "TOTAL", **data["totals"]}
        print(report.to_csv([*rows, total], keys), end="")
        return
    render = report.markdown if args.format == "markdown" else report.table
    print(f"{data['spec']}  " + "  ".join(f"{k}={v}" for k, v in data["variables"].items()))
    extra = data.get("header")
    if extra:
        print(extra)
    print()
    if args.per_layer or depth:
        print(render(rows, LAYER_COLUMNS + columns, args.exact))
        print()
    print(totals_table(data["totals"], args.exact, render))


def totals_table(totals: dict[str, Any], exact: bool, render: Any) -> str:
    fmt = {"latency_s": report.seconds,
           "throughput_per_s": lambda v: "n/a (nothing takes time)" if v is None else f"{v:,.1f} /s",
           "utilization": lambda v: f"{100 * v:.1f} %", "arithmetic_intensity": lambda v: f"{v:.2f} FLOP/B",
           "fits": str, "weight_bytes": lambda v: report.human(v, "B"),
           "peak_memory_bytes": lambda v: report.human(v, "B"), "kv_cache_bytes": lambda v: report.human(v, "B"), "ridge_point": lambda v: f"{v:.2f} FLOP/B",
           "peak_at": str, "count": lambda v: "n/a" if v is None else report.human(v)}
    units = {c.key: c.human for c in COST_COLUMNS}
    rows = []
    for key, value in totals.items():
        if exact and isinstance(value, int) and not isinstance(value, bool):
            shown = f"{value:,}"
        else:
            formatter: Any = fmt.get(key) or units.get(key) or str
            shown = str(formatter(value))
        rows.append({"metric": key, "total": shown})
    return str(render(rows, [Column("metric", "total", align="<"), Column("total", "")]))


FORMULA_SECONDS = 3.0  # budget for building and simplifying every formula asked for (after imports)


def cmd_formula(args: argparse.Namespace) -> int:
    import sympy

    from explorer.cost import METRICS, Costs, parse_assignments, resolve_values
    from explorer.graph import build
    from explorer.spec import load_spec

    import time

    deadline = time.monotonic() + FORMULA_SECONDS
    spec = load_spec(args.spec)
    fixed = parse_assignments(args.set)
    resolve_values(spec, fixed)  # checks names and domains
    costs = Costs(build(spec, fixed))
    metrics = METRICS if args.metric == "all" else (args.metric,)
    formulas = {m: costs.formula(m, max(deadline - time.monotonic(), 0.05)) for m in metrics}
    for m, f in formulas.items():  # all derived before any is printed: a refusal prints nothing else
        text = sympy.latex(f) if args.latex else sympy.sstr(f)
        print(f"{m} = {text}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from explorer.analysis import analyze
    from explorer.cost import parse_assignments
    from explorer.spec import load_spec

    overrides = parse_assignments(args.set)
    where = "at " + ", ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else "at the defaults"
    for path in args.spec:
        spec = load_spec(path)
        result = analyze(spec, {k: v for k, v in overrides.items() if k in spec.variables or len(args.spec) == 1})
        print(f"{spec.path}: ok ({len(result.layers)} layers, {len(spec.variables)} variables, "
              f"{result.totals['params']:,} params {where})")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from explorer.outputs import check_file, write_atomic
    from explorer.schema import schema

    text = json.dumps(schema(args.kind), indent=2, sort_keys=True) + "\n"
    if not args.output:
        print(text, end="")
        return 0
    out = check_file(args.output, (".json",), "a schema", [])
    write_atomic(out, lambda tmp: tmp.write_text(text))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    from explorer.spec import SPECS_DIR, load_spec

    rows = []
    for path in sorted(SPECS_DIR.glob("*.yaml")):
        spec = load_spec(path)
        rows.append({"name": path.stem, "variables": ", ".join(spec.variables),
                     "description": spec.description.strip().splitlines()[0] if spec.description else ""})
    print(report.table(rows, [Column("name", "spec", align="<"), Column("variables", "variables", align="<"),
                              Column("description", "description", align="<")]))
    return 0
