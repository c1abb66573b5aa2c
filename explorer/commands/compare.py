"""``explorer compare``: what every popular FLOP counter prints for a spec, and why they differ."""

from __future__ import annotations

import argparse
from fractions import Fraction
from typing import Any

from explorer import report
from explorer.commands.analyze import add_set
from explorer.conventions.compare import OURS
from explorer.report import Column


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="every counting convention (fvcore, thop, ptflops, ...) side by side, "
                       "by op type, with why each differs from the exact count")
    p.add_argument("spec", help="spec file, or the name of a bundled spec (see 'explorer specs')")
    add_set(p)
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    p.add_argument("--exact", action="store_true", help="exact integers instead of K/M/G")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from explorer.analysis import analyze
    from explorer.conventions import compare
    from explorer.cost import parse_assignments
    from explorer.spec import load_spec

    spec = load_spec(args.spec)
    result = compare(analyze(spec, parse_assignments(args.set)))
    if args.format == "json":
        print(report.to_json(result.to_dict()))
        return 0
    print(render(result, markdown=args.format == "markdown", exact=args.exact))
    return 0


def _fmt(exact: bool) -> Any:
    def fmt(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, Fraction):
            value = int(value) if value.denominator == 1 else float(value)
        if exact:
            return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
        return report.human(value)
    return fmt


def render(result: Any, markdown: bool = False, exact: bool = False) -> str:
    """The comparison as text: the table by op type, units, then the explanations and notes."""
    fmt = _fmt(exact)
    names = list(result.results)
    columns = [Column("category", "op type", align="<"), Column("explorer", "explorer MACs", fmt),
               Column("explorer_flops", "explorer FLOPs", fmt), Column("explorer_params", "explorer params", fmt)]
    columns += [Column(n, n, fmt) for n in names if n != "explorer"]
    rows = [{k: ("error" if v is None else v) for k, v in row.items()} for row in result.rows]
    draw = report.markdown if markdown else report.table
    bullet = "- " if markdown else "  "
    lines = [f"{result.spec}  " + "  ".join(f"{k}={v}" for k, v in result.variables.items()), "",
             draw(rows, columns), ""]
    units = ", ".join(f"{n} {r.convention.unit}" for n, r in result.results.items() if n != "explorer")
    lines.append(f"units: {units}")
    also = [f"{n} {k} {fmt(v)}" + (" (per sample)" if k == "MAdd" else "")
            for n, r in result.results.items() if n != "explorer" for k, v in r.extra.items() if v is not None]
    if also:
        lines.append("also: " + ", ".join(also))
    lines += ["", f"Why each differs from explorer's exact count (MACs; {_compared_with(result)}):"]
    reference_of = {"macs": result.rows[-1]["explorer"], "flops": result.rows[-1]["explorer_flops"],
                    "params": result.rows[-1]["explorer_params"]}
    for name, diffs in result.explanations.items():
        r = result.results[name]
        metric = OURS[r.convention.ours]
        reference = reference_of[r.convention.ours]
        shown = "no total" if r.total is None else f"{fmt(r.total)} {r.convention.unit}"
        lines.append(f"{'#### ' if markdown else ''}{name}: {shown} vs explorer {fmt(reference)} {metric}")
        lines += [f"{bullet}{d.text}" for d in diffs]
    if result.notes:
        lines += ["", "Notes:"] + [f"{bullet}{n}" for n in result.notes]
    return "\n".join(lines)


def _compared_with(result: Any) -> str:
    """"FLOPs for torch, calflops, parameters for torchsummary": the tools not compared with MACs."""
    by_metric: dict[str, list[str]] = {}
    for name, r in result.results.items():
        if name != "explorer" and r.convention.ours != "macs":
            by_metric.setdefault(r.convention.ours, []).append(name)
    return "; ".join(f"{OURS[k]} for {', '.join(names)}" for k, names in by_metric.items())
