"""LLM specs (issue 11): whole-process `explorer analyze` time per bundled LLM spec, prefill and
decode, and the closed-form derivation of the symbolic model (repeat blocks stay closed forms).

Run: python benchmarks/bench_llm.py   (not part of the test run)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

SPECS = ("llama2_7b", "llama3_8b", "mistral_7b", "mixtral_8x7b")
_DERIVE = """
import time, sys
from explorer.cost import Costs
from explorer.graph import build
from explorer.spec import load_spec
t = time.perf_counter()
costs = Costs(build(load_spec(sys.argv[1])))
costs.totals
print(time.perf_counter() - t, len(costs.model.layers))
"""


def cli(spec: str, *sets: str) -> float:
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "explorer.cli", "analyze", spec, *sets], check=True, capture_output=True)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    for spec in SPECS:
        decode = cli(spec, "--set", "seq=1", "--set", "context=4096")
        prefill = cli(spec, "--set", "seq=4096", "--set", "context=4096", "--hardware", "h100_sxm")
        out = subprocess.run([sys.executable, "-c", _DERIVE, spec], capture_output=True, text=True, check=True)
        derive, layers = out.stdout.split()
        print(f"{spec:14s} analyze decode {decode:.2f} s, prefill on h100 {prefill:.2f} s (whole process, median of 3); "
              f"symbolic derivation {float(derive):.2f} s ({layers} layer representatives)")


if __name__ == "__main__":
    main()
