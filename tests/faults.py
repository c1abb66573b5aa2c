"""Helpers for the fault tests: small tmpfs mounts (full or read-only disks) and a throwaway
PostgreSQL server on 127.0.0.1. Each skips, or says it cannot, where the machine does not allow it."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tmpfs(size: str, read_only: bool = False) -> Iterator[Path | None]:
    """A tmpfs of ``size`` mounted on a fresh folder, or None where mounting is not allowed."""
    folder = Path(tempfile.mkdtemp(prefix="explorer-tmpfs-"))
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, check=False).returncode == 0
    except OSError:
        done = False
    try:
        yield folder if done else None
    finally:
        if done:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def remount(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True)


def fill(folder: Path) -> None:
    """Take every free byte of a (small) file system."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str | None]:
    """Start PostgreSQL in a temporary folder on 127.0.0.1; yields its URL, or None when the
    server binaries (initdb, pg_ctl) or the psycopg driver are missing. As root, the server runs
    as the 'postgres' user (PostgreSQL refuses root)."""
    import importlib.util

    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl or importlib.util.find_spec("psycopg") is None:
        yield None
        return
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="explorer-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            yield None
            return
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "explorer", "--no-sync"],
                       check=True, capture_output=True)
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                        "start"], check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql://explorer@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
