"""Datasets, found through a registry keyed by `data.name`.

Most loaders return an `ImageData` (uint8 tensors in memory); the ImageFolder loader streams
files instead (repro.data.imagenet). Either gives the Trainer its pipeline: training batches
(`__len__`, `epoch(epoch, start)`) and evaluation sets (`__len__`, `batches(size)`). `load_data`
applies the options every dataset shares (a fixed training subset).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from repro.data.loader import EvalSet, Normalize, TrainBatches, train_eval_indices
from repro.data.transforms import train_transform
from repro.data.workers import TensorImages, WorkerBatches
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

    @property
    def geometry(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def subset(self, keep: torch.Tensor) -> None:
        self.train_x, self.train_y = self.train_x[keep], self.train_y[keep]

    def pipeline(self, cfg, device, world) -> tuple:
        """The training batches and the evaluation sets ('test', and 'train_full': a fixed
        training subset measured with the full model) of this rank. Augmentation runs batched
        on the device, or per image in DataLoader workers when timm's RandAugment is asked for."""
        t, d = cfg.train, cfg.data
        normalize = Normalize(*self.mean_std, device, t.channels_last)
        if d.get("auto_augment"):
            mean, std = self.mean_std
            batches = WorkerBatches(TensorImages(self.train_x, self.train_y), train_transform(d, mean, std),
                                    t.batch_size, cfg.seed, device, d.workers, t.channels_last,
                                    world.rank, world.size)
        else:
            batches = TrainBatches(self.train_x.to(device), self.train_y.to(device), t.batch_size, normalize,
                                   cfg.seed, d.crop_padding, d.hflip, shard=world.rank, shards=world.size)
        probe = train_eval_indices(len(self.train_y), t.train_eval_size)
        shard = slice(world.rank, None, world.size)     # each rank evaluates every size-th image
        return batches, {"test": EvalSet(self.test_x[shard].to(device), self.test_y[shard].to(device),
                                         normalize),
                         "train_full": EvalSet(self.train_x[probe][shard].to(device),
                                               self.train_y[probe][shard].to(device), normalize)}

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
    if cfg.get("train_subset") is not None:
        n = len(data.train_y)
        if not 0 < cfg.train_subset <= n:
            raise ConfigError(f"data.train_subset={cfg.train_subset} must lie in [1, {n}] "
                              f"for {cfg.name}; use null for the whole training set")
        gen = torch.Generator().manual_seed(cfg.get("subset_seed", 0))
        data.subset(torch.randperm(n, generator=gen)[:cfg.train_subset])
    return data


from repro.data import cifar, fashion_mnist, imagenet, imagenet_subset, synthetic  # noqa: E402,F401 (registers)
