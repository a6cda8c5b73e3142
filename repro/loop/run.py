"""run(cfg, run_dir): one training run from a resolved config. No Hydra here, so tests and
scripts call it directly. A run directory that holds a checkpoint is resumed; nothing is written
before every check has passed."""
from __future__ import annotations

import errno
import time
from contextlib import nullcontext

import torch
from omegaconf import OmegaConf

from repro import distributed
from repro.analysis.probe import attach_probe
from repro.errors import ConfigError
from repro.loop.assemble import build_trainer, prepare
from repro.loop.validate import validate
from repro.preemption import Interrupted, StopOnSignals
from repro.records import checkpoint
from repro.records.logger import MESSAGES, MetricsLog, run_messages, start_wandb
from repro.records.plot import plot_run
from repro.records.provenance import provenance, record_uncommitted
from repro.records.rundir import RunDir


def finished(run_dir: RunDir, cfg) -> dict | None:
    """The summary of a run completed in `run_dir` with this config (its marker verified; a marker
    written while data.workers was hashed counts too: checkpoint.matches)."""
    stored = run_dir.read_json("COMPLETE")["config_hash"] if run_dir.marker.is_file() else None
    same = stored is not None and checkpoint.matches(stored, cfg, run_dir.config)
    return run_dir.finished(stored if same else checkpoint.config_hash(cfg))


def check_split(cfg, world) -> None:
    per_rank = cfg.train.batch_size / (world.size * cfg.train.accum_steps)
    if per_rank != int(per_rank):
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} does not split across "
                          f"{world.size} processes x train.accum_steps={cfg.train.accum_steps}; "
                          "use a multiple of their product")


def resume_state(cfg, run_dir: RunDir) -> dict | None:
    """The checkpoint to resume from, None to start afresh; refused if it holds another config."""
    if not cfg.train.resume:
        return None
    state = checkpoint.load(run_dir.checkpoint)
    if state is not None and not checkpoint.matches(state["config_hash"], cfg, run_dir.config):
        raise ConfigError(f"{run_dir} holds a run of a different config; choose another "
                          "hydra.run.dir, or set train.resume=false to start it over")
    return state


def open_run_dir(cfg, run_dir: RunDir, record: dict[str, str]) -> None:
    """Make the accepted run's directory with its resolved config and the launcher's `record`;
    a fresh start (train.resume=false) first drops the old run's marker and checkpoints."""
    run_dir.open({**record, "config.yaml": OmegaConf.to_yaml(cfg, resolve=True)}, fresh=not cfg.train.resume)


def run(cfg, run_dir, record: dict[str, str] | None = None) -> dict:
    """Train `cfg` in `run_dir`; return the final metrics (also written to summary.json).

    Every check comes first: a refused run (a bad config, data that disagrees with it, a
    directory held by a live launch (RunDir.live), holding another run or no readable checkpoint)
    writes nothing. A finished run is not trained again; an interrupted one resumes from its
    checkpoint. `record` (file name -> text) is the launcher's own record of the launch (Hydra's
    .hydra/). Under torchrun every rank calls this; rank 0's directory is used and only rank 0
    writes (and holds its lock)."""
    validate(cfg)
    world, device = distributed.setup(str(cfg.device))
    check_split(cfg, world)
    run_dir = RunDir(world.from_main(str(run_dir)))
    with run_dir.live() if world.main else nullcontext():      # this launch's alone, or refused
        return run_held(cfg, run_dir, world, device, record or {})


def run_held(cfg, run_dir: RunDir, world, device, record: dict[str, str]) -> dict:
    """`run` once rank 0 holds the directory's lock, before any file there is read or written."""
    if cfg.train.resume and (summary := finished(run_dir, cfg)) is not None:
        MESSAGES.info(f"{run_dir} already finished; nothing to do")
        return summary
    state = resume_state(cfg, run_dir)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    model, data, device = prepare(cfg, device)
    if world.main:
        open_run_dir(cfg, run_dir, record)
    with run_messages(run_dir / "train.log" if world.main else None):
        return train(cfg, run_dir, world, state, model, data, device)


def metrics_log(cfg, run_dir: RunDir, world, device, batched: int = 0) -> MetricsLog:
    """Rank 0's provenance, W&B run and metrics.jsonl; other ranks record nothing. A seed trained
    in a batch of `batched` (repro.loop.run_batched) says so in its provenance, and its W&B run is one
    of several open in the process."""
    if not world.main:
        return MetricsLog(None)
    run_dir.write_json("provenance.json", {**provenance(device), **record_uncommitted(run_dir.path),
                                           "world_size": world.size,
                                           **({"batched": batched} if batched else {})})
    wandb_run = start_wandb(cfg.logger, OmegaConf.to_container(cfg, resolve=True), run_dir.path,
                            run_dir.run_id(), [cfg.model.name, cfg.drop.kind, cfg.drop.mode],
                            reinit="create_new" if batched else "finish_previous")
    return MetricsLog(run_dir.metrics, wandb_run)


def train(cfg, run_dir: RunDir, world, state, model, data, device) -> dict:
    """The accepted run: trained from `state` (None: from the start), then summarized."""
    MESSAGES.info(f"run directory: {run_dir}")
    log = metrics_log(cfg, run_dir, world, device)
    trainer = build_trainer(cfg, model, data, device, log, run_dir.checkpoint, world)
    if cfg.analysis.mode != "off" and world.main:     # the probe needs no other rank
        trainer.probe = attach_probe(cfg.analysis, trainer, run_dir.snapshots)
    if state is not None:
        trainer.load_state_dict(state)
        MESSAGES.info(f"resuming at step {trainer.step} of {trainer.total_steps}")
    else:
        log.resume_at(0)
    started = time.perf_counter()
    final, stop = fit(trainer, cfg.train.stop_signals, [log])
    if stop is not None:
        return stopped(stop, trainer)
    final = {**final, "best_test_acc": trainer.events.best_test_acc, "steps": trainer.step}
    return summarize(cfg, run_dir, final, trainer.schedule.rates, time.perf_counter() - started,
                     trainer.world.main)


# What a full disk, a quota or a lost permission raise as a run writes its files.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO)


def fit(trainer, signals, logs: list):
    """(the last evaluation, None) once `trainer` is trained to its end (trained to the end but
    killed before the summary: its last evaluation again), or (None, the Interrupted stop) once
    stopped by one of `signals` (or Ctrl-C) with a checkpoint written; `logs` are closed however it
    ends. A file of the run that cannot be written stops it with checkpoint.WriteFailed."""
    try:
        with StopOnSignals(signals) as stop:
            trainer.stop_requested = stop
            return (trainer.fit() if trainer.step < trainer.total_steps else trainer.evaluate()), None
    except Interrupted as note:
        MESSAGES.info(f"stopped: {note}")
        stop.forward()              # e.g. submitit's handler requeues; `finally` still runs
        return None, note
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        path = err.filename or logs[0].path or trainer.checkpoint_paths[0]     # metrics.jsonl's has none
        raise checkpoint.WriteFailed(path, err, trainer.saved_at) from None
    finally:
        for log in logs:
            log.close()


def stopped(stop: Interrupted, trainer) -> dict:
    """What a stopped launch returns (each seed of a batch alike); exit_status: the command's."""
    return {"interrupted": str(stop), "steps": trainer.step, "exit_status": stop.exit_status}


def summarize(cfg, run_dir: RunDir, final: dict, rates, seconds: float, main: bool = True) -> dict:
    """The finished run's summary: its `final` metrics (best_test_acc and steps among them) and
    this launch's wall time; rank 0 (`main`) writes it with the plot (`rates`: the drop rate of
    every step) and the COMPLETE marker, then drops checkpoint.prev.pt: a finished run is not
    resumed, and checkpoint.pt (its final weights) stays."""
    summary = {**final, "wall_s_this_launch": seconds}
    if main:
        plot_run(run_dir, rates)
        run_dir.complete(summary, checkpoint.config_hash(cfg))
        checkpoint.previous(run_dir.checkpoint).unlink(missing_ok=True)
        MESSAGES.info(f"test accuracy {summary['test_acc']:.4f}, full-model train loss "
                      f"{summary['train_full_loss']:.4f}; metrics.jsonl, checkpoint.pt, plot.png, "
                      f"summary.json in {run_dir}")
    return summary
