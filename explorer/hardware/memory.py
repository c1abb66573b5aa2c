"""Peak memory: weights plus the peak of live activations over the execution order.

A tensor is live from the step that produces it until its last consumer has run; model inputs are
live from the start and model outputs to the end. Views (reshape, flatten, transpose, select,
split, crop...) share their input's buffer and extend its life instead of allocating. Learned
tensors (``parameter``) are weights, counted once in ``weight_bytes``. The KV cache of every
attention layer with ``kv_cache: true`` is resident for the whole forward pass (``kv_cache_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy

from explorer.cost import Precision
from explorer.graph import Model, Ref, is_integer_dtype
from explorer.ops.base import numel
from explorer.spec import DTYPE_BYTES

ZERO = sympy.Integer(0)


@dataclass(frozen=True)
class Buffer:
    """One allocation: its bytes (0 when its producer does not run) and its life, in steps."""

    size: Any
    first: int
    last: int


@dataclass(frozen=True)
class MemoryProfile:
    weight_bytes: Any
    steps: list[str]  # layer paths, in execution order
    buffers: tuple[Buffer, ...]  # buffer b is live at steps first..last
    gates: tuple[Any, ...]  # per step: the layer's multiplicity (a step with count 0 holds nothing)
    kv_cache_bytes: Any = ZERO  # resident KV cache, all layers

    @cached_property
    def live(self) -> list[Any]:
        """Live activation bytes while each step runs (sums of the buffers live then)."""
        live = []
        for step, gate in enumerate(self.gates):
            total = sympy.Add(*(b.size for b in self.buffers if b.first <= step <= b.last))
            live.append(_gated(total, gate))
        return live

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

    def new_buffer(ref: Ref, shape: tuple[Any, ...], dtype: str, step: int, gate: Any) -> None:
        per = DTYPE_BYTES[dtype] if is_integer_dtype(dtype) else precision.act_bytes
        buffer_of[ref] = len(size)
        size.append(_gated(numel(shape) * per, gate))
        first.append(step)
        last.append(step)

    step_of = {layer.path: k for k, layer in enumerate(model.layers)}

    def read(ref: Ref, step: int) -> None:
        """``ref`` is read at ``step``; when its producer may not run (a repeat representative of
        count n - 1, a ``when``), the tensor it passes through instead lives on to here too."""
        b = buffer_of.get(ref)
        if b is not None:
            last[b] = max(last[b], step)
        gate: Any = sympy.Integer(1)
        node = model.nodes[ref.node]
        while node.inputs and not getattr(node.count, "is_number", True):
            gate = gate * sympy.Piecewise((sympy.Integer(1), sympy.Eq(node.count, 0)), (ZERO, True))
            src = buffer_of.get(node.inputs[0])
            if src is not None and last[src] < step:
                size.append(size[src] * gate)
                first.append(last[src] + 1)
                last.append(step)
            node = model.nodes[node.inputs[0].node]

    for name, layer in model.inputs.items():
        new_buffer(Ref(name), layer.shape, layer.out_dtype, 0, sympy.Integer(1))
    weights, kv = ZERO, ZERO
    for step, layer in enumerate(model.layers):
        weights += layer.count * precision.weight_storage(layer.cost.params + layer.cost.buffers)
        kv += layer.count * precision.kv_storage(layer.cost.kv_cache)
        for ref in layer.inputs:
            read(ref, step)
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
        read(ref, end)
    buffers = tuple(Buffer(*row) for row in zip(size, first, last))
    return MemoryProfile(weights, [layer.path for layer in model.layers], buffers,
                         tuple(layer.count for layer in model.layers), kv)


def _gated(value: Any, count: Any) -> Any:
    """A value that only exists when the layer runs (count > 0): repeat representatives, `when`."""
    if count == 1 or getattr(count, "is_number", False) and count > 0:
        return value
    if getattr(count, "is_number", False):
        return ZERO
    return value * sympy.Piecewise((sympy.Integer(1), count > 0), (ZERO, True))
