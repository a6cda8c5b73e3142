"""An experiment's committed tables (results/NAME/) as a ledger that grows run by run.

A run is identified by its name and hardware kind. Collecting again adds the runs the tables
do not hold yet, on any day and from any machine, and keeps every row already there: a table
grows over many interruptions and nothing finished is lost. A run that comes back with other
numbers than its committed record is refused (LedgerConflict), never overwritten.

Files: runs.csv (one row per run), curves.csv (one row per logged event), skipped.csv (runs
seen unfinished at the last collection), collection.json (per run: commit, hardware, versions,
command line, wall time, where it was collected from).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from repro import paths
from repro.records.rundir import RunDir
from repro.records.tables import read_csv, write_csv
from repro.report.collect import collect_dirs, collect_wandb


class LedgerConflict(ValueError):
    pass


def run_key(row: dict) -> tuple:
    return row["run"], row.get("hardware")


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def read_tables(out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """The committed runs, curves and provenance entries (empty for a new folder)."""
    runs = read_csv(out / "runs.csv") if (out / "runs.csv").is_file() else []
    curves = read_csv(out / "curves.csv") if (out / "curves.csv").is_file() else []
    path = out / "collection.json"
    entries = json.loads(path.read_text())["runs"] if path.is_file() else []
    return runs, curves, entries


def merge(out: Path, runs: list[dict], curves: list[dict], skipped: list[dict],
          entries: list[dict]) -> list[dict]:
    """Add the runs (and their curves and provenance entries) that out/ does not hold yet;
    return the rows added. Raises LedgerConflict, writing nothing, when a run already in the
    tables comes back different."""
    old_runs, old_curves, old_entries = read_tables(out)
    index = {run_key(r): r for r in old_runs}
    added = []
    for row in runs:
        old = index.get(run_key(row))
        if old is None:
            added.append(row)
            continue
        changed = sorted(k for k in row if k in old and not same(old[k], row[k]))
        if changed:
            k = changed[0]
            raise LedgerConflict(
                f"{out}: run {row['run']!r} on {row.get('hardware')} is already recorded with "
                f"{k}={old[k]!r}, but the run directory gives {row[k]!r} (and {len(changed) - 1} more "
                "differences); a finished run's record is never overwritten: give a redone run a new "
                "directory name, or collect into another --out")
    new = {run_key(r) for r in added}
    done = {r["run"] for r in old_runs} | {r["run"] for r in added}
    write_csv(old_runs + added, out / "runs.csv")
    write_csv(old_curves + [c for c in curves if run_key(c) in new], out / "curves.csv")
    write_csv([s for s in skipped if s["run"] not in done], out / "skipped.csv")
    kept = old_entries + [e for e in entries if run_key(e) in new]
    (out / "collection.json").write_text(json.dumps({"runs": kept}, indent=2) + "\n")
    return added


def gather(name: str, source: Path, wandb_path: str | None,
           shared: tuple | None = None) -> tuple[list, list, list]:
    """The experiment's runs, plus the methods it shares with another (`shared`: (folder, methods),
    its record's); all of the other's incomplete runs are listed as skipped, since their method is
    unknown."""
    runs, curves, skipped = (collect_wandb(wandb_path, name) if wandb_path else collect_dirs(source))
    if shared:
        other, methods = shared
        o_runs, o_curves, o_skipped = gather(other, source.parent / other, wandb_path)
        keep = {r["run"] for r in o_runs if (r["drop.kind"], r["drop.mode"]) in methods}
        keep |= {r["run"] for r in o_skipped}
        prefix = "" if wandb_path else f"../{other}/"      # run names are relative to `source`
        for rows, o_rows in ((runs, o_runs), (curves, o_curves), (skipped, o_skipped)):
            rows += [{**r, "run": prefix + r["run"]} for r in o_rows if r["run"] in keep]
    return runs, curves, skipped


def collect(name: str, source: Path, wandb_path: str | None, out: Path, shared: tuple | None = None) -> None:
    """Add the source's finished runs (and those it shares, `gather`) that out/ does not hold yet."""
    runs, curves, skipped = gather(name, source, wandb_path, shared)
    origin = wandb_path or os.path.relpath(source, paths.ROOT)
    entries = []
    for run in runs:
        run_dir = RunDir(os.path.normpath(source / run["run"]))     # shared runs: ../OTHER/...
        if (run_dir / "provenance.json").is_file():
            p, summary = run_dir.read_json("provenance.json"), run_dir.read_json("summary.json")
            entries.append({"run": run["run"], "hardware": run["hardware"], "machine": p["hardware"],
                            **{k: p[k] for k in ("cpu_capability", "torch") if k in p},
                            "commit": p["commit"], "versions": p["versions"], "argv": p["argv"],
                            "wall_s_last_launch": summary.get("wall_s_this_launch"), "source": origin})
    added = merge(out, runs, curves, skipped, entries)
    print(f"collected {len(runs)} complete runs ({len(added)} new), skipped {len(skipped)}: {out}")


def merge_tables(source: Path, out: Path) -> None:
    """Add the runs another copy of the tables holds (results/NAME from a machine whose run
    directories did not come back) that out/ does not hold yet, and the plans it wrote that out/
    lacks; the same refusal as collect, and a plan of the same name that differs refused, before
    anything is written."""
    if not (source / "runs.csv").is_file():
        raise FileNotFoundError(f"{source}/runs.csv does not exist: --from-tables takes a results folder "
                                "(runs.csv, curves.csv, collection.json)")
    plans = {p.name: p.read_bytes() for p in source.glob("plan*.json")}
    changed = [name for name, text in plans.items()
               if (out / name).is_file() and (out / name).read_bytes() != text]
    if changed:
        raise LedgerConflict(f"{source}/{changed[0]} differs from {out}/{changed[0]}: a committed plan is "
                             "never rewritten; merge the other machine's tables without that file")
    runs, curves, entries = read_tables(source)
    skipped = read_csv(out / "skipped.csv") if (out / "skipped.csv").is_file() else []
    added = merge(out, runs, curves, skipped, entries)
    new = [name for name in sorted(plans) if not (out / name).is_file()]
    for name in new:                                  # a plan the other machine wrote (a GPU window's)
        (out / name).write_bytes(plans[name])
    print(f"merged {len(runs)} runs from {source} ({len(added)} new){f', plans {new}' if new else ''}: {out}")


def hardware_kinds(rows: list[dict]) -> list:
    """The hardware kinds present, most runs first (ties by name)."""
    counts: dict = {}
    for r in rows:
        counts[r.get("hardware")] = counts.get(r.get("hardware"), 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], str(k)))


def one_hardware(rows: list[dict], what: str) -> list[dict]:
    """`rows` unchanged when they share one hardware kind; else raise: a paired comparison
    across kinds would mix trajectories that diverge seed by seed."""
    kinds = hardware_kinds(rows)
    if len(kinds) > 1:
        raise ValueError(f"{what}: runs of several hardware kinds {kinds} would be paired; "
                         "select one kind first (rows_on)")
    return rows


def rows_on(rows: list[dict], hardware) -> list[dict]:
    return [r for r in rows if r.get("hardware") == hardware]
