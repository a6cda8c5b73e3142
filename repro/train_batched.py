"""Seed-batched training from the command line: several seeds of one config in one process, as
one batched model (repro.loop.run_batched), each seed's run where the sweep puts it.

    python -m repro.train_batched experiment=NAME [key=value ...] seeds=3,4,5,6 [threads=N] [device=D]
                                  [hydra.run.dir=PARENT]

Seed k's run directory is `repro.paths.run_dir(NAME, [key=value ..., seed=k], PARENT)`: PARENT
(hydra.run.dir, as for any launch; default multirun/NAME) / the overrides that shape the result
and seed=k, sorted, comma-joined, e.g. multirun/early_regime/drop=none,seed=3 -- the directory
scripts/sweep.py and scripts/plan_queue.py give that grid point, so they count it as done once it
finishes, and a relaunch resumes it. NAME is the config's `name` (the experiment's); launch
settings (repro.paths.LAUNCH_KEYS: experiment=, threads=, device=, logger=, data.workers=,
hydra.*, ...) stay out of the directory names, and a folder named by every override, as before
they did, is still found and resumed. Refusals (an option batching does not support, a directory
holding another run) print one line, `error: ...`, and exit with status 2 before anything is
written; the exit statuses are those of python -m repro.train.
"""
from __future__ import annotations

import argparse
import logging
import sys

from hydra.errors import HydraException

from repro.compose import compose_config
from repro.errors import ConfigError, one_line
from repro.loop.run_batched import run_batched
from repro.paths import run_dir


def split_seeds(args: list[str]) -> tuple[list[int], list[str]]:
    """The seeds of `seeds=a,b,...` (or `[a,b,...]`) and the other overrides."""
    given = [a for a in args if a.startswith("seeds=")]
    overrides = [a for a in args if not a.startswith("seeds=")]
    if any(a.lstrip("+~").startswith("seed=") for a in overrides):
        raise ConfigError("seed=...: give the batch's seeds as seeds=a,b,... (e.g. seeds=0,1,2,3)")
    if len(given) != 1:
        raise ConfigError("seeds=a,b,... is required once: the seeds to train together, e.g. seeds=0,1,2,3")
    text = given[0].removeprefix("seeds=").strip("[]")
    try:
        return [int(s) for s in text.split(",")], overrides
    except ValueError:
        raise ConfigError(f"{given[0]}: the seeds must be integers, e.g. seeds=0,1,2,3") from None


def seed_run_dirs(name: str, overrides: list[str], seeds: list[int]) -> list:
    """Seed k's directory under hydra.run.dir (if given) for each of `seeds`."""
    parent = next((o.partition("=")[2].strip("'\"") for o in overrides if o.startswith("hydra.run.dir=")),
                  None)
    return [run_dir(name, [*overrides, f"seed={seed}"], parent) for seed in seeds]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, and seeds=a,b,...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    with one_line(HydraException):
        seeds, overrides = split_seeds(args.overrides)
        cfg = compose_config([o for o in overrides if not o.startswith("hydra.")])
        summaries = run_batched(cfg, seeds, seed_run_dirs(cfg.name, overrides, seeds))
    if summaries[0].get("exit_status"):
        sys.exit(summaries[0]["exit_status"])
    return summaries


if __name__ == "__main__":
    main()
