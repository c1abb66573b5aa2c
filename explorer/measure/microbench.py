"""Microbenchmarks for calibration: one-layer specs per kernel class over a grid of shapes.

Each benchmark is a tiny spec (one input or two, one layer) written as data, so it goes through the
same pipeline as any model: the spec's exact FLOPs and bytes, the kernel class from
:mod:`explorer.hardware.kernels`, the torch bridge to run it. The grids are generic (log-spaced
channels, planes and sizes, sampled with a fixed seed), chosen per class to span what real layers
use; they never contain the end-to-end models that ``explorer accuracy`` judges.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

CHANNELS = (8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 576, 768, 960, 1024, 1280, 2048)
PLANES = (4, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 72, 80, 88, 96, 112, 128, 144, 160)
MAX_MACS = 2.5e8  # keep one kernel to a few ms on a CPU core


@dataclass(frozen=True)
class Bench:
    klass: str
    label: str
    inputs: dict[str, list[int]]
    layer: dict[str, Any]
    epilogue: tuple[dict[str, Any], ...] = ()  # layers a fusing runtime runs inside the kernel


EPILOGUE_ACTS = ("relu", "relu6", "silu", "hardswish", "sigmoid", "gelu")


def with_epilogue(b: Bench, rng: random.Random) -> Bench:
    """For a fusing runtime: a conv gets a BatchNorm and/or an activation, a linear an activation."""
    layers: list[dict[str, Any]] = []
    if b.klass.startswith("conv") and rng.random() < 0.7:
        layers.append({"op": "batchnorm"})
    if (b.klass.startswith("conv") or b.klass == "matmul") and rng.random() < 0.7:
        layers.append({"op": rng.choice(EPILOGUE_ACTS)})
    if not layers:
        return b
    label = b.label + " + " + " + ".join(e["op"] for e in layers)
    return Bench(b.klass, label, b.inputs, b.layer, tuple(layers))


def _pick(rng: random.Random, values: tuple[int, ...], lo: int = 0, hi: int | None = None) -> int:
    pool = [v for v in values if v >= lo and (hi is None or v <= hi)]
    return rng.choice(pool)


def _conv(rng: random.Random, klass: str) -> Bench | None:
    k, s, g = 3, 1, 1
    res = _pick(rng, PLANES)
    if klass == "conv_stem":
        cin, cout = rng.choice((1, 3, 3, 3, 4)), _pick(rng, CHANNELS, 8, 128)
        res = rng.choice((32, 48, 64, 96, 128, 160, 192, 224, 256, 288, 320))
        k, s = rng.choice(((3, 2), (3, 2), (3, 1), (7, 2), (4, 4), (16, 16), (8, 8)))
    elif klass == "conv_dense":
        cin, cout = _pick(rng, CHANNELS, 8, 768), _pick(rng, CHANNELS, 8, 768)
        k, s = rng.choice(((3, 1), (3, 1), (3, 1), (3, 2), (5, 1), (7, 1)))
    elif klass == "conv_pointwise":
        cin, cout = _pick(rng, CHANNELS), _pick(rng, CHANNELS)
        k, s = 1, rng.choice((1, 1, 1, 1, 2))
    elif klass in ("conv_depthwise", "conv_depthwise_strided"):
        cin = cout = g = _pick(rng, CHANNELS, 8, 1280)
        k = rng.choice((3, 3, 3, 5, 7))
        s = 1 if klass == "conv_depthwise" else 2
        res = _pick(rng, PLANES) if s == 1 else _pick(rng, PLANES, 8) * 2
    elif klass == "conv_grouped":
        g = rng.choice((2, 4, 8, 16, 32))
        cin = cout = g * rng.choice((4, 8, 16, 32, 64))
        s = rng.choice((1, 1, 2))
    else:  # conv_transpose
        cin, cout = _pick(rng, CHANNELS, 8, 512), _pick(rng, CHANNELS, 8, 512)
        k, s = 2, 2
        res = _pick(rng, PLANES, 4, 56)
    out_res = (res + 2 * (k // 2) - k) // s + 1 if klass != "conv_transpose" else res * 2
    if out_res < 1:
        return None
    batch = rng.choice((1, 1, 1, 1, 2, 4, 8))
    macs = batch * cout * out_res * out_res * cin // g * k * k
    if macs > MAX_MACS or macs < 1:
        return None
    op = "conv_transpose2d" if klass == "conv_transpose" else "conv2d"
    layer: dict[str, Any] = {"op": op, "out": cout, "kernel": k, "stride": s, "bias": rng.random() < 0.3}
    if op == "conv2d":
        layer.update(padding=k // 2 if k < s * 2 or s == 1 else 0, groups=g)
    return Bench(klass, f"{op} {cin}->{cout} k{k} s{s} g{g} @{res} x{batch}", {"x": [batch, cin, res, res]}, layer)


def _matmul(rng: random.Random) -> Bench | None:
    m = rng.choice((1, 1, 2, 4, 8, 16, 32, 50, 64, 128, 197, 256, 384, 512, 1024))
    k, n = _pick(rng, CHANNELS, 32) * rng.choice((1, 1, 2, 4)), _pick(rng, CHANNELS, 16) * rng.choice((1, 1, 2, 4))
    if rng.random() < 0.15:  # a vocabulary-sized output (a language model's head)
        n = rng.choice((10000, 32000, 50257))
    if m * k * n > MAX_MACS * 4:
        return None
    shape = [1, m, k] if rng.random() < 0.6 else [m, k]
    return Bench("matmul", f"linear {m}x{k}x{n}", {"x": shape}, {"op": "linear", "out": n, "bias": rng.random() < 0.7})


def _attention(rng: random.Random) -> Bench | None:
    seq = rng.choice((8, 16, 32, 50, 64, 128, 197, 256, 384, 512, 768, 1024))
    heads = rng.choice((1, 2, 4, 6, 8, 12, 16))
    dim = heads * rng.choice((32, 48, 64, 64, 80, 128))
    macs = 4 * seq * dim * dim + 2 * seq * seq * dim
    if macs > MAX_MACS * 1.5 or dim > 2048:
        return None
    return Bench("attention", f"attention s{seq} d{dim} h{heads}", {"x": [1, seq, dim]},
                 {"op": "attention", "heads": heads, "causal": rng.random() < 0.3})


def _elems(rng: random.Random) -> list[int]:
    n = 2 ** rng.uniform(8, 24)
    if rng.random() < 0.6:
        c = _pick(rng, CHANNELS, 8, 1024)
        side = max(1, round((n / c) ** 0.5))
        return [1, c, side, side]
    d = _pick(rng, CHANNELS, 32)
    return [1, max(1, round(n / d)), d]


def _elementwise(rng: random.Random) -> Bench | None:
    op = rng.choice(("relu", "relu6", "gelu", "silu", "sigmoid", "hardswish", "tanh", "add", "add", "mul",
                     "scale"))
    shape = _elems(rng)
    if op in ("add", "mul"):
        return Bench("elementwise", f"{op} {shape}", {"x": shape, "y": shape}, {"op": op, "inputs": ["x", "y"]})
    layer: dict[str, Any] = {"op": op}
    if op == "scale":
        layer["value"] = 0.5
    return Bench("elementwise", f"{op} {shape}", {"x": shape}, layer)


def _norm(rng: random.Random) -> Bench | None:
    shape = _elems(rng)
    op = "batchnorm" if len(shape) == 4 else "layernorm"
    if op == "batchnorm" and rng.random() < 0.15:
        op = "groupnorm"
        return Bench("norm", f"{op} {shape}", {"x": shape}, {"op": op, "groups": 8 if shape[1] % 8 == 0 else 1})
    return Bench("norm", f"{op} {shape}", {"x": shape}, {"op": op})


def _pooling(rng: random.Random, klass: str = "pooling") -> Bench | None:
    c, res = _pick(rng, CHANNELS, 8, 1280), _pick(rng, PLANES, 4) * rng.choice((1, 2))
    kind = (rng.choice(("maxpool", "maxpool", "maxpool", "adaptive_maxpool")) if klass == "maxpool" else
            rng.choice(("avgpool", "adaptive_avgpool", "adaptive_avgpool", "mean")))
    if c * res * res > 2**23:
        return None
    layer: dict[str, Any] = {"op": kind}
    if kind == "maxpool":
        layer.update(kernel=3, stride=2, padding=1)
    elif kind == "avgpool":
        layer.update(kernel=2, stride=2)
    elif kind in ("adaptive_avgpool", "adaptive_maxpool"):
        layer.update(size=1)
    else:
        layer.update(axes=[2, 3])
    return Bench(klass, f"{kind} {c}@{res}", {"x": [1, c, res, res]}, layer)


def _softmax(rng: random.Random) -> Bench | None:
    rows, cols = 2 ** rng.randint(0, 14), 2 ** rng.randint(3, 12)
    if rows * cols > 2**23:
        return None
    return Bench("softmax", f"softmax {rows}x{cols}", {"x": [1, rows, cols]}, {"op": "softmax", "axis": -1})


def _data(rng: random.Random) -> Bench | None:
    shape = _elems(rng)
    if rng.random() < 0.7:
        return Bench("data", f"concat {shape}", {"x": shape, "y": shape},
                     {"op": "concat", "inputs": ["x", "y"], "axis": 1})
    if len(shape) != 4 or shape[1] % 2:
        return None
    return Bench("data", f"channel_shuffle {shape}", {"x": shape}, {"op": "channel_shuffle", "groups": 2})


def _embedding(rng: random.Random) -> Bench | None:
    tokens, num, dim = rng.choice((1, 8, 64, 256, 1024)), rng.choice((1000, 10000, 50257)), _pick(rng, CHANNELS, 64)
    return Bench("embedding", f"embedding {tokens} of {num}x{dim}", {"ids": [1, tokens]},
                 {"op": "embedding", "num": num, "dim": dim})


def _view(rng: random.Random) -> Bench | None:
    shape = _elems(rng)
    op = rng.choice(("flatten", "identity", "dropout", "transpose"))
    layer: dict[str, Any] = {"op": op}
    if op == "transpose":
        layer.update(dim0=1, dim1=2)
    return Bench("view", f"{op} {shape}", {"x": shape}, layer)


GRIDS: dict[str, tuple[Callable[[random.Random], Bench | None], int]] = {
    "conv_stem": (lambda r: _conv(r, "conv_stem"), 36),
    "conv_dense": (lambda r: _conv(r, "conv_dense"), 70),
    "conv_pointwise": (lambda r: _conv(r, "conv_pointwise"), 70),
    "conv_depthwise": (lambda r: _conv(r, "conv_depthwise"), 80),
    "conv_depthwise_strided": (lambda r: _conv(r, "conv_depthwise_strided"), 36),
    "conv_grouped": (lambda r: _conv(r, "conv_grouped"), 16),
    "conv_transpose": (lambda r: _conv(r, "conv_transpose"), 12),
    "matmul": (_matmul, 60),
    "attention": (_attention, 36),
    "elementwise": (_elementwise, 70),
    "norm": (_norm, 50),
    "maxpool": (lambda r: _pooling(r, "maxpool"), 24),
    "pooling": (_pooling, 24),
    "softmax": (_softmax, 20),
    "data": (_data, 24),
    "embedding": (_embedding, 12),
    "view": (_view, 16),
}


def benches(classes: list[str] | None = None, scale: float = 1.0, seed: int = 0,
            fused: bool = False) -> Iterator[Bench]:
    """The grid of every class (``scale`` < 1 for a quick run), deterministic for a seed. ``fused``:
    for a fusing runtime, anchors get epilogues and views (free there) are left out."""
    for klass, (make, count) in GRIDS.items():
        if classes and klass not in classes or fused and klass == "view":
            continue
        rng = random.Random(f"{seed}:{klass}")
        want, tries = max(3, round(count * scale)), 0
        seen: set[Any] = set()
        while len(seen) < want and tries < want * 50:
            tries += 1
            b = make(rng)
            if b is None or b.label in seen:
                continue
            seen.add(b.label)
            yield with_epilogue(b, rng) if fused else b


def spec_data(b: Bench) -> dict[str, Any]:
    """The benchmark as a spec document (what ``loads_spec`` takes as parsed YAML)."""
    layers = [{"name": "k", **b.layer}] + [{"name": f"e{i}", **e} for i, e in enumerate(b.epilogue)]
    inputs: dict[str, Any] = {}
    for name, shape in b.inputs.items():
        inputs[name] = {"shape": shape, "dtype": "int64"} if name == "ids" else shape
    return {"name": "bench", "inputs": inputs, "layers": layers}
