"""The training loop, one flat loop over optimizer steps of K >= 1 runs: each step taken by the
model's step (repro.loop.step: one model; repro.loop.seed_batch: K seeds as one) at its scheduled
drop rate and LR, its train and eval events (repro.loop.events), an evaluation per epoch (test set,
and the full model on a fixed training subset), a probe that may measure between steps,
checkpoints, and stops on request. Whatever is per run (configs, evaluations, checkpoints) is a
list, one entry per run. A checkpoint holds only finite training losses, and one that cannot be
written (disk full, permission lost) stops the run naming it (checkpoint.WriteFailed).
repro.loop.assemble builds the parts."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from repro.distributed import World
from repro.loop.events import Events
from repro.preemption import Interrupted, agreed_stop
from repro.records import checkpoint
from repro.schedules import DropSchedule


class Step(Protocol):
    """What takes the loop's optimizer steps: repro.loop.step.ModelStep (one model) or
    repro.loop.seed_batch.SeedBatchStep (K seeds as one); per-run values are lists of K."""
    model: torch.nn.Module

    @property
    def lr(self) -> float: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def world(self) -> World: ...
    def take(self, step: int, rate: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Step `step` at drop `rate` on the batch; returns each run's loss, shape [K]."""
    def evaluate(self, eval_sets: dict) -> list[dict]: ...
    def state_dict(self) -> list[dict]: ...
    def load_state_dict(self, states: list[dict]) -> None: ...


class Batches(Protocol):
    """Training batches: len() per epoch, epoch(epoch, start) from batch `start` of that epoch."""
    def __len__(self) -> int: ...
    def epoch(self, epoch: int, start: int = 0) -> Iterable: ...


class Probe(Protocol):
    """A DynamicsProbe or SnapshotSaver (repro.analysis.probe): sees the model after each step and
    measures at its `steps`; load_state_dict takes what its state_dict gave, where that is not None."""
    steps: list[int]
    def after_step(self, step: int) -> None: ...
    def measure(self, step: int) -> dict | None: ...
    def state_dict(self) -> dict | None: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass(eq=False, kw_only=True)
class Trainer:
    cfgs: list                   # each run's config (a seed batch's differ in their seed only)
    model_step: Step             # takes each optimizer step, on its device and world
    batches: Batches
    eval_sets: dict              # name -> set with batches(size)
    schedule: DropSchedule       # the drop rate of every step
    events: Events               # each run's train and eval events
    checkpoint_paths: list       # each run's checkpoint; None: none
    step: int = 0
    stop_requested: Callable = lambda: None    # a reason (e.g. a signal's name) to stop, or None
    probe: Probe | None = None
    saved_at: int | None = None  # the step of the last checkpoint written or resumed from

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    @property
    def total_steps(self) -> int:
        return self.cfgs[0].train.epochs * self.steps_per_epoch

    def fit(self, stop_at: int | None = None) -> list[dict]:
        """Train from `self.step` to the end (or to step `stop_at`); return each run's last
        evaluation (empty ones when none was made). Raises Interrupted, after writing a checkpoint,
        when `stop_requested()` says so."""
        t, world, device = self.cfgs[0].train, self.model_step.world, self.model_step.device
        stop_at = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        evaluation, evaluated, epoch_batches, tick = [{} for _ in self.cfgs], 0, None, time.perf_counter()
        self.model_step.model.train()
        if self.step == 0:
            self.observe()
        with tqdm(total=self.total_steps, initial=self.step, disable=not t.progress, dynamic_ncols=True,
                  desc="train") as bar:
            while self.step < stop_at:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                if epoch_batches is None:
                    epoch_batches = iter(self.batches.epoch(epoch, start))
                rate = self.schedule.rate(self.step)
                self.events.add(self.model_step.take(self.step, rate, *next(epoch_batches)))
                self.step += 1
                self.observe()
                epoch_end = self.step % self.steps_per_epoch == 0
                if self.step % t.log_every == 0 or epoch_end:
                    loss = self.events.log_train(self.step, rate, self.model_step.lr,
                                                 time.perf_counter() - tick)
                    bar.update(self.step - bar.n)
                    bar.set_postfix(postfix(loss, rate, evaluation, evaluated))
                    tick = time.perf_counter()
                if epoch_end and ((epoch + 1) % t.eval_every == 0 or self.step == self.total_steps):
                    evaluated, evaluation = epoch + 1, self.evaluate()
                    self.events.log_eval(self.step, evaluated, evaluation)
                reason = agreed_stop(self.stop_requested, world, device)
                if epoch_end or reason or (t.ckpt_every and self.step % t.ckpt_every == 0):
                    self.events.check_finite(self.step)      # no checkpoint of a diverged run
                    self.save_checkpoint()
                if reason:
                    raise Interrupted(f"{reason} at step {self.step}: checkpoint written to "
                                      f"{', '.join(map(str, self.checkpoint_paths))}; relaunch the "
                                      "same command to resume", reason)
                if epoch_end:
                    epoch_batches, tick = None, time.perf_counter()
        return evaluation

    def observe(self) -> None:
        """Let the probe see the model after each step, and log what it measures at its steps."""
        if self.probe is not None:
            self.probe.after_step(self.step)
            if self.step in self.probe.steps and (result := self.probe.measure(self.step)):
                self.events.log_analysis(self.step, result)

    def evaluate(self) -> list[dict]:
        """Each run's full-model loss and accuracy on each evaluation set."""
        return self.model_step.evaluate(self.eval_sets)

    def checkpoints(self) -> list[dict]:
        """Each run's checkpoint: the model's part (repro.loop.step), its config's hash, the step, the
        probe's part and the events'."""
        loop = {"step": self.step, "probe": self.probe.state_dict() if self.probe else None}
        return [{**model, "config_hash": checkpoint.config_hash(cfg), **loop, **events} for cfg, model, events
                in zip(self.cfgs, self.model_step.state_dict(), self.events.state_dict())]

    def load_state_dict(self, states: list[dict]) -> None:
        """Back to each run's checkpoint (all at one step)."""
        self.model_step.load_state_dict(states)
        self.step = self.saved_at = states[0]["step"]
        if self.probe and states[0].get("probe") is not None:
            self.probe.load_state_dict(states[0]["probe"])
        self.events.load_state_dict(states)

    def save_checkpoint(self) -> None:
        """Each run's checkpoint to its path (rank 0 only)."""
        if self.model_step.world.main and all(self.checkpoint_paths):
            for state, path in zip(self.checkpoints(), self.checkpoint_paths):
                try:
                    checkpoint.save_atomic(state, path)
                except OSError as err:
                    raise checkpoint.WriteFailed(path, err, self.saved_at) from None
        self.saved_at = self.step


def postfix(loss: float, rate: float, evaluation: list[dict], epoch: int) -> dict:
    """The progress bar's labelled values: the train loss and drop rate of the last train event,
    and the runs' mean test accuracy in the last evaluation (after `epoch`; none before the first)."""
    shown = {"train loss": f"{loss:.3f}", "drop rate": f"{rate:.3f}"}
    if epoch:
        shown[f"test acc (epoch {epoch})"] = f"{np.mean([m['test_acc'] for m in evaluation]):.3f}"
    return shown
