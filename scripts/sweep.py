"""Launch an experiment's grid (conf/experiment/NAME.yaml, `hydra.sweeper.params`).

    python scripts/sweep.py NAME[,NAME...] [--launcher local|parallel|slurm] [--jobs N] [--gpus]
                                           [--plan] [--dry-run] [--no-record] [key=a,b ...]

Several names queue their grids one after another into the same parallel slots. --plan runs
what results/NAME/plan.json asks for instead (repro.plan), seed by seed.

Every grid point gets a deterministic directory, multirun/NAME/<k1=v1,k2=v2>, so re-running a
sweep skips finished runs (COMPLETE marker, or already in results/NAME on this hardware kind, from
any machine) and resumes interrupted ones from their checkpoints.
local: one run after another. parallel: N processes at a time, each pinned to one core
(`taskset`, with threads=1) or, with --gpus, to one GPU (CUDA_VISIBLE_DEVICES; with more jobs
than GPUs, slot k takes GPU k mod #GPUs: small models share a GPU well). slurm: Hydra's submitit
launcher (conf/hydra/launcher/slurm.yaml), same directories.

Each run that ends cleanly is added at once to the experiment's committed tables in results/NAME
(repro.ledger), its table and figures rebuilt: commit them as they come, and a sweep stopped
halfway has lost nothing finished.
"""
from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from repro.figures import FIGURES, build
from repro.ledger import LedgerConflict, collect
from repro.plan import read_plan
from repro.results import read_csv
from repro.train import compose_config

ROOT = Path(__file__).resolve().parents[1]
MULTIRUN = ROOT / "multirun"
RESULTS = ROOT / "results"


def grid(name: str, extra: list[str]) -> list[list[str]]:
    """The override lists of every grid point, keys sorted as Hydra's override_dirname sorts."""
    path = ROOT / "conf" / "experiment" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        sys.exit(f"error: no experiment {name!r}; choose one of {known}")
    sweeper = compose_config([f"experiment={name}"], hydra_node=True).hydra.sweeper
    params = dict(sweeper.get("params") or {})     # the experiment's own or one it builds on
    fixed = []
    for item in extra:
        key, _, values = item.partition("=")
        if "," in values or key in params:      # a new axis, or the grid's own axis restricted
            params[key] = values
        else:
            fixed.append(item)
    keys = sorted(params)
    choices = [str(params[k]).split(",") for k in keys]
    return [[f"{k}={v}" for k, v in zip(keys, combo)] + fixed for combo in itertools.product(*choices)]


def drop_configs() -> dict:
    """(drop.kind, drop.mode) -> the conf/drop option that gives it."""
    configs = {}
    for path in sorted((ROOT / "conf" / "drop").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        configs.setdefault(f"{cfg.kind}/{cfg.mode}", path.stem)
    return configs


def planned(name: str) -> list[list[str]]:
    """The grid points results/NAME/plan.json asks for, seed by seed (each seed's methods
    together, so that pairs complete together): method m runs seeds 0 .. plan[m] - 1."""
    plan = read_plan(RESULTS / name)
    if plan is None:
        sys.exit(f"error: results/{name}/plan.json does not exist; write one with "
                 f"python -m repro.plan {name} --write")
    drop = drop_configs()
    return [[f"drop={drop[method]}", f"seed={seed}"] for seed in range(max(plan["seeds"].values()))
            for method, n in plan["seeds"].items() if seed < n]


def recorded(name: str, hardware: str) -> set:
    """Run names results/NAME/runs.csv already holds on this hardware kind (from any machine)."""
    path = RESULTS / name / "runs.csv"
    return {r["run"] for r in read_csv(path) if r.get("hardware") == hardware} if path.is_file() else set()


def run_dir(name: str, overrides: list[str]) -> Path:
    return MULTIRUN / name / ",".join(sorted(overrides))


def status(path: Path, recorded_runs: set = frozenset()) -> str:
    if (path / "COMPLETE").is_file() or path.name in recorded_runs:
        return "done"
    return "resume" if (path / "checkpoint.pt").is_file() else "new"


def command(name: str, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "repro.train", f"experiment={name}", *overrides,
            f"hydra.run.dir='{run_dir(name, overrides)}'"]   # quoted: the name holds = and ,


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES's list, else every GPU torch sees."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return os.environ["CUDA_VISIBLE_DEVICES"].split(",")
    import torch
    return [str(i) for i in range(torch.cuda.device_count())]


def pinned(cmd: list[str], slot: int, gpus: list[str] | None) -> tuple[list[str], dict]:
    """The command and environment of a job in parallel slot `slot`: one of `gpus`, or one core."""
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        env.setdefault("OMP_NUM_THREADS", "1")      # the GPU computes; spare the cores for launches
        return cmd, env
    cmd = cmd + ["threads=1", "device=cpu"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", str(slot % os.cpu_count())] + cmd
    return cmd, env


def slurm_command(name: str, overrides: list[str]) -> list[str]:
    """Hydra multirun through submitit, into the same per-point directories as local runs."""
    return [sys.executable, "-m", "repro.train", "-m", f"experiment={name}", "hydra/launcher=slurm",
            f"hydra.sweep.dir={MULTIRUN / name}", "hydra.sweep.subdir=${hydra.job.override_dirname}",
            "hydra.job.config.override_dirname.exclude_keys=[experiment,hydra/launcher]", *overrides]


def record(name: str) -> None:
    """Add the experiment's newly finished runs to results/NAME and rebuild its table and figures
    (repro.ledger): a run is in the committed tables as soon as it ends, not when the sweep does."""
    out = RESULTS / name
    try:
        collect(name, MULTIRUN / name, None, out)
        if name in FIGURES:
            build(name, out)
    except LedgerConflict as e:
        print(f"error: not recorded: {e}", flush=True)


def launch_parallel(todo: list[tuple[str, list[str]]], width: int, gpus: list[str] | None,
                    on_done=None) -> int:
    """Run the (experiment, grid point) pairs `todo` `width` at a time, calling on_done(name)
    after each clean finish; return how many failed."""
    pending, running, failures = list(todo), {}, 0
    while pending or running:
        for slot in range(width):
            if slot not in running and pending:
                name, overrides = pending.pop(0)
                cmd, env = pinned(command(name, overrides), slot, gpus)
                log_dir = MULTIRUN / name / "logs"
                log_dir.mkdir(parents=True, exist_ok=True)
                log = open(log_dir / f"{run_dir(name, overrides).name}.log", "a")
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=ROOT)
                proc.experiment = name
                running[slot] = (proc, log)
        for slot, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                failures += proc.returncode != 0
                log.close()
                del running[slot]
                if proc.returncode == 0 and on_done:
                    on_done(proc.experiment)
        time.sleep(1)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", help="an experiment, or several comma-separated")
    parser.add_argument("--launcher", choices=("local", "parallel", "slurm"), default="parallel")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="parallel processes")
    parser.add_argument("--gpus", action="store_true",
                        help="pin parallel jobs to GPUs (round robin), not cores")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, start none")
    parser.add_argument("--plan", action="store_true",
                        help="the seeds and methods of results/NAME/plan.json instead of the grid")
    parser.add_argument("--no-record", action="store_true",
                        help="leave results/NAME alone (default: add each run to it as it finishes)")
    parser.add_argument("overrides", nargs="*",
                        help="fixed key=value, key=a,b to add a grid axis; a grid key restricts its axis")
    args = parser.parse_intermixed_args()
    names = args.names.split(",")
    gpus = visible_gpus() if args.gpus else None
    if args.gpus and not gpus:
        sys.exit("error: --gpus but no GPU is visible; leave out --gpus to run on the CPU cores")
    points = [(name, overrides) for name in names
              for overrides in (planned(name) if args.plan else grid(name, args.overrides))]
    hardware = torch.cuda.get_device_name(0) if gpus else "cpu"
    done = {name: recorded(name, hardware) for name in names}
    todo = []
    for name, overrides in points:
        state = status(run_dir(name, overrides), done[name])
        label = f"{name} " if len(names) > 1 else ""
        print(f"[{state:6s}] {label}{' '.join(overrides)}")
        if state != "done":
            todo.append((name, overrides))
    print(f"{len(points)} runs, {len(points) - len(todo)} finished, {len(todo)} to run")
    if args.dry_run or not todo:
        return
    if args.launcher == "slurm":
        sys.exit(max(subprocess.call(slurm_command(name, args.overrides), cwd=ROOT) for name in names))
    width = 1 if args.launcher == "local" else args.jobs
    failures = launch_parallel(todo, width, gpus, None if args.no_record else record)
    print(f"{len(todo) - failures} runs ended cleanly, {failures} failed (see the logs folder)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
