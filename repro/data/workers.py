"""Batches whose per-image transforms run in DataLoader workers: timm's augmentation on images
in memory (when it cannot run batched on the device) or decoded from files each epoch.

Determinism as in the batched path: the order of epoch e is a permutation seeded by (seed, e);
sample k of epoch e is transformed under random generators seeded by (seed, e, k), whatever
worker draws it. A resumed run (batch `start` of an epoch) therefore sees exactly the batches an
uninterrupted one sees, and with `shards` ranks each takes its slice of the same global batch,
whatever the number of workers (data.workers; null: one per core this process may use), which
therefore stays out of the config's hash. Workers ignore Ctrl-C (repro.preemption), and an
image that cannot be decoded stops the run with one line from the main process, not the worker.
"""
from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from repro.errors import DataError
from repro.preemption import quiet_worker
from repro.seeding import mix_seed


def worker_count(workers: int | None) -> int:
    """data.workers, or for null one DataLoader process per core this process may use."""
    if workers is not None:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TensorImages(Dataset):
    """uint8 [N, C, H, W] images as PIL images (RGB or L) with their labels."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x.cpu(), y.cpu()

    def __len__(self) -> int:
        return len(self.y)

    def load(self, index: int):
        img = self.x[index].permute(1, 2, 0).numpy()
        return Image.fromarray(img[..., 0] if img.shape[2] == 1 else img), int(self.y[index])


class ImageFiles(Dataset):
    """Image files with labels, decoded on demand. A file that cannot be decoded raises a
    DataError naming it (`bad_images="error"`) or is skipped and reported (`"skip"`)."""

    def __init__(self, paths: list[str], labels: list[int], bad_images: str = "error"):
        self.paths, self.labels, self.bad_images = paths, labels, bad_images

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int):
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                return img.convert("RGB"), self.labels[index]
        except (OSError, ValueError, SyntaxError) as err:
            if self.bad_images == "skip":
                print(f"warning: skipped {path}: cannot decode ({err})", file=sys.stderr)
                return None
            raise DataError(f"{path}: cannot decode this image ({err}); remove or replace it, or set "
                            "data.bad_images=skip to skip such files") from err


class Transformed(Dataset):
    """Items are (epoch, index) keys: image `index` transformed under generators seeded by
    (seed, epoch, index)."""

    def __init__(self, images, transform, seed: int):
        self.images, self.transform, self.seed = images, transform, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        epoch, index = key
        try:
            item = self.images.load(index)
        except DataError as err:          # raised by the main process (`load_batches`)
            return err
        if item is None:
            return None
        s = mix_seed(self.seed, epoch, index, 2)
        random.seed(s)
        np.random.seed(s % 2**32)
        torch.manual_seed(s)
        return self.transform(item[0]), item[1]


def collate(items):
    """Stack the samples that decoded; count those skipped; or the first DataError of the batch."""
    failed = [item for item in items if isinstance(item, DataError)]
    if failed:
        return failed[0]
    kept = [item for item in items if item is not None]
    if not kept:
        return None, None, len(items)
    return torch.stack([x for x, _ in kept]), torch.tensor([y for _, y in kept]), len(items) - len(kept)


def load_batches(data: Transformed, batch_keys: list, workers: int):
    """(x, y, skipped) of each list of keys in `batch_keys`, drawn by `workers` processes."""
    for batch in DataLoader(data, batch_sampler=batch_keys, num_workers=workers, collate_fn=collate,
                            worker_init_fn=quiet_worker, persistent_workers=False):
        if isinstance(batch, DataError):
            raise batch
        yield batch


class WorkerBatches:
    """Training batches from `images` through `transform` in `workers` DataLoader processes;
    the last incomplete batch of an epoch is dropped, as in the batched path."""

    def __init__(self, images, transform, batch_size: int, seed: int, device, workers: int | None,
                 channels_last: bool = False, shard: int = 0, shards: int = 1):
        if batch_size > len(images):
            raise ValueError(f"batch size {batch_size} exceeds the {len(images)} training images")
        self.data = Transformed(images, transform, seed)
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.workers = worker_count(workers)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.shard, self.shards = shard, shards
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def keys(self, epoch: int, start: int) -> list[list[tuple[int, int]]]:
        """This rank's (epoch, index) keys of batches start, start + 1, ... of `epoch`."""
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(
            mix_seed(self.seed, epoch))).tolist()
        per_rank = self.batch_size // self.shards
        return [[(epoch, k) for k in order[i * self.batch_size:(i + 1) * self.batch_size]
                 [self.shard * per_rank:(self.shard + 1) * per_rank]] for i in range(start, len(self))]

    def epoch(self, epoch: int, start: int = 0):
        for x, y, skipped in load_batches(self.data, self.keys(epoch, start), self.workers):
            self.skipped += skipped
            if x is not None:
                yield self.to_device(x), y.to(self.device)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device).contiguous(memory_format=self.memory_format)


class WorkerEvalSet:
    """A fixed, unaugmented evaluation set (this rank's every `shards`-th image) through
    `transform` in DataLoader workers."""

    def __init__(self, images, transform, device, workers: int | None, shard: int = 0, shards: int = 1):
        self.data = Transformed(images, transform, 0)
        self.keys = [(0, k) for k in range(shard, len(images), shards)]
        self.device, self.workers = device, worker_count(workers)

    def __len__(self) -> int:
        return len(self.keys)

    def batches(self, batch_size: int):
        chunks = [self.keys[i:i + batch_size] for i in range(0, len(self.keys), batch_size)]
        for x, y, _ in load_batches(self.data, chunks, self.workers):
            if x is not None:
                yield x.to(self.device), y.to(self.device)
