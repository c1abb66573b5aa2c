"""The spec -> PyTorch bridge: ``to_module(spec, values)`` builds a runnable ``nn.Module``.

One torch builder per explorer op (:data:`explorer.torch.registry.TORCH_OPS`), so the module's
parameter count, output shapes and matmul MACs can be checked against explorer's own counts
(docs/torch-bridge.md). PyTorch is imported only when a module is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from explorer.errors import ExplorerError, SpecError
from explorer.spec import Spec
from explorer.torch.registry import TORCH_OPS, Builder, torch_op

if TYPE_CHECKING:
    import torch
    from torch import nn

    from explorer.graph import Model
    from explorer.torch.module import GraphModule

BUILDER_MODULES = ("activation", "conv", "elementwise", "linear", "llm", "norm", "opaque", "pooling", "tensor")
DTYPES = ("fp32", "fp16", "bf16")
INT_DTYPES = {"int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8",
              "bool": "bool"}
INT_HIGH = {"int16": 2**15, "int8": 2**7, "uint8": 2**8, "bool": 2}  # exclusive upper bound of the dtype
NEEDS_TORCH = "the torch bridge needs PyTorch: pip install 'explorer[torch]'"


@dataclass
class Bridge:
    """A spec at one configuration as a module, with example inputs."""

    module: GraphModule
    inputs: tuple[torch.Tensor, ...]
    layers: list[str]  # layer paths in execution order
    model: Model  # the explorer graph the module was built from
    values: dict[str, Any]  # every variable's value


def require_torch() -> Any:
    """``import torch``, or a one-line ExplorerError when PyTorch is not installed."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ExplorerError(NEEDS_TORCH) from None


def load_builders() -> dict[str, Builder]:
    """Import the builder modules (and torch): the filled :data:`TORCH_OPS`."""
    require_torch()
    for name in BUILDER_MODULES:
        importlib.import_module(f"explorer.torch.{name}")
    return TORCH_OPS


def to_module(spec: Spec, values: Mapping[str, Any] | None = None, *, dtype: str = "fp32",
              device: str = "cpu", seed: int = 0) -> Bridge:
    """Build ``spec`` at the defaults with ``values`` applied: random weights (seeded), eval mode."""
    from explorer.cost import build_for, check_shapes, resolve_values, substitution

    torch = require_torch()
    if dtype not in DTYPES:
        raise ExplorerError(f"dtype must be one of {', '.join(DTYPES)}, got '{dtype}'")
    builders = load_builders()
    resolved = resolve_values(spec, values)
    model = build_for(spec, resolved)
    check_shapes(model, substitution(model, resolved))
    from explorer.torch.module import GraphModule

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        modules = {layer.path: _build_layer(model, layer, builders) for layer in model.layers}
        tie_weights(model, modules)
        call_as_the_spec_says(model, modules)
        graph = GraphModule(model, modules)
        inputs = example_inputs(model, dtype)
    graph = graph.to(device=device, dtype=torch_dtype(dtype)).eval()
    inputs = tuple(x.to(device) for x in inputs)
    return Bridge(graph, inputs, [layer.path for layer in model.layers], model, resolved)


def check_runs(bridge: Bridge) -> None:
    """Run the module once; a layer torch rejects (e.g. pooling padding over half the kernel) is a
    one-line SpecError at that layer instead of a traceback."""
    torch = require_torch()
    current: list[str] = []
    try:
        with torch.inference_mode():
            bridge.module.run(*bridge.inputs, on_layer=lambda path, fn: current.append(path))
    except (RuntimeError, ValueError, TypeError) as exc:
        if not current:
            raise
        layer = bridge.model.nodes[current[-1]]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SpecError(f"torch cannot run this {layer.op} layer: {first}", path=bridge.model.spec.path,
                        line=layer.line, layer=layer.path) from None


def torch_dtype(name: str) -> torch.dtype:
    torch = require_torch()
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}
    return table[name] if name in table else getattr(torch, INT_DTYPES[name])  # type: ignore[no-any-return]


def _build_layer(model: Model, layer: Any, builders: dict[str, Builder]) -> nn.Module:
    where = {"path": model.spec.path, "line": layer.line, "layer": layer.path}
    if layer.count != 1:
        raise SpecError(f"the torch bridge needs every layer unrolled (multiplicity 1), got multiplicity "
                        f"{layer.count}", **where)
    builder = builders.get(layer.op)
    if builder is None:
        raise SpecError(f"op '{layer.op}' has no torch builder", **where)
    return builder(layer)


def tie_weights(model: Model, modules: dict[str, nn.Module]) -> None:
    """A ``tied:`` linear shares the very nn.Parameter of the layer it names (counted once)."""
    for layer in model.layers:
        tied = layer.attrs.get("tied") if layer.op == "linear" else None
        if not tied:
            continue
        weight: Any = modules[tied].weight
        want = (int(layer.attrs["out"]), int(layer.in_shapes[0][-1]))
        if tuple(weight.shape) != want:
            raise SpecError(f"tied weight of '{tied}' has shape {list(weight.shape)}, a linear "
                            f"{want[1]} -> {want[0]} needs {list(want)}", path=model.spec.path,
                            line=layer.line, layer=layer.path)
        modules[layer.path].weight = weight


def call_as_the_spec_says(model: Model, modules: dict[str, nn.Module]) -> None:
    """``module: LayerNorm2d``: the layer's module becomes an instance of a subclass of that name (tools
    that match exact types skip it); ``shares: relu1``: the layer is the very module of ``relu1``."""
    for layer in model.layers:
        how = layer.torch
        if how.shares:
            modules[layer.path] = modules[how.shares]
        elif how.module:
            module = modules[layer.path]
            module.__class__ = _subclass(how.module.rsplit(".", 1)[-1], type(module))


_SUBCLASSES: dict[tuple[str, type], type] = {}


def _subclass(name: str, base: type) -> type:
    """One class per (name, base): ``class LayerNorm2d(nn.LayerNorm)`` with nothing overridden."""
    key = (name, base)
    if key not in _SUBCLASSES:
        _SUBCLASSES[key] = type(name, (base,), {"__module__": __name__})
    return _SUBCLASSES[key]


def example_inputs(model: Model, dtype: str) -> tuple[torch.Tensor, ...]:
    """Random inputs: floats in ``dtype`` (standard normal), integer ids below every vocabulary they index."""
    torch = require_torch()
    out = []
    for name, node in model.inputs.items():
        shape = tuple(int(d) for d in node.shape)
        if node.out_dtype in INT_DTYPES:
            high = min(id_range(model, name), INT_HIGH.get(node.out_dtype, 2**31))
            out.append(torch.randint(0, high, shape).to(torch_dtype(node.out_dtype)))
        else:
            out.append(torch.randn(shape, dtype=torch_dtype(dtype)))
    return tuple(out)


def id_range(model: Model, name: str) -> int:
    """The smallest vocabulary of the embeddings that read input ``name`` (through views); 2 if none."""
    reach = {name}
    nums = []
    for layer in model.layers:
        if not any(r.node in reach for r in layer.inputs):
            continue
        if layer.op == "embedding":
            nums.append(int(layer.attrs["num"]))
        elif layer.category == "shape":
            reach.add(layer.path)
    return min(nums, default=2)


__all__ = ["TORCH_OPS", "Bridge", "check_runs", "load_builders", "require_torch", "to_module", "torch_op"]
