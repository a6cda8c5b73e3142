"""Datasets held in memory as uint8 tensors, found through a registry keyed by `data.name`.

Each loader returns an `ImageData`; `load_data` applies the options every dataset shares
(a fixed training subset) and computes the per-channel normalization from the training images.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from repro.errors import ConfigError

DATASETS: dict[str, Callable[..., ImageData]] = {}


def register(name: str):
    def add(loader):
        DATASETS[name] = loader
        return loader
    return add


@dataclass
class ImageData:
    """Train and test images as uint8 [N, C, H, W] with int64 labels."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @cached_property
    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training images, in [0, 1] units (computed once)."""
        x = self.train_x.float().div_(255)
        return x.mean(dim=(0, 2, 3)).cpu(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).cpu()

    def to(self, device) -> ImageData:
        """The images on `device`, with the same statistics: one copy that trainers then share."""
        moved = ImageData(*(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)),
                          num_classes=self.num_classes)
        moved.__dict__["mean_std"] = self.mean_std        # cached_property's slot
        return moved


def default_root() -> Path:
    """Where downloads and caches go unless `data.root` says otherwise ($REPRO_DATA overrides)."""
    return Path(os.environ.get("REPRO_DATA", "~/.cache/repro/data")).expanduser()


def load_data(cfg) -> ImageData:
    """Load `cfg.name` through its registered loader, then restrict to `cfg.train_subset`."""
    if cfg.name not in DATASETS:
        raise ConfigError(f"data.name={cfg.name!r} is unknown; choose one of {sorted(DATASETS)} "
                          "(conf/data/)")
    data = DATASETS[cfg.name](cfg)
    if cfg.get("train_subset"):
        n = len(data.train_y)
        if not 0 < cfg.train_subset <= n:
            raise ConfigError(f"data.train_subset={cfg.train_subset} must lie in [1, {n}] "
                              f"for {cfg.name}; use null for the whole training set")
        gen = torch.Generator().manual_seed(cfg.get("subset_seed", 0))
        keep = torch.randperm(n, generator=gen)[:cfg.train_subset]
        data.train_x, data.train_y = data.train_x[keep], data.train_y[keep]
    return data


from repro.data import cifar, fashion_mnist, imagenet_subset, synthetic  # noqa: E402,F401 (registers)
