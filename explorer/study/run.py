"""Running a study with Optuna: ask/tell, persistence, resume, workers, progress.

Every trial is stored as it finishes (SQLite in the study's output folder by default, any Optuna
storage URL, or ``journal:PATH`` for a journal file). Re-running resumes up to ``n_trials``
finished trials in total. Worker processes on one machine share a lock around "count the trials,
then ask for a new one", so N trials are made between them, never more.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

from explorer.errors import ExplorerError, StudyError
from explorer.study.config import Study
from explorer.study.evaluate import METRICS, Evaluator
from explorer.study.storage import (
    Claims,
    count_by_state,
    one_line,
    open_storage,
    storage_file,
    worker_lock,
    write_attrs,
)

STALE_SECONDS = 120  # a RUNNING trial older than this was left by a killed process
UNCLAIMED_SECONDS = 5  # a RUNNING trial with no worker recorded after this was orphaned at birth
ATTR = "explorer"  # user attribute: a trial's architecture key, feasibility, constraint values, target
# and every metric as a numeric user attribute of its own, named as in study files (base units:
# seconds, bytes, per second), so that optuna-dashboard can sort and plot each one
WORKER_ATTR = "explorer_worker"  # [host, pid] of the process running the trial (server storages)
CONSTRAINTS_KEY = "constraints"  # Optuna's system attribute: constraint values, <= 0 satisfied


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
        """Seed the architecture cache from stored trials (on resume). Only complete and pruned ones:
        another worker may be writing a running trial's attributes one by one (journal storage), and
        a failed trial may have been stopped half way."""
        from optuna.trial import TrialState

        for t in trials:
            if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
                continue
            info = t.user_attrs.get(ATTR)
            if info and "key" in info:
                self.cache.setdefault(_key(info["key"]), (info.get("same_as", t.number), trial_metrics(t) or None))


def trial_metrics(trial: Any) -> dict[str, float]:
    """A stored trial's metrics ({} for an invalid configuration). Studies stored before metrics
    had attributes of their own keep them inside the ``explorer`` attribute."""
    info = trial.user_attrs.get(ATTR) or {}
    if "metrics" in info:
        return dict(info["metrics"] or {})
    return {m: trial.user_attrs[m] for m in METRICS if m in trial.user_attrs}


def _key(raw: Any) -> tuple[Any, ...]:
    label, dims = raw
    return (label, tuple(dims))


def make_sampler(study: Study, worker: int = 0) -> Any:
    import optuna

    seed = None if study.file.seed is None else (study.file.seed + worker) % 2**32
    name = study.file.sampler
    # Constraints reach TPE and NSGA-II through the trial's "constraints" system attribute
    # (see _run_trial), which every Optuna release reads; no constraints_func needed.
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(study.grid(), seed=seed)
    raise StudyError(f"sampler '{name}' does not run through Optuna; use 'explorer sweep'")


def open_study(study: Study, worker: int = 0, create: bool = True) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not create and _missing_file(study.storage):
        raise StudyError(f"no study '{study.name}' yet: {study.storage} does not exist; run "
                         f"'explorer study run {study.path}' first", path=study.path)
    storage = open_storage(study.storage, study.path)
    sampler = make_sampler(study, worker)
    with storage_errors(study):
        if not create:
            try:
                return optuna.load_study(study_name=study.name, storage=storage, sampler=sampler)
            except KeyError:
                raise StudyError(f"no study '{study.name}' in {study.storage}; run 'explorer study run' "
                                 "first", path=study.path) from None
        s = optuna.create_study(study_name=study.name, storage=storage, sampler=sampler,
                                directions=study.directions, load_if_exists=True)  # type: ignore[arg-type]
    stored = [d.name.lower() for d in s.directions]
    if stored != study.directions:
        raise StudyError(f"the stored study '{study.name}' has directions {stored}, the file asks for "
                         f"{study.directions}; use another name or storage", path=study.path)
    names = [o.metric for o in study.objectives]
    with storage_errors(study):
        if create and s.metric_names != names:  # objective names for optuna-dashboard and Optuna's plots
            import warnings

            with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                s.set_metric_names(names)
    return s


@contextlib.contextmanager
def storage_errors(study: Study, doing: str = "") -> Iterator[None]:
    """A failure of the storage (disk full, server gone, damaged file) as one line."""
    try:
        yield
    except (ExplorerError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - storage backends raise many kinds
        raise StudyError(f"storage {study.storage}: {one_line(exc)}{doing}", path=study.path) from None


def _missing_file(url: str) -> bool:
    path = storage_file(url)
    return path is not None and not path.exists()


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


def counted(trials: list[Any]) -> int:
    """Trials that count towards n_trials: finished (complete or pruned) and in flight."""
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)


def fail_stale(ostudy: Any, trials: list[Any], claims: Claims | None) -> int:
    """Mark RUNNING trials left behind by a killed process as FAIL (they never finished).

    On a file storage, a trial is alive while its worker holds its claim file (the kernel drops the
    flock when the worker dies): unclaimed means stale at once. On a server, a trial records the
    host and PID of its worker: on this host a dead PID means stale at once; elsewhere a trial
    running for longer than STALE_SECONDS is (evaluations take microseconds).
    """
    from optuna.trial import TrialState

    running = [t for t in trials if t.state == TrialState.RUNNING]
    if not running:
        return 0
    now = time.time()
    live = claims.live() if claims is not None else set()

    def is_stale(t: Any) -> bool:
        if claims is not None:
            return t.number not in live
        age = now - t.datetime_start.timestamp() if t.datetime_start else float("inf")
        worker = t.user_attrs.get(WORKER_ATTR)
        if worker is None:  # killed between ask() and recording its worker, milliseconds apart
            return age > UNCLAIMED_SECONDS
        return _dead_worker(worker) or age > STALE_SECONDS

    stale = [t for t in running if is_stale(t)]
    for t in stale:
        ostudy._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001
    return len(stale)


class _Worker:
    """One process's side of a study: the shared lock, its claim, the trials it made."""

    def __init__(self, study: Study, ostudy: Any, limit: int) -> None:
        self.study, self.ostudy, self.limit = study, ostudy, limit
        self.claims = Claims(study.storage) if storage_file(study.storage) else None
        self.stale = 0

    def next_trial(self) -> Any:
        """Under the storage's lock: fail stale trials, count, ask; None when the study is full."""
        study, ostudy = self.study, self.ostudy
        with storage_errors(study), worker_lock(study.storage, ostudy._storage, study.name):  # noqa: SLF001
            if self._counted() >= self.limit:
                return None
            trial = ostudy.ask()
            if self.claims is not None:
                self.claims.claim(trial.number)
            else:
                trial.set_user_attr(WORKER_ATTR, [socket.gethostname(), os.getpid()])
            return trial

    def _counted(self) -> int:
        """Trials that count, after failing stale ones; a COUNT query where the storage allows
        (reading the trials themselves only when some are RUNNING)."""
        from optuna.trial import TrialState

        ostudy = self.ostudy
        states = count_by_state(ostudy._storage, ostudy._study_id)  # noqa: SLF001
        if states is not None and not states.get(TrialState.RUNNING):
            return states.get(TrialState.COMPLETE, 0) + states.get(TrialState.PRUNED, 0)
        trials = ostudy.get_trials(deepcopy=False)
        stale = fail_stale(ostudy, trials, self.claims)
        self.stale += stale
        return counted(trials) - stale

    def close(self) -> None:
        if self.claims is not None:
            self.claims.close()


def worker_loop(study: Study, n_trials: int, worker: int = 0, progress: Any = None,
                ostudy: Any = None, stage: Any = None) -> tuple[int, int]:
    """Ask, evaluate, tell until the study holds n_trials; returns (trials made, stale failed).
    ``stage(text)`` is told what the setup is doing before the first trial."""
    stage = stage or (lambda text: None)
    ostudy = ostudy if ostudy is not None else open_study(study, worker)
    objective = Objective(study)
    for target in study.targets:  # build each target's evaluator now, not inside the first trials
        stage(f"building the evaluator: {study.spec.name} on {target.label}")
        objective.evaluator(target.label)
    stage("reading stored trials")
    with storage_errors(study):
        objective.remember(ostudy.get_trials(deepcopy=False))
    stage("trials")
    grid_size = _grid_size(study)
    w = _Worker(study, ostudy, min(n_trials, grid_size) if grid_size else n_trials)
    made = 0
    try:
        while not _Stop.requested:
            trial = w.next_trial()
            if trial is None:
                break
            _run_trial_or_fail(ostudy, objective, trial)
            made += 1
            if progress is not None:
                progress(1)
    finally:
        w.close()
    return made, w.stale


def _run_trial_or_fail(ostudy: Any, objective: Objective, trial: Any) -> None:
    """Run one trial; whatever goes wrong, the trial ends FAIL (never left RUNNING)."""
    study = objective.study
    try:
        _run_trial(ostudy, objective, trial)
    except _StorageFailure as exc:
        _fail(ostudy, trial)
        raise StudyError(f"storage {study.storage}: {exc}; trial {trial.number} was not stored "
                         "(the next run marks it failed)", path=study.path) from None
    except KeyboardInterrupt:
        _fail(ostudy, trial)
        raise
    except ExplorerError as exc:
        _fail(ostudy, trial)
        raise exc.located(study.path) from None
    except Exception as exc:  # noqa: BLE001 - any failure of the evaluation ends the trial FAIL
        _fail(ostudy, trial)
        raise StudyError(f"trial {trial.number} failed at {dict(trial.params)}: {type(exc).__name__}: "
                         f"{exc}; it is marked FAIL", path=study.path) from None


class _StorageFailure(Exception):
    """The storage refused a write of a trial that was evaluated."""


def _fail(ostudy: Any, trial: Any) -> None:
    import optuna

    with contextlib.suppress(Exception):  # the storage itself may be what failed (disk full)
        ostudy.tell(trial, state=optuna.trial.TrialState.FAIL)


def _run_trial(ostudy: Any, objective: Objective, trial: Any) -> None:
    import optuna

    values, label = objective.suggest(trial)
    metrics, first, key = objective.evaluate(values, label, trial.number)
    info: dict[str, Any] = {"target": label, "same_as": first, "key": [key[0], list(key[1])]}
    study = objective.study
    if metrics is None:
        info["invalid"] = "a tensor dim is not a positive integer at these values"
        with _stored():
            write_attrs(ostudy._storage, trial._trial_id, {ATTR: info}, {})  # noqa: SLF001
            _tell(ostudy, trial, None, optuna.trial.TrialState.PRUNED)
        return
    violations = [float(c.violation(metrics)) for c in study.constraints]
    info.update(violations=violations, feasible=all(v <= 0 for v in violations))
    objectives = [metrics[o.metric] for o in study.objectives]
    # The constraints go in the list form of Optuna's "constraints" system attribute, which
    # TPE and NSGA-II read like Trial.set_constraint's; metrics and constraints: one commit.
    system = {CONSTRAINTS_KEY: violations} if violations else {}
    with _stored():
        write_attrs(ostudy._storage, trial._trial_id, {ATTR: info, **metrics}, system)  # noqa: SLF001
        _tell(ostudy, trial, objectives)


def _tell(ostudy: Any, trial: Any, values: list[float] | None, state: Any = None) -> None:
    """Finish a trial as ``Study.optimize`` does: without ``Study.tell``'s re-reading and deep copy
    of the finished trial, which nothing here uses (Optuna's public ``tell`` where that is gone)."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:
        ostudy.tell(trial, values, state=state)
        return
    _tell_with_warning(study=ostudy, trial=trial, value_or_values=values, state=state)


@contextlib.contextmanager
def _stored() -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - storage backends raise many kinds
        raise _StorageFailure(one_line(exc)) from exc


def _grid_size(study: Study) -> int | None:
    if study.file.sampler != "grid":
        return None
    size = 1
    for values in study.grid().values():
        size *= len(values)
    return size


def run(study: Study, n_trials: int, workers: int = 1, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the study up to n_trials; returns a summary.

    ``new`` counts the trials this command made (its workers), not what other processes sharing
    the storage made meanwhile; ``trials`` is what the storage holds at the end.
    """
    from optuna.trial import TrialState

    bar = _progress(n_trials, show_progress)
    stage = bar.set_description_str if bar else (lambda text: None)
    start = time.perf_counter()
    try:
        stage(f"opening {study.storage}")
        ostudy = open_study(study)
        with storage_errors(study):
            before = counted(ostudy.get_trials(deepcopy=False))
        if bar:
            bar.n = min(before, n_trials)
            bar.refresh()
        with _graceful():
            if workers <= 1:
                made, stale = worker_loop(study, n_trials, 0, bar.update if bar else None, ostudy, stage)
            else:
                stage(f"{workers} worker processes (each builds its evaluator)")
                made, stale = _run_workers(study, n_trials, workers, bar)
            if _Stop.requested:
                raise KeyboardInterrupt
    finally:
        if bar:
            bar.close()
    with storage_errors(study):
        trials = ostudy.get_trials(deepcopy=False)
    return {
        "trials": len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]),
        "new": made,
        "stale_failed": stale,
        "seconds": time.perf_counter() - start,
        "storage": study.storage,
    }


def _progress(total: int, show: bool) -> Any:
    """A bar from the first second: its description says what the setup is doing, then "trials"."""
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="trial", file=sys.stderr, dynamic_ncols=True, disable=not sys.stderr.isatty())


def _run_workers(study: Study, n_trials: int, workers: int, bar: Any) -> tuple[int, int]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(study.path, study.storage, n_trials, k, results),
                         daemon=False) for k in range(workers)]
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
    return _collect(study, procs, results, forwarded)


def _collect(study: Study, procs: list[Any], results: Any, forwarded: bool) -> tuple[int, int]:
    """Sum what the workers made; the first error a worker met becomes this command's error."""
    import queue

    made = stale = 0
    errors = []
    for _ in procs:
        try:
            m, s, error = results.get(timeout=5)
        except queue.Empty:
            break
        made, stale = made + m, stale + s
        if error:
            errors.append(error)
    if errors:
        raise StudyError(errors[0])
    failed = [p.exitcode for p in procs if p.exitcode and not forwarded]
    if failed:
        raise StudyError(f"{len(failed)} worker process(es) failed (exit codes {failed})", path=study.path)
    return made, stale


def _worker_main(path: str, storage: str, n_trials: int, worker: int, results: Any) -> None:
    from explorer.study.config import load_study

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards a stop request as SIGTERM
    signal.signal(signal.SIGTERM, _Stop.handler)
    try:
        made, stale = worker_loop(load_study(path, storage=storage), n_trials, worker)
    except ExplorerError as exc:
        results.put((0, 0, str(exc)))
        return
    results.put((made, stale, None))
