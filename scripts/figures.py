"""Collect an experiment's runs into tables, then build its figures and table from the tables.

    python scripts/figures.py NAME                 # add multirun/NAME's new runs, then build
    python scripts/figures.py NAME --from-wandb ENTITY/PROJECT   # collect from W&B instead
    python scripts/figures.py NAME --from-tables DIR   # merge another machine's results/NAME tables
    python scripts/figures.py NAME --no-collect    # rebuild from the committed tables alone
    python scripts/figures.py --glance             # results/README.md's 'The answer' and 'Claims at a
                                                   # glance', and results/claims.png / .pdf

Writes results/NAME/{runs.csv, curves.csv, skipped.csv, table.md, *.png, *.pdf,
collection.json}. Collecting adds runs to the committed tables and never drops or rewrites one
(repro.report.ledger), so an experiment's tables grow across days and machines. Runs that are not
complete are listed in skipped.csv and table.md, never averaged in.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from repro import paths
from repro.errors import DataError, refuse
from repro.report.experiments import EXPERIMENTS, build, write_glance
from repro.report.ledger import LedgerConflict, collect, merge_tables


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=sorted(EXPERIMENTS))
    parser.add_argument("--glance", action="store_true",
                        help="rewrite results/README.md's 'The answer' and 'Claims at a glance', and "
                        "results/claims.png / .pdf, from every current folder's tables")
    parser.add_argument("--no-collect", action="store_true", help="use the committed tables")
    parser.add_argument("--from-wandb", metavar="ENTITY/PROJECT")
    parser.add_argument("--source", type=Path, help="run directories (default multirun/NAME)")
    parser.add_argument("--from-tables", type=Path, metavar="DIR",
                        help="another copy of results/NAME (its runs.csv, curves.csv, collection.json)")
    parser.add_argument("--out", type=Path, help="default results/NAME")
    args = parser.parse_args()
    if args.glance:
        write_glance(paths.RESULTS)
        return
    if args.name is None:
        parser.error("name an experiment, or give --glance")
    out = args.out or paths.RESULTS / args.name
    if not args.no_collect:
        try:
            if args.from_tables:
                merge_tables(args.from_tables, out)
            else:
                collect(args.name, args.source or paths.MULTIRUN / args.name, args.from_wandb, out,
                        EXPERIMENTS[args.name].shared)
        except (LedgerConflict, FileNotFoundError) as e:
            refuse(e)
    if not (out / "runs.csv").is_file():
        refuse(DataError(f"{out}/runs.csv does not exist; collect first (drop --no-collect)"))
    print("\n".join(build(args.name, out)))


if __name__ == "__main__":
    main()
