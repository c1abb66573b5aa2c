"""Measured latency of a spec: the bridged module timed end to end, and optionally layer by layer.

``measure(spec, values)`` builds the module with :func:`explorer.torch.to_module`, sets the torch
thread count, and times ``module(*inputs)`` under ``torch.inference_mode()`` in eval mode with
:func:`explorer.measure.timing.time_callable`. Per layer, each layer's call is timed on its real
inputs during one run of the graph ("isolated"), or read off timestamps between layers in whole runs
("inline"); see explorer/measure/layers.py and docs/torch-bridge.md#per-layer-timing.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError
from explorer.measure.layers import MODES, LayerTiming, time_inline, time_isolated
from explorer.measure.timing import Timing, time_callable
from explorer.spec import Spec

DEVICES = ("cpu", "cuda")


@dataclass
class Measurement:
    """One configuration of a spec, timed."""

    spec: str
    values: dict[str, Any]
    device: str  # what ran it: the CPU model or the GPU name
    device_kind: str  # "cpu" or "cuda"
    threads: int
    dtype: str
    torch_version: str
    total: Timing
    layers: list[LayerTiming] = field(default_factory=list)
    layer_timing: str | None = None  # "isolated" or "inline" when there are layer rows
    runtime: str = "torch"  # or "onnxruntime"

    @property
    def layers_sum_s(self) -> float:
        """The per-layer best times added up (compare with ``total.best_s``)."""
        return sum(row.timing.best_s for row in self.layers)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("spec", "values", "device", "device_kind", "threads", "dtype",
                                              "torch_version", "layer_timing", "runtime")}
        out["total"] = self.total.to_dict()
        out["layers"] = [{"name": r.path, "op": r.op, "category": r.category, **r.timing.to_dict()}
                         for r in self.layers]
        if self.layers:
            out["layers_sum_s"] = self.layers_sum_s
        return out


def measure(spec: Spec, values: Mapping[str, Any] | None = None, *, device: str = "cpu", threads: int = 1,
            dtype: str = "fp32", per_layer: bool = False, layer_timing: str = "isolated", rounds: int = 7,
            warmup: int = 3, min_time_s: float = 0.05, seed: int = 0, runtime: str = "torch") -> Measurement:
    """Time ``spec`` at one configuration (defaults with ``values`` applied); see the module docstring.

    ``runtime``: "torch" (eager PyTorch) or "onnxruntime" (the module exported to ONNX and run with
    every graph optimization, a fusing runtime; explorer/measure/runtime.py).

    ``per_layer``: also time every layer, ``layer_timing`` "isolated" or "inline" (explorer/measure/layers.py).
    """
    from explorer.torch import check_runs, require_torch, to_module

    torch = require_torch()
    check_device(device)
    if threads < 1:
        raise ExplorerError(f"threads must be at least 1, got {threads}")
    from explorer.measure.runtime import check_runtime, ort_call

    check_runtime(runtime, device)
    if per_layer and runtime != "torch":
        raise ExplorerError("per-layer timing needs the torch runtime (ONNX Runtime fuses layers)")
    if layer_timing not in MODES:
        raise ExplorerError(f"layer timing must be one of {', '.join(MODES)}, got '{layer_timing}'")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        bridge = to_module(spec, values, dtype=dtype, device=device, seed=seed)
        check_runs(bridge)
        timer = partial(time_callable, device=device, warmup=warmup, rounds=rounds, min_time_s=min_time_s)
        with torch.inference_mode():
            run = partial(bridge.module, *bridge.inputs) if runtime == "torch" else ort_call(bridge, threads)
            total = timer(run)
            layers = _layers(bridge, layer_timing, timer, device, rounds, warmup) if per_layer else []
    finally:
        torch.set_num_threads(before)
    return Measurement(spec.name, dict(bridge.values), device_name(device), device.split(":")[0], threads, dtype,
                       torch.__version__, total, layers, layer_timing if per_layer else None, runtime)


def _layers(bridge: Any, mode: str, timer: Any, device: str, rounds: int, warmup: int) -> list[LayerTiming]:
    if mode == "inline":
        return time_inline(bridge, device=device, rounds=rounds, warmup=warmup)
    return time_isolated(bridge, timer)


def check_device(device: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N``, and CUDA only where torch sees a GPU."""
    import torch

    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ExplorerError(f"device must be cpu, cuda or cuda:N, got '{device}'")
    if kind == "cuda" and not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise ExplorerError(f"--device {device}: CUDA is not available ({why}; torch {torch.__version__})")
    if index and int(index) >= torch.cuda.device_count():
        raise ExplorerError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")


def device_name(device: str) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo (platform.processor() elsewhere)."""
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(device))
    return cpu_model()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


__all__ = ["LayerTiming", "Measurement", "Timing", "measure", "time_callable"]
