"""Last step: tables for people (text, markdown) and for programs (json, csv)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_UNITS = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def human(value: Any, unit: str = "") -> str:
    """12345678 -> '12.35 M'; small numbers stay as they are."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) and not value.is_integer() and abs(value) < 1000:
        return f"{value:.4g}{(' ' + unit) if unit else ''}"
    for scale, prefix in _UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:g}{(' ' + unit) if unit else ''}" if isinstance(value, float) else f"{value}{(' ' + unit) if unit else ''}"


def seconds(value: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def grouped(value: int) -> str:
    return f"{value:,}"


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    human: Any = None  # formatter for the table; None: str()
    align: str = ">"


ADDITIVE = ("params", "macs", "flops", "bytes_read", "bytes_written", "kv_cache_bytes", "bytes", "time_s", "share",
            "convention_count")


def collapse(rows: Sequence[dict[str, Any]], depth: int) -> list[dict[str, Any]]:
    """Per-layer rows summed by the first ``depth`` parts of their path (``layer1.0.conv1`` at depth 2
    -> ``layer1.0``), as torchinfo's ``depth`` does. Counts, bytes and times add up; the shape shown is
    the group's last output; a group of several layers shows ``N layers`` as its op and recomputes
    its intensity; fields that do not add up (kernel class, bound) are left empty."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(".".join(str(r["name"]).split(".")[:depth]), []).append(r)
    out = []
    for name, members in groups.items():
        if len(members) == 1:
            out.append({**members[0], "name": name})
            continue
        row: dict[str, Any] = {"name": name, "op": f"{len(members)} layers", "output_shape": members[-1].get("output_shape"),
                               "count": 1}
        for key in ADDITIVE:
            if any(key in m for m in members):
                row[key] = sum(m.get(key) or 0 for m in members)
        if "intensity" in members[0]:
            moved = row.get("bytes", 0)
            row["intensity"] = row.get("flops", 0) / moved if moved else 0.0
        out.append(row)
    return out


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], exact: bool = False) -> str:
    """A plain-text table with aligned columns."""
    cells = [[c.header for c in columns]]
    for row in rows:
        cells.append([_cell(row.get(c.key), c, exact) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, r in enumerate(cells):
        parts = [f"{v:{c.align}{w}}" for v, c, w in zip(r, columns, widths)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[Column], exact: bool = False) -> str:
    head = "| " + " | ".join(c.header for c in columns) + " |"
    rule = "|" + "|".join(("---:" if c.align == ">" else ":---") for c in columns) + "|"
    body = ["| " + " | ".join(_cell(r.get(c.key), c, exact) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def to_csv(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(keys), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _plain(row.get(k)) for k in keys})
    return buf.getvalue()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    if hasattr(value, "item"):
        return value.item()
    return value


def _cell(value: Any, column: Column, exact: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if exact and isinstance(value, int) and not isinstance(value, bool):
        return grouped(value)
    if column.human is not None:
        return str(column.human(value))
    return str(value)
