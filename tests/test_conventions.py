"""Counting conventions: every tool's number reproduced exactly from the spec and its formula table.

Reference numbers: tests/data/torchvision_counts.json (the real tools on torchvision models), the
real tools on small torch twins of the specs below (measured in a venv with torch 2.13 and the
versions in docs/conventions.md, under torch.no_grad() like the refs), and hand-derived counts.
"""

from __future__ import annotations

import functools
import json

import pytest

from explorer import Analysis, analyze, load_spec
from explorer.conventions import CONVENTIONS, Result, compare, count_layers, evaluate, get
from explorer.errors import ExplorerError
from explorer.ops import REGISTRY
from explorer.spec import loads_spec
from tests.conftest import REFS, ROOT, overrides, ref_rows

TOOL_KEYS = {"fvcore": "fvcore_total", "thop": "thop_macs", "ptflops": "ptflops_pytorch_macs",
             "ptflops-aten": "ptflops_aten_macs", "torchinfo": "torchinfo_mult_adds",
             "torch": "torch_flop_counter_flops"}
CNN_ROWS = ref_rows("resnet18", "resnet50", "vgg16", "mobilenet_v2")


def _id(row: dict) -> str:
    width = row["kwargs"].get("width_mult")
    return f"{row['model']}-{row['resolution']}" + (f"-w{width}" if width else "")


@functools.cache
def _cached(model: str, values: tuple) -> Analysis:
    return analyze(load_spec(model), dict(values))


def _analysis(row: dict) -> Analysis:
    """One analysis per reference row, shared by the tests (evaluate never changes it)."""
    return _cached(row["model"], tuple(sorted(overrides(row).items())))


# -- the reference rows ----------------------------------------------------------------------------

@pytest.mark.parametrize("row", CNN_ROWS, ids=_id)
@pytest.mark.parametrize("name", list(TOOL_KEYS))
def test_totals_equal_the_tools(row: dict, name: str) -> None:
    assert evaluate(_analysis(row), name).total == row[TOOL_KEYS[name]]


@pytest.mark.parametrize("row", CNN_ROWS + ref_rows("vit_b_16"), ids=_id)
def test_fvcore_by_operator(row: dict) -> None:
    assert evaluate(_analysis(row), "fvcore").by_key == row["fvcore_by_operator"]


@pytest.mark.parametrize("name", [n for n in TOOL_KEYS if TOOL_KEYS[n] in ref_rows("vit_b_16")[0]])
def test_vit_totals_equal_the_tools(name: str) -> None:
    row = ref_rows("vit_b_16")[0]
    assert evaluate(_analysis(row), name).total == row[TOOL_KEYS[name]]


def test_per_layer_counts_add_up_to_the_total() -> None:
    a = analyze(load_spec("resnet50"))
    for name in CONVENTIONS:
        assert sum(count_layers(a, name)) == evaluate(a, name).total, name


def test_explorer_convention_is_exact_macs() -> None:
    a = analyze(load_spec("mobilenet_v2"))
    r = evaluate(a, "explorer")
    assert r.total == a.totals["macs"] and r.extra["FLOPs"] == a.totals["flops"]


# -- the tables -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_every_op_is_in_every_table(name: str) -> None:
    conv = CONVENTIONS[name]
    assert set(conv.table) == set(REGISTRY)
    for table in conv.extra.values():
        assert set(table) == set(REGISTRY)
    assert all(rule.note for rule in conv.table.values())


def test_unknown_convention_suggests() -> None:
    with pytest.raises(ExplorerError, match="did you mean 'fvcore'"):
        get("fvcor")


# -- the ViT: what the tools cannot see ------------------------------------------------------------

def test_vit_explanations_say_the_attention_is_invisible() -> None:
    a = analyze(load_spec("vit_b_16"))
    attn = [r for r in a.layers if r.op == "attention"]
    macs, flops = sum(r.metrics["macs"] for r in attn), sum(r.metrics["flops"] for r in attn)
    assert macs == 6_292_703_232
    c = compare(a)
    first = {name: diffs[0] for name, diffs in c.explanations.items()}
    for name in ("fvcore", "thop", "ptflops-aten"):
        assert first[name].op == "attention" and first[name].amount == -macs
    assert first["torch"].amount == -flops and first["calflops"].amount == -flops
    assert first["fvcore"].text == ("fvcore does not see the fused attention path "
                                    "(aten::_native_multi_head_attention has no handle): -6.29 G")
    assert first["thop"].text == ("thop does not see the fused attention path "
                                  "(nn.MultiheadAttention has no hook; out_proj is never called): -6.29 G")
    torchinfo = {d.op: d for d in c.explanations["torchinfo"]}
    assert torchinfo["attention"].amount == -macs
    assert torchinfo["attention"].text.startswith("torchinfo does not see the fused attention path")
    assert torchinfo["linear"].text.endswith("once per sample, not per token, plus the bias: -11.10 G")
    # ptflops is the one tool that counts the attention, with its own hook formula
    ptflops = {d.op: d for d in c.explanations["ptflops"]}
    assert ptflops["attention"].amount == 12 * 525_614_124 - macs
    assert c.explanations["torchstat"][0].text.startswith(
        "torchstat cannot run this model: a Linear on a 3-D input raises AssertionError")
    assert c.results["torchstat"].total is None
    assert any("fast path" in n for n in c.notes)


def test_the_fvcore_example_of_the_issue() -> None:
    c = compare(analyze(load_spec("resnet50")))
    texts = [d.text for d in c.explanations["thop"]]
    assert "thop counts BatchNorm as 4 ops per element (2 without affine): +44.46 M" in texts


@pytest.mark.parametrize("model", ["resnet18", "resnet50", "vgg16", "mobilenet_v2", "vit_b_16", "gpt2", "unet"])
def test_explanations_add_up_to_the_difference(model: str) -> None:
    a = analyze(load_spec(model), {"batch": 3})
    c = compare(a)
    for name, diffs in c.explanations.items():
        r = c.results[name]
        if r.total is None:
            continue
        ours = a.totals[r.convention.ours]
        assert sum(d.amount for d in diffs) == r.total - ours, name


# -- how torchvision calls its layers ---------------------------------------------------------------

def test_mobilenet_pooling_is_functional() -> None:
    """The spec says ``called: functional`` on the pooling (MobileNetV2 calls F.adaptive_avg_pool2d)."""
    row = ref_rows("mobilenet_v2")[0]
    a = _analysis(row)
    pool = [i for i, r in enumerate(a.layers) if r.op == "adaptive_avgpool"]
    assert [count_layers(a, "thop")[i] for i in pool] == [0]  # no nn.AdaptiveAvgPool2d module to hook
    assert [count_layers(a, "ptflops")[i] for i in pool] == [1280 * 7 * 7]  # patched F.* only, once
    text = (ROOT / "specs" / "mobilenet_v2.yaml").read_text()
    assert text.count("called: functional") == 1
    as_module = loads_spec(text.replace(", called: functional", ""), path="mobilenet_v2.yaml")
    b = analyze(as_module, {k: v for k, v in a.values.items() if k in as_module.variables})
    assert evaluate(b, "thop").total != row["thop_macs"]  # as if it were a module: the tools disagree
    assert evaluate(b, "ptflops").total != row["ptflops_pytorch_macs"]


def test_torchstat_keeps_the_last_call_of_a_shared_relu() -> None:
    a = analyze(load_spec("resnet50"))
    counts = dict(zip((r.name for r in a.layers), count_layers(a, "torchstat")))
    assert counts["layer1.0.relu1"] == counts["layer1.0.relu2"] == 0
    assert counts["layer1.0.relu3"] == 256 * 56 * 56
    assert counts["relu"] == 64 * 112 * 112  # the stem's ReLU is a module of its own


# -- hand-derived: conv + bn + relu + pool + linear -------------------------------------------------

TOY = """
name: toy
variables:
  batch: {default: 1, min: 1, max: 8}
inputs:
  x: [batch, 3, 32, 32]
layers:
  - {name: conv, op: conv2d, out: 8, kernel: 3, padding: 1}
  - {name: bn, op: batchnorm}
  - {name: relu, op: relu}
  - {name: pool, op: maxpool, kernel: 2}
  - {name: gap, op: adaptive_avgpool, size: 1}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out: 10}
"""


@pytest.mark.parametrize("n", [1, 2, 3])
def test_toy_torchstat_and_calflops_by_hand(n: int) -> None:
    a = analyze(loads_spec(TOY), {"batch": n})
    conv_macs = 8 * 32 * 32 * 3 * 3 * 3  # per sample; 8192 outputs with a bias each
    act, pooled = 8 * 32 * 32, 8 * 16 * 16
    # torchstat Flops: conv MACs + bias, BN 2 per element, ReLU and max pool 1 per input element,
    # adaptive pooling unsupported, Linear N*I*O; MAdd per sample: conv (2*27 - 1 + 1) per output,
    # BN 4 per element, ReLU 1, max pool (k*k - 1) per output, Linear O*(2I - 1).
    stat = evaluate(a, "torchstat")
    assert stat.total == n * (conv_macs + act + 2 * act + act + act + 8 * 10) == n * 262_224
    assert stat.extra["MAdd"] == act * 54 + 4 * act + act + 3 * pooled + 10 * 15 == 489_622
    # calflops FLOPs: 2 per conv MAC + bias, BN 2 per element, ReLU / pools 1 per input element,
    # Linear 2 per MAC; MACs: conv and linear only.
    cal = evaluate(a, "calflops")
    assert cal.total == n * (2 * conv_macs + act + 2 * act + act + act + pooled + 2 * 80) == n * 485_536
    assert cal.extra["MACs"] == n * (conv_macs + 80) == n * 221_264


# measured by the real tools on the same toy (docs/conventions-research.md, "toy_b1..3")
TOY_MEASURED = {1: {"fvcore": 239696, "thop": 256088, "ptflops": 282714, "ptflops-aten": 229466,
                    "torchinfo": 229482, "torchstat": 262224, "calflops": 485536, "torch": 442528},
                2: {"ptflops": 301146, "torchinfo": 458964, "calflops": 971072, "torch": 885056},
                3: {"ptflops": 319578, "fvcore": 719088, "thop": 768264, "torchstat": 786672}}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_toy_all_tools_measured(n: int) -> None:
    a = analyze(loads_spec(TOY), {"batch": n})
    assert {name: evaluate(a, name).total for name in TOY_MEASURED[n]} == TOY_MEASURED[n]


def _measured(r: Result) -> object:
    if r.error:
        return None
    second = {"torchstat": "MAdd", "calflops": "MACs"}.get(r.convention.name)
    return (r.total, r.extra[second]) if second else r.total


# -- torchvision models measured with the real tools (torchvision 0.28, torch 2.13, no_grad) ---------

# (model, resolution, batch) -> tool -> total; torchstat (Flops, MAdd), calflops (FLOPs, MACs); None: raised
TV_MEASURED = {
    ("resnet18", 224, 1): {"torchstat": (1821399040, 3638757912), "calflops": (3636250112, 1814073344)},
    ("resnet50", 224, 1): {"torchstat": (4118537216, 8219637272), "calflops": (8211108352, 4089184256)},
    ("vgg16", 224, 1): {"torchstat": (15503489024, 30958666264), "calflops": (30973778432, 15470264320)},
    ("mobilenet_v2", 224, 1): {"torchstat": (320236288, 627687672), "calflops": (614967488, 300774272)},
    ("vit_b_16", 224, 1): {"torchstat": None, "calflops": (22568574720, 11271124992)},
    ("vit_b_16", 224, 2): {"fvcore": 22580073984, "thop": 22572509184, "ptflops": 17613292792,
                           "torchinfo": 346465232},
    ("resnet50", 160, 2): {"fvcore": 4197427200, "thop": 4220112896, "ptflops": 2114753000,
                           "ptflops-aten": 4174645200, "torchinfo": 4174751440, "torch": 8349286400,
                           "torchstat": (4204595200, 4195698200), "calflops": (8382694400, 4174643200)},
    ("mobilenet_v2", 160, 3): {"fvcore": 482788800, "thop": 503136000, "ptflops": 164109800,
                               "ptflops-aten": 462252600, "torchinfo": 462354936, "torch": 924499200,
                               "torchstat": (492038400, 321502200), "calflops": (945038400, 462249600)},
}


@pytest.mark.parametrize("case", list(TV_MEASURED), ids=lambda c: f"{c[0]}-{c[1]}-b{c[2]}")
def test_torchvision_equal_the_real_tools(case: tuple[str, int, int]) -> None:
    a = _cached(case[0], (("batch", case[2]), ("resolution", case[1])))
    assert {name: _measured(evaluate(a, name)) for name in TV_MEASURED[case]} == TV_MEASURED[case]


# -- twins of small torch models, measured with the real tools --------------------------------------

TWINS = {
    "cnn": """
name: cnn
variables: {batch: {default: 1, min: 1, max: 8}}
inputs: {x: [batch, 4, 16, 16]}
layers:
  - {name: conv, op: conv2d, out: 8, kernel: 3, padding: 1}
  - {name: gn, op: groupnorm, groups: 2}
  - {name: act, op: silu}
  - {name: pool, op: avgpool, kernel: 2}
  - {name: up, op: conv_transpose2d, out: 6, kernel: 2, stride: 2}
  - {name: bn, op: batchnorm}
  - {name: relu6, op: relu6}
  - {name: ups, op: upsample, scale: 2}
  - {name: lrelu, op: leaky_relu}
  - {name: mp, op: maxpool, kernel: 3, stride: 2, padding: 1}
  - {name: ln, op: layernorm}
  - {name: amp, op: adaptive_maxpool, size: 1}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out: 10}
  - {name: sm, op: softmax}
""",
    "tx": """
name: tx
variables: {batch: {default: 2, min: 1, max: 8}}
inputs: {x: [batch, 5, 32]}
layers:
  - {name: fc0, op: linear, out: 32}
  - {name: mha, op: attention, heads: 4}
  - {name: ln, op: layernorm}
  - {name: fc1, op: linear, out: 64}
  - {name: gelu, op: gelu}
  - {name: fc2, op: linear, out: 32}
""",
    "up": """
name: up
variables: {batch: {default: 1, min: 1, max: 8}}
inputs: {x: [batch, 3, 7, 7]}
layers:
  - {name: conv, op: conv2d, out: 4, kernel: 3, bias: false}
  - {name: up, op: upsample, size: [12, 12], mode: bilinear}
  - {name: relu, op: relu}
  - {name: gap, op: adaptive_avgpool, size: 5}
""",
    "misc": """
name: misc
variables: {batch: {default: 2, min: 1, max: 8}}
inputs: {x: [batch, 4, 9, 9]}
layers:
  - {name: conv1, op: conv2d, out: 6, kernel: 4, padding: same}
  - {name: hs, op: hardswish}
  - {name: sg, op: sigmoid}
  - {name: m, op: flatten, start: 2}
  - {name: g, op: matmul, inputs: [m, m], transpose_b: true}
  - {name: conv2, op: conv2d, inputs: sg, out: 6, kernel: 3, stride: 2, padding: 2, dilation: 2, groups: 3}
  - {name: th, op: tanh}
  - {name: hsg, op: hardsigmoid}
  - {name: s, op: mean, axes: [2, 3]}
  - {name: gf, op: flatten, inputs: g}
  - {name: cat, op: concat, inputs: [s, gf], axis: 1}
  - {name: fc, op: linear, out: 5}
""",
    "emb": """
name: emb
variables: {batch: {default: 2, min: 1, max: 8}}
inputs: {x: {shape: [batch, 7], dtype: int64}}
layers:
  - {name: emb, op: embedding, num: 100, dim: 16}
  - {name: fc, op: linear, out: 8, bias: false}
""",
}
# (twin, batch) -> tool -> total; torchstat (Flops, MAdd), calflops (FLOPs, MACs); None: the tool raised
MEASURED = {
    ("cnn", 1): {"fvcore": 113212, "thop": 141913, "ptflops": 139856, "ptflops-aten": 89670, "torchinfo": 126594,
                 "torchstat": (95804, 194187), "calflops": (214754, 86076), "torch": 172152},
    ("cnn", 3): {"fvcore": 339636, "thop": 425739, "ptflops": 171620, "ptflops-aten": 269010, "torchinfo": 379782,
                 "torchstat": (287412, 194187), "calflops": (644262, 258228), "torch": 516456},
    ("tx", 2): {"fvcore": 52800, "thop": 52480, "ptflops": 50340, "ptflops-aten": 52480, "torchinfo": 10624,
                "torchstat": None, "calflops": (104640, 51200), "torch": 102400},
    ("up", 1): {"fvcore": 5580, "thop": 9712, "ptflops": 6156, "ptflops-aten": 2700, "torchinfo": 2700,
                "torchstat": (3420, 5876), "calflops": (6696, 2700), "torch": 5400},
    ("up", 3): {"fvcore": 16740, "thop": 29136, "ptflops": 9228, "ptflops-aten": 8100, "torchinfo": 8100,
                "torchstat": (10260, 5876), "calflops": (19800, 8100), "torch": 16200},
    ("up", 5): {"ptflops": 12607, "thop": 48560},
    ("misc", 2): {"fvcore": 11652, "thop": 68028, "ptflops": 34655, "ptflops-aten": 75142, "torchinfo": 69310,
                  "torchstat": (69300, 68023), "calflops": (111012, 54972), "torch": 147720},
    ("emb", 2): {"fvcore": 1792, "thop": 1792, "ptflops": 896, "ptflops-aten": 1792, "torchinfo": 3456,
                 "torchstat": None, "calflops": (3584, 1792), "torch": 3584},
}
FVCORE_MEASURED = {("cnn", 1): {"conv": 86016, "group_norm": 10240, "batch_norm": 3072, "upsample_nearest2d": 6144,
                                "layer_norm": 7680, "linear": 60},
                   ("up", 1): {"conv": 2700, "upsample_bilinear2d": 2304, "adaptive_avg_pool2d": 576},
                   # conv1 has padding 'same': aten::_convolution_mode, which fvcore does not count
                   ("misc", 2): {"conv": 5400, "matmul": 5832, "linear": 420}}


@pytest.mark.parametrize("case", list(MEASURED), ids=lambda c: f"{c[0]}-b{c[1]}")
def test_twins_equal_the_real_tools(case: tuple[str, int]) -> None:
    a = analyze(loads_spec(TWINS[case[0]]), {"batch": case[1]})
    got = {name: _measured(evaluate(a, name)) for name in MEASURED[case]}
    assert got == MEASURED[case]
    if case in FVCORE_MEASURED:
        assert evaluate(a, "fvcore").by_key == FVCORE_MEASURED[case]


def test_ptflops_batch_division_and_truncation_are_explained() -> None:
    c = compare(analyze(loads_spec(TWINS["up"]), {"batch": 5}))
    texts = [d.text for d in c.explanations["ptflops"]]
    assert any(t.startswith("ptflops divides module-hook counts by the batch size 5") for t in texts)
    assert any(t.startswith("ptflops truncates its total to an integer") for t in texts)


# -- command line -----------------------------------------------------------------------------------

def test_analyze_convention_json(run) -> None:
    row = ref_rows("resnet50")[0]
    code, out, _ = run("analyze", "resnet50", "--convention", "thop", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"]["count"] == row["thop_macs"]
    assert data["totals"]["macs"] == 4_089_184_256
    assert sum(layer["convention_count"] for layer in data["layers"]) == row["thop_macs"]
    assert data["convention"]["unit"] == "MACs" and data["convention"]["version"] == REFS["tools"]["thop"]


def test_analyze_convention_table_and_errors(run) -> None:
    code, out, _ = run("analyze", "vgg16", "--convention", "fvcore", "--exact")
    assert code == 0 and "15,470,289,408 flops (= MACs)" in out
    code, _, err = run("analyze", "vgg16", "--convention", "fvcor")
    assert code == 2 and "did you mean 'fvcore'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("analyze", "vgg16", "--convention", "thop", "--hardware", "h100_sxm")
    assert code == 2 and "--convention" in err


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_compare_command(run, fmt: str) -> None:
    code, out, _ = run("compare", "vit_b_16", "--format", fmt)
    assert code == 0
    if fmt == "json":
        data = json.loads(out)
        assert data["conventions"]["fvcore"]["total"] == ref_rows("vit_b_16")[0]["fvcore_total"]
        assert data["rows"][-1]["category"] == "total"
        assert {r["category"] for r in data["rows"]} >= {"conv", "linear", "norm", "activation", "pooling",
                                                         "elementwise", "attention", "data", "shape"}
        assert data["explanations"]["fvcore"][0]["difference"] == -6_292_703_232
    else:
        assert "fvcore does not see the fused attention path" in out and "-6.29 G" in out


def test_compare_with_set(run) -> None:
    row = next(r for r in ref_rows("mobilenet_v2") if r["kwargs"]["width_mult"] == 0.5)
    code, out, _ = run("compare", "mobilenet_v2", "--set", "width=0.5", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["conventions"]["thop"]["total"] == row["thop_macs"]


def test_docs_cover_every_convention() -> None:
    text = (ROOT / "docs" / "conventions.md").read_text()
    for name, conv in CONVENTIONS.items():
        assert f"`{name}`" in text and conv.version in text, name
