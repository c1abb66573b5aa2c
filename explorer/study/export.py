"""Study results as rows: every trial, the feasible non-dominated front, files (CSV/JSON)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import ExplorerError
from explorer.outputs import check_file, write_atomic
from explorer.study.config import Study
from explorer.study.evaluate import METRICS
from explorer.study.pareto import non_dominated, oriented
from explorer.study.run import ATTR, open_study, trial_metrics
from explorer.study.storage import storage_file


def trial_rows(study: Study) -> list[dict[str, Any]]:
    """One row per finished trial: number, state, feasible, variables, target, every metric."""
    from optuna.trial import TrialState

    ostudy = open_study(study, create=False)
    rows = []
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        info = t.user_attrs.get(ATTR) or {}
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name.lower(),
                               "feasible": bool(info.get("feasible", False))}
        row.update({k: (round(v, 12) if isinstance(v, float) else v) for k, v in t.params.items() if k != "target"})
        if len(study.targets) > 1:
            row["target"] = info.get("target") or t.params.get("target")
        row.update(trial_metrics(t))
        if info.get("same_as", t.number) != t.number:
            row["same_as"] = info["same_as"]
        rows.append(row)
    return rows


def front_mask(rows: list[dict[str, Any]], study: Study) -> np.ndarray:
    """Feasible rows that no other feasible row dominates; an architecture met again later
    (``same_as``) is shown once, at its first trial."""
    feasible = np.array([r["feasible"] and r["state"] == "complete" and "same_as" not in r for r in rows],
                        dtype=bool)
    mask = np.zeros(len(rows), dtype=bool)
    idx = np.nonzero(feasible)[0]
    if len(idx):
        values = oriented([[rows[i][o.metric] for o in study.objectives] for i in idx], study.directions)
        mask[idx[non_dominated(values)]] = True
    return mask


def columns_of(rows: list[dict[str, Any]], study: Study) -> list[str]:
    head = ["trial", "state", "feasible", *study.search, *(["target"] if len(study.targets) > 1 else [])]
    present = {k for r in rows for k in r}
    return [c for c in head if c in present or c in ("trial",)] + [m for m in METRICS if m in present] + \
        (["same_as"] if "same_as" in present else [])


TABLE_SUFFIXES = (".csv", ".json")


def check_table(path: str | Path, inputs: list[Path]) -> Path:
    """Refuse a table path that cannot be written, before anything is."""
    return check_file(path, TABLE_SUFFIXES, "a table", inputs)


# units of exported metrics (base units, as stored and as constraints are written)
UNITS = {"time": "s", "bytes": "B", "rate": "1/s", "fraction": "1", "intensity": "FLOP/B"}
COUNT_UNITS = {"macs": "MAC", "flops": "FLOP", "params": "1", "macs_per_sample": "MAC/sample",
               "flops_per_sample": "FLOP/sample"}
EXACT = {m for m, (_, dim) in METRICS.items() if dim in ("count", "bytes")} - {"macs_per_sample", "flops_per_sample"}


def units_of(columns: list[str]) -> dict[str, str]:
    """The unit of each metric column (throughput counts the spec's samples per second)."""
    out = {}
    for c in columns:
        if c in METRICS:
            dim = METRICS[c][1]
            out[c] = COUNT_UNITS.get(c, "1") if dim == "count" else UNITS.get(dim, "")
    return out


def _exact(row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """Counts and bytes as integers (a float that holds an integer, e.g. from Optuna's storage)."""
    out = {}
    for c in columns:
        v = row.get(c)
        if c in EXACT and isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            v = int(v)
        out[c] = v
    return out


def write_rows(rows: list[dict[str, Any]], columns: list[str], path: str | Path,
               study: Study | None = None) -> Path:
    """A table as CSV (one row per configuration) or JSON. With the study: every row names its
    device and precision (columns ``device``, ``dtype``), and the JSON is an object with the study,
    its targets, the unit of every metric and the rows."""
    p = Path(path)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise ExplorerError(f"cannot export to '{p}': use a .csv or .json file name")
    cols = list(columns)
    table = [_exact(r, cols) for r in rows]
    if study is not None:
        by_label = {t.label: t for t in study.targets}
        for r, raw in zip(table, rows):
            target = by_label.get(raw.get("target") or study.targets[0].label, study.targets[0])
            r["device"], r["dtype"] = target.device.id, target.dtype
        cols += ["device", "dtype"]

    def write(tmp: Path) -> None:
        if p.suffix.lower() == ".json":
            data: Any = table
            if study is not None:
                data = {"study": study.name, "spec": study.spec.name,
                        "targets": [{"device": t.device.id, "name": t.device.name, "dtype": t.dtype,
                                     "weight_dtype": t.weight_dtype or t.dtype} for t in study.targets],
                        "units": units_of(cols), "rows": table}
            tmp.write_text(json.dumps(data, indent=2) + "\n")
            return
        with tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(table)

    write_atomic(p, write)
    return p


def study_inputs(study: Study) -> list[Path]:
    """Every file a study command reads: the study, its spec, its profiles, a file storage."""
    paths = [Path(study.path), Path(study.spec.path), *(Path(t.device.path) for t in study.targets)]
    store = storage_file(study.storage)
    if store is not None:
        paths.append(store)
    return [p for p in paths if p.exists()]
