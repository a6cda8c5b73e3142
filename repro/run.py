"""run(cfg, run_dir): one training run from a resolved config. No Hydra here, so tests and
scripts call it directly. A run directory that holds a checkpoint is resumed."""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from repro import checkpoint, distributed
from repro.analysis.probe import attach_probe
from repro.data import load_data
from repro.errors import ConfigError, DataError
from repro.logger import MetricsLog, start_wandb
from repro.models import build_model
from repro.plot import plot_run
from repro.preemption import StopOnSignals
from repro.provenance import provenance
from repro.results import run_status, sha256_file
from repro.trainer import Interrupted, Trainer
from repro.validate import validate


def max_rates(drop) -> dict:
    """Build with the schedule's maximum so that a rate starting at 0 can be switched on later."""
    return {"dropout": drop.rate if drop.kind == "dropout" else 0.0,
            "drop_path": drop.rate if drop.kind == "drop_path" else 0.0}


def check_geometry(cfg, data) -> None:
    _, c, h, w = data.train_x.shape
    if (c, h, w) != (cfg.data.in_chans, cfg.data.img_size, cfg.data.img_size):
        raise DataError(f"{cfg.data.name} images are {c}x{h}x{w} but the config says data.in_chans="
                        f"{cfg.data.in_chans}, data.img_size={cfg.data.img_size}; fix those keys")


def seeded_model(cfg, data):
    """`cfg`'s model for `data`, initialized from `cfg.seed` (the same weights on every call)."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model, num_classes=data.num_classes, in_chans=cfg.data.in_chans,
                       img_size=cfg.data.img_size, **max_rates(cfg.drop))


def prepare(cfg, device: torch.device | None = None):
    """The data, the seeded model and the device of `cfg`: what every entry point builds first."""
    data = load_data(cfg.data)
    check_geometry(cfg, data)
    return seeded_model(cfg, data), data, device or distributed.select_device(str(cfg.device))


def write_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def run_id(run_dir: Path) -> str:
    """A random id kept in the run directory, so a resumed run continues the same W&B run."""
    path = run_dir / ".run_id"
    if not path.is_file():
        path.write_text(secrets.token_hex(6))
    return path.read_text().strip()


def finished(run_dir: Path, cfg) -> dict | None:
    """The summary of a run completed in `run_dir` with this config (its marker verified)."""
    marker = run_dir / "COMPLETE"
    if not marker.is_file():
        return None
    done = json.loads(marker.read_text())
    if done["config_hash"] != checkpoint.config_hash(cfg):
        raise ConfigError(f"{run_dir} holds a finished run of a different config; choose another "
                          "hydra.run.dir")
    if run_status(run_dir) == "tampered":
        raise DataError(f"{run_dir}/metrics.jsonl changed after the run finished (checksum in "
                        "COMPLETE differs): restore it, or delete the directory to run again")
    return done["summary"]


def run(cfg, run_dir) -> dict:
    """Train `cfg` in `run_dir`; return the final metrics (also written to summary.json).

    A finished run is not trained again; an interrupted one resumes from its checkpoint. Under
    torchrun every rank calls this; rank 0's directory is used and only rank 0 writes."""
    validate(cfg)
    world, device = distributed.setup(str(cfg.device))
    per_rank = cfg.train.batch_size / (world.size * cfg.train.accum_steps)
    if per_rank != int(per_rank):
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} does not split across "
                          f"{world.size} processes x train.accum_steps={cfg.train.accum_steps}; "
                          "use a multiple of their product")
    run_dir = Path(world.from_main(str(run_dir)))
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.train.resume and (summary := finished(run_dir, cfg)) is not None:
        print(f"{run_dir} already finished; nothing to do")
        return summary
    if not cfg.train.resume and world.main:       # starting over: no stale marker or checkpoint
        for name in ("COMPLETE", "summary.json", "checkpoint.pt", "checkpoint.prev.pt"):
            (run_dir / name).unlink(missing_ok=True)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    ckpt_path = run_dir / "checkpoint.pt"
    state = checkpoint.load(ckpt_path) if cfg.train.resume else None
    if state is not None and state["config_hash"] != checkpoint.config_hash(cfg):
        raise ConfigError(f"{run_dir} holds a run of a different config; choose another "
                          "hydra.run.dir, or set train.resume=false to start it over")
    model, data, device = prepare(cfg, device)
    lock = run_dir / ".lock"                      # tells the results collector a run is live
    if world.main:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        write_json({**provenance(device), "world_size": world.size}, run_dir / "provenance.json")
        wandb_run = start_wandb(cfg.logger, OmegaConf.to_container(cfg, resolve=True), run_dir,
                                run_id(run_dir), [cfg.model.name, cfg.drop.kind, cfg.drop.mode])
        log = MetricsLog(run_dir / "metrics.jsonl", wandb_run)
        write_json({"pid": os.getpid(), "host": socket.gethostname()}, lock)
    else:
        log = MetricsLog(None)
    trainer = Trainer(cfg, model, data, device, log, ckpt_path, world)
    if cfg.analysis.mode != "off" and world.main:     # the probe needs no other rank
        trainer.probe = attach_probe(cfg.analysis, trainer, run_dir)
    if state is not None:
        trainer.load_state_dict(state)
        print(f"resuming {run_dir} at step {trainer.step} of {trainer.total_steps}")
    else:
        log.truncate(0)
    started = time.perf_counter()
    try:
        with StopOnSignals(cfg.train.stop_signals) as stop:
            trainer.stop_requested = stop
            final = trainer.fit()
    except Interrupted as note:
        print(f"stopped: {note}")
        stop.forward()              # e.g. submitit's handler requeues; `finally` still runs
        return {"interrupted": str(note), "steps": trainer.step}
    finally:
        log.close()
        if world.main:
            lock.unlink(missing_ok=True)
    summary = {**final, "best_test_acc": trainer.best_test_acc, "steps": trainer.step,
               "wall_s_this_launch": time.perf_counter() - started}
    if world.main:
        write_json(summary, run_dir / "summary.json")
        plot_run(run_dir)
        write_json({"summary": summary, "config_hash": checkpoint.config_hash(cfg),
                    "metrics_sha256": sha256_file(run_dir / "metrics.jsonl")}, run_dir / "COMPLETE")
    return summary
