"""Where a study's trials live: opening Optuna storages, the worker lock, claims, journal repair.

The worker lock ("count the trials, then ask for a new one") is keyed to the storage, never to the
working directory: a file lock next to a SQLite or journal file, a per-user lock file named after
the URL for a database server, plus a transaction-scoped advisory lock on PostgreSQL so that
processes on several machines make exactly ``n_trials`` trials. On local files, each worker holds
a claim file (flock) naming the trial it runs; a RUNNING trial that no live worker claims was left
by a killed process and is failed at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from explorer.errors import StudyError

JOURNAL = "journal:"
SQLITE = "sqlite:///"


def storage_file(url: str) -> Path | None:
    """The absolute path of a file storage (SQLite or journal), or None for a server."""
    for prefix in (SQLITE, JOURNAL):
        if url.startswith(prefix):
            return Path(os.path.abspath(url.removeprefix(prefix)))
    return None


def lock_base(url: str) -> Path:
    """Prefix of the lock and claim files of a storage (next to a file storage)."""
    path = storage_file(url)
    if path is not None:
        return path.parent / f"{path.name}.explorer"
    digest = hashlib.sha256(url.encode()).hexdigest()[:20]
    for root in (os.environ.get("XDG_RUNTIME_DIR"), Path.home() / ".cache", None):
        folder = (Path(root) if root else Path(tempfile.gettempdir()) / f"explorer-{os.getuid()}") / "explorer" / "locks"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder / digest
        except OSError:
            continue
    raise StudyError(f"no writable folder for the lock of storage {url!r} (tried $XDG_RUNTIME_DIR, ~/.cache, "
                     f"{tempfile.gettempdir()})")


def one_line(exc: BaseException) -> str:
    """A storage failure in one true line: no SQL, no '(Background on this error at ...)'.
    Optuna's StorageInternalError ("... e.g. exceeding max length") is told by its cause."""
    if type(exc).__name__ == "StorageInternalError" and exc.__cause__ is not None:
        return one_line(exc.__cause__)
    text = str(exc).split("\n")[0]
    text = re.sub(r"\s*\(Background on this error at:[^)]*\)", "", text)
    text = re.sub(r"^\((?:sqlite3|psycopg2?|pymysql)[.\w]*\)\s*", "", text).strip()
    if isinstance(exc, OSError) and exc.errno == 28 or "disk is full" in text or "No space left" in text:
        return "the disk is full (no space left on device)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class FlockJournalLock:
    """Optuna's journal write lock as an flock: the kernel drops it when its owner dies, so a
    killed process never stalls the next run (Optuna's symlink lock waits 30 s for a stale one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: Any = None

    def acquire(self) -> bool:
        self.fh = open(self.path, "a")  # noqa: SIM115 - held until release()
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


def open_journal(url: str, study_path: str) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = storage_file(url)
    assert path is not None
    if not url.removeprefix(JOURNAL).strip():
        raise StudyError("storage 'journal:' names no file; write journal:PATH", path=study_path)
    if path.is_dir():
        raise StudyError(f"storage {url!r}: {path} is a directory; name a file", path=study_path)
    lock = FlockJournalLock(Path(f"{lock_base(url)}.journal-lock"))
    with _held(lock):
        repair_journal(path, study_path)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))  # type: ignore[arg-type]


@contextlib.contextmanager
def _held(lock: Any) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def repair_journal(path: Path, study_path: str) -> Path | None:
    """Cut a record torn by a crash (full disk, kill -9 mid-write) off the end of a journal.

    Called under the journal's write lock, so a tail without a newline belongs to a dead writer.
    The file is copied to ``PATH.torn-<time>.bak`` first; returns that backup. Damage before the
    last record (a torn record followed by others) is refused and the file left untouched.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = path.read_bytes()
    good = data.rfind(b"\n") + 1
    bad_line = _damaged_line(data[:good])
    if bad_line is not None:
        raise StudyError(f"journal {path} is damaged at line {bad_line} (a record cut short, then "
                         "others appended); it was left untouched: restore a backup or start a new "
                         "journal", path=study_path)
    if good == len(data):
        return None
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(path, backup)
    with open(path, "r+b") as fh:
        fh.truncate(good)
        fh.flush()
        os.fsync(fh.fileno())
    return backup


def _damaged_line(data: bytes) -> int | None:
    import json

    for number, line in enumerate(data.splitlines(), start=1):
        try:
            json.loads(line)
        except ValueError:
            return number
    return None


def open_storage(url: str, study_path: str) -> Any:
    try:
        return _open_storage(url, study_path)
    except OSError as exc:  # a lock file or folder that cannot be made: read-only place, full disk
        raise StudyError(f"storage {url!r}: {one_line(exc) if exc.errno == 28 else exc}", path=study_path) from None


def _open_storage(url: str, study_path: str) -> Any:
    import optuna

    if url.startswith(JOURNAL):
        _make_parent(url, study_path)
        return open_journal(url, study_path)
    if url.startswith(SQLITE):
        _make_parent(url, study_path)
        path = storage_file(url)
        if path is not None and path.is_dir():
            raise StudyError(f"storage {url!r}: {path} is a directory; name a file", path=study_path)
    for attempt in range(6):
        try:
            return optuna.storages.get_storage(_one_commit_storage()(driver_url(url)))
        except Exception as exc:  # noqa: BLE001 - any storage failure is the user's URL or server
            # Two processes creating a new database's tables at once: the loser retries.
            if attempt == 5 or not _transient(exc):
                raise StudyError(f"cannot open storage {url!r}: {_hint(url, exc)}", path=study_path) from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def driver_url(url: str) -> str:
    """``postgresql://`` through psycopg 3 (the ``postgres`` extra) when psycopg2 is absent:
    SQLAlchemy reads a bare ``postgresql://`` as psycopg2."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _make_parent(url: str, study_path: str) -> None:
    path = storage_file(url)
    assert path is not None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(f"storage {url!r}: cannot create folder {path.parent}: {exc.strerror}",
                         path=study_path) from None


def _hint(url: str, exc: Exception) -> str:
    if isinstance(exc, ModuleNotFoundError) and url.startswith("postgresql"):
        return "the PostgreSQL driver is missing: pip install 'explorer[postgres]' (psycopg)"
    return one_line(exc)


def _transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("locked", "already exists", "unique constraint", "busy"))


@contextlib.contextmanager
def worker_lock(url: str, storage: Any, study_name: str) -> Iterator[None]:
    """Exclusive across every process that uses this storage on this machine (file lock), and
    across machines on PostgreSQL (advisory lock held until the trial is created and claimed)."""
    with open(f"{lock_base(url)}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if url.startswith("postgresql"):
                with _pg_advisory_lock(storage, study_name):
                    yield
            else:
                yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _pg_advisory_lock(storage: Any, study_name: str) -> Iterator[None]:
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(f"explorer:{study_name}".encode()).digest()[:8], "big", signed=True)
    engine = getattr(storage, "_backend", storage).engine
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield  # the transaction ends (and the lock goes) after the trial is created and claimed


class Claims:
    """Per-worker claim files next to a file storage: ``<base>.workers/<pid>`` holds the number
    of the trial the worker runs, under an flock that the kernel drops when the worker dies."""

    def __init__(self, url: str) -> None:
        self.folder = Path(f"{lock_base(url)}.workers")
        self.fh: Any = None

    def claim(self, number: int) -> None:
        if self.fh is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.folder / str(os.getpid()), "w")  # noqa: SIM115 - held while working
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        self.fh.seek(0)
        self.fh.write(f"{number:<12d}")
        self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.fh.name)
            self.fh.close()
            self.fh = None

    def live(self) -> set[int]:
        """Trial numbers claimed by workers that are still alive; dead workers' files are removed."""
        out: set[int] = set()
        if not self.folder.is_dir():
            return out
        for f in self.folder.iterdir():
            if self.fh is not None and f.name == str(os.getpid()):
                out.add(int(f.read_text() or -1))
                continue
            out |= _live_claim(f)
        return out


def _live_claim(f: Path) -> set[int]:
    try:
        with open(f, "r+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its worker holds it: alive
                text = fh.read().strip()
                return {int(text)} if text.lstrip("-").isdigit() else set()
            os.unlink(f)  # nobody holds it: its worker died
            return set()
    except OSError:
        return set()


def _one_commit_storage() -> Any:
    """Optuna's RDBStorage, whose trials' attributes (queued by :func:`write_attrs`) are written in
    the transaction that finishes the trial: one commit (one fsync on SQLite) per trial, not two.
    If finishing fails, the attributes roll back with it: a trial is never half stored."""
    import optuna

    class OneCommitStorage(optuna.storages.RDBStorage):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.pending: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

        def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
            attrs = self.pending.pop(trial_id, None)
            if attrs is not None:  # the scoped session is the one the finishing transaction uses
                _add_attrs(self, self.scoped_session(), trial_id, *attrs)
            return bool(super().set_trial_state_values(trial_id, state, values))

    return OneCommitStorage


def write_attrs(storage: Any, trial_id: int, user: dict[str, Any], system: dict[str, Any]) -> None:
    """Set a trial's user and system attributes in one transaction where the storage allows it.

    Optuna's public API commits once per attribute (an fsync each on SQLite). On a relational
    storage opened by :func:`open_storage`, the attributes are queued and written in the
    transaction that finishes the trial (the caller finishes it next); on another relational
    storage, in one transaction of their own. Other storages (journal) take the public calls.
    """
    backend = getattr(storage, "_backend", storage)
    if isinstance(getattr(backend, "pending", None), dict):
        backend.pending[trial_id] = (user, system)
        return
    helper = getattr(backend, "_set_trial_attr_without_commit", None)
    if helper is None or not hasattr(backend, "scoped_session"):
        for key, value in user.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for key, value in system.items():
            storage.set_trial_system_attr(trial_id, key, value)
        return
    session = backend.scoped_session()
    try:
        _add_attrs(backend, session, trial_id, user, system)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _add_attrs(backend: Any, session: Any, trial_id: int, user: dict[str, Any], system: dict[str, Any]) -> None:
    """Write attributes into the session's transaction (flushed, not committed)."""
    import json

    from optuna.storages._rdb import models

    helper = backend._set_trial_attr_without_commit  # noqa: SLF001
    for model, attrs in ((models.TrialUserAttributeModel, user), (models.TrialSystemAttributeModel, system)):
        if not attrs:
            continue
        present = {k for (k,) in session.query(model.key).filter(model.trial_id == trial_id)}
        for key, value in attrs.items():
            if key in present:
                helper(session, model, trial_id, key, value)
        # new keys in one INSERT (executemany) instead of a SELECT and an INSERT each
        session.add_all([model(trial_id=trial_id, key=key, value_json=json.dumps(value))
                         for key, value in attrs.items() if key not in present])
    session.flush()


def count_by_state(storage: Any, study_id: int) -> dict[Any, int] | None:
    """How many trials of the study are in each state, in one COUNT query on a relational storage
    (Optuna's get_n_trials loads every new trial whole); None for other storages."""
    backend = getattr(storage, "_backend", storage)
    if not hasattr(backend, "scoped_session"):
        return None
    from optuna.storages._rdb import models
    from sqlalchemy import func

    session = backend.scoped_session()
    try:
        rows = (session.query(models.TrialModel.state, func.count(models.TrialModel.trial_id))
                .filter(models.TrialModel.study_id == study_id).group_by(models.TrialModel.state).all())
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {state: int(n) for state, n in rows}
