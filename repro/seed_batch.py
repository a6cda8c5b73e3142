"""K seeds of one config trained as one batched model: the Trainer's loop, schedules, logging and
checkpoints, with every model tensor stacked over the seeds and the forward pass vmapped.

Each seed starts from its own single run's weights (`repro.assemble.seeded_model`) and sees its own
single run's batches (its own `TrainBatches`, seeded by its seed). Dropout and drop-path masks are
drawn under `vmap(randomness="different")` from one generator seeded by (the batch's seeds, step):
independent across seeds, reproducible on resume, and for a batch of one seed the single run's
(its attention dropout aside: dropout runs attention unfused here, as `make_compilable` does).

The optimizer is the single run's (timm's param groups and LR schedule) over the stacked tensors:
element-wise updates (AdamW, SGD) of a stacked tensor are each seed's own. Checkpoints are one per
seed in the single Trainer's format, sliced from the stacked weights and optimizer moments.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from repro import checkpoint
from repro.assemble import build_trainer
from repro.events import SeedEvents
from repro.logger import MetricsLog
from repro.preemption import Interrupted
from repro.trainer import Trainer


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


class SeedBatchTrainer(Trainer):
    """`Trainer.fit` over K seeds: `cfgs[k]` and `models[k]` (seeded as single runs are) give
    seed k, logged to `logs[k]` (`events`: a SeedEvents) and checkpointed to `checkpoint_paths[k]`.
    The configs differ in their seed only; their `seed_batch` seeds the masks (`Trainer.begin_step`)."""

    def __init__(self, cfgs: list, models: list, data, device, logs: list[MetricsLog],
                 checkpoint_paths: list):
        template = models[0]         # its modules run every seed; its own tensors are not used
        single = build_trainer(cfgs[0], template, data, device)
        events = SeedEvents([c.seed for c in cfgs], logs, cfgs[0].train, single.steps_per_epoch, device,
                            checkpoint_paths)
        super().__init__(**{**vars(single), "events": events})
        self.cfgs, self.checkpoint_paths = cfgs, checkpoint_paths
        self.batches = SeedBatches([data.pipeline(c, device, self.world)[0] for c in cfgs])
        self.params, self.buffers = stack_module_state([m.to(device) for m in models])
        names = {id(p): n for n, p in template.named_parameters()}
        for group in self.optimizer.param_groups:      # the single run's groups, over the stacks
            group["params"] = [self.params[names[id(p)]] for p in group["params"]]
        self.state_keys = list(template.state_dict())
        if self.controller.kind == "dropout":          # fused attention draws its own masks
            for module in template.modules():
                if hasattr(module, "fused_attn"):
                    module.fused_attn = False
        template.to("meta")

    def seed_loss(self, params, buffers, x, y) -> torch.Tensor:
        with self.autocast():
            return self.criterion(functional_call(self.model, (params, buffers), (x,)), y)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every seed; returns the seeds' losses [K]."""
        self.begin_step()
        self.optimizer.zero_grad(set_to_none=True)
        losses = vmap(self.seed_loss, randomness="different")(self.params, self.buffers, x, y)
        losses.sum().backward()
        self.optimizer.step()
        self.step += 1
        return losses.detach()

    def eval_sums(self, params, buffers, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            logits = functional_call(self.model, (params, buffers), (x,)).float()
        return F.cross_entropy(logits, y, reduction="sum"), (logits.argmax(1) == y).sum()

    @torch.no_grad()
    def evaluate(self) -> list[dict]:
        """`Trainer.evaluate` of every seed, all on the same images at once."""
        self.model.eval()
        sums = vmap(self.eval_sums, in_dims=(0, 0, None, None))
        out = [{} for _ in self.cfgs]
        for name, images in self.eval_sets.items():
            loss = correct = 0
            for xb, yb in images.batches(self.cfg.train.eval_batch_size):
                batch_loss, batch_correct = sums(self.params, self.buffers, xb, yb)
                loss, correct = loss + batch_loss, correct + batch_correct
            for metrics, seed_loss, seed_correct in zip(out, loss.tolist(), correct.tolist()):
                metrics[f"{name}_loss"] = seed_loss / len(images)
                metrics[f"{name}_acc"] = seed_correct / len(images)
        self.model.train()
        return out

    def state_dict(self) -> list[dict]:
        """Each seed's checkpoint, as its single run's Trainer writes it."""
        tensors = {**self.params, **self.buffers}
        optimizer = self.optimizer.state_dict()
        return [{"model": {n: tensors[n][k].detach().clone() for n in self.state_keys},
                 "optimizer": seed_slice(optimizer, k), "scheduler": self.scheduler.state_dict(),
                 "step": self.step, "config_hash": checkpoint.config_hash(cfg), "probe": None, **events}
                for k, (cfg, events) in enumerate(zip(self.cfgs, self.events.state_dict()))]

    def load_state_dict(self, states: list[dict]) -> None:
        tensors = {**self.params, **self.buffers}
        with torch.no_grad():
            for name in self.state_keys:
                tensors[name].copy_(torch.stack([s["model"][name] for s in states]))
        self.optimizer.load_state_dict(stacked([s["optimizer"] for s in states]))
        self.scheduler.load_state_dict(states[0]["scheduler"])
        self.step = states[0]["step"]
        self.events.load_state_dict(states)

    def save_checkpoint(self) -> None:
        for state, path in zip(self.state_dict(), self.checkpoint_paths):
            checkpoint.save_atomic(state, path)

    def interrupt(self, reason: str):
        raise Interrupted(f"{reason} at step {self.step}: every seed's checkpoint written; relaunch "
                          "the same command to resume")
