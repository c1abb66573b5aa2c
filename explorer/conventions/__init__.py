"""What popular FLOP counters print for a spec, reproduced exactly from their per-op formulas.

Users arrive with a number from a tool ("thop says 4.13 G", "fvcore says 4.11 G"). explorer knows
every layer exactly, so it recomputes each tool's number from that tool's own convention: one
module per tool, each ONE table ``{explorer op: Rule(formula, note)}`` (see
:mod:`explorer.conventions.base`), and :func:`compare` shows, op by op, where they part.

    result = evaluate(analysis, CONVENTIONS["thop"])   # per-layer counts, total, ...
    count_layers(analysis, CONVENTIONS["fvcore"])      # just the per-layer counts

The conventions model the setup of the reference numbers (tests/data/torchvision_counts.json):
eval mode, ``torch.no_grad()``, a batch of N inputs. docs/conventions.md has every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explorer.analysis import Analysis
from explorer.conventions import (
    calflops,
    exact,
    flop_counter,
    flopth,
    fvcore,
    ptflops,
    ptflops_aten,
    thop,
    tf_profiler,
    torchinfo,
    torchstat,
    torchsummary,
)
from explorer.conventions.base import Convention, Ctx, Number, Rule, View, as_json_number, plain
from explorer.conventions.compare import compare
from explorer.cost import exact as exact_value
from explorer.cost import substitution
from explorer.errors import ExplorerError, did_you_mean

CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    exact.CONVENTION, flop_counter.CONVENTION, fvcore.CONVENTION, thop.CONVENTION, ptflops.CONVENTION,
    ptflops_aten.CONVENTION, torchinfo.CONVENTION, torchstat.CONVENTION, calflops.CONVENTION, flopth.CONVENTION,
    torchsummary.CONVENTION, tf_profiler.CONVENTION)}


@dataclass
class Result:
    """One convention applied to one analysis."""

    convention: Convention
    per_layer: list[Number]  # what the tool attributes to each layer (multiplicity applied)
    face: list[Number]  # the same before the tool's global adjustments (ptflops' division by N)
    total: int | None  # the tool's printed total, None when the tool raises on this model
    error: str | None
    extra: dict[str, int | None]  # secondary totals (torchstat MAdd, calflops MACs, explorer FLOPs)
    by_key: dict[str, int]  # per tool operator key (fvcore's by_operator())
    notes: list[tuple[str, Number]] = field(default_factory=list)  # global differences (ptflops)


def get(name: str) -> Convention:
    """The convention called ``name``; an unknown name is a one-line error with a suggestion."""
    if name not in CONVENTIONS:
        raise ExplorerError(f"unknown convention '{name}'{did_you_mean(name, CONVENTIONS)}; "
                            f"choose from {', '.join(CONVENTIONS)}")
    return CONVENTIONS[name]


def views(analysis: Analysis) -> tuple[list[View], Ctx]:
    """Every layer of an analysis as integers, marked with how the torch model calls it."""
    model = analysis.model
    subs = substitution(model, analysis.values)

    def ints(shape: tuple[Any, ...]) -> tuple[int, ...]:
        return tuple(int(exact_value(d, subs)) for d in shape)

    out = []
    last_call: dict[str, View] = {}  # module instance (its first layer's path) -> its latest call so far
    for layer in model.layers:
        attrs = {k: plain(exact_value(v, subs)) if hasattr(v, "xreplace") else plain(v)
                 for k, v in layer.attrs.items()}
        how = layer.torch
        v = View(layer.path, layer.op, layer.category, [ints(s) for s in layer.in_shapes],
                 [ints(s) for s in layer.out_shapes], attrs,
                 int(exact_value(layer.cost.macs, subs)), int(exact_value(layer.cost.flops, subs)),
                 functional=how.functional, module=how.module, closes=how.closes)
        instance = how.shares or layer.path
        if instance in last_call:  # the module is called again: the earlier call is overwritten (torchstat)
            last_call[instance].reused = True
        last_call[instance] = v
        out.append(v)
    first = next(iter(model.inputs.values()))
    return out, Ctx(batch=ints(first.out_shapes[0])[0], facts=_facts(model))


def _facts(model: Any) -> list[str]:
    """What the spec says about how its torch model calls layers, for the notes of a comparison."""
    functional = sum(1 for layer in model.layers if layer.torch.functional)
    modules = sorted({layer.torch.module for layer in model.layers if layer.torch.module})
    shared = sum(1 for layer in model.layers if layer.torch.shares)
    out = []
    if functional:
        out.append(f"torch model: {functional} layer(s) called as functions (called: functional): "
                   "module hooks do not see them")
    if modules:
        out.append(f"torch model: module subclasses {', '.join(modules)} (module:): tools that match exact "
                   "types (thop, ptflops) do not count them")
    if shared:
        out.append(f"torch model: {shared} call(s) of a module already called (shares:): torchstat and flopth "
                   "keep the last call only")
    return out


def _scaled(raw: Any, k: int) -> Any:
    return tuple(r * k for r in raw) if isinstance(raw, tuple) else raw * k


def _apply(table: Any, conv: Convention, vs: list[View], counts: list[int], ctx: Ctx) -> list[Any]:
    raws = []
    for v, k in zip(vs, counts):
        rule: Rule = table[v.op]
        if k and (conv.sees_functional or not v.functional) and (v.exact_type or not conv.exact_types):
            raws.append(_scaled(rule.fn(v, ctx), k))
        else:  # not executed, or invisible to a tool that only hooks modules: zero of the right type
            raws.append(_scaled(rule.fn(v, Ctx(ctx.batch)), 0))
    return raws


def evaluate(analysis: Analysis, convention: Convention | str) -> Result:
    """Apply one convention: per-layer counts, the printed total and the tool's secondary numbers."""
    conv = get(convention) if isinstance(convention, str) else convention
    vs, ctx = views(analysis)
    counts = [row.count for row in analysis.layers]
    raws = _apply(conv.table, conv, vs, counts, ctx)
    per_layer = [conv.combine(r, v, ctx) if conv.combine else r for r, v in zip(raws, vs)]
    face = [conv.face(r, v, ctx) if conv.face else p for r, v, p in zip(raws, vs, per_layer)]
    total = conv.total(raws, ctx, vs) if conv.total else sum(per_layer)
    extra = {name: sum(_apply(table, conv, vs, counts, ctx)) for name, table in conv.extra.items()}
    by_key: dict[str, Any] = {}
    for v, value in zip(vs, per_layer):
        key = conv.table[v.op].key_of(v)
        if key is not None:
            by_key[key] = by_key.get(key, 0) + value
    error = "; ".join(f"{why} (first at layer '{where}')" for why, where in ctx.errors.items()) or None
    if error:
        total = None
        extra = {name: None for name in extra}
    notes = conv.notes(raws, ctx, vs) if conv.notes and not error else []
    return Result(conv, per_layer, face, None if total is None else int(total), error, extra, by_key, notes)


def count_layers(analysis: Analysis, convention: Convention | str) -> list[Number]:
    """The convention's count for each layer of ``analysis.layers`` (ints; ptflops may split a batch)."""
    return evaluate(analysis, convention).per_layer


def annotate(analysis: Analysis, data: dict[str, Any], convention: Convention | str) -> dict[str, Any]:
    """Add a convention's numbers to ``Analysis.to_dict()``: ``totals.count`` (the tool's own printed
    total, in its unit) and ``convention_count`` per layer."""
    result = evaluate(analysis, convention)
    conv = result.convention
    data["totals"] = {**data["totals"], "count": result.total}
    data["convention"] = {"name": conv.name, "tool": conv.tool, "version": conv.version, "source": conv.source,
                          "unit": conv.unit, "error": result.error, "also": result.extra}
    if conv.printed and result.total is not None:
        data["convention"]["printed"] = conv.printed(result.total)
    if result.by_key:
        data["convention"]["by_operator"] = result.by_key
    for row, value in zip(data["layers"], result.per_layer):
        row["convention_count"] = as_json_number(value)
    return data


__all__ = ["CONVENTIONS", "Convention", "Result", "Rule", "View", "annotate", "compare", "count_layers",
           "evaluate", "get", "views"]
