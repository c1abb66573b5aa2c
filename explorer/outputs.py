"""Output files: every path checked before anything is written, then written whole or not at all.

A command first calls :func:`check_file` (or :func:`check_folder`) for every path it will write,
naming the files it reads, so that a bad path, a folder, a read-only place or an input file is
refused with one line before the first byte goes out. :func:`write_atomic` then writes to a
temporary file beside the target and renames it over, so a full disk leaves no half file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from explorer.errors import ExplorerError


def check_file(path: str | Path, suffixes: Iterable[str], what: str,
               inputs: Iterable[str | Path] = ()) -> Path:
    """The path, if a file of this kind can be written there without clobbering an input."""
    p = Path(path)
    allowed = tuple(suffixes)
    if p.is_dir():
        raise ExplorerError(f"cannot write {what} to '{p}': it is a folder")
    if p.suffix.lower() not in allowed:
        raise ExplorerError(f"cannot write {what} to '{p}': use a {' or '.join(allowed)} file name")
    for source in inputs:
        if _same(p, Path(source)):
            raise ExplorerError(f"cannot write {what} to '{p}': it is an input of this command "
                                f"('{source}'); choose another file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise ExplorerError(f"cannot write {what} to '{p}': the file is read-only")
    _probe(_existing_ancestor(p.parent), f"cannot write {what} to '{p}'")
    return p


def check_folder(path: str | Path, what: str = "output folder") -> Path:
    """A folder that exists or can be created, and can be written in."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ExplorerError(f"cannot use '{p}' as the {what}: it is a file")
    _probe(_existing_ancestor(p), f"cannot use '{p}' as the {what}")
    return p


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        return False
    return a.resolve() == b.resolve()


def _existing_ancestor(p: Path) -> Path:
    q = p.absolute()
    while not q.exists():
        if q.parent == q:
            break
        q = q.parent
    if not q.is_dir():
        raise ExplorerError(f"cannot create folder '{p}': '{q}' is a file")
    return q


def _probe(folder: Path, refusal: str) -> None:
    """Create and remove a temporary file in ``folder``: the only sure test (root ignores modes;
    a read-only mount or a full disk answers only to a write)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ExplorerError(f"{refusal}: folder '{folder}' is not writable ({exc.strerror or exc})") from None


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write through ``write(tmp)`` then rename over ``path``; on failure remove the temporary
    file and raise one line (a full disk, a folder that vanished)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise ExplorerError(f"cannot write '{p}': {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        write(tmp)
        os.replace(tmp, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ExplorerError(f"cannot write '{p}': {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
