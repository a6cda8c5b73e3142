"""The paper's idea in one place: drop-rate schedules (standard / early / late) and writing the
step's rate into a model.

`DropSchedule.from_config` is the only place a run's cutoff and per-step rates are worked out;
`DropSchedule.max_rates` says what to build the model with, `rate(step)` what a step uses and
`controller(model)` writes it. `drop_schedule` follows the official code's semantics exactly
(docs/paper.md section 2): one value per optimizer step. `DropController` writes the value of
the current step into every dropout site or, for stochastic depth, into every block's DropPath
scaled by the linear depth rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch.nn as nn
from timm.layers import DropPath

from repro.config import DropKind, DropMode, DropShape, values
from repro.models import residual_blocks

MODES, SCHEDULES, KINDS = values(DropMode), values(DropShape), values(DropKind)   # repro/config.py


def cutoff_steps(cutoff_epoch: float, iters_per_epoch: int) -> int:
    """Optimizer steps before the cutoff; fractional cutoff epochs round to the nearest step."""
    return int(round(cutoff_epoch * iters_per_epoch))


def check_schedule(rate: float, epochs: int, cutoff_epoch: float, mode: str, schedule: str) -> None:
    """Raise ValueError, naming the key and the fix, when these settings define no schedule (the
    rules `drop_schedule` follows, and run validation states through it)."""
    if mode not in MODES:
        raise ValueError(f"drop.mode={mode!r} is not one of {MODES}")
    if schedule not in SCHEDULES:
        raise ValueError(f"drop.schedule={schedule!r} is not one of {SCHEDULES}")
    if not 0 <= rate < 1:
        raise ValueError(f"drop.rate={rate!r} must lie in [0, 1), e.g. drop.rate=0.1")
    if mode == "late" and schedule != "constant":
        raise ValueError(f"drop.mode=late with drop.schedule={schedule} is undefined (the paper's late "
                         "dropout switches on at the cutoff); use drop.schedule=constant")
    if mode == "standard" and schedule != "constant":
        raise ValueError(f"drop.mode=standard with drop.schedule={schedule}: a schedule shape needs "
                         "drop.mode=early; use drop.schedule=constant for standard dropout")
    if not 0 <= cutoff_epoch <= epochs:
        raise ValueError(f"drop.cutoff_epoch={cutoff_epoch:g} lies beyond training (train.epochs={epochs}); "
                         f"choose a cutoff in [0, {epochs}] or use drop.cutoff_fraction")


def drop_schedule(rate: float, epochs: int, iters_per_epoch: int, cutoff_epoch: float = 0,
                  mode: str = "standard", schedule: str = "constant") -> np.ndarray:
    """One drop rate per optimizer step, `epochs * iters_per_epoch` values.

    standard: `rate` throughout. early: `rate` (constant), `linspace(rate, 0, C)` (linear), a
    half cosine from `rate` to 0 (cosine), or `linspace(0, rate, C)` (increasing: the control
    that ramps up instead of down) over the first C = cutoff steps, then 0. late: 0 for the first
    C steps, then `rate` (constant only, as in the paper). Settings that define no schedule raise
    ValueError (`check_schedule`).
    """
    check_schedule(rate, epochs, cutoff_epoch, mode, schedule)
    total = epochs * iters_per_epoch
    if mode == "standard":
        return np.full(total, rate, dtype=np.float64)
    before = cutoff_steps(cutoff_epoch, iters_per_epoch)
    if mode == "late":
        return np.concatenate([np.zeros(before), np.full(total - before, rate)])
    if schedule == "constant":
        head = np.full(before, rate, dtype=np.float64)
    elif schedule == "linear":
        head = np.linspace(rate, 0, before)
    elif schedule == "increasing":
        head = np.linspace(0, rate, before)
    else:  # cosine: rate at step 0, exactly 0 at step C-1, like linear
        t = np.arange(before) / max(before - 1, 1)
        head = rate * 0.5 * (1 + np.cos(math.pi * t))
    return np.concatenate([head, np.zeros(total - before)])


def depth_scales(num_blocks: int) -> np.ndarray:
    """The linear depth rule: block i of L gets i / (L - 1) of the rate (0 for a single block).
    timm's `calculate_drop_path_rates` is the same rule rounded to float32; this one stays in
    float64, as every recorded run was trained with it (tests/test_golden.py)."""
    return np.linspace(0, 1, num_blocks) if num_blocks > 1 else np.zeros(num_blocks)


class DropController:
    """Writes a scheduled rate into a model before each optimizer step.

    kind="dropout": every `nn.Dropout` except those whose name ends with one of `exclude` (the
    classifier-head dropout by default: `head_drop` in ViT / Mixer, `head.drop` in Swin /
    ConvNeXt). kind="drop_path": every DropPath of block i of L gets `rate * i / (L - 1)`. Build
    the model with the schedule's maximum so that every site exists.
    """

    def __init__(self, model: nn.Module, kind: str, blocks: list[nn.Module] | None = None,
                 exclude: tuple[str, ...] = ("head_drop", "head.drop")):
        if kind not in KINDS:
            raise ValueError(f"drop.kind={kind!r} is not one of {KINDS}")
        self.kind = kind
        self.sites: list[tuple[nn.Module, float]] = []
        if kind == "dropout":
            self.sites = [(m, 1.0) for name, m in model.named_modules()
                          if isinstance(m, nn.Dropout) and not name.endswith(exclude)]
        elif kind == "drop_path":
            if not blocks:
                raise ValueError(f"drop.kind=drop_path needs a model with residual blocks; "
                                 f"{type(model).__name__} has none. Use drop.kind=dropout.")
            for block, scale in zip(blocks, depth_scales(len(blocks))):
                paths = [m for m in block.modules() if isinstance(m, DropPath)]
                if not paths and scale > 0:
                    raise ValueError("a block has no DropPath: build the model with the "
                                     "schedule's maximum drop-path rate")
                self.sites += [(m, float(scale)) for m in paths]
        if kind != "none" and not self.sites:
            raise ValueError(f"drop.kind={kind} found no site to drop in {type(model).__name__}")

    def apply(self, rate: float) -> None:
        attr = "p" if self.kind == "dropout" else "drop_prob"
        for module, scale in self.sites:
            setattr(module, attr, rate * scale)


def cutoff_epoch(drop, epochs: int) -> float:
    """`cutoff_epoch` if set, else `cutoff_fraction` of the epochs (a drop config, or a mapping
    with those two keys); a fraction outside [0, 1] raises ValueError."""
    if drop.get("cutoff_epoch") is not None:
        return drop["cutoff_epoch"]
    if not 0 <= drop["cutoff_fraction"] <= 1:
        raise ValueError(f"drop.cutoff_fraction={drop['cutoff_fraction']} must lie in [0, 1] (0.1667 = "
                         "the paper's 50 of 300 epochs)")
    return drop["cutoff_fraction"] * epochs


@dataclass(frozen=True)
class DropSchedule:
    """A run's drop schedule: which sites it drives (`kind`) and the rate of every step."""
    kind: str
    rates: np.ndarray

    @classmethod
    def from_config(cls, drop, epochs: int, steps_per_epoch: int) -> DropSchedule:
        """The schedule of drop config `drop`. It drives every site the model was built with
        (`max_rates`) at every step, also when its rates are 0 throughout (a cutoff of 0, a late
        cutoff at the end, a cutoff that rounds to 0 steps): those sites exist at the nominal rate
        and must be set to 0, as the official code does; dropout at a rate of 0 too (the p = 0 arm
        of a sweep: the MLP's own dropouts go to 0). Only stochastic depth at a rate of 0 drives
        nothing: timm builds no drop path for it."""
        rates = (np.zeros(epochs * steps_per_epoch) if drop.kind == "none" else drop_schedule(
            drop.rate, epochs, steps_per_epoch, cutoff_epoch(drop, epochs), drop.mode, drop.schedule))
        return cls("none" if drop.kind == "drop_path" and drop.rate == 0 else drop.kind, rates)

    @staticmethod
    def max_rates(drop) -> dict:
        """Build with the schedule's maximum so that a rate starting at 0 can be switched on later."""
        return {"dropout": drop.rate if drop.kind == "dropout" else 0.0,
                "drop_path": drop.rate if drop.kind == "drop_path" else 0.0}

    def rate(self, step: int) -> float:
        """The rate optimizer step `step` trains with (the last step's after the end)."""
        return float(self.rates[min(step, len(self.rates) - 1)])

    def controller(self, model: nn.Module) -> DropController:
        return DropController(model, self.kind, residual_blocks(model))
