"""The GPU check's regime section (scripts/gpu_check.py): runs per GPU-minute for the early regime's
config (conf/experiment/early_regime.yaml, its default drop: early dropout), side by side: N
single-run processes at once (`python -m repro.train`, as scripts/sweep.py --gpus starts them) against
one seed-batched process of K seeds (repro.loop.run_batched) for each K. Each side gets a time box; where
its runs do not all finish inside it, the rate is projected from the progress its runs logged
(start-up measured, then the steady rate of the last part of the box). Run folders go to a
temporary folder and are deleted; processes are ended by pid.

    python scripts/gpu_check_regime.py batched RUNS_DIR SEEDS [overrides...]   # one batched process
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from gpu_check import ROOT, record

from repro.compose import compose_config
from repro.report.drift import TINY
from repro.report.launch import pinned, visible_gpus

EXPERIMENT = "early_regime"


def progress(folder: Path, epochs: int) -> float:
    """The fraction of its epochs a run has logged (its last train event), 1 once complete."""
    if (folder / "COMPLETE").is_file():
        return 1.0
    last = 0.0
    if (folder / "metrics.jsonl").is_file():
        for line in (folder / "metrics.jsonl").read_text().splitlines():
            event = json.loads(line) if line.endswith("}") else {}
            if event.get("event") == "train":
                last = event["epoch"]
    return min(last / epochs, 1.0)


def end(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM to each process this section started (by pid), SIGKILL to what is left after `grace`."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def side(cmds: list[list[str]], folders: list[Path], epochs: int, box: float, gpus, logs: Path) -> dict:
    """Start `cmds` at once (one GPU, or one core each), follow their runs' progress every 0.5 s for
    up to `box` seconds, end what is left; the finished runs and the runs per GPU-minute."""
    start, procs, samples = time.monotonic(), [], []
    for slot, cmd in enumerate(cmds):
        cmd, env = pinned(cmd, slot, gpus)
        with open(logs / f"{folders[0].parent.name}-{slot}.log", "w") as log:
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    while time.monotonic() - start < box and any(p.poll() is None for p in procs):
        time.sleep(0.5)
        samples.append((time.monotonic() - start, sum(progress(f, epochs) for f in folders)))
    end(procs)
    done = sum((f / "COMPLETE").is_file() for f in folders)
    return {"processes": len(cmds), "box_s": box, "exit_codes": [p.returncode for p in procs],
            **rate(samples, time.monotonic() - start, len(folders), done)}


def rate(samples: list[tuple[float, float]], wall: float, runs: int, done: int) -> dict:
    """Runs per GPU-minute from (seconds, runs' summed progress) samples: measured (`runs` in `wall`)
    when all are done, else projected: `wall` plus what is left at the steady rate of the second
    half of the samples since the first progress."""
    moving = [(t, p) for t, p in samples if p > 0]
    started = moving[0][0] if moving else None
    tail = [s for s in moving if s[0] >= (started + moving[-1][0]) / 2] if moving else []
    span = tail[-1][0] - tail[0][0] if tail else 0.0
    steady = (tail[-1][1] - tail[0][1]) / span if span > 0 and tail[-1][1] > tail[0][1] else None
    total = wall if done == runs else (wall + (runs - moving[-1][1]) / steady if steady else None)
    return {"runs": runs, "finished": done, "wall_s": wall, "first_progress_s": started,
            "progress_runs": moving[-1][1] if moving else 0.0, "steady_runs_per_s": steady,
            "measured": done == runs, "run_s": total,
            "runs_per_gpu_minute": 60 * runs / total if total else None}


def regime(out: Path, dry: bool) -> None:
    n, ks, boxes = (2, [2], (90, 60)) if dry else (8, [8, 32], (18, 15))
    tiny = [o for o in TINY if o.split("=")[0] not in ("threads", "train.epochs")] + ["train.epochs=1"]
    extra = list(dict.fromkeys(["logger=none", "train.progress=false", *(tiny if dry else [])]))
    epochs = compose_config([f"experiment={EXPERIMENT}", *extra]).train.epochs
    gpus = visible_gpus() if torch.cuda.is_available() else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp, sides = Path(tmp), {}
        folders = [tmp / "single" / f"seed_{s}" for s in range(n)]
        sides["single"] = side([[sys.executable, "-m", "repro.train", f"experiment={EXPERIMENT}", *extra,
                                 f"seed={s}", f"hydra.run.dir={f}"] for s, f in enumerate(folders)],
                               folders, epochs, boxes[0], gpus, tmp)
        for k in ks:
            folders = [tmp / f"batched_{k}" / f"seed_{s}" for s in range(k)]
            cmd = [sys.executable, __file__, "batched", str(folders[0].parent), ",".join(map(str, range(k))),
                   *extra]
            sides[f"batched_{k}"] = side([cmd], folders, epochs, boxes[1], gpus, tmp)
        for log in sorted(tmp.glob("*.log")):           # into check.log: why a side stopped
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-5:]))
    base = sides["single"]["runs_per_gpu_minute"]
    for s in sides.values():
        s["vs_single"] = s["runs_per_gpu_minute"] / base if base and s["runs_per_gpu_minute"] else None
    rows = [[name, s["processes"], s["runs"], s["finished"], s["wall_s"], s["first_progress_s"],
             s["runs_per_gpu_minute"], "measured" if s["measured"] else "projected", s["vs_single"]]
            for name, s in sides.items()]
    record(out, "regime", {"experiment": EXPERIMENT, "overrides": extra, "epochs": epochs, "sides": sides},
           ["side", "processes", "runs", "finished", "wall s", "first progress s", "runs / GPU-minute",
            "how", "vs single"], rows,
           (f"{EXPERIMENT} ({epochs} epochs, early dropout) with {' '.join(extra)}; single: {n} "
            "processes at once on the one device; batched_K: one process of K seeds. Projected: "
            "box time plus the runs' remaining progress at the steady rate of the box's second half.",))


def batched(runs_dir: str, seeds: str, *overrides: str) -> None:
    """One seed-batched process, as repro.train_batched but with its runs in `runs_dir`/seed_<k>."""
    from repro.loop.run_batched import run_batched
    cfg = compose_config([f"experiment={EXPERIMENT}", *overrides])
    seeds = [int(s) for s in seeds.split(",")]
    run_batched(cfg, seeds, [Path(runs_dir) / f"seed_{s}" for s in seeds])


if __name__ == "__main__" and sys.argv[1:2] == ["batched"]:
    batched(*sys.argv[2:])
