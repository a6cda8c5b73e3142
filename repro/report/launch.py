"""Running an experiment's grid points as local processes: where each run lives
(multirun/NAME/<sorted overrides>), whether it is done (its COMPLETE marker, or already in
results/NAME on this hardware kind, from any machine), the processes pinned to a core or a GPU
(an arm's seeds batched into one, if asked), and each finished run recorded in the committed
tables at once. Used by scripts/sweep.py (one experiment's grid or plan) and scripts/plan_queue.py
(the pending runs of every plan, time-boxed)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from repro import paths
from repro.records.provenance import hardware_kind, numerics
from repro.records.rundir import RunDir
from repro.records.tables import read_csv
from repro.report.experiments import EXPERIMENTS, build
from repro.report.ledger import LedgerConflict, collect
from repro.report.plan import pending_note, read_plans


def drop_configs() -> dict:
    """(drop.kind, drop.mode) -> the conf/drop option that gives it."""
    configs = {}
    for path in sorted((paths.CONF / "drop").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        configs.setdefault(f"{cfg.kind}/{cfg.mode}", path.stem)
    return configs


def planned(name: str, hardware: str | None = None) -> list[list[str]]:
    """The grid points results/NAME's plans for `hardware` (default: its first plan's kind) ask
    for, cell by cell, the cheapest plan (fewest runs) first so that a short window finishes whole
    cells, and seed by seed (each seed's arms together, so that pairs complete together): arm m
    (a method kind/mode, or a grid point such as drop.rate=0.1) runs seeds 0 .. plan[m] - 1."""
    first = next((p for p in read_plans(paths.RESULTS / name) if hardware in (None, p["hardware"])), None)
    if first is None:
        raise FileNotFoundError(f"results/{name} has no plan{f' for {hardware!r}' if hardware else ''}"
                                f"{pending_note(paths.RESULTS / name)}; write one with "
                                f"python -m repro.plan {name} --write")
    drop = drop_configs()
    points = []
    plans = [p for p in read_plans(paths.RESULTS / name) if p["hardware"] == first["hardware"]]
    for plan in sorted(plans, key=lambda p: sum(p["seeds"].values())):
        cell = [f"{k}={v}" for k, v in (plan.get("cell") or {}).items()]
        arm = {m: m.split(",") if "=" in m else [f"drop={drop[m]}"] for m in plan["seeds"]}
        points += [sorted([*cell, *arm[m], f"seed={seed}"]) for seed in range(max(plan["seeds"].values()))
                   for m, n in plan["seeds"].items() if seed < n]
    return points


def recorded(name: str, hardware: str) -> set:
    """Run names results/NAME/runs.csv already holds on this hardware kind (from any machine)."""
    path = paths.RESULTS / name / "runs.csv"
    return {r["run"] for r in read_csv(path) if r.get("hardware") == hardware} if path.is_file() else set()


def hardware_here(gpus: list[str] | None, batched: bool = False) -> str:
    """The hardware kind runs launched here are recorded under (repro.records.provenance.hardware_kind)."""
    import torch
    record = numerics(torch.device("cuda", 0) if gpus else torch.device("cpu"))
    return hardware_kind({**record, "batched": batched})


def status(path: Path, recorded_runs: set = frozenset()) -> str:
    """done (finished here, or recorded in the tables), resume (a checkpoint to continue) or new."""
    run_dir = RunDir(path)
    if run_dir.marker.is_file() or run_dir.path.name in recorded_runs:
        return "done"
    return "resume" if run_dir.checkpoint.is_file() else "new"


def command(name: str, overrides: list[str]) -> list[str]:
    """One run, or with `seeds=a,b,...` one seed-batched process (repro.train_batched), which
    puts each seed's run where run_dir puts that seed's grid point."""
    if any(o.startswith("seeds=") for o in overrides):
        return [sys.executable, "-m", "repro.train_batched", f"experiment={name}", *overrides]
    return [sys.executable, "-m", "repro.train", f"experiment={name}", *overrides,
            f"hydra.run.dir='{paths.run_dir(name, overrides)}'"]   # quoted: the name holds = and ,


def batched(todo: list[tuple[str, list[str]]], k: int) -> list[tuple[str, list[str]]]:
    """Runs (experiment, grid point) as seed-batched jobs: up to k seeds of one arm each, in the
    order the arm first appears, so that the first jobs complete the first pairs."""
    groups: dict[tuple, list[str]] = {}
    for name, overrides in todo:
        rest = tuple(o for o in overrides if not o.startswith("seed="))
        groups.setdefault((name, rest), []).extend(o[5:] for o in overrides if o.startswith("seed="))
    jobs = [(name, [*rest, f"seeds={','.join(seeds[i:i + k])}"])
            for (name, rest), seeds in groups.items() for i in range(0, len(seeds), k)]
    return sorted(jobs, key=lambda job: int(job[1][-1][6:].split(",")[0]))


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


def record(name: str) -> None:
    """Add the experiment's newly finished runs to results/NAME and rebuild its table and figures
    (repro.report.ledger): a run is in the committed tables as soon as it ends, not when the sweep does."""
    out = paths.RESULTS / name
    try:
        experiment = EXPERIMENTS.get(name)
        collect(name, paths.MULTIRUN / name, None, out, experiment and experiment.shared)
        if experiment:
            build(name, out)
    except LedgerConflict as e:
        print(f"error: not recorded: {e}", flush=True)


def launch_parallel(todo: list[tuple[str, list[str]]], width: int, gpus: list[str] | None,
                    on_done=None, deadline: float | None = None, estimate=lambda name, o: 0.0) -> int:
    """Run the (experiment, grid point) pairs `todo` `width` at a time, calling on_done(name)
    after each clean finish; return how many failed. With a `deadline` (time.monotonic()), a job
    starts only if its `estimate(name, overrides)` seconds fit before it, and jobs still running
    at the deadline are asked to stop (SIGTERM: they checkpoint and stop, resumable later)."""
    pending, running, failures = list(todo), {}, 0
    while pending or running:
        for slot in range(width):
            if slot in running or not pending:
                continue
            name, overrides = pending[0]
            if deadline is not None and time.monotonic() + estimate(name, overrides) > deadline:
                pending.clear()                          # what is left waits for the next window
                break
            pending.pop(0)
            cmd, env = pinned(command(name, overrides), slot, gpus)
            log_dir = paths.MULTIRUN / name / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            log = open(log_dir / f"{paths.run_dir(name, overrides).name}.log", "a")
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=paths.ROOT)
            proc.experiment = name
            running[slot] = (proc, log)
        if deadline is not None and time.monotonic() > deadline:
            for proc, _ in running.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        for slot, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                failures += proc.returncode != 0
                log.close()
                del running[slot]
                if proc.returncode == 0 and on_done:
                    on_done(proc.experiment)
        time.sleep(0.2)
    return failures
