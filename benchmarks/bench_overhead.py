"""Study overhead on SQLite (issue 9 item 5). Run: python benchmarks/bench_overhead.py [trials] [repeats]

A: ``explorer study run`` (explorer.study.run.run, one worker) on a fresh SQLite file.
B: a plain Optuna study on a fresh SQLite file: the same sampler (make_sampler: same class, settings
   and seed), the same search space, the same number of objectives and trials; its objective
   evaluates the same configuration with the same compiled evaluator and returns the objectives.
A and B alternate (A B, B A, A B ...) so that drift of the machine hits both alike; the figure is
the median of the per-pair ratios A/B, with the spread (min, max). Commits per trial are counted
with a SQLAlchemy event on every engine. Not part of the tests (timings).
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


def explorer_run(n: int, folder: Path) -> tuple[float, int]:
    study = load_study(QUICKSTART, storage=f"sqlite:///{folder / 'a.db'}")
    study.output = folder / "a-out"
    COMMITS[0] = 0
    start = time.perf_counter()
    run(study, n, show_progress=False)
    return time.perf_counter() - start, COMMITS[0]


def plain_run(n: int, folder: Path) -> tuple[float, int]:
    study = load_study(QUICKSTART)
    objective = Objective(study)
    label = study.targets[0].label

    def f(trial: optuna.Trial) -> list[float]:
        values, _ = objective.suggest(trial)
        metrics, _, _ = objective.evaluate(values, label, trial.number)
        assert metrics is not None
        return [metrics[o.metric] for o in study.objectives]

    COMMITS[0] = 0
    start = time.perf_counter()
    ostudy = optuna.create_study(storage=f"sqlite:///{folder / 'b.db'}", sampler=make_sampler(study),
                                 directions=study.directions, study_name=study.name)
    ostudy.optimize(f, n_trials=n)
    return time.perf_counter() - start, COMMITS[0]


def main(n: int = 100, repeats: int = 7) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ratios, rows = [], []
    for k in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            order = (explorer_run, plain_run) if k % 2 == 0 else (plain_run, explorer_run)
            got = {fn.__name__: fn(n, Path(tmp)) for fn in order}
        (ta, ca), (tb, cb) = got["explorer_run"], got["plain_run"]
        ratios.append(ta / tb)
        rows.append((ta, tb, ca / n, cb / n))
        print(f"pair {k}: explorer {ta:.2f} s ({ca / n:.1f} commits/trial), "
              f"optuna {tb:.2f} s ({cb / n:.1f} commits/trial), ratio {ta / tb:.3f}", flush=True)
    print(f"{n} TPE trials, quickstart, SQLite, {repeats} interleaved pairs: median ratio "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"median times {statistics.median(r[0] for r in rows):.2f} s vs "
          f"{statistics.median(r[1] for r in rows):.2f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
