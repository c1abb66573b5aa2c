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


_DERIVE = """
import json, time, sys
from explorer.cost import Costs
from explorer.graph import build
from explorer.spec import load_spec
spec = load_spec("resnet50")
bind = json.loads(sys.argv[1])
t = time.perf_counter()
costs = Costs(build(spec, bind))
costs.totals
print(time.perf_counter() - t, len(costs.model.layers))
"""


def derive() -> None:
    """First derivation in a fresh process (sympy caches results, so repeats in one process lie)."""
    cases = [("resnet50, depth symbolic", "null"), ("resnet50 unrolled", '{"depth": 6, "depth2": 4}'),
             ("resnet101 unrolled", '{"depth": 23, "depth2": 4}'), ("resnet152 unrolled", '{"depth": 36, "depth2": 8}')]
    for label, bind in cases:
        runs = []
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", _DERIVE, bind], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr)
            seconds, layers = out.stdout.split()
            runs.append(float(seconds))
        print(f"derive closed forms, {label}: {min(runs):.3f} s ({layers} layers, "
              f"{min(runs) / int(layers) * 1e3:.2f} ms/layer; target < 1 s for resnet50)")


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
