"""``explorer import`` (issue 13): torchvision models through torch.export, and ONNX files.

Acceptance: each imported spec gives the model's parameter count and FlopCounterMode's count at
the import resolution and at two others, evaluated from the one spec with ``resolution`` set.

Convention: FlopCounterMode runs the model in eval under ``torch.no_grad()`` (the setup of
tests/data/torchvision_counts.json), and the spec's count compared with it is explorer's ``torch``
convention (explorer/conventions/flop_counter.py, docs/conventions.md): conv, linear and matmul
at 2 FLOPs per MAC, nothing else. For the CNNs that is exactly 2 x the spec's ``macs`` (asserted
too); for ViT it is not, because ``nn.MultiheadAttention`` takes its fused path there
(``aten._native_multi_head_attention``, which FlopCounterMode does not count) while the spec's
``attention`` layer counts every projection and both attention matmuls. The spec's full ``macs``
for ViT are checked through the bridge instead: FlopCounterMode on the spec's own PyTorch module
(explicit matmuls) / 2 == ``macs``.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import explorer  # noqa: E402
from explorer.conventions import evaluate  # noqa: E402
from explorer.importers import Imported, import_model  # noqa: E402

DATA = Path(__file__).parent / "data"
TRACED = 64  # the import resolution: small, so the whole module runs in about a minute on 2 cores
OTHERS = (96, 128)


def _torchvision() -> Any:
    """torchvision, or a skip. Where only a CUDA build of torchvision sits on a CPU-only torch (its C
    extension does not load), its import fails on two operator registrations it does without
    checking; defining those two schemas lets the pure-Python models import (no kernel is run)."""
    try:
        import torchvision
        return torchvision
    except ImportError:
        pytest.skip("torchvision is not installed", allow_module_level=True)
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _torchvision.lib = lib  # type: ignore[attr-defined]  # keep the registrations alive
    import torchvision
    return torchvision


tv = _torchvision()

# (factory, kwargs, kwarg that sets the model's input size or None)
MODELS: dict[str, tuple[dict[str, Any], str | None]] = {
    "resnet18": ({}, None),
    "vgg11": ({}, None),
    "squeezenet1_1": ({}, None),                                     # branches + concat (Fire)
    "googlenet": ({"aux_logits": False, "init_weights": False}, None),  # Inception branches + concat
    "densenet121": ({}, None),                                       # concat of every earlier feature
    "mobilenet_v2": ({}, None),                                      # depthwise, relu6, residuals
    "mobilenet_v3_small": ({}, None),                                # depthwise, hardswish, squeeze-excitation
    "efficientnet_b0": ({}, None),                                   # depthwise, silu, squeeze-excitation
    "vit_b_16": ({"image_size": TRACED}, "image_size"),              # transformer: nn.MultiheadAttention
}


@functools.cache
def imported(name: str) -> Imported:
    kwargs, _ = MODELS[name]
    return import_model(f"torchvision.models:{name}", inputs=[("x", (1, 3, TRACED, TRACED))],
                        kwargs=json.dumps(kwargs) if kwargs else None)


@functools.cache
def spec(name: str) -> explorer.Spec:
    return explorer.loads_spec(imported(name).text, path=f"{name}.yaml")


def model(name: str, resolution: int) -> Any:
    kwargs, size_kw = MODELS[name]
    kwargs = {**kwargs, **({size_kw: resolution} if size_kw else {})}
    return getattr(tv.models, name)(**kwargs).eval()


def reference(name: str, resolution: int, batch: int = 1) -> tuple[int, int]:
    """The model's parameter count and FlopCounterMode total (eval, no_grad)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    m = model(name, resolution)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        m(torch.randn(batch, 3, resolution, resolution))
    return sum(p.numel() for p in m.parameters()), counter.get_total_flops()


@pytest.mark.parametrize("name", list(MODELS))
def test_counts_at_three_resolutions(name: str) -> None:
    s = spec(name)
    for resolution in (TRACED, *OTHERS):
        params, flops = reference(name, resolution)
        a = explorer.analyze(s, {"resolution": resolution})
        assert a.totals["params"] == params, (name, resolution)
        assert evaluate(a, "torch").total == flops, (name, resolution)
        if name != "vit_b_16":  # see the module docstring
            assert 2 * a.totals["macs"] == flops, (name, resolution)


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_through_the_bridge(name: str) -> None:
    """The spec's PyTorch module has the model's parameters and output shape, and FlopCounterMode
    on it gives the spec's macs (the full count, attention included)."""
    from torch.utils.flop_counter import FlopCounterMode

    from explorer.torch import to_module

    bridge = to_module(spec(name), {"resolution": TRACED})
    m = model(name, TRACED)
    assert sum(p.numel() for p in bridge.module.parameters()) == sum(p.numel() for p in m.parameters())
    x = torch.randn(1, 3, TRACED, TRACED)
    with torch.no_grad():
        expected = m(x)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = bridge.module(*bridge.inputs)
    assert out.shape == expected.shape
    assert counter.get_total_flops() == 2 * explorer.analyze(spec(name), {"resolution": TRACED}).totals["macs"]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vit_b_16"])
def test_same_costs_as_the_hand_written_spec(name: str) -> None:
    """Every metric (FLOPs and bytes too, not only what FlopCounterMode sees) equals the bundled spec's."""
    mine = explorer.analyze(spec(name), {"resolution": 128, "batch": 2}).totals
    theirs = explorer.analyze(explorer.load_spec(name), {"resolution": 128, "batch": 2}).totals
    assert mine == theirs


def test_batch_is_a_variable_and_costs_are_closed_form() -> None:
    s = spec("resnet18")
    macs = explorer.symbolic_costs(s).formula("macs")
    assert {str(x) for x in macs.free_symbols} == {"batch", "resolution"}
    one = explorer.analyze(s, {"resolution": 96}).totals["macs"]
    assert explorer.analyze(s, {"resolution": 96, "batch": 3}).totals["macs"] == 3 * one
    assert reference("resnet18", 96, batch=3)[1] == 2 * 3 * one


def test_repeated_blocks_are_folded() -> None:
    text = imported("resnet18").text
    assert "block: basic_block, repeat: 2, args: {out: 64}" in text  # layer1.0 and layer1.1
    assert "{name: layer2_0, block: basic_block_2, args: {out: 128}}" in text  # with downsample
    vit = imported("vit_b_16").text
    assert "{name: encoder_layers, block: encoder_block, repeat: 12}" in vit
    assert "op: attention, heads: 12" in vit
    layers = explorer.build(spec("vit_b_16")).layers
    assert sum(layer.op == "attention" for layer in layers) == 12


def test_layer_names_come_from_module_paths() -> None:
    text = imported("resnet18").text
    for line in ("{name: conv1, op: conv2d, out: 64, kernel: 7, stride: 2, padding: 3, bias: false}",
                 "{name: maxpool, op: maxpool, kernel: 3, stride: 2, padding: 1}",
                 "{name: fc, op: linear, out: 1000}"):
        assert line in text
    assert "source: torchvision.models:resnet18" in text


# -- how the model calls its layers: module-hooking tools (issue 12, item 13) -------------------------

FUNCTIONAL = json.loads((DATA / "functional_counts.json").read_text())["rows"]
TRACE_AT = {"inception_v3": 96}  # Inception-v3 needs at least 75 pixels


@functools.cache
def imported_for_tools(name: str, kwargs: str) -> Imported:
    if name in MODELS and json.dumps(MODELS[name][0]) == kwargs:
        return imported(name)
    size = TRACE_AT.get(name, TRACED)
    return import_model(f"torchvision.models:{name}", inputs=[("x", (1, 3, size, size))],
                        kwargs=kwargs if kwargs != "{}" else None)


@pytest.mark.parametrize("row", FUNCTIONAL, ids=lambda r: f"{r['model']}-{r['resolution']}-b{r['batch']}")
def test_module_hooking_tools_on_functional_calls_and_subclasses(row: dict[str, Any]) -> None:
    """thop, ptflops and torchinfo as measured on the torchvision models (tests/data/make_functional_refs.py):
    GoogLeNet and Inception-v3 call F.relu / F.avg_pool2d / F.max_pool2d, DenseNet F.relu and
    F.adaptive_avg_pool2d, ConvNeXt's LayerNorm2d subclasses nn.LayerNorm. The imported spec says so
    (called: functional, module: LayerNorm2d) and the conventions reproduce every total exactly."""
    text = imported_for_tools(row["model"], json.dumps(row["kwargs"])).text
    a = explorer.analyze(explorer.loads_spec(text, path=f"{row['model']}.yaml"),
                         {"resolution": row["resolution"], "batch": row["batch"]})
    assert a.totals["params"] == row["params"]
    assert evaluate(a, "thop").total == int(row["thop_macs"])
    assert evaluate(a, "ptflops").total == int(row["ptflops_pytorch_macs"])
    assert evaluate(a, "torchinfo").total == row["torchinfo_mult_adds"]


@pytest.mark.parametrize("name,marks,tools", [
    ("googlenet", ["called: functional"], ["ptflops"]),  # thop counts no ReLU, module or not
    ("inception_v3", ["called: functional"], ["thop", "ptflops"]),
    ("convnext_tiny", ["module: LayerNorm2d"], ["thop", "ptflops"])])
def test_without_the_marks_the_tools_disagree(name: str, marks: list[str], tools: list[str]) -> None:
    row = next(r for r in FUNCTIONAL if r["model"] == name and r["batch"] == 1)
    text = imported_for_tools(name, json.dumps(row["kwargs"])).text
    for mark in marks:
        assert mark in text
        text = text.replace(", " + mark, "")
    a = explorer.analyze(explorer.loads_spec(text, path=f"{name}.yaml"), {"resolution": row["resolution"]})
    keys = {"thop": "thop_macs", "ptflops": "ptflops_pytorch_macs"}
    for tool in tools:
        assert evaluate(a, tool).total != int(row[keys[tool]]), tool


def test_resnet_import_says_what_the_hand_written_spec_says() -> None:
    """One nn.ReLU called twice per BasicBlock (shares:), the block a container module (module:):
    torchsummary's rows, torchstat's and flopth's last-call counts equal the bundled spec's."""
    from explorer.conventions.torchsummary import summary

    text = imported("resnet18").text
    assert "{name: relu_1, op: relu, shares: relu}" in text and "    module: BasicBlock" in text
    mine = explorer.analyze(spec("resnet18"), {"resolution": 224})
    theirs = explorer.analyze(explorer.load_spec("resnet18"), {"resolution": 224})
    assert [(r.key, r.params) for r in summary(mine).rows] == [(r.key, r.params) for r in summary(theirs).rows]
    for tool in ("torchstat", "flopth", "thop", "ptflops"):
        assert evaluate(mine, tool).total == evaluate(theirs, tool).total, tool


def test_a_fixed_input_size_is_said() -> None:
    """ViT asserts its input size, so torch.export specializes it; the spec keeps resolution and
    sizes the positional embedding from the token count (checked at 96 and 128 above)."""
    result = imported("vit_b_16")
    assert any("fixes its input size" in n for n in result.notes)
    assert "shape: [1, 'dim(concat, 1)', 'dim(concat, 2)']" in result.text


def test_fx_fallback_when_export_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import explorer.importers.torch as front

    def fail(*args: Any) -> None:
        raise front.ExportFailed("forced by the test")

    monkeypatch.setattr(front, "export", fail)
    result = import_model("torchvision.models:resnet18", inputs=[("x", (1, 3, TRACED, TRACED))])
    assert result.notes[0] == "Traced with torch.fx (torch.export failed: forced by the test)."
    s = explorer.loads_spec(result.text)
    for resolution in (TRACED, 96):
        params, flops = reference("resnet18", resolution)
        a = explorer.analyze(s, {"resolution": resolution, "batch": 2})
        assert (a.totals["params"], a.totals["macs"]) == (params, flops)  # batch 2: 2 x (flops / 2)


# -- ONNX -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    for name in ("squeezenet1_1", "mobilenet_v3_small"):
        torch.manual_seed(0)
        m = model(name, TRACED)
        with torch.no_grad():  # distinct non-zero biases: the exporter drops all-zero ones and shares equal ones
            for mod in m.modules():
                if isinstance(mod, torch.nn.Conv2d) and mod.bias is not None:
                    mod.bias.uniform_(0.5, 1.0)
        path = folder / f"{name}.onnx"
        batch = torch.export.Dim("batch")
        torch.onnx.export(m, (torch.randn(2, 3, TRACED, TRACED),), str(path), dynamic_shapes=({0: batch},),
                          input_names=["image"], verbose=False)
        files[name] = path
    return files


def test_onnx_with_dynamic_batch_imports_to_the_same_counts(onnx_files: dict[str, Path]) -> None:
    result = import_model(str(onnx_files["squeezenet1_1"]))
    s = explorer.loads_spec(result.text)
    assert "image: [batch, 3, resolution, resolution]" in result.text
    for resolution in (TRACED, *OTHERS):
        params, flops = reference("squeezenet1_1", resolution)
        a = explorer.analyze(s, {"resolution": resolution, "batch": 2})
        assert a.totals["params"] == params
        assert a.totals["macs"] == flops  # batch 2: 2 x (flops / 2)
    assert "block: fire" in result.text  # layer names and blocks from torch's name scopes


def test_onnx_with_folded_batchnorm(onnx_files: dict[str, Path]) -> None:
    """The exporter folds BatchNorm into the convolutions: MACs are the model's, params the file's."""
    import onnx
    from onnx import numpy_helper

    path = onnx_files["mobilenet_v3_small"]
    s = explorer.loads_spec(import_model(str(path)).text)
    weights = [i for i in onnx.load(str(path)).graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    for resolution in (TRACED, 96):
        a = explorer.analyze(s, {"resolution": resolution})
        assert 2 * a.totals["macs"] == reference("mobilenet_v3_small", resolution)[1]
    assert a.totals["params"] == sum(numpy_helper.to_array(w).size for w in weights)


def test_onnx_sizes_missing_from_the_file(run: Any, tmp_path: Path) -> None:
    """Symbolic height and width: refused in one line, then given with --input."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    path = tmp_path / "net.onnx"
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("h"), 3: torch.export.Dim("w")}
    torch.onnx.export(net, (torch.randn(2, 3, 32, 32),), str(path), dynamic_shapes=(dims,), input_names=["image"],
                      verbose=False)
    out = tmp_path / "net.yaml"
    code, _, err = run("import", path, "-o", out)
    assert code == 2 and not out.exists()
    assert err == "error: input 'image': dim 2 has no size in the file ('h'); give it with --input image=...\n"
    code, _, err = run("import", path, "-o", out, "--input", "image=1,3,48,48")
    assert (code, err) == (0, "")
    text = out.read_text()
    assert "image: [batch, 3, resolution, resolution]" in text
    assert "{name: conv2d_0, op: conv2d, out: 8, kernel: 3, padding: 1, bias: false}" in text
    a = explorer.analyze(explorer.load_spec(out), {"resolution": 20, "batch": 3})
    assert a.totals["macs"] == 3 * (8 * 27 * 20 * 20 + 8 * 4) and a.totals["params"] == 8 * 27 + 8 * 4 + 4


# -- the command ------------------------------------------------------------------------------------

@pytest.fixture
def fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DATA))


def test_command_writes_a_spec(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "r18.yaml"
    code, stdout, err = run("import", "torchvision.models:resnet18", "-o", out, "--input", "x=1,3,64,64")
    assert (code, err) == (0, "")
    assert f"wrote {out}" in stdout
    assert explorer.analyze(explorer.load_spec(out), {"resolution": 96}).totals["params"] == 11_689_512
    code, stdout, err = run("analyze", out, "--set", "resolution=96")
    assert code == 0


def test_command_refuses_to_overwrite(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "r18.yaml"
    out.write_text("keep me")
    code, _, err = run("import", "torchvision.models:resnet18", "-o", out)
    assert code == 2 and err == f"error: '{out}' exists; use --force to overwrite it\n"
    assert out.read_text() == "keep me"
    code, _, err = run("import", "torchvision.models:resnet18", "-o", out, "--input", "x=1,3,64,64", "--force")
    assert code == 0 and out.read_text().startswith("name: resnet18")


def test_unsupported_operators_fail_one_line_per_kind(run: Any, tmp_path: Path, fixtures: None) -> None:
    out = tmp_path / "u.yaml"
    code, stdout, err = run("import", "import_models:unsupported", "-o", out, "--input", "x=1,3,32,32")
    assert code == 2 and stdout == "" and not out.exists()
    assert err.splitlines() == [
        "import_models:unsupported: unsupported operator aten.cumsum: 1 occurrence(s), at (top level)",
        "import_models:unsupported: unsupported operator aten.erf: 2 occurrence(s), at (top level); "
        "or write them as zero-cost placeholders with --allow-unknown",
    ]


def test_allow_unknown_writes_listed_placeholders(run: Any, tmp_path: Path, fixtures: None) -> None:
    out = tmp_path / "u.yaml"
    code, stdout, err = run("import", "import_models:unsupported", "-o", out, "--input", "x=1,3,32,32",
                            "--allow-unknown")
    assert code == 0 and "placeholder (zero cost, not counted): unsupported operator aten.erf" in stdout
    text = out.read_text()
    assert "- unsupported operator aten.cumsum: 1 occurrence(s), at (top level)" in text  # in the description
    assert "{name: cumsum, op: opaque, shape: [batch, 8, (-2 + resolution), (-2 + resolution)], what: aten.cumsum}" \
        in text
    a = explorer.analyze(explorer.load_spec(out), {"resolution": 40})
    assert a.totals["macs"] == 27 * 8 * 38 * 38  # the conv only: the placeholders cost nothing, explicitly
    assert [r.op for r in a.layers].count("opaque") == 3


def test_new_ops_import_exactly(fixtures: None) -> None:
    """conv1d/conv3d, pixel_shuffle, pad (reflect, zero, replicate), bicubic and nearest upsample, a
    buffer (constant), mish and leaky_relu's slope: the model's params and FlopCounterMode's count, at
    two batch sizes; the spec's bridge gives the model's output shape."""
    from torch.utils.flop_counter import FlopCounterMode

    from explorer.torch import to_module

    import import_models  # tests/data, put on the path by the fixture

    result = import_model("import_models:new_ops", inputs=[("x", (1, 4, 4, 4))], dynamic=["batch"])
    for line in ("op: conv1d", "op: conv3d", "op: pixel_shuffle, factor: 2", "padding: [1, 1, 1, 1], mode: reflect",
                 "op: pad, padding: [1, 2, 0, 1]}", "mode: replicate", "op: upsample, scale: 2, mode: bicubic",
                 "op: constant", "op: mish", "negative_slope: 0.2"):
        assert line in result.text, line
    s = explorer.loads_spec(result.text, path="new_ops.yaml")
    model = import_models.new_ops().eval()
    for batch in (1, 3):
        x = torch.randn(batch, 4, 4, 4)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            expected = model(x)
        a = explorer.analyze(s, {"batch": batch})
        assert a.totals["params"] == sum(p.numel() for p in model.parameters())
        assert 2 * a.totals["macs"] == counter.get_total_flops() > 0
        bridge = to_module(s, {"batch": batch})
        with torch.no_grad():
            assert bridge.module(*bridge.inputs).shape == expected.shape


def test_unused_parameters_are_kept(fixtures: None) -> None:
    result = import_model("import_models:with_unused", inputs=[("x", (1, 3, 2, 2))], dynamic=["batch"])
    a = explorer.analyze(explorer.loads_spec(result.text))
    assert a.totals["params"] == 12 * 5 + 5 + 7 * 3 + 3
    assert any("do not read" in n or "does not read" in n for n in result.notes)


@pytest.mark.parametrize("argv,message", [
    (["no_such_package_xyz:f"], "error: source 'no_such_package_xyz:f': cannot import no_such_package_xyz: "
                                "ModuleNotFoundError: No module named 'no_such_package_xyz'"),
    (["import_models:nothing"], "error: source 'import_models:nothing': import_models has no attribute 'nothing'"),
    (["import_models:not_a_module"], "error: source 'import_models:not_a_module': not_a_module gave a int, "
                                     "not a torch.nn.Module"),
    (["import_models", ], "error: source 'import_models': expected package.module:factory or a .onnx file"),
    (["import_models:unsupported", "--input", "x=1,3,a"], "error: --input: expected NAME=SHAPE with positive "
                                                          "sizes, e.g. x=1,3,224,224, got 'x=1,3,a'"),
    (["import_models:unsupported", "--kwargs", "{bad"], "error: --kwargs: not JSON (Expecting property name "
                                                        "enclosed in double quotes at character 1): {bad"),
    (["import_models:unsupported", "--dynamic", "depth"], "error: --dynamic: unknown dimension(s) ['depth']; "
                                                          "choose from ['batch', 'resolution']"),
    (["missing.onnx"], "error: cannot read 'missing.onnx': no such file"),
])
def test_bad_input_is_one_line(run: Any, tmp_path: Path, fixtures: None, argv: list[str], message: str) -> None:
    out = tmp_path / "o.yaml"
    code, stdout, err = run("import", *argv, "-o", out)
    assert (code, stdout, err) == (2, "", message + "\n")
    assert not out.exists()
