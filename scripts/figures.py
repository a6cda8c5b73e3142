"""Collect an experiment's runs into tables, then build its figures and table from the tables.

    python scripts/figures.py NAME                 # collect multirun/NAME, then build
    python scripts/figures.py NAME --from-wandb ENTITY/PROJECT   # collect from W&B instead
    python scripts/figures.py NAME --no-collect    # rebuild from the committed tables alone

Writes results/NAME/{runs.csv, curves.csv, skipped.csv, table.md, *.png, *.pdf,
collection.json}. Runs that are not complete are listed in skipped.csv and table.md, never
averaged in.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import matplotlib

from repro.figures import FIGURES, SHARED
from repro.results import collect_dirs, collect_wandb, read_csv, write_csv

ROOT = Path(__file__).resolve().parents[1]


def gather(name: str, source: Path, wandb_path: str | None) -> tuple[list, list, list]:
    """The experiment's runs, plus the methods it shares with another (repro.figures.SHARED);
    all of the other's incomplete runs are listed as skipped, since their method is unknown."""
    runs, curves, skipped = (collect_wandb(wandb_path, name) if wandb_path else collect_dirs(source))
    if name in SHARED:
        other, methods = SHARED[name]
        o_runs, o_curves, o_skipped = gather(other, source.parent / other, wandb_path)
        keep = {r["run"] for r in o_runs if (r["drop.kind"], r["drop.mode"]) in methods}
        keep |= {r["run"] for r in o_skipped}
        prefix = "" if wandb_path else f"../{other}/"      # run names are relative to `source`
        for rows, o_rows in ((runs, o_runs), (curves, o_curves), (skipped, o_skipped)):
            rows += [{**r, "run": prefix + r["run"]} for r in o_rows if r["run"] in keep]
    return runs, curves, skipped


def collect(name: str, source: Path, wandb_path: str | None, out: Path) -> None:
    runs, curves, skipped = gather(name, source, wandb_path)
    write_csv(runs, out / "runs.csv")
    write_csv(curves, out / "curves.csv")
    write_csv(skipped, out / "skipped.csv")
    provenance = {}
    for run in runs:
        run_dir = Path(os.path.normpath(source / run["run"]))     # shared runs: ../OTHER/...
        if (run_dir / "provenance.json").is_file():
            p = json.loads((run_dir / "provenance.json").read_text())
            summary = json.loads((run_dir / "summary.json").read_text())
            provenance[run["run"]] = {"commit": p["commit"], "hardware": p["hardware"],
                                      "versions": p["versions"], "argv": p["argv"],
                                      "wall_s_last_launch": summary.get("wall_s_this_launch")}
    (out / "collection.json").write_text(json.dumps(
        {"source": wandb_path or os.path.relpath(source, ROOT), "runs": provenance}, indent=2))
    print(f"collected {len(runs)} complete runs, skipped {len(skipped)}: {out}")


def build(name: str, out: Path) -> None:
    runs, curves = read_csv(out / "runs.csv"), read_csv(out / "curves.csv")
    skipped = read_csv(out / "skipped.csv")
    lines = [f"# {name}", ""] + FIGURES[name](runs, curves, out)
    if skipped:
        lines += ["", "Not included (incomplete runs):", ""]
        lines += [f"- {s['run']}: {s['status']} at step {s['last_step']}" for s in skipped]
    lines += ["", f"Built by `python scripts/figures.py {name} --no-collect` from runs.csv and "
              "curves.csv; each run's commit, hardware, package versions, command and wall time "
              "are in collection.json; the sweep command and verdicts are in ../README.md."]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "figures.json").write_text(json.dumps({"matplotlib": matplotlib.__version__}) + "\n")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(FIGURES))
    parser.add_argument("--no-collect", action="store_true", help="use the committed tables")
    parser.add_argument("--from-wandb", metavar="ENTITY/PROJECT")
    parser.add_argument("--source", type=Path, help="run directories (default multirun/NAME)")
    parser.add_argument("--out", type=Path, help="default results/NAME")
    args = parser.parse_args()
    out = args.out or ROOT / "results" / args.name
    if not args.no_collect:
        collect(args.name, args.source or ROOT / "multirun" / args.name, args.from_wandb, out)
    if not (out / "runs.csv").is_file():
        sys.exit(f"error: {out}/runs.csv does not exist; collect first (drop --no-collect)")
    build(args.name, out)


if __name__ == "__main__":
    main()
