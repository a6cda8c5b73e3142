"""A run's train and eval events (metrics.jsonl, through repro.records.logger.MetricsLog), apart from the
loop that produces them: the window of training losses since the last train event, the stop when
its mean is not finite (naming the last good checkpoint, if one was written), the best test accuracy
so far, and their
part of a checkpoint, so that a resumed run writes the events the uninterrupted one would.
RunEvents is one run's (its ranks' losses summed); Events, the loop's: one RunEvents per run (a
single run's, or each seed's of a batch, repro.loop.seed_batch)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from repro.distributed import SINGLE, World
from repro.errors import RunError
from repro.records.logger import MESSAGES, MetricsLog


class NonFiniteLoss(RunError, FloatingPointError):
    """The training loss is not finite: the run stopped (train.nonfinite=stop)."""


class RunEvents:
    """One run's events: `add` each step's loss, `log_train` the window's mean, `eval_event` an
    evaluation; `state_dict` is their part of the run's checkpoint."""

    def __init__(self, log: MetricsLog, train: Any, steps_per_epoch: int, device: torch.device,
                 world: World = SINGLE, checkpoint_path: Path | None = None):
        """`train`: the run's train config (epochs, batch_size); `checkpoint_path`: the one a
        non-finite loss names."""
        self.log, self.steps_per_epoch, self.device = log, steps_per_epoch, device
        self.train, self.world, self.checkpoint_path = train, world, checkpoint_path
        self.best_test_acc = 0.0
        self.loss_sum, self.loss_count = torch.zeros((), device=device), 0   # the window

    def add(self, loss: torch.Tensor) -> None:
        """One step's loss into the window, on the device (no wait for the step to finish)."""
        self.loss_sum += loss
        self.loss_count += 1

    def check_finite(self, step: int) -> float:
        """The window's mean loss over steps and ranks (0 when empty); a non-finite one logs a
        `nonfinite` event and stops the run, naming the last checkpoint if there is one."""
        loss = self.world.sum(self.loss_sum.clone()).item() / self.world.size / max(self.loss_count, 1)
        if math.isfinite(loss):
            return loss
        self.log.log("nonfinite", step, loss=loss, action="stopped")
        path = self.checkpoint_path
        kept = (f"the last good checkpoint is {path}, but relaunching unchanged meets the same loss"
                if path is not None and path.is_file() else "no checkpoint was written before it")
        raise NonFiniteLoss(f"training loss is {loss} at step {step}; {kept}. Lower optim.lr or check the "
                            "data, or set train.nonfinite=skip to skip such steps, and launch in a new "
                            "hydra.run.dir (or with train.resume=false)")

    def log_train(self, step: int, drop_rate: float, lr: float, seconds: float) -> float:
        """The train event at `step`: the window's mean loss over steps and ranks, which a
        non-finite mean stops the run on (check_finite); the window starts anew. Returns the mean."""
        loss = self.check_finite(step)
        self.log.log("train", step, epoch=step / self.steps_per_epoch, loss=loss, lr=lr, drop_rate=drop_rate,
                     img_per_s=self.loss_count * self.train.batch_size / seconds)
        self.loss_sum, self.loss_count = torch.zeros((), device=self.device), 0
        return loss

    def eval_event(self, step: int, epoch: int, metrics: dict) -> None:
        """The eval event of `metrics`, with the best test accuracy so far."""
        self.best_test_acc = max(self.best_test_acc, metrics["test_acc"])
        self.log.log("eval", step, epoch=epoch, best_test_acc=self.best_test_acc, **metrics)

    def state_dict(self) -> dict:
        """Where metrics.jsonl ends, the open window and the best test accuracy."""
        return {"best_test_acc": self.best_test_acc, "metrics_offset": self.log.tell(),
                "loss_window": (self.loss_sum.item(), self.loss_count)}

    def load_state_dict(self, state: dict) -> None:
        """Back to `state`: metrics.jsonl cut where it was written (later events are written again)."""
        self.best_test_acc, (loss_sum, self.loss_count) = state["best_test_acc"], state["loss_window"]
        self.loss_sum = torch.tensor(loss_sum, device=self.device)
        self.log.resume_at(state["metrics_offset"])


class Events:
    """The loop's events over its K runs, run k's in `runs[k]` (seed `seeds[k]`): a step's losses
    are [K] tensors and an evaluation a list of K metrics; one train.log line says every run's
    accuracy, and the progress bar shows their mean."""

    def __init__(self, runs: list[RunEvents], seeds: list[int]):
        self.runs, self.seeds = runs, seeds

    @property
    def best_test_acc(self) -> list[float]:
        return [run.best_test_acc for run in self.runs]

    def add(self, losses: torch.Tensor) -> None:
        for run, loss in zip(self.runs, losses):
            run.add(loss)

    def check_finite(self, step: int) -> None:
        for run in self.runs:
            run.check_finite(step)

    def log_train(self, step: int, drop_rate: float, lr: float, seconds: float) -> float:
        """Each run's train event; returns the mean of their window means."""
        return float(np.mean([run.log_train(step, drop_rate, lr, seconds) for run in self.runs]))

    def log_eval(self, step: int, epoch: int, evaluation: list[dict]) -> None:
        """Each run's eval event after `epoch` (counted from 1) and their line in train.log."""
        for run, metrics in zip(self.runs, evaluation):
            run.eval_event(step, epoch, metrics)
        accuracy, loss = (", ".join(f"{m[key]:.4f}" for m in evaluation)
                          for key in ("test_acc", "train_full_loss"))
        seeds = f" of seeds {self.seeds}:" if len(self.runs) > 1 else ""
        MESSAGES.info(f"epoch {epoch}/{self.runs[0].train.epochs}, step {step}: test accuracy{seeds} "
                      f"{accuracy}, full-model train loss {loss}")

    def log_analysis(self, step: int, measured: dict) -> None:
        """The probe's measurements at `step`: a single run's (a seed batch has no probe)."""
        [run] = self.runs
        run.log.log("analysis", step, **measured)

    def state_dict(self) -> list[dict]:
        return [run.state_dict() for run in self.runs]

    def load_state_dict(self, states: list[dict]) -> None:
        for run, state in zip(self.runs, states):
            run.load_state_dict(state)
