"""Every op in the registry, checked against a hand derivation (fvcore style: the closed form
beside a tiny layer). A new op without a case here fails test_every_op_has_a_case."""

from __future__ import annotations

import pytest
import yaml

from explorer.analysis import analyze
from explorer.ops import REGISTRY
from explorer.spec import loads_spec

N, C, H = 2, 6, 10


def one_layer(layer: dict, inputs: dict | None = None, pre: list | None = None) -> dict:
    spec = {"name": "t", "inputs": inputs or {"x": [N, C, H, H]}, "layers": [*(pre or []), {"name": "L", **layer}]}
    result = analyze(loads_spec(yaml.safe_dump(spec, sort_keys=False)))
    row = next(r for r in result.layers if r.name == "L")
    return {"shape": row.output_shape, **row.metrics}


def conv_case(co: int, k: int, s: int, p: int, g: int, bias: bool, d: int = 1) -> tuple:
    ho = (H + 2 * p - d * (k - 1) - 1) // s + 1
    macs = N * co * ho * ho * (C // g) * k * k
    outs = N * co * ho * ho
    params = co * (C // g) * k * k + (co if bias else 0)
    layer = {"op": "conv2d", "out": co, "kernel": k, "stride": s, "padding": p, "groups": g, "bias": bias,
             "dilation": d}
    return layer, {"shape": [N, co, ho, ho], "params": params, "macs": macs,
                   "flops": 2 * macs if bias else 2 * macs - outs,
                   "bytes_read": 4 * (N * C * H * H + params), "bytes_written": 4 * outs}


def conv_nd_case(d: int, co: int, k: int, s: int, p: int, g: int, bias: bool) -> tuple:
    """A d-D conv on the input ``v{d}`` = [N, C, 10, ...] (d sizes of 10)."""
    o = (H + 2 * p - (k - 1) - 1) // s + 1
    outs = N * co * o**d
    macs = outs * (C // g) * k**d
    params = co * (C // g) * k**d + (co if bias else 0)
    layer = {"op": f"conv{d}d", "inputs": f"v{d}", "out": co, "kernel": k, "stride": s, "padding": p, "groups": g,
             "bias": bias}
    return layer, {"shape": [N, co, *[o] * d], "params": params, "macs": macs,
                   "flops": 2 * macs if bias else 2 * macs - outs,
                   "bytes_read": 4 * (N * C * H**d + params), "bytes_written": 4 * outs}


ELEMS = N * C * H * H
X = N * C * H * H
CASES = {
    "conv2d": [conv_case(4, 3, 1, 1, 1, True), conv_case(6, 3, 2, 0, 3, False), conv_case(12, 3, 1, 2, 6, True, 2)],
    "conv1d": [conv_nd_case(1, 4, 3, 1, 1, 1, True), conv_nd_case(1, 6, 5, 2, 0, 3, False),
               ({"op": "conv1d", "inputs": "v1", "out": 4, "kernel": 3, "padding": "same"}, {"shape": [N, 4, H]})],
    "conv3d": [conv_nd_case(3, 4, 3, 1, 1, 1, True), conv_nd_case(3, 6, 3, 2, 0, 6, False),
               ({"op": "conv3d", "inputs": "v3", "out": 4, "kernel": [1, 3, 3], "padding": [0, 1, 1]},
                {"shape": [N, 4, H, H, H], "macs": N * 4 * H**3 * C * 9})],
    "conv_transpose2d": [({"op": "conv_transpose2d", "out": 4, "kernel": 2, "stride": 2, "bias": False},
                          {"shape": [N, 4, 20, 20], "params": 6 * 4 * 4, "macs": N * 6 * 100 * 4 * 4,
                           "flops": 2 * N * 6 * 100 * 16 - N * 4 * 400})],
    "linear": [({"op": "linear", "out": 5}, {"shape": [N, C, H, 5], "params": 55, "macs": N * C * H * 10 * 5,
                                             "flops": 2 * 10 * 5 * N * C * H,
                                             "bytes_read": 4 * (X + 55), "bytes_written": 4 * N * C * H * 5}),
               ({"op": "linear", "out": 5, "bias": False}, {"params": 50, "flops": (2 * 10 - 1) * 5 * N * C * H})],
    "matmul": [({"op": "matmul", "inputs": ["x", "x"], "transpose_b": True},
                {"shape": [N, C, H, H], "macs": N * C * H * H * H, "flops": N * C * H * H * (2 * H - 1)})],
    "attention": [({"op": "attention", "heads": 2, "inputs": "s"},
                   {"shape": [2, 7, 8], "params": 4 * 64 + 4 * 8,
                    "macs": 4 * 2 * 7 * 8 * 8 + 2 * 2 * 2 * 7 * 7 * 4,
                    "flops": 4 * 2 * 7 * 16 * 8 + 2 * 2 * 7 * 7 * 7 + 2 * 2 * 7 * 7 + 2 * 2 * 7 * 33
                    + 2 * 2 * 7 * 4 * 13})],
    # GQA: 4 query heads, 2 kv heads, head dim 2 on s = [2, 7, 8]; inner 8, kv inner 4
    "attention_gqa": [({"op": "attention", "heads": 4, "kv_heads": 2, "bias": False, "rope": True, "inputs": "s"},
                       {"params": 8 * 8 + 2 * 8 * 4 + 8 * 8,
                        "macs": 2 * 7 * 8 * 8 + 2 * 2 * 7 * 8 * 4 + 2 * (2 * 4 * 7 * 7 * 2) + 2 * 7 * 8 * 8,
                        "flops": (2 * 7 * 8 * 15) + 2 * (2 * 7 * 4 * 15) + (2 * 7 * 8 * 15)  # q, k, v, out
                        + 2 * 4 * 7 * 7 * 3 + 2 * 4 * 7 * 7 + 2 * 4 * 7 * 33 + 2 * 4 * 7 * 2 * 13  # QK^T, scale, softmax, PV
                        + 3 * 2 * 2 * (7 * 4 + 7 * 2)})],  # rope on q and k
    # decode-style: 5 cached tokens, 7 new (keys 12), MQA (1 kv head of dim 4), unfused (scores written + read)
    "attention_cache": [({"op": "attention", "heads": 2, "kv_heads": 1, "bias": False, "kv_cache": True, "cached": 5,
                          "fused": False, "inputs": "s"},
                         {"params": 64 + 2 * 8 * 4 + 64,
                          "macs": 2 * 7 * 8 * 8 + 2 * 2 * 7 * 8 * 4 + 2 * (2 * 2 * 7 * 12 * 4) + 2 * 7 * 8 * 8,
                          "bytes_read": 4 * (2 * 7 * 8 + 192 + 2 * 2 * 7 * 12 + 2 * 2 * 4 * 5),
                          "bytes_written": 4 * (2 * 7 * 8 + 2 * 2 * 7 * 12 + 2 * 2 * 4 * 7),
                          "kv_cache_bytes": 4 * 2 * 2 * 4 * 12}),
                        # window 3: each query attends 3 keys; the rolling cache holds 3 tokens, reads 3
                        ({"op": "attention", "heads": 2, "kv_heads": 1, "bias": False, "kv_cache": True, "cached": 5,
                          "window": 3, "inputs": "s"},
                         {"macs": 2 * 7 * 8 * 8 + 2 * 2 * 7 * 8 * 4 + 2 * (2 * 2 * 7 * 3 * 4) + 2 * 7 * 8 * 8,
                          "bytes_read": 4 * (2 * 7 * 8 + 192 + 2 * 2 * 4 * 3),
                          "kv_cache_bytes": 4 * 2 * 2 * 4 * 3})],
    "batchnorm": [({"op": "batchnorm"}, {"params": 2 * C, "flops": 2 * X, "bytes_read": 4 * (X + 4 * C)})],
    "layernorm": [({"op": "layernorm"}, {"params": 2 * H, "flops": (X // H) * (5 * H + 2) + 2 * X})],
    # rows = X / 10 of n = 10: squares, sum, mean, eps, rsqrt, scale = 3n + 2; gain 1 per element
    "rmsnorm": [({"op": "rmsnorm"}, {"params": H, "flops": (X // H) * (3 * H + 2) + X}),
                ({"op": "rmsnorm", "weight": False}, {"params": 0, "flops": (X // H) * (3 * H + 2)})],
    "groupnorm": [({"op": "groupnorm", "groups": 3}, {"params": 2 * C, "flops": N * 3 * (5 * 200 + 2) + 2 * X})],
    "relu": [({"op": "relu"}, {"flops": X, "bytes_read": 4 * X, "bytes_written": 4 * X})],
    "relu6": [({"op": "relu6"}, {"flops": 2 * X})],
    "leaky_relu": [({"op": "leaky_relu"}, {"flops": 2 * X}),
                   ({"op": "leaky_relu", "negative_slope": 0.2}, {"flops": 2 * X, "params": 0})],
    "mish": [({"op": "mish"}, {"flops": 5 * X, "bytes_read": 4 * X, "bytes_written": 4 * X})],
    "sigmoid": [({"op": "sigmoid"}, {"flops": 4 * X})],
    "tanh": [({"op": "tanh"}, {"flops": X})],
    "silu": [({"op": "silu"}, {"flops": 5 * X})],
    "hardsigmoid": [({"op": "hardsigmoid"}, {"flops": 4 * X})],
    "hardswish": [({"op": "hardswish"}, {"flops": 5 * X})],
    "gelu": [({"op": "gelu"}, {"flops": 5 * X}), ({"op": "gelu", "approximate": "tanh"}, {"flops": 9 * X})],
    "softmax": [({"op": "softmax", "axis": 1}, {"flops": N * H * H * (5 * C - 2)})],
    "maxpool": [({"op": "maxpool", "kernel": 3, "stride": 2, "padding": 1},
                 {"shape": [N, C, 5, 5], "flops": N * C * 25 * 8}),
                ({"op": "maxpool", "kernel": 3, "stride": 2, "ceil_mode": True}, {"shape": [N, C, 5, 5]})],
    "avgpool": [({"op": "avgpool", "kernel": 2}, {"shape": [N, C, 5, 5], "flops": N * C * 25 * 4})],
    # windows of torch's adaptive pooling, 10 -> 3: [0,4) [3,7) [6,10): 4 + 4 + 4 per axis
    "adaptive_avgpool": [({"op": "adaptive_avgpool", "size": 3}, {"shape": [N, C, 3, 3], "flops": N * C * 12 * 12}),
                         ({"op": "adaptive_avgpool"}, {"shape": [N, C, 1, 1], "flops": X})],
    "adaptive_maxpool": [({"op": "adaptive_maxpool", "size": 3}, {"flops": N * C * (144 - 9)})],
    "mean": [({"op": "mean", "axes": [2, 3]}, {"shape": [N, C], "flops": X})],
    "upsample": [({"op": "upsample", "scale": 2}, {"shape": [N, C, 20, 20], "flops": 0, "bytes_written": 4 * 4 * X}),
                 ({"op": "upsample", "size": [15, 15], "mode": "bilinear"}, {"flops": 7 * N * C * 225}),
                 ({"op": "upsample", "scale": 1.5, "mode": "bicubic"}, {"shape": [N, C, 15, 15],
                                                                        "flops": 31 * N * C * 225})],
    "add": [({"op": "add", "inputs": ["x", "x", "x"]}, {"flops": 2 * X, "bytes_read": 12 * X})],
    "mul": [({"op": "mul", "inputs": ["x", "p"]}, {"shape": [N, C, H, H], "flops": X})],
    "sub": [({"op": "sub", "inputs": ["x", "x"]}, {"flops": X})],
    "div": [({"op": "div", "inputs": ["x", "x"]}, {"flops": X})],
    "scale": [({"op": "scale", "value": 0.5}, {"flops": X})],
    "identity": [({"op": "identity"}, {"flops": 0, "bytes_read": 0, "bytes_written": 0})],
    "dropout": [({"op": "dropout", "p": 0.1}, {"flops": 0, "bytes_read": 0})],
    "flatten": [({"op": "flatten"}, {"shape": [N, C * H * H], "bytes_read": 0})],
    "reshape": [({"op": "reshape", "shape": [N, -1, H]}, {"shape": [N, C * H, H]})],
    "permute": [({"op": "permute", "dims": [0, 2, 3, 1]}, {"shape": [N, H, H, C]})],
    "transpose": [({"op": "transpose", "dim0": 1, "dim1": 3}, {"shape": [N, H, H, C]})],
    "expand": [({"op": "expand", "inputs": "p", "shape": [N, C, H, H]}, {"shape": [N, C, H, H], "bytes_read": 0})],
    "select": [({"op": "select", "axis": 1, "index": 0}, {"shape": [N, H, H]})],
    "slice": [({"op": "slice", "axis": 1, "start": 1, "end": 4}, {"shape": [N, 3, H, H]})],
    "split": [({"op": "split", "axis": 1, "sizes": [2, 4]}, {"shape": [N, 2, H, H]})],
    "chunk": [({"op": "chunk", "axis": 1, "chunks": 3}, {"shape": [N, 2, H, H]})],
    "concat": [({"op": "concat", "inputs": ["x", "x"], "axis": 1},
                {"shape": [N, 2 * C, H, H], "flops": 0, "bytes_read": 8 * X, "bytes_written": 8 * X})],
    "channel_shuffle": [({"op": "channel_shuffle", "groups": 3}, {"flops": 0, "bytes_read": 4 * X})],
    "parameter": [({"op": "parameter", "shape": [1, C, 1, 1]}, {"shape": [1, C, 1, 1], "params": C})],
    "constant": [({"op": "constant", "shape": [1, C, 1, 1]},
                  {"shape": [1, C, 1, 1], "params": 0, "flops": 0, "bytes_read": 0, "bytes_written": 0})],
    # F.pad order: last dim first; W + 1 + 2, H + 3 + 0
    "pad": [({"op": "pad", "padding": [1, 2, 3, 0]}, {"shape": [N, C, 13, 13], "flops": 0, "bytes_read": 4 * X,
                                                      "bytes_written": 4 * N * C * 169}),
            ({"op": "pad", "padding": [2, 2, 2, 2], "mode": "reflect"}, {"shape": [N, C, 14, 14]}),
            ({"op": "pad", "padding": [1, 1], "mode": "replicate", "inputs": "v1"}, {"shape": [N, C, 12]}),
            ({"op": "pad", "padding": [0, 0, 1, 1, 2, 2], "value": 1.5}, {"shape": [N, C + 4, 12, H]})],
    # [2, 8, 5, 5] -> [2, 8 / 4, 5 * 2, 5 * 2]
    "pixel_shuffle": [({"op": "pixel_shuffle", "factor": 2, "inputs": "s4"},
                       {"shape": [2, 2, 10, 10], "flops": 0, "bytes_read": 4 * 400, "bytes_written": 4 * 400})],
    "crop": [({"op": "crop", "size": [6, 6]}, {"shape": [N, C, 6, 6], "bytes_read": 0})],
    "opaque": [({"op": "opaque", "shape": [N, 5, 3], "what": "aten.foo.default"},
                {"shape": [N, 5, 3], "params": 0, "macs": 0, "flops": 0, "bytes_read": 0, "bytes_written": 0})],
    # s = [2, 7, 8]: 14 rows, hidden 16; gate and up 8 -> 16, down 16 -> 8; silu 5 + gating multiply 1
    "gated_mlp": [({"op": "gated_mlp", "hidden": 16, "inputs": "s"},
                   {"shape": [2, 7, 8], "params": 2 * 8 * 16 + 16 * 8, "macs": 14 * (2 * 8 * 16 + 16 * 8),
                    "flops": 2 * 14 * 16 * 15 + 14 * 16 * 6 + 14 * 8 * 31,
                    "bytes_read": 4 * (14 * 8 + 384), "bytes_written": 4 * 14 * 8}),
                  ({"op": "gated_mlp", "hidden": 16, "act": "gelu_tanh", "bias": True, "out": 4, "inputs": "s"},
                   {"shape": [2, 7, 4], "params": 2 * 8 * 16 + 16 * 4 + 2 * 16 + 4,
                    "flops": 2 * 14 * 16 * 16 + 14 * 16 * 10 + 14 * 4 * 32})],
    # 4 experts of (8 -> 16 -> 8), top 2, 14 tokens: 28 (token, expert) pairs; one expert for one token:
    # 384 MACs, 2 * 16 * 15 + 16 * 6 + 8 * 31 = 824 FLOPs
    "moe": [({"op": "moe", "experts": 4, "top_k": 2, "hidden": 16, "inputs": "s"},
             {"params": 8 * 4 + 4 * 384, "macs": 14 * 8 * 4 + 28 * 384,
              "flops": 14 * 4 * 15 + 14 * (5 * 4 - 2) + 14 * 2 * 3 + 14 * 3 + 28 * 824 + 14 * 8 * 3,
              "bytes_read": 4 * (14 * 8 + 8 * 4 + 4 * 384)}),
            # one token touches only its 2 experts' weights
            ({"op": "moe", "experts": 4, "top_k": 2, "hidden": 16, "inputs": "t"},
             {"params": 8 * 4 + 4 * 384, "macs": 8 * 4 + 2 * 384, "bytes_read": 4 * (8 + 8 * 4 + 2 * 384)})],
    "embedding": [({"op": "embedding", "num": 100, "dim": 8, "inputs": "ids"},
                   {"shape": [2, 7, 8], "params": 800, "bytes_read": 2 * 7 * 8 + 4 * 2 * 7 * 8,
                    "bytes_written": 4 * 2 * 7 * 8})],
}
EXTRA_INPUTS = {"s": [2, 7, 8], "t": [1, 1, 8], "ids": {"shape": [2, 7], "dtype": "int64"}, "v1": [N, C, H],
                "v3": [N, C, H, H, H], "s4": [2, 8, 5, 5]}
VARIANTS = {"attention_gqa": "attention", "attention_cache": "attention"}  # more cases of one op
PRE = [{"name": "p", "op": "parameter", "shape": [1, C, 1, 1]}]


def test_every_op_has_a_case() -> None:
    assert sorted(REGISTRY) == sorted(set(CASES) - set(VARIANTS))


@pytest.mark.parametrize("op,layer,expected", [(op, layer, exp) for op, cases in CASES.items()
                                                for layer, exp in cases], ids=lambda v: v if isinstance(v, str) else "")
def test_op_matches_hand_derivation(op: str, layer: dict, expected: dict) -> None:
    inputs = {"x": [N, C, H, H], **EXTRA_INPUTS}
    got = one_layer(layer, inputs, PRE if op in ("mul", "expand") else None)
    for key, value in expected.items():
        assert got[key] == value, (key, got)
