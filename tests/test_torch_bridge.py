"""The spec -> PyTorch bridge against explorer's own counts: every op on a tiny spec, every bundled
spec at two configurations. Parameter count == params, every output shape == the inferred shape,
FlopCounterMode total / 2 == MACs (FlopCounterMode counts conv, mm/addmm/bmm: every op with MACs
here; every other op has 0 MACs in explorer and 0 FLOPs in FlopCounterMode)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from explorer.analysis import analyze
from explorer.errors import ExplorerError, SpecError
from explorer.graph import build
from explorer.ops import REGISTRY
from explorer.spec import load_spec, loads_spec
from explorer.torch import load_builders, to_module

torch = pytest.importorskip("torch")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


N, C, H = 2, 6, 10
INPUTS = {"x": [N, C, H, H], "s": [2, 7, 8], "kv": [2, 5, 12], "ids": {"shape": [2, 7], "dtype": "int64"},
          "v1": [N, C, 12], "v3": [N, C, 5, 6, 7], "s4": [2, 8, 5, 5]}
P = {"name": "p", "op": "parameter", "shape": [1, C, 1, 1]}
EMB = {"name": "emb", "op": "embedding", "num": 50, "dim": 8, "inputs": "ids"}

CASES: dict[str, list[tuple[dict, list]]] = {
    "conv2d": [({"op": "conv2d", "out": 4, "kernel": 3, "padding": 1}, []),
               ({"op": "conv2d", "out": 6, "kernel": [3, 1], "stride": 2, "groups": 3, "bias": False}, []),
               ({"op": "conv2d", "out": 12, "kernel": 3, "padding": 2, "dilation": 2, "groups": 6}, []),
               ({"op": "conv2d", "out": 5, "kernel": 4, "padding": "same"}, []),
               ({"op": "conv2d", "out": 5, "kernel": 3, "padding": "valid", "bias": False}, [])],
    "conv1d": [({"op": "conv1d", "inputs": "v1", "out": 4, "kernel": 3, "padding": 1}, []),
               ({"op": "conv1d", "inputs": "v1", "out": 6, "kernel": 5, "stride": 2, "groups": 3, "dilation": 2}, []),
               ({"op": "conv1d", "inputs": "v1", "out": 6, "kernel": 4, "padding": "same", "groups": 6}, [])],
    "conv3d": [({"op": "conv3d", "inputs": "v3", "out": 4, "kernel": 3, "padding": 1}, []),
               ({"op": "conv3d", "inputs": "v3", "out": 6, "kernel": [1, 3, 3], "stride": [1, 2, 2],
                 "padding": [0, 1, 1], "groups": 3, "bias": False}, [])],
    "conv_transpose2d": [({"op": "conv_transpose2d", "out": 4, "kernel": 2, "stride": 2, "bias": False}, []),
                         ({"op": "conv_transpose2d", "out": 9, "kernel": 3, "stride": 2, "padding": 1,
                           "output_padding": 1, "groups": 3}, [])],
    "linear": [({"op": "linear", "out": 5}, []), ({"op": "linear", "out": 5, "bias": False}, []),
               ({"op": "linear", "out": 50, "inputs": "emb", "tied": "emb", "bias": False}, [EMB]),
               ({"op": "linear", "out": 50, "inputs": "emb", "tied": "emb"}, [EMB])],
    "matmul": [({"op": "matmul", "inputs": ["x", "x"], "transpose_b": True}, []),
               ({"op": "matmul", "inputs": ["s", "w"]}, [{"name": "w", "op": "parameter", "shape": [8, 3]}]),
               ({"op": "matmul", "inputs": ["x", "w"]}, [{"name": "w", "op": "parameter", "shape": [1, C, H, 4]}])],
    "attention": [({"op": "attention", "heads": 2, "inputs": "s"}, []),
                  ({"op": "attention", "heads": 4, "inputs": "s", "causal": True, "bias": False}, []),
                  ({"op": "attention", "heads": 2, "head_dim": 3, "out": 5, "inputs": ["s", "kv"]}, []),
                  ({"op": "attention", "heads": 2, "inputs": ["s", "kv"], "causal": True}, []),
                  ({"op": "attention", "heads": 4, "kv_heads": 2, "rope": True, "causal": True, "inputs": "s"}, []),
                  ({"op": "attention", "heads": 2, "kv_heads": 1, "window": 3, "causal": True, "inputs": "s"}, [])],
    "rmsnorm": [({"op": "rmsnorm", "inputs": "s"}, []), ({"op": "rmsnorm", "weight": False, "inputs": "s"}, [])],
    "gated_mlp": [({"op": "gated_mlp", "hidden": 16, "inputs": "s"}, []),
                  ({"op": "gated_mlp", "hidden": 16, "act": "gelu_tanh", "bias": True, "out": 4, "inputs": "s"}, [])],
    "moe": [({"op": "moe", "experts": 4, "top_k": 2, "hidden": 16, "inputs": "s"}, [])],
    "add": [({"op": "add", "inputs": ["x", "x", "x"]}, []), ({"op": "add", "inputs": ["x", "p"]}, [P])],
    "mul": [({"op": "mul", "inputs": ["x", "p"]}, [P])],
    "sub": [({"op": "sub", "inputs": ["x", "p"]}, [P])],
    "div": [({"op": "div", "inputs": ["x", "x"]}, [])],
    "scale": [({"op": "scale", "value": 0.5}, [])],
    "batchnorm": [({"op": "batchnorm"}, []), ({"op": "batchnorm", "affine": False}, []),
                  ({"op": "batchnorm", "inputs": "s"}, [])],
    "layernorm": [({"op": "layernorm"}, []), ({"op": "layernorm", "dims": 2, "affine": False}, [])],
    "groupnorm": [({"op": "groupnorm", "groups": 3}, []), ({"op": "groupnorm", "groups": 2, "affine": False}, [])],
    "leaky_relu": [({"op": "leaky_relu"}, []), ({"op": "leaky_relu", "negative_slope": 0.2}, [])],
    **{a: [({"op": a}, [])] for a in ("relu", "relu6", "sigmoid", "tanh", "silu", "hardsigmoid",
                                      "hardswish")},
    "mish": [({"op": "mish"}, [])],
    "gelu": [({"op": "gelu"}, []), ({"op": "gelu", "approximate": "tanh"}, [])],
    "softmax": [({"op": "softmax", "axis": 1}, []), ({"op": "softmax"}, [])],
    "maxpool": [({"op": "maxpool", "kernel": 3, "stride": 2, "padding": 1}, []),
                ({"op": "maxpool", "kernel": 3, "stride": 2, "ceil_mode": True}, []),
                ({"op": "maxpool", "kernel": 2, "dilation": 2}, [])],
    "avgpool": [({"op": "avgpool", "kernel": 2}, []), ({"op": "avgpool", "kernel": 3, "stride": 2, "ceil_mode": True}, [])],
    "adaptive_avgpool": [({"op": "adaptive_avgpool", "size": 3}, []), ({"op": "adaptive_avgpool"}, [])],
    "adaptive_maxpool": [({"op": "adaptive_maxpool", "size": [3, 2]}, [])],
    "mean": [({"op": "mean", "axes": [2, 3]}, []), ({"op": "mean", "axes": 1, "keepdim": True}, [])],
    "upsample": [({"op": "upsample", "scale": 2}, []), ({"op": "upsample", "scale": 1.5, "mode": "bilinear"}, []),
                 ({"op": "upsample", "size": [15, 7], "mode": "bilinear"}, []),
                 ({"op": "upsample", "scale": 2, "mode": "bicubic"}, [])],
    "identity": [({"op": "identity"}, [])],
    "dropout": [({"op": "dropout", "p": 0.1}, [])],
    "flatten": [({"op": "flatten"}, []), ({"op": "flatten", "start": 2}, [])],
    "reshape": [({"op": "reshape", "shape": [N, -1, H]}, [])],
    "permute": [({"op": "permute", "dims": [0, 2, 3, 1]}, [])],
    "transpose": [({"op": "transpose", "dim0": 1, "dim1": 3}, [])],
    "expand": [({"op": "expand", "inputs": "p", "shape": [N, C, H, H]}, [P])],
    "select": [({"op": "select", "axis": 1, "index": 2}, [])],
    "slice": [({"op": "slice", "axis": 1, "start": 1, "end": 4}, [])],
    "split": [({"op": "split", "axis": 1, "sizes": [2, 4]}, [])],
    "chunk": [({"op": "chunk", "axis": 1, "chunks": 3}, [])],
    "concat": [({"op": "concat", "inputs": ["x", "x"], "axis": 1}, [])],
    "channel_shuffle": [({"op": "channel_shuffle", "groups": 3}, [])],
    "constant": [({"op": "constant", "shape": [1, C, 1, 1]}, [])],
    "pad": [({"op": "pad", "padding": [1, 2, 3, 0]}, []),
            ({"op": "pad", "padding": [2, 2, 2, 2], "mode": "reflect"}, []),
            ({"op": "pad", "padding": [1, 1], "mode": "replicate", "inputs": "v1"}, []),
            ({"op": "pad", "padding": [1, 1, 1, 1, 1, 1], "mode": "circular", "inputs": "v3"}, []),
            ({"op": "pad", "padding": [0, 0, 1, 1, 2, 2, 0, 1], "value": 1.5}, [])],
    "pixel_shuffle": [({"op": "pixel_shuffle", "factor": 2, "inputs": "s4"}, [])],
    "parameter": [({"op": "parameter", "shape": [1, C, 1, 1]}, [])],
    "embedding": [({"op": "embedding", "num": 100, "dim": 8, "inputs": "ids"}, [])],
    "crop": [({"op": "crop", "size": [6, 7]}, [])],
    "opaque": [({"op": "opaque", "shape": [N, 5, 3], "what": "aten.foo.default"}, [])],
}


def tiny(layer: dict, pre: list) -> object:
    text = yaml.safe_dump({"name": "t", "inputs": INPUTS, "layers": [*pre, {"name": "L", **layer}],
                           "outputs": ["L"]}, sort_keys=False)
    return loads_spec(text)


def counted(bridge: object) -> tuple[int, dict[str, list[list[int]]]]:
    """Run under FlopCounterMode: (total FLOPs, output shapes per layer path). The shapes come from a
    separate run (module hooks would not see ``called: functional`` layers, and a ``shares:`` module
    is one module for two paths)."""
    shapes: dict[str, list[list[int]]] = {}

    def record(path: str, fn: object) -> None:
        o = fn()  # type: ignore[operator]
        shapes[path] = [list(t.shape) for t in (o if isinstance(o, tuple) else (o,))]

    with torch.inference_mode():
        bridge.module.run(*bridge.inputs, on_layer=record)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        bridge.module(*bridge.inputs)
    return fc.get_total_flops(), shapes


def own_params(bridge: object) -> dict[str, int]:
    """Parameters per layer, each nn.Parameter counted at the first layer that holds it (tied weights)."""
    seen: set[int] = set()
    out = {}
    for path in bridge.layers:
        fresh = [p for p in bridge.module.layer(path).parameters() if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        out[path] = sum(p.numel() for p in fresh)
    return out


def check(spec: object, values: dict | None = None) -> None:
    """params per layer and in total, every output shape, FlopCounterMode / 2 == MACs."""
    bridge = to_module(spec, values)
    result = analyze(spec, values)
    flops, shapes = counted(bridge)
    params = own_params(bridge)
    layers = {layer.path: layer for layer in bridge.model.layers}
    for row in result.layers:
        assert params[row.name] == row.metrics["params"], row.name
        want = [[int(d) for d in s] for s in layers[row.name].out_shapes]
        assert shapes[row.name] == want, row.name
    assert sum(p.numel() for p in bridge.module.parameters()) == result.totals["params"]
    assert flops == 2 * result.totals["macs"]
    assert [r.name for r in result.layers] == bridge.layers


def test_every_registry_op_has_a_builder_and_a_case() -> None:
    assert sorted(load_builders()) == sorted(REGISTRY)
    assert sorted(CASES) == sorted(REGISTRY)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("layer,pre", [c for cases in CASES.values() for c in cases],
                         ids=[f"{op}-{i}" for op, cases in CASES.items() for i in range(len(cases))])
def test_op(layer: dict, pre: list) -> None:
    check(tiny(layer, pre))


def test_ops_with_macs_are_counted_by_flop_counter() -> None:
    """Not a vacuous 0 == 0: the MAC ops really show up in FlopCounterMode."""
    for op in ("conv1d", "conv2d", "conv3d", "conv_transpose2d", "linear", "matmul", "attention", "gated_mlp", "moe"):
        bridge = to_module(tiny(*CASES[op][0]))
        assert counted(bridge)[0] > 0, op


CONFIGS = {
    "resnet18": [{"resolution": 64}, {"resolution": 96, "width": 0.5, "batch": 2}],
    "resnet50": [{"resolution": 64, "width": 0.25}, {"resolution": 64, "width": 0.5, "depth": 1}],
    "vgg16": [{"resolution": 32, "width": 0.25}, {"resolution": 64, "width": 0.25, "batch": 2}],
    "mobilenet_v2": [{"resolution": 96, "width": 0.35}, {"resolution": 128, "width": 0.5}],
    "vit_b_16": [{"resolution": 64, "dim": 192, "heads": 3, "depth": 2},
                 {"resolution": 96, "patch": 32, "dim": 256, "heads": 4, "depth": 1, "mlp_ratio": 2}],
    "gpt2": [{"seq": 64, "dim": 256, "heads": 4, "depth": 2, "vocab": 1000},
             {"seq": 128, "dim": 256, "heads": 8, "depth": 1, "vocab": 2000, "batch": 2}],
    "unet": [{"resolution": 188, "width": 0.25},
             {"resolution": 204, "width": 0.25, "in_channels": 3, "classes": 4}],
}


@pytest.mark.parametrize("name,values", [(n, v) for n, vs in CONFIGS.items() for v in vs],
                         ids=[f"{n}-{i}" for n, vs in CONFIGS.items() for i in range(len(vs))])
def test_bundled_spec(name: str, values: dict) -> None:
    check(load_spec(name), values)


def test_tied_linear_shares_the_embedding_weight() -> None:
    bridge = to_module(load_spec("gpt2"), CONFIGS["gpt2"][0])
    assert bridge.module.layer("lm_head").weight is bridge.module.layer("wte").weight
    assert max(bridge.inputs[0].tolist()[0]) < 1000  # token ids index the vocabulary


def test_buffers_are_not_parameters() -> None:
    bridge = to_module(tiny({"op": "batchnorm", "affine": False}, []))
    assert list(bridge.module.parameters()) == []
    # nn.BatchNorm2d, as in torchvision: its running statistics and its step counter are buffers
    assert {n.rsplit(".", 1)[-1] for n, _ in bridge.module.named_buffers()} == {"running_mean", "running_var",
                                                                               "num_batches_tracked"}
    assert type(bridge.module.layer("L")) is torch.nn.BatchNorm2d


def test_seeded_weights_and_inputs() -> None:
    spec = tiny({"op": "conv2d", "out": 4, "kernel": 3}, [])
    a, b, c = to_module(spec, seed=1), to_module(spec, seed=1), to_module(spec, seed=2)
    assert torch.equal(a.module.layer("L").weight, b.module.layer("L").weight)
    assert torch.equal(a.inputs[0], b.inputs[0])
    assert not torch.equal(a.module.layer("L").weight, c.module.layer("L").weight)


@pytest.mark.parametrize("dtype,want", [("fp16", "float16"), ("bf16", "bfloat16")])
def test_half_precision(dtype: str, want: str) -> None:
    bridge = to_module(load_spec("vit_b_16"), CONFIGS["vit_b_16"][1], dtype=dtype)
    assert {p.dtype for p in bridge.module.parameters()} == {getattr(torch, want)}
    with torch.inference_mode():
        out = bridge.module(*bridge.inputs)
    assert out.dtype == getattr(torch, want) and list(out.shape) == [1, 1000]


def test_run_calls_back_once_per_layer_in_order() -> None:
    bridge = to_module(load_spec("resnet18"), {"resolution": 64})
    seen = []
    with torch.inference_mode():
        out = bridge.module.run(*bridge.inputs, on_layer=lambda path, fn: seen.append((path, fn().shape)))
        assert torch.equal(out, bridge.module(*bridge.inputs))
    assert [p for p, _ in seen] == bridge.layers
    assert seen[-1][1] == (1, 1000)


def test_bad_dtype_and_symbolic_multiplicity() -> None:
    spec = load_spec("resnet18")
    with pytest.raises(ExplorerError, match="dtype must be one of fp32, fp16, bf16, got 'int8'"):
        to_module(spec, dtype="int8")
    from explorer.torch import _build_layer

    model = build(load_spec("vit_b_16"))  # repeat: depth unbound: a representative with multiplicity depth - 1
    layer = next(layer for layer in model.layers if layer.count != 1)
    with pytest.raises(SpecError, match="multiplicity depth - 1"):
        _build_layer(model, layer, load_builders())


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=False)


def test_importing_explorer_does_not_import_torch() -> None:
    r = _python("import sys, explorer, explorer.cli, explorer.torch, explorer.measure, explorer.commands.measure; "
                "explorer.cli.build_parser(); print('torch' in sys.modules)")
    assert r.stdout.strip() == "False", r.stderr


def test_missing_torch_is_a_one_line_error() -> None:
    r = _python("import sys; sys.modules['torch'] = None\n"
                "from explorer.cli import main; sys.exit(main(['measure', 'resnet18']))")
    assert r.returncode == 2
    assert r.stderr == "error: the torch bridge needs PyTorch: pip install 'explorer[torch]'\n"
