"""Study overhead on SQLite (issue 9 item 5). Run: python benchmarks/bench_overhead.py [trials] [repeats]

A: ``explorer study run`` (explorer.study.run.run, one worker) on a fresh SQLite file.
C: B with the study's constraints set through Trial.set_constraint (so that TPE does the same
   constrained work as in A); reported as a second ratio.
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


def explorer_run(n: int, folder: Path) -> tuple[float, float, int]:
    study = load_study(QUICKSTART, storage=f"sqlite:///{folder / 'a.db'}")
    study.output = folder / "a-out"
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


def main(n: int = 100, repeats: int = 7) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ratios: dict[str, list[float]] = {"wall vs B": [], "cpu vs B": [], "wall vs C": [], "cpu vs C": []}
    arms = (explorer_run, plain_run, constrained_run)
    for k in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            order = arms if k % 2 == 0 else arms[::-1]
            got = {fn.__name__: fn(n, Path(tmp)) for fn in order}
        a = got["explorer_run"]
        line = [f"pair {k}: explorer {a[0]:.2f} s wall, {a[1]:.2f} s cpu, {a[2] / n:.1f} commits/trial"]
        for tag, name in (("B", "plain_run"), ("C", "constrained_run")):
            b = got[name]
            ratios[f"wall vs {tag}"].append(a[0] / b[0])
            ratios[f"cpu vs {tag}"].append(a[1] / b[1])
            line.append(f"{tag} {b[0]:.2f} s wall, {b[1]:.2f} s cpu, {b[2] / n:.1f} commits/trial")
        print("; ".join(line), flush=True)
    for name, r in ratios.items():
        print(f"{n} TPE trials, quickstart, SQLite, {repeats} interleaved runs: median ratio {name} "
              f"{statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
