"""Running a study with Optuna: ask/tell, persistence, resume, workers, progress.

Every trial is stored as it finishes (SQLite in the study's output folder by default, any Optuna
storage URL, or ``journal:PATH`` for a journal file). Re-running resumes up to ``n_trials``
finished trials in total. Worker processes on one machine share a lock around "count the trials,
then ask for a new one", so N trials are made between them, never more.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from explorer.errors import StudyError
from explorer.study.config import Study
from explorer.study.evaluate import Evaluator

STALE_SECONDS = 120  # a RUNNING trial older than this was left by a killed process
UNCLAIMED_SECONDS = 5  # a RUNNING trial with no worker recorded after this was orphaned at birth
ATTR = "explorer"  # user attribute holding a trial's metrics and feasibility
WORKER_ATTR = "explorer_worker"  # [host, pid] of the process running the trial


class Objective:
    """Suggests a configuration for a trial and evaluates it, once per distinct architecture."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.evaluators: dict[str, Evaluator] = {}
        self.cache: dict[tuple[Any, ...], tuple[int, dict[str, float] | None]] = {}
        self.evaluations = 0

    def evaluator(self, label: str) -> Evaluator:
        if label not in self.evaluators:
            self.evaluators[label] = Evaluator(self.study.spec, self.study.target(label), fixed=self.study.fixed,
                                              searched=list(self.study.search))
        return self.evaluators[label]

    def suggest(self, trial: Any) -> tuple[dict[str, Any], str]:
        values: dict[str, Any] = {}
        for name, dim in self.study.search.items():
            if dim["type"] == "categorical":
                values[name] = trial.suggest_categorical(name, dim["choices"])
            elif dim["type"] == "int":
                values[name] = trial.suggest_int(name, int(dim["low"]), int(dim["high"]),
                                                 step=int(dim["step"] or 1), log=dim["log"])
            else:
                v = trial.suggest_float(name, dim["low"], dim["high"], step=dim["step"], log=dim["log"])
                values[name] = round(v, 12)  # 0.39999999999999997 -> 0.4, as written in the study
        labels = [t.label for t in self.study.targets]
        label = trial.suggest_categorical("target", labels) if len(labels) > 1 else labels[0]
        for k, var in self.study.spec.variables.items():
            values.setdefault(k, self.study.fixed.get(k, var.default))
        return values, label

    def evaluate(self, values: dict[str, Any], label: str,
                 number: int) -> tuple[dict[str, float] | None, int, tuple[Any, ...]]:
        """(metrics or None if invalid, number of the first trial with this architecture, its key).

        The key is the tuple of every tensor dim (batch included) on this target: configurations
        that round to the same architecture share it and are evaluated once.
        """
        ev = self.evaluator(label)
        key = (label, ev.key(values))
        if key in self.cache:
            first, metrics = self.cache[key]
            return metrics, first, key
        self.evaluations += 1
        metrics, _ = ev.scalar(values)
        self.cache[key] = (number, metrics)
        return metrics, number, key

    def remember(self, trials: list[Any]) -> None:
        """Seed the architecture cache from stored trials (on resume)."""
        for t in trials:
            info = t.user_attrs.get(ATTR)
            if info and "key" in info:
                self.cache.setdefault(_key(info["key"]), (info.get("same_as", t.number), info.get("metrics")))


def _key(raw: Any) -> tuple[Any, ...]:
    label, dims = raw
    return (label, tuple(dims))


def make_sampler(study: Study, worker: int = 0) -> Any:
    import optuna

    seed = None if study.file.seed is None else study.file.seed + worker
    name = study.file.sampler
    # Optuna >= 5 reads constraints that the trial sets (Trial.set_constraint); older releases
    # take a constraints_func. Either way the sampler sees the same violations.
    legacy = {} if hasattr(optuna.trial.Trial, "set_constraint") else {"constraints_func": constraints_of}
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, **legacy)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, **legacy)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(study.grid(), seed=seed)
    raise StudyError(f"sampler '{name}' does not run through Optuna; use 'explorer sweep'")


def constraints_of(trial: Any) -> list[float]:
    """Optuna's constraints_func: values <= 0 are satisfied; invalid trials never reach here."""
    info = trial.user_attrs.get(ATTR) or {}
    return list(info.get("violations", [1.0]))


def open_storage(study: Study) -> Any:
    import optuna

    url = study.storage
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(6):
        try:
            return optuna.storages.get_storage(url)
        except Exception as exc:  # noqa: BLE001 - any storage failure is the user's URL or server
            # Two processes creating a new database's tables at once: the loser retries.
            if attempt == 5 or not _transient(exc):
                raise StudyError(f"cannot open storage {url!r}: {exc}", path=study.path) from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("locked", "already exists", "unique constraint", "busy"))


def open_study(study: Study, worker: int = 0, create: bool = True) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not create and _missing_file(study.storage):
        raise StudyError(f"no study '{study.name}' yet: {study.storage} does not exist; run "
                         f"'explorer study run {study.path}' first", path=study.path)
    storage = open_storage(study)
    sampler = make_sampler(study, worker)
    if not create:
        try:
            return optuna.load_study(study_name=study.name, storage=storage, sampler=sampler)
        except KeyError:
            raise StudyError(f"no study '{study.name}' in {study.storage}; run 'explorer study run' first",
                             path=study.path) from None
    s = optuna.create_study(study_name=study.name, storage=storage, sampler=sampler,
                            directions=study.directions, load_if_exists=True)
    stored = [d.name.lower() for d in s.directions]
    if stored != study.directions:
        raise StudyError(f"the stored study '{study.name}' has directions {stored}, the file asks for "
                         f"{study.directions}; use another name or storage", path=study.path)
    return s


def _missing_file(url: str) -> bool:
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            return not Path(url.removeprefix(prefix)).exists()
    return False


def _dead_worker(worker: Any) -> bool:
    if not worker or worker[0] != socket.gethostname():
        return False
    try:
        os.kill(int(worker[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


class _Stop:
    """Ctrl-C (SIGINT) or SIGTERM asks the workers to stop after the trial in flight; a second
    Ctrl-C interrupts at once."""

    requested = False

    @classmethod
    def handler(cls, signum: int, frame: Any) -> None:
        if cls.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        cls.requested = True


@contextlib.contextmanager
def _graceful() -> Iterator[None]:
    _Stop.requested = False
    previous = {s: signal.signal(s, _Stop.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _lock(study: Study) -> Iterator[None]:
    study.output.mkdir(parents=True, exist_ok=True)
    with open(study.output / ".trials.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def counted(trials: list[Any]) -> int:
    """Trials that count towards n_trials: finished (complete or pruned) and in flight."""
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)


def fail_stale(ostudy: Any) -> int:
    """Mark RUNNING trials left behind by a killed process as FAIL (they never finished).

    A trial records the host and PID of its worker: on this host, a dead PID means stale at once;
    elsewhere a trial running for longer than STALE_SECONDS is (evaluations take microseconds).
    """
    from optuna.trial import TrialState

    now = time.time()

    def is_stale(t: Any) -> bool:
        age = now - t.datetime_start.timestamp() if t.datetime_start else float("inf")
        worker = t.user_attrs.get(WORKER_ATTR)
        if worker is None:  # killed between ask() and recording its worker, milliseconds apart
            return age > UNCLAIMED_SECONDS
        return _dead_worker(worker) or age > STALE_SECONDS

    stale = [t for t in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if is_stale(t)]
    for t in stale:
        ostudy._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001
    return len(stale)


def worker_loop(study: Study, n_trials: int, worker: int = 0, progress: Any = None) -> int:
    """Ask, evaluate, tell until the study holds n_trials; returns how many this worker made."""
    import optuna

    ostudy = open_study(study, worker)
    objective = Objective(study)
    objective.remember(ostudy.get_trials(deepcopy=False))
    grid_size = _grid_size(study)
    limit = min(n_trials, grid_size) if grid_size else n_trials
    made = 0
    while not _Stop.requested:
        with _lock(study):
            if counted(ostudy.get_trials(deepcopy=False)) >= limit:
                break
            trial = ostudy.ask()
            trial.set_user_attr(WORKER_ATTR, [socket.gethostname(), os.getpid()])
        try:
            _run_trial(ostudy, objective, trial)
        except KeyboardInterrupt:
            ostudy.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        made += 1
        if progress is not None:
            progress(1)
    return made


def _run_trial(ostudy: Any, objective: Objective, trial: Any) -> None:
    import optuna

    values, label = objective.suggest(trial)
    metrics, first, key = objective.evaluate(values, label, trial.number)
    info: dict[str, Any] = {"target": label, "same_as": first, "key": [key[0], list(key[1])]}
    if metrics is None:
        info["invalid"] = "a tensor dim is not a positive integer at these values"
        trial.set_user_attr(ATTR, info)
        ostudy.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    study = objective.study
    violations = [c.violation(metrics) for c in study.constraints]
    info.update(metrics=metrics, violations=violations, feasible=all(v <= 0 for v in violations))
    trial.set_user_attr(ATTR, info)
    if hasattr(trial, "set_constraint"):
        for c, v in zip(study.constraints, violations):
            trial.set_constraint(c.text, v)
    ostudy.tell(trial, [metrics[o.metric] for o in study.objectives])


def _grid_size(study: Study) -> int | None:
    if study.file.sampler != "grid":
        return None
    size = 1
    for values in study.grid().values():
        size *= len(values)
    return size


def run(study: Study, n_trials: int, workers: int = 1, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the study up to n_trials; returns a summary."""
    from optuna.trial import TrialState

    ostudy = open_study(study)
    stale = fail_stale(ostudy)
    before = counted(ostudy.get_trials(deepcopy=False))
    start = time.perf_counter()
    bar = _progress(n_trials, before, show_progress)
    try:
        with _graceful():
            if workers <= 1:
                worker_loop(study, n_trials, 0, bar.update if bar else None)
            else:
                _run_workers(study, n_trials, workers, bar)
            if _Stop.requested:
                raise KeyboardInterrupt
    finally:
        if bar:
            bar.close()
    trials = ostudy.get_trials(deepcopy=False)
    return {
        "trials": len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]),
        "new": counted(trials) - before,
        "stale_failed": stale,
        "seconds": time.perf_counter() - start,
        "storage": study.storage,
    }


def _progress(total: int, initial: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=min(initial, total), unit="trial", file=sys.stderr, dynamic_ncols=True,
                disable=not sys.stderr.isatty())


def _run_workers(study: Study, n_trials: int, workers: int, bar: Any) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(study.path, study.storage, n_trials, k), daemon=False)
             for k in range(workers)]
    for p in procs:
        p.start()
    ostudy = open_study(study)
    forwarded = False
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.3)
            if _Stop.requested and not forwarded:  # ask the workers to stop after their trial
                forwarded = True
                for p in procs:
                    if p.pid is not None and p.is_alive():
                        os.kill(p.pid, signal.SIGTERM)
            if bar is not None:
                bar.n = min(counted(ostudy.get_trials(deepcopy=False)), n_trials)
                bar.refresh()
    except KeyboardInterrupt:
        for p in procs:
            p.kill()
        raise
    failed = [p.exitcode for p in procs if p.exitcode and not forwarded]
    if failed:
        raise StudyError(f"{len(failed)} worker process(es) failed (exit codes {failed})", path=study.path)


def _worker_main(path: str, storage: str, n_trials: int, worker: int) -> None:
    from explorer.study.config import load_study

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards a stop request as SIGTERM
    signal.signal(signal.SIGTERM, _Stop.handler)
    worker_loop(load_study(path, storage=storage), n_trials, worker)

