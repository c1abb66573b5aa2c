"""Study files (``studies/*.yaml``, docs/studies.md): what may move, on which devices, what to
optimize and what must hold."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from explorer import bundled, yamlfile
from explorer.errors import ExplorerError, StudyError, did_you_mean
from explorer.hardware import load_device
from explorer.spec import DTYPE_BITS, DTYPE_BYTES, Spec, load_spec
from explorer.hardware.serving import Scenario
from explorer.study.evaluate import METRICS, SCENARIO_METRICS, Target
from explorer.units import parse_quantity

SAMPLERS = ("tpe", "nsga2", "random", "grid", "exhaustive")
Number = Union[int, float]
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*(.+?)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
SEED_MAX = 2**32 - 1 - 1024  # numpy seeds are 32-bit; worker k uses seed + k


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchDim(_Strict):
    """One searched variable: int / float (step or log) / categorical; or `spec` for its domain."""

    type: Literal["int", "float", "categorical", "spec"] = "spec"
    low: Number | None = None
    high: Number | None = None
    step: Number | None = None
    log: bool = False
    choices: list[Number] | None = None

    @model_validator(mode="after")
    def _shape(self) -> SearchDim:
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical dimension needs 'choices'")
        for key in ("low", "high", "step"):
            v = getattr(self, key)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"'{key}' must be a finite number, got {v}")
        for v in self.choices or []:
            if not math.isfinite(v):
                raise ValueError(f"choices must be finite numbers, got {v}")
        if self.choices is not None and len(set(self.choices)) != len(self.choices):
            raise ValueError(f"choices must be distinct, got {self.choices}")
        if self.type in ("int", "float"):
            if self.low is None or self.high is None:
                raise ValueError(f"an {self.type} dimension needs 'low' and 'high'")
            if self.step is not None and self.step <= 0:
                raise ValueError(f"'step' must be > 0, got {self.step}")
            if self.type == "int":
                for key in ("low", "high", "step"):
                    v = getattr(self, key)
                    if v is not None and v != int(v):
                        raise ValueError(f"an int dimension needs an integer '{key}', got {v}")
            if self.low > self.high:
                raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high})")
            if self.log and self.step is not None:
                raise ValueError("'log' and 'step' cannot be combined (as in Optuna)")
            if self.log and self.low <= 0:
                raise ValueError(f"a log dimension needs low > 0, got {self.low}")
        return self


class Objective(_Strict):
    metric: str
    direction: Literal["maximize", "minimize"]


class ScenarioDef(_Strict):
    """A request for LLM serving metrics: prompt tokens in, generated tokens out (per sequence)."""

    prompt: int = Field(ge=1, le=1_000_000)
    generate: int = Field(ge=1, le=65_536)


class StudyFile(_Strict):
    name: str
    description: str = ""
    spec: str
    hardware: Union[str, list[str]]
    dtype: Union[str, list[str]] = "fp32"
    weight_dtype: str | None = None
    kv_dtype: str | None = None
    execution: Literal["eager", "fused"] | None = None
    tp: Union[int, list[int]] = 1
    scenario: ScenarioDef | None = None
    search: dict[str, Union[SearchDim, Literal["spec"]]]
    fixed: dict[str, Number] = Field(default_factory=dict)
    objectives: list[Objective] = Field(min_length=1, max_length=4)
    constraints: list[str] = Field(default_factory=list)
    sampler: Literal["tpe", "nsga2", "random", "grid", "exhaustive"] = "tpe"
    n_trials: int = Field(100, ge=1, le=1_000_000)
    seed: int | None = Field(0, ge=0, le=SEED_MAX)
    storage: str | None = None
    output: str | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not _NAME.match(v) or v in (".", ".."):
            raise ValueError("must be a plain name of letters, digits, '_', '-' and '.' (it names the "
                             "output folder)")
        return v

    @field_validator("hardware", "dtype")
    @classmethod
    def _distinct(cls, v: Union[str, list[str]]) -> Union[str, list[str]]:
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list; give at least one")
            twice = sorted({x for x in v if v.count(x) > 1})
            if twice:
                raise ValueError(f"listed twice: {', '.join(twice)}")
        return v

    @field_validator("objectives")
    @classmethod
    def _distinct_objectives(cls, v: list[Objective]) -> list[Objective]:
        metrics = [o.metric for o in v]
        twice = sorted({m for m in metrics if metrics.count(m) > 1})
        if twice:
            raise ValueError(f"metric {', '.join(twice)} appears twice; each objective needs its own metric")
        return v


@dataclass(frozen=True)
class Constraint:
    """``metric OP value`` in base units; ``violation`` <= 0 means satisfied (Optuna's convention)."""

    text: str
    metric: str
    op: str
    value: float

    def violation(self, metrics: dict[str, Any]) -> Any:
        x = metrics[self.metric]
        # Normalized so that violations of different metrics are comparable: 0.1 = 10 % over.
        scale = abs(self.value) if self.value else 1.0
        return (x - self.value) / scale if self.op in ("<=", "<") else (self.value - x) / scale

    def holds(self, metrics: dict[str, Any]) -> Any:
        return _OPS[self.op](metrics[self.metric], self.value)


@dataclass
class Study:
    """A validated study, with the spec, devices and constraints resolved."""

    file: StudyFile
    path: str
    spec: Spec
    targets: list[Target]
    search: dict[str, dict[str, Any]]  # variable -> {type, low, high, step, log, choices}
    fixed: dict[str, Number]
    constraints: list[Constraint]
    output: Path
    storage: str

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def objectives(self) -> list[Objective]:
        return self.file.objectives

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.file.objectives]

    def grid(self) -> dict[str, list[Any]]:
        """Every value of every searched dimension (needs discrete dimensions)."""
        out = {}
        for name, dim in self.search.items():
            values = discrete_values(dim)
            if values is None:
                raise StudyError(f"search.{name}: a continuous dimension has no grid; give it a 'step' or "
                                 "'choices' to use the grid or exhaustive sampler", path=self.path)
            out[name] = values
        if len(self.targets) > 1:
            out["target"] = [t.label for t in self.targets]
        return out

    def target(self, label: str) -> Target:
        return next(t for t in self.targets if t.label == label)


def discrete_values(dim: dict[str, Any]) -> list[Any] | None:
    if dim["type"] == "categorical":
        return list(dim["choices"])
    if dim["step"] is None and dim["type"] == "float":
        return None
    step = dim["step"] or 1
    count = int(round((dim["high"] - dim["low"]) / step)) + 1
    values = [dim["low"] + k * step for k in range(count)]
    if dim["type"] == "int":
        return [int(v) for v in values]
    return [round(v, 10) for v in values]


STUDIES_DIR = bundled.folder("studies")


def load_study(path: str | Path, *, storage: str | None = None) -> Study:
    """A study file, or a bundled study by name (``quickstart``; ``explorer study list`` lists them)."""
    path = yamlfile.find(path, STUDIES_DIR, StudyError, "study")
    doc = yamlfile.load(path, StudyError)
    if not isinstance(doc.data, dict):
        raise StudyError("a study is a mapping (name, spec, hardware, search, objectives ...)", path=doc.path, line=1)
    try:
        f = StudyFile.model_validate(doc.data)
    except ValidationError as exc:
        raise yamlfile.pydantic_error(exc, doc, StudyError, StudyFile) from None
    return _resolve(f, doc, storage)


def _resolve(f: StudyFile, doc: yamlfile.YamlDoc, storage: str | None) -> Study:
    def fail(message: str, *key: Any) -> StudyError:
        return StudyError(message, path=doc.path, line=doc.line(*key))

    base = Path(doc.path).parent
    spec = _locate(lambda p: load_spec(p), f.spec, base, ("spec",), fail)
    devices = [_locate(load_device, h, base, ("hardware",), fail)
               for h in ([f.hardware] if isinstance(f.hardware, str) else f.hardware)]
    dtypes = [f.dtype] if isinstance(f.dtype, str) else list(f.dtype)
    for dt in [*dtypes, *( [f.weight_dtype] if f.weight_dtype else [])]:
        if dt not in DTYPE_BYTES and dt not in DTYPE_BITS:
            raise fail(f"unknown dtype '{dt}'{did_you_mean(dt, DTYPE_BYTES)}", "dtype")
    if f.kv_dtype is not None and f.kv_dtype not in DTYPE_BITS:
        raise fail(f"unknown KV-cache dtype '{f.kv_dtype}'{did_you_mean(f.kv_dtype, DTYPE_BITS)}", "kv_dtype")
    tps = [f.tp] if isinstance(f.tp, int) else list(f.tp)
    if not tps or any(t < 1 or t > 1024 for t in tps) or len(set(tps)) != len(tps):
        raise fail(f"tp: tensor-parallel degrees are distinct whole numbers in 1..1024, got {f.tp}", "tp")
    scenario = None if f.scenario is None else Scenario(f.scenario.prompt, f.scenario.generate)
    targets = [Target(d, dt, f.weight_dtype, f.execution, f.kv_dtype, tp, scenario)
               for d in devices for dt in dtypes for tp in tps if dt in d.peak]
    for t in targets:
        if t.tp > 1 and t.device.interconnect is None:
            raise fail(f"tp: tensor parallelism needs the interconnect of '{t.device.id}'; its profile has none", "tp")
    missing = [(d.id, dt) for d in devices for dt in dtypes if dt not in d.peak]
    if missing and not targets or (missing and len(devices) == 1):
        d, dt = missing[0]
        raise fail(f"hardware '{d}' has no {dt} peak; it has {', '.join(load_device(d).peak)}", "dtype")
    search = {name: _dimension(name, dim, spec, fail) for name, dim in f.search.items()}
    for name, value in f.fixed.items():
        if name not in spec.variables:
            raise fail(f"unknown variable '{name}'{did_you_mean(name, spec.variables)}", "fixed", name)
        if name in search:
            raise fail(f"variable '{name}' is both searched and fixed", "fixed", name)
        problem = spec.variables[name].check(value)
        if problem:
            raise fail(f"fixed.{name}: {problem}", "fixed", name)
    for i, obj in enumerate(f.objectives):
        if obj.metric not in METRICS:
            raise fail(f"unknown metric '{obj.metric}'{did_you_mean(obj.metric, METRICS)}; "
                       f"metrics: {', '.join(METRICS)}", "objectives", i, "metric")
        if obj.metric in SCENARIO_METRICS and f.scenario is None:
            raise fail(f"metric '{obj.metric}' is about a request: add 'scenario: {{prompt: P, generate: G}}'",
                       "objectives", i, "metric")
    constraints = [_constraint(text, fail, ("constraints", i)) for i, text in enumerate(f.constraints)]
    for i, c in enumerate(constraints):
        if c.metric in SCENARIO_METRICS and f.scenario is None:
            raise fail(f"constraint {c.text!r} is about a request: add 'scenario: {{prompt: P, generate: G}}'",
                       "constraints", i)
    output = Path(f.output) if f.output else Path("explorer-out") / f.name
    if output.exists() and not output.is_dir():
        raise fail(f"output: '{output}' is a file, not a folder", "output" if f.output else "name")
    store = storage or f.storage or f"sqlite:///{output / 'study.db'}"
    problem = _storage_problem(store)
    if problem:
        raise fail(problem, *(("storage",) if f.storage and not storage else ()))
    return Study(f, doc.path, spec, targets, search, dict(f.fixed), constraints, output, store)


def _storage_problem(url: str) -> str | None:
    """A storage URL that cannot work, said before anything is created."""
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            rest = url.removeprefix(prefix)
            if not rest.strip():
                return f"storage {url!r} names no file; write {prefix}PATH"
            if Path(rest).is_dir():
                return f"storage {url!r}: '{rest}' is a folder; name a file in it"
    return None


def _locate(load: Any, name: str, base: Path, key: tuple[Any, ...], fail: Any) -> Any:
    """Load a spec or device by bundled name, by path, or by path relative to the study file."""
    candidate = base / name
    try:
        return load(candidate if candidate.suffix in (".yaml", ".yml") and candidate.exists() else name)
    except ExplorerError as exc:
        if exc.path and exc.path != name and Path(exc.path).exists():
            raise  # the file was found; the problem is inside it
        raise fail(f"{key[0]}: {exc.message}", *key) from None


def _dimension(name: str, dim: Any, spec: Spec, fail: Any) -> dict[str, Any]:
    if name not in spec.variables:
        raise fail(f"unknown variable '{name}'{did_you_mean(name, spec.variables)}; "
                   f"the spec has {', '.join(spec.variables)}", "search", name)
    var = spec.variables[name]
    if dim == "spec" or getattr(dim, "type", None) == "spec":
        if var.choices is not None:
            return {"type": "categorical", "choices": list(var.choices), "low": None, "high": None,
                    "step": None, "log": False}
        if var.min is None or var.max is None:
            raise fail(f"search.{name}: the spec gives no min/max; give low and high here", "search", name)
        kind = "int" if var.integer else "float"
        return {"type": kind, "low": var.min, "high": var.max, "step": var.step, "log": var.log, "choices": None}
    d: dict[str, Any] = dim.model_dump()
    values = d["choices"] if d["type"] == "categorical" else [d["low"], d["high"]]
    for v in values:
        problem = var.check(v) if d["type"] == "categorical" else _range_problem(var, v)
        if problem:
            raise fail(f"search.{name}: {problem} (the spec's domain)", "search", name)
    return d


def _range_problem(var: Any, v: Number) -> str | None:
    if var.min is not None and v < var.min:
        return f"{v} is below min {var.min}"
    if var.max is not None and v > var.max:
        return f"{v} is above max {var.max}"
    return None


def _constraint(text: str, fail: Any, key: tuple[Any, ...]) -> Constraint:
    m = _CONSTRAINT.match(text)
    if not m:
        raise fail(f"cannot read constraint {text!r}: write 'metric <= value unit', e.g. 'peak_memory <= 4 GB'", *key)
    metric, op, value = m.groups()
    if metric not in METRICS:
        raise fail(f"constraint {text!r}: unknown metric '{metric}'{did_you_mean(metric, METRICS)}", *key)
    dimension = METRICS[metric][1]
    try:
        number = _quantity(value, dimension)
    except ExplorerError as exc:
        raise fail(f"constraint {text!r}: {exc.message}", *key) from None
    except (ArithmeticError, ValueError):  # decimal.Overflow of 1e9999999, float('abc')
        raise fail(f"constraint {text!r}: cannot read {value!r} as a number", *key) from None
    problem = _bound_problem(metric, op, number, dimension)
    if problem:
        raise fail(f"constraint {text!r}: {problem}", *key)
    return Constraint(text, metric, op, number)


def _bound_problem(metric: str, op: str, number: float, dimension: str) -> str | None:
    """A limit that is not a finite number, or one that every configuration (or none) meets."""
    if not math.isfinite(number):
        return f"the limit must be a finite number, got {number}"
    upper = op in ("<=", "<")
    if number < 0 or (number == 0 and op == "<"):
        return f"{metric} is never negative, so this {'never' if upper else 'always'} holds"
    if dimension == "fraction" and number > 1:
        return f"{metric} is at most 100 %, so this {'always' if upper else 'never'} holds (got {100 * number:g} %)"
    return None


def _quantity(text: str, dimension: str) -> float:
    if dimension == "fraction":
        t = text.strip()
        return float(t[:-1]) / 100 if t.endswith("%") else parse_quantity(t, "count")
    if dimension == "count":
        m = re.match(r"^\s*([-+0-9.eE]+)\s*([KMGTP]?)\s*$", text)
        if not m:
            raise ExplorerError(f"cannot read {text!r} as a count (e.g. '3e6' or '25 M')")
        try:
            base = float(m.group(1))
        except ValueError:
            raise ExplorerError(f"cannot read {text!r} as a count (e.g. '3e6' or '25 M')") from None
        return base * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}[m.group(2)]
    if dimension == "rate":
        return parse_quantity(text.replace("/s", " /s").replace("  ", " ") if "/s" in text else text, "rate") \
            if "/s" in text else parse_quantity(text, "count")
    return parse_quantity(text, dimension)

