"""Power planning and pre-registration from the command line (repro.report.plan: the rule):

    python -m repro.plan early_regime [--min-seeds 15] [--hardware KIND] [--pilot-hardware KIND] [--write]
    python -m repro.plan regime_study --cell model.embed_dim=48,data.train_subset=1000 --write
    python -m repro.plan regime_study --cell all --write               # every cell without a plan
    python -m repro.plan dynamics_decompose --seeds 10 [--write]     # curve claims: no pilot
    python -m repro.plan regime_study --mirror KIND --hardware OTHER --write

A committed plan is never rewritten; refusals print one line and exit with status 2."""
from __future__ import annotations

import argparse
import json
import sys

from repro import paths
from repro.errors import ConfigError, refuse
from repro.records.tables import read_csv
from repro.report.experiments import EXPERIMENTS
from repro.report.plan import (
    MIN_PILOT_SEEDS,
    MIN_SEEDS,
    PENDING,
    curve_plan,
    make_plan,
    mirror,
    parse_cell,
    pending_note,
    pilot_plan,
    plan_name,
    read_plan,
    read_plans,
)

ALL = "all"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(EXPERIMENTS),
                        help="the experiment (its results folder holds the pilot runs.csv)")
    parser.add_argument("--min-seeds", type=int, default=MIN_SEEDS)
    parser.add_argument("--hardware", help="the hardware kind the plan governs (default: this "
                        "machine's CPU kind, e.g. 'cpu AVX512 torch 2.14.1+cu130')")
    parser.add_argument("--pilot-hardware", help="the kind whose pilot runs give the spread "
                        "(default: --hardware); for a kind with no pilot of its own")
    parser.add_argument("--write", action="store_true", help="write results/NAME/plan.json")
    parser.add_argument("--seeds", type=int, help="seeds per arm, for curve claims (no pilot)")
    parser.add_argument("--cell", help="the cell of an experiment of cells, e.g. "
                        f"model.embed_dim=48,data.train_subset=1000; '{ALL}': every cell its pilot kind's "
                        "runs span that has no plan on --hardware (a cell whose pilot is short is named "
                        "and left)")
    parser.add_argument("--mirror", metavar="PILOT_KIND", help="write, for --hardware, every plan of "
                        "PILOT_KIND it lacks (all cells), from the same pilot seeds")
    args = parser.parse_args()
    if args.hardware is None:
        import torch

        from repro.records.provenance import hardware_kind, numerics
        args.hardware = hardware_kind(numerics(torch.device("cpu")))
    folder = paths.RESULTS / args.name
    experiment = EXPERIMENTS[args.name]
    if args.mirror:
        try:
            made = mirror(experiment, folder, args.mirror, args.hardware)
        except (ValueError, FileNotFoundError) as e:
            refuse(e)
        for file, plan in made:
            if args.write:
                (folder / file).write_text(json.dumps(plan, indent=2) + "\n")
            print(f"{'wrote' if args.write else 'would write'} {folder / file}")
        return
    curves = bool(experiment.curve_claims) and not experiment.piloted
    if curves != (args.seeds is not None):
        refuse(ConfigError(f"{args.name} needs --seeds N (its claims have no margin)" if curves else
                           f"--seeds is for curve experiments "
                           f"({sorted(n for n, e in EXPERIMENTS.items() if e.curve_claims)}); {args.name}'s "
                           "seeds come from its pilot"))
    if experiment.piloted and (args.pilot_hardware or args.cell):
        refuse(ConfigError(f"{args.name} is planned from its own kind's pilot, with no cells: leave out "
                           "--pilot-hardware and --cell"))
    if not curves and not experiment.piloted and not (folder / "runs.csv").is_file():
        refuse(ConfigError(f"{folder}/runs.csv does not exist; run and collect a pilot first"))
    if args.cell == ALL:
        if not experiment.cell:
            refuse(ConfigError(f"--cell {ALL} is for experiments of cells; {args.name} has none"))
        pilot_kind = args.pilot_hardware or args.hardware
        cells = unplanned_cells(experiment, folder, pilot_kind, args.hardware)
        if not cells:
            print(f"no cell that runs on {pilot_kind!r} span lacks a plan on {args.hardware!r}",
                  file=sys.stderr)
        for cell in cells:
            try:
                write(args, experiment, folder, cell, curves)
            except ValueError as e:                 # ConfigError too
                print(f"cell {cell}: no plan: {e}", file=sys.stderr)
        return
    try:
        write(args, experiment, folder, parse_cell(args.cell), curves)
    except ValueError as e:
        refuse(e)


def unplanned_cells(experiment, folder, pilot_kind: str, hardware: str) -> list[dict]:
    """The cells the pilot kind's runs (results/NAME/runs.csv) span that `hardware` has no plan for."""
    runs = [r for r in read_csv(folder / "runs.csv") if r.get("hardware") == pilot_kind]
    cells = {tuple(r.get(k) for k in experiment.cell) for r in runs}
    return [cell for cell in (dict(zip(experiment.cell, values)) for values in sorted(cells))
            if read_plan(folder, hardware, cell) is None]


def write(args, experiment, folder, cell: dict | None, curves: bool) -> None:
    """The plan (in `cell`; of curve claims without margins when `curves`), printed and, with --write,
    written; raises ValueError or ConfigError on a refusal: a pilot short of its seeds, or a plan that
    exists."""
    if curves:
        plan = curve_plan(experiment, args.seeds, args.hardware)
    elif experiment.piloted:
        pilot = read_csv(folder / "curves.csv") if (folder / "curves.csv").is_file() else []
        plan = pilot_plan(experiment, pilot, args.hardware, args.min_seeds)
    else:
        plan = make_plan(experiment, read_csv(folder / "runs.csv"), args.hardware, args.min_seeds,
                         args.pilot_hardware, cell)
    if plan.get("status") == PENDING:
        print(f"{args.hardware!r} has fewer than {MIN_PILOT_SEEDS} paired pilot seeds: the plan waits for "
              "its pilot", file=sys.stderr)
        if args.write and pending_note(folder):
            raise ConfigError(f"{folder}{pending_note(folder)}: nothing to write before a kind's pilot is in")
    short = [c for c in plan.get("comparisons", [])    # curve plans without a pilot have no pilot seeds
             if "pilot_seeds" in c and len(c["pilot_seeds"]) < MIN_PILOT_SEEDS]
    if args.write and short:
        c, n = short[0], MIN_PILOT_SEEDS
        raise ConfigError(f"the pilot has {len(c['pilot_seeds'])} paired seeds for '{c['claim']}'; a plan "
                          f"needs {n} (3-seed pilots here underestimated the spread about 2x): run seeds "
                          f"0-{n - 1} of {c['method']} and {c['baseline']} first")
    existing = read_plan(folder, args.hardware, cell)
    if args.write and existing is not None:
        raise ConfigError(f"{folder}/{existing['file']} already plans {args.hardware!r}"
                          f"{f' in cell {cell}' if cell else ''}: a committed plan is not rewritten; "
                          "delete it by hand only if no run it governs has started")
    text = json.dumps(plan, indent=2) + "\n"
    if args.write:
        folder.mkdir(parents=True, exist_ok=True)
        first = not read_plans(folder, pending=True) and cell is None
        (folder / ("plan.json" if first else plan_name(args.hardware, cell))).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
