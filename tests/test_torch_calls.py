"""How a spec says its torch model calls a layer (``called:``, ``module:``, ``shares:``, a block's
``module:``) and what each counting tool makes of it, derived by hand on a small model.

The reference numbers of the real tools on torchvision models that need these keys (GoogLeNet,
Inception-v3, DenseNet, ConvNeXt) are checked in tests/test_import.py.
"""

from __future__ import annotations

from fractions import Fraction

from explorer import Analysis, analyze
from explorer.conventions import count_layers, evaluate, views
from explorer.conventions.torchsummary import summary
from explorer.spec import loads_spec

SPEC = """
name: calls
variables:
  batch: {default: 2, min: 1, max: 8}
inputs:
  x: [batch, 4, 8, 8]
blocks:
  unit:
    module: Unit                       # a container module: torchsummary lists it after its last layer
    layers:
      - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1, bias: false}
      - {name: act, op: relu}
      - {name: conv2, op: conv2d, out: 4, kernel: 1, bias: false}
      - {name: act2, op: relu, shares: act}   # the same nn.ReLU instance called again
layers:
  - {name: u, block: unit}
  - {name: f_relu, op: relu, called: functional}           # F.relu in a forward
  - {name: norm, op: layernorm, dims: 1, module: LayerNorm2d}   # a subclass of nn.LayerNorm (exact-type tools skip it)
  - {name: pool, op: adaptive_avgpool, size: 1, called: functional}
"""

N, C, H, W = 2, 4, 8, 8
NUMEL = N * C * H * W
CONV = N * C * H * W * C * 9  # 3x3 conv MACs
CONV1 = N * C * H * W * C  # 1x1 conv MACs


def _analysis() -> Analysis:
    return analyze(loads_spec(SPEC, path="calls.yaml"))


def _by_name(convention: str) -> dict[str, object]:
    a = _analysis()
    return dict(zip((r.name for r in a.layers), count_layers(a, convention)))


def test_views_carry_the_keys() -> None:
    vs, ctx = views(_analysis())
    v = {x.path: x for x in vs}
    assert v["f_relu"].functional and not v["f_relu"].exact_type
    assert v["norm"].module == "LayerNorm2d" and not v["norm"].exact_type
    assert v["u.act"].reused and not v["u.act2"].reused  # the later call overwrites the earlier one
    assert v["u.act2"].closes == ("Unit",) and v["u.conv"].closes == ()
    assert any("called as functions" in f for f in ctx.facts) and any("LayerNorm2d" in f for f in ctx.facts)


def test_thop_counts_exact_module_types_only() -> None:
    counts = _by_name("thop")
    assert counts["u.conv"] == CONV and counts["u.conv2"] == CONV1
    assert counts["norm"] == 0  # LayerNorm2d is not in thop's registry (nn.LayerNorm would be 4 per element)
    assert counts["pool"] == 0  # F.adaptive_avg_pool2d: no module to hook
    as_modules = loads_spec(SPEC.replace(", module: LayerNorm2d", "").replace(", called: functional", ""),
                            path="m.yaml")
    plain = dict(zip((r.name for r in analyze(as_modules).layers), count_layers(analyze(as_modules), "thop")))
    assert plain["norm"] == 4 * NUMEL and plain["pool"] == (H * W + 1) * N * C


def test_ptflops_splits_module_hooks_and_patched_functions() -> None:
    counts = _by_name("ptflops")
    assert counts["u.act"] == Fraction(NUMEL, N) + NUMEL  # nn.ReLU: hook (÷N) + patched F.relu
    assert counts["f_relu"] == NUMEL  # F.relu only: not divided by the batch
    assert counts["norm"] == 0  # no hook for the subclass; F.layer_norm is not patched
    assert counts["pool"] == NUMEL  # patched F.adaptive_avg_pool2d only
    total = (CONV + CONV1 + 2 * NUMEL) // N + 2 * NUMEL + NUMEL + NUMEL
    assert evaluate(_analysis(), "ptflops").total == total


def test_torchstat_and_flopth_keep_the_last_call_of_a_shared_module() -> None:
    unshared = loads_spec(SPEC.replace(", shares: act", ""), path="u.yaml")
    for tool in ("torchstat", "flopth"):
        counts = _by_name(tool)
        a = analyze(unshared)
        separate = dict(zip((r.name for r in a.layers), count_layers(a, tool)))
        assert separate["u.act"] == separate["u.act2"] > 0  # two modules: both calls count
        assert counts["u.act"] == 0 and counts["u.act2"] == separate["u.act2"]  # one module: its last call


def test_torchsummary_rows_name_subclasses_and_containers() -> None:
    rows = [r.key.rsplit("-", 1)[0] for r in summary(_analysis()).rows]
    # functional calls make no row; the container follows its last layer; the subclass keeps its name
    assert rows == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Unit", "LayerNorm2d"]


def test_bundled_resnet50_lists_each_bottleneck_once() -> None:
    from explorer import load_spec

    rows = summary(analyze(load_spec("resnet50"))).rows
    assert sum(r.key.startswith("Bottleneck-") for r in rows) == 3 + 4 + 6 + 3


def test_the_bridge_calls_layers_as_the_spec_says() -> None:
    """The spec's PyTorch module: a subclass named by ``module:``, one instance for ``shares:``, and a
    ``called: functional`` layer that no module hook sees (as thop's or torchinfo's hooks would not)."""
    import pytest

    torch = pytest.importorskip("torch")
    from explorer.torch import to_module

    bridge = to_module(loads_spec(SPEC, path="calls.yaml"))
    graph = bridge.module
    norm = graph.layer("norm")
    assert type(norm).__name__ == "LayerNorm2d" and isinstance(norm, torch.nn.LayerNorm)
    assert type(norm) is not torch.nn.LayerNorm
    assert graph.layer("u.act2") is graph.layer("u.act")
    seen: list[str] = []
    for path in ("u.conv", "u.act", "f_relu", "norm", "pool"):
        graph.layer(path).register_forward_hook(lambda m, i, o, path=path: seen.append(path))
    with torch.no_grad():
        out = graph(*bridge.inputs)
    assert seen == ["u.conv", "u.act", "u.act", "norm"]  # f_relu and pool are function calls
    assert tuple(out.shape) == (N, C, 1, 1)
