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


def decode_bound() -> None:
    """Llama-2-7B, one decode step at batch 1, A100 80GB, fp16: predicted time per token (eager and
    fused), the documented formula, and the simple bound weights / bandwidth."""
    from explorer.hardware import load_device
    from explorer.hardware.predict import predict
    from explorer.spec import load_spec

    device = load_device("a100_80gb_sxm")
    values = {"batch": 1, "seq": 1, "context": 1024}
    p = predict(load_spec("llama2_7b"), values, hardware=device, dtype="fp16")
    fused = predict(load_spec("llama2_7b"), values, hardware=device, dtype="fp16", execution="fused")
    moved = p.analysis.totals["bytes_read"] + p.analysis.totals["bytes_written"]
    launches = sum(k.count for k in p.kernels if k.time_s > 0)
    formula = moved / (device.bandwidth * device.bandwidth_efficiency) + launches * device.launch_overhead
    print(f"llama2_7b decode, batch 1, context 1024, a100_80gb_sxm fp16: predicted {p.totals.latency_s * 1e3:.3f} ms "
          f"per token (eager; formula {formula * 1e3:.3f} ms = {moved:,} B / (2039 GB/s x "
          f"{device.bandwidth_efficiency}) + {launches} launches x {device.launch_overhead * 1e6:.0f} us), "
          f"{fused.totals.latency_s * 1e3:.3f} ms fused; bound weights / bandwidth "
          f"{p.totals.weight_bytes / device.bandwidth * 1e3:.3f} ms ({p.totals.weight_bytes:,} B)")


def main() -> None:
    decode_bound()
    for spec in SPECS:
        decode = cli(spec, "--set", "seq=1", "--set", "context=4096")
        prefill = cli(spec, "--set", "seq=4096", "--set", "context=4096", "--hardware", "h100_sxm")
        out = subprocess.run([sys.executable, "-c", _DERIVE, spec], capture_output=True, text=True, check=True)
        derive, layers = out.stdout.split()
        print(f"{spec:14s} analyze decode {decode:.2f} s, prefill on h100 {prefill:.2f} s (whole process, median of 3); "
              f"symbolic derivation {float(derive):.2f} s ({layers} layer representatives)")


if __name__ == "__main__":
    main()
