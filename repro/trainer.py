"""The training loop, one flat loop over optimizer steps: each at its scheduled drop rate and LR,
an evaluation per epoch (test set, and the full model on a fixed training subset), checkpoints, and
a probe that may measure between steps. Its train and eval events are repro.events'; repro.assemble
builds the parts."""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from repro import checkpoint
from repro.data.loader import mix_seed
from repro.distributed import SINGLE, World
from repro.evaluate import evaluate
from repro.events import RunEvents
from repro.logger import MetricsLog
from repro.preemption import Interrupted, agreed_stop
from repro.schedules import DropController, DropSchedule


@dataclass(eq=False)
class Trainer:
    cfg: Any                     # the run's config: train.*, seed
    model: torch.nn.Module
    parallel: Callable           # the model as trained: itself, or wrapped (DDP, torch.compile)
    batches: Any                 # training batches: len() per epoch, epoch(epoch, start)
    eval_sets: dict              # name -> set with batches(size)
    schedule: DropSchedule
    controller: DropController   # sets the drop sites to the scheduled rate
    optimizer: torch.optim.Optimizer
    scheduler: Any               # timm's per-step LR schedule
    mixup: Callable | None
    criterion: Callable
    device: torch.device
    log: MetricsLog
    checkpoint_path: Path | None = None
    world: World = SINGLE
    step: int = 0
    stop_requested: Callable = lambda: None    # a reason (e.g. a signal's name) to stop, or None
    probe: Any = None            # a DynamicsProbe or SnapshotSaver: after_step(s), steps, measure(s)
    events: Any = None           # the train and eval events (repro.events); None: this run's own

    def __post_init__(self):
        if self.events is None:
            self.events = RunEvents(self.log, self.cfg.train, self.steps_per_epoch, self.device, self.world,
                                    self.checkpoint_path)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    @property
    def total_steps(self) -> int:
        return self.cfg.train.epochs * self.steps_per_epoch

    def autocast(self):
        amp = self.cfg.train.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp)

    def fit(self, stop_at: int | None = None) -> dict:
        """Train from `self.step` to the end (or to step `stop_at`); return the last evaluation.
        Raises Interrupted, after writing a checkpoint, when `stop_requested()` says so."""
        t = self.cfg.train
        stop_at = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        metrics, epoch_batches, tick = {}, None, time.perf_counter()
        self.model.train()
        if self.step == 0:
            self.observe()
        with tqdm(total=self.total_steps, initial=self.step, disable=not t.progress, dynamic_ncols=True,
                  desc="train") as bar:
            while self.step < stop_at:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                if epoch_batches is None:
                    epoch_batches = iter(self.batches.epoch(epoch, start))
                rate = self.schedule.rate(self.step)
                self.events.add(self.train_step(*next(epoch_batches)))
                self.observe()
                epoch_end = self.step % self.steps_per_epoch == 0
                if self.step % t.log_every == 0 or epoch_end:
                    loss = self.events.log_train(self.step, rate, self.optimizer.param_groups[0]["lr"],
                                                 time.perf_counter() - tick)
                    bar.update(self.step - bar.n)
                    bar.set_postfix(loss=f"{loss:.3f}", p=f"{rate:.3f}",
                                    acc=f"{metrics.get('test_acc', float('nan')):.3f}")
                    tick = time.perf_counter()
                if epoch_end and ((epoch + 1) % t.eval_every == 0 or self.step == self.total_steps):
                    metrics = self.events.log_eval(self.step, epoch + 1, self.evaluate())
                reason = agreed_stop(self.stop_requested, self.world, self.device)
                if epoch_end or reason or (t.ckpt_every and self.step % t.ckpt_every == 0):
                    self.save_checkpoint()
                if reason:
                    self.interrupt(reason)
                if epoch_end:
                    epoch_batches, tick = None, time.perf_counter()
        return metrics

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step at the scheduled drop rate and LR; masks seeded by (seed, step).
        With train.nonfinite=skip, a step whose loss is not finite leaves the weights alone."""
        self.begin_step()
        if self.mixup:
            x, y = self.mixup(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        accum = self.cfg.train.accum_steps
        total = torch.zeros((), device=self.device)
        for i, (xm, ym) in enumerate(zip(x.chunk(accum), y.chunk(accum))):
            sync = i == accum - 1 or self.world.size == 1      # all-reduce on the last micro-batch
            with nullcontext() if sync else self.parallel.no_sync():
                with self.autocast():
                    loss = self.criterion(self.parallel(xm), ym) / accum
                loss.backward()
            total += loss.detach()
        if self.cfg.train.nonfinite == "skip" and not torch.isfinite(self.world.sum(total.clone())):
            self.log.log("nonfinite", self.step + 1, loss=total.item(), action="skipped step")
            total = torch.zeros((), device=self.device)
        else:
            self.optimizer.step()
        self.step += 1
        return total

    def begin_step(self) -> None:
        """Set this step's drop rate and LR, and seed its random draws by (seed, step): rank 0 draws
        a single process's masks, other ranks (other data) their own; a seed batch (cfg.seed_batch,
        repro.seed_batch) draws all its seeds' masks from one generator seeded by (seeds, step)."""
        self.controller.apply(self.schedule.rate(self.step))
        self.scheduler.step_update(self.step)
        seeds = self.cfg.get("seed_batch") or [self.cfg.seed]
        seed = mix_seed(*seeds, self.step, 1, *([self.world.rank] if self.world.rank else []))
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # timm's Mixup draws from numpy

    def observe(self) -> None:
        """Let the probe see the model after each step, and log what it measures at its steps."""
        if self.probe is not None:
            self.probe.after_step(self.step)
            if self.step in self.probe.steps and (result := self.probe.measure(self.step)):
                self.log.log("analysis", self.step, **result)

    def evaluate(self) -> dict:
        """Loss and top-1 accuracy of the full model (eval mode) on each evaluation set."""
        return evaluate(self.model, self.eval_sets, self.cfg.train.eval_batch_size, self.autocast,
                        self.world, self.device)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "config_hash": checkpoint.config_hash(self.cfg),
                "probe": self.probe.state_dict() if self.probe else None, **self.events.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        if self.probe and state.get("probe") is not None:
            self.probe.load_state_dict(state["probe"])
        self.events.load_state_dict(state)

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is not None and self.world.main:
            checkpoint.save_atomic(self.state_dict(), self.checkpoint_path)

    def interrupt(self, reason: str):
        raise Interrupted(f"{reason} at step {self.step}: checkpoint written to "
                          f"{self.checkpoint_path}; relaunch the same run directory to resume")

