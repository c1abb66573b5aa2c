"""Engine speed (issue 2): cold CLI start, deriving closed forms, vectorized evaluation.

Run: python benchmarks/bench_engine.py   (not part of the test run)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np

import explorer
from explorer.cost import Costs
from explorer.graph import build


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cold_cli() -> None:
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "explorer.cli", "analyze", "resnet50"], check=True,
                       capture_output=True)
        runs.append(time.perf_counter() - t)
    print(f"explorer analyze resnet50, whole process: median {statistics.median(runs):.3f} s, "
          f"min {min(runs):.3f} s (target < 1.5 s)")


def derive() -> None:
    spec = explorer.load_spec("resnet50")

    def closed_forms(bind=None):
        costs = Costs(build(spec, bind))
        return costs.totals

    t50 = best(lambda: closed_forms())
    t50u = best(lambda: closed_forms({"depth": 6, "depth2": 4}))
    t101 = best(lambda: closed_forms({"depth": 23, "depth2": 4}))
    t152 = best(lambda: closed_forms({"depth": 36, "depth2": 8}))
    n = {k: len(build(spec, b).layers) for k, b in
         (("50", {"depth": 6, "depth2": 4}), ("101", {"depth": 23, "depth2": 4}), ("152", {"depth": 36, "depth2": 8}))}
    print(f"derive resnet50 closed forms (depth symbolic): {t50:.3f} s (target < 1 s)")
    print(f"derive unrolled: resnet50 {t50u:.3f} s ({n['50']} layers), resnet101 {t101:.3f} s ({n['101']}), "
          f"resnet152 {t152:.3f} s ({n['152']}): {t152 / n['152'] * 1000:.2f} ms/layer vs "
          f"{t50u / n['50'] * 1000:.2f} ms/layer")


def vectorized() -> None:
    spec = explorer.load_spec("resnet50")
    costs = explorer.symbolic_costs(spec)
    t = time.perf_counter()
    compiled = costs.compile()
    compile_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    n = 1_000_000
    values = {
        "batch": rng.integers(1, 257, n), "resolution": rng.choice(spec.variables["resolution"].values(), n),
        "width": rng.choice(spec.variables["width"].values(), n), "depth": rng.integers(1, 37, n),
        "depth2": rng.integers(1, 9, n), "classes": np.full(n, 1000),
    }
    compiled(**values)
    elapsed = best(lambda: compiled(**values), 3)
    print(f"compile resnet50 totals (5 metrics, lambdify+cse): {compile_s:.3f} s")
    print(f"vectorized evaluation: {n / elapsed / 1e6:.2f} M configurations/s "
          f"({elapsed * 1e3:.0f} ms for {n:,}, all 5 metrics; target >= 1 M/s)")


if __name__ == "__main__":
    cold_cli()
    derive()
    vectorized()
