"""Measuring the training dynamics at chosen steps of a run (live, or from saved snapshots).

At a measured step s (the model after s optimizer steps) the probe computes |G| mini-batch
gradients on random, unaugmented training batches twice: with the dropout masks as training
would apply them at step s (the paper's measurement), and with the masks off (rate 0, same
batches, same weights). The difference is the masks' own effect; comparing a dropout run's
masks-off values with a no-dropout run's separates the effect of the weights dropout training
reached (docs/paper.md section 4; repro.report.figures.dynamics). The whole-training-set gradient g_hat
is computed with dropout off over a random subset (or the whole set) in two halves, whose
disagreement estimates g_hat's own sampling error.

The probe's randomness (subset, batches, masks) comes from its own seed mixed with the run's
seed: seeds differ in their probe batches, so intervals over seeds include batch-sampling
noise, while both arms of one seed share them and stay paired. Measuring leaves training bitwise
unchanged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from repro.analysis.gradients import (
    flat_params,
    full_gradient,
    minibatch_gradients,
    parameter_blocks,
    take,
)
from repro.analysis.metrics import (
    bias_variance,
    cosine,
    grad_direction_error,
    grad_direction_variance,
    grad_norm,
    inner,
    model_distance,
    noise_to_signal,
    subset_error,
)
from repro.data.loader import eval_batches
from repro.records import checkpoint
from repro.seeding import mix_seed

PROBE = 0x70726F6265   # leads every probe seed, so none equals a training seed (mix_seed(seed, ...))
DECOMPOSED = ("grad_norm", "grad_direction_variance", "grad_direction_error", "noise_to_signal")


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
    """Computes the paper's four metrics, and more, for `model` after a given number of steps.

    It needs no Trainer: the model, its training images (`images.x`, `images.y`: uint8 on the
    device; `images.normalize`), the run's drop schedule with the controller that sets the
    model's drop sites, the run's seed and training batch size, and the initial weights."""

    def __init__(self, cfg, model, images, schedule, controller, run_seed: int, train_batch_size: int,
                 initial: torch.Tensor):
        self.cfg, self.model, self.images, self.initial = cfg, model, images, initial
        self.schedule, self.controller, self.run_seed = schedule, controller, run_seed
        self.train_batch_size = train_batch_size
        self.steps = measurement_steps(cfg, len(schedule.rates))
        self.batch_size = cfg.batch_size or train_batch_size
        keep = torch.randperm(len(images.y), generator=torch.Generator().manual_seed(self.seed()))
        keep = keep[:cfg.full_subset or len(images.y)].to(images.x.device)
        self.full_x, self.full_y = images.x[keep], images.y[keep]
        self.blocks = parameter_blocks(model) if cfg.per_block else {}
        self.recent: dict[int, torch.Tensor] = {}   # parameters at s-2 and s-1, for update cosine

    def seed(self, *parts: int) -> int:
        """The probe's seed for `parts` (step, stream): shared by the arms of one run seed."""
        return mix_seed(PROBE, self.cfg.seed, self.run_seed, *parts)

    def after_step(self, step: int) -> None:
        """Keep the parameters of the two steps before a measurement (for the update cosine)."""
        if step + 1 in self.steps or step + 2 in self.steps:
            self.recent[step] = flat_params(self.model)
        self.recent = {k: v for k, v in self.recent.items() if k >= step - 2}

    def state_dict(self) -> dict:
        return {"recent": self.recent}

    def load_state_dict(self, state: dict) -> None:
        self.recent = state["recent"]

    def random_batches(self, step: int, batch_size: int):
        """num_grads batches of `batch_size` images, drawn by the step (nested across sizes)."""
        gen = torch.Generator().manual_seed(self.seed(step, 0))
        x, y = self.images.x, self.images.y
        for _ in range(self.cfg.num_grads):
            idx = torch.randperm(len(y), generator=gen)[:batch_size].to(x.device)
            yield self.images.normalize(x[idx]), y[idx]

    def whole_set(self) -> tuple[torch.Tensor, float]:
        """g_hat (dropout off) over the subset, from its two halves, and g_hat's sampling error
        against the whole training set's gradient (metrics.subset_error)."""
        half = len(self.full_y) // 2
        parts = [(self.full_x[:half], self.full_y[:half]), (self.full_x[half:], self.full_y[half:])]
        (a, n_a), (b, n_b) = [(full_gradient(self.model, cross_entropy, eval_batches(
            x, y, self.cfg.full_batch_size, self.images.normalize)), len(y)) for x, y in parts]
        full = (a * n_a + b * n_b) / (n_a + n_b)
        return full, subset_error(a, n_a, b, n_b, len(self.images.y))

    def gradients(self, step: int, batch_size: int, rate: float, out: torch.Tensor | None) -> torch.Tensor:
        """The step's mini-batch gradients with the drop sites at `rate` (0: masks off)."""
        if self.controller.kind != "none":
            self.controller.apply(rate)
        return minibatch_gradients(self.model, cross_entropy, self.random_batches(step, batch_size),
                                   self.cfg.num_grads, seed=self.seed(step, 1), out=out)

    def by_masks(self, step: int, batch_size: int, full: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Summaries with the masks "off" and, when the step drops anything, "on" (as trained),
        and the gradients as trained (one buffer for both). Leaves the sites at the step's rate,
        as training sets them."""
        rate = self.schedule.rate(step)
        summaries, grads = {}, None
        for masks, r in (("off", 0.0), ("on", rate)) if rate > 0 else (("off", 0.0),):
            grads = self.gradients(step, batch_size, r, out=grads)
            summaries[masks] = {**summarize(grads, full), **noise_to_signal(grads, batch_size)}
        return summaries, grads

    def measure(self, step: int) -> dict:
        """Everything measured of the model as it is after `step` optimizer steps."""
        full, full_error = self.whole_set()
        masks, grads = self.by_masks(step, self.batch_size, full)
        on, off = masks.get("on", masks["off"]), masks["off"]
        out = {"full_set_size": len(self.full_y), "num_grads": self.cfg.num_grads,
               "batch_size": self.batch_size, "train_batch_size": self.train_batch_size,
               "drop_rate": self.schedule.rate(step),
               "model_distance": model_distance(flat_params(self.model), self.initial),
               "full_grad_error": full_error, **on,
               **{f"masks_off/{k}": v for k, v in off.items() if k != "full_grad_norm"}}
        out.update({f"mask_effect/{k}": on[k] - off[k] for k in DECOMPOSED})
        for name, ranges in self.blocks.items():
            block = summarize(take(grads, ranges), take(full, ranges), quiet=True)
            out.update({f"{name}/{k}": v for k, v in block.items()})
        if step - 1 in self.recent and step - 2 in self.recent:
            now = flat_params(self.model)
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

    def __init__(self, cfg, model, total_steps: int, folder: Path):
        self.model, self.folder = model, folder
        self.steps = measurement_steps(cfg, total_steps)

    def after_step(self, step: int) -> None:
        pass

    def measure(self, step: int) -> None:
        checkpoint.save_atomic(self.model.state_dict(), snapshot_path(self.folder, step), keep_previous=False)

    def state_dict(self) -> None:
        return None


def snapshot_path(folder: Path, step: int) -> Path:
    return folder / f"step_{step:07d}.pt"


def attach_probe(cfg, trainer, folder: Path):
    """The probe for `analysis.mode` (live / snapshot) of a Trainer at step 0 or about to resume,
    keeping the initial weights on disk so that distances from initialization survive a resume.
    Call before loading a checkpoint. `folder`: the run directory's snapshots/."""
    folder.mkdir(parents=True, exist_ok=True)
    init = snapshot_path(folder, 0)
    step = trainer.model_step
    if trainer.step == 0 and not init.is_file():
        checkpoint.save_atomic(step.model.state_dict(), init, keep_previous=False)
    if cfg.mode == "snapshot":
        return SnapshotSaver(cfg, step.model, trainer.total_steps, folder)
    return DynamicsProbe(cfg, step.model, trainer.batches, trainer.schedule, step.controller,
                         trainer.cfgs[0].seed, trainer.cfgs[0].train.batch_size,
                         flat_params(step.model, checkpoint.load(init)))
