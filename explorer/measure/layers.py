"""Per-layer timing of a bridged module, two ways (docs/torch-bridge.md#per-layer-timing).

* ``isolated``: during one run of the graph, each layer's call is timed on its real inputs with
  :func:`time_callable` (warm-up, rounds of repeated calls). Repeating one layer keeps its inputs
  and weights in cache, so the rows add up to less than the end-to-end time.
* ``inline``: whole runs of the graph, a timestamp before each layer and one at the end; a layer's
  time is the gap to the next timestamp (its call plus the graph's bookkeeping). The rows add up
  to the run's time, with the cache state of a real run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from explorer.measure.timing import Round, Timing, default_clock, summarize

MODES = ("isolated", "inline")


@dataclass(frozen=True)
class LayerTiming:
    path: str
    op: str
    category: str
    timing: Timing


def time_isolated(bridge: Any, timer: Callable[[Callable[[], Any]], Timing]) -> list[LayerTiming]:
    """Each layer timed alone on its real inputs, in execution order, during one run."""
    ops = {layer.path: layer for layer in bridge.model.layers}
    rows: list[LayerTiming] = []

    def on_layer(path: str, fn: Any) -> None:
        rows.append(LayerTiming(path, ops[path].op, ops[path].category, timer(fn)))

    bridge.module.run(*bridge.inputs, on_layer=on_layer)
    return rows


def time_inline(bridge: Any, *, device: str = "cpu", rounds: int = 7, warmup: int = 3,
                clock: str | None = None) -> list[LayerTiming]:
    """Whole runs with a timestamp before every layer: per-layer times in the context of a real run."""
    clock = clock or default_clock(device)
    marks = _CudaMarks() if clock == "cuda_event" else _CpuMarks()
    for _ in range(warmup):
        bridge.module(*bridge.inputs)
    per_round = [_one_run(bridge, marks) for _ in range(rounds)]
    rows = []
    for i, layer in enumerate(bridge.model.layers):
        timing = summarize([samples[i] for samples in per_round], 1, clock)
        rows.append(LayerTiming(layer.path, layer.op, layer.category, timing))
    return rows


def _one_run(bridge: Any, marks: Any) -> list[Round]:
    marks.reset()
    bridge.module.run(*bridge.inputs, on_layer=lambda path, fn: marks.mark())
    marks.mark()
    gaps: list[Round] = marks.gaps()
    return gaps


class _CpuMarks:
    """Wall and thread CPU timestamps; gaps in seconds."""

    def reset(self) -> None:
        self.stamps: list[tuple[int, int]] = []

    def mark(self) -> None:
        self.stamps.append((time.perf_counter_ns(), time.thread_time_ns()))

    def gaps(self) -> list[Round]:
        pairs = zip(self.stamps, self.stamps[1:])
        return [((w1 - w0) * 1e-9, (c1 - c0) * 1e-9, None) for (w0, c0), (w1, c1) in pairs]


class _CudaMarks:
    """A CUDA event per mark (and the wall clock at launch); gaps after one synchronize."""

    def reset(self) -> None:
        import torch

        torch.cuda.synchronize()
        self.events: list[Any] = []
        self.walls: list[int] = []

    def mark(self) -> None:
        import torch

        event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        event.record()
        self.events.append(event)
        self.walls.append(time.perf_counter_ns())

    def gaps(self) -> list[Round]:
        self.events[-1].synchronize()
        self.walls[-1] = time.perf_counter_ns()  # the last mark waits for the GPU
        return [((w1 - w0) * 1e-9, None, e0.elapsed_time(e1) * 1e-3)
                for (w0, e0), (w1, e1) in zip(zip(self.walls, self.events), zip(self.walls[1:], self.events[1:]))]
