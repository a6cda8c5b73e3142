"""One optimizer step of one model, apart from the loop that takes the steps (repro.loop.trainer): the
step's drop rate, LR and random seed, mixup, micro-batches under autocast, the skip of a step whose
loss is not finite, the update; the full model's evaluation; and the model's part of a checkpoint.
The loop takes its steps alike from a ModelStep or from repro.loop.seed_batch's SeedBatchStep (K seeds
stacked into one model), which reuses a ModelStep's optimizer, schedules and seeding."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from repro.data.loader import mix_seed
from repro.distributed import SINGLE, World
from repro.loop.evaluate import evaluate
from repro.records import checkpoint
from repro.records.logger import MetricsLog
from repro.schedules import DropController, DropSchedule


@dataclass(eq=False)
class ModelStep:
    cfg: Any                     # the run's config: train.*, seed (and seed_batch in a seed batch)
    model: torch.nn.Module
    parallel: Callable           # the model as trained: itself, or wrapped (DDP, torch.compile)
    schedule: DropSchedule
    controller: DropController   # sets the drop sites to the scheduled rate
    optimizer: torch.optim.Optimizer
    scheduler: Any               # timm's per-step LR schedule
    mixup: Callable | None
    criterion: Callable
    device: torch.device
    log: MetricsLog              # where a skipped step is recorded
    world: World = SINGLE

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def autocast(self):
        amp = self.cfg.train.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp)

    def begin(self, step: int) -> None:
        """Set step `step`'s drop rate and LR, and seed its random draws by (seed, step): rank 0 draws
        a single process's masks, other ranks (other data) their own; a seed batch (cfg.seed_batch,
        repro.loop.seed_batch) draws all its seeds' masks from one generator seeded by (seeds, step)."""
        self.controller.apply(self.schedule.rate(step))
        self.scheduler.step_update(step)
        seeds = self.cfg.get("seed_batch") or [self.cfg.seed]
        seed = mix_seed(*seeds, step, 1, *([self.world.rank] if self.world.rank else []))
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # timm's Mixup draws from numpy

    def take(self, step: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Optimizer step `step` (counted from 0) on the batch (x, y); returns its loss. With
        train.nonfinite=skip, a step whose loss is not finite leaves the weights alone."""
        self.begin(step)
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
            self.log.log("nonfinite", step + 1, loss=total.item(), action="skipped step")
            return torch.zeros((), device=self.device)
        self.optimizer.step()
        return total

    def evaluate(self, eval_sets: dict) -> dict:
        """Loss and top-1 accuracy of the full model (eval mode) on each evaluation set."""
        return evaluate(self.model, eval_sets, self.cfg.train.eval_batch_size, self.autocast,
                        self.world, self.device)

    def state_dict(self) -> dict:
        """The model's part of a checkpoint: weights, optimizer, LR schedule, and the hash of the
        config they train under."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "config_hash": checkpoint.config_hash(self.cfg)}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
