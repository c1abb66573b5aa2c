"""Timing harness (issue 8): overhead of time_callable, repeatability on small torch kernels,
and the per-layer rows of `explorer measure` against the end-to-end time.

Run: python benchmarks/bench_timing.py   (not part of the test run; torch needed)
"""

from __future__ import annotations

import statistics

import torch

import explorer
from explorer.measure import measure
from explorer.measure.timing import time_callable


def noop() -> None:
    return None


def overhead() -> None:
    t = time_callable(noop, rounds=7, min_time_s=0.02)
    print(f"empty callable: {t.best_s * 1e9:.0f} ns per call ({t.number} calls/round, clock {t.clock})")


def kernels() -> None:
    """Five independent timings of each kernel: how far apart are their best-of-rounds estimates?"""
    cases = {
        "relu 64x56x56 (~10 us)": (torch.nn.functional.relu, torch.randn(1, 64, 56, 56)),
        "add 16x16x16": (lambda x: x + x, torch.randn(16, 16, 16)),
        "conv 3x3 64->64 @28": (torch.nn.Conv2d(64, 64, 3, padding=1), torch.randn(1, 64, 28, 28)),
    }
    with torch.inference_mode():
        for name, (fn, x) in cases.items():
            runs = [time_callable(lambda fn=fn, x=x: fn(x), rounds=5, min_time_s=0.01) for _ in range(5)]
            best = [r.best_s for r in runs]
            wall = [r.wall_best_s for r in runs]
            print(f"{name:26s} best {min(best) * 1e6:8.2f} us  range of 5 runs {100 * (max(best) / min(best) - 1):5.1f} %"
                  f"  (wall: {min(wall) * 1e6:8.2f} us, range {100 * (max(wall) / min(wall) - 1):5.1f} %)"
                  f"  median spread {100 * statistics.median(r.spread for r in runs):.1f} %")


def layers_vs_total() -> None:
    for name, values in (("resnet18", {"resolution": 128}), ("mobilenet_v2", {"resolution": 160})):
        m = measure(explorer.load_spec(name), values, per_layer=True, rounds=5, min_time_s=0.02)
        print(f"{name} {values}: total {m.total.best_s * 1e3:.2f} ms, sum of {len(m.layers)} layer rows "
              f"{m.layers_sum_s * 1e3:.2f} ms ({100 * (m.layers_sum_s / m.total.best_s - 1):+.1f} %)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread")
    overhead()
    kernels()
    layers_vs_total()
