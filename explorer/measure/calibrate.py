"""``explorer calibrate``: measure every kernel class on this machine and fit a hardware profile.

1. Each microbenchmark (:mod:`explorer.measure.microbench`) is a one-layer spec: its exact FLOPs,
   bytes and size key come from the cost engine, its kernel class from the execution model.
2. It runs through the torch bridge and is timed robustly (:func:`explorer.measure.timing.time_callable`:
   warm-up, rounds of many calls, the best round; thread CPU time on a CPU at one thread, so that
   other processes on a shared machine do not count).
3. Each class's law is fitted on its samples (:mod:`explorer.measure.fit`), outliers rejected once.
4. The profile is written with the source of every figure (device, torch version, date, method) and
   each class's fit residual.

The end-to-end models that ``explorer accuracy`` judges are never timed here.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from explorer.errors import ExplorerError
from explorer.measure.fit import Fit, Sample, fit_class, knots
from explorer.hardware.kernels import KERNEL_CLASSES
from explorer.measure.chains import networks
from explorer.measure.microbench import Bench, benches, spec_data

# knots per octave of each class's compute curve (1 flat curve when 0): where measurements show a
# size-dependent efficiency (depthwise convs fall off a cliff past a plane size in oneDNN)
COMPUTE_KNOTS = {"conv_depthwise": 2.0, "conv_depthwise_strided": 1.0, "conv_dense": 0.5, "conv_pointwise": 0.5,
                 "conv_stem": 0.5, "matmul": 0.5, "attention": 0.5}
BYTES_PER_OCTAVE = 0.5
ROTATE_BYTES = 64e6  # copies of a kernel's data cycled per timing: past a CPU's last-level cache
NETWORKS = 36  # random networks timed layer by layer (eager calibration)
MIN_IN_CONTEXT = 12  # a class with fewer samples from the networks is also measured alone


@dataclass
class Measured:
    bench: Bench
    sample: Sample
    spread: float


@dataclass
class Calibration:
    device_name: str
    device_kind: str
    torch_version: str
    dtype: str
    threads: int
    clock: str
    date: str
    rounds: int
    fits: dict[str, Fit]
    measured: list[Measured] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (bench label, reason)
    peak_flops: float = 0.0
    bandwidth: float = 0.0
    capacity: float = 0.0
    runtime: str = "torch"

    @property
    def source(self) -> str:
        what = "torch" if self.runtime == "torch" else f"onnxruntime {_ort_version()} (exported by torch"
        return (f"measured by explorer calibrate on {self.device_name}, {what} {self.torch_version}"
                f"{')' if self.runtime != 'torch' else ''}, {self.date}: "
                f"{len(self.measured)} microbenchmarks at {self.dtype}, {self.threads} thread(s), {self.clock}, "
                f"best of {self.rounds} rounds")

    def profile(self, name: str | None = None) -> dict[str, Any]:
        """The hardware profile document (see docs/hardware.md)."""
        default = max(self.fits, key=lambda k: self.fits[k].samples)
        return {
            "name": name or f"{self.device_name} (measured, {self.dtype}, {self.threads} thread(s))",
            "kind": self.device_kind,
            "description": f"Measured by explorer calibrate on {self.date}. Every figure below comes from "
                           f"microbenchmarks on this machine; none from a datasheet.",
            "peak": {self.dtype: {"value": f"{self.peak_flops / 1e9:.4g} GFLOP/s",
                                  "source": f"{self.source}; best attained by any microbenchmark"}},
            "memory": {"bandwidth": {"value": f"{self.bandwidth / 1e9:.4g} GB/s",
                                     "source": f"{self.source}; best attained by an elementwise or copy kernel "
                                               f"moving at least 32 MB (DRAM, past the caches)"},
                       "capacity": {"value": f"{self.capacity / 1e9:.4g} GB",
                                    "source": "total memory reported by the system (/proc/meminfo MemTotal or "
                                              "the CUDA device)"}},
            "execution": {"mode": "eager" if self.runtime == "torch" else "fused"},
            "measured": {"source": self.source, "dtype": self.dtype, "combine": "sum", "threads": self.threads,
                         "default": default,
                         "classes": {k: _class_doc(f) for k, f in self.fits.items()}},
        }


def _ort_version() -> str:
    try:
        import onnxruntime

        return str(onnxruntime.__version__)
    except ImportError:
        return "?"


def _class_doc(f: Fit) -> dict[str, Any]:
    t = f.timing
    doc: dict[str, Any] = {"overhead": f"{t.overhead_s * 1e6:.4g} us"}
    if t.per_flop is not None:
        doc["compute"] = {"unit": "GFLOP/s", "at": [round(a, 1) for a in t.per_flop.at],
                          "rate": [None if s == 0 else float(f"{1 / s / 1e9:.5g}") for s in t.per_flop.seconds]}
    if t.per_byte is not None:
        doc["bandwidth"] = {"unit": "GB/s", "at": [round(a, 1) for a in t.per_byte.at],
                            "rate": [None if s == 0 else float(f"{1 / s / 1e9:.5g}") for s in t.per_byte.seconds]}
    doc["fit"] = (f"{f.samples} microbenchmarks ({f.dropped} rejected as outliers): MAPE {f.mape:.1f} %, "
                  f"max {f.max_error:.1f} %{f.note}")
    return doc


def device_description(device: str) -> tuple[str, str]:
    """(name, kind) of the CPU or GPU being measured."""
    import os

    from explorer.measure import device_name

    if device.startswith("cuda"):
        return device_name(device), "gpu"
    return f"{device_name(device)} ({os.cpu_count()} logical cores)", "cpu"


def _capacity(device: str) -> float:
    if device == "cuda":
        import torch

        return float(torch.cuda.get_device_properties(0).total_memory)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def measure_bench(b: Bench, *, device: str, dtype: str, rounds: int, min_time_s: float,
                  runtime: str = "torch", threads: int = 1) -> Measured:
    """Build the one-kernel spec, derive its kernel metrics exactly, run and time it."""
    import yaml

    from explorer.analysis import analyze
    from explorer.cost import Precision, exact, substitution
    from explorer.hardware.kernels import kernel_metrics, plan
    from explorer.measure.timing import time_callable
    from explorer.spec import loads_spec
    from explorer.torch import to_module

    spec = loads_spec(yaml.safe_dump(spec_data(b), sort_keys=False), path=f"<microbenchmark {b.label}>")
    result = analyze(spec, {}, Precision(dtype))
    subs = substitution(result.model, result.values)
    mode = "eager" if runtime == "torch" else "fused"
    kernels = kernel_metrics(result.costs, plan(result.model, mode))
    if len(kernels) != 1 or kernels[0].kernel.klass != b.klass:
        raise ExplorerError(f"microbenchmark {b.label} runs as {[k.kernel.name for k in kernels]}, not one {b.klass}")
    km = kernels[0]
    bridge = to_module(spec, {}, dtype=dtype, device=device)
    import torch

    with torch.inference_mode():
        moved = float(exact(km.bytes, subs))
        call = rotating(bridge, moved) if runtime == "torch" else rotating_ort(bridge, moved, threads)
        timing = time_callable(call, device=device, rounds=rounds, min_time_s=min_time_s)
    sample = Sample(float(exact(km.flops, subs)), float(exact(km.bytes, subs)), float(exact(km.key, subs)),
                    timing.best_s, b.label)
    return Measured(b, sample, timing.spread)


def rotating(bridge: Any, moved: float, target: float = ROTATE_BYTES, most: int = 64) -> Callable[[], None]:
    """A call that cycles through copies of the kernel (weights, inputs) and keeps a ring of their
    outputs alive, so each call finds its data where a model would: written by an earlier kernel
    and mostly evicted from the caches, into freshly allocated outputs, not hot from the call before."""
    import copy

    import torch

    held = sum(t.numel() * t.element_size() for t in (*bridge.module.parameters(), *bridge.module.buffers(),
                                                       *bridge.inputs))
    n = max(1, min(most, int(target // max(moved, held, 1.0)) + 1))
    copies = [(bridge.module, bridge.inputs)]
    for _ in range(n - 1):
        copies.append((copy.deepcopy(bridge.module), tuple(x.clone() for x in bridge.inputs)))
    ring: list[Any] = [None] * n
    state = [0]

    def call() -> None:
        i = state[0]
        state[0] = (i + 1) % n
        module, inputs = copies[i]
        ring[i] = module(*inputs)

    del torch
    return call


def rotating_ort(bridge: Any, moved: float, threads: int, target: float = ROTATE_BYTES,
                 most: int = 64) -> Callable[[], None]:
    """ONNX Runtime's kernel cycling through copies of its inputs (its weights live in the session),
    outputs kept in a ring (see :func:`rotating`)."""
    from explorer.measure.runtime import feeds, ort_session

    session = ort_session(bridge, threads)
    held = sum(t.numel() * t.element_size() for t in bridge.inputs)
    n = max(1, min(most, int(target // max(moved, held, 1.0)) + 1))
    copies = [feeds(session, tuple(x.clone() for x in bridge.inputs)) for _ in range(n)]
    ring: list[Any] = [None] * n
    state = [0]

    def call() -> None:
        i = state[0]
        state[0] = (i + 1) % n
        ring[i] = session.run(None, copies[i])

    return call


def measure_network(doc: dict[str, Any], *, device: str, dtype: str, rounds: int) -> list[Measured]:
    """A random network timed layer by layer inside whole passes: one sample per layer."""
    import yaml

    from explorer.analysis import analyze
    from explorer.cost import Precision, exact, substitution
    from explorer.hardware.kernels import kernel_metrics, plan
    from explorer.measure.layers import time_inline
    from explorer.measure.microbench import Bench
    from explorer.spec import loads_spec
    from explorer.torch import to_module

    import torch

    spec = loads_spec(yaml.safe_dump(doc, sort_keys=False), path=f"<random {doc['name']}>")
    result = analyze(spec, {}, Precision(dtype))
    subs = substitution(result.model, result.values)
    bridge = to_module(spec, {}, dtype=dtype, device=device)
    with torch.inference_mode():
        rows = {r.path: r.timing for r in time_inline(bridge, device=device, rounds=rounds, warmup=2)}
    out = []
    for km in kernel_metrics(result.costs, plan(result.model, "eager")):
        layer = km.kernel.anchor
        t = rows[layer.path]
        sample = Sample(float(exact(km.flops, subs)), float(exact(km.bytes, subs)), float(exact(km.key, subs)),
                        t.best_s, f"{doc['name']}:{layer.path}")
        out.append(Measured(Bench(km.kernel.klass, sample.label, {}, {}), sample, t.spread))
    return out


def measure_network_ort(doc: dict[str, Any], *, dtype: str, threads: int, rounds: int) -> list[Measured]:
    """A random network run whole in ONNX Runtime with its profiler on: each node's time (best of
    the runs) goes to the fused kernel of the layer the node is named after (``/l12/Conv...``); a
    layout reorder, named after no layer, goes to the kernel it feeds (ReorderInput) or follows."""
    import json
    import os
    import re
    import tempfile

    import yaml

    from explorer.analysis import analyze
    from explorer.cost import Precision, exact, substitution
    from explorer.hardware.kernels import kernel_metrics, plan
    from explorer.measure.microbench import Bench
    from explorer.measure.runtime import feeds, ort_session
    from explorer.spec import loads_spec
    from explorer.torch import to_module

    spec = loads_spec(yaml.safe_dump(doc, sort_keys=False), path=f"<random {doc['name']}>")
    result = analyze(spec, {}, Precision(dtype))
    subs = substitution(result.model, result.values)
    kernels = kernel_metrics(result.costs, plan(result.model, "fused"))
    owner = {layer.path: i for i, km in enumerate(kernels) for layer in km.kernel.layers}
    bridge = to_module(spec, {}, dtype=dtype)
    from explorer.measure.timing import time_callable

    plain = ort_session(bridge, threads)
    plain_feeds = feeds(plain, bridge.inputs)
    whole = time_callable(lambda: plain.run(None, plain_feeds), rounds=rounds, min_time_s=0.02).best_s
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(bridge, threads, profile=os.path.join(tmp, "ort"))
        data = feeds(session, bridge.inputs)
        for _ in range(2 + rounds):
            session.run(None, data)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    best: dict[str, float] = {}
    order: list[str] = []
    runs = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    for e in runs:
        name = e["name"]
        if name not in best:
            order.append(name)
            best[name] = float("inf")
        best[name] = min(best[name], float(e["dur"]) * 1e-6)
    # the profiler's own cost per node: what the profiled nodes add up to beyond an unprofiled run
    extra = max(0.0, (sum(best.values()) - whole) / max(len(best), 1))
    best = {k: max(v - extra, 0.1 * v) for k, v in best.items()}
    times = [0.0] * len(kernels)
    pending = 0.0
    last: int | None = None
    for name in order:
        m = re.search(r"/(l\d+)/", name)
        k = owner.get(m.group(1)) if m else None
        if k is None:
            if name.startswith("ReorderInput") or last is None:
                pending += best[name]
            else:
                times[last] += best[name]
            continue
        times[k] += best[name] + pending
        pending, last = 0.0, k
    out = []
    for km, t in zip(kernels, times):
        if t <= 0:
            continue
        sample = Sample(float(exact(km.flops, subs)), float(exact(km.bytes, subs)), float(exact(km.key, subs)), t,
                        f"{doc['name']}:{km.kernel.name}")
        out.append(Measured(Bench(km.kernel.klass, sample.label, {}, {}), sample, 0.0))
    return out


def calibrate(*, device: str = "cpu", threads: int = 1, dtype: str = "fp32", classes: Sequence[str] | None = None,
              scale: float = 1.0, rounds: int = 5, min_time_s: float = 0.01, seed: int = 0,
              runtime: str = "torch", progress: Callable[[int, int, str], None] | None = None) -> Calibration:
    """Run the microbenchmarks and fit every class (see the module docstring). ``runtime``
    "onnxruntime" calibrates the fused mode: anchors with their epilogues, run by ONNX Runtime."""
    from explorer.measure.runtime import check_runtime

    torch = _torch(device)
    check_runtime(runtime, device)
    if threads < 1:
        raise ExplorerError(f"threads must be at least 1, got {threads}")
    if device == "cpu":
        torch.set_num_threads(threads)
    name, kind = device_description(device)
    measured: list[Measured] = []
    failed: list[tuple[str, str]] = []
    wanted = list(classes) if classes else None
    nets = networks(max(3, round(NETWORKS * scale)), seed)
    for i, doc in enumerate(nets):
        if progress:
            progress(i, len(nets), f"random network {i + 1}/{len(nets)}")
        rows = (measure_network(doc, device=device, dtype=dtype, rounds=rounds) if runtime == "torch" else
                measure_network_ort(doc, dtype=dtype, threads=threads, rounds=rounds))
        measured += [m for m in rows if wanted is None or m.bench.klass in wanted]
    counts: dict[str, int] = {}
    for m in measured:
        counts[m.bench.klass] = counts.get(m.bench.klass, 0) + 1
    # classes the networks leave thin are measured alone (rotating their data past the caches)
    thin = [k for k in (wanted or KERNEL_CLASSES) if counts.get(k, 0) < MIN_IN_CONTEXT * min(scale, 1.0)
            and not (runtime != "torch" and k == "view")]
    grid = list(benches(thin, scale=scale, seed=seed, fused=runtime != "torch")) if thin else []
    for i, b in enumerate(grid):
        if progress:
            progress(len(nets) + i, len(nets) + len(grid), b.label)
        try:
            measured.append(measure_bench(b, device=device, dtype=dtype, rounds=rounds, min_time_s=min_time_s,
                                          runtime=runtime, threads=threads))
        except (ExplorerError, RuntimeError) as exc:  # a shape the backend rejects: recorded, not fatal
            failed.append((b.label, str(exc).splitlines()[0][:200]))
    if progress:
        progress(len(nets) + len(grid), len(nets) + len(grid), "fitting")
    fits = fit_all(measured)
    if not fits:
        raise ExplorerError("calibration measured nothing: every microbenchmark failed "
                            f"(first: {failed[0][1] if failed else 'none ran'})")
    clock = "thread CPU time" if device == "cpu" and threads == 1 else ("CUDA events" if device == "cuda" else
                                                                        "wall time")
    cal = Calibration(name, kind, torch.__version__, dtype, threads, clock,
                      datetime.date.today().isoformat(), rounds, fits, measured, failed, runtime=runtime)
    cal.peak_flops = max((m.sample.flops / m.sample.seconds for m in measured), default=0.0)
    streams = [m.sample for m in measured if m.bench.klass in ("elementwise", "data")]
    large = [s for s in streams if s.bytes >= 32e6] or streams  # past the caches, when measured
    cal.bandwidth = max((s.bytes / s.seconds for s in large), default=0.0)
    cal.capacity = _capacity(device)
    return cal


def fit_all(measured: list[Measured]) -> dict[str, Fit]:
    by_class: dict[str, list[Sample]] = {}
    for m in measured:
        by_class.setdefault(m.bench.klass, []).append(m.sample)
    fits: dict[str, Fit] = {}
    for klass, samples in by_class.items():
        if len(samples) < 3:
            continue
        per_octave = COMPUTE_KNOTS.get(klass, 0.0)
        compute_at = knots([s.key for s in samples], per_octave) if per_octave else (1.0,)
        bytes_at = knots([s.bytes for s in samples], BYTES_PER_OCTAVE)
        fits[klass] = fit_class(samples, compute_at, bytes_at)
    return fits


def _torch(device: str) -> Any:
    from explorer.measure import check_device
    from explorer.torch import require_torch

    torch = require_torch()
    check_device(device)
    return torch
