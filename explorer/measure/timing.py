"""Robust timing of a callable on a shared, noisy machine.

Method (docs/torch-bridge.md#timing): ``warmup`` calls, then ``rounds`` rounds of ``number``
back-to-back calls each (``number`` chosen so that a round lasts at least ``min_time_s``); the
per-call time of a round is its elapsed time / ``number``. The estimate is the best round (the
least disturbed by other processes), the median and spread are reported beside it. On CPU each
round is clocked both by wall time and by the calling thread's CPU time, which excludes the time
the thread was descheduled: the default estimate when the work runs on the calling thread
(PyTorch with one thread). On CUDA, CUDA events around each round, after a synchronize.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

CLOCKS = ("thread_cpu", "wall", "cuda_event")
MAX_NUMBER = 1_000_000
Round = tuple[float, float | None, float | None]  # seconds per call: wall, thread CPU, CUDA event


@dataclass(frozen=True)
class Timing:
    """Seconds per call. ``best_s``, ``median_s``, ``spread`` and ``samples_s`` use ``clock``."""

    best_s: float  # min over rounds of the per-call time: the estimate
    median_s: float
    spread: float  # (p75 - p25) / median of the per-round per-call times (0 with one round)
    rounds: int
    number: int  # calls per round
    clock: str  # "thread_cpu" | "wall" | "cuda_event"
    samples_s: tuple[float, ...]  # per-call time of each round
    wall_best_s: float  # on CUDA: launch to synchronize, per call
    wall_median_s: float
    cpu_best_s: float | None = None  # thread CPU time (CPU only)
    cpu_median_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples_s"] = list(self.samples_s)
        return out


def time_callable(fn: Callable[[], Any], *, device: str = "cpu", warmup: int = 3, rounds: int = 7,
                  number: int | None = None, min_time_s: float = 0.02, clock: str | None = None) -> Timing:
    """Time ``fn()``: see the module docstring. ``clock=None`` picks thread_cpu on CPU when torch
    runs one thread (or is not in use), wall with more threads, cuda_event on a CUDA device."""
    clock = clock or default_clock(device)
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    if rounds < 1 or warmup < 0 or (number is not None and number < 1):
        raise ValueError(f"rounds >= 1, warmup >= 0 and number >= 1 must hold, got ({rounds}, {warmup}, {number})")
    cuda = clock == "cuda_event"
    sync = _synchronize if cuda else _nothing
    for _ in range(warmup):
        fn()
    sync()
    enabled = gc.isenabled()
    gc.disable()
    try:
        n = number or autorange(fn, min_time_s, sync)
        samples = [(_cuda_round if cuda else _cpu_round)(fn, n) for _ in range(rounds)]
    finally:
        if enabled:
            gc.enable()
    return summarize(samples, n, clock)


def default_clock(device: str) -> str:
    if device.startswith("cuda"):
        return "cuda_event"
    torch = sys.modules.get("torch")
    return "thread_cpu" if torch is None or torch.get_num_threads() == 1 else "wall"


def autorange(fn: Callable[[], Any], min_time_s: float, sync: Callable[[], None] = lambda: None) -> int:
    """Calls per round so that a round lasts at least ``min_time_s`` (wall), growing from 1."""
    n = 1
    while n < MAX_NUMBER:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time_s:
            return n
        grow = math.ceil(n * 1.2 * min_time_s / elapsed) if elapsed > 0 else 100 * n
        n = min(MAX_NUMBER, max(2 * n, min(grow, 100 * n)))
    return MAX_NUMBER


def _cpu_round(fn: Callable[[], Any], n: int) -> Round:
    """Wall and thread CPU seconds per call over ``n`` back-to-back calls."""
    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
    for _ in range(n):
        fn()
    w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
    return (w1 - w0) * 1e-9 / n, (c1 - c0) * 1e-9 / n, None


def _cuda_round(fn: Callable[[], Any], n: int) -> Round:
    """Wall (launch to synchronize) and CUDA event seconds per call over ``n`` calls."""
    import torch

    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    torch.cuda.synchronize()
    w0 = time.perf_counter_ns()
    start.record()
    for _ in range(n):
        fn()
    end.record()
    end.synchronize()
    wall = (time.perf_counter_ns() - w0) * 1e-9 / n
    return wall, None, start.elapsed_time(end) * 1e-3 / n


def summarize(samples: list[Round], n: int, clock: str) -> Timing:
    """A Timing from per-round (wall, thread CPU, CUDA event) seconds per call."""
    wall = [s[0] for s in samples]
    cpu = [s[1] for s in samples if s[1] is not None]
    events = [s[2] for s in samples if s[2] is not None]
    chosen = {"wall": wall, "thread_cpu": cpu, "cuda_event": events}[clock]
    return Timing(min(chosen), statistics.median(chosen), spread(chosen), len(samples), n, clock,
                  tuple(chosen), min(wall), statistics.median(wall),
                  min(cpu) if cpu else None, statistics.median(cpu) if cpu else None)


def spread(values: list[float]) -> float:
    """Interquartile range over the median (inclusive quartiles); 0 for fewer than 2 values."""
    med = statistics.median(values)
    if len(values) < 2 or med <= 0:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / med


def _synchronize() -> None:
    import torch

    torch.cuda.synchronize()


def _nothing() -> None:
    return None
