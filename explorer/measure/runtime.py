"""Runtimes a bridged module can be timed in: PyTorch eager, or ONNX Runtime (a fusing runtime).

ONNX Runtime runs the module exported through the bridge (``torch.onnx.export``, TorchScript-based
exporter, opset 17) with every graph optimization on (``ORT_ENABLE_ALL``: Conv+BatchNorm folding,
Conv+activation and MatMul+Add fusion, layout transforms) on its CPU provider, ``threads`` intra-op
threads running on the calling thread when 1. This is the fusing runtime the ``fused`` execution
mode is checked against (docs/hardware.md). It needs the ``onnx`` extra.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

from explorer.errors import ExplorerError

RUNTIMES = ("torch", "onnxruntime")
NEEDS_ORT = "the onnxruntime runtime needs onnx and onnxruntime: pip install 'explorer[onnx]'"


def check_runtime(runtime: str, device: str = "cpu") -> None:
    if runtime not in RUNTIMES:
        raise ExplorerError(f"runtime must be one of {', '.join(RUNTIMES)}, got '{runtime}'")
    if runtime == "onnxruntime" and not device.startswith("cpu"):
        raise ExplorerError("the onnxruntime runtime is timed on the CPU provider only: use --device cpu")


def ort_session(bridge: Any, threads: int = 1, profile: str | None = None) -> Any:
    """An ONNX Runtime session of the bridged module, every graph optimization enabled."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExplorerError(NEEDS_ORT) from None
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(bridge.module, bridge.inputs, buffer,  # type: ignore[arg-type]  # file objects work
                              dynamo=False, opset_version=17)
        except ImportError:
            raise ExplorerError(NEEDS_ORT) from None
        except Exception as exc:  # the exporter's own failures, as one line
            raise ExplorerError(f"ONNX export of the bridged module failed: {str(exc).splitlines()[0][:200]}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile:  # per-node times of the optimized graph (JSON), for calibration in context
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def feeds(session: Any, inputs: tuple[Any, ...]) -> dict[str, Any]:
    return {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), inputs)}


def ort_call(bridge: Any, threads: int = 1) -> Callable[[], Any]:
    """A zero-argument call running the whole module once in ONNX Runtime."""
    session = ort_session(bridge, threads)
    data = feeds(session, bridge.inputs)
    return lambda: session.run(None, data)
