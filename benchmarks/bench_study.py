"""Study speed and quality (issue 4). Run: python benchmarks/bench_study.py  (not part of the tests)

1. Objective overhead: 1000 TPE trials through explorer's objective vs 1000 with a no-op objective,
   same sampler settings and seed, in-memory storage (so storage I/O does not hide the overhead).
2. Exhaustive sweep throughput for mobilenet_v2 (every objective and constraint evaluated).
3. TPE on studies/quickstart.yaml: hypervolume of its front vs the exact front, in its trial budget.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from explorer.study.config import load_study
from explorer.study.run import Objective, _run_trial, make_sampler

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "studies" / "quickstart.yaml"


def overhead(n: int = 1000) -> None:
    """Two measurements of what explorer adds to Optuna's per-trial time.

    A/B: the same TPE sampler and seed, 1000 trials each; the no-op objective suggests the same
    parameters, marks the trial feasible through the same constraints (so that Optuna does the same
    constrained bookkeeping) and reports constant values. Direct: the time spent inside explorer's
    evaluation for each trial, against the rest of the trial (Optuna's sampling and storage).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(QUICKSTART)
    objective = Objective(study)
    objective.evaluator(study.targets[0].label)  # compile once, outside the timed loop
    inside = [0.0]
    evaluate = objective.evaluate

    def timed(*args):
        t = time.perf_counter()
        out = evaluate(*args)
        inside[0] += time.perf_counter() - t
        return out

    objective.evaluate = timed  # type: ignore[method-assign]

    def loop(mode: str) -> float:
        s = optuna.create_study(directions=study.directions, sampler=make_sampler(study))
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(n):
            trial = s.ask()
            if mode == "explorer":
                _run_trial(s, objective, trial)
                continue
            objective.suggest(trial)
            for c in study.constraints:
                trial.set_constraint(c.text, 0.0)
            s.tell(trial, [0.0, 0.0] if mode == "constant" else rng.random(2).tolist())
        return time.perf_counter() - start

    constant = loop("constant")
    noise = loop("random")
    real = loop("explorer")
    print(f"{n} TPE trials (in-memory storage), per trial: no-op returning constants {constant / n * 1e3:.2f} ms, "
          f"no-op returning random values {noise / n * 1e3:.2f} ms, explorer {real / n * 1e3:.2f} ms: "
          f"{100 * (real - constant) / constant:+.1f} % vs constants, {100 * (real - noise) / noise:+.1f} % vs random")
    print(f"time inside explorer's evaluation: {inside[0]:.3f} s for {n} trials "
          f"({inside[0] / n * 1e6:.0f} us/trial, {objective.evaluations} distinct architectures compiled-evaluated) "
          f"= {100 * inside[0] / (real - inside[0]):.2f} % of the rest of the trial (target < 5 %)")


def sweep_speed() -> None:
    from explorer.hardware import load_device
    from explorer.spec import load_spec
    from explorer.study.evaluate import Evaluator, Target

    spec = load_spec("mobilenet_v2")
    study = load_study(QUICKSTART)
    ev = Evaluator(spec, Target(load_device("jetson_orin_nano_8gb"), "fp16"))
    widths = np.array(spec.variables["width"].values())
    res = np.array(spec.variables["resolution"].values())
    batch = np.arange(1, 4097, dtype=float)
    w, r, b = (a.ravel() for a in np.meshgrid(widths, res, batch, indexing="ij"))
    values = {"width": w, "resolution": r, "batch": b, "classes": np.full(w.size, 1000.0)}
    from explorer.study.pareto import non_dominated, oriented

    best = []
    for _ in range(3):
        start = time.perf_counter()
        metrics, valid = ev.vector(values)
        feasible = valid.copy()
        for c in study.constraints:
            feasible &= c.holds(metrics)
        obj = oriented(np.stack([metrics[o.metric] for o in study.objectives], axis=1), study.directions)
        idx = np.nonzero(feasible)[0]
        front = idx[non_dominated(obj[idx])]
        best.append(time.perf_counter() - start)
    t = min(best)
    print(f"exhaustive sweep, mobilenet_v2 on jetson_orin_nano_8gb fp16: {w.size:,} configurations "
          f"(all {len(metrics)} metrics, {len(study.constraints)} constraints, exact front of {len(front)}) "
          f"in {t:.3f} s = {w.size / t / 1e6:.2f} M configurations/s (target >= 1 M/s)")


def quickstart_quality() -> None:
    from explorer.cli import main

    tmp = Path(tempfile.mkdtemp())
    try:
        storage = f"sqlite:///{tmp / 'study.db'}"
        start = time.perf_counter()
        main(["study", "run", str(QUICKSTART), "--storage", storage, "--quiet"])
        elapsed = time.perf_counter() - start
        print(f"quickstart study run ({load_study(QUICKSTART).file.n_trials} TPE trials, SQLite): {elapsed:.1f} s")
        main(["study", "compare", str(QUICKSTART), "--storage", storage])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sweep_speed()
    overhead()
    quickstart_quality()
