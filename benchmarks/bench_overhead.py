"""Study overhead on SQLite (issue 9 item 5). Run: python benchmarks/bench_overhead.py [trials] [repeats]

A: ``explorer study run`` (explorer.study.run.run, one worker) on a fresh SQLite file.
C: B with the study's constraints set through Trial.set_constraint (so that TPE does the same
   constrained work as in A); reported as a second ratio.
D: A without the study's constraints (TPE then does exactly B's work): D/B is explorer's own
   overhead, the constrained sampler's extra work left out of both.
B: a plain Optuna study on a fresh SQLite file: the same sampler (make_sampler: same class, settings
   and seed), the same search space, the same number of objectives and trials; its objective
   evaluates the same configuration with the same compiled evaluator and returns the objectives.
A and B alternate (A B, B A, A B ...) so that drift of the machine hits both alike; the figure is
the median of the per-pair ratios A/B, with the spread (min, max), for wall time and for this
process's CPU time (less sensitive to other load on a shared machine; SQLite's fsyncs show only in
wall time). Commits per trial are counted with a SQLAlchemy event on every engine. Not part of the
tests (timings).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's explorer, not an installed one

import optuna
from sqlalchemy import event
from sqlalchemy.engine import Engine

from explorer.study.config import load_study
from explorer.study.run import Objective, make_sampler, run

QUICKSTART = ROOT / "studies" / "quickstart.yaml"
COMMITS = [0]


@event.listens_for(Engine, "commit")
def _count(conn: Any) -> None:
    COMMITS[0] += 1


def explorer_run(n: int, folder: Path, constrained: bool = True) -> tuple[float, float, int]:
    study = load_study(QUICKSTART, storage=f"sqlite:///{folder / ('a.db' if constrained else 'd.db')}")
    study.output = folder / "a-out"
    if not constrained:
        study.constraints = []
    COMMITS[0] = 0
    start, cpu = time.perf_counter(), time.process_time()
    run(study, n, show_progress=False)
    return time.perf_counter() - start, time.process_time() - cpu, COMMITS[0]


def plain_run(n: int, folder: Path, constrained: bool = False) -> tuple[float, float, int]:
    study = load_study(QUICKSTART)
    objective = Objective(study)
    label = study.targets[0].label

    def f(trial: optuna.Trial) -> list[float]:
        values, _ = objective.suggest(trial)
        metrics, _, _ = objective.evaluate(values, label, trial.number)
        assert metrics is not None
        if constrained:  # what a plain Optuna user writes for the same constraints
            for c in study.constraints:
                trial.set_constraint(c.text, c.violation(metrics))
        return [metrics[o.metric] for o in study.objectives]

    COMMITS[0] = 0
    start, cpu = time.perf_counter(), time.process_time()
    ostudy = optuna.create_study(storage=f"sqlite:///{folder / ('c.db' if constrained else 'b.db')}", sampler=make_sampler(study),
                                 directions=study.directions, study_name=study.name)
    ostudy.optimize(f, n_trials=n)
    return time.perf_counter() - start, time.process_time() - cpu, COMMITS[0]


def constrained_run(n: int, folder: Path) -> tuple[float, float, int]:
    return plain_run(n, folder, constrained=True)


def unconstrained_explorer_run(n: int, folder: Path) -> tuple[float, float, int]:
    return explorer_run(n, folder, constrained=False)


def main(n: int = 100, repeats: int = 7) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ratios: dict[str, list[float]] = {"A/B wall": [], "A/B cpu": [], "A/C wall": [], "A/C cpu": [],
                                      "D/B wall": [], "D/B cpu": []}
    arms = (explorer_run, plain_run, constrained_run, unconstrained_explorer_run)
    for k in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            order = arms if k % 2 == 0 else arms[::-1]
            got = {fn.__name__: fn(n, Path(tmp)) for fn in order}
        line = [f"round {k}:"]
        for tag, name in (("A", "explorer_run"), ("B", "plain_run"), ("C", "constrained_run"),
                          ("D", "unconstrained_explorer_run")):
            b = got[name]
            line.append(f"{tag} {b[0]:.2f} s wall, {b[1]:.2f} s cpu, {b[2] / n:.1f} commits/trial")
        for pair in ("A/B", "A/C", "D/B"):
            x, y = (got[{"A": "explorer_run", "B": "plain_run", "C": "constrained_run",
                         "D": "unconstrained_explorer_run"}[t]] for t in pair.split("/"))
            ratios[f"{pair} wall"].append(x[0] / y[0])
            ratios[f"{pair} cpu"].append(x[1] / y[1])
        print(" ".join(line[:1]) + " " + "; ".join(line[1:]), flush=True)
    for name, r in ratios.items():
        print(f"{n} TPE trials, quickstart, SQLite, {repeats} interleaved runs: median ratio {name} "
              f"{statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
