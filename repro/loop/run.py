"""One run lifecycle for K >= 1 runs launched together (`run_all`): every check first, then resume,
train and summarize each run. `run(cfg, run_dir)` trains one run; repro.loop.run_batched launches
K seeds of one config as one batched model (repro.loop.seed_batch), each seed's config recording
the batch (`seed_batch`). No Hydra here, so tests and scripts call them directly. A run directory
that holds a checkpoint is resumed; nothing is written before every check has passed."""
from __future__ import annotations

import errno
import time
from contextlib import ExitStack

import torch
from omegaconf import OmegaConf

from repro import distributed
from repro.analysis.probe import attach_probe
from repro.errors import ConfigError
from repro.loop.assemble import build_trainer, prepare, seeded_model
from repro.loop.seed_batch import seed_batch_trainer
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


def check_launch(cfgs, run_dirs, world) -> None:
    """What a launch's configs cannot say alone: a batch that splits across the processes and
    micro-batches, and a seed batch (`seed_batch`) launched whole, in one process, each seed in a
    directory of its own."""
    cfg, batch = cfgs[0], cfgs[0].get("seed_batch")
    per_rank = cfg.train.batch_size / (world.size * cfg.train.accum_steps)
    if per_rank != int(per_rank):
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} does not split across "
                          f"{world.size} processes x train.accum_steps={cfg.train.accum_steps}; "
                          "use a multiple of their product")
    if batch is None:
        return
    if list(batch) != [c.seed for c in cfgs]:
        raise ConfigError(f"seed_batch={list(batch)}: a seed batch trains all its seeds at once; launch "
                          f"them with python -m repro.train_batched seeds={','.join(map(str, batch))}")
    if world.size > 1:
        raise ConfigError("seed-batched training runs in one process; launch it without torchrun")
    if len(run_dirs) != len(cfgs) or len(set(map(str, run_dirs))) != len(cfgs):
        raise ConfigError(f"{len(cfgs)} seeds need as many distinct run directories, got {list(run_dirs)}")


def resume_states(cfgs, run_dirs: list[RunDir]) -> list[dict | None]:
    """Each run's checkpoint to resume from, all at one step (None each: start afresh); a checkpoint
    of another config is refused. A seed batch stopped while it wrote its seeds' checkpoints
    leaves some a checkpoint ahead, which fall back to their previous one."""
    states = [resume_state(c, d) for c, d in zip(cfgs, run_dirs)]
    step = min(s["step"] if s else 0 for s in states)
    if step == 0:
        return [None] * len(states)
    for k, state in enumerate(states):
        if state["step"] > step:
            earlier = checkpoint.previous(run_dirs[k].checkpoint)
            states[k] = checkpoint.read_verified(earlier, "cpu") if earlier.is_file() else {"step": None}
            if states[k]["step"] != step:
                raise checkpoint.CheckpointError(
                    f"{run_dirs[k]} has no checkpoint at step {step}, where the batch's other seeds "
                    "are; delete the batch's checkpoints to start it over, or set train.resume=false")
    return states


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
    `record` (file name -> text) is the launcher's own record of the launch (Hydra's .hydra/)."""
    return run_all([cfg], [run_dir], record)[0]


def run_all(cfgs, run_dirs, record: dict[str, str] | None = None) -> list[dict]:
    """Train run k of `cfgs` in `run_dirs[k]` (one run, or a seed batch's seeds); return each run's
    final metrics (its summary.json), or {"interrupted": why, "steps": n, ...} each when stopped.

    Every check comes first: a refused launch (a bad config, data that disagrees with it, a
    directory held by a live launch (RunDir.live), holding another run or no readable checkpoint)
    writes nothing, in none of its directories. Finished runs are not trained again; interrupted
    ones resume from their checkpoints. `record` goes into every run directory. Under torchrun
    (single runs only) every rank calls this; rank 0's directory is used and only rank 0 writes
    (and holds its lock)."""
    for cfg in cfgs:
        validate(cfg)
    world, device = distributed.setup(str(cfgs[0].device))
    check_launch(cfgs, run_dirs, world)
    run_dirs = [RunDir(world.from_main(str(d))) for d in run_dirs]
    with ExitStack() as held:                  # every directory this launch's alone, or it is refused
        for d in run_dirs if world.main else []:
            held.enter_context(d.live())
        return run_held(cfgs, run_dirs, world, device, record or {})


def run_held(cfgs, run_dirs: list[RunDir], world, device, record: dict[str, str]) -> list[dict]:
    """`run_all` once rank 0 holds every directory's lock, before any file there is read or written."""
    if cfgs[0].train.resume:
        done = [finished(d, c) for c, d in zip(cfgs, run_dirs)]
        if all(s is not None for s in done):
            MESSAGES.info(f"{', '.join(map(str, run_dirs))} already finished; nothing to do")
            return done
    states = resume_states(cfgs, run_dirs)
    if cfgs[0].get("threads"):
        torch.set_num_threads(cfgs[0].threads)
    model, data, device = prepare(cfgs[0], device)
    models = [model, *(seeded_model(c, data) for c in cfgs[1:])]
    for c, d in zip(cfgs, run_dirs) if world.main else []:
        open_run_dir(c, d, record)
    with ExitStack() as messages:
        for d in run_dirs:
            messages.enter_context(run_messages(d / "train.log" if world.main else None))
        return train(cfgs, run_dirs, world, states, models, data, device)


def metrics_log(cfg, run_dir: RunDir, world, device, batched: int = 0) -> MetricsLog:
    """Rank 0's provenance, W&B run and metrics.jsonl; other ranks record nothing. A seed trained
    in a batch of `batched` says so in its provenance, and its W&B run is one of several open in
    the process."""
    if not world.main:
        return MetricsLog(None)
    run_dir.write_json("provenance.json", {**provenance(device), **record_uncommitted(run_dir.path),
                                           "world_size": world.size,
                                           **({"batched": batched} if batched else {})})
    wandb_run = start_wandb(cfg.logger, OmegaConf.to_container(cfg, resolve=True), run_dir.path,
                            run_dir.run_id(), [cfg.model.name, cfg.drop.kind, cfg.drop.mode],
                            reinit="create_new" if batched else "finish_previous")
    return MetricsLog(run_dir.metrics, wandb_run)


def train(cfgs, run_dirs: list[RunDir], world, states, models, data, device) -> list[dict]:
    """The accepted runs: trained from `states` (None each: from the start), then each summarized.
    A seed batch (`seed_batch` set) trains as one batched model, a single run as its own."""
    batched = len(cfgs) if cfgs[0].get("seed_batch") is not None else 0
    MESSAGES.info(f"seeds {[c.seed for c in cfgs]} in one batch: {', '.join(map(str, run_dirs))}"
                  if batched else f"run directory: {run_dirs[0]}")
    logs = [metrics_log(c, d, world, device, batched) for c, d in zip(cfgs, run_dirs)]
    paths = [d.checkpoint for d in run_dirs]
    trainer = (seed_batch_trainer(cfgs, models, data, device, logs, paths) if batched else
               build_trainer(cfgs[0], models[0], data, device, logs[0], paths[0], world))
    if cfgs[0].analysis.mode != "off" and world.main:     # the probe needs no other rank
        trainer.probe = attach_probe(cfgs[0].analysis, trainer, run_dirs[0].snapshots)
    if states[0] is not None:
        trainer.load_state_dict(states)
        MESSAGES.info(f"resuming at step {trainer.step} of {trainer.total_steps}")
    else:
        for log in logs:
            log.resume_at(0)
    started = time.perf_counter()
    final, stop = fit(trainer, cfgs[0].train.stop_signals, logs)
    if stop is not None:
        return [stopped(stop, trainer) for _ in cfgs]
    seconds = time.perf_counter() - started       # the launch's: each of its runs records it
    return [summarize(c, d, {**final[k], "best_test_acc": best, "steps": trainer.step},
                      trainer.schedule.rates, seconds, world.main)
            for k, (c, d, best) in enumerate(zip(cfgs, run_dirs, trainer.events.best_test_acc))]


# What a full disk, a quota or a lost permission raise as a run writes its files.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO)


def fit(trainer, signals, logs: list):
    """(each run's last evaluation, None) once `trainer` is trained to its end (trained to the end but
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
    """What a stopped launch returns for each of its runs; exit_status: the command's."""
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
