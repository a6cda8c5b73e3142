"""Launch an experiment's grid (conf/experiment/NAME.yaml, `hydra.sweeper.params`).

    python scripts/sweep.py NAME[,NAME...] [--launcher local|parallel|slurm] [--jobs N] [--gpus]
                                           [--batched K] [--plan] [--dry-run] [--no-record] [key=a,b ...]

Several names queue their grids one after another into the same parallel slots. --plan runs
what results/NAME/plan.json asks for instead (repro.report.plan), seed by seed. An experiment whose
record has arms (repro.report.experiments: grid points without the seed) runs each arm at each
seed of its sweeper's seed axis; the other axes it inherits from the config it builds on do not
apply (its config fixes those settings), and key=values for a key the arms set keeps the arms that
set it to one of those values. --batched K trains up to K seeds of one arm as one seed-batched
process (repro.train_batched; its own hardware kind, "<kind> (batched)").

Every grid point gets a deterministic directory, multirun/NAME/<k1=v1,k2=v2>, so re-running a
sweep skips finished runs (COMPLETE marker, or already in results/NAME on this hardware kind, from
any machine) and resumes interrupted ones from their checkpoints.
local: one run after another. parallel: N processes at a time, each pinned to one core
(`taskset`, with threads=1) or, with --gpus, to one GPU (CUDA_VISIBLE_DEVICES; with more jobs
than GPUs, slot k takes GPU k mod #GPUs: small models share a GPU well). slurm: Hydra's submitit
launcher (conf/hydra/launcher/slurm.yaml), same directories.

Each run that ends cleanly is added at once to the experiment's committed tables in results/NAME
(repro.report.ledger), its table and figures rebuilt: commit them as they come, and a sweep stopped
halfway has lost nothing finished.
"""
from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from repro import paths
from repro.compose import compose_config
from repro.errors import ConfigError, one_line
from repro.paths import MULTIRUN, ROOT, run_dir
from repro.report import drift, launch
from repro.report.experiments import EXPERIMENTS
from repro.report.launch import status


def grid(name: str, extra: list[str]) -> list[list[str]]:
    """The override lists of every grid point, keys sorted as Hydra's override_dirname sorts."""
    path = ROOT / "conf" / "experiment" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no experiment {name!r}; choose one of {known}")
    sweeper = compose_config([f"experiment={name}"], hydra_node=True).hydra.sweeper
    params = dict(sweeper.get("params") or {})     # the experiment's own or one it builds on
    arms = [arm.split(",") for arm in EXPERIMENTS[name].arms] if name in EXPERIMENTS else []
    if arms:                                       # its arms at its seeds
        params = {"seed": params["seed"]}
    else:
        arms = [[]]                                # its grid alone
    fixed = []
    for item in extra:
        key, _, values = item.partition("=")
        if any(paths.key(o) == key for arm in arms for o in arm):   # the arms that set key to these values
            chosen = {f"{key}={v}" for v in sweep_values(item) or [values]}
            arms = [arm for arm in arms if chosen & set(arm)]
        elif key in params or sweep_values(item) is not None:   # the grid's own axis restricted, or a new one
            params[key] = values
        else:
            fixed.append(item)
    # A seed's arms (the drop keys) run together, one seed and cell after another, so that every
    # pair is trained on one machine with one numerics kind and completes together.
    keys = sorted(params, key=lambda k: (k != "seed", k.startswith("drop"), k))
    choices = [sweep_values(f"{k}={params[k]}") or [str(params[k])] for k in keys]
    return [sorted([*(f"{k}={v}" for k, v in zip(keys, combo)), *arm]) + fixed
            for combo in itertools.product(*choices) for arm in arms]


def sweep_values(override: str) -> list[str] | None:
    """The values of a sweep override as Hydra's multirun reads them (`a,b`, `range(0,3)`,
    `choice(a,b)`), or None for a single value (a list `[2,2,6,2]` is one value)."""
    parsed = OverridesParser.create().parse_override(override)
    if not parsed.is_sweep_override():
        return None
    if not parsed.is_discrete_sweep():
        raise ConfigError(f"{override}: a sweep needs a list of values (a,b or range(...))")
    return list(parsed.sweep_string_iterator())


def slurm_command(name: str, overrides: list[str]) -> list[str]:
    """Hydra multirun through submitit, into the same per-point directories as local runs."""
    return [sys.executable, "-m", "repro.train", "-m", f"experiment={name}", "hydra/launcher=slurm",
            f"hydra.sweep.dir={MULTIRUN / name}", "hydra.sweep.subdir=${hydra.job.override_dirname}",
            "hydra.job.config.override_dirname.exclude_keys=[experiment,hydra/launcher]", *overrides]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", help="an experiment, or several comma-separated")
    parser.add_argument("--launcher", choices=("local", "parallel", "slurm"), default="parallel")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="parallel processes")
    parser.add_argument("--gpus", action="store_true",
                        help="pin parallel jobs to GPUs (round robin), not cores")
    parser.add_argument("--batched", type=int, default=0, metavar="K",
                        help="train up to K seeds of one arm in one seed-batched process")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, start none")
    parser.add_argument("--plan", action="store_true",
                        help="the seeds and methods of results/NAME/plan.json instead of the grid")
    parser.add_argument("--no-record", action="store_true",
                        help="leave results/NAME alone (default: add each run to it as it finishes)")
    parser.add_argument("overrides", nargs="*",
                        help="fixed key=value, key=a,b to add a grid axis; a grid key restricts its axis")
    args = parser.parse_intermixed_args()
    names = args.names.split(",")
    gpus = launch.visible_gpus() if args.gpus else None
    with one_line(FileNotFoundError, HydraException):      # one line, exit status 2
        if args.gpus and not gpus:
            raise ConfigError("--gpus but no GPU is visible; leave out --gpus to run on the CPU cores")
        armed = [n for n in names if n in EXPERIMENTS and EXPERIMENTS[n].arms]
        if args.launcher == "slurm" and (args.batched or armed):
            raise ConfigError(f"--launcher slurm sweeps Hydra's product grid one run per job, not seed "
                              f"batches nor the arms of {armed}; use --launcher parallel")
        points = [(name, overrides) for name in names
                  for overrides in (launch.planned(name) if args.plan else grid(name, args.overrides))]
    hardware = launch.hardware_here(gpus, bool(args.batched))
    done = {name: launch.recorded(name, hardware) for name in names}
    todo = []
    for name, overrides in points:
        state = status(run_dir(name, overrides), done[name])
        label = f"{name} " if len(names) > 1 else ""
        print(f"[{state:6s}] {label}{' '.join(overrides)}")
        if state != "done":
            todo.append((name, overrides))
    runs, batches = len(todo), ""
    if args.batched:
        todo = launch.batched(todo, args.batched)
        batches = f" as {len(todo)} seed-batched processes"
        for name, overrides in todo:
            print(f"[batch ] {f'{name} ' if len(names) > 1 else ''}{' '.join(overrides)}")
    print(f"{len(points)} runs, {len(points) - runs} finished, {runs} to run{batches}")
    if args.dry_run or not todo:
        return
    if args.launcher == "slurm":
        sys.exit(max(subprocess.call(slurm_command(name, args.overrides), cwd=ROOT) for name in names))
    drift.check_or_exit(hardware, "cuda" if gpus else "cpu")   # before any run is added
    width = 1 if args.launcher == "local" else args.jobs
    failures = launch.launch_parallel(todo, width, gpus, None if args.no_record else launch.record)
    print(f"{len(todo) - failures} {'processes' if args.batched else 'runs'} ended cleanly, {failures} "
          "failed (see the logs folder)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
