"""Mini-batches of an in-memory uint8 dataset, augmented as whole batches on the training device.

Everything random is a pure function of (seed, epoch, batch index): the order of an epoch comes
from a generator seeded by (seed, epoch) and each batch's crops and flips from one seeded by
(seed, epoch, batch). A resumed run therefore sees exactly the batches an uninterrupted run sees.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from repro.seeding import mix_seed


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per-image random crops of the zero-padded batch, back to the input size, in one gather."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    oy, ox = (torch.randint(0, 2 * padding + 1, (2, b), generator=gen, device=x.device))
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


class Normalize:
    """uint8 [0, 255] images to float, standardized per channel (channels-last in memory if asked,
    for convolutions on GPUs)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, device, channels_last: bool = False):
        self.mean = (mean * 255).view(1, -1, 1, 1).to(device)
        self.std = (std * 255).view(1, -1, 1, 1).to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)


class TrainBatches:
    """Shuffled, augmented training batches; the last incomplete batch of an epoch is dropped.

    With `shards` > 1 (data parallel), every rank draws the same global batch and augmentation,
    then keeps its own contiguous slice: together the ranks see exactly what one process sees."""

    def __init__(self, x, y, batch_size: int, normalize: Normalize, seed: int,
                 crop_padding: int = 0, hflip: bool = False, shard: int = 0, shards: int = 1):
        if batch_size > len(y):
            raise ValueError(f"batch size {batch_size} exceeds the {len(y)} training images")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.normalize, self.seed = normalize, seed
        self.crop_padding, self.hflip = crop_padding, hflip
        self.shard, self.shards = shard, shards

    def __len__(self) -> int:
        return len(self.y) // self.batch_size

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches `start`, `start + 1`, ... of `epoch`."""
        order = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(
            mix_seed(self.seed, epoch))).to(self.x.device)
        gen = torch.Generator(self.x.device)
        for i in range(start, len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.x[idx]
            gen.manual_seed(mix_seed(self.seed, epoch, i))
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, gen)
            if self.hflip:
                x = random_hflip(x, gen)
            y = self.y[idx]
            if self.shards > 1:
                x, y = x.chunk(self.shards)[self.shard], y.chunk(self.shards)[self.shard]
            yield self.normalize(x), y


def eval_batches(x, y, batch_size: int, normalize: Normalize):
    """Fixed-order, unaugmented batches for evaluation."""
    for i in range(0, len(y), batch_size):
        yield normalize(x[i:i + batch_size]), y[i:i + batch_size]


def train_eval_indices(n: int, size: int) -> torch.Tensor:
    """The fixed training subset the full model is evaluated on (the same for every seed)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:size]


class EvalSet:
    """A fixed, unaugmented evaluation set held on the device."""

    def __init__(self, x, y, normalize: Normalize):
        self.x, self.y, self.normalize = x, y, normalize

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int):
        return eval_batches(self.x, self.y, batch_size, self.normalize)
