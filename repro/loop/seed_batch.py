"""K seeds of one config trained as one batched model: the Trainer's loop, schedules, logging and
checkpoints, with a step (SeedBatchStep) that stacks every model tensor over the seeds and vmaps
the forward pass.

Each seed starts from its own single run's weights (`repro.loop.assemble.seeded_model`) and sees its own
single run's batches (its own `TrainBatches`, seeded by its seed). Dropout and drop-path masks are
drawn under `vmap(randomness="different")` from one generator seeded by (the batch's seeds, step):
independent across seeds, reproducible on resume, and for a batch of one seed the single run's
(its attention dropout aside: attention runs unfused here, repro.layers.unfuse_attention).

The optimizer is the single run's (timm's param groups and LR schedule) over the stacked tensors:
element-wise updates (AdamW, SGD) of a stacked tensor are each seed's own. Checkpoints are one per
seed in the single run's format, sliced from the stacked weights and optimizer moments.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from repro.distributed import SINGLE, World
from repro.layers import unfuse_attention
from repro.loop.assemble import build_trainer
from repro.loop.events import Events, RunEvents
from repro.loop.step import ModelStep
from repro.loop.trainer import Trainer
from repro.records.logger import MetricsLog


class SeedBatches:
    """The seeds' training batches stacked: x [K, B, C, H, W] and y [K, B] per step."""

    def __init__(self, members: list):
        self.members = members

    def __len__(self) -> int:
        return len(self.members[0])

    def epoch(self, epoch: int, start: int = 0):
        for batches in zip(*(m.epoch(epoch, start) for m in self.members)):
            yield torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])


def seed_slice(state: dict, k: int) -> dict:
    """Seed k's part of a stacked optimizer's state_dict: per-element tensors sliced, the step
    counts (0-d, shared by the seeds) kept."""
    return {"state": {i: {name: v[k].clone() if torch.is_tensor(v) and v.dim() else v
                          for name, v in s.items()} for i, s in state["state"].items()},
            "param_groups": state["param_groups"]}


def stacked(states: list[dict]) -> dict:
    """The optimizer state_dict of the stacked tensors from the seeds' own (`seed_slice`'s inverse)."""
    first = states[0]
    return {"state": {i: {name: torch.stack([s["state"][i][name] for s in states])
                          if torch.is_tensor(v) and v.dim() else v for name, v in s0.items()}
                      for i, s0 in first["state"].items()},
            "param_groups": first["param_groups"]}


class SeedBatchStep:
    """`ModelStep` over K seeds: `models[k]` (seeded as single runs are) trains as seed k. `single`,
    the first seed's ModelStep, gives the optimizer (regrouped over the stacks), the LR schedule,
    the loss and the step's rate and seeding (`ModelStep.begin`, by the batch's seeds); its model's
    modules run every seed, its own tensors unused."""

    def __init__(self, single: ModelStep, models: list):
        self.single, self.model, self.size = single, single.model, len(models)
        self.params, self.buffers = stack_module_state([m.to(single.device) for m in models])
        names = {id(p): n for n, p in self.model.named_parameters()}
        for group in single.optimizer.param_groups:     # the single run's groups, over the stacks
            group["params"] = [self.params[names[id(p)]] for p in group["params"]]
        self.state_keys = list(self.model.state_dict())
        unfuse_attention(self.model)   # its CUDA backward fails under vmap ("LSE is not correctly aligned")
        self.model.to("meta")

    @property
    def lr(self) -> float:
        return self.single.lr

    @property
    def device(self) -> torch.device:
        return self.single.device

    @property
    def world(self) -> World:
        return self.single.world

    def seed_loss(self, params, buffers, x, y) -> torch.Tensor:
        with self.single.autocast():
            return self.single.criterion(functional_call(self.model, (params, buffers), (x,)), y)

    def take(self, step: int, rate: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Optimizer step `step` at drop `rate` of every seed on its batch (x[k], y[k]); returns the
        losses [K]."""
        self.single.begin(step, rate)
        self.single.optimizer.zero_grad(set_to_none=True)
        losses = vmap(self.seed_loss, randomness="different")(self.params, self.buffers, x, y)
        losses.sum().backward()
        self.single.optimizer.step()
        return losses.detach()

    def eval_sums(self, params, buffers, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        with self.single.autocast():
            logits = functional_call(self.model, (params, buffers), (x,)).float()
        return F.cross_entropy(logits, y, reduction="sum"), (logits.argmax(1) == y).sum()

    @torch.no_grad()
    def evaluate(self, eval_sets: dict) -> list[dict]:
        """`ModelStep.evaluate` of every seed, all on the same images at once."""
        self.model.eval()
        sums = vmap(self.eval_sums, in_dims=(0, 0, None, None))
        out = [{} for _ in range(self.size)]
        for name, images in eval_sets.items():
            loss = correct = 0
            for xb, yb in images.batches(self.single.eval_batch_size):
                batch_loss, batch_correct = sums(self.params, self.buffers, xb, yb)
                loss, correct = loss + batch_loss, correct + batch_correct
            for metrics, seed_loss, seed_correct in zip(out, loss.tolist(), correct.tolist()):
                metrics[f"{name}_loss"] = seed_loss / len(images)
                metrics[f"{name}_acc"] = seed_correct / len(images)
        self.model.train()
        return out

    def state_dict(self) -> list[dict]:
        """Each seed's part of its checkpoint, as its single run's ModelStep gives it."""
        tensors = {**self.params, **self.buffers}
        optimizer = self.single.optimizer.state_dict()
        return [{"model": {n: tensors[n][k].detach().clone() for n in self.state_keys},
                 "optimizer": seed_slice(optimizer, k), "scheduler": self.single.scheduler.state_dict()}
                for k in range(self.size)]

    def load_state_dict(self, states: list[dict]) -> None:
        tensors = {**self.params, **self.buffers}
        with torch.no_grad():
            for name in self.state_keys:
                tensors[name].copy_(torch.stack([s["model"][name] for s in states]))
        self.single.optimizer.load_state_dict(stacked([s["optimizer"] for s in states]))
        self.single.scheduler.load_state_dict(states[0]["scheduler"])


def seed_batch_trainer(cfgs: list, models: list, data, device, logs: list[MetricsLog],
                       checkpoint_paths: list) -> Trainer:
    """The Trainer of K seeds: `cfgs[k]` and `models[k]` (seeded as single runs are) give seed k,
    logged to `logs[k]` and checkpointed to `checkpoint_paths[k]`; the configs differ in their
    seed only. The first seed's single-run Trainer with the seeds' batches (from one copy of
    `data` on `device`), step and events."""
    data = data.to(device)
    single = build_trainer(cfgs[0], models[0], data, device)
    batches = SeedBatches([data.pipeline(c, device, single.model_step.world)[0] for c in cfgs])
    events = Events([RunEvents(log, c.train, len(batches), device, SINGLE, path)
                     for c, log, path in zip(cfgs, logs, checkpoint_paths)], [c.seed for c in cfgs])
    return replace(single, cfgs=cfgs, model_step=SeedBatchStep(single.model_step, models), batches=batches,
                   events=events, checkpoint_paths=checkpoint_paths)
