"""``explorer import``: PyTorch (torch.export) and ONNX models written as specs (docs/import.md).

:func:`import_model` returns an :class:`Imported` (the spec text, the graph, the placeholders);
nothing is written here (``explorer/commands/import_.py`` writes the file). torch and onnx are
imported only by the front end that needs them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from explorer.errors import ExplorerError
from explorer.importers.fold import Folded, fold
from explorer.importers.ir import Graph, Unknown
from explorer.importers.writer import render

DYNAMIC = ("batch", "resolution")
__all__ = ["DYNAMIC", "Imported", "UnsupportedOperators", "import_model"]


@dataclass(frozen=True)
class Imported:
    """An imported model: the spec text and what the importer noticed."""

    text: str
    graph: Graph
    placeholders: list[Unknown] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    blocks: int = 0
    layers: int = 0


def import_model(source: str, *, inputs: Sequence[tuple[str, tuple[int, ...]]] = (),
                 dynamic: Sequence[str] = DYNAMIC, kwargs: str | None = None,
                 allow_unknown: bool = False) -> Imported:
    """Import ``package.module:factory`` (torch) or a ``.onnx`` file as a spec."""
    wanted = set(dynamic)
    bad = wanted - set(DYNAMIC)
    if bad:
        raise ExplorerError(f"--dynamic: unknown dimension(s) {sorted(bad)}; choose from {list(DYNAMIC)}")
    if source.lower().endswith(".onnx"):
        from explorer.importers.onnx import import_onnx

        if kwargs:
            raise ExplorerError("--kwargs: an .onnx file takes no factory arguments")
        graph = import_onnx(source, inputs, wanted)
    else:
        from explorer.importers.torch import InputSpec, import_torch, load_factory

        model = load_factory(source, kwargs)
        specs = [InputSpec(n, s) for n, s in inputs] or [InputSpec("x", (1, 3, 224, 224))]
        graph = import_torch(_source_text(source, kwargs), model, specs, wanted)
    if graph.placeholders and not allow_unknown:
        raise UnsupportedOperators(source, [u.line for u in graph.placeholders])
    folded = fold(graph.nodes, graph.outputs)
    graph.outputs = folded.outputs
    text = render(graph, folded, _description(graph))
    if graph.fixed_inputs and not _scales(text, graph):
        text = _fixed(graph, folded)
    return Imported(text, graph, list(graph.placeholders), list(graph.notes), len(folded.blocks), len(folded.layers))


class UnsupportedOperators(ExplorerError):
    """Operators explorer cannot map: one line per operator kind (name, count, where)."""

    def __init__(self, source: str, lines: list[str]) -> None:
        hint = "; or write them as zero-cost placeholders with --allow-unknown"
        super().__init__(f"\n{source}: ".join([*lines[:-1], lines[-1] + hint]), path=source)
        self.lines = lines


def _scales(text: str, graph: Graph) -> bool:
    """Whether a spec traced at fixed sizes still builds at other ones (twice the resolution, one more
    image), i.e. every layer follows its input's size."""
    from explorer.analysis import analyze
    from explorer.spec import loads_spec

    values = {v.name: (2 * v.default if v.name == "resolution" else v.default + 1) for v in graph.variables}
    try:
        analyze(loads_spec(text), values)
    except ExplorerError:
        return False
    return True


def _fixed(graph: Graph, folded: Folded) -> str:
    """The spec at the traced sizes, without the variables the layers do not follow."""
    fixed = {d for shape in graph.fixed_inputs.values() for d in shape if isinstance(d, str)}
    written = {d for shape in graph.inputs.values() for d in shape if isinstance(d, str)}
    graph.inputs.update(graph.fixed_inputs)
    unused = written - {d for shape in graph.inputs.values() for d in shape if isinstance(d, str)} - fixed
    body = render(graph, folded, "")
    dropped = {name for name in unused if not re.search(rf"\b{name}\b", body.split("\ninputs:", 1)[1])}
    graph.variables = [v for v in graph.variables if v.name not in dropped]
    graph.notes = [n for n in graph.notes if not n.startswith("The model fixes")]
    graph.notes.append(f"The layers do not follow other input sizes: the spec keeps the traced sizes "
                       f"(no {', '.join(sorted(dropped))} variable).")
    return render(graph, folded, _description(graph))


def _source_text(source: str, kwargs: str | None) -> str:
    return f"{source} {kwargs}" if kwargs else source


def _description(graph: Graph) -> str:
    lines = [f"Imported by 'explorer import' from {graph.source}."]
    lines += graph.notes
    if graph.placeholders:
        lines.append("Zero-cost placeholders (op: opaque) for operators explorer does not model; their "
                     "costs are NOT counted:")
        lines += [f"- {u.line}" for u in graph.placeholders]
    return "\n".join(lines)
