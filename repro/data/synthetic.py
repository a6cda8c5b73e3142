"""A learnable synthetic image set for tests: a fixed random prototype per class plus noise."""
from __future__ import annotations

import torch

from repro.data import ImageData, register


@register("synthetic")
def load(cfg) -> ImageData:
    gen = torch.Generator().manual_seed(cfg.get("seed", 0))
    shape = (cfg.in_chans, cfg.img_size, cfg.img_size)
    prototypes = torch.rand((cfg.num_classes, *shape), generator=gen) * 255

    def sample(n):
        y = torch.randint(cfg.num_classes, (n,), generator=gen)
        noise = torch.randn((n, *shape), generator=gen) * cfg.get("noise", 40.0)
        return (prototypes[y] + noise).clamp(0, 255).to(torch.uint8), y

    return ImageData(*sample(cfg.num_train), *sample(cfg.num_test), num_classes=cfg.num_classes)
