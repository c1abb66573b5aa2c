"""Charts checked through matplotlib's own objects: axis labels with units and directions, label
boxes that do not overlap (renderer extents), constraint lines, infeasible vs invalid."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from explorer.plots import Limit, Objective, axis_label, display_unit, pareto_figure, roofline_figure

STUDY = """name: plots
spec: mobilenet_v2
hardware: jetson_orin_nano_8gb
dtype: fp16
search:
  width: {type: float, low: 0.35, high: 1.4, step: 0.05}
  resolution: {type: int, low: 96, high: 320, step: 32}
  batch: {type: categorical, choices: [1, 4, 16, 64]}
fixed: {classes: 1000}
objectives:
  - {metric: throughput, direction: maximize}
  - {metric: latency, direction: minimize}
constraints:
  - latency <= 30 ms
  - peak_memory <= 200 MB
sampler: exhaustive
output: OUT
"""


@pytest.mark.parametrize("metric,dimension,values,want", [
    ("latency", "time", [0.002, 0.03], (1e-3, "ms")),
    ("latency", "time", [2e-5], (1e-6, "us")),
    ("peak_memory", "bytes", [2.5e8, 4e8], (1e6, "MB")),
    ("peak_memory", "bytes", [3e9], (1e9, "GB")),
    ("macs", "count", [4.1e9], (1e9, "GMAC")),
    ("params", "count", [3.5e6], (1e6, "M params")),
    ("throughput", "rate", [250.0, 900.0], (1.0, "img/s")),
    ("throughput", "rate", [25_000.0], (1e3, "K img/s")),
    ("utilization", "fraction", [0.4], (0.01, "%")),
])
def test_display_units(metric, dimension, values, want) -> None:
    assert display_unit(metric, dimension, values, "img") == want


def test_axis_label_says_unit_and_direction() -> None:
    assert axis_label(Objective("latency", "minimize", "time"), "ms") == "latency (ms), minimize"
    assert axis_label(Objective("macs_per_sample", "maximize", "count"), "GMAC/sample") == \
        "macs per sample (GMAC/sample), maximize"


def _sweep_figure(tmp_path: Path):
    from explorer.commands.study import _label, chart_axes
    from explorer.study.config import load_study
    from explorer.study.sweep import sweep

    path = tmp_path / "plots.yaml"
    path.write_text(STUDY.replace("OUT", str(tmp_path / "out")))
    study = load_study(path)
    result = sweep(study)
    axes, limits = chart_axes(study)
    values = result.objectives * [1 if d == "maximize" else -1 for d in study.directions]
    labels = [_label(study, {k: result.columns[k][i] for k in result.columns}) for i in range(result.size)]
    invalid = 7  # a count the legend must show apart from the infeasible ones
    return pareto_figure(values, result.feasible, result.front, labels, axes, "t", limits, invalid=invalid), result


def test_pareto_chart_content(tmp_path: Path) -> None:
    fig, result = _sweep_figure(tmp_path)
    try:
        ax = fig.axes[0]
        assert ax.get_xlabel().startswith("throughput (") and ax.get_xlabel().endswith("/s), maximize")
        assert ax.get_ylabel() == "latency (ms), minimize"
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith("infeasible: violates a constraint") for t in legend)
        assert any(t.startswith("invalid: no valid tensor shapes (7") for t in legend)
        assert "constraint: latency <= 30 ms" in legend
        limit_lines = [line for line in ax.get_lines() if line.get_label() == "constraint: latency <= 30 ms"]
        assert len(limit_lines) == 1 and set(limit_lines[0].get_ydata()) == {30.0}
        assert "peak_memory <= 200 MB" in fig._suptitle.get_text()  # not on an axis: named in the title
        notes = [t for t in ax.texts if "width=" in t.get_text()]
        assert 2 <= len(notes) <= 5
        for t in notes:
            assert "resolution=" in t.get_text() and "batch=" in t.get_text()  # full names
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in notes] + [ax.get_legend().get_window_extent(renderer)]
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b)
        inside = ax.get_window_extent(renderer)
        for box in boxes[:-1]:
            assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_roofline_shows_layers_without_flops() -> None:
    from explorer.hardware.predict import predict
    from explorer.spec import load_spec

    pred = predict(load_spec("unet"), {}, hardware="a100_80gb_sxm")
    fig = roofline_figure(pred)
    try:
        ax = fig.axes[0]
        assert ax.get_xlabel() == "arithmetic intensity (FLOP/B)"
        assert ax.get_ylabel() == "attained performance (TFLOP/s)"
        idle = [k for k in pred.kernels if k.time_s > 0 and k.flops <= 0]
        assert idle  # unet's concats move data and compute nothing
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith(f"no FLOPs, time only ({len(idle)} kernels") for t in legend)
        renderer = fig.canvas.get_renderer()
        names = {k.name for k in pred.kernels}
        notes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() in names]  # kernel labels
        assert len(notes) >= 3
        for a, b in itertools.combinations(notes, 2):
            assert not a.overlaps(b)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_sweep_writes_a_chart(tmp_path: Path, run) -> None:
    path = tmp_path / "plots.yaml"
    path.write_text(STUDY.replace("OUT", str(tmp_path / "out")))
    code, _, err = run("sweep", path, "-o", tmp_path / "front.csv", "--plot", tmp_path / "front.png")
    assert code == 0, err
    assert (tmp_path / "front.png").stat().st_size > 10_000
