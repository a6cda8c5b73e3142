"""A learnable synthetic image set for tests: a fixed random prototype per class plus noise."""
from __future__ import annotations

import torch

from repro.data import ImageData, register

CHUNK = 1024   # images made at a time: float temporaries stay small at 224 px. A multiple of 16,
               # so the chunks draw the same numbers as one call would (torch fills normals by 16s)


@register("synthetic")
def load(cfg) -> ImageData:
    gen = torch.Generator().manual_seed(cfg.get("seed", 0))
    shape = (cfg.in_chans, cfg.img_size, cfg.img_size)
    prototypes = torch.rand((cfg.num_classes, *shape), generator=gen) * 255

    def sample(n):
        y = torch.randint(cfg.num_classes, (n,), generator=gen)
        x = torch.empty((n, *shape), dtype=torch.uint8)
        for i in range(0, n, CHUNK):
            labels = y[i:i + CHUNK]
            noise = torch.randn((len(labels), *shape), generator=gen) * cfg.get("noise", 40.0)
            x[i:i + CHUNK] = (prototypes[labels] + noise).clamp(0, 255)
        return x, y

    return ImageData(*sample(cfg.num_train), *sample(cfg.num_test), num_classes=cfg.num_classes)
