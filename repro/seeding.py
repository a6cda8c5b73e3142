"""How a run's randomness is seeded, stated once: seeds mixed from integers (a run's seed, epoch, step,
what the draw is for), and the global generators a step's random draws (dropout masks, drop path) come
from, seeded for its device."""
from __future__ import annotations

import torch


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), so nearby inputs give unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def seed_draws(seed: int, device: torch.device) -> None:
    """What torch.manual_seed(seed) does for draws on `device`: seed the CPU generator and, on a
    GPU, the CUDA ones. On a CUDA build without a GPU torch.manual_seed also queues a lazy CUDA
    seeding with a captured stack trace: ~1 ms a step, most of the loop's overhead there."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
