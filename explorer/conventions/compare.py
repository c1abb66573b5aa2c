"""Every convention side by side, by op category, and why each differs from explorer's exact count.

The explanations are generated: for each tool and each explorer op, the difference between the
tool's count and explorer's (MACs for the MAC-style tools, FLOPs for the FLOP-style ones) is
summed over the op's layers, and every non-zero difference is reported with the note of the
tool's table entry for that op ("thop counts BatchNorm as 4 ops per element ...: +44.46 M").
The per-op differences plus the tools' global adjustments add up to the difference of totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from explorer.conventions.base import Number, View, as_json_number
from explorer.ops.base import CATEGORIES
from explorer.report import human

if TYPE_CHECKING:
    from explorer.analysis import Analysis
    from explorer.conventions import Result

CORE = ("conv", "linear", "norm", "activation", "pooling", "elementwise", "attention")
OURS = {"macs": "MACs", "flops": "FLOPs", "params": "parameters"}


@dataclass
class Difference:
    """One reason a tool's total differs from explorer's: the explorer ops it covers (comma-separated;
    None for a global rule of the tool) and the amount, in the tool's unit."""

    convention: str
    op: str | None
    amount: Number
    text: str


@dataclass
class Comparison:
    spec: str
    variables: dict[str, Any]
    results: dict[str, Result]
    rows: list[dict[str, Any]]  # one per category, plus the totals row: values in each tool's unit
    explanations: dict[str, list[Difference]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        conventions = {}
        for name, r in self.results.items():
            c = r.convention
            conventions[name] = {"tool": c.tool, "version": c.version, "source": c.source, "unit": c.unit,
                                 "compared_with": c.ours, "total": r.total, "error": r.error,
                                 "also": r.extra, **({"by_operator": r.by_key} if r.by_key else {})}
        return {
            "spec": self.spec, "variables": self.variables, "conventions": conventions,
            "rows": [{k: _num(v) for k, v in row.items()} for row in self.rows],
            "explanations": {name: [{"op": d.op, "difference": _num(d.amount), "text": d.text} for d in diffs]
                             for name, diffs in self.explanations.items()},
            "notes": self.notes,
        }


def _num(value: Any) -> Any:
    return as_json_number(value) if isinstance(value, (int, float, Fraction)) else value


def signed(amount: Number) -> str:
    """+44.46 M / -6.29 G: the sign, then the magnitude with a unit prefix."""
    magnitude = abs(amount)
    if isinstance(magnitude, Fraction):
        magnitude = int(magnitude) if magnitude.denominator == 1 else float(magnitude)
    return ("+" if amount > 0 else "-") + human(magnitude)


def explain(result: Result, vs: list[View], ours: list[dict[str, int]]) -> list[Difference]:
    """The differences of one convention from explorer's exact count, largest first."""
    conv = result.convention
    if result.error:
        return [Difference(conv.name, None, 0, f"{conv.name} cannot run this model: {result.error}; "
                                               "it prints no total")]
    by_note: dict[str, Number] = {}  # ops whose table entries share a note are explained together
    ops: dict[str, list[str]] = {}
    for v, value, metrics in zip(vs, result.face, ours):
        note = conv.table[v.op].note
        by_note[note] = by_note.get(note, 0) + value - metrics[conv.ours]
        if v.op not in ops.setdefault(note, []):
            ops[note].append(v.op)
    diffs = [Difference(conv.name, ", ".join(ops[note]), amount, f"{conv.name} {note}: {signed(amount)}")
             for note, amount in by_note.items() if amount != 0]
    diffs.sort(key=lambda d: (-abs(float(d.amount)), d.op or ""))
    diffs += [Difference(conv.name, None, amount, f"{conv.name} {text}: {signed(amount)}")
              for text, amount in result.notes if amount != 0]
    if not diffs:
        diffs = [Difference(conv.name, None, 0, f"{conv.name} equals explorer's exact {OURS[conv.ours]}")]
    return diffs


def assumptions(vs: list[View]) -> list[str]:
    """How explorer maps ops that have no single torch equivalent (said once, under the table)."""
    attention = [v for v in vs if v.op == "attention"]
    out = []
    if attention:
        out.append("attention is counted as torch's nn.MultiheadAttention on its fused fast path (eval, no_grad, "
                   "need_weights=False), as torchvision's ViT runs it in the reference setup")
    if any(v.a("causal") for v in attention):
        out.append("causal (GPT-2 style) attention has no torchvision reference: it is counted as "
                   "nn.MultiheadAttention the same way")
    if any(len(v.ins) > 1 for v in attention):
        out.append("cross-attention (query is not key) would take nn.MultiheadAttention's slow path in torch; "
                   "it is counted as the fast path here")
    if any(v.op in ("add", "mul", "sub", "div", "scale") for v in vs):
        out.append("element-wise ops are taken to be Python operators (out += identity, a * b), "
                   "which no tool sees")
    return out


def compare(analysis: Analysis) -> Comparison:
    """Apply every convention to one analysis: the table by category, and the explanations."""
    from explorer.conventions import CONVENTIONS, evaluate, views

    vs, ctx = views(analysis)
    results = {name: evaluate(analysis, conv) for name, conv in CONVENTIONS.items()}
    ours = [row.metrics for row in analysis.layers]
    present = {v.category for v in vs}
    categories = [*CORE, *(c for c in CATEGORIES if c in present and c not in CORE)]
    rows = []
    for cat in categories:
        row: dict[str, Any] = {"category": cat}
        for name, r in results.items():
            row[name] = sum((p for v, p in zip(vs, r.per_layer) if v.category == cat), 0)
        row["explorer_flops"] = sum(m["flops"] for v, m in zip(vs, ours) if v.category == cat)
        row["explorer_params"] = sum(m["params"] for v, m in zip(vs, ours) if v.category == cat)
        rows.append(row)
    total: dict[str, Any] = {"category": "total", **{name: r.total for name, r in results.items()}}
    total["explorer_flops"] = analysis.totals["flops"]
    total["explorer_params"] = analysis.totals["params"]
    rows.append(total)
    explanations = {name: explain(r, vs, ours) for name, r in results.items() if name != "explorer"}
    notes = [*assumptions(vs), *ctx.facts]
    if "keras" not in (analysis.spec.source or ""):
        notes.append("tf-profiler counts this architecture as Keras would build it (Conv2D, unfused "
                     "BatchNormalization, Dense); TensorFlow references exist for the keras_* specs")
    return Comparison(analysis.spec.name, dict(analysis.values), results, rows, explanations, notes)
