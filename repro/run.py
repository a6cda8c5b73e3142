"""run(cfg, run_dir): one training run from a resolved config. No Hydra here, so tests and
scripts call it directly. A run directory that holds a checkpoint is resumed; nothing is written
before every check has passed."""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from repro import checkpoint, distributed, rundir
from repro.analysis.probe import attach_probe
from repro.data import load_data
from repro.errors import ConfigError, DataError
from repro.logger import MESSAGES, MetricsLog, run_messages, start_wandb
from repro.models import build_model
from repro.plot import plot_run
from repro.preemption import StopOnSignals
from repro.provenance import provenance
from repro.results import run_status, sha256_file
from repro.schedules import DropSchedule
from repro.trainer import Interrupted, Trainer
from repro.validate import validate


def check_loaded(cfg, data) -> None:
    """The loaded data agrees with the config: image geometry, class count, a whole batch."""
    c, h, w = data.geometry
    if (c, h, w) != (cfg.data.in_chans, cfg.data.img_size, cfg.data.img_size):
        raise DataError(f"{cfg.data.name} images are {c}x{h}x{w} but the config says data.in_chans="
                        f"{cfg.data.in_chans}, data.img_size={cfg.data.img_size}; fix those keys")
    if data.num_classes != cfg.data.num_classes:
        listed = f" (data.class_list={cfg.data.class_list})" if cfg.data.get("class_list") else ""
        raise ConfigError(f"data.num_classes={cfg.data.num_classes} but {cfg.data.name}{listed} has "
                          f"{data.num_classes} classes; set data.num_classes={data.num_classes}")
    n = len(data.train_y)
    if cfg.train.batch_size > n:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} exceeds the {n} training images "
                          f"(data.train_subset={cfg.data.train_subset}); use train.batch_size={n} or "
                          "less, or more training data")


def seeded_model(cfg, data):
    """`cfg`'s model for `data`, initialized from `cfg.seed` (the same weights on every call)."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model, num_classes=data.num_classes, in_chans=cfg.data.in_chans,
                       img_size=cfg.data.img_size, **DropSchedule.max_rates(cfg.drop))


def prepare(cfg, device: torch.device | None = None):
    """The data, the seeded model and the device of `cfg`: what every entry point builds first."""
    data = load_data(cfg.data)
    check_loaded(cfg, data)
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


def check_split(cfg, world) -> None:
    per_rank = cfg.train.batch_size / (world.size * cfg.train.accum_steps)
    if per_rank != int(per_rank):
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} does not split across "
                          f"{world.size} processes x train.accum_steps={cfg.train.accum_steps}; "
                          "use a multiple of their product")


def resume_state(cfg, run_dir: Path) -> dict | None:
    """The checkpoint to resume from, None to start afresh; refused if it holds another config."""
    if not cfg.train.resume:
        return None
    state = checkpoint.load(run_dir / "checkpoint.pt")
    if state is not None and state["config_hash"] != checkpoint.config_hash(cfg):
        raise ConfigError(f"{run_dir} holds a run of a different config; choose another "
                          "hydra.run.dir, or set train.resume=false to start it over")
    return state


STALE = ("COMPLETE", "summary.json", "checkpoint.pt", "checkpoint.prev.pt", ".run_id")


def open_run_dir(cfg, run_dir: Path, record: dict[str, str]) -> None:
    """Make the accepted run's directory, with its config and the launcher's `record`; a fresh
    start (train.resume=false) first drops the old run's marker, checkpoints and W&B id."""
    rundir.make(run_dir)
    rundir.warn_if_committed(run_dir)
    if not cfg.train.resume:
        for name in STALE:
            (run_dir / name).unlink(missing_ok=True)
    for name, text in {**record, "config.yaml": OmegaConf.to_yaml(cfg, resolve=True)}.items():
        (run_dir / name).parent.mkdir(exist_ok=True)
        (run_dir / name).write_text(text)


def run(cfg, run_dir, record: dict[str, str] | None = None) -> dict:
    """Train `cfg` in `run_dir`; return the final metrics (also written to summary.json).

    Every check comes first: a refused run (a bad config, data that disagrees with it, a
    directory holding another run or no readable checkpoint) writes nothing. A finished run is
    not trained again; an interrupted one resumes from its checkpoint. `record` (file name ->
    text) is the launcher's own record of the launch (Hydra's .hydra/). Under torchrun every rank
    calls this; rank 0's directory is used and only rank 0 writes."""
    validate(cfg)
    world, device = distributed.setup(str(cfg.device))
    check_split(cfg, world)
    run_dir = Path(world.from_main(str(run_dir)))
    if cfg.train.resume and (summary := finished(run_dir, cfg)) is not None:
        MESSAGES.info(f"{run_dir} already finished; nothing to do")
        return summary
    state = resume_state(cfg, run_dir)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    model, data, device = prepare(cfg, device)
    if world.main:
        open_run_dir(cfg, run_dir, record or {})
    with run_messages(run_dir / "train.log" if world.main else None):
        return train(cfg, run_dir, world, state, model, data, device)


def metrics_log(cfg, run_dir: Path, world, device, batched: int = 0) -> MetricsLog:
    """Rank 0's provenance, W&B run and metrics.jsonl; other ranks record nothing. A seed trained
    in a batch of `batched` (repro.run_batched) says so in its provenance, and its W&B run is one
    of several open in the process."""
    if not world.main:
        return MetricsLog(None)
    write_json({**provenance(device), "world_size": world.size, **({"batched": batched} if batched else {})},
               run_dir / "provenance.json")
    wandb_run = start_wandb(cfg.logger, OmegaConf.to_container(cfg, resolve=True), run_dir,
                            run_id(run_dir), [cfg.model.name, cfg.drop.kind, cfg.drop.mode],
                            reinit="create_new" if batched else "finish_previous")
    return MetricsLog(run_dir / "metrics.jsonl", wandb_run)


def train(cfg, run_dir: Path, world, state, model, data, device) -> dict:
    """The accepted run: trained from `state` (None: from the start), then summarized."""
    MESSAGES.info(f"run directory: {run_dir}")
    log = metrics_log(cfg, run_dir, world, device)
    lock = run_dir / ".lock"                      # tells the results collector a run is live
    if world.main:
        write_json({"pid": os.getpid(), "host": socket.gethostname()}, lock)
    trainer = Trainer(cfg, model, data, device, log, run_dir / "checkpoint.pt", world)
    if cfg.analysis.mode != "off" and world.main:     # the probe needs no other rank
        trainer.probe = attach_probe(cfg.analysis, trainer, run_dir)
    if state is not None:
        trainer.load_state_dict(state)
        MESSAGES.info(f"resuming at step {trainer.step} of {trainer.total_steps}")
    else:
        log.resume_at(0)
    started = time.perf_counter()
    try:
        with StopOnSignals(cfg.train.stop_signals) as stop:
            trainer.stop_requested = stop
            # trained to the end but killed before the summary: the last evaluation again
            final = trainer.fit() if trainer.step < trainer.total_steps else trainer.evaluate()
    except Interrupted as note:
        MESSAGES.info(f"stopped: {note}")
        stop.forward()              # e.g. submitit's handler requeues; `finally` still runs
        return {"interrupted": str(note), "steps": trainer.step}
    finally:
        log.close()
        if world.main:
            lock.unlink(missing_ok=True)
    return summarize(cfg, run_dir, trainer, final, time.perf_counter() - started)


def summarize(cfg, run_dir: Path, trainer, final: dict, seconds: float) -> dict:
    """The finished run's summary; rank 0 writes it with the plot and the COMPLETE marker."""
    summary = {**final, "best_test_acc": trainer.best_test_acc, "steps": trainer.step,
               "wall_s_this_launch": seconds}
    if trainer.world.main:
        write_json(summary, run_dir / "summary.json")
        plot_run(run_dir, trainer.schedule.rates)
        write_json({"summary": summary, "config_hash": checkpoint.config_hash(cfg),
                    "metrics_sha256": sha256_file(run_dir / "metrics.jsonl")}, run_dir / "COMPLETE")
        MESSAGES.info(f"test accuracy {summary['test_acc']:.4f}, full-model train loss "
                      f"{summary['train_full_loss']:.4f}; metrics.jsonl, checkpoint.pt, plot.png, "
                      f"summary.json in {run_dir}")
    return summary
