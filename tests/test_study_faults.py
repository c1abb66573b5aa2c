"""Studies under faults (issue 10): crashes, full and read-only disks, outputs that would clobber
inputs, concurrent processes from different folders, torn journals, a real PostgreSQL server."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faults import fill, postgres_server, remount, tmpfs
from test_study import SMALL, _wait_for_trials, small_study

from explorer.study.config import load_study
from explorer.study.run import open_study

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "explorer.cli"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _states(path: Path, storage: str | None = None) -> dict[str, int]:
    trials = open_study(load_study(path, storage=storage), create=False).get_trials(deepcopy=False)
    out: dict[str, int] = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _finished(states: dict[str, int]) -> int:
    return states.get("COMPLETE", 0) + states.get("PRUNED", 0)


def single_objective(tmp_path: Path) -> Path:
    text = SMALL.format(sampler="tpe", n=12, out=tmp_path / "out")
    text = text.replace("  - {metric: macs_per_sample, direction: maximize}\n", "")
    path = tmp_path / "single.yaml"
    path.write_text(text)
    return path


def test_single_objective_end_to_end(run, tmp_path) -> None:
    path = single_objective(tmp_path)
    code, out, err = run("study", "run", path)
    assert code == 0, err
    assert (tmp_path / "out" / "front.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err = run("study", "pareto", path, "-o", tmp_path / "best.json", "--plot", tmp_path / "best.svg")
    assert code == 0, err
    best = json.loads((tmp_path / "best.json").read_text())["rows"]
    feasible = [r for r in best if r["feasible"]]
    assert len(best) >= 1 and len(feasible) == len(best)
    assert len({r["throughput"] for r in best}) == 1  # one objective: the front is the best value
    code, out, err = run("study", "compare", path)
    assert code == 0 and "% of the exact front" in out, err
    code, _, err = run("sweep", path, "-o", tmp_path / "sweep.csv", "--plot", tmp_path / "sweep.png")
    assert code == 0, err


# --- outputs never clobber inputs; every path checked before anything is written -------------

def test_output_equal_to_the_study_file_is_refused(run, tmp_path) -> None:
    path = small_study(tmp_path)
    as_json = tmp_path / "small.json"
    as_json.write_text(path.read_text())  # YAML readers read JSON: a study may be a .json file
    before = as_json.read_bytes()
    code, out, err = run("sweep", as_json, "-o", as_json)
    assert code == 2 and out == "" and "it is an input of this command" in err
    assert as_json.read_bytes() == before
    link = tmp_path / "link.json"
    link.symlink_to(as_json)
    code, _, err = run("sweep", as_json, "-o", link)  # same file by another name
    assert code == 2 and "it is an input of this command" in err
    assert as_json.read_bytes() == before and not (tmp_path / "out").exists()


def test_output_equal_to_a_json_spec_is_refused(run, tmp_path) -> None:
    import yaml

    spec = yaml.safe_load((ROOT / "explorer" / "specs" / "mobilenet_v2.yaml").read_text()) \
        if (ROOT / "explorer" / "specs" / "mobilenet_v2.yaml").exists() else None
    if spec is None:
        from explorer.spec import resolve_path

        spec = yaml.safe_load(resolve_path("mobilenet_v2").read_text())
    model = tmp_path / "model.json"
    model.write_text(json.dumps(spec))
    before = model.read_bytes()
    path = small_study(tmp_path)
    path.write_text(path.read_text().replace("spec: mobilenet_v2", f"spec: {model}"))
    code, _, err = run("sweep", path, "-o", model)
    assert code == 2 and "it is an input of this command" in err
    code, _, err = run("study", "pareto", path, "-o", model)
    assert code == 2 and "it is an input of this command" in err
    assert model.read_bytes() == before


def test_bad_plot_path_writes_nothing(run, tmp_path) -> None:
    path = small_study(tmp_path)
    code, _, err = run("sweep", path, "-o", tmp_path / "out.csv", "--plot", tmp_path / "bad.txt")
    assert code == 2 and "use a .png or .svg or .pdf file name" in err
    assert not (tmp_path / "out.csv").exists()


def test_output_that_is_a_folder(run, tmp_path) -> None:
    path = small_study(tmp_path)
    (tmp_path / "dir.csv").mkdir()
    code, _, err = run("sweep", path, "-o", tmp_path / "dir.csv")
    assert code == 2 and "it is a folder" in err and len(err.strip().splitlines()) == 1


def test_read_only_output_folder(run, tmp_path) -> None:
    with tmpfs("1m", read_only=True) as ro:
        if ro is None:
            if os.geteuid() == 0:
                pytest.skip("root ignores file modes and mounting is not allowed here")
            ro = tmp_path / "ro"
            ro.mkdir()
            ro.chmod(0o555)
        path = small_study(tmp_path)
        path.write_text(path.read_text().replace(f"output: {tmp_path / 'out'}", f"output: {ro / 'out'}"))
        code, out, err = run("study", "run", path, "--quiet")
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert "is not writable" in err and "Traceback" not in err
        code, _, err = run("sweep", path, "-o", ro / "front.csv")
        assert code == 2 and "is not writable" in err


def test_full_disk_export_leaves_no_file(run, tmp_path) -> None:
    path = small_study(tmp_path)
    with tmpfs("64k") as full:
        if full is None:
            pytest.skip("cannot mount a tmpfs here (the simulated case is test_simulated_full_disk_*)")
        fill(full)
        code, _, err = run("sweep", path, "-o", full / "front.csv", "--plot", full / "front.png")
        last = err.strip().splitlines()[-1]  # after the sweep's summary line: one error line
        assert code == 2 and "No space left on device" in last and "Traceback" not in err, err
        assert sorted(p.name for p in full.iterdir()) == ["filler"]


def test_simulated_full_disk_export_leaves_no_file(run, tmp_path, monkeypatch) -> None:
    import csv

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", no_space)
    path = small_study(tmp_path)
    code, _, err = run("sweep", path, "-o", tmp_path / "front.csv")
    assert code == 2 and "cannot write" in err and "No space left on device" in err
    assert not list(tmp_path.glob("*front.csv*"))


# --- failing trials end FAIL; storage failures are one true line -------------------------------

def test_failing_evaluation_ends_the_trial_fail(run, tmp_path, monkeypatch) -> None:
    from explorer.study.run import Objective

    path = small_study(tmp_path, "random", 10)
    real = Objective.evaluate

    def flaky(self, values, label, number):
        if number == 4:
            raise ZeroDivisionError("integer division or modulo by zero")
        return real(self, values, label, number)

    monkeypatch.setattr(Objective, "evaluate", flaky)
    code, _, err = run("study", "run", path, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 2  # the header line, then the error
    assert "trial 4 failed" in err and "ZeroDivisionError" in err and "marked FAIL" in err
    assert _states(path) == {"COMPLETE": 4, "FAIL": 1} or _finished(_states(path)) == 4
    assert "RUNNING" not in _states(path)
    monkeypatch.setattr(Objective, "evaluate", real)
    assert run("study", "run", path, "--quiet")[0] == 0
    states = _states(path)
    assert _finished(states) == 10 and states.get("FAIL") == 1 and "RUNNING" not in states


def test_simulated_full_disk_sqlite_is_one_line_and_resumes(run, tmp_path, monkeypatch) -> None:
    import sqlalchemy.exc

    import explorer.study.run as run_module

    path = small_study(tmp_path, "random", 10)
    real = run_module.write_attrs
    calls = [0]

    def full(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise sqlalchemy.exc.OperationalError("INSERT ...", {}, Exception("database or disk is full"))
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "write_attrs", full)
    code, _, err = run("study", "run", path, "--quiet")
    assert code == 2 and "the disk is full" in err and "Background on this error" not in err, err
    assert "exceeding max length" not in err and "Traceback" not in err
    assert "RUNNING" not in _states(path)  # the trial that could not be stored was failed
    monkeypatch.setattr(run_module, "write_attrs", real)
    assert run("study", "run", path, "--quiet")[0] == 0
    assert _finished(_states(path)) == 10


def test_full_disk_sqlite_then_resume(tmp_path) -> None:
    with tmpfs("200k") as disk:
        if disk is None:
            pytest.skip("cannot mount a tmpfs here (the simulated case runs instead)")
        path = small_study(tmp_path, "random", 100_000)
        path.write_text(path.read_text().replace(f"output: {tmp_path / 'out'}", f"output: {disk / 'out'}"))
        done = subprocess.run([*CLI, "study", "run", str(path), "--quiet"], check=False, capture_output=True,
                              text=True, env=ENV, timeout=300)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert "disk is full" in lines[-1] and "Traceback" not in done.stderr, done.stderr
        remount(disk, "8m")
        made = _finished(_states(path))
        done = subprocess.run([*CLI, "study", "run", str(path), "--quiet", "--n-trials", str(made + 5)],
                              check=False, capture_output=True, text=True, env=ENV, timeout=300)
        assert done.returncode == 0, done.stderr
        states = _states(path)
        assert _finished(states) == made + 5 and "RUNNING" not in states


def test_storage_messages_are_one_line() -> None:
    import sqlalchemy.exc

    from explorer.study.storage import one_line

    exc = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("unable to open database file"))
    text = one_line(exc)
    assert "Background on this error" not in text and "\n" not in text
    assert "unable to open database file" in text
    assert one_line(OSError(errno.ENOSPC, "No space left on device")) == "the disk is full (no space left on device)"


# --- journal: torn tail, damage, dead lock owners ------------------------------------------------

def _journal(tmp_path: Path) -> str:
    return f"journal:{tmp_path / 'out' / 'journal.log'}"


def test_torn_journal_tail_is_backed_up_and_cut(run, tmp_path) -> None:
    path = small_study(tmp_path, "random", 6)
    journal = _journal(tmp_path)
    assert run("study", "run", path, "--quiet", "--storage", journal)[0] == 0
    log = Path(journal.removeprefix("journal:"))
    whole = log.read_bytes()
    log.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "trial_id": 3, "sta')  # a crash mid-write
    code, _, err = run("study", "run", path, "--quiet", "--storage", journal, "--n-trials", "10")
    assert code == 0, err
    backups = list(log.parent.glob("journal.log.torn-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes().startswith(whole)
    states = _states(path, journal)
    assert _finished(states) == 10 and "RUNNING" not in states
    assert run("study", "pareto", path, "--storage", journal, "-o", tmp_path / "f.csv")[0] == 0


def test_damaged_journal_is_refused_untouched(run, tmp_path) -> None:
    path = small_study(tmp_path, "random", 4)
    journal = _journal(tmp_path)
    assert run("study", "run", path, "--quiet", "--storage", journal)[0] == 0
    log = Path(journal.removeprefix("journal:"))
    lines = log.read_bytes().splitlines(keepends=True)
    damaged = b"".join(lines[:3]) + lines[3][:10] + b"".join(lines[4:])  # torn, then appended to
    log.write_bytes(damaged)
    code, _, err = run("study", "run", path, "--quiet", "--storage", journal, "--n-trials", "8")
    last = err.strip().splitlines()[-1]  # after the run's header line: one error line
    assert code == 2 and "Traceback" not in err, err
    assert "is damaged at line 4" in last and "left untouched" in last
    assert log.read_bytes() == damaged


def test_journal_lock_of_a_killed_process_is_free_at_once(tmp_path) -> None:
    import fcntl

    from explorer.study.storage import FlockJournalLock

    lock_path = tmp_path / "journal.log.explorer.journal-lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from explorer.study.storage import FlockJournalLock;"
        "lock = FlockJournalLock(Path(sys.argv[2])); lock.acquire(); print('held', flush=True); time.sleep(600)"),
        str(ROOT), str(lock_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with open(lock_path) as fh, pytest.raises(BlockingIOError):  # held: a non-blocking try fails
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = FlockJournalLock(lock_path)
    with open(lock_path) as fh:  # the kernel dropped it with its owner: free now, no grace period
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fh, fcntl.LOCK_UN)
    assert lock.acquire()
    lock.release()


# --- kill -9 and concurrent processes --------------------------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_kill_9_loses_nothing_and_resumes_at_once(tmp_path, kind) -> None:
    path = small_study(tmp_path, "random", 100_000)
    storage = _journal(tmp_path) if kind == "journal" else None
    cmd = [*CLI, "study", "run", str(path), "--quiet", *(["--storage", storage] if storage else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _wait_for_trials(load_study(path, storage=storage), 12)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = open_study(load_study(path, storage=storage), create=False).get_trials(deepcopy=False)
    finished = [(t.number, t.params) for t in before if t.state.name in ("COMPLETE", "PRUNED")]
    target = len(finished) + 5
    done = subprocess.run([*cmd, "--n-trials", str(target)], check=False, capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr  # no wait: the killed worker's claim died with it
    after = open_study(load_study(path, storage=storage), create=False).get_trials(deepcopy=False)
    kept = [(t.number, t.params) for t in after if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(kept) == target and kept[: len(finished)] == finished  # 0 lost, 0 doubled
    assert all(t.state.name != "RUNNING" for t in after)
    assert len({t.number for t in after}) == len(after)


def test_processes_from_different_folders_make_exactly_n_trials(tmp_path) -> None:
    path = small_study(tmp_path, "random", 15)
    folders = [tmp_path / f"cwd{k}" for k in range(3)]
    procs = []
    for folder in folders:
        folder.mkdir()
        procs.append(subprocess.Popen([*CLI, "study", "run", str(path), "--quiet"], cwd=folder, env=ENV,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    made = 0
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        made += int(err.split(" made by this run")[0].split("(")[-1])
    states = _states(path)
    assert _finished(states) == 15 and set(states) <= {"COMPLETE", "PRUNED"}, states
    assert made == 15  # each process reports what it made, not the study's total
    assert all(not any(f.iterdir()) for f in folders)  # no lock left in a working directory


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        if url is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) or psycopg are not installed")
        yield url


def test_postgresql_processes_on_several_machines_make_exactly_n_trials(tmp_path, postgres_url) -> None:
    path = small_study(tmp_path, "random", 12)
    path.write_text(path.read_text().replace("name: small", "name: pg_processes"))
    procs = []
    for k in range(3):  # separate lock folders: as if on three machines, only the server is shared
        env = {**ENV, "XDG_RUNTIME_DIR": str(tmp_path / f"machine{k}")}
        (tmp_path / f"machine{k}").mkdir()
        procs.append(subprocess.Popen([*CLI, "study", "run", str(path), "--quiet", "--storage", postgres_url],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    states = _states(path, postgres_url)
    assert _finished(states) == 12 and set(states) <= {"COMPLETE", "PRUNED"}, states


def test_postgresql_advisory_lock_closes_the_race(tmp_path, postgres_url, monkeypatch) -> None:
    """Three workers with no shared file lock (as on three machines), each pausing between
    counting the trials and asking for one: only the server's advisory lock keeps the count exact."""
    import threading
    import time

    import explorer.study.run as run_module
    import explorer.study.storage as storage_module

    monkeypatch.setattr(storage_module.fcntl, "flock", lambda fh, op: None)  # no local lock at all
    real = run_module.counted

    def slow_count(trials):
        n = real(trials)
        time.sleep(0.3)  # every other worker counts the same number meanwhile, unless locked out
        return n

    monkeypatch.setattr(run_module, "counted", slow_count)
    path = small_study(tmp_path, "random", 4)
    path.write_text(path.read_text().replace("name: small", "name: pg_race"))
    study = load_study(path, storage=postgres_url)
    open_study(study)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            run_module.worker_loop(study, 4, k, ostudy=open_study(study, k))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    states = _states(path, postgres_url)
    assert _finished(states) == 4 and set(states) <= {"COMPLETE", "PRUNED"}, states
