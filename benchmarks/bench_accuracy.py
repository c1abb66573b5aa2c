"""Prediction accuracy on this CPU (issue 8): calibrate, then predict vs measure the acceptance grid.

Run: python benchmarks/bench_accuracy.py [--profile P.yaml] [--execution eager|fused] [--repeat N]
(fused: calibrated on and measured in ONNX Runtime with every graph optimization)
(not part of the test run; about 6-10 minutes on 2 cores: ~4 min calibrating, the rest measuring).

1. ``explorer calibrate`` (microbenchmarks only) writes a profile for 1 thread, fp32, unless
   ``--profile`` names one already written by it.
2. Each configuration of the grid is measured through the torch bridge (thread CPU time, best of
   rounds) ``--repeat`` times (the best kept, the spread across repeats reported) and predicted.
3. The report: per configuration, per family and overall, MAPE, share within +-10 %, Spearman and
   Kendall, beside the MACs-only baseline (one constant fitted on these measurements), and the
   residual of each kernel class inside the models (each layer timed in context: the thread CPU time
   between consecutive layers of a real forward pass, best of several passes, against its kernel's
   prediction).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import explorer
from explorer.hardware.predict import predict
from explorer.measure import accuracy, measure

GRID: list[tuple[str, dict]] = (
    [("mobilenet_v2", {"width": w, "resolution": r}) for w in (0.35, 0.5, 0.75, 1.0, 1.4)
     for r in (96, 128, 160, 192, 224)]
    + [(m, {"resolution": r}) for m in ("resnet18", "resnet50") for r in (128, 160, 224, 288)]
    + [("mobilenet_v2", {"batch": b}) for b in (1, 4, 16)]
    + [("vgg16", {}), ("vit_b_16", {}), ("gpt2", {"seq": 64})]
)


def family(name: str, values: dict) -> str:
    if name == "mobilenet_v2":
        return "mobilenet_v2 batch" if "batch" in values else "mobilenet_v2 width x resolution"
    return name if name in ("resnet18", "resnet50") else "vgg16 / vit_b_16 / gpt2"


def in_context(spec, values, kernels, passes: int = 5) -> dict[str, float]:
    """Each layer's time inside a forward pass (thread CPU time between layers), best of passes."""
    import torch

    from explorer.torch import to_module

    bridge = to_module(spec, values)
    best: dict[str, float] = collections.defaultdict(lambda: float("inf"))
    with torch.inference_mode():
        for _ in range(passes + 1):
            marks: list[tuple[str, int]] = []
            bridge.module.run(*bridge.inputs, on_layer=lambda path, fn: marks.append((path, time.thread_time_ns())))
            marks.append(("", time.thread_time_ns()))
            for (path, a), (_, b) in zip(marks, marks[1:]):
                best[path] = min(best[path], (b - a) / 1e9)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", help="a profile written by explorer calibrate (default: calibrate now)")
    ap.add_argument("--execution", default="eager")
    ap.add_argument("--repeat", type=int, default=2, help="measurements per configuration (best kept)")
    ap.add_argument("--save", help="also write the profile here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    profile = args.profile
    if profile is None:
        import yaml

        from explorer.measure.calibrate import calibrate

        t0 = time.perf_counter()
        runtime = "torch" if args.execution == "eager" else "onnxruntime"
        cal = calibrate(threads=1, dtype="fp32", runtime=runtime)
        took = time.perf_counter() - t0
        profile = args.save or str(Path(tempfile.mkdtemp()) / "cpu.yaml")
        Path(profile).write_text(yaml.safe_dump(cal.profile(), sort_keys=False, width=120))
        print(f"calibrate: {len(cal.measured)} microbenchmarks in {took:.0f} s; fit per class:")
        for k, f in cal.fits.items():
            print(f"  {k:24s} n={f.samples:3d} outliers={f.dropped:2d} MAPE {f.mape:5.1f} %  worst {f.max_error:5.1f} %")
    print(f"profile: {profile}; execution: {args.execution} "
          f"({'PyTorch eager' if args.execution == 'eager' else 'ONNX Runtime, ORT_ENABLE_ALL'}); "
          f"torch {torch.__version__}, 1 thread, fp32\n")

    rows = []
    residual: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for name, values in GRID:
        spec = explorer.load_spec(name)
        p = predict(spec, values, hardware=profile, execution=args.execution)
        runtime = "torch" if args.execution == "eager" else "onnxruntime"
        runs = [measure(spec, values, rounds=5, runtime=runtime).total for _ in range(args.repeat)]
        best = min(r.best_s for r in runs)
        across = (max(r.best_s for r in runs) - best) / best
        rows.append((name, values, best, across, max(r.spread for r in runs), p.totals.latency_s,
                     p.analysis.totals["macs"]))
        print(f"{name:13s} {str(values):38s} measured {best * 1e3:8.2f} ms (repeats within {100 * across:4.1f} %) "
              f"predicted {p.totals.latency_s * 1e3:8.2f} ms  {100 * (p.totals.latency_s / best - 1):+6.1f} %",
              flush=True)
        if args.execution == "eager":
            ctx = in_context(spec, values, p.kernels)
            for k in p.kernels:
                r = residual[k.klass]
                r[0] += ctx[k.layers[0]]
                r[1] += k.time_s
                r[2] += 1

    measured = [r[2] for r in rows]
    c = accuracy.macs_constant([r[6] for r in rows], measured)

    def line(label: str, idx: list[int]) -> None:
        m = [measured[i] for i in idx]
        s = accuracy.scores([rows[i][5] for i in idx], m)
        cb = accuracy.macs_constant([rows[i][6] for i in idx], m)
        b = accuracy.scores([cb * rows[i][6] for i in idx], m)
        print(f"{label:34s} n={len(idx):2d}  model: MAPE {s.mape:5.1f} %, within10 {100 * s.within_10:3.0f} %, "
              f"rho {s.spearman:.3f}, tau {s.kendall:.3f} | MACs-only: MAPE {b.mape:5.1f} %, within10 "
              f"{100 * b.within_10:3.0f} %, rho {b.spearman:.3f}, tau {b.kendall:.3f}")

    print()
    fams = collections.OrderedDict()
    for i, r in enumerate(rows):
        fams.setdefault(family(r[0], r[1]), []).append(i)
    for f, idx in fams.items():
        line(f, idx)
    line("ALL (one baseline constant per row set)", list(range(len(rows))))
    print(f"\nbaseline constant over all rows: {c * 1e9:.4g} ns per MAC")
    print(f"measurement: best of 5 rounds x {args.repeat} repeats; median spread of rounds "
          f"{100 * statistics.median(r[4] for r in rows):.1f} %, worst repeat disagreement "
          f"{100 * max(r[3] for r in rows):.1f} %")
    if residual:
        print("\nper kernel class inside the models (sum over all configurations):")
        for k, (ctx, pred, n) in sorted(residual.items(), key=lambda kv: -kv[1][0]):
            print(f"  {k:24s} kernels {n:5d}  in context {ctx * 1e3:9.1f} ms  predicted {pred * 1e3:9.1f} ms  "
                  f"{100 * (pred / ctx - 1):+6.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
