"""The training loop, one flat loop over optimizer steps: each taken by the model's step at its
scheduled drop rate and LR (repro.loop.step: one model; repro.loop.seed_batch: K seeds as one), its train and
eval events (repro.loop.events), an evaluation per epoch (test set, and the full model on a fixed
training subset), a probe that may measure between steps, checkpoints, and stops on request.
A checkpoint holds only finite training losses, and one that cannot be written (disk full,
permission lost) stops the run naming it (checkpoint.WriteFailed). repro.loop.assemble builds the parts."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from repro.distributed import SINGLE, World
from repro.preemption import Interrupted, agreed_stop
from repro.records import checkpoint
from repro.records.logger import MetricsLog
from repro.schedules import DropSchedule


def per_run(state: dict | list[dict]) -> list[dict]:
    """A checkpoint or a part of one, per run: a seed batch's are lists (one per seed) already."""
    return state if isinstance(state, list) else [state]


@dataclass(eq=False)
class Trainer:
    cfg: Any                     # the run's config (a seed batch's first seed's): train.*
    model_step: Any              # takes each optimizer step: a ModelStep, or a SeedBatchStep
    batches: Any                 # training batches: len() per epoch, epoch(epoch, start)
    eval_sets: dict              # name -> set with batches(size)
    schedule: DropSchedule       # the drop rate of every step
    events: Any                  # the train and eval events: a RunEvents, or a SeedEvents
    log: MetricsLog              # where the probe's measurements go
    device: torch.device
    checkpoint_paths: list       # each run's checkpoint (a seed batch's: one per seed); None: none
    world: World = SINGLE
    step: int = 0
    stop_requested: Callable = lambda: None    # a reason (e.g. a signal's name) to stop, or None
    probe: Any = None            # a DynamicsProbe or SnapshotSaver: after_step(s), steps, measure(s)
    saved_at: int | None = None  # the step of the last checkpoint written or resumed from

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    @property
    def total_steps(self) -> int:
        return self.cfg.train.epochs * self.steps_per_epoch

    def fit(self, stop_at: int | None = None) -> dict:
        """Train from `self.step` to the end (or to step `stop_at`); return the last evaluation.
        Raises Interrupted, after writing a checkpoint, when `stop_requested()` says so."""
        t = self.cfg.train
        stop_at = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        metrics, evaluated, epoch_batches, tick = {}, 0, None, time.perf_counter()
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
                self.events.add(self.model_step.take(self.step, *next(epoch_batches)))
                self.step += 1
                self.observe()
                epoch_end = self.step % self.steps_per_epoch == 0
                if self.step % t.log_every == 0 or epoch_end:
                    loss = self.events.log_train(self.step, rate, self.model_step.lr,
                                                 time.perf_counter() - tick)
                    bar.update(self.step - bar.n)
                    bar.set_postfix(postfix(loss, rate, metrics, evaluated))
                    tick = time.perf_counter()
                if epoch_end and ((epoch + 1) % t.eval_every == 0 or self.step == self.total_steps):
                    evaluated = epoch + 1
                    metrics = self.events.log_eval(self.step, evaluated, self.evaluate())
                reason = agreed_stop(self.stop_requested, self.world, self.device)
                if epoch_end or reason or (t.ckpt_every and self.step % t.ckpt_every == 0):
                    self.events.check_finite(self.step)      # no checkpoint of a diverged run
                    self.save_checkpoint()
                if reason:
                    raise Interrupted(f"{reason} at step {self.step}: checkpoint written to "
                                      f"{', '.join(map(str, self.checkpoint_paths))}; relaunch the "
                                      "same command to resume", reason)
                if epoch_end:
                    epoch_batches, tick = None, time.perf_counter()
        return metrics

    def observe(self) -> None:
        """Let the probe see the model after each step, and log what it measures at its steps."""
        if self.probe is not None:
            self.probe.after_step(self.step)
            if self.step in self.probe.steps and (result := self.probe.measure(self.step)):
                self.log.log("analysis", self.step, **result)

    def evaluate(self) -> dict | list[dict]:
        """The full model's loss and accuracy on each evaluation set (a seed batch's: per seed)."""
        return self.model_step.evaluate(self.eval_sets)

    def checkpoints(self) -> list[dict]:
        """Each run's checkpoint: the model's part (repro.loop.step), the step, the probe's part and the
        events'; a seed batch's runs are its seeds (their parts lists, one per seed)."""
        loop = {"step": self.step, "probe": self.probe.state_dict() if self.probe else None}
        return [{**model, **loop, **events} for model, events in
                zip(per_run(self.model_step.state_dict()), per_run(self.events.state_dict()))]

    def load_state_dict(self, state: dict | list[dict]) -> None:
        """Back to a checkpoint (a seed batch's: its seeds', all at one step)."""
        self.model_step.load_state_dict(state)
        loop = per_run(state)[0]
        self.step = self.saved_at = loop["step"]
        if self.probe and loop.get("probe") is not None:
            self.probe.load_state_dict(loop["probe"])
        self.events.load_state_dict(state)

    def save_checkpoint(self) -> None:
        """Each run's checkpoint to its path (rank 0 only)."""
        if self.world.main and all(self.checkpoint_paths):
            for state, path in zip(self.checkpoints(), self.checkpoint_paths):
                try:
                    checkpoint.save_atomic(state, path)
                except OSError as err:
                    raise checkpoint.WriteFailed(path, err, self.saved_at) from None
        self.saved_at = self.step


def postfix(loss: float, rate: float, metrics: dict, epoch: int) -> dict:
    """The progress bar's labelled values: the train loss and drop rate of the last train event,
    and the test accuracy of the last evaluation (after `epoch`; none before the first)."""
    shown = {"train loss": f"{loss:.3f}", "drop rate": f"{rate:.3f}"}
    if metrics:
        shown[f"test acc (epoch {epoch})"] = f"{metrics['test_acc']:.3f}"
    return shown
