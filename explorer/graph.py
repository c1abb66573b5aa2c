"""Step 2: a validated spec -> a layer graph with symbolic shapes and per-layer costs.

Blocks are instantiated with their arguments (inner names scoped by the instance path,
``layer3.1.conv2``), ``repeat:`` unrolls, ``when:`` includes a layer under a condition, and every
op's handler infers its output shape and cost. The result is a networkx DiGraph whose nodes are
layer paths, plus the layers in execution (definition) order.

Repeat counts that are variables keep costs closed-form: the first instance is built, then one
representative of the later instances with multiplicity ``n - 1`` (the later instances must be
identical: same arguments, same input and output shape). ``when:`` conditions that depend on
variables become a 0/1 multiplicity on a shape-preserving layer. With every such variable bound
to a number, the graph is fully unrolled instead (see :func:`build`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sympy

from explorer import expr as ex
from explorer.errors import ExplorerError, SpecError, brief, did_you_mean
from explorer.ops import ALIASES, REGISTRY, REQUIRED, Cost, OpCall, OpDef
from explorer.ops.base import Shape, domain_problem, fmt_shape
from explorer.spec import CLASS_NAME, INTEGER_DTYPES, InputDef, Spec

if TYPE_CHECKING:
    import networkx as nx

MAX_REPEAT = 10_000
MAX_NODES = 200_000
MAX_NAME = 200  # characters in a layer name (names appear in every message about the layer)
ONE = sympy.Integer(1)
_LAYER_KEYS = {"name", "op", "block", "inputs", "when", "repeat", "loop", "args", "called", "module", "shares"}
_TORCH_KEYS = ("called", "module", "shares")  # how the torch model runs an op layer (no effect on costs)
CALLED = ("module", "functional")


@dataclass(frozen=True)
class TorchCall:
    """How the PyTorch model behind a spec runs a layer: what module-hooking counters see.

    It changes no cost; the conventions (thop, ptflops, torchsummary...) read it, see
    docs/spec-language.md#how-the-torch-model-calls-a-layer.
    """

    functional: bool = False  # called as a function (torch.nn.functional, a tensor op), no module of its own
    module: str | None = None  # a module of this class (a subclass of the op's torch class), not the class itself
    shares: str | None = None  # the path of an earlier layer whose module instance this layer calls again
    closes: tuple[str, ...] = ()  # container module classes (blocks with 'module:') whose forward ends here


@dataclass(frozen=True)
class Ref:
    """One output tensor of a node."""

    node: str
    index: int = 0


@dataclass
class Layer:
    """A node of the graph: one op instance with its shapes and cost."""

    path: str
    op: str
    category: str
    inputs: list[Ref]
    in_shapes: list[Shape]
    out_shapes: list[Shape]
    in_dtypes: list[str]
    out_dtype: str
    attrs: dict[str, Any]
    cost: Cost
    count: Any = ONE  # multiplicity: 1, n - 1 for a repeat representative, 0/1 for a symbolic `when`
    line: int | None = None
    torch: TorchCall = TorchCall()

    @property
    def shape(self) -> Shape:
        return self.out_shapes[0]


@dataclass
class Model:
    """The built graph."""

    spec: Spec
    symbols: dict[str, sympy.Symbol]
    nodes: dict[str, Layer]  # every node by path, inputs included
    layers: list[Layer]  # ops in execution order (inputs excluded)
    inputs: dict[str, Layer]
    outputs: list[Ref]
    bound: dict[str, Any]
    structural: set[str] = field(default_factory=set)  # variables in repeat counts

    @cached_property
    def graph(self) -> nx.DiGraph[str]:
        """The networkx DiGraph: nodes are layer paths (attribute ``layer``), edges carry data.

        Built on first use, so that commands which never walk the graph do not import networkx.
        """
        import networkx as nx

        g: nx.DiGraph[str] = nx.DiGraph()
        for path, layer in self.nodes.items():
            g.add_node(path, layer=layer)
        for layer in self.layers:
            for ref in layer.inputs:
                g.add_edge(ref.node, layer.path)
        return g

    def node(self, path: str) -> Layer:
        return self.nodes[path]

    def shape(self, ref: Ref) -> Shape:
        return self.node(ref.node).out_shapes[ref.index]


@dataclass(frozen=True)
class _Later:
    """The names of a layer list at or after position ``i`` (a set without building one per layer)."""

    positions: dict[str, int]
    i: int

    def __contains__(self, name: object) -> bool:
        return self.positions.get(str(name), -1) >= self.i


@dataclass
class _Scope:
    prefix: str
    names: dict[str, Any]  # expression names: variables, block params, loop index
    tensors: dict[str, list[Ref]]  # visible tensor names -> outputs
    key: tuple[Any, ...]  # YAML key of this layer list, for line numbers
    count: Any = ONE
    last: list[Ref] | None = None
    later: Any = field(default_factory=set)  # names defined further down (cycle detection): `in`
    depth: int = 0
    raw: dict[str, Any] = field(default_factory=dict)  # block params given as lists or choice words


@dataclass(frozen=True)
class _Evaluated:
    """A block argument's list item, already evaluated in the caller's scope."""

    value: Any


def build(spec: Spec, bind: Mapping[str, Any] | None = None) -> Model:
    """Build the graph. ``bind`` fixes variables to numbers before building (full unrolling)."""
    return _Builder(spec, dict(bind or {})).run()


class _Builder:
    def __init__(self, spec: Spec, bind: dict[str, Any]) -> None:
        self.spec = spec
        self.symbols = spec.symbols()
        self.bind = {k: ex.number(v) for k, v in bind.items()}
        self.defaults = {self.symbols[k]: ex.number(v.default) for k, v in spec.variables.items()}
        self.conditions: list[Any] = []  # symbolic `when` conditions of the layers being built
        self.defaults.update({self.symbols[k]: v for k, v in self.bind.items()})
        self.nodes: dict[str, Layer] = {}
        self.layers: list[Layer] = []
        self.structural: set[str] = set()
        self._sizes: dict[Any, int] = {}
        self._symbolic_repeats: set[tuple[int, str]] = set()  # (scope, layer): '.*' needs a number

    # -- driver ---------------------------------------------------------------------------------
    def run(self) -> Model:
        names: dict[str, Any] = {**self.symbols, **self.bind}
        scope = _Scope("", names, {}, ("layers",))
        for name, text in self.spec.let.items():  # in order: each may use the ones before it
            names[name] = self._expr(text, scope, ("let", name))
        inputs = {}
        for name, idef in self.spec.inputs.items():
            assert isinstance(idef, InputDef)  # the spec's validator makes every input an InputDef
            shape = tuple(self._expr(d, scope, ("inputs", name)) for d in idef.shape)
            layer = Layer(name, "input", "data", [], [], [shape], [], idef.dtype, {}, Cost(moves_data=False),
                          line=self.spec.line("inputs", name))
            self.nodes[name] = layer
            inputs[name] = layer
            scope.tensors[name] = [Ref(name)]
        scope.last = [Ref(next(iter(self.spec.inputs)))]
        try:
            top, total = {**self.symbols, **self.bind}, 0
            for d in self.spec.layers:  # stops at the limit: the work stays bounded too
                total += self._entry_size(d, top, frozenset())
                self._reserve(total)
        except SpecError as exc:
            raise exc.located(self.spec.path, self.spec.line("layers")) from None
        self._expand_list(self.spec.layers, scope)
        outputs = self._outputs(scope)
        # Acyclic by construction: a layer may only name layers defined before it.
        return Model(self.spec, self.symbols, self.nodes, self.layers, inputs, outputs,
                     dict(self.bind), self.structural)

    def _outputs(self, scope: _Scope) -> list[Ref]:
        if not self.spec.outputs:
            assert scope.last is not None
            return scope.last[:1]
        return [self._ref(name, scope, ("outputs",), "outputs") for name in self.spec.outputs]

    def _fail(self, exc: ExplorerError, key: tuple[Any, ...], layer: str | None) -> ExplorerError:
        exc.layer = exc.layer or layer
        return exc.located(self.spec.path, self.spec.line(*key))

    # -- layer lists -----------------------------------------------------------------------------
    def _expand_list(self, defs: list[Any], scope: _Scope) -> None:
        names = [self._name_of(d, (*scope.key, i), scope) for i, d in enumerate(defs)]
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if name is not None and name in seen:
                raise SpecError(f"duplicate layer name '{name}' (first at item {seen[name] + 1})",
                                path=self.spec.path, line=self.spec.line(*scope.key, i, "name"),
                                layer=scope.prefix + str(name))
            if name is not None:
                seen[str(name)] = i
        positions = {name: i for i, name in enumerate(names) if name is not None}
        for i, d in enumerate(defs):
            scope.later = _Later(positions, i)
            key = (*scope.key, i)
            if not isinstance(d, dict):
                raise SpecError(f"a layer is a mapping with at least 'op' or 'block', got {brief(d)}",
                                path=self.spec.path, line=self.spec.line(*key))
            kind = d.get("op") or d.get("block")
            default = f"{kind if isinstance(kind, str) else 'layer'}{i}"
            name = str(d.get("name", default))
            try:
                self._expand_one(d, name, scope, key)
            except ExplorerError as exc:
                raise self._fail(exc, key, scope.prefix + name) from None
        scope.later = set()

    def _name_of(self, d: Any, key: tuple[Any, ...], scope: _Scope) -> str | None:
        """The ``name:`` of a layer entry as text; names are strings or integers."""
        if not isinstance(d, dict) or d.get("name") is None:
            return None
        name = d["name"]
        if isinstance(name, bool) or not isinstance(name, (str, int)):
            raise SpecError(f"a layer name is a string, got {brief(name)}", path=self.spec.path,
                            line=self.spec.line(*key, "name"))
        if len(str(name)) > MAX_NAME:
            raise SpecError(f"a layer name is at most {MAX_NAME} characters, got {len(str(name)):,}: "
                            f"{brief(str(name))}", path=self.spec.path, line=self.spec.line(*key, "name"))
        return str(name)

    def _expand_one(self, d: dict[str, Any], name: str, scope: _Scope, key: tuple[Any, ...]) -> None:
        if len(self.nodes) > MAX_NODES:
            raise SpecError(f"the graph has more than {MAX_NODES} layers")
        if ("op" in d) == ("block" in d):
            raise SpecError("a layer needs exactly one of 'op' and 'block'")
        for k in ("op", "block", "loop"):
            if k in d and (isinstance(d[k], bool) or not isinstance(d[k], (str, int))):
                raise SpecError(f"'{k}' is a name, got {brief(d[k])}")
            if k in d and len(str(d[k])) > MAX_NAME:
                raise SpecError(f"'{k}' is a name of at most {MAX_NAME} characters, got {brief(str(d[k]))}")
        if "args" in d and "op" in d:
            raise SpecError("'args' are for block layers; an op takes its attributes directly")
        if "loop" in d and "repeat" not in d:
            raise SpecError("'loop' names the loop variable of 'repeat', which this layer does not have")
        if not isinstance(name, str) or not name or any(c in name for c in ":. "):
            raise SpecError(f"layer names may not contain ':', '.' or spaces, got {brief(name)}")
        sources = self._sources(d, scope, key)
        if "repeat" in d:
            outs, scope.tensors[name + ".*"] = self._repeat(d, name, scope, key, sources)
        else:
            outs = self._instance(d, scope.prefix + name, scope, key, sources, scope.names, scope.count)
        scope.tensors[name] = outs
        scope.last = outs

    def _sources(self, d: dict[str, Any], scope: _Scope, key: tuple[Any, ...]) -> list[Ref]:
        raw = d.get("inputs")
        if raw is None:
            if scope.last is None:
                raise SpecError("the first layer of a block needs 'inputs'")
            return scope.last[:1]
        items = raw if isinstance(raw, list) else [raw]
        refs: list[Ref] = []
        for r in items:
            if isinstance(r, str) and r.endswith(".*"):
                refs += self._instances(r, scope, (*key, "inputs"), d.get("name"))
            else:
                refs.append(self._ref(str(r), scope, (*key, "inputs"), d.get("name")))
        return refs

    def _instances(self, text: str, scope: _Scope, key: tuple[Any, ...], own: Any) -> list[Ref]:
        """``m.*``: the (first) output of every instance of the repeated layer ``m``, in order."""
        name = text[:-2]
        self._ref(name, scope, key, own)  # unknown names and cycles: the usual messages
        outs = scope.tensors.get(name + ".*")
        if outs is None:
            raise SpecError(f"'{text}': '{name}' is not a repeated layer (the '.*' form lists the outputs of "
                            "every instance of a layer with 'repeat')", path=self.spec.path, line=self.spec.line(*key))
        if (id(scope.tensors), name) in self._symbolic_repeats:
            raise SpecError(f"'{text}' needs the repeat count of '{name}' to be a number; fix its variables "
                            "(--set, or fixed: in a study)", path=self.spec.path, line=self.spec.line(*key))
        return list(outs)

    def _ref(self, text: str, scope: _Scope, key: tuple[Any, ...], own: Any) -> Ref:
        if len(text) > MAX_NAME + 8:
            raise SpecError(f"a tensor reference is at most {MAX_NAME + 8} characters, got {brief(text)}",
                            path=self.spec.path, line=self.spec.line(*key))
        name, _, idx = text.partition(":")
        if name not in scope.tensors:
            if name == own or name in scope.later:
                msg = f"input '{name}' is defined at or after this layer: that would make a cycle"
            else:
                msg = f"unknown input '{name}'{did_you_mean(name, scope.tensors)}"
            raise SpecError(msg, path=self.spec.path, line=self.spec.line(*key))
        outs = scope.tensors[name]
        number = idx.isascii() and idx.isdigit() and len(idx) < 6  # not '²', which isdigit() accepts
        k = int(idx) if number else 0
        if idx and not number or k >= len(outs):
            raise SpecError(f"'{text}': '{name}' has {len(outs)} output(s), numbered from 0",
                            path=self.spec.path, line=self.spec.line(*key))
        return outs[k]

    # -- repeat and when -------------------------------------------------------------------------
    def _repeat(self, d: dict[str, Any], name: str, scope: _Scope, key: tuple[Any, ...],
                sources: list[Ref]) -> tuple[list[Ref], list[Ref]]:
        """(the last instance's outputs, the first output of every instance)."""
        n = self._expr(d["repeat"], scope, (*key, "repeat"))
        if ex.is_condition(n):
            raise SpecError(f"repeat must be a count, got the condition {brief(d['repeat'])}")
        index = str(d.get("loop", "i"))
        if n.is_number:
            if not (n.is_Integer and 0 <= n <= MAX_REPEAT):
                raise SpecError(f"repeat must be an integer from 0 to {MAX_REPEAT}, got {n}")
            self._reserve(int(n) * self._size(d, scope.names, frozenset()))
            outs, every = sources, []
            for k in range(int(n)):
                names = {**scope.names, index: sympy.Integer(k)}
                outs = self._instance(d, f"{scope.prefix}{name}.{k}", scope, key, outs, names, scope.count)
                every.append(outs[0])
            return outs, every
        self._symbolic_repeats.add((id(scope.tensors), name))
        self.structural |= {str(s) for s in n.free_symbols}
        lowest = self._lowest(n)
        if lowest is None or lowest < 1:
            raise SpecError(f"a variable repeat count must be at least 1 over the variables' domains, "
                            f"got {n} (as low as {lowest}); give the variables a min >= 1")
        first = self._instance(d, f"{scope.prefix}{name}.0", scope, key, sources,
                               {**scope.names, index: sympy.Integer(0)}, scope.count)
        generic = sympy.Symbol(index, integer=True, positive=True)  # any index >= 1
        later = [self._resolved(d, scope, {**scope.names, index: k}, key) for k in (ONE, generic)]
        if later[0] != later[1]:
            raise SpecError(f"repeat count {n} is a variable, but the index '{index}' changes instances after "
                            "the second; fix it with --set or make later instances identical")
        rep_path = f"{scope.prefix}{name}.1"
        outs = self._instance(d, rep_path, scope, key, first, {**scope.names, index: ONE}, scope.count * (n - 1))
        self._require_same_shape(first, outs, f"repeated instances of {n} must keep their input shape")
        return outs, []

    def _reserve(self, more: int) -> None:
        """Refuse up front when ``more`` nodes would pass the graph-size limit (nested repeats)."""
        if len(self.nodes) + more > MAX_NODES:
            raise SpecError(f"the graph would have at least {len(self.nodes) + more:,} layers "
                            f"(limit {MAX_NODES:,}): check the repeat counts")

    def _entry_size(self, d: Any, names: dict[str, Any], stack: frozenset[str]) -> int:
        """A lower bound of the nodes a layer entry adds: counts known up front, no ``when`` layers."""
        if not isinstance(d, dict) or "when" in d:
            return 0
        count = self._static(d.get("repeat", 1), names)
        count = int(count) if getattr(count, "is_Integer", False) and 0 <= count <= MAX_REPEAT else 1
        return count * self._size(d, names, stack) if count else 0

    def _static(self, value: Any, names: dict[str, Any]) -> Any:
        """A value known before building (numbers, variables at their values), else None."""
        try:
            return ex.parse(value, ex.Scope(names)).xreplace(self.defaults)
        except ExplorerError:
            return None

    def _bind(self, pname: str, value: Any, scope: _Scope, where: tuple[Any, ...],
              params: dict[str, Any], raw: dict[str, Any]) -> None:
        """Bind one block parameter, from an argument or its default, evaluated in ``scope``."""
        if isinstance(value, str) and value.strip() in scope.raw:  # passed on from an outer block
            raw[pname] = scope.raw[value.strip()]
        elif isinstance(value, list):  # kernel: [1, 7]: each item in the caller's scope
            raw[pname] = [_Evaluated(self._expr(v, scope, (*where, i))) for i, v in enumerate(value)]
        elif isinstance(value, str) and value.strip().isidentifier() and value.strip() not in scope.names \
                and value.strip() not in ex.FUNCTIONS:  # a choice word: padding: same
            raw[pname] = value.strip()
        else:
            params[pname] = self._expr(value, scope, where)

    def _size(self, d: dict[str, Any], names: dict[str, Any], stack: frozenset[str]) -> int:
        """A lower bound of the nodes one instance of layer ``d`` adds (blocks memoized by arguments)."""
        bname = d.get("block")
        if not isinstance(bname, str) or bname not in self.spec.blocks or bname in stack or len(stack) > 32:
            return 1
        block, args = self.spec.blocks[bname], d.get("args")
        inner = {**self.symbols, **self.bind}
        for pname, default in block.params.items():
            source = args[pname] if isinstance(args, dict) and pname in args else default
            value = None if source is None else self._static(source, names)
            if getattr(value, "is_number", False):
                inner[pname] = value
        memo = (bname, tuple(sorted((k, v) for k, v in inner.items() if k in block.params)))
        if memo not in self._sizes:
            total = 0
            for entry in block.layers:
                total = min(total + self._entry_size(entry, inner, stack | {bname}), 10**15)
                if total > MAX_NODES:
                    break
            self._sizes[memo] = max(total, 1)
        return self._sizes[memo]

    def _resolved(self, d: dict[str, Any], scope: _Scope, names: dict[str, Any], key: tuple[Any, ...]) -> Any:
        """Everything the loop index can change in one instance: its attributes or arguments."""
        items = dict(d.get("args") or {}) if "block" in d else {k: v for k, v in d.items() if k not in _LAYER_KEYS}
        if "when" in d:
            items["when"] = d["when"]
        return {k: self._soft(v, names) for k, v in items.items()}

    def _soft(self, value: Any, names: dict[str, Any], depth: int = 0) -> Any:
        if isinstance(value, list):
            if depth > 0 or len(value) > 16:  # not a valid attribute: the instance build will say why
                return ("list", id(value))
            return tuple(self._soft(v, names, depth + 1) for v in value)
        try:
            return ex.parse(value, ex.Scope(names))
        except ExplorerError:
            return ("raw", id(value))

    def _require_same_shape(self, a: list[Ref], b: list[Ref], what: str) -> None:
        sa, sb = self._shape(a[0]), self._shape(b[0])
        if len(sa) != len(sb) or any(self._check(x, y) is False for x, y in zip(sa, sb)):
            raise SpecError(f"{what}: {fmt_shape(sa)} vs {fmt_shape(sb)}")

    def _instance(self, d: dict[str, Any], path: str, scope: _Scope, key: tuple[Any, ...],
                  sources: list[Ref], names: dict[str, Any], count: Any) -> list[Ref]:
        local = _Scope(scope.prefix, names, scope.tensors, scope.key, count, scope.last, scope.later, scope.depth,
                       scope.raw)
        conditional = False
        if "when" in d:
            cond = _as_condition(self._expr(d["when"], local, (*key, "when")))
            if cond is sympy.false:
                return sources[:1]  # an excluded layer passes its (first) input through
            if cond is not sympy.true:
                conditional = True
                count = count * sympy.Piecewise((ONE, cond), (sympy.Integer(0), True))
        if conditional:
            self.conditions.append(cond)
        try:
            if "block" in d:
                outs = self._block(d, path, local, key, sources, count)
            else:
                outs = self._op(d, path, local, key, sources, count)
        except SpecError as exc:
            if conditional and "'when'" not in exc.message:
                exc.message += f" (this layer exists only where its 'when' holds: {d['when']})"
            raise
        finally:
            if conditional:
                self.conditions.pop()
        if conditional:
            self._require_same_shape(sources, outs, "a layer whose 'when' depends on variables must keep its "
                                     "input shape (it is skipped when the condition is false)")
        return outs

    # -- blocks and ops ---------------------------------------------------------------------------
    def _block(self, d: dict[str, Any], path: str, scope: _Scope, key: tuple[Any, ...],
               sources: list[Ref], count: Any) -> list[Ref]:
        bname = d["block"]
        if bname not in self.spec.blocks:
            raise SpecError(f"unknown block '{bname}'{did_you_mean(str(bname), self.spec.blocks)}")
        if scope.depth > 32:
            raise SpecError("blocks nest more than 32 deep (a block that uses itself?)")
        block = self.spec.blocks[bname]
        for k in _TORCH_KEYS:
            if k in d:
                raise SpecError(f"'{k}' is for op layers; the torch class of a whole block goes on its definition "
                                f"('module:' under blocks: {bname}:)")
        extra = set(d) - _LAYER_KEYS
        if extra:
            word = sorted(extra)[0]
            raise SpecError(f"unknown key '{word}' on a block layer; block arguments go under 'args'"
                            f"{did_you_mean(word, _LAYER_KEYS)}")
        args = d.get("args") or {}
        if not isinstance(args, dict):
            raise SpecError(f"'args' must be a mapping of block parameters, got {brief(args)}")
        params = dict(self.symbols)
        params.update(self.bind)
        for pname in args:
            if pname not in block.params:
                raise SpecError(f"block '{bname}' has no parameter '{pname}'{did_you_mean(str(pname), block.params)}")
        raw: dict[str, Any] = {}
        for pname, default in block.params.items():
            if pname in args:
                self._bind(pname, args[pname], scope, (*key, "args", pname), params, raw)
            elif default is None:
                raise SpecError(f"block '{bname}' needs the argument '{pname}'")
            else:  # a default may use the block's earlier parameters: expand: "4 * squeeze"
                self._bind(pname, default, _Scope(scope.prefix, params, scope.tensors, scope.key, raw=raw),
                           ("blocks", bname, "params", pname), params, raw)
        for name, text in block.let.items():
            params[name] = self._expr(text, _Scope(scope.prefix, params, scope.tensors, scope.key),
                                      ("blocks", bname, "let", name))
        if len(sources) != len(block.inputs):
            raise SpecError(f"block '{bname}' takes {len(block.inputs)} input(s) {block.inputs}, got {len(sources)}")
        inner = _Scope(path + ".", params, dict(zip(block.inputs, ([s] for s in sources))),
                       ("blocks", bname, "layers"), count, [sources[0]], depth=scope.depth + 1, raw=raw)
        before = len(self.layers)
        self._expand_list(block.layers, inner)
        if block.module is not None and len(self.layers) > before:  # torchsummary lists the container after it
            last = self.layers[-1]
            last.torch = replace(last.torch, closes=(*last.torch.closes, block.module))
        if block.output is None:
            assert inner.last is not None
            return inner.last
        names = block.output if isinstance(block.output, list) else [block.output]
        return [self._ref(n, inner, ("blocks", bname, "output"), None) for n in names]

    def _op(self, d: dict[str, Any], path: str, scope: _Scope, key: tuple[Any, ...],
            sources: list[Ref], count: Any) -> list[Ref]:
        name = str(d["op"])
        opdef = REGISTRY.get(ALIASES.get(name, name))
        if opdef is None:
            raise SpecError(f"unknown op '{name}'{did_you_mean(name, list(REGISTRY) + list(ALIASES))}")
        lo, hi = opdef.inputs
        if lo == 0:
            sources = [] if d.get("inputs") is None else sources
        if not lo <= len(sources) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise SpecError(f"op '{opdef.name}' takes {want} input(s), got {len(sources)}")
        attrs = self._attrs(opdef, d, scope, key)
        shapes = [self._shape(r) for r in sources]
        dtypes = [self.node(r.node).out_dtype for r in sources]
        call = OpCall(opdef.name, shapes, attrs, self._check)
        try:
            result = opdef.fn(call)
        except ExplorerError:
            raise
        except (TypeError, ValueError, ZeroDivisionError) as exc:
            raise SpecError(f"{opdef.name}: cannot apply to input shapes "
                            f"{', '.join(fmt_shape(s) for s in shapes)}: {exc}") from None
        _check_dims([*result.outputs, result.cost.checks])
        domain = _symbolic_domains(opdef, attrs)
        if domain:  # e.g. an attention's cached length must stay >= 0 wherever the variables go
            result = replace(result, cost=replace(result.cost, checks=(*result.cost.checks, *domain)))
        out_dtype = self.spec.dtype
        if not result.cost.moves_data and dtypes and opdef.category == "shape":
            out_dtype = dtypes[0]
        layer = Layer(path, opdef.name, opdef.category, sources, shapes, result.outputs, dtypes, out_dtype,
                      attrs, result.cost, count, self.spec.line(*key))
        layer.torch = self._torch_call(d, layer, scope, key)
        self._add(layer)
        return [Ref(path, k) for k in range(len(result.outputs))]

    def _torch_call(self, d: dict[str, Any], layer: Layer, scope: _Scope, key: tuple[Any, ...]) -> TorchCall:
        """``called:``, ``module:`` and ``shares:`` of an op layer, checked."""
        if not any(k in d for k in _TORCH_KEYS):
            return TorchCall()

        def bad(k: str, message: str) -> SpecError:
            return SpecError(f"'{k}': {message}", path=self.spec.path, line=self.spec.line(*key, k))

        called = d.get("called", "module")
        if called not in CALLED:
            raise bad("called", f"must be one of {list(CALLED)}, got {brief(called)}{did_you_mean(str(called), CALLED)}")
        module = d.get("module")
        if module is not None and (not isinstance(module, str) or not CLASS_NAME.fullmatch(module)):
            raise bad("module", f"a torch module class name (LayerNorm2d, torch.nn.ReLU), got {brief(module)}")
        if called == "functional" and module is not None:
            raise bad("module", f"a layer called as a function is no module, got module: {module} with called: "
                      "functional")
        shares = None
        if d.get("shares") is not None:
            if called == "functional":
                raise bad("shares", "a layer called as a function has no module to share")
            target = str(d["shares"])
            if target not in scope.tensors or target == d.get("name"):
                raise bad("shares", f"no earlier layer '{target}' here{did_you_mean(target, scope.tensors)}; "
                          "'shares' names an earlier layer of the same block")
            other = self.node(scope.tensors[target][0].node)
            if not other.path.startswith(scope.prefix):
                raise bad("shares", f"'{target}' is an input of this block; 'shares' names an earlier layer of the "
                          "same block")
            if other.op != layer.op or other.torch.functional:
                what = "a function call" if other.torch.functional else f"a {other.op} layer"
                raise bad("shares", f"'{d['shares']}' is {what}; a shared module is an earlier {layer.op} layer")
            if other.torch.module != module:
                raise bad("shares", f"'{d['shares']}' is a module of class {other.torch.module or 'default'}, "
                          f"this layer of {module or 'default'}")
            for who in (layer, other):
                if who.cost.params != 0:
                    raise bad("shares", f"layer '{who.path}' has parameters ({who.cost.params}); only modules "
                              "without weights can be shared here (weights would be counted twice); share "
                              "weights with the op's weight reference instead")
            shares = other.torch.shares or other.path  # the first call's path: one name per module instance
        return TorchCall(functional=called == "functional", module=module, shares=shares)

    def _add(self, layer: Layer) -> None:
        if layer.path in self.nodes:
            raise SpecError(f"two layers are both named '{layer.path}'")
        self.nodes[layer.path] = layer
        self.layers.append(layer)

    def _attrs(self, opdef: OpDef, d: dict[str, Any], scope: _Scope, key: tuple[Any, ...]) -> dict[str, Any]:
        for k in d:
            if k not in _LAYER_KEYS and k not in opdef.attrs:
                known = list(opdef.attrs) + list(_LAYER_KEYS)
                listing = ", ".join(opdef.attrs) or "none"
                raise SpecError(f"op '{opdef.name}' has no attribute '{k}'{did_you_mean(str(k), known)}; "
                                f"its attributes: {listing}", path=self.spec.path, line=self.spec.line(*key, k))
        out = {}
        for k, a in opdef.attrs.items():
            if k in d and d[k] is None and a.default is REQUIRED:
                raise SpecError(f"op '{opdef.name}' needs a value for '{k}', got null",
                                path=self.spec.path, line=self.spec.line(*key, k))
            if k not in d:
                if a.default is REQUIRED:
                    raise SpecError(f"op '{opdef.name}' needs the attribute '{k}'" + (f" ({a.doc})" if a.doc else ""))
                out[k] = a.default if not isinstance(a.default, (int, float)) or isinstance(a.default, bool) \
                    else ex.number(a.default)
                if a.kind == "bool":
                    out[k] = bool(a.default)
                continue
            value = d[k]
            if isinstance(value, str) and value.strip() in scope.raw:  # a block parameter given as a list or word
                value = scope.raw[value.strip()]
            try:
                out[k] = self._attr(a, value, scope, (*key, k))
                self._domain(a, out[k])
            except ExplorerError as exc:
                exc.message = f"attribute '{k}': {exc.message}"
                raise exc.located(self.spec.path, self.spec.line(*key, k)) from None
        return out

    def _domain(self, a: Any, value: Any) -> None:
        """Numeric values in the attribute's domain (kernel >= 1, padding >= 0...), where decidable."""
        if not a.check or isinstance(value, (str, bool)) or value is None:
            return
        for v in value if isinstance(value, tuple) else (value,):
            known = v if getattr(v, "is_number", False) or ex.is_condition(v) else v.xreplace(self.defaults)
            problem = domain_problem(a.check, known)
            if problem:
                at = "" if known is v else f" (at the defaults: {v} = {fmt_shape((known,))[1:-1]})"
                raise SpecError(f"{problem.split(', got')[0]}, got {fmt_shape((v,))[1:-1]}{at}")

    def _attr(self, a: Any, value: Any, scope: _Scope, key: tuple[Any, ...]) -> Any:
        if value is None:
            return None
        if a.kind == "bool":
            try:
                cond = _as_condition(self._expr(value, scope, key))
            except ExplorerError:
                raise SpecError(f"must be true or false (or a condition), got {brief(value)}") from None
            if cond not in (sympy.true, sympy.false):
                raise SpecError(f"must be true or false, got {brief(value)}")
            return cond is sympy.true
        if a.kind == "str" or (a.choices and value in a.choices):
            if a.choices and value not in a.choices:
                raise SpecError(f"must be one of {list(a.choices)}, got {brief(value)}{did_you_mean(str(value), a.choices)}")
            return value
        if a.kind == "ref":
            node = self._ref(str(value), scope, key, None).node
            if self.node(node).op not in ("embedding", "parameter", "linear"):
                raise SpecError(f"'{value}' is a {self.node(node).op} layer, which has no weight to share")
            return node
        if a.kind in ("exprs", "shape"):
            if isinstance(value, list):
                if len(value) > 16:
                    raise SpecError(f"at most 16 values, got {len(value)}")
                return tuple(self._expr(v, scope, key) for v in value)
            if a.kind == "shape":
                raise SpecError(f"expected a list, got {brief(value)}")
        return self._expr(value, scope, key)

    # -- expressions and shapes -------------------------------------------------------------------
    def _expr(self, value: Any, scope: _Scope, key: tuple[Any, ...]) -> Any:
        if isinstance(value, _Evaluated):
            return value.value
        try:
            return ex.parse(value, ex.Scope(scope.names, lambda n: self._shape(self._ref(n, scope, key, None))))
        except ExplorerError as exc:
            name = getattr(exc, "unknown", None)
            raw = scope.raw.get(name) if name else None
            if isinstance(raw, str):  # a parameter bound to a word, used in arithmetic: name the word
                exc = SpecError(f"block parameter '{name}' is the word '{raw}', which an expression cannot use"
                                f"{did_you_mean(raw, scope.names)}")
            elif raw is not None:
                exc = SpecError(f"block parameter '{name}' is a list; only an attribute that takes a list "
                                f"can use it, not an expression")
            raise exc.located(self.spec.path, self.spec.line(*key)) from None

    def node(self, path: str) -> Layer:
        return self.nodes[path]

    def _shape(self, ref: Ref) -> Shape:
        return self.node(ref.node).out_shapes[ref.index]

    def _lowest(self, e: Any) -> Any:
        """Value of ``e`` with every variable at its domain minimum (repeat counts grow with them)."""
        lows = {}
        for s in e.free_symbols:
            var = self.spec.variables.get(str(s))
            low = None if var is None else (min(var.choices) if var.choices else var.min)
            if low is None:
                return None
            lows[s] = ex.number(low)
        return e.xreplace(lows)

    def _check(self, a: Any, b: Any) -> bool | None:
        """Are two dims equal? True if provably, False if they differ at the defaults, else None."""
        diff = ex.as_expr(a - b)
        if diff == 0:
            return True
        if diff.is_number:
            return False
        at_defaults = diff.xreplace(self.defaults)
        if at_defaults.is_number:
            if at_defaults == 0:
                return None
            if any(c.xreplace(self.defaults) is sympy.false for c in self.conditions):
                return None  # a conditional layer that does not exist at the defaults: nothing to compare there
            return False
        return None


def _check_dims(shapes: list[Shape]) -> None:
    """Dims that are already numbers must be positive integers (channels from a bad width...)."""
    for shape in shapes:
        for d in shape:
            if d.is_number and not (d.is_Integer and d > 0):
                kind = "non-integer" if not d.is_Integer else "non-positive"
                raise SpecError(f"output shape {fmt_shape(shape)} has a {kind} dim {fmt_shape((d,))[1:-1]}")


def _as_condition(value: Any) -> Any:
    if ex.is_condition(value):
        return value
    if getattr(value, "is_number", False):
        return sympy.true if value != 0 else sympy.false
    return sympy.Ne(value, 0)


def is_integer_dtype(dtype: str) -> bool:
    return dtype in INTEGER_DTYPES


def _symbolic_domains(opdef: Any, attrs: dict[str, Any]) -> tuple[Any, ...]:
    """Attribute values that depend on variables, as sizes that must be positive integers (what
    the compiled study evaluator checks): a positive integer as it is, a non-negative one plus 1."""
    out = []
    for k, a in opdef.attrs.items():
        if a.check not in ("pos_int", "nonneg_int"):
            continue
        value = attrs.get(k)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, sympy.Basic) and not v.is_number and not ex.is_condition(v):
                out.append(v if a.check == "pos_int" else v + 1)
    return tuple(out)
