"""Generated and mutated inputs (specs, hardware profiles, study files) for the property tests
and ``benchmarks/fuzz.py``. Every generator takes a ``random.Random`` so that runs repeat.

Values are drawn from good ones and from a pool of hostile ones (negative, zero, fractions,
non-finite, huge, wrong types, text that is not an expression).
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

HOSTILE: list[Any] = [
    -5, -2, -1, 0, 0.5, 1.5, 2**40, 10**31, 10**400, 1e400, float("inf"), float("-inf"), float("nan"),
    True, False, None, "", "abc", "n", "n + 1", "n > 2", "True", "1/0", "x:²", "ﬁ", "__import__('os')",
    "(n+n*2)**64", "9**99", "dim(x, 5)", "max()", [], [1, 2], [0, 1.5, 2], {"a": 1}, "1e9999999 TFLOP/s",
    "-3 TB/s", ".inf", "1e400 s", "12 parsecs", "0 GB", "5", "7 us", 3,
]

# op -> {attribute: good values}; inputs: rank-agnostic where the op allows it
OPS: dict[str, dict[str, list[Any]]] = {
    "relu": {}, "gelu": {"approximate": ["none", "tanh"]}, "sigmoid": {}, "identity": {},
    "dropout": {"p": [0, 0.1, 0.5]},
    "softmax": {"axis": [-1, 1, 0]},
    "conv2d": {"out": [4, 8, 16, "n * 4"], "kernel": [1, 3, [3, 1]], "stride": [1, 2], "padding": [0, 1, "same"],
               "dilation": [1, 2], "groups": [1, 2, 4], "bias": [True, False]},
    "conv_transpose2d": {"out": [4, 8], "kernel": [2, 3], "stride": [1, 2], "padding": [0, 1]},
    "linear": {"out": [4, 10, "n * 2"], "bias": [True, False]},
    "batchnorm": {}, "layernorm": {"dims": [1, 2]}, "groupnorm": {"groups": [1, 2, 4]},
    "maxpool": {"kernel": [2, 3], "stride": [1, 2], "padding": [0, 1]},
    "avgpool": {"kernel": [2], "ceil_mode": [True, False]},
    "adaptive_avgpool": {"size": [1, 2, [2, 3]]},
    "mean": {"axes": [-1, [2, 3], 1], "keepdim": [True, False]},
    "upsample": {"scale": [2, 1.5], "mode": ["nearest", "bilinear"]},
    "flatten": {"start": [1, 0], "end": [-1]},
    "reshape": {"shape": [[1, -1], [-1, 4]]},
    "permute": {"dims": [[0, 2, 3, 1], [1, 0]]},
    "transpose": {"dim0": [1, -2], "dim1": [-1, 2]},
    "select": {"axis": [1, 0], "index": [0, 1]},
    "slice": {"axis": [1], "start": [0, 1], "end": [2, 4]},
    "chunk": {"axis": [1], "chunks": [1, 2]},
    "channel_shuffle": {"groups": [1, 2]},
    "embedding": {"num": [10, 100], "dim": [4, 8]},
    "attention": {"heads": [1, 2, 4], "causal": [True, False]},
    "scale": {"value": [2, 0.5]},
    "crop": {"size": [[2, 2], 4]},
}
REQUIRED = {"conv2d": ("out", "kernel"), "conv_transpose2d": ("out", "kernel"), "linear": ("out",),
            "maxpool": ("kernel",), "avgpool": ("kernel",), "mean": ("axes",), "reshape": ("shape",),
            "permute": ("dims",), "select": ("axis",), "slice": ("axis", "end"), "chunk": ("axis", "chunks"),
            "channel_shuffle": ("groups",), "embedding": ("num", "dim"), "attention": ("heads",),
            "crop": ("size",)}


RANK = {"conv2d": 4, "conv_transpose2d": 4, "maxpool": 4, "avgpool": 4, "adaptive_avgpool": 4,
        "upsample": 4, "crop": 4, "attention": 3}
RANK_AFTER = {"flatten": 2, "embedding": None, "select": None, "mean": None}  # None: rank changes (unknown)


def hostile_value(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(HOSTILE))


def _value(rng: random.Random, good: list[Any], hostile: float) -> Any:
    return hostile_value(rng) if rng.random() < hostile or not good else copy.deepcopy(rng.choice(good))


def random_spec(rng: random.Random, hostile: float = 0.08) -> dict[str, Any]:
    """A chain of ops with random attributes (mostly plausible, sometimes hostile)."""
    hostile = hostile if rng.random() < 0.5 else 0.0
    rank = rng.choice([1, 2, 3, 4, 4, 4])
    dims = [rng.choice([1, 2, 4, 8, 16]) for _ in range(rank)]
    variables: dict[str, Any] = {"n": {"default": 2, "min": 1, "max": 4}}
    if rng.random() < hostile * 3:
        variables["v"] = {k: _value(rng, [1, 2, 4], 0.5) for k in ["default", *rng.sample(["min", "max", "step"], 1)]}
    if rng.random() < 0.5:
        dims[0] = "n"
    layers = []
    current: int | None = rank
    for i in range(rng.randint(1, 8)):
        fits = [op for op in OPS if RANK.get(op, current) == current or rng.random() < hostile]
        name = rng.choice(fits or list(OPS))
        current = RANK_AFTER.get(name, current) if name in RANK_AFTER else current
        attrs = OPS[name]
        layer: dict[str, Any] = {"name": f"l{i}", "op": name}
        for key in REQUIRED.get(name, ()):
            layer[key] = _value(rng, attrs[key], hostile)
        for key in rng.sample(list(attrs), k=min(len(attrs), rng.randint(0, 2))):
            layer[key] = _value(rng, attrs[key], hostile)
        if rng.random() < hostile:
            layer[rng.choice(["repeat", "when", "inputs", "name", "loop"])] = hostile_value(rng)
        elif rng.random() < 0.1:
            layer["repeat"] = rng.choice([2, "n"])
        if rng.random() < 0.08 and i > 0:
            layers.append({"name": f"a{i}", "op": "add", "inputs": [f"l{i - 1}", f"l{i - 1}"]})
        layers.append(layer)
    return {"name": "fuzz", "variables": variables, "inputs": {"x": dims}, "layers": layers}


def dump(data: Any) -> str:
    """YAML text of generated data (non-finite floats and long integers as YAML can write them)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**6)


def mutate_text(rng: random.Random, text: str) -> str:
    """A few character-level edits: delete, duplicate, swap in a hostile token."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        if not chars:
            break
        i = rng.randrange(len(chars))
        kind = rng.random()
        if kind < 0.3:
            del chars[i:i + rng.randint(1, 8)]
        elif kind < 0.5:
            chars[i:i] = chars[i:i + rng.randint(1, 20)]
        else:
            chars[i:i] = list(str(hostile_value(rng)))
    return "".join(chars)


def mutate_data(rng: random.Random, data: Any, count: int = 1) -> Any:
    """Replace ``count`` random leaves or entries of parsed YAML with hostile values, or drop them."""
    for _ in range(count):
        paths = list(_paths(data, ()))
        if not paths:
            return data
        path = rng.choice(paths)
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.15:
            del parent[path[-1]]
        else:
            parent[path[-1]] = hostile_value(rng)
    return data


def _paths(data: Any, prefix: tuple[Any, ...]) -> Any:
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def bundled(kind: str) -> list[Path]:
    return sorted((ROOT / kind).glob("*.yaml"))


def mutated_file(rng: random.Random, kind: str) -> str:
    """A bundled spec/profile/study with its data or its text mutated, as YAML text."""
    source = rng.choice(bundled(kind)).read_text()
    if rng.random() < 0.3:
        return mutate_text(rng, source)
    return dump(mutate_data(rng, yaml.safe_load(source), rng.randint(1, 3)))
