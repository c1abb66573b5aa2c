"""Compiled evaluation of every study metric for one (hardware, dtype): derive once, evaluate many.

The spec is built symbolically once. Then, instead of compiling one giant latency expression (a
sum of hundreds of ``max(compute, memory)`` terms), the evaluation has two stages:

1. *Architecture stage*: per-layer coefficients as functions of every variable except ``batch``:
   FLOPs and bytes of each layer are ``x1 * batch + x0``, live activation bytes of each step too.
   Non-polynomial pieces (floor, make_divisible, Piecewise...) are computed once as "atoms"; the
   rest are small polynomials in the atoms, compiled with ``lambdify``. This stage runs once per
   distinct architecture (unique non-batch values), not once per configuration.
2. *Batch stage*: ``latency(batch) = sum_l max(compute_l(batch), memory_l(batch)) + overhead`` is a
   convex piecewise-linear function of batch, and ``peak_memory(batch)`` the upper envelope of
   lines; both are tabulated once per architecture (breakpoints, slopes) and evaluated with
   ``searchsorted``. Exact, not an approximation.

If ``batch`` is not a linear scale of every cost (or the spec has no ``batch``), it is treated like
any other variable and the batch stage sees a constant 1.

Every distinct tensor dim is evaluated too: a configuration is valid when all are positive
integers, and their tuple identifies the architecture (two width multipliers that round to the
same channels give the same key and are evaluated once in a study).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy

from explorer import expr as ex
from explorer.cost import Costs, Precision
from explorer.graph import Model, build
from explorer.hardware import Device, Roofline
from explorer.spec import Spec

# study metric -> (engine quantity, unit dimension for constraints)
METRICS: dict[str, tuple[str, str]] = {
    "throughput": ("throughput_per_s", "rate"),
    "latency": ("latency_s", "time"),
    "params": ("params", "count"),
    "macs": ("macs", "count"),
    "flops": ("flops", "count"),
    "macs_per_sample": ("macs / batch", "count"),
    "flops_per_sample": ("flops / batch", "count"),
    "bytes": ("bytes", "bytes"),
    "bytes_read": ("bytes_read", "bytes"),
    "bytes_written": ("bytes_written", "bytes"),
    "peak_memory": ("peak_memory_bytes", "bytes"),
    "weight_bytes": ("weight_bytes", "bytes"),
    "kv_cache_bytes": ("kv_cache_bytes", "bytes"),
    "utilization": ("utilization", "fraction"),
    "intensity": ("arithmetic_intensity", "intensity"),
}
_LINEAR = ("params", "macs", "flops", "bytes_read", "bytes_written", "weight_bytes", "kv_cache_bytes")
_NONPOLY = (sympy.floor, sympy.ceiling, sympy.Max, sympy.Min, sympy.Mod, sympy.Piecewise, sympy.Abs,
            ex.make_divisible)


def _scalar_make_divisible(v: float, divisor: float, min_value: float | None = None) -> float:
    low = divisor if min_value is None else min_value
    new = max(low, math.floor(v / divisor + 0.5) * divisor)
    return new + divisor if new < 0.9 * v else new


@dataclass
class Target:
    """A device at a precision."""

    device: Device
    dtype: str
    weight_dtype: str | None = None

    @property
    def label(self) -> str:
        w = f"/{self.weight_dtype}" if self.weight_dtype and self.weight_dtype != self.dtype else ""
        return f"{self.device.id}:{self.dtype}{w}"


class Evaluator:
    """All metrics of a spec on one target, compiled (see the module docstring)."""

    def __init__(self, spec: Spec, target: Target, model: Model | None = None) -> None:
        self.spec = spec
        self.target = target
        device = target.device
        self.peak = device.peak_for(target.dtype)
        model = model or build(spec)
        costs = Costs(model, Precision(target.dtype, target.weight_dtype))
        roof = Roofline(costs, device, target.dtype)
        self.compute_rate, self.memory_rate = roof.compute_rate, roof.memory_rate
        self.batch = model.symbols.get("batch")
        lead = next(iter(model.inputs.values())).shape[0]
        self.samples_const = float(lead) if getattr(lead, "is_number", False) else 1.0
        b = self.batch
        layer_terms: dict[tuple[Any, ...], int] = {}  # identical layers add up: k * max(...)
        for layer, m in costs.layers:
            works = layer.cost.moves_data or layer.cost.flops != 0
            term = (m["flops"], m["bytes_read"] + m["bytes_written"],
                    layer.count * device.launch_overhead if works else sympy.Integer(0))
            layer_terms[term] = layer_terms.get(term, 0) + 1
        kv = roof.memory.kv_cache_bytes  # resident at every step (linear in batch, like the live sets)
        steps = list(dict.fromkeys(x + kv for x in roof.memory.live))  # max is idempotent: identical steps once
        totals = {k: costs.totals[k] for k in _LINEAR if k != "weight_bytes"}
        totals["weight_bytes"] = roof.memory.weight_bytes
        scaled_exprs = [t[0] for t in layer_terms] + [t[1] for t in layer_terms] + steps + list(totals.values())
        points = _random_points([v for v in model.symbols.values() if v is not b])
        self.scaled = b is not None and all(_is_linear(e, b, points) for e in scaled_exprs)
        split_by = b if self.scaled else None
        self.args = [a for a in model.symbols if not (self.scaled and a == "batch")]
        exprs: list[Any] = []
        for flops, moved, overhead in layer_terms:
            exprs += [*_split(flops, split_by), *_split(moved, split_by), overhead]
        for e in steps:
            exprs += _split(e, split_by)
        for k in _LINEAR:
            exprs += _split(totals[k], split_by)
        self.multiplicity = list(layer_terms.values())
        self.n_layers, self.n_steps = len(layer_terms), len(steps)
        self.dims = _distinct_dims(model)
        dims = self.dims if not self.scaled else [d for d in self.dims if b not in d.free_symbols]
        batch_dims = [d for d in self.dims if d not in dims]  # e.g. the input's leading dim
        self._batch_dims = sympy.lambdify([b], batch_dims, "numpy", docstring_limit=0) if batch_dims else None
        self._stage = _compile([model.symbols[a] for a in self.args], exprs + dims)
        self.n_coeffs = len(exprs)
        self._key = sympy.lambdify([model.symbols[a] for a in model.symbols], self.dims, docstring_limit=0,
                                   modules=[{"make_divisible": _scalar_make_divisible}, "math"])
        self._all_args = list(model.symbols)

    def key(self, values: Mapping[str, float]) -> tuple[float, ...]:
        """The architecture: every distinct tensor dim at these values (cheap; no costs computed)."""
        return tuple(float(d) for d in self._key(*(float(values[a]) for a in self._all_args)))

    # -- evaluation --------------------------------------------------------------------------------
    def vector(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        """Arrays of configurations -> (metrics, valid mask). Architectures are evaluated once each."""
        import numpy as np

        arrays = [np.asarray(values[a], dtype=np.float64) for a in self.args]
        batch_in = values.get("batch", 1.0) if self.scaled else 1.0
        shape = np.broadcast_shapes(*(a.shape for a in arrays), np.shape(batch_in))
        batch = np.broadcast_to(np.asarray(batch_in, dtype=np.float64), shape).ravel()
        flat = np.stack([np.broadcast_to(a, shape).ravel() for a in arrays], axis=1) if arrays \
            else np.zeros((batch.size, 0))
        uniq, inverse = _unique_rows(flat)
        out = self._stage.numpy(*(uniq[:, j] for j in range(uniq.shape[1])), n=uniq.shape[0])
        coeffs, dims = out[: self.n_coeffs], out[self.n_coeffs:]
        samples = np.broadcast_to(np.asarray(values["batch"], dtype=np.float64), shape).ravel() \
            if self.batch is not None else self.samples_const
        metrics, valid = _batch_stage(self, coeffs, inverse, batch, samples)
        for d in dims:
            d = d[inverse]
            valid &= (d >= 1) & (d == np.floor(d))
        for v in self._batch_dims(batch) if self._batch_dims else ():
            v = np.broadcast_to(np.asarray(v, dtype=np.float64), batch.shape)
            valid &= (v >= 1) & (v == np.floor(v))
        return {k: v.reshape(shape) for k, v in metrics.items()}, valid.reshape(shape)

    def scalar(self, values: Mapping[str, float]) -> tuple[dict[str, float] | None, tuple[float, ...]]:
        """One configuration -> (metrics, or None when a dim is not a positive integer; architecture key)."""
        dims = self.key(values)
        if not all(d >= 1 and d == int(d) for d in dims):
            return None, dims
        out = self._stage.python(*(float(values[a]) for a in self.args))
        b = float(values.get("batch", 1.0)) if self.scaled else 1.0
        samples = float(values["batch"]) if self.batch is not None else self.samples_const
        return _scalar_metrics(self, out, b, samples), dims


def _unique_rows(flat: Any) -> tuple[Any, Any]:
    """Unique rows and the inverse index, via per-column codes (much faster than unique(axis=0))."""
    import numpy as np

    n, k = flat.shape
    if k == 0:
        return np.zeros((1, 0)), np.zeros(n, dtype=np.intp)
    code = np.zeros(n, dtype=np.int64)
    for j in range(k):
        _, col = np.unique(flat[:, j], return_inverse=True)
        code = code * (int(col.max()) + 1) + col.ravel()
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return flat[first], inverse.ravel()


# -- stage 1: compile ------------------------------------------------------------------------------

@dataclass
class _Stage:
    atoms_np: Any
    main_np: Any
    atoms_py: Any
    main_py: Any

    def numpy(self, *args: Any, n: int) -> list[Any]:
        import numpy as np

        atoms = self.atoms_np(*args)
        out = self.main_np(*args, *atoms)
        return [np.broadcast_to(np.asarray(o, dtype=np.float64), (n,)) for o in out]

    def python(self, *args: float) -> list[float]:
        return self.main_py(*args, *self.atoms_py(*args))


def _compile(symbols: list[Any], exprs: list[Any]) -> _Stage:
    atoms: dict[Any, sympy.Dummy] = {}
    for e in exprs:
        for node in sympy.preorder_traversal(e):
            if isinstance(node, _NONPOLY) and node not in atoms and not node.is_number:
                atoms[node] = sympy.Dummy(f"a{len(atoms)}")
    # Outermost atoms only need to be arguments of the main stage; inner ones are computed inside.
    replaced = [ex.as_expr(e).xreplace(atoms) for e in exprs]
    used = sorted({s for e in replaced for s in e.free_symbols if s in set(atoms.values())}, key=str)
    by_dummy = {v: k for k, v in atoms.items()}
    atom_exprs = [by_dummy[d] for d in used]
    np_mod = [{"make_divisible": ex.make_divisible_numpy}, "numpy"]
    py_mod = [{"make_divisible": _scalar_make_divisible}, "math"]
    return _Stage(
        atoms_np=sympy.lambdify(symbols, atom_exprs, modules=np_mod, cse=True, docstring_limit=0),
        main_np=sympy.lambdify(symbols + used, replaced, modules=np_mod, cse=True, docstring_limit=0),
        atoms_py=sympy.lambdify(symbols, atom_exprs, modules=py_mod, cse=True, docstring_limit=0),
        main_py=sympy.lambdify(symbols + used, replaced, modules=py_mod, cse=True, docstring_limit=0),
    )


def _is_linear(e: Any, b: Any, points: list[dict[Any, Any]]) -> bool:
    """e = x1 * b + x0 with b outside every non-polynomial piece.

    The second difference in b, e(2) - 2 e(1) + e(0), must vanish; it is checked exactly at a few
    random rational points of the other variables (a polynomial of degree >= 2 in b would show).
    """
    e = ex.as_expr(e)
    if b not in e.free_symbols:
        return True
    for node in sympy.preorder_traversal(e):
        if isinstance(node, _NONPOLY) and b in node.free_symbols:
            return False
    for point in points:
        at = [e.xreplace({**point, b: sympy.Integer(k)}) for k in (0, 1, 2)]
        if at[2] - 2 * at[1] + at[0] != 0:
            return False
    return True


def _random_points(symbols: list[Any], n: int = 2) -> list[dict[Any, Any]]:
    import random

    rng = random.Random(1234)
    return [{s: sympy.Rational(rng.randint(3, 997), rng.choice([1, 1, 7, 11])) for s in symbols} for _ in range(n)]


def _split(e: Any, b: Any) -> list[Any]:
    """[x1, x0] with e = x1 * b + x0 (or [0, e] when there is no batch scaling)."""
    e = ex.as_expr(e)
    if b is None or b not in e.free_symbols:
        return [sympy.Integer(0), e]
    x0 = e.xreplace({b: 0})
    return [e.xreplace({b: 1}) - x0, x0]


def _distinct_dims(model: Model) -> list[Any]:
    """Every distinct non-constant tensor dim and multiplicity of the graph."""
    seen: dict[Any, None] = {}
    for layer in [*model.inputs.values(), *model.layers]:
        for shape in [*layer.out_shapes, layer.cost.checks]:
            for d in shape:
                if not d.is_number:
                    seen.setdefault(d)
        if not getattr(layer.count, "is_number", True):
            seen.setdefault(layer.count + 1)  # count >= 0  <=>  count + 1 >= 1
    return list(seen)


# -- stage 2: batch --------------------------------------------------------------------------------

def _layout(ev: Evaluator) -> tuple[slice, slice, slice]:
    """Coefficient order: 5 per distinct layer term (f1, f0, m1, m0, overhead), 2 per live step,
    2 per linear total."""
    n, s = ev.n_layers, ev.n_steps
    return slice(0, 5 * n), slice(5 * n, 5 * n + 2 * s), slice(5 * n + 2 * s, 5 * n + 2 * s + 2 * len(_LINEAR))


def _batch_stage(ev: Evaluator, coeffs: list[Any], inverse: Any, batch: Any,
                 samples: Any) -> tuple[dict[str, Any], Any]:
    import numpy as np

    ly, lv, tt = _layout(ev)
    u = len(coeffs[0]) if coeffs else 1
    co = np.array(coeffs)  # (n_coeffs, U)
    k_mult = np.asarray(ev.multiplicity, dtype=np.float64)[:, None]
    terms = co[ly]
    f1, f0 = k_mult * terms[0::5] / ev.compute_rate, k_mult * terms[1::5] / ev.compute_rate  # (L, U)
    m1, m0 = k_mult * terms[2::5] / ev.memory_rate, k_mult * terms[3::5] / ev.memory_rate
    overhead = (k_mult * terms[4::5]).sum(axis=0)
    latency = np.empty(batch.size)
    peak_live = np.empty(batch.size)
    l1, l0 = co[lv][0::2], co[lv][1::2]
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(u + 1))
    for k in range(u):
        idx = order[bounds[k]:bounds[k + 1]]
        if idx.size == 0:
            continue
        b = batch[idx]
        latency[idx] = _sum_of_max_lines(f1[:, k], f0[:, k], m1[:, k], m0[:, k], b) + overhead[k]
        peak_live[idx] = _upper_envelope(l1[:, k], l0[:, k], b)
    tot = co[tt]
    out = {}
    for j, name in enumerate(_LINEAR):
        out[name] = tot[2 * j][inverse] * batch + tot[2 * j + 1][inverse]
    out["bytes"] = out["bytes_read"] + out["bytes_written"]
    out["latency"] = latency
    out["throughput"] = samples / latency
    out["utilization"] = out["flops"] / latency / ev.peak
    out["intensity"] = out["flops"] / out["bytes"]
    out["peak_memory"] = out["weight_bytes"] + peak_live
    out["macs_per_sample"] = out["macs"] / samples
    out["flops_per_sample"] = out["flops"] / samples
    valid = np.isfinite(latency) & (latency > 0)
    return {m: out[m] for m in METRICS}, valid


def _sum_of_max_lines(a1: Any, a0: Any, m1: Any, m0: Any, b: Any) -> Any:
    """sum_l max(a1_l b + a0_l, m1_l b + m0_l) for b >= 0: convex piecewise-linear, by breakpoints."""
    import numpy as np

    start_a = (a0 > m0) | ((a0 == m0) & (a1 >= m1))  # which line is on top at b = 0
    s1 = np.where(start_a, a1, m1)
    s0 = np.where(start_a, a0, m0)
    e1 = np.where(start_a, m1, a1)
    e0 = np.where(start_a, m0, a0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (s0 - e0) / (e1 - s1)  # the other line overtakes here, if it is steeper
    switch = (e1 > s1) & np.isfinite(cross) & (cross >= 0)
    bp = cross[switch]
    order = np.argsort(bp)
    bp = bp[order]
    d1 = (e1 - s1)[switch][order]
    d0 = (e0 - s0)[switch][order]
    slope = s1.sum() + np.concatenate([[0.0], np.cumsum(d1)])
    icept = s0.sum() + np.concatenate([[0.0], np.cumsum(d0)])
    k = np.searchsorted(bp, b, side="right")
    return slope[k] * b + icept[k]


def _upper_envelope(l1: Any, l0: Any, b: Any) -> Any:
    """max_s (l1_s b + l0_s) at each b >= 0 (upper envelope of lines, then searchsorted)."""
    import numpy as np

    order = np.lexsort((l0, l1))  # by slope, then intercept
    hull: list[tuple[float, float]] = []
    xs: list[float] = []
    for s in order:
        line = (float(l1[s]), float(l0[s]))
        while hull:
            top = hull[-1]
            if line[0] == top[0]:
                hull.pop()
                xs.pop()
                continue
            x = (top[1] - line[1]) / (line[0] - top[0])  # where the steeper new line overtakes
            if x <= xs[-1]:
                hull.pop()
                xs.pop()
                continue
            break
        if not hull:
            hull.append(line)
            xs.append(-math.inf)
            continue
        top = hull[-1]
        hull.append(line)
        xs.append((top[1] - line[1]) / (line[0] - top[0]))
    h1 = np.array([h[0] for h in hull])
    h0 = np.array([h[1] for h in hull])
    k = np.searchsorted(np.array(xs), b, side="right") - 1
    return h1[k] * b + h0[k]


def _scalar_metrics(ev: Evaluator, out: list[float], b: float, samples: float) -> dict[str, float]:
    ly, lv, tt = _layout(ev)
    t, live, tot = out[ly], out[lv], out[tt]
    pc, pm = ev.compute_rate, ev.memory_rate
    latency = 0.0
    for j, k in enumerate(ev.multiplicity):
        f1, f0, m1, m0, over = t[5 * j: 5 * j + 5]
        latency += k * (max((f1 * b + f0) / pc, (m1 * b + m0) / pm) + over)
    res = {name: tot[2 * j] * b + tot[2 * j + 1] for j, name in enumerate(_LINEAR)}
    res["bytes"] = res["bytes_read"] + res["bytes_written"]
    res["latency"] = latency
    res["throughput"] = samples / latency
    res["utilization"] = res["flops"] / latency / ev.peak
    res["intensity"] = res["flops"] / res["bytes"]
    res["macs_per_sample"] = res["macs"] / samples
    res["flops_per_sample"] = res["flops"] / samples
    res["peak_memory"] = res["weight_bytes"] + max(live[2 * s] * b + live[2 * s + 1] for s in range(ev.n_steps))
    return {k: res[k] for k in METRICS}

