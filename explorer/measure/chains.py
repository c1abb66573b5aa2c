"""Synthetic networks for calibration: random chains of layers, timed layer by layer in context.

A kernel inside a model does not run as it does alone in a loop: its input was just written by the
layer before, its weights were evicted by the layers before that, its output is a fresh buffer, and
the framework's bookkeeping runs between layers. So the eager calibration times layers *inside*
random networks: generic CNN chains (stems, plain, basic, bottleneck, inverted-residual, grouped and
two-branch concat blocks, pools, decoders with transposed convs) and transformer chains (embeddings,
norms, attention, MLPs, softmax), with channels, resolutions, batch, kernel sizes, strides and
activations drawn at random with a fixed seed. Each layer's time is the thread CPU time from its
start to the next layer's (best of several whole passes), and becomes one sample of its kernel
class. The networks are not the models ``explorer accuracy`` judges: their shapes are random.
"""

from __future__ import annotations

import random
from typing import Any

ACTS = ("relu", "relu", "relu6", "silu", "hardswish", "gelu")
MAX_MACS = 2.5e9  # one pass of a chain stays around 100 ms on a CPU core


class _Chain:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.layers: list[dict[str, Any]] = []
        self.macs = 0.0
        self.n = 0

    def add(self, op: str, inputs: Any = None, **attrs: Any) -> str:
        self.n += 1
        name = f"l{self.n}"
        layer: dict[str, Any] = {"name": name, "op": op, **attrs}
        if inputs is not None:
            layer["inputs"] = inputs
        self.layers.append(layer)
        return name


def _width(rng: random.Random, lo: int = 8, hi: int = 1024) -> int:
    return max(lo, min(hi, int(2 ** rng.uniform(3, 10.5)) // 8 * 8))


def cnn(rng: random.Random) -> dict[str, Any]:
    """A random convolutional network on [batch, 3, res, res]."""
    ch = _Chain(rng)
    batch = rng.choice((1, 1, 1, 1, 2, 4, 8))
    res = res0 = rng.choice((32, 48, 64, 96, 128, 160, 192, 224, 256, 288))
    c = rng.choice((16, 24, 32, 48, 64))
    k, s = rng.choice(((3, 2), (3, 2), (7, 2), (3, 1), (4, 4)))
    x = ch.add("conv2d", out=c, kernel=k, stride=s, padding=(k - 1) // 2 if k != 4 else 0, bias=False)
    x = ch.add("batchnorm")
    x = ch.add(rng.choice(ACTS))
    res = (res + 2 * ((k - 1) // 2 if k != 4 else 0) - k) // s + 1
    ch.macs += batch * c * 3 * k * k * res * res
    if rng.random() < 0.4 and res >= 16:
        x = ch.add("maxpool", kernel=3, stride=2, padding=1)
        res = (res - 1) // 2 + 1
    blocks = rng.randint(4, 12)
    for _ in range(blocks):
        kind = rng.choice(("inverted", "inverted", "basic", "bottleneck", "plain", "grouped", "concat", "pool"))
        stride = 2 if rng.random() < 0.25 and res >= 8 else 1
        out = _width(rng, 8, 768)
        x, c, res = _block(ch, kind, x, c, out, res, stride, batch)
        if ch.macs > MAX_MACS:
            break
    if rng.random() < 0.2 and res <= 64:
        x = ch.add("conv_transpose2d", out=max(8, c // 2), kernel=2, stride=2, bias=rng.random() < 0.5)
        ch.macs += batch * c * max(8, c // 2) * 4 * res * res
        c, res = max(8, c // 2), res * 2
        x = ch.add("batchnorm")
        x = ch.add("relu")
    if rng.random() < 0.5:
        x = ch.add("conv2d", out=_width(rng, 64, 1280), kernel=1, bias=False)
        x = ch.add("batchnorm")
        x = ch.add(rng.choice(ACTS))
    x = ch.add(rng.choice(("adaptive_avgpool", "adaptive_avgpool", "adaptive_maxpool")), size=1)
    x = ch.add("flatten")
    if rng.random() < 0.3:
        x = ch.add("dropout", p=0.2)
    ch.add("linear", out=rng.choice((10, 100, 1000)))
    return {"name": "cnn_chain", "inputs": {"x": [batch, 3, res0, res0]}, "layers": ch.layers}


def transformer(rng: random.Random) -> dict[str, Any]:
    """A random transformer on [batch, seq, dim] (token ids through an embedding half the time)."""
    ch = _Chain(rng)
    batch = rng.choice((1, 1, 1, 2, 4))
    seq = rng.choice((8, 16, 32, 50, 64, 128, 197, 256, 384, 512))
    heads = rng.choice((2, 4, 6, 8, 12, 16))
    dim = heads * rng.choice((32, 48, 64, 64, 80))
    ratio = rng.choice((2, 3, 4, 4))
    inputs: dict[str, Any]
    if rng.random() < 0.5:
        vocab = rng.choice((1000, 8000, 32000, 50257))
        inputs = {"ids": {"shape": [batch, seq], "dtype": "int64"}}
        x = ch.add("embedding", num=vocab, dim=dim)
    else:
        vocab = rng.choice((10, 1000, 32000))
        inputs = {"x": [batch, seq, dim]}
        x = ch.add("layernorm")
    causal = rng.random() < 0.5
    for _ in range(rng.randint(1, 4)):
        h = ch.add("layernorm", inputs=x)
        h = ch.add("attention", heads=heads, causal=causal)
        if rng.random() < 0.3:
            h = ch.add("dropout", p=0.1)
        x = ch.add("add", inputs=[h, x])
        h = ch.add("layernorm")
        h = ch.add("linear", out=dim * ratio)
        h = ch.add(rng.choice(("gelu", "gelu", "silu", "relu")))
        h = ch.add("linear", out=dim)
        x = ch.add("add", inputs=[h, x])
        ch.macs += batch * (12 * seq * dim * dim + 2 * seq * seq * dim)
        if ch.macs > MAX_MACS:
            break
    x = ch.add("layernorm", inputs=x)
    if rng.random() < 0.3:
        x = ch.add("softmax", axis=-1)
    ch.add("linear", out=vocab, bias=rng.random() < 0.5)
    return {"name": "transformer_chain", "inputs": inputs, "layers": ch.layers}


def networks(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` random networks, two CNNs for each transformer, deterministic for a seed."""
    rng = random.Random(f"chains:{seed}")
    return [transformer(rng) if i % 3 == 2 else cnn(rng) for i in range(n)]


def _block(ch: _Chain, kind: str, x: str, c: int, out: int, res: int, stride: int,
           batch: int) -> tuple[str, int, int]:
    rng = ch.rng
    ores = (res - 1) // stride + 1
    if kind == "inverted":
        t = rng.choice((1, 3, 4, 6))
        mid = c * t
        k = rng.choice((3, 3, 5))
        h = x
        if t != 1:
            h = ch.add("conv2d", inputs=h, out=mid, kernel=1, bias=False)
            h = ch.add("batchnorm")
            h = ch.add(rng.choice(ACTS))
        h = ch.add("conv2d", inputs=h, out=mid, kernel=k, stride=stride, padding=k // 2, groups=mid, bias=False)
        h = ch.add("batchnorm")
        h = ch.add(rng.choice(ACTS))
        h = ch.add("conv2d", out=out, kernel=1, bias=False)
        h = ch.add("batchnorm")
        ch.macs += batch * (c * mid * res * res * (t != 1) + mid * k * k * ores * ores + mid * out * ores * ores)
        if stride == 1 and out == c:
            h = ch.add("add", inputs=[h, x])
        return h, out, ores
    if kind in ("basic", "plain"):
        k = rng.choice((3, 3, 3, 5)) if kind == "plain" else 3
        h = ch.add("conv2d", inputs=x, out=out, kernel=k, stride=stride, padding=k // 2, bias=rng.random() < 0.2)
        h = ch.add("batchnorm")
        h = ch.add(rng.choice(ACTS))
        ch.macs += batch * c * out * k * k * ores * ores
        if kind == "plain":
            return h, out, ores
        h = ch.add("conv2d", out=out, kernel=3, padding=1, bias=False)
        h = ch.add("batchnorm")
        ch.macs += batch * out * out * 9 * ores * ores
        if stride == 1 and out == c:
            h = ch.add("add", inputs=[h, x])
        h = ch.add("relu")
        return h, out, ores
    if kind == "bottleneck":
        mid = max(8, out // 4)
        h = ch.add("conv2d", inputs=x, out=mid, kernel=1, bias=False)
        h = ch.add("batchnorm")
        h = ch.add("relu")
        h = ch.add("conv2d", out=mid, kernel=3, stride=stride, padding=1, bias=False)
        h = ch.add("batchnorm")
        h = ch.add("relu")
        h = ch.add("conv2d", out=out, kernel=1, bias=False)
        h = ch.add("batchnorm")
        ch.macs += batch * (c * mid * res * res + mid * mid * 9 * ores * ores + mid * out * ores * ores)
        if stride == 1 and out == c:
            h = ch.add("add", inputs=[h, x])
        h = ch.add("relu")
        return h, out, ores
    if kind == "grouped":
        g = rng.choice((2, 4, 8, 16, 32))
        out = max(g * 4, out // g * g)
        c2 = max(g, c // g * g)
        h = ch.add("conv2d", inputs=x, out=c2, kernel=1, bias=False)
        h = ch.add("conv2d", out=out, kernel=3, stride=stride, padding=1, groups=g, bias=False)
        h = ch.add("batchnorm")
        h = ch.add("relu")
        ch.macs += batch * (c * c2 * res * res + c2 // g * out * 9 * ores * ores)
        if rng.random() < 0.3:
            h = ch.add("channel_shuffle", groups=g)
        return h, out, ores
    if kind == "concat":
        a = ch.add("conv2d", inputs=x, out=max(8, out // 2), kernel=1, bias=False)
        b = ch.add("conv2d", inputs=x, out=max(8, out // 2), kernel=3, padding=1, bias=False)
        h = ch.add("concat", inputs=[a, b], axis=1)
        h = ch.add(rng.choice(ACTS))
        ch.macs += batch * c * max(8, out // 2) * 10 * res * res
        return h, 2 * max(8, out // 2), res
    # pool
    if res < 4:
        return x, c, res
    op = rng.choice(("maxpool", "avgpool"))
    h = ch.add(op, inputs=x, kernel=2 if op == "avgpool" else 3, stride=2, padding=0 if op == "avgpool" else 1)
    return h, c, (res - 1) // 2 + 1 if op == "maxpool" else res // 2
