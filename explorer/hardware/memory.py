"""Peak memory: weights plus the peak of live activations over the execution order.

A tensor is live from the step that produces it until its last consumer has run; model inputs are
live from the start and model outputs to the end. Views (reshape, flatten, transpose, select,
split, crop...) share their input's buffer and extend its life instead of allocating. Learned
tensors (``parameter``) are weights, counted once in ``weight_bytes``. The KV cache of every
attention layer with ``kv_cache: true`` is resident for the whole forward pass (``kv_cache_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from explorer.cost import Precision
from explorer.graph import Model, Ref, is_integer_dtype
from explorer.ops.base import numel
from explorer.spec import DTYPE_BYTES

ZERO = sympy.Integer(0)


@dataclass(frozen=True)
class MemoryProfile:
    weight_bytes: Any
    live: list[Any]  # live activation bytes while each layer of model.layers runs
    steps: list[str]  # layer paths, same order
    kv_cache_bytes: Any = ZERO  # resident KV cache, all layers

    def peak(self) -> Any:
        """Weights + KV cache + the largest live set (closed form: an unevaluated Max over the steps)."""
        if all(getattr(x, "is_number", False) for x in self.live):
            return self.weight_bytes + self.kv_cache_bytes + max(self.live, default=ZERO)
        return self.weight_bytes + self.kv_cache_bytes + sympy.Max(*self.live, evaluate=False)

    def peak_step(self) -> int:
        """Index of the step where the peak occurs (needs numbers)."""
        values = [float(x) for x in self.live]
        return max(range(len(values)), key=values.__getitem__)


def memory_profile(model: Model, precision: Precision) -> MemoryProfile:
    buffer_of: dict[Ref, int] = {}
    size: list[Any] = []
    first: list[int] = []
    last: list[int] = []

    def new_buffer(ref: Ref, shape: tuple, dtype: str, step: int, gate: Any) -> None:
        per = DTYPE_BYTES[dtype] if is_integer_dtype(dtype) else precision.act_bytes
        buffer_of[ref] = len(size)
        size.append(_gated(numel(shape) * per, gate))
        first.append(step)
        last.append(step)

    for name, layer in model.inputs.items():
        new_buffer(Ref(name), layer.shape, layer.out_dtype, 0, sympy.Integer(1))
    weights, kv = ZERO, ZERO
    for step, layer in enumerate(model.layers):
        weights += layer.count * precision.weight_storage(layer.cost.params + layer.cost.buffers)
        kv += layer.count * precision.kv_storage(layer.cost.kv_cache)
        for ref in layer.inputs:
            b = buffer_of.get(ref)
            if b is not None:
                last[b] = max(last[b], step)
        if layer.op == "parameter":
            continue  # a weight, not an activation
        if not layer.cost.moves_data and layer.inputs:
            base = buffer_of.get(layer.inputs[0])
            for k in range(len(layer.out_shapes)):
                if base is not None:
                    buffer_of[Ref(layer.path, k)] = base
            continue
        for k, shape in enumerate(layer.out_shapes):
            new_buffer(Ref(layer.path, k), shape, layer.out_dtype, step, layer.count)
    end = len(model.layers) - 1
    for ref in model.outputs:
        b = buffer_of.get(ref)
        if b is not None:
            last[b] = end
    live = []
    for step, layer in enumerate(model.layers):
        total = sympy.Add(*(size[b] for b in range(len(size)) if first[b] <= step <= last[b]))
        live.append(_gated(total, layer.count))
    return MemoryProfile(weights, live, [layer.path for layer in model.layers], kv)


def _gated(value: Any, count: Any) -> Any:
    """A value that only exists when the layer runs (count > 0): repeat representatives, `when`."""
    if count == 1 or getattr(count, "is_number", False) and count > 0:
        return value
    if getattr(count, "is_number", False):
        return ZERO
    return value * sympy.Piecewise((sympy.Integer(1), count > 0), (ZERO, True))
