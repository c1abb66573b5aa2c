"""The wheel ships the bundled specs, profiles and studies, and they resolve by name from any
directory (issue 12). Builds a real wheel (pip wheel, like any installer), unpacks it and runs the
command line from an empty directory against the unpacked package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("explorer-*.whl")
    return path


def test_wheel_carries_every_bundled_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("specs", "hardware", "studies"):
        files = sorted((ROOT / kind).glob("*.yaml"))
        assert files
        for f in files:
            assert f"explorer/_bundled/{kind}/{f.name}" in names, f
    assert "explorer/py.typed" in names
    for kind in ("spec", "study", "hardware"):
        assert f"explorer/schemas/{kind}.schema.json" in names


def test_installed_package_resolves_names_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "explorer.cli", *args], capture_output=True, text=True,
                              cwd=empty, env=env, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import explorer.spec as s; print(s.SPECS_DIR)"],
                           capture_output=True, text=True, cwd=empty, env=env)
    assert Path(where.stdout.strip()) == site / "explorer" / "_bundled" / "specs"
    done = cli("analyze", "resnet50", "--format", "json", "--totals")
    assert done.returncode == 0, done.stderr
    assert '"params": 25557032' in done.stdout
    done = cli("hardware", "show", "h100_sxm")
    assert done.returncode == 0 and "interconnect NVLink 4" in done.stdout, done.stderr
    done = cli("study", "run", "quickstart", "--n-trials", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (empty / "explorer-out" / "quickstart" / "front.csv").exists()
    done = cli("study", "list")
    assert done.returncode == 0 and "llama_decode_h100" in done.stdout
