"""Property-based tests (hypothesis, derandomized): on any generated or mutated input the library
returns a sound result or raises ExplorerError, never another exception (issue 10)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from fuzzing import dump, mutate_text, mutated_file, random_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.analysis import analyze
from explorer.cost import METRICS, Costs
from explorer.errors import ExplorerError
from explorer.graph import build
from explorer.hardware.profile import load_device
from explorer.spec import loads_spec
from explorer.study.config import load_study

SETTINGS = settings(derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _check_spec_text(text: str) -> None:
    try:
        result = analyze(loads_spec(text, "fuzz.yaml"))
    except ExplorerError:
        return
    for m in METRICS:
        total = result.totals[m]
        assert isinstance(total, int) and total >= 0, (m, total)
        assert total == sum(r.metrics[m] for r in result.layers)
        assert all(r.metrics[m] >= 0 for r in result.layers)


@settings(SETTINGS, max_examples=200)
@given(rng=st.randoms(use_true_random=False))
def test_generated_specs_analyze_soundly_or_refuse(rng: random.Random) -> None:
    _check_spec_text(dump(random_spec(rng)))


@settings(SETTINGS, max_examples=60)
@given(rng=st.randoms(use_true_random=False))
def test_generated_specs_have_closed_forms_or_refuse(rng: random.Random) -> None:
    try:
        costs = Costs(build(loads_spec(dump(random_spec(rng)))))
        for m in METRICS:
            costs.formula(m)
    except ExplorerError:
        pass


@settings(SETTINGS, max_examples=60)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_bundled_specs(rng: random.Random) -> None:
    _check_spec_text(mutated_file(rng, "specs") if rng.random() < 0.5 else mutate_text(rng, dump(random_spec(rng))))


@settings(SETTINGS, max_examples=80)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_profiles_load_finite_or_refuse(rng: random.Random, tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(mutated_file(rng, "hardware"))
    try:
        device = load_device(path)
    except ExplorerError:
        return
    numbers = [*device.peak.values(), device.bandwidth, device.capacity]
    assert all(math.isfinite(v) and v > 0 for v in numbers)
    assert 0 < device.compute_efficiency <= 1 and 0 < device.bandwidth_efficiency <= 1
    assert math.isfinite(device.launch_overhead) and device.launch_overhead >= 0


@settings(SETTINGS, max_examples=60)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_study_files_load_or_refuse(rng: random.Random, tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(mutated_file(rng, "studies"))
    try:
        load_study(path)
    except ExplorerError:
        pass
