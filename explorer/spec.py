"""Step 1 of the pipeline: YAML text -> a validated :class:`Spec` (docs/spec-language.md).

The top-level structure (variables, inputs, blocks) is checked by pydantic; layers stay plain
mappings here and are checked against each op's attribute table when the graph is built.
"""

from __future__ import annotations

import keyword
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import sympy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from explorer import bundled, yamlfile
from explorer.errors import SpecError, brief, did_you_mean

Number = Union[int, float]
DTYPE_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1,
               "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1}
# bits per element of every dtype a tensor may be stored in; int4 only for weights and the KV cache
DTYPE_BITS = {**{k: 8 * v for k, v in DTYPE_BYTES.items()}, "int4": 4}
INTEGER_DTYPES = {"int64", "int32", "int16", "int8", "uint8", "bool"}
SPECS_DIR = bundled.folder("specs")
MAX_LAYER_ENTRIES = 20_000  # layer entries written in one file (top level and blocks), before repeats
_COUNTED = yamlfile.Counted((("layers",), ("blocks", "*", "layers")), MAX_LAYER_ENTRIES, "layer entries")


MAX_NUMBER = 10**30  # largest |value| of a variable's default, bounds, step or choices (as expressions)
# Constants of the expression language: a variable of that name would shadow them.
CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,7}")  # a torch module class
RESERVED = frozenset({"True", "False", "true", "false", "None"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_name(name: object, what: str) -> str:
    """A name usable in expressions: an ASCII identifier, not a keyword or a function name.

    ASCII only because Python folds identifiers to NFKC (``ﬁ`` reads as ``fi``).
    """
    if isinstance(name, str) and len(name) > 200:
        raise ValueError(f"{what} {brief(name)} is longer than 200 characters")
    if not isinstance(name, str) or not name.isascii() or not name.isidentifier():
        raise ValueError(f"{what} {name!r} is not a name (ASCII letters, digits and _, not starting "
                         "with a digit)")
    if keyword.iskeyword(name) or name in RESERVED:
        raise ValueError(f"{what} {name!r} is reserved (a Python keyword or a constant of expressions)")
    return name


def _finite(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("must be a finite number")
    if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) > MAX_NUMBER:
        raise ValueError("must be at most 1e30 in absolute value")
    return v


class Variable(_Strict):
    """A named symbol with a default and a domain (min/max/step or choices)."""

    default: Number
    min: Number | None = None
    max: Number | None = None
    step: Number | None = None
    choices: list[Number] | None = None
    log: bool = False
    description: str = ""

    @field_validator("default", "min", "max", "step", "choices", mode="before")
    @classmethod
    def _not_bool(cls, v: object) -> object:
        if isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v)):
            raise ValueError("must be a number, not true/false")
        return v

    @field_validator("default", "min", "max", "step", "choices")
    @classmethod
    def _finite(cls, v: object) -> object:
        for x in v if isinstance(v, list) else [v]:
            _finite(x)
        return v

    @model_validator(mode="after")
    def _domain(self) -> Variable:
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must not be empty")
            if self.default not in self.choices:
                raise ValueError(f"default {self.default} is not among choices {self.choices}")
            return self
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min <= max` must hold, but got (min={self.min}, max={self.max})")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be positive, got {self.step}")
        problem = self.check(self.default)
        if problem:
            raise ValueError(f"default {problem}")
        return self

    @property
    def integer(self) -> bool:
        values = [self.default, self.min, self.max, self.step, *(self.choices or [])]
        return all(isinstance(v, int) for v in values if v is not None)

    @property
    def positive(self) -> bool:
        lowest = min(self.choices) if self.choices else self.min
        return lowest is not None and lowest > 0

    def check(self, value: Number) -> str | None:
        """Why ``value`` is outside the domain, or None."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a finite number"
        if abs(value) > MAX_NUMBER:
            return f"{value:g} is too large (limit 1e30)"
        if self.choices is not None:
            return None if value in self.choices else f"{value} is not one of {self.choices}"
        if self.min is not None and value < self.min:
            return f"{value} is below min {self.min}"
        if self.max is not None and value > self.max:
            return f"{value} is above max {self.max}"
        if self.step is not None:
            base = Fraction(str(self.min if self.min is not None else 0))
            if (Fraction(str(value)) - base) % Fraction(str(self.step)) != 0:
                return f"{value} is not on the grid min + k*step (step {self.step})"
        if self.integer and not float(value).is_integer():
            return f"{value} is not an integer"
        return None

    def values(self) -> list[Number]:
        """Every value of a discrete domain (choices, or min..max by step), for sweeps."""
        if self.choices is not None:
            return list(self.choices)
        if self.min is None or self.max is None or (self.step is None and not self.integer):
            raise SpecError("a continuous domain has no finite list of values; give step or choices")
        step = Fraction(str(self.step if self.step is not None else 1))
        lo, hi = Fraction(str(self.min)), Fraction(str(self.max))
        count = int((hi - lo) / step) + 1
        if count > 1_000_000:
            raise SpecError(f"domain has {count} values (limit 1,000,000)")
        cast = int if self.integer else float
        return [cast(lo + k * step) for k in range(count)]


class InputDef(_Strict):
    shape: list[Union[int, str]]
    dtype: str = "fp32"

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        if v not in DTYPE_BYTES:
            raise ValueError(f"unknown dtype '{v}'{did_you_mean(v, DTYPE_BYTES)}; known: {', '.join(DTYPE_BYTES)}")
        return v


class BlockDef(_Strict):
    params: dict[str, Any] = Field(default_factory=dict)
    let: dict[str, Union[str, int, float]] = Field(default_factory=dict)  # named expressions, in order
    inputs: list[str] = Field(default_factory=lambda: ["input"])
    layers: list[dict[str, Any]]
    output: Union[str, list[str], None] = None
    description: str = ""
    module: str | None = None  # the torch container class of each instance (torchsummary lists it)

    @field_validator("module")
    @classmethod
    def _module(cls, v: str | None) -> str | None:
        if v is not None and not CLASS_NAME.fullmatch(v):
            raise ValueError("a torch module class name (Bottleneck, torchvision.models.resnet.Bottleneck)")
        return v


class Spec(_Strict):
    name: str
    description: str = ""
    source: str = ""
    dtype: str = "fp32"
    variables: dict[str, Variable] = Field(default_factory=dict)
    let: dict[str, Union[str, int, float]] = Field(default_factory=dict)  # named expressions, in order
    inputs: dict[str, Union[InputDef, list[Union[int, str]]]]
    blocks: dict[str, BlockDef] = Field(default_factory=dict)
    layers: list[dict[str, Any]]
    outputs: list[str] | None = None

    # Not part of the file: where it came from, for error messages.
    path: str = Field(default="<spec>", exclude=True)
    lines: Any = Field(default_factory=dict, exclude=True, repr=False)  # yamlfile.Lines

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, v: dict[str, Any]) -> dict[str, InputDef]:
        if not v:
            raise ValueError("at least one input is needed")
        return {k: (InputDef(shape=s) if isinstance(s, list) else s) for k, s in v.items()}

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        return InputDef._dtype(v)

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("at least one layer is needed")
        return v

    def line(self, *key: Any) -> int | None:
        return yamlfile.line_of(self.lines, key) if key else None

    def symbols(self) -> dict[str, sympy.Symbol]:
        """One sympy symbol per variable, with assumptions that help simplification."""
        return {
            name: sympy.Symbol(name, integer=var.integer or None, positive=var.positive or None)
            for name, var in self.variables.items()
        }


def resolve_path(name: str | Path) -> Path:
    """A spec path, or the name of a bundled spec (``resnet50``)."""
    return yamlfile.find(name, SPECS_DIR, SpecError, "spec")


def load_spec(path: str | Path) -> Spec:
    """Read a spec file; every problem is a :class:`SpecError` with path and line."""
    p = resolve_path(path)
    doc = yamlfile.load(p, SpecError, _COUNTED)
    return parse_spec(doc)


def loads_spec(text: str, path: str = "<string>") -> Spec:
    return parse_spec(yamlfile.loads(text, path, SpecError, _COUNTED))


def parse_spec(doc: yamlfile.YamlDoc) -> Spec:
    if not isinstance(doc.data, dict):
        raise SpecError("a spec is a mapping with name, variables, inputs and layers", path=doc.path, line=1)
    try:
        spec = Spec.model_validate({**doc.data, "path": doc.path, "lines": doc.lines})
    except ValidationError as exc:
        raise yamlfile.pydantic_error(exc, doc, SpecError, Spec) from None
    _check_names(spec)
    return spec


def _check_names(spec: Spec) -> None:
    """Variable and block-parameter names must be plain ASCII identifiers (see :func:`check_name`)."""
    keys: list[tuple[tuple[str, ...], str, str]] = [(("variables", n), n, "variable name") for n in spec.variables]
    keys += [(("blocks", b, "params", n), n, "block parameter") for b, bd in spec.blocks.items() for n in bd.params]
    keys += [(("let", n), n, "let name") for n in spec.let]
    keys += [(("blocks", b, "let", n), n, "let name") for b, bd in spec.blocks.items() for n in bd.let]
    for key, name, what in keys:
        try:
            check_name(name, what)
        except ValueError as exc:
            raise SpecError(str(exc), path=spec.path, line=spec.line(*key)) from None
    for name in spec.let:
        if name in spec.variables:
            raise SpecError(f"let: '{name}' is also a variable; give the expression another name",
                            path=spec.path, line=spec.line("let", name))
    for b, bd in spec.blocks.items():
        for name in bd.let:
            if name in bd.params:
                raise SpecError(f"let: '{name}' is also a parameter of block '{b}'", path=spec.path,
                                line=spec.line("blocks", b, "let", name))
