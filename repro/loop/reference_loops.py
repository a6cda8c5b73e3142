"""Training loops to measure ours against (scripts/bench.py): what one writes by hand (AdamW, bf16
autocast, nothing else) and the official code's way (a DataLoader with per-image CPU transforms
feeding that loop)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2


def bare_loop(model, batches, cfg, device):
    """What one would write by hand: AdamW, bf16 autocast on CUDA, nothing else. `batches()`
    gives one segment's batches."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    amp = cfg.train.amp and device.type == "cuda"

    def segment():
        for x, y in batches():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    return segment


class Images(Dataset):
    """uint8 images transformed one by one on the CPU, as torchvision datasets are."""

    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def dataloader_loop(model, data, cfg, device, steps: int, workers: int):
    """The official code's way: a DataLoader (workers, pinned memory) with per-image crop, flip
    and normalization on the CPU, feeding an eager AMP loop. Each segment starts a new epoch's
    iterator, so it is timed making its own batches (as at an epoch's start), never served from
    batches prefetched while other variants were timed (README, Benchmark: on an H100 the variant
    timed right after a persistent iterator ran at half the speed of its twins)."""
    mean, std = data.mean_std
    transform = v2.Compose([v2.RandomCrop(cfg.data.img_size, padding=cfg.data.crop_padding),
                            v2.RandomHorizontalFlip(0.5 if cfg.data.hflip else 0.0),
                            v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean.tolist(), std.tolist())])
    loader = DataLoader(Images(data.train_x, data.train_y, transform), batch_size=cfg.train.batch_size,
                        shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                        drop_last=True, persistent_workers=workers > 0)

    def batches():
        for _, (x, y) in zip(range(steps), iter(loader)):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return bare_loop(model, batches, cfg, device)
