"""flopth, torchsummary and TensorFlow's profiler reproduced to the integer (issue 14).

Reference numbers: tests/data/counter_counts.json (flopth 0.1.6 and torchsummary 1.5.1 on the torchvision
models, made by tests/data/make_counter_refs.py) and tests/data/keras_counts.json (TensorFlow 2.21 profiler
and Keras 3.15 parameter counts on tf.keras.applications models, made by tests/data/make_tf_refs.py).
"""

from __future__ import annotations

import functools
import json

import pytest

from explorer import Analysis, analyze, load_spec
from explorer.commands.analyze import torchsummary_text
from explorer.conventions import compare, count_layers, evaluate
from explorer.conventions.torchsummary import summary
from explorer.errors import ExplorerError
from explorer.spec import loads_spec
from tests.conftest import DATA

COUNTERS = json.loads((DATA / "counter_counts.json").read_text())
KERAS = json.loads((DATA / "keras_counts.json").read_text())
KERAS_SPECS = {"MobileNetV2": "keras_mobilenet_v2", "ResNet50": "keras_resnet50"}


def _id(row: dict) -> str:
    extra = "".join(f"-{k}{v}" for k, v in row["kwargs"].items())
    return f"{row['model']}-{row['resolution']}-b{row['batch']}{extra}"


@functools.cache
def _analysis(spec: str, values: tuple) -> Analysis:
    return analyze(load_spec(spec), dict(values))


def _torchvision(row: dict) -> Analysis:
    values = {"batch": row["batch"], "resolution": row["resolution"]}
    if "width_mult" in row["kwargs"]:
        values["width"] = row["kwargs"]["width_mult"]
    return _analysis(row["model"], tuple(sorted(values.items())))


def _keras(row: dict) -> Analysis:
    values = {"batch": row["batch"], "resolution": row["resolution"]}
    if "alpha" in row["kwargs"]:
        values["width"] = row["kwargs"]["alpha"]
    return _analysis(KERAS_SPECS[row["model"]], tuple(sorted(values.items())))


# -- flopth -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("row", COUNTERS["rows"], ids=_id)
def test_flopth_equals_the_tool(row: dict) -> None:
    assert evaluate(_torchvision(row), "flopth").total == row["flopth_flops"]


def test_flopth_vit_linear_counts_dims_0_and_1() -> None:
    a = analyze(load_spec("vit_b_16"))
    counts = dict(zip((r.name for r in a.layers), count_layers(a, "flopth")))
    assert counts["encoder.0.mlp_fc1"] == 1 * 197 * 197  # x[0]·x[1]·y[1] on [1, 197, 768] -> [1, 197, 3072]
    assert counts["head"] == 768 * 1000
    assert counts["encoder.0.self_attention"] == 0


def test_flopth_keeps_the_last_call_of_a_shared_relu() -> None:
    a = analyze(load_spec("resnet18"))
    counts = dict(zip((r.name for r in a.layers), count_layers(a, "flopth")))
    assert counts["layer1.0.relu1"] == 0 and counts["layer1.0.relu2"] == 64 * 56 * 56


TOY = """
name: toy
variables: {batch: {default: 2, min: 1, max: 8}}
inputs: {x: [batch, 3, 8, 8]}
layers:
  - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1, groups: 1}
  - {name: ln, op: layernorm}
  - {name: gn, op: groupnorm, groups: 2}
  - {name: hs, op: hardswish}
  - {name: sg, op: sigmoid}
  - {name: up, op: upsample, scale: 2}
  - {name: gap, op: adaptive_avgpool, size: 1}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out: 5}
  - {name: sm, op: softmax}
"""


def test_flopth_by_hand() -> None:
    a = analyze(loads_spec(TOY))
    n, act = 2, 2 * 4 * 8 * 8
    by_layer = dict(zip((r.name for r in a.layers), count_layers(a, "flopth")))
    assert by_layer == {
        "conv": 9 * 3 * 4 * n * 64 + 4 * n * 64,  # kh·kw·Cin·Cout·N·Ho·Wo + bias
        "ln": act,  # no `affine` attribute on nn.LayerNorm: never x2
        "gn": 2 * act, "hs": act, "sg": 0,
        "up": n * 16 * 16,  # N·Ho·Wo, channels dropped
        "gap": 4 * act, "flatten": 0,
        "fc": n * 4 * 5,  # x[0]·x[1]·y[1]
        "sm": 0,
    }


# -- torchsummary -------------------------------------------------------------------------------------

TS_ROWS = [r for r in COUNTERS["rows"] if "torchsummary" in r]


@pytest.mark.parametrize("row", TS_ROWS, ids=_id)
def test_torchsummary_equals_the_tool(row: dict) -> None:
    ref = row["torchsummary"]
    s = summary(_torchvision(row))
    assert [[r.key, r.output_shape, r.params] for r in s.rows] == ref["rows"]
    assert (s.total_params, s.trainable_params) == (ref["total_params"], ref["trainable_params"])
    assert ["%0.2f" % v for v in (s.input_mb, s.forward_backward_mb, s.params_mb, s.total_mb)] == \
        list(ref["sizes_mb"].values())
    assert evaluate(_torchvision(row), "torchsummary").total == ref["total_params"]
    assert sum(r.params for r in s.rows) == s.total_params  # totals == sum of rows


def test_torchsummary_printout_is_the_tools() -> None:
    row = next(r for r in TS_ROWS if r["model"] == "resnet18")
    assert torchsummary_text(summary(_torchvision(row))) + "\n" == row["torchsummary"]["text"]


def test_torchsummary_raises_on_vit_like_the_tool() -> None:
    assert any("torchsummary_error" in r for r in COUNTERS["rows"] if r["model"] == "vit_b_16")
    a = analyze(load_spec("vit_b_16"))
    assert evaluate(a, "torchsummary").total is None
    with pytest.raises(ExplorerError, match="AttributeError"):
        summary(a)


def test_analyze_torchsummary_per_layer(run) -> None:
    row = next(r for r in TS_ROWS if r["model"] == "resnet18")
    code, out, _ = run("analyze", "resnet18", "--convention", "torchsummary", "--per-layer")
    assert code == 0
    assert out.split("\n", 1)[1] == row["torchsummary"]["text"]
    code, out, _ = run("analyze", "resnet18", "--convention", "torchsummary")
    assert code == 0 and "BasicBlock-11" not in out and "Estimated Total Size (MB): 107.96" in out
    code, out, _ = run("analyze", "mobilenet_v2", "--convention", "torchsummary", "--format", "json")
    data = json.loads(out)["torchsummary"]
    assert data["total_params"] == 3_504_872 and data["rows"][-1]["key"] == "Linear-158"
    code, _, err = run("analyze", "vit_b_16", "--convention", "torchsummary")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "AttributeError" in err


# -- TensorFlow profiler on the Keras specs ---------------------------------------------------------

@pytest.mark.parametrize("row", KERAS["rows"], ids=_id)
def test_tf_profiler_equals_the_tool(row: dict) -> None:
    r = evaluate(_keras(row), "tf-profiler")
    assert r.total == row["total_float_ops"]
    assert r.extra["trainable params"] == row["trainable_params"]
    assert r.extra["total params (Keras, with BN moving statistics)"] == row["total_params"]


@pytest.mark.parametrize("row", KERAS["rows"], ids=_id)
def test_keras_specs_have_kerass_trainable_params(row: dict) -> None:
    assert _keras(row).totals["params"] == row["trainable_params"]


def test_tf_profiler_batchnorm_by_hand() -> None:
    """tf.nn.batch_normalization unfused: 2 per element, 6 per channel (the channel ops do not scale with N)."""
    a = analyze(loads_spec(TOY.replace("op: layernorm", "op: batchnorm")))
    counts = dict(zip((r.name for r in a.layers), count_layers(a, "tf-profiler")))
    assert counts["ln"] == 2 * (2 * 4 * 8 * 8) + 6 * 4


def test_tf_profiler_refuses_unverified_settings() -> None:
    r = evaluate(analyze(load_spec("gpt2")), "tf-profiler")  # a causal mask: no Keras twin measured it
    assert r.total is None and "no verified tf-profiler rule for 'attention'" in (r.error or "")


TF_TWINS = {
    "tfcnn": """
name: tfcnn
variables: {batch: {default: 2, min: 1, max: 8}}
inputs: {x: [batch, 4, 16, 16]}
layers:
  - {name: conv, op: conv2d, out: 8, kernel: 3, padding: 1}
  - {name: bn, op: batchnorm}
  - {name: sg, op: sigmoid}
  - {name: ap, op: avgpool, kernel: 2}
  - {name: th, op: tanh}
  - {name: lr, op: leaky_relu}
  - {name: up, op: upsample, scale: 2}
  - {name: mp, op: maxpool, kernel: 3, stride: 2, padding: 1}
  - {name: dw, op: conv2d, out: 8, kernel: 3, padding: 1, groups: 8, bias: false}
  - {name: hs, op: hardswish}
  - {name: gn, op: groupnorm, groups: 2}
  - {name: ct, op: conv_transpose2d, out: 6, kernel: 2, stride: 2}
  - {name: si, op: silu}
  - {name: r6, op: relu6}
  - {name: hsg, op: hardsigmoid}
  - {name: m, op: mul, inputs: [hsg, hsg]}
  - {name: ub, op: upsample, scale: 2, mode: bilinear}
  - {name: gm, op: adaptive_maxpool, size: 1}
  - {name: gap, op: mean, axes: [2, 3]}
  - {name: fc, op: linear, out: 10}
  - {name: sm, op: softmax}
""",
    "tftx": """
name: tftx
variables: {batch: {default: 2, min: 1, max: 8}}
inputs: {x: [batch, 5, 32]}
layers:
  - {name: fc0, op: linear, out: 32}
  - {name: ln, op: layernorm}
  - {name: mha, op: attention, heads: 4}
  - {name: g1, op: gelu}
  - {name: g2, op: gelu, approximate: tanh}
  - {name: fc1, op: linear, out: 16, bias: false}
  - {name: mm, op: matmul, inputs: [fc1, fc1], transpose_b: true}
""",
}


@pytest.mark.parametrize("row", KERAS["twins"], ids=lambda r: r["twin"])
def test_tf_profiler_equals_the_tool_on_keras_twins(row: dict) -> None:
    """Every TF rule on small Keras twins (make_tf_refs.py builds the same layers in NHWC)."""
    r = evaluate(analyze(loads_spec(TF_TWINS[row["twin"]]), {"batch": row["batch"]}), "tf-profiler")
    assert r.total == row["total_float_ops"]
    assert r.extra["trainable params"] == row["trainable_params"]
    assert r.extra["total params (Keras, with BN moving statistics)"] == row["total_params"]


def test_tf_profiler_twin_by_hand() -> None:
    """The transformer twin term by term (N = 2, L = 5, E = 32, H = 4, d = 8)."""
    a = analyze(loads_spec(TF_TWINS["tftx"]))
    counts = dict(zip((r.name for r in a.layers), count_layers(a, "tf-profiler")))
    numel = 2 * 5 * 32
    assert counts == {
        "fc0": 2 * 32 * numel + numel,  # MatMul + BiasAdd
        "ln": 9 * numel + 4 * 10,  # 9 per element, 4 per row
        "mha": 4 * 2 * 32 * numel + 4 * numel + 6 * 2 * 4 * 5 * 5,  # 4 projections + biases, scale + softmax
        "g1": 4 * numel, "g2": 7 * numel,
        "fc1": 2 * 32 * 2 * 5 * 16,
        "mm": 2 * 16 * 2 * 5 * 5,
    }


def test_tf_profiler_explanations() -> None:
    a = _analysis("keras_resnet50", ())
    c = compare(a)
    diffs = {d.op: d for d in c.explanations["tf-profiler"]}
    relu_flops = sum(r.metrics["flops"] for r in a.layers if r.op == "relu")
    assert diffs["relu"].amount == -relu_flops
    assert diffs["relu"].text.startswith("tf-profiler counts 0: the TF op has no flops registration: -")
    assert c.results["tf-profiler"].total == 7_755_299_312


@pytest.mark.parametrize("spec", ["keras_mobilenet_v2", "keras_resnet50"])
def test_keras_explanations_add_up(spec: str) -> None:
    a = analyze(load_spec(spec), {"batch": 2})
    c = compare(a)
    for name, diffs in c.explanations.items():
        r = c.results[name]
        if r.total is not None:
            assert sum(d.amount for d in diffs) == r.total - a.totals[r.convention.ours], name


@pytest.mark.parametrize("row", [r for r in COUNTERS["rows"] if "flopth_printed" in r], ids=_id)
def test_flopth_prints_like_the_tool(row: dict) -> None:
    from explorer.conventions.flopth import divide_by_unit

    assert divide_by_unit(row["flopth_flops"]) == row["flopth_printed"]
