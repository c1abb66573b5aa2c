"""The wheel carries the bundled specs, hardware profiles and studies (top-level specs/, hardware/,
studies/ in the repository) as explorer/_bundled/; see explorer/bundled.py. Everything else about
the package is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithBundledData(build_py):
    def run(self) -> None:
        super().run()
        for kind in ("specs", "hardware", "studies"):
            target = Path(self.build_lib) / "explorer" / "_bundled" / kind
            target.mkdir(parents=True, exist_ok=True)
            for f in sorted((ROOT / kind).glob("*.yaml")):
                shutil.copy2(f, target / f.name)


setup(cmdclass={"build_py": BuildPyWithBundledData})
