"""Kernel classes and fusion: which kernel each layer runs as, and which layers run as one kernel.

Every op maps to a *kernel class* (one entry per op in :data:`CLASSIFY`, a registry like
``explorer.ops``; a test fails when an op has none). A class groups layers whose speed follows
the same law on a device: dense convolutions, 1x1 convolutions, depthwise convolutions... A
hardware profile gives each class its own fixed cost, compute rate and bandwidth
(:mod:`explorer.hardware.execution`).

An *execution plan* groups layers into kernels (docs/hardware.md, "Execution modes"):

- ``eager``: one kernel per layer, as PyTorch eager runs a model. Views still cost a call.
- ``fused``: a deployment engine's fusion (ONNX Runtime, TensorRT, Ultralytics' ``fuse()``): a
  conv/linear/matmul/norm anchor absorbs the chain of layers that only consume its output: a
  BatchNorm folded into the conv weights (no FLOPs, no weight reads), activations, and elementwise
  epilogues such as a residual add. Intermediate tensors are never written or read; the kernel
  pays one fixed cost. Views and no-ops are free.

Each kernel has symbolic metrics (FLOPs, bytes moved, a size key for its class, count), so a plan
is derived once and evaluated at any configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy

from explorer.cost import Costs, instance_metrics, traffic
from explorer.graph import Layer, Model, Ref
from explorer.ops.base import numel

ZERO = sympy.Integer(0)
ONE = sympy.Integer(1)
MODES = ("eager", "fused")

# class -> what it covers (the key its compute curve is indexed by is in KEYS)
KERNEL_CLASSES: dict[str, str] = {
    "conv_stem": "convolution with at most 4 input channels per group (an image stem)",
    "conv_dense": "k x k convolution (k > 1), not depthwise",
    "conv_pointwise": "1 x 1 convolution",
    "conv_depthwise": "depthwise convolution (one input channel per group), stride 1",
    "conv_depthwise_strided": "depthwise convolution, stride > 1",
    "conv_grouped": "grouped convolution with several channels per group",
    "conv_transpose": "transposed convolution",
    "matmul": "linear layers, matrix products, gated MLPs and mixtures of experts",
    "attention": "scaled dot-product attention (scores, softmax, weighted sum)",
    "elementwise": "activations and elementwise arithmetic",
    "norm": "batch, layer, group and RMS normalization",
    "maxpool": "max pooling (windowed or global)",
    "pooling": "average pooling, global average pooling, reductions, upsampling",
    "softmax": "softmax over an axis",
    "data": "copies: concat, channel shuffle, pad, pixel shuffle, materialized permutes",
    "embedding": "embedding gather",
    "view": "views and no-ops: no data moved (a framework call in eager mode, free when fused)",
}

# the size each class's compute curve is keyed by (per-sample output plane for convs, elements
# otherwise); see docs/hardware.md
KEYS: dict[str, str] = {
    "conv_stem": "output plane H x W", "conv_dense": "output plane H x W",
    "conv_pointwise": "output plane H x W", "conv_depthwise": "output plane H x W",
    "conv_depthwise_strided": "output plane H x W", "conv_grouped": "output plane H x W",
    "conv_transpose": "output plane H x W", "matmul": "output elements",
    "attention": "score elements", "elementwise": "output elements", "norm": "output elements",
    "maxpool": "input elements", "pooling": "input elements", "softmax": "elements", "data": "output elements",
    "embedding": "output elements", "view": "output elements",
}


def _const(klass: str) -> Callable[[Layer], str]:
    return lambda layer: klass


def _ones(value: Any) -> bool:
    """Is an int-or-list attribute 1 in every dim?"""
    return all(v == 1 for v in (value if isinstance(value, tuple) else (value,)))


def _conv(layer: Layer) -> str:
    """conv1d, conv2d and conv3d alike: by channels per group, kernel and stride."""
    cin = layer.in_shapes[0][1]
    groups = layer.attrs.get("groups", ONE)
    per_group = sympy.simplify(cin / groups) if groups != 1 else cin
    if groups != 1 and per_group == 1:
        return "conv_depthwise" if _ones(layer.attrs.get("stride", ONE)) else "conv_depthwise_strided"
    if groups != 1:
        return "conv_grouped"
    if per_group.is_number and per_group <= 4:
        return "conv_stem"
    return "conv_pointwise" if _ones(layer.attrs["kernel"]) else "conv_dense"


CLASSIFY: dict[str, Callable[[Layer], str]] = {
    "conv1d": _conv, "conv2d": _conv, "conv3d": _conv,
    "conv_transpose2d": _const("conv_transpose"),
    "linear": _const("matmul"), "matmul": _const("matmul"),
    "attention": _const("attention"),
    **{a: _const("elementwise") for a in ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu",
                                          "hardsigmoid", "hardswish", "gelu", "mish", "add", "mul", "sub", "div",
                                          "scale")},
    "softmax": _const("softmax"),
    **{n: _const("norm") for n in ("batchnorm", "layernorm", "groupnorm", "rmsnorm")},
    "gated_mlp": _const("matmul"), "moe": _const("matmul"),
    "maxpool": _const("maxpool"), "adaptive_maxpool": _const("maxpool"),
    **{p: _const("pooling") for p in ("avgpool", "adaptive_avgpool", "mean", "upsample")},
    **{v: _const("view") for v in ("identity", "dropout", "flatten", "reshape", "permute", "transpose",
                                   "expand", "select", "slice", "split", "chunk", "crop", "parameter",
                                   "constant")},
    **{d: _const("data") for d in ("concat", "channel_shuffle", "pad", "pixel_shuffle")},
    "opaque": _const("view"),  # an explicit zero-cost placeholder (explorer import --allow-unknown)
    "embedding": _const("embedding"),
}

# fusion roles (fused mode)
ANCHORS = {"conv_stem", "conv_dense", "conv_pointwise", "conv_depthwise", "conv_depthwise_strided",
           "conv_grouped", "conv_transpose", "matmul", "norm"}
EPILOGUE_OPS = {"relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "gelu", "mish",
                "add", "mul", "sub", "div", "scale", "dropout", "identity"}
FOLDABLE = {"batchnorm"}  # folded into a preceding conv/linear's weights at inference


def kernel_class(layer: Layer) -> str:
    return CLASSIFY[layer.op](layer)


def size_key(layer: Layer, klass: str) -> Any:
    """The size a class's compute curve is indexed by (see KEYS)."""
    out = layer.out_shapes[0]
    if klass.startswith("conv"):
        return numel(out[2:]) if len(out) >= 3 else numel(out)  # the output plane (length, volume)
    if klass == "attention":
        return _score_elements(layer)
    if klass in ("pooling", "maxpool"):
        return numel(layer.in_shapes[0])
    return sum((numel(s) for s in layer.out_shapes), ZERO)


def _score_elements(layer: Layer) -> Any:
    """batch x heads x queries x keys of the attention score matrix."""
    q = layer.in_shapes[0]
    kv = layer.in_shapes[1] if len(layer.in_shapes) > 1 else q
    batch = numel(q[:-2])
    return batch * layer.attrs.get("heads", ONE) * q[-2] * kv[-2]


@dataclass
class Kernel:
    """Layers executed as one kernel."""

    klass: str
    layers: list[Layer]
    folded: list[Layer] = field(default_factory=list)  # norms folded into the anchor's weights
    internal: list[Ref] = field(default_factory=list)  # tensors that stay in registers/cache

    @property
    def anchor(self) -> Layer:
        return self.layers[0]

    @property
    def name(self) -> str:
        return self.layers[0].path if len(self.layers) == 1 else f"{self.layers[0].path}+{len(self.layers) - 1}"

    @property
    def count(self) -> Any:
        return self.anchor.count


@dataclass(frozen=True)
class KernelMetrics:
    """One kernel's cost as expressions: what the execution model times."""

    kernel: Kernel
    flops: Any
    bytes: Any  # bytes read + written by the kernel
    key: Any  # the class's size key
    count: Any


def plan(model: Model, mode: str = "eager") -> list[Kernel]:
    """The kernels a model runs as, in execution order."""
    if mode not in MODES:
        from explorer.errors import HardwareError

        raise HardwareError(f"unknown execution mode '{mode}'; choose {' or '.join(MODES)}")
    kernels = [Kernel(kernel_class(layer), [layer]) for layer in model.layers]
    if mode == "eager":
        return kernels
    return _fuse(model, kernels)


def _consumers(model: Model) -> dict[Ref, list[Layer]]:
    users: dict[Ref, list[Layer]] = {}
    for layer in model.layers:
        for ref in layer.inputs:
            users.setdefault(ref, []).append(layer)
    return users


def _fuse(model: Model, kernels: list[Kernel]) -> list[Kernel]:
    users = _consumers(model)
    outputs = set(model.outputs)
    taken: set[str] = set()
    out: list[Kernel] = []
    for k in kernels:
        layer = k.anchor
        if layer.path in taken:
            continue
        if k.klass == "view":
            continue  # free when fused: no call, no data
        fused = Kernel(k.klass, [layer])
        if k.klass in ANCHORS:
            _absorb(fused, users, outputs, taken)
        out.append(fused)
    return out


def _absorb(kernel: Kernel, users: dict[Ref, list[Layer]], outputs: set[Ref], taken: set[str]) -> None:
    """Grow the kernel along the chain of single consumers that can run as its epilogue."""
    anchor_is_linear = kernel.klass != "norm"
    tail = kernel.anchor
    while len(tail.out_shapes) == 1:
        ref = Ref(tail.path)
        nxt = users.get(ref, [])
        if len(nxt) != 1 or ref in outputs:
            return
        follower = nxt[0]
        if follower.count != kernel.count or follower.inputs[0] != ref and follower.op not in ("add", "mul"):
            return
        if follower.op in FOLDABLE and anchor_is_linear and not kernel.folded and len(kernel.layers) == 1:
            kernel.folded.append(follower)
        elif follower.op not in EPILOGUE_OPS:
            return
        kernel.layers.append(follower)
        kernel.internal.append(ref)
        taken.add(follower.path)
        tail = follower


def kernel_metrics(costs: Costs, kernels: list[Kernel]) -> list[KernelMetrics]:
    """FLOPs, bytes and size key of each kernel, per instance (expressions; times ``count``)."""
    precision = costs.precision
    act = precision.act_bytes
    model = costs.model
    out: list[KernelMetrics] = []
    for k in kernels:
        flops, moved = ZERO, ZERO
        for layer in k.layers:
            m = instance_metrics(model, layer, precision)
            moved += m["bytes_read"] + m["bytes_written"]
            if layer in k.folded:  # folded into the anchor's weights: neither computed nor read
                moved -= precision.weight_storage(traffic(model, layer).weight_read)
            else:
                flops += m["flops"]
        for ref in k.internal:  # written once by its producer, read once by its consumer
            moved -= 2 * numel(model.shape(ref)) * act
        out.append(KernelMetrics(k, flops, moved, size_key(k.anchor, k.klass), k.count))
    return out
