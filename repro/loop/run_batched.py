"""run_batched(cfg, seeds, run_dirs): `cfg` trained for each of `seeds` in one process, as one
batched model (repro.loop.seed_batch), seed k's run in `run_dirs[k]` with the records a single run
writes (config.yaml, provenance.json, metrics.jsonl, checkpoint.pt, plot.png, summary.json,
COMPLETE), so that results and the ledger collect them as runs like any other.

Seed k's config is `cfg` with `seed: k` and `seed_batch: seeds`: a seed's dropout masks depend on
its batch, so a directory holding one batch's run refuses another batch's or a single run's, and
their provenance (`batched: K`) puts them in a hardware kind of their own ('cpu (batched)').
As `repro.loop.run.run`: every check first (a refused launch writes nothing; one whose directories are
not all free, RunDir.live, touches none of them), finished seeds are not
trained again, interrupted ones resume from their checkpoints, bitwise on CPU. Options the
batched model does not support stop the launch with a ConfigError naming them.
"""
from __future__ import annotations

import copy
import os
import time
from contextlib import ExitStack

import torch
from omegaconf import open_dict

from repro.distributed import SINGLE, select_device
from repro.errors import ConfigError
from repro.loop import run
from repro.loop.assemble import prepare, seeded_model
from repro.loop.seed_batch import seed_batch_trainer
from repro.loop.validate import validate
from repro.records import checkpoint
from repro.records.logger import MESSAGES, run_messages
from repro.records.rundir import RunDir

ELEMENTWISE = ("adamw", "momentum")   # optimizers whose update of a stacked tensor is each seed's own


def check_batchable(cfg, seeds, run_dirs) -> None:
    """Refuse what seed batching does not support, naming the key and the fix."""
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds={list(seeds)}: give one or more distinct integer seeds, e.g. seeds=0,1,2,3")
    if len(run_dirs) != len(seeds) or len(set(map(str, run_dirs))) != len(seeds):
        raise ConfigError(f"{len(seeds)} seeds need as many distinct run directories, got {list(run_dirs)}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("seed-batched training runs in one process; launch it without torchrun")
    t, d = cfg.train, cfg.data
    for key, value, supported, fix in (
            ("train.accum_steps", t.accum_steps, t.accum_steps == 1, "train.accum_steps=1"),
            ("train.compile", t.compile, not t.compile, "train.compile=null"),
            ("train.grad_checkpointing", t.grad_checkpointing, not t.grad_checkpointing,
             "train.grad_checkpointing=false"),
            ("train.channels_last", t.channels_last, not t.channels_last, "train.channels_last=false"),
            ("train.nonfinite", t.nonfinite, t.nonfinite == "stop", "train.nonfinite=stop"),
            ("analysis.mode", cfg.analysis.mode, cfg.analysis.mode == "off", "analysis.mode=off"),
            ("data.mixup", d.mixup, not d.mixup, "data.mixup=0"),
            ("data.cutmix", d.cutmix, not d.cutmix, "data.cutmix=0"),
            ("data.auto_augment", d.auto_augment, not d.auto_augment, "data.auto_augment=null"),
            ("data", d.name, d.name != "imagenet", "data held in memory (e.g. data=imagenet_subset)"),
            ("optim.name", cfg.optim.name, cfg.optim.name in ELEMENTWISE,
             " or ".join(f"optim.name={n}" for n in ELEMENTWISE))):
        if not supported:
            raise ConfigError(f"{key}={value} is not supported with seed batching; use {fix}, or train "
                              "these seeds one by one with python -m repro.train")


def seed_configs(cfg, seeds) -> list:
    """`cfg` once per seed, each recording its batch."""
    cfgs = []
    for seed in seeds:
        seed_cfg = copy.deepcopy(cfg)
        with open_dict(seed_cfg):
            seed_cfg.seed, seed_cfg.seed_batch = seed, list(seeds)
        cfgs.append(seed_cfg)
    return cfgs


def aligned_states(cfgs, run_dirs: list[RunDir]) -> list[dict | None]:
    """The seeds' checkpoints (`repro.loop.run.resume_state`), all at one step: a launch stopped while it
    wrote them leaves some a checkpoint ahead, which fall back to their previous one."""
    states = [run.resume_state(c, d) for c, d in zip(cfgs, run_dirs)]
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


def run_batched(cfg, seeds: list[int], run_dirs) -> list[dict]:
    """Train `cfg` for every seed in `seeds`, seed k in `run_dirs[k]`; return each seed's final
    metrics (its summary.json), or {"interrupted": why, "steps": n} per seed when stopped."""
    validate(cfg)
    run_dirs = [RunDir(d) for d in run_dirs]
    check_batchable(cfg, seeds, run_dirs)
    with ExitStack() as held:                 # every directory this launch's alone, or it is refused
        for d in run_dirs:
            held.enter_context(d.live())
        return run_held(cfg, seed_configs(cfg, seeds), run_dirs)


def run_held(cfg, cfgs, run_dirs: list[RunDir]) -> list[dict]:
    """`run_batched` of `cfg` (each seed's config in `cfgs`) once it holds every run directory's lock."""
    if cfg.train.resume:
        done = [run.finished(d, c) for c, d in zip(cfgs, run_dirs)]
        if all(s is not None for s in done):
            MESSAGES.info(f"{', '.join(map(str, run_dirs))} already finished; nothing to do")
            return done
    states = aligned_states(cfgs, run_dirs) if cfg.train.resume else [None] * len(cfgs)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    model, data, device = prepare(cfgs[0], select_device(str(cfg.device)))
    data = data.to(device)                 # one copy on the device, shared by the seeds' batches
    models = [model, *(seeded_model(c, data) for c in cfgs[1:])]
    for c, d in zip(cfgs, run_dirs):
        run.open_run_dir(c, d, {})
    with ExitStack() as messages:
        for d in run_dirs:
            messages.enter_context(run_messages(d / "train.log"))
        return train(cfgs, run_dirs, states, models, data, device)


def train(cfgs, run_dirs: list[RunDir], states, models, data, device) -> list[dict]:
    """The accepted batch, trained from `states` (None: from the start), then each seed summarized."""
    MESSAGES.info(f"seeds {[c.seed for c in cfgs]} in one batch: {', '.join(map(str, run_dirs))}")
    logs = [run.metrics_log(c, d, SINGLE, device, batched=len(cfgs)) for c, d in zip(cfgs, run_dirs)]
    trainer = seed_batch_trainer(cfgs, models, data, device, logs, [d.checkpoint for d in run_dirs])
    if states[0] is not None:
        trainer.load_state_dict(states)
        MESSAGES.info(f"resuming at step {trainer.step} of {trainer.total_steps}")
    else:
        for log in logs:
            log.resume_at(0)
    started = time.perf_counter()
    final, stop = run.fit(trainer, cfgs[0].train.stop_signals, logs)
    if stop is not None:
        return [run.stopped(stop, trainer) for _ in cfgs]
    final = final["seeds"] if isinstance(final, dict) else final    # fit's, or evaluate's again
    seconds = time.perf_counter() - started       # the batch's: every seed records it
    return [run.summarize(c, d, {**final[k], "best_test_acc": best, "steps": trainer.step},
                          trainer.schedule.rates, seconds)
            for k, (c, d, best) in enumerate(zip(cfgs, run_dirs, trainer.events.best_test_acc))]
