"""Step 3: the graph -> symbolic costs per layer and in total; exact and compiled evaluation.

Metrics (docs/ops.md): ``params``, ``macs``, ``flops``, ``bytes_read`` (activation inputs and
weights), ``bytes_written`` (outputs), ``kv_cache_bytes`` (KV cache resident). Each layer's metrics
are multiplied by its multiplicity.
Totals are the sums of the layer rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sympy

from explorer import expr as ex
from explorer.errors import ExplorerError, SpecError, brief, did_you_mean
from explorer.graph import Layer, Model, build, is_integer_dtype
from explorer.ops.base import fmt_shape, numel
from explorer.spec import DTYPE_BITS, DTYPE_BYTES, Spec

if TYPE_CHECKING:
    import numpy as np

METRICS = ("params", "macs", "flops", "bytes_read", "bytes_written", "kv_cache_bytes")
ZERO = sympy.Integer(0)
MAX_FORMULA_TERMS = 5_000  # terms of an expanded total (expanding takes ~0.3 ms per term)


GROUP_SCALED = ("int4", "int8")  # integer weights carry one fp16 scale per group of weights
SCALE_BYTES = 2  # one fp16 scale, symmetric quantization (no zero-point)
SCHEMES = {  # --quant shorthands: (activations, weights)
    "w4a16": ("fp16", "int4"), "w8a16": ("fp16", "int8"), "w8a8": ("int8", "int8"),
    "fp8": ("fp8_e4m3", "fp8_e4m3"),
}


@dataclass(frozen=True)
class Precision:
    """Storage dtype per tensor kind: float activations, weights, KV cache (int tensors keep their own).

    Weights and the KV cache may be narrower than a byte (int4): their bytes are computed per layer
    as ceil(elements x bits / 8); integer weights add one fp16 scale per ``group_size`` elements.
    """

    activations: str = "fp32"
    weights: str | None = None  # None: same as activations
    kv: str | None = None  # None: same as activations
    group_size: int = 128

    def __post_init__(self) -> None:
        for kind, dtype, known in (("activation", self.activations, DTYPE_BYTES),
                                   ("weight", self.weight_dtype, DTYPE_BITS), ("KV-cache", self.kv_dtype, DTYPE_BITS)):
            if dtype not in known:
                raise ExplorerError(f"unknown {kind} dtype '{dtype}'{did_you_mean(dtype, known)}; "
                                    f"known: {', '.join(known)}")
        if self.group_size < 1:
            raise ExplorerError(f"group size must be a positive integer, got {self.group_size}")

    @classmethod
    def scheme(cls, name: str, kv: str | None = None) -> Precision:
        """``w4a16``, ``w8a16``, ``w8a8``, ``fp8`` (:data:`SCHEMES`)."""
        if name.lower() not in SCHEMES:
            raise ExplorerError(f"unknown quantization scheme '{name}'{did_you_mean(name.lower(), SCHEMES)}; "
                                f"known: {', '.join(SCHEMES)}")
        act, weights = SCHEMES[name.lower()]
        return cls(act, weights, kv)

    @property
    def weight_dtype(self) -> str:
        return self.weights or self.activations

    @property
    def kv_dtype(self) -> str:
        return self.kv or self.activations

    @property
    def act_bytes(self) -> int:
        return DTYPE_BYTES[self.activations]

    @property
    def weight_bytes(self) -> int:
        """Bytes per weight element when it is a whole number (no int4), without scales."""
        return DTYPE_BYTES[self.weight_dtype]

    def weight_storage(self, elements: Any) -> Any:
        """Bytes of ``elements`` weights of one layer: ceil(elements x bits / 8) + group scales."""
        data = _packed(elements, DTYPE_BITS[self.weight_dtype])
        if self.weight_dtype in GROUP_SCALED:
            data += SCALE_BYTES * _ceil(ex.as_expr(elements) / self.group_size)
        return data

    def kv_storage(self, elements: Any) -> Any:
        """Bytes of ``elements`` KV-cache entries of one layer: ceil(elements x bits / 8)."""
        return _packed(elements, DTYPE_BITS[self.kv_dtype])


def _packed(elements: Any, bits: int) -> Any:
    return elements * (bits // 8) if bits % 8 == 0 else _ceil(ex.as_expr(elements) * bits / 8)


def _ceil(e: Any) -> Any:
    return sympy.ceiling(e) if not getattr(e, "is_Integer", False) else e


@dataclass(frozen=True)
class Traffic:
    """Elements moved by one layer (before multiplicity), split by what sets their size."""

    act_read: Any  # float activation elements read (inputs and scratch)
    int_read_bytes: Any  # bytes of integer inputs (token ids) read
    weight_read: Any  # weight elements read
    act_write: Any  # elements written (outputs and scratch)
    kv_read: Any = ZERO  # KV-cache elements read
    kv_write: Any = ZERO  # KV-cache elements written


def traffic(model: Model, layer: Layer) -> Traffic:
    """Memory access of one layer: inputs + weights read, outputs written (views move nothing)."""
    if not layer.cost.moves_data:
        return Traffic(ZERO, ZERO, ZERO, ZERO)
    act, int_bytes = ZERO, ZERO
    for ref, dtype in zip(layer.inputs, layer.in_dtypes):
        n = numel(model.shape(ref))
        if is_integer_dtype(dtype):
            int_bytes += n * DTYPE_BYTES[dtype]
        else:
            act += n
    weights = layer.cost.weight_read
    if weights is None:
        weights = layer.cost.params + layer.cost.buffers
    written = sum((numel(s) for s in layer.out_shapes), ZERO)
    scratch = layer.cost.scratch
    return Traffic(act + scratch, int_bytes, weights, written + scratch, layer.cost.kv_read, layer.cost.kv_write)


def instance_metrics(model: Model, layer: Layer, precision: Precision) -> dict[str, Any]:
    """The metrics of one run of a layer (its multiplicity not applied)."""
    t = traffic(model, layer)
    return {
        "params": layer.cost.params,
        "macs": layer.cost.macs,
        "flops": layer.cost.flops,
        "bytes_read": (t.act_read * precision.act_bytes + precision.weight_storage(t.weight_read)
                       + t.int_read_bytes + precision.kv_storage(t.kv_read)),
        "bytes_written": t.act_write * precision.act_bytes + precision.kv_storage(t.kv_write),
        "kv_cache_bytes": precision.kv_storage(layer.cost.kv_cache),
    }


def layer_metrics(model: Model, layer: Layer, precision: Precision) -> dict[str, Any]:
    """The metrics of one layer as sympy expressions, multiplicity applied."""
    return {k: layer.count * v for k, v in instance_metrics(model, layer, precision).items()}


class Costs:
    """Symbolic costs of a model: per layer and total, with exact and vectorized evaluation."""

    def __init__(self, model: Model, precision: Precision | None = None) -> None:
        self.model = model
        self.precision = precision or Precision(model.spec.dtype)
        self.layers: list[tuple[Layer, dict[str, Any]]] = [
            (layer, layer_metrics(model, layer, self.precision)) for layer in model.layers
        ]

    @cached_property
    def totals(self) -> dict[str, Any]:
        return {m: sympy.Add(*(row[m] for _, row in self.layers)) for m in METRICS}

    @property
    def symbols(self) -> dict[str, sympy.Symbol]:
        return self.model.symbols

    def formula(self, metric: str, seconds: float | None = None) -> Any:
        """The closed form of a total, simplified cheaply (expand + collect); ``seconds`` bounds the
        work (a :class:`SpecError` saying so when it runs out)."""
        try:
            return simplify_cost(self.totals[metric], seconds)
        except _OutOfTime:
            raise SpecError(f"the closed form of {metric} does not simplify within {seconds:g} s; fix some "
                            "variables with --set, or evaluate it with 'explorer analyze' or 'explorer sweep'",
                            path=self.model.spec.path) from None

    def compile(self, exprs: Mapping[str, Any] | None = None) -> Compiled:
        return Compiled(self.symbols, dict(exprs if exprs is not None else self.totals))


class _OutOfTime(Exception):
    pass


def simplify_cost(e: Any, seconds: float | None = None) -> Any:
    """Cheap, predictable simplification: expand the polynomial parts and gather like terms.

    Refused up front when the expansion would pass :data:`MAX_FORMULA_TERMS` terms. With
    ``seconds`` (main thread only: a SIGALRM timer), give up after that long, and on sympy failing
    to decide a sign numerically (PrecisionExhausted), rather than run on or crash.
    """
    import signal
    import threading

    try:
        ex.check_terms(e, MAX_FORMULA_TERMS, "the closed form")
    except SpecError as exc:
        exc.message += "; fix some variables with --set"
        raise
    if seconds is None or threading.current_thread() is not threading.main_thread():
        return sympy.expand(e)

    def stop(signum: int, frame: Any) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        return sympy.expand(e)
    except (RecursionError, sympy.core.evalf.PrecisionExhausted):
        raise _OutOfTime from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Compiled:
    """Expressions compiled once (lambdify with cse) for vectorized numpy evaluation."""

    def __init__(self, symbols: Mapping[str, sympy.Symbol], exprs: Mapping[str, Any]) -> None:
        self.names = list(exprs)
        self.args = list(symbols)
        self._fn: Callable[..., Any] = sympy.lambdify(
            [symbols[a] for a in self.args],
            [exprs[n] for n in self.names],
            modules=[{"make_divisible": ex.make_divisible_numpy}, "numpy"],
            cse=True,
            docstring_limit=0,
            dummify=True,  # a variable may be called floor, max, make_divisible...
        )

    def __call__(self, **values: Any) -> dict[str, np.ndarray]:
        import numpy as np

        missing = [a for a in self.args if a not in values]
        if missing:
            raise SpecError(f"no value for variable(s) {', '.join(missing)}")
        arrays = [np.asarray(values[a], dtype=np.float64) for a in self.args]
        shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
        out = self._fn(*arrays)
        return {n: np.broadcast_to(np.asarray(o, dtype=np.float64), shape) for n, o in zip(self.names, out)}


# -- values ------------------------------------------------------------------------------------

def resolve_values(spec: Spec, overrides: Mapping[str, Any] | None = None,
                   *, check_domain: bool = True) -> dict[str, Any]:
    """Defaults with overrides applied; unknown names and out-of-domain values are errors."""
    values: dict[str, Any] = {k: v.default for k, v in spec.variables.items()}
    for name, value in (overrides or {}).items():
        value = _plain_number(name, value, spec)
        if name not in spec.variables:
            raise SpecError(f"unknown variable '{name}'{did_you_mean(name, spec.variables)}; "
                            f"variables: {', '.join(spec.variables) or 'none'}", path=spec.path)
        if check_domain:
            problem = spec.variables[name].check(value)
            if problem:
                raise SpecError(f"variable '{name}': {problem}", path=spec.path,
                                line=spec.line("variables", name))
        values[name] = value
    return values


def _plain_number(name: str, value: Any, spec: Spec) -> Any:
    """A Python number from what a caller passes: numpy scalars (``np.float64(0.5)``, ``np.int64(3)``)
    become float / int; anything else that is not a real number is an error."""
    if not isinstance(value, (bool, int, float, Fraction)) and hasattr(value, "item") and not hasattr(value, "__len__"):
        value = value.item()  # a numpy scalar
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise SpecError(f"variable '{name}': expected a number, got {brief(value)}", path=spec.path)
    return value


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """``["width=0.5", "resolution=160"]`` -> numbers (ints where they are integers)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise SpecError(f"--set takes NAME=VALUE, got {item!r}")
        try:
            value: Any = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise SpecError(f"--set {name}: {text!r} is not a number") from None
        out[name.strip()] = value
    return out


def substitution(model: Model, values: Mapping[str, Any]) -> dict[sympy.Symbol, Any]:
    return {s: ex.number(values[n]) for n, s in model.symbols.items() if n in values}


def exact(e: Any, subs: Mapping[sympy.Symbol, Any]) -> Any:
    """Evaluate exactly (rational arithmetic)."""
    return ex.as_expr(e).xreplace(subs)


def as_int(value: Any, what: str) -> int:
    if not value.is_Integer:
        raise SpecError(f"{what} is {value}, not an integer")
    return int(value)


def check_shapes(model: Model, subs: Mapping[sympy.Symbol, Any]) -> None:
    """Every dim of every tensor must be a positive integer at these values."""
    for layer in [*model.inputs.values(), *model.layers]:
        for shape in layer.out_shapes:
            dims = [exact(d, subs) for d in shape]
            bad = [d for d in dims if not (d.is_Integer and d > 0)]
            if bad:
                shown = fmt_shape(tuple(dims))
                kind = "non-integer" if not bad[0].is_Integer else "non-positive"
                raise SpecError(f"output shape {shown} has a {kind} dim {bad[0]} at {_fmt_values(model, subs)}",
                                path=model.spec.path, line=layer.line, layer=layer.path)
        count = exact(layer.count, subs)
        if not (count.is_Integer and count >= 0):
            raise SpecError(f"multiplicity {layer.count} is {count} at {_fmt_values(model, subs)}",
                            path=model.spec.path, line=layer.line, layer=layer.path)


def _fmt_values(model: Model, subs: Mapping[sympy.Symbol, Any]) -> str:
    used = {str(s) for layer in model.layers for shape in layer.out_shapes for d in shape
            for s in getattr(d, "free_symbols", ())}
    shown = [f"{s}={fmt_shape((v,))[1:-1]}" for s, v in subs.items() if str(s) in used]
    return ", ".join(shown) or "the defaults"


def build_for(spec: Spec, values: Mapping[str, Any]) -> Model:
    """The graph at one configuration: every variable bound, every repeat unrolled."""
    return build(spec, values)
