"""One optimizer step of one model, apart from the loop that takes the steps (repro.loop.trainer): the
step's drop rate, LR and random seed, mixup, micro-batches under autocast, the skip of a step whose
loss is not finite, the update; the full model's evaluation; and the model's part of a checkpoint.
The loop takes its steps alike from a ModelStep or from repro.loop.seed_batch's SeedBatchStep (K seeds
stacked into one model), which reuses a ModelStep's optimizer, schedules and seeding."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from timm.scheduler.scheduler import Scheduler

from repro.distributed import SINGLE, World
from repro.loop.evaluate import evaluate
from repro.records.logger import MetricsLog
from repro.schedules import DropController
from repro.seeding import mix_seed, seed_draws


@dataclass(eq=False, kw_only=True)
class ModelStep:
    model: torch.nn.Module
    parallel: Callable           # the model as trained: itself, or wrapped (DDP, torch.compile)
    controller: DropController   # sets the drop sites to the step's rate
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler         # timm's per-step LR schedule
    mixup: Callable | None
    criterion: Callable
    seeds: tuple[int, ...]       # what the random draws are seeded by: (seed,), or a seed batch's seeds
    amp: bool                    # train.amp: bf16 autocast on CUDA
    accum_steps: int             # train.accum_steps: micro-batches per step
    skip_nonfinite: bool         # train.nonfinite=skip: leave the weights alone after a non-finite loss
    eval_batch_size: int
    device: torch.device
    log: MetricsLog              # where a skipped step is recorded
    world: World = SINGLE

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def autocast(self):
        amp = self.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp)

    def begin(self, step: int, rate: float) -> None:
        """Set step `step`'s drop `rate` and LR, and seed its random draws by (seeds, step): rank 0
        draws a single process's masks, other ranks (other data) their own; a seed batch
        (repro.loop.seed_batch) draws all its seeds' masks from one generator seeded by its seeds."""
        self.controller.apply(rate)
        self.scheduler.step_update(step)
        seed = mix_seed(*self.seeds, step, 1, *([self.world.rank] if self.world.rank else []))
        seed_draws(seed, self.device)
        np.random.seed(seed % 2**32)  # timm's Mixup draws from numpy

    def take(self, step: int, rate: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Optimizer step `step` (counted from 0) at drop `rate` on the batch (x, y); returns its loss
        (shape [1]: the loop's one run). With train.nonfinite=skip, a step whose loss is not finite
        leaves the weights alone."""
        self.begin(step, rate)
        if self.mixup:
            x, y = self.mixup(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        accum = self.accum_steps
        total = torch.zeros(1, device=self.device)
        for i, (xm, ym) in enumerate(zip(x.chunk(accum), y.chunk(accum))):
            sync = i == accum - 1 or self.world.size == 1      # all-reduce on the last micro-batch
            with nullcontext() if sync else self.parallel.no_sync():
                with self.autocast():
                    loss = self.criterion(self.parallel(xm), ym) / accum
                loss.backward()
            total += loss.detach()
        if self.skip_nonfinite and not torch.isfinite(self.world.sum(total.clone())):
            self.log.log("nonfinite", step + 1, loss=total.item(), action="skipped step")
            return torch.zeros(1, device=self.device)
        self.optimizer.step()
        return total

    def evaluate(self, eval_sets: dict) -> list[dict]:
        """Loss and top-1 accuracy of the full model (eval mode) on each evaluation set: [its metrics]."""
        return [evaluate(self.model, eval_sets, self.eval_batch_size, self.autocast, self.world, self.device)]

    def state_dict(self) -> list[dict]:
        """[the model's part of its checkpoint]: weights, optimizer, LR schedule."""
        return [{"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict()}]

    def load_state_dict(self, states: list[dict]) -> None:
        [state] = states
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
