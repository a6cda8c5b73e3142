"""The training loop: a scheduled drop rate per step, timm optimizer and LR schedule, an
evaluation per epoch (test set, and the full model on a fixed training subset), checkpoints."""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from repro import checkpoint
from repro.data import ImageData
from repro.data.loader import mix_seed
from repro.distributed import World
from repro.layers import make_compilable
from repro.logger import MESSAGES, MetricsLog
from repro.optim import build_optimizer
from repro.schedules import DropSchedule

SINGLE = World()  # one process


class Trainer:
    def __init__(self, cfg, model: nn.Module, data: ImageData, device: torch.device,
                 log: MetricsLog, checkpoint_path: Path | None = None, world: World = SINGLE):
        t, d = cfg.train, cfg.drop
        self.cfg, self.model, self.device, self.log = cfg, model.to(device), device, log
        if t.grad_checkpointing:                 # recompute block activations in backward
            model.set_grad_checkpointing(True)
        self.checkpoint_path, self.world = checkpoint_path, world
        if t.channels_last:
            model.to(memory_format=torch.channels_last)
        self.batches, self.eval_sets = data.pipeline(cfg, device, world)
        self.normalize = getattr(self.batches, "normalize", None)   # the batched path's (for the probe)
        self.steps_per_epoch = len(self.batches)
        self.total_steps = t.epochs * self.steps_per_epoch
        self.schedule = DropSchedule.from_config(d, t.epochs, self.steps_per_epoch)
        if t.compile:                            # scheduled rates as data: no recompiles per step
            make_compilable(model, self.schedule.kind)
        self.controller = self.schedule.controller(model)
        # Data parallel: gradients are averaged across ranks; the module itself stays `model`.
        ids = [device.index] if device.type == "cuda" else None
        self.parallel = DistributedDataParallel(self.model, ids) if world.size > 1 else self.model
        if t.compile:
            self.parallel = torch.compile(self.parallel, backend=t.compile, mode=t.compile_mode)
        self.optimizer, self.scheduler = build_optimizer(
            model, cfg.optim, t.batch_size, self.total_steps, self.steps_per_epoch)
        a = cfg.data
        self.mixup = (Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, label_smoothing=a.label_smoothing,
                            num_classes=data.num_classes) if a.mixup or a.cutmix else None)
        self.criterion = (SoftTargetCrossEntropy() if self.mixup else
                          nn.CrossEntropyLoss(label_smoothing=a.label_smoothing))
        self.step = 0
        self.best_test_acc = 0.0
        self.loss_sum, self.loss_count = torch.zeros((), device=device), 0   # since the last log
        self.stop_requested = lambda: None   # returns a reason (e.g. a signal name) to stop early
        self.probe = None          # a DynamicsProbe measuring at its steps, or a SnapshotSaver

    def autocast(self):
        amp = self.cfg.train.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp)

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
        """Set this step's drop rate and LR, and seed its random draws by `step_seed()`."""
        if self.controller.kind != "none":
            self.controller.apply(self.schedule.rate(self.step))
        self.scheduler.step_update(self.step)
        seed = self.step_seed()
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # timm's Mixup draws from numpy

    def step_seed(self) -> int:
        """(seed, step): rank 0 draws a single process's masks; other ranks (other data) their own."""
        return mix_seed(self.cfg.seed, self.step, 1, *([self.world.rank] if self.world.rank else []))

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Loss and top-1 accuracy of the full model (eval mode) on the test set and train subset."""
        self.model.eval()
        out = {}
        for name, images in self.eval_sets.items():
            loss, correct = torch.zeros((), device=self.device), torch.zeros((), device=self.device)
            seen = 0
            for xb, yb in images.batches(self.cfg.train.eval_batch_size):
                with self.autocast():
                    logits = self.model(xb).float()
                loss += F.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(1) == yb).sum()
                seen += len(yb)
            count = self.world.sum(torch.tensor(float(seen), device=self.device))
            out[f"{name}_loss"] = (self.world.sum(loss) / count).item()
            out[f"{name}_acc"] = (self.world.sum(correct.double()) / count).item()
        self.model.train()
        return out

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "best_test_acc": self.best_test_acc, "metrics_offset": self.log.tell(),
                "loss_window": (self.loss_sum.item(), self.loss_count),
                "config_hash": checkpoint.config_hash(self.cfg),
                "probe": self.probe.state_dict() if self.probe else None}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best_test_acc = state["step"], state["best_test_acc"]
        loss_sum, self.loss_count = state["loss_window"]
        self.loss_sum = torch.tensor(loss_sum, device=self.device)
        if self.probe and state.get("probe") is not None:
            self.probe.load_state_dict(state["probe"])
        self.log.resume_at(state["metrics_offset"])

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is not None and self.world.main:
            checkpoint.save_atomic(self.state_dict(), self.checkpoint_path)

    def observe(self) -> None:
        """Let the probe see the model after each step, and measure at its steps."""
        if self.probe is None:
            return
        self.probe.after_step(self)
        if self.step in self.probe.steps:
            result = self.probe.measure(self)
            if result:
                self.log.log("analysis", self.step, **result)

    def log_train(self, seconds: float, rate: float) -> float:
        """Log the mean loss since the last log; stop on a non-finite loss."""
        loss = self.world.sum(self.loss_sum.clone()).item() / self.world.size / self.loss_count
        self.log_loss(self.log, loss, seconds, rate, self.checkpoint_path)
        self.loss_sum, self.loss_count = torch.zeros((), device=self.device), 0
        return loss

    def log_loss(self, log: MetricsLog, loss: float, seconds: float, rate: float, checkpoint_path) -> None:
        """The train event of `loss` (the mean since the last log) in `log`; a non-finite one stops."""
        if not math.isfinite(loss):
            log.log("nonfinite", self.step, loss=loss, action="stopped")
            raise FloatingPointError(
                f"training loss is {loss} at step {self.step}; the last good checkpoint is "
                f"{checkpoint_path}. Lower optim.lr or check the data, or set "
                "train.nonfinite=skip to skip such steps.")
        log.log("train", self.step, epoch=self.step / self.steps_per_epoch, loss=loss,
                lr=self.optimizer.param_groups[0]["lr"], drop_rate=rate,
                img_per_s=self.loss_count * self.cfg.train.batch_size / seconds)

    def fit(self, stop_at: int | None = None) -> dict:
        """Train from `self.step` to the end (or to step `stop_at`); return the last evaluation.
        Raises Interrupted, after writing a checkpoint, when `stop_requested()` says so."""
        t = self.cfg.train
        stop_at = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not t.progress,
                   dynamic_ncols=True, desc="train")
        metrics: dict = {}
        self.model.train()
        if self.step == 0:
            self.observe()
        while self.step < stop_at:
            epoch, start = divmod(self.step, self.steps_per_epoch)
            tick = time.perf_counter()
            for x, y in self.batches.epoch(epoch, start):
                if self.step == stop_at:
                    break
                rate = self.schedule.rate(self.step)
                self.loss_sum += self.train_step(x, y)
                self.loss_count += 1
                self.observe()
                if self.step % t.log_every == 0 or self.step % self.steps_per_epoch == 0:
                    bar.update(self.loss_count)
                    loss = self.log_train(time.perf_counter() - tick, rate)
                    bar.set_postfix(loss=f"{loss:.3f}", p=f"{rate:.3f}",
                                    acc=f"{metrics.get('test_acc', float('nan')):.3f}")
                    tick = time.perf_counter()
                if self.step % self.steps_per_epoch == 0:
                    continue                            # epoch end: evaluate, then checkpoint
                reason = self.stop_reason()
                if reason or (t.ckpt_every and self.step % t.ckpt_every == 0):
                    self.save_checkpoint()
                if reason:
                    self.interrupt(bar, reason)
            if self.step % self.steps_per_epoch:
                break                                   # stopped at stop_at, mid-epoch
            if (epoch + 1) % t.eval_every == 0 or self.step == self.total_steps:
                metrics = self.log_eval(epoch + 1)
            self.save_checkpoint()
            reason = self.stop_reason()
            if reason:
                self.interrupt(bar, reason)
        bar.close()
        return metrics

    def log_eval(self, epoch: int) -> dict:
        """Evaluate after `epoch` (counted from 1), keep the best test accuracy, log the event."""
        metrics = self.evaluate()
        self.best_test_acc = max(self.best_test_acc, metrics["test_acc"])
        self.log.log("eval", self.step, epoch=epoch, best_test_acc=self.best_test_acc, **metrics)
        MESSAGES.info(f"epoch {epoch}/{self.cfg.train.epochs}, step {self.step}: test accuracy "
                      f"{metrics['test_acc']:.4f}, full-model train loss {metrics['train_full_loss']:.4f}")
        return metrics

    def stop_reason(self) -> str | None:
        """Why to stop now, agreed by all ranks (one rank's SIGTERM stops them all)."""
        reason = self.stop_requested()
        if self.world.any(bool(reason), self.device):
            return reason or "a stop request on another rank"
        return None

    def interrupt(self, bar, reason: str):
        bar.close()
        raise Interrupted(f"{reason} at step {self.step}: checkpoint written to "
                          f"{self.checkpoint_path}; relaunch the same run directory to resume")


class Interrupted(Exception):
    """Training stopped early on request (e.g. SIGTERM) after writing a checkpoint."""
