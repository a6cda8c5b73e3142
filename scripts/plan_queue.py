"""Run the pending runs of the committed experiment plans within a wall-time budget.

    python scripts/plan_queue.py --budget 1800 [--jobs N] [--gpus] [--batched K] [--only NAME,...]
                                 [--dry-run]

Pending: the runs that results/NAME's plan for this hardware kind asks for (plan.json or
plan-<kind>.json, repro.report.plan) that neither results/NAME holds on this kind nor multirun/ has
finished. Order: the experiments of --only in that
order (default: every plan, by name), each in its plan's seed-by-seed order, so that pairs
complete together. A run's time is estimated from the median wall time of its method on this
hardware kind in results/NAME/collection.json (else the experiment's median, else
--default-estimate). A job starts only when its estimate fits in what is left of the budget;
jobs still running when the budget ends get SIGTERM: they write a checkpoint and stop, and the
next window resumes them. Every run that finishes is recorded in results/NAME at once: commit it.

--batched K trains up to K pending seeds of one method as one seed-batched process
(repro.train_batched): the runs per GPU-minute that small models need. Batched runs are their
own hardware kind ("<kind> (batched)"), so they advance only a plan written for that kind.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from repro import paths
from repro.errors import ConfigError, one_line
from repro.report import drift, launch
from repro.report.plan import pending_note, read_plans


def plans(only: str | None, hardware: str) -> list[str]:
    """The experiments whose committed plan governs `hardware` (asked for by --only: all must)."""
    names = only.split(",") if only else sorted({p.parent.name for p in paths.RESULTS.glob("*/plan*.json")})
    kinds = {n: [p["hardware"] for p in read_plans(paths.RESULTS / n)] for n in names}
    missing = [n for n in names if not kinds[n]]
    if only and missing:                          # else a folder whose plan is pending its pilot
        notes = "".join(pending_note(paths.RESULTS / n) for n in missing)
        raise ConfigError(f"no committed plan for {missing}{notes}; write one with "
                          "python -m repro.plan NAME --write")
    wrong = [f"{n} ({', '.join(kinds[n])})" for n in names if hardware not in kinds[n]]
    if only and wrong:
        raise ConfigError(f"the plans of {wrong} govern other hardware than this machine's {hardware!r}: "
                          "runs here would not pair with theirs; write a plan for this kind "
                          "(python -m repro.plan NAME --hardware KIND [--pilot-hardware OTHER] --write)")
    return [n for n in names if hardware in kinds[n]]


def wall_times(name: str, hardware: str) -> dict[str, list[float]]:
    """Measured seconds per run of each drop option (`drop=...`) on `hardware`."""
    path = paths.RESULTS / name / "collection.json"
    entries = json.loads(path.read_text())["runs"] if path.is_file() else []
    times: dict[str, list[float]] = {}
    for e in entries:
        if e.get("hardware") == hardware and e.get("wall_s_last_launch"):
            drop = next((p for p in e["run"].split(",") if p.startswith("drop=")), "")
            times.setdefault(drop, []).append(e["wall_s_last_launch"])
    return times


def estimator(names: list[str], hardware: str, default: float):
    """estimate(name, overrides) -> seconds, from the runs already measured on `hardware`."""
    measured = {name: wall_times(name, hardware) for name in names}

    def estimate(name: str, overrides: list[str]) -> float:
        times = measured[name]
        own = times.get(next((o for o in overrides if o.startswith("drop=")), ""))
        pooled = [t for ts in times.values() for t in ts]
        return statistics.median(own or pooled) if (own or pooled) else default
    return estimate


def pending(names: list[str], hardware: str) -> list[tuple[str, list[str]]]:
    return [(name, overrides) for name in names
            for done in [launch.recorded(name, hardware)] for overrides in launch.planned(name, hardware)
            if launch.status(paths.run_dir(name, overrides), done) != "done"]


def schedule(todo: list, estimate, jobs: int, budget: float) -> list[tuple[str, list[str], float, float]]:
    """The runs that fit, as the launcher will start them: (name, overrides, start, end) in
    seconds from now, each in the slot that frees first; the first run that does not fit ends it."""
    free = [0.0] * jobs
    fits = []
    for name, overrides in todo:
        slot = min(range(jobs), key=free.__getitem__)
        end = free[slot] + estimate(name, overrides)
        if end > budget:
            break
        fits.append((name, overrides, free[slot], end))
        free[slot] = end
    return fits


def main():
    started = time.monotonic()                    # the budget counts from here, checks included
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, required=True, help="wall-time budget in seconds")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="parallel processes")
    parser.add_argument("--gpus", action="store_true", help="pin jobs to GPUs (round robin), not cores")
    parser.add_argument("--batched", type=int, default=0, metavar="K",
                        help="train up to K seeds of one method in one seed-batched process")
    parser.add_argument("--only", help="experiments, comma-separated, in priority order")
    parser.add_argument("--default-estimate", type=float, default=600.0,
                        help="seconds per run where nothing has been measured on this hardware")
    parser.add_argument("--dry-run", action="store_true", help="print the queue and its estimates")
    args = parser.parse_args()
    if args.budget <= 0 or args.jobs < 1:
        parser.error("--budget must be > 0 seconds and --jobs >= 1")
    gpus = launch.visible_gpus() if args.gpus else None
    with one_line():                                  # one line, exit status 2
        if args.gpus and not gpus:
            raise ConfigError("--gpus but no GPU is visible; leave out --gpus to run on the CPU cores")
        hardware = launch.hardware_here(gpus, bool(args.batched))
        names = plans(args.only, hardware)
    if not names:
        print(f"no committed plan governs {hardware!r}: write one from a pilot run on it "
              "(python -m repro.plan NAME --hardware KIND --write)")
        return
    todo = pending(names, hardware)
    estimate = estimator(names, hardware, args.default_estimate)
    if args.batched:
        todo = launch.batched(todo, args.batched)
    fits = schedule(todo, estimate, args.jobs, args.budget)
    for name, overrides, start, end in fits:
        print(f"{name} {' '.join(overrides)}: ~{end - start:.0f} s, done by ~{end:.0f} s")
    print(f"{len(todo)} pending runs on {hardware} in {', '.join(names)}; {len(fits)} fit in "
          f"{args.budget:.0f} s with {args.jobs} jobs (estimated), {len(todo) - len(fits)} wait for "
          "a later window")
    if args.dry_run or not fits:
        return
    drift.check_or_exit(hardware, "cuda" if gpus else "cpu")     # before any run joins a plan
    deadline = started + args.budget
    failures = launch.launch_parallel(todo, args.jobs, gpus, launch.record, deadline, estimate)
    print(f"stopped at the end of the queue or the budget; {failures} runs failed (see the logs folders)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
