"""One built graph on one target, compiled to a numpy program and evaluated layer by layer.

Every per-layer quantity (FLOPs, MACs, bytes read and written, multiplicity, output numel), every
buffer of the memory profile and every tensor dim is a register of one :class:`Program`: each
distinct subexpression is computed once, as an array over architectures. Nothing is simplified.

When every quantity is of degree <= 1 in ``batch`` (the usual case: sizes scale with the batch,
``batch`` never sits inside a floor or a min), the program runs once per distinct *architecture*
(the other variables) at ``batch = 0`` and ``batch = 1``, giving ``x = x1 * batch + x0``; the
per-configuration stage is then linear algebra on (layers, configurations) arrays, in chunks.
Otherwise ``batch`` is one more architecture variable.

Latency comes from the execution model (:func:`explorer.hardware.execution.kernel_times`) on
per-kernel arrays of the target's execution plan (eager: one kernel per layer; fused: anchors with
their epilogues), exactly as :func:`explorer.predict` times one configuration; peak memory is weights plus the largest live set, the live sets summed exactly from the
buffers' lifetimes (a difference array and a cumulative sum over steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer import expr as ex
from explorer.cost import Costs, Precision, instance_metrics
from explorer.graph import Model
from explorer.hardware.execution import kernel_times, model_for
from explorer.hardware.kernels import kernel_metrics, plan
from explorer.hardware.memory import memory_profile
from explorer.hardware.serving import allreduce_seconds, reduced
from explorer.ops.base import numel
from explorer.spec import DTYPE_BYTES
from explorer.study.program import Program, Workspace

FIELDS = ("count", "flops", "macs", "params", "bytes_read", "bytes_written", "kv_cache_bytes",
          "allreduce_bytes", "allreduce_count")  # the last two: outputs tensor parallelism all-reduces
TOTALS = FIELDS[1:]  # summed over layers, times each layer's count
KERNEL_FIELDS = ("k_count", "k_flops", "k_bytes", "k_key")  # per kernel of the execution plan
CHUNK = 1 << 21  # elements of one (layers, configurations) block


@dataclass
class _Regs:
    """Register indices of what the evaluation reads."""

    layers: dict[str, list[int]]  # field -> one register per layer
    sizes: list[int]  # buffer bytes
    gates: list[int]  # per step: multiplicity
    dims: list[int]
    weight_bytes: int
    samples: int
    counts: list[int]  # repeat counts that vary (identity only: a count may be 0)


class _Stage:
    """The architecture stage: every register (rows) per architecture (columns) of the program's
    workspace. With batch split off, columns ``:u`` hold batch 0 and ``u:`` batch 1; ``take`` and
    ``dot`` return (x1, x0), x1 the part per unit of batch (None when not split). Results are
    copies: the workspace is reused by the next evaluation."""

    def __init__(self, table: Any, u: int, split: bool, slices: dict[str, tuple[int, int]], position: Any) -> None:
        self.table, self.u, self.split = table, u, split
        self._slices, self._position = slices, position
        self._cache: dict[str, tuple[Any, Any]] = {}

    def __getitem__(self, kind: str) -> tuple[Any, Any]:
        got = self._cache.get(kind)
        if got is None:
            lo, hi = self._slices[kind]
            got = self._cache[kind] = self.take(self._position[lo:hi])
        return got

    def take(self, rows: Any) -> tuple[Any, Any]:
        """(x1, x0) of these registers."""
        if not self.split:
            return None, self.table[rows]
        x0 = self.table[rows, : self.u]
        return self.table[rows, self.u:] - x0, x0

    def dot(self, weights: Any, rows: Any) -> tuple[Any, Any]:
        """``weights @ x`` over these registers, for x1 and x0 (einsum's own loops, not BLAS,
        whose threads thrash on a busy machine at these sizes)."""
        if not self.split:
            return None, np.einsum("ck,ku->cu", weights, self.table[rows])
        x0 = np.einsum("ck,ku->cu", weights, self.table[rows, : self.u])
        return np.einsum("ck,ku->cu", weights, self.table[rows, self.u:]) - x0, x0


class CompiledModel:
    """All study metrics of one built graph on one target, as arrays over configurations."""

    def __init__(self, model: Model, target: Any) -> None:
        self.target = target
        self.execution = model_for(target.device, target.dtype, target.execution)
        self.peak = target.device.peak_for(target.dtype)
        precision = Precision(target.dtype, target.weight_dtype, target.kv_dtype)
        symbols = model.symbols
        self.batch = symbols.get("batch") if "batch" not in model.bound else None
        self.names = list(symbols)
        self.program = Program([symbols[n] for n in self.names], self.batch)
        self.regs = self._registers(model, precision)
        self.buffer_first = np.array([b.first for b in self._memory.buffers], dtype=np.intp)
        self.buffer_last = np.array([b.last for b in self._memory.buffers], dtype=np.intp)
        used = [r for regs in self.regs.layers.values() for r in regs] + self.regs.sizes + self.regs.gates + \
            self.regs.dims + [self.regs.weight_bytes, self.regs.samples]
        # the architecture: every tensor dim, varying repeat count and per-layer quantity (what every
        # metric is computed from; a repeat count or an attention's cached length changes no dim)
        self._identity = np.array(sorted({*used, *self.regs.counts} - set(self.program.consts)), dtype=np.intp)
        # sweeps tell architectures apart by their dims and repeat counts, plus the value of every
        # variable the costs read that no dim or count shows (an attention's cached length: context)
        shown: set[Any] = set()
        for e in [*_distinct_dims(model), *_varying_counts(model)]:
            shown |= ex.as_expr(e).free_symbols
        read = {i for _, ins, _ in self.program.code for i in ins if i < len(self.names)}
        self._hidden = np.array([i for i, n in enumerate(self.names) if i in read and symbols[n] not in shown],
                                dtype=np.intp)
        deg = self.program.degree
        self.split = self.batch is not None and all(deg[r] in (0, 1) for r in used) and \
            all(deg[r] == 0 for r in self.regs.layers["count"] + self.regs.layers["k_count"] + self.regs.gates)
        self.arch_names = [n for n in self.names if not (self.split and n == "batch")]
        self._workspace: dict[int, Workspace] = {}
        self._layout()
        self._group_layers()

    def _group_layers(self) -> None:
        """Rows the latency function sees: identical kernels once, with a weight."""
        n = len(self.classes)
        keys: dict[tuple[Any, ...], int] = {}
        rows: list[int] = []
        weights: list[float] = []
        for layer in range(n):
            key = (self.classes[layer], *(self.regs.layers[f][layer] for f in KERNEL_FIELDS))
            if key not in keys:
                keys[key] = len(rows)
                rows.append(layer)
                weights.append(0.0)
            weights[keys[key]] += 1.0
        by_class = sorted(range(len(rows)), key=lambda i: self.classes[rows[i]])  # one slice per class
        self.rows = np.array([rows[i] for i in by_class], dtype=np.intp)
        self.weights = np.array([weights[i] for i in by_class])

    def _layout(self) -> None:
        """Where each kind of register sits in the table the architecture stage fills."""
        r = self.regs
        kinds = {**r.layers, "sizes": r.sizes, "gates": r.gates, "dims": r.dims, "counts": r.counts,
                 "weight_bytes": [r.weight_bytes], "samples": [r.samples]}
        order: list[int] = []
        self._slices: dict[str, tuple[int, int]] = {}
        for kind, regs in kinds.items():
            self._slices[kind] = (len(order), len(order) + len(regs))
            order += regs
        self._position = np.array(order, dtype=np.intp)  # rows of the workspace
        where = {reg: reg for reg in order}
        self._totals_plan(where)
        self._live_plan(where)

    def _totals_plan(self, where: dict[int, int]) -> None:
        """A total is ``sum_c count_c * (W_c @ x)``: layers grouped by their count register, each
        group's registers weighted by how often they occur (distinct registers only)."""
        consts = self.program.consts
        counts = self.regs.layers["count"]
        count_rows = sorted({where[r] for r in counts})
        self._count_rows = np.array(count_rows, dtype=np.intp)
        self._counts_ok = all(r in consts and float(consts[r]) >= 0 and float(consts[r]).is_integer()
                              for r in counts)
        group = {row: i for i, row in enumerate(count_rows)}
        self._totals: dict[str, tuple[Any, Any]] = {}
        for f in TOTALS:
            acc: dict[tuple[int, int], float] = {}
            for c, reg in zip(counts, self.regs.layers[f]):
                if not (reg in consts and consts[reg] == 0):
                    key = (group[where[c]], where[reg])
                    acc[key] = acc.get(key, 0.0) + 1.0
            rows = sorted({r for _, r in acc})
            col = {r: i for i, r in enumerate(rows)}
            weights = np.zeros((len(count_rows), len(rows)))
            for (g, r), w in acc.items():
                weights[g, col[r]] = w
            self._totals[f] = (weights, np.array(rows, dtype=np.intp))

    def _live_plan(self, where: dict[int, int]) -> None:
        """Which steps' live sets are summed, and how.

        Steps whose live buffers are a subset of another step's (sizes are >= 0) can never hold the
        largest live set and are dropped, unless that other step may not run (a gate, i.e. a layer
        count, that is not a positive constant and not the same as this step's)."""
        consts = self.program.consts
        sizes, gates = self.regs.sizes, self.regs.gates
        keep_buf = [b for b, r in enumerate(sizes) if not (r in consts and consts[r] == 0)]
        steps = np.arange(len(gates))
        on = np.array([r in consts and float(consts[r]) > 0 for r in gates], dtype=bool)
        off = np.array([r in consts and float(consts[r]) <= 0 for r in gates], dtype=bool)
        first, last = self.buffer_first[keep_buf], self.buffer_last[keep_buf]
        alive = (first[None, :] <= steps[:, None]) & (steps[:, None] <= last[None, :])  # (steps, buffers)
        candidates = np.nonzero(~off & alive.any(axis=1))[0]
        alive = alive[candidates]
        if 0 < len(candidates) <= 2048:
            a = alive.astype(np.float64)
            inside = (a @ (1.0 - a).T) == 0  # inside[i, j]: step i's buffers are all live at step j
            same = inside & inside.T
            gate = np.array([gates[s] for s in candidates])
            may = on[candidates][None, :] | (gate[:, None] == gate[None, :])  # j runs whenever i does
            later = np.arange(len(candidates))[:, None] < np.arange(len(candidates))[None, :]
            drop = inside & may & ~(same & later)  # equal sets: the first step stays
            np.fill_diagonal(drop, False)
            kept = ~drop.any(axis=1)
            candidates, alive = candidates[kept], alive[kept]
        # live bytes per step as a running sum: + a buffer's size at its first step, - after its last
        # (no BLAS: its threads thrash on a busy machine at these sizes; numpy's cumsum over axis 0
        # is slower than this loop of row additions)
        self._live_rows, column = np.unique(np.array([where[sizes[b]] for b in keep_buf], dtype=np.intp),
                                            return_inverse=True)
        events: list[list[tuple[int, float]]] = [[] for _ in range(len(gates) + 1)]
        for b, col in enumerate(column.ravel()):
            events[int(first[b])].append((int(col), 1.0))
            events[int(last[b]) + 1].append((int(col), -1.0))
        kept_set = set(candidates.tolist())
        self._live_events = [(s, events[s], s in kept_set) for s in range(len(gates)) if events[s] or s in kept_set]
        self._live_steps = candidates
        gated = [i for i, s in enumerate(candidates) if not on[s]]
        self._live_gated = np.array(gated, dtype=np.intp)
        self._live_gate_rows = np.array([where[gates[candidates[i]]] for i in gated], dtype=np.intp)

    def _registers(self, model: Model, precision: Precision) -> _Regs:
        p = self.program
        layers: dict[str, list[int]] = {f: [] for f in (*FIELDS, *KERNEL_FIELDS)}
        act_bytes = DTYPE_BYTES.get(precision.activations, 4)
        for layer in model.layers:
            row = {**instance_metrics(model, layer, precision), "count": layer.count}
            row["allreduce_bytes"] = numel(layer.shape) * act_bytes if reduced(layer) else 0
            row["allreduce_count"] = 1 if reduced(layer) else 0
            for f in FIELDS:
                layers[f].append(p.add(row[f]))
        kernels = kernel_metrics(Costs(model, precision), plan(model, self.execution.mode))
        self.classes = [k.kernel.klass for k in kernels]
        for k in kernels:
            for f, e in (("k_count", k.count), ("k_flops", k.flops), ("k_bytes", k.bytes), ("k_key", k.key)):
                layers[f].append(p.add(e))
        self._memory = memory_profile(model, precision)
        lead = next(iter(model.inputs.values())).shape[0]
        samples = model.bound.get("batch", model.symbols["batch"]) if "batch" in model.symbols else lead
        return _Regs(layers, [p.add(b.size) for b in self._memory.buffers],
                     [p.add(g) for g in self._memory.gates], [p.add(d) for d in _distinct_dims(model)],
                     p.add(self._memory.weight_bytes), p.add(samples), [p.add(c) for c in _varying_counts(model)])

    # -- keys -------------------------------------------------------------------------------------
    def dims(self, values: Mapping[str, Any]) -> tuple[float, ...]:
        """The architecture at one configuration, exactly: every tensor dim, varying repeat count and
        per-layer quantity the metrics are computed from."""
        regs = self.program.run([float(values[n]) for n in self.names])
        return tuple(float(regs[r]) for r in self._identity)

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, values: Mapping[str, Any], n: int) -> tuple[dict[str, Any], Any, Any]:
        """Flat arrays of n configurations -> (metrics, valid mask, architecture ids)."""
        arch = np.stack([np.broadcast_to(np.asarray(values[a], dtype=np.float64), (n,)) for a in self.arch_names],
                        axis=1) if self.arch_names else np.zeros((n, 0))
        batch = np.broadcast_to(np.asarray(values.get("batch", 0.0), dtype=np.float64), (n,)) if self.split \
            else np.zeros(n)
        # one batch size for every configuration: evaluate it directly instead of at batch 0 and 1
        split = self.split and n > 0 and bool(np.any(batch != batch[0]))
        fixed_batch = float(batch[0]) if self.split and not split else None
        uniq, inverse = unique_rows(arch)
        if 2 * len(uniq) > n:  # mostly distinct architectures: evaluate in place, no gathers later
            uniq, inverse = arch, None
        stage = self._arch_stage(uniq, split, fixed_batch)
        if not split:
            batch = np.zeros(n)
        metrics, valid = self._config_stage(stage, inverse, batch)
        if fixed_batch is not None:
            batch = np.full(n, fixed_batch)
        return metrics, valid, self._architectures(stage, inverse, batch)

    def _architectures(self, stage: _Stage, inverse: Any, batch: Any) -> Any:
        """An id per configuration: equal when the tensor dims, the varying repeat counts and the
        variables no dim shows (see ``_hidden``) are equal, and the batch."""
        parts = [x for pair in (stage["dims"], stage["counts"], stage.take(self._hidden)) for x in pair if x is not None]
        table = np.concatenate(parts + [np.zeros((1, stage.u))], axis=0)
        _, cls = np.unique(_row_bytes(np.ascontiguousarray(table.T)), return_inverse=True)
        code = _take(cls.ravel(), inverse).astype(np.int64)
        if not self.split:
            return code
        _, ids = np.unique(code * (int(batch.max()) + 1) + batch.astype(np.int64), return_inverse=True) \
            if batch.max() < 2**31 and code.max() < 2**31 else (None, unique_rows(np.stack([code, batch], 1))[1])
        return ids.ravel()

    def _arch_stage(self, uniq: Any, split: bool, fixed_batch: float | None) -> _Stage:
        """Per architecture, every register: run once per architecture, at batch 0 and 1 when
        ``split`` (batch varies; registers read are of degree <= 1 in it); ``fixed_batch``: batch is
        split off in general but has one value here, evaluated directly."""
        u = uniq.shape[0]
        cols = {a: uniq[:, j] for j, a in enumerate(self.arch_names)}
        if split:
            args = [np.concatenate([np.zeros(u), np.ones(u)]) if a == "batch" else np.tile(cols[a], 2)
                    for a in self.names]
        else:
            args = [np.full(u, fixed_batch) if a == "batch" and a not in cols else cols[a] for a in self.names]
        m = 2 * u if split else u
        ws = self._workspace.get(m)
        if ws is None:
            self._workspace.clear()  # one size kept: a study evaluates the same shapes again and again
            ws = self._workspace[m] = self.program.workspace(m)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            table = self.program.run_into(ws, args)
        return _Stage(table, u, split, self._slices, self._position)

    def _config_stage(self, st: _Stage, inverse: Any, batch: Any) -> tuple[dict[str, Any], Any]:
        res: dict[str, Any] = {}
        for name in TOTALS:
            res[name] = self._total(st, name, inverse, batch)
        res["weight_bytes"] = _line(st["weight_bytes"], inverse, batch)[0]
        samples = _line(st["samples"], inverse, batch)[0]
        valid = _positive_integers(st["dims"], inverse, batch)
        if not self._counts_ok:  # layer counts vary (or a constant one is not a natural number)
            count = st.take(self._count_rows)[1]  # degree 0 in batch
            valid &= _positive_integers((np.zeros_like(count), count + 1), inverse, batch)
        latency, live = self._per_config(st, inverse, batch)
        if self.target.tp > 1:  # all-reduces between the devices
            latency = latency + allreduce_seconds(res["allreduce_bytes"], res["allreduce_count"], self.target.tp,
                                                  self.target.device)
        with np.errstate(divide="ignore", invalid="ignore"):
            res["bytes"] = res["bytes_read"] + res["bytes_written"]
            res["latency"] = latency
            res["throughput"] = samples / latency
            res["utilization"] = res["flops"] / latency / self.peak
            res["intensity"] = res["flops"] / res["bytes"]
            res["peak_memory"] = res["weight_bytes"] + res["kv_cache_bytes"] + live
            res["macs_per_sample"] = res["macs"] / samples
            res["flops_per_sample"] = res["flops"] / samples
        valid &= np.isfinite(latency) & (latency > 0)
        return res, valid

    def _total(self, st: _Stage, field: str, inverse: Any, batch: Any) -> Any:
        """sum over layers of count * (x1 batch + x0): summed per architecture first."""
        weights, rows = self._totals[field]
        count = st.take(self._count_rows)[1]  # layer counts are of degree 0 in batch
        x1, x0 = st.dot(weights, rows)
        out = _take(np.einsum("ij,ij->j", count, x0), inverse)
        return out if x1 is None else out + _take(np.einsum("ij,ij->j", count, x1), inverse) * batch

    def _per_config(self, st: _Stage, inverse: Any, batch: Any) -> tuple[Any, Any]:
        """Latency (the sum of kernel times) and the largest live set, per configuration, in chunks."""
        live1, live0 = self._live(st)
        n = len(batch)
        n_rows = max(len(self.classes), live0.shape[0], 1)
        step = max(1, CHUNK // n_rows)
        latency, live = np.empty(n), np.empty(n)
        rows = self.rows
        fields = {f: _trim(st.take(self._position[self._slices[f][0] + rows])) for f in KERNEL_FIELDS}
        lives = _trim(_useful_steps(live1, live0))
        classes = [self.classes[r] for r in rows]
        for lo in range(0, n, step):
            idx, b = _columns(inverse, lo, step), batch[lo:lo + step]
            if classes:
                arrays = {f: _expand(fields[f], idx, b) for f in KERNEL_FIELDS}
                times = kernel_times(self.execution, classes, arrays["k_count"], arrays["k_flops"],
                                     arrays["k_bytes"], arrays["k_key"])
                latency[lo:lo + step] = np.einsum("r,rc->c", self.weights, times)  # not BLAS (see _Stage.dot)
            else:
                latency[lo:lo + step] = 0.0
            live[lo:lo + step] = _expand(lives, idx, b).max(axis=0) if live0.shape[0] else 0.0
        return latency, live

    def _live(self, st: _Stage) -> tuple[Any, Any]:
        """Live bytes per (kept) step and architecture, (x1, x0) each (steps, U)."""
        out: list[Any] = []
        for sizes in st.take(self._live_rows):
            if sizes is None:
                out.append(None)
                continue
            live = np.empty((len(self._live_steps), sizes.shape[1]))
            acc = np.zeros(sizes.shape[1])
            k = 0
            for _, changes, kept in self._live_events:
                for row, sign in changes:
                    if sign > 0:
                        acc += sizes[row]
                    else:
                        acc -= sizes[row]
                if kept:
                    live[k] = acc
                    k += 1
            out.append(live)
        l1, l0 = out
        if len(self._live_gated):  # steps of layers that may not run hold nothing then
            off = st.take(self._live_gate_rows)[1] <= 0
            l0[self._live_gated] = np.where(off, 0.0, l0[self._live_gated])
            if l1 is not None:
                l1[self._live_gated] = np.where(off, 0.0, l1[self._live_gated])
        return l1, l0


def _stack(rows: list[Any], n: int) -> Any:
    if not rows:
        return np.zeros((0, n))
    return np.stack([np.broadcast_to(np.asarray(r, dtype=np.float64), (n,)) for r in rows])


def _columns(inverse: Any, lo: int, step: int) -> Any:
    """Which architecture columns configurations lo..lo+step read: a slice when they are in place,
    one broadcast column when there is one architecture, else an index array."""
    if inverse is None:
        return slice(lo, lo + step)
    part = inverse[lo:lo + step]
    if len(part) and part[0] == part[-1] and not np.any(part != part[0]):
        return slice(int(part[0]), int(part[0]) + 1)
    return part


def _useful_steps(l1: Any, l0: Any) -> tuple[Any, Any]:
    """The live-set lines (steps) that can be the largest: duplicates once; with few architectures,
    lines another line dominates for every architecture (>= slope and >= intercept, batch >= 0) dropped."""
    if l1 is None or l0.shape[0] == 0:
        return l1, l0
    u = l0.shape[1]
    _, first = np.unique(np.ascontiguousarray(np.concatenate([l1, l0], axis=1)).view(
        np.dtype((np.void, 16 * u))).ravel(), return_index=True)
    keep = np.sort(first)
    l1, l0 = l1[keep], l0[keep]
    if u <= 16 and len(keep) <= 2048:
        ge = np.all((l1[:, None, :] >= l1[None, :, :]) & (l0[:, None, :] >= l0[None, :, :]), axis=2)  # [j, i]
        np.fill_diagonal(ge, False)
        dominated = ge.any(axis=0)  # rows are unique, so a >= row differs somewhere: strictly better
        l1, l0 = l1[~dominated], l0[~dominated]
    return l1, l0


def _trim(xs: tuple[Any, Any]) -> tuple[Any, Any]:
    """(x1, x0) with a part that is zero everywhere replaced by None (skipped when expanding)."""
    x1, x0 = xs
    x1 = None if x1 is None or not x1.any() else x1
    return x1, (None if x1 is not None and not x0.any() else x0)


def _expand(xs: tuple[Any, Any], idx: Any, b: Any) -> Any:
    x1, x0 = xs
    if x1 is None:
        return x0[:, idx]
    if x0 is None:
        return x1[:, idx] * b
    return x1[:, idx] * b + x0[:, idx]


def _line(xs: tuple[Any, Any], inverse: Any, batch: Any) -> Any:
    return _expand(xs, slice(None) if inverse is None else inverse, batch)


def _take(x: Any, inverse: Any) -> Any:
    return x if inverse is None else x[inverse]


def _total(count: Any, xs: tuple[Any, Any], inverse: Any, batch: Any) -> Any:
    """sum over layers of count * (x1 batch + x0): summed per architecture first."""
    x1, x0 = xs
    out = _take((count * x0).sum(axis=0), inverse)
    return out if x1 is None else out + _take((count * x1).sum(axis=0), inverse) * batch


def _positive_integers(xs: tuple[Any, Any], inverse: Any, batch: Any) -> Any:
    x1, x0 = xs
    if x1 is None:
        x1 = np.zeros_like(x0)
    const = ~np.any(x1 != 0, axis=1)  # dims that do not grow with the batch: checked per architecture
    arch_ok = np.all((x0[const] >= 1) & (x0[const] == np.floor(x0[const])), axis=0)
    ok = _take(arch_ok, inverse)
    for k in np.nonzero(~const)[0]:
        v = _take(x1[k], inverse) * batch + _take(x0[k], inverse)
        ok &= (v >= 1) & (v == np.floor(v))
    return ok


def _row_bytes(table: Any) -> Any:
    """Each row of a C-contiguous 2-D array as one opaque value (rows compare as bytes)."""
    return table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).ravel()


def unique_rows(flat: Any) -> tuple[Any, Any]:
    """Unique rows and the inverse index, via per-column codes (much faster than unique(axis=0))."""
    n, k = flat.shape
    if k == 0:
        return np.zeros((1, 0)), np.zeros(n, dtype=np.intp)
    code = np.zeros(n, dtype=np.int64)
    span = 1
    for j in range(k):
        _, col = np.unique(flat[:, j], return_inverse=True)
        span *= int(col.max()) + 1
        if span >= 2**62:  # too many combinations for one int64 code
            uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
            return uniq, inverse.ravel()
        code = code * (int(col.max()) + 1) + col.ravel()
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return flat[first], inverse.ravel()


def _distinct_dims(model: Model) -> list[Any]:
    """Every distinct non-constant tensor dim of the graph (and inner sizes an op checks)."""
    seen: dict[Any, None] = {}
    for layer in [*model.inputs.values(), *model.layers]:
        for shape in [*layer.out_shapes, layer.cost.checks]:
            for d in shape:
                if not d.is_number:
                    seen.setdefault(d)
    return list(seen)


def _varying_counts(model: Model) -> list[Any]:
    """Every distinct non-constant layer multiplicity (a repeat count): with the dims, the
    architecture's identity (a searched depth changes no tensor dim)."""
    seen: dict[Any, None] = {}
    for layer in model.layers:
        count = ex.as_expr(layer.count)
        if not count.is_number:
            seen.setdefault(count)
    return list(seen)
