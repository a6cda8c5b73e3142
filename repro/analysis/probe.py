"""Measuring the training dynamics at chosen steps of a run (live, or from saved snapshots).

At a measured step s (the model after s optimizer steps) the probe computes |G| mini-batch
gradients on random, unaugmented training batches with dropout as training would apply it at
step s, and the whole-training-set gradient g_hat with dropout off (optionally over a fixed subset,
whose size is recorded). Its randomness comes from its own seed, so measuring leaves training
bitwise unchanged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from repro import checkpoint
from repro.analysis.gradients import (
    flat_params,
    full_gradient,
    minibatch_gradients,
    parameter_blocks,
    take,
    trainable,
)
from repro.analysis.metrics import (
    bias_variance,
    cosine,
    grad_direction_error,
    grad_direction_variance,
    grad_norm,
    inner,
)
from repro.data.loader import eval_batches, mix_seed


def measurement_steps(cfg, total_steps: int) -> list[int]:
    """Explicit `steps`, every `every` steps, and `log_points` log-spaced steps over the first
    `log_first` steps (with step 0), all within [0, total_steps]."""
    steps = set(cfg.steps or [])
    if cfg.every:
        steps.update(range(0, total_steps + 1, cfg.every))
    if cfg.log_points and cfg.log_first:
        steps.add(0)
        steps.update(np.unique(np.round(np.geomspace(1, cfg.log_first, cfg.log_points))).astype(int).tolist())
    return sorted(s for s in steps if 0 <= s <= total_steps)


def cross_entropy(logits, y):
    return F.cross_entropy(logits.float(), y)


class DynamicsProbe:
    """Computes the paper's four metrics, and more, for a Trainer's model at its current step."""

    def __init__(self, cfg, trainer, initial: torch.Tensor):
        self.cfg, self.initial = cfg, initial
        self.steps = measurement_steps(cfg, trainer.total_steps)
        self.batch_size = cfg.batch_size or trainer.cfg.train.batch_size
        x, y = trainer.batches.x, trainer.batches.y
        if cfg.full_subset:
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
            keep = keep[:cfg.full_subset].to(x.device)
            x, y = x[keep], y[keep]
        self.full_x, self.full_y = x, y
        self.blocks = parameter_blocks(trainer.model) if cfg.per_block else {}
        self.recent: dict[int, torch.Tensor] = {}   # parameters at s-2 and s-1, for update cosine

    def after_step(self, trainer) -> None:
        """Keep the parameters of the two steps before a measurement (for the update cosine)."""
        s = trainer.step
        if s + 1 in self.steps or s + 2 in self.steps:
            self.recent[s] = flat_params(trainer.model)
        self.recent = {k: v for k, v in self.recent.items() if k >= s - 2}

    def state_dict(self) -> dict:
        return {"recent": self.recent}

    def load_state_dict(self, state: dict) -> None:
        self.recent = state["recent"]

    def random_batches(self, trainer, step: int):
        gen = torch.Generator().manual_seed(mix_seed(self.cfg.seed, step))
        x, y, n = trainer.batches.x, trainer.batches.y, len(trainer.batches.y)
        for _ in range(self.cfg.num_grads):
            idx = torch.randperm(n, generator=gen)[:self.batch_size].to(x.device)
            yield trainer.normalize(x[idx]), y[idx]

    def measure(self, trainer) -> dict:
        step, model = trainer.step, trainer.model
        if trainer.controller.kind != "none":          # dropout as step `step` would apply it
            trainer.controller.apply(float(trainer.rates[min(step, trainer.total_steps - 1)]))
        grads = minibatch_gradients(model, cross_entropy, self.random_batches(trainer, step),
                                    self.cfg.num_grads, seed=mix_seed(self.cfg.seed, step, 2))
        full = full_gradient(model, cross_entropy, eval_batches(
            self.full_x, self.full_y, self.cfg.full_batch_size, trainer.normalize))
        out = {"full_set_size": len(self.full_y), "num_grads": self.cfg.num_grads,
               "drop_rate": float(trainer.rates[min(step, trainer.total_steps - 1)]),
               "model_distance": grad_norm(flat_params(model) - self.initial.to(full.device)),
               **summarize(grads, full)}
        for name, ranges in self.blocks.items():
            block = summarize(take(grads, ranges), take(full, ranges), quiet=True)
            out.update({f"{name}/{k}": v for k, v in block.items()})
        if step - 1 in self.recent and step - 2 in self.recent:
            now = flat_params(model)
            out["update_cosine"] = cosine(now - self.recent[step - 1],
                                          self.recent[step - 1] - self.recent[step - 2])
        return out


def summarize(grads: torch.Tensor, full: torch.Tensor, quiet: bool = False) -> dict:
    """Norms, direction variance / error and bias / variance of a set of gradients. With `quiet`,
    a block whose gradients vanish (e.g. dropped entirely) reports norms only."""
    norms = inner(grads, grads).diagonal().sqrt()
    out = {"grad_norm": norms.mean().item(), "full_grad_norm": grad_norm(full)}
    try:
        out.update(grad_direction_variance=grad_direction_variance(grads),
                   grad_direction_error=grad_direction_error(grads, full),
                   **bias_variance(grads, full))
    except ValueError:
        if not quiet:
            raise
    return out


class SnapshotSaver:
    """Saves the model's weights at the measurement steps, for `repro.analysis.measure` later."""

    def __init__(self, cfg, trainer, folder: Path):
        self.steps, self.folder = measurement_steps(cfg, trainer.total_steps), folder

    def after_step(self, trainer) -> None:
        pass

    def measure(self, trainer) -> None:
        checkpoint.save_atomic(trainer.model.state_dict(), snapshot_path(self.folder, trainer.step),
                               keep_previous=False)

    def state_dict(self) -> None:
        return None


def snapshot_path(folder: Path, step: int) -> Path:
    return folder / f"step_{step:07d}.pt"


def flat_state(model, state: dict) -> torch.Tensor:
    """A model state dict's trainable parameters as one flat vector, in `trainable` order."""
    return torch.cat([state[name].flatten() for name, _ in trainable(model)])


def attach_probe(cfg, trainer, run_dir: Path):
    """The probe for `analysis.mode` (live / snapshot), keeping the initial weights on disk so
    that distances from initialization survive a resume. Call before loading a checkpoint."""
    folder = Path(run_dir) / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    init = snapshot_path(folder, 0)
    if trainer.step == 0 and not init.is_file():
        checkpoint.save_atomic(trainer.model.state_dict(), init, keep_previous=False)
    if cfg.mode == "snapshot":
        return SnapshotSaver(cfg, trainer, folder)
    initial = flat_state(trainer.model, checkpoint.load(init))
    return DynamicsProbe(cfg, trainer, initial)
