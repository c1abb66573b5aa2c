"""Fuzz the loaders and commands with generated and mutated specs, profiles and study files.

    nice python benchmarks/fuzz.py [--cases 10000] [--seed 0] [--timeout 5] [--keep DIR]

Each case goes through the library API (odd cases) or the CLI in-process (``explorer.cli.main``,
even cases), under a per-case alarm. Outcomes:

* clean error: ``ExplorerError`` from the API, or exit status 2 with one stderr line and no traceback;
* accepted: a result (checked: non-negative integer totals equal to the sum of the rows; finite
  positive profile numbers), or exit status 0;
* unexpected: any other exception, exit status, or message shape (must be 0);
* hang: a case past ``--timeout`` seconds (must be 0); a ``study run`` case (a real one-trial run
  that imports optuna and draws the front) gets three times as long.

Unexpected cases and hangs are written to ``--keep`` (default ``fuzz-failures/``) to reproduce.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzzing import dump, mutate_text, mutated_file, random_spec

from explorer.analysis import analyze
from explorer.cli import main
from explorer.cost import METRICS, Costs
from explorer.errors import ExplorerError
from explorer.graph import build
from explorer.hardware.profile import load_device
from explorer.spec import loads_spec
from explorer.study.config import load_study


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that library code cannot swallow it."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def make_case(rng: random.Random) -> tuple[str, str]:
    """(kind, YAML text): generated specs, mutated specs, profiles and study files."""
    roll = rng.random()
    if roll < 0.4:
        return "spec", dump(random_spec(rng))
    if roll < 0.55:
        return "spec", mutated_file(rng, "specs") if rng.random() < 0.5 else mutate_text(rng, dump(random_spec(rng)))
    if roll < 0.8:
        return "profile", mutated_file(rng, "hardware")
    return "study", mutated_file(rng, "studies")


def check_spec_api(path: Path, rng: random.Random) -> None:
    spec = loads_spec(path.read_text(), str(path))
    result = analyze(spec)
    for m in METRICS:
        total = result.totals[m]
        if not (isinstance(total, int) and total >= 0 and total == sum(r.metrics[m] for r in result.layers)):
            raise AssertionError(f"{m}: total {total} is not a non-negative sum of the rows")
    if rng.random() < 0.2:
        costs = Costs(build(spec))
        for m in METRICS:
            costs.formula(m)


def check_profile_api(path: Path) -> None:
    d = load_device(path)
    numbers = [*d.peak.values(), d.bandwidth, d.capacity, d.compute_efficiency, d.bandwidth_efficiency]
    if not all(math.isfinite(v) and v > 0 for v in numbers) or not math.isfinite(d.launch_overhead):
        raise AssertionError(f"profile accepted with a non-finite or non-positive number: {d}")


def cli_argv(kind: str, path: Path, rng: random.Random) -> list[str]:
    if kind == "spec":
        return rng.choice([["analyze", str(path)], ["formula", str(path)], ["validate", str(path)],
                           ["analyze", str(path), "--hardware", "t4"]])
    if kind == "profile":
        return rng.choice([["hardware", "show", str(path)], ["analyze", "resnet18", "--hardware", str(path)]])
    if rng.random() < 0.05:  # a real run is slow; most study cases only load the file
        return ["study", "run", str(path), "--n-trials", "1", "--quiet"]
    return []


def run_cli(argv: list[str]) -> tuple[str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    text = err.getvalue().strip()
    if code == 2:
        lines = text.splitlines()
        if len(lines) != 1 or "Traceback" in text:
            return "unexpected", f"exit 2 with {len(lines)} stderr lines: {text[:2000]}"
        return "clean", ""
    if code == 0:
        return "accepted", ""
    return "unexpected", f"exit {code}: {text[:2000]}"


def run_api(kind: str, path: Path, rng: random.Random) -> tuple[str, str]:
    try:
        if kind == "spec":
            check_spec_api(path, rng)
        elif kind == "profile":
            check_profile_api(path)
        else:
            load_study(path)
    except ExplorerError:
        return "clean", ""
    return "accepted", ""


def one(i: int, kind: str, path: Path, rng: random.Random, timeout: float) -> tuple[str, str, str]:
    argv = cli_argv(kind, path, rng) if i % 2 == 0 else []
    mode = "cli " + " ".join(argv[:2]) if argv else "api"
    if argv[:2] == ["study", "run"]:
        timeout *= 3  # real work: imports optuna, runs a trial, draws the front with matplotlib
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        outcome, detail = run_cli(argv) if argv else run_api(kind, path, rng)
    except Hang:
        outcome, detail = "hang", f"over {timeout} s"
    except Exception:  # noqa: BLE001 - the point: anything else is a finding
        outcome, detail = "unexpected", traceback.format_exc(limit=-6)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return outcome, mode, detail


def main_fuzz(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--keep", type=Path, default=Path("fuzz-failures"))
    args = ap.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(args.seed)
    counts: Counter[tuple[str, str]] = Counter()
    findings = 0
    start = time.perf_counter()
    keep = args.keep.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # study outputs land here
        for i in range(args.cases):
            kind, text = make_case(rng)
            path = Path(tmp) / f"{kind}.yaml"
            path.write_text(text)
            outcome, mode, detail = one(i, kind, path, rng, args.timeout)
            counts[(kind, outcome)] += 1
            if outcome in ("unexpected", "hang"):
                findings += 1
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{i:05d}-{kind}-{outcome}.yaml").write_text(text)
                (keep / f"{i:05d}-{kind}-{outcome}.txt").write_text(f"{mode}\n{detail}\n")
                print(f"case {i} {kind} {mode}: {outcome}: {detail.strip().splitlines()[-1][:200]}", flush=True)
            if (i + 1) % 1000 == 0:
                print(f"{i + 1} cases, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    _report(counts, args.cases, elapsed)
    return 1 if findings else 0


def _report(counts: Counter[tuple[str, str]], cases: int, elapsed: float) -> None:
    outcomes = ("clean", "accepted", "unexpected", "hang")
    print(f"\n{cases} cases in {elapsed:.0f} s")
    print(f"{'kind':<8} " + " ".join(f"{o:>10}" for o in outcomes))
    for kind in ("spec", "profile", "study"):
        print(f"{kind:<8} " + " ".join(f"{counts[(kind, o)]:>10}" for o in outcomes))
    print(f"{'total':<8} " + " ".join(f"{sum(counts[(k, o)] for k in ('spec', 'profile', 'study')):>10}"
                                       for o in outcomes))


if __name__ == "__main__":
    sys.exit(main_fuzz())
