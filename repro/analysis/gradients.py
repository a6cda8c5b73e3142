"""Gradients at a frozen model, without side effects on training.

`isolated` restores the model's mode, buffers (e.g. BatchNorm statistics), `.grad` tensors and
the global RNG states afterwards, so a measurement in the middle of training leaves the run
bitwise unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
import torch.nn as nn

from repro.seeding import seed_draws

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Parameters that train (frozen ones are left out of every flat vector)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def num_trainable(model: nn.Module) -> int:
    return sum(p.numel() for _, p in trainable(model))


def flat_params(model: nn.Module, state: dict | None = None) -> torch.Tensor:
    """The trainable parameters in one flat vector (a copy), in `trainable` order: the model's
    own, or those of a saved `state` dict of it."""
    if state is not None:
        return torch.cat([state[name].flatten() for name, _ in trainable(model)])
    return torch.cat([p.detach().flatten() for _, p in trainable(model)]).clone()


def flat_grad(model: nn.Module, out: torch.Tensor | None = None) -> torch.Tensor:
    """All trainable gradients in one flat vector; a parameter without a gradient gives zeros."""
    params = trainable(model)
    if out is None:
        out = torch.empty(sum(p.numel() for _, p in params), device=params[0][1].device)
    offset = 0
    for _, p in params:
        n = p.numel()
        if p.grad is None:
            out[offset:offset + n].zero_()
        else:
            out[offset:offset + n].copy_(p.grad.flatten())
        offset += n
    return out


def parameter_blocks(model: nn.Module) -> dict[str, list[tuple[int, int]]]:
    """Ranges of the flat vector per block: 'blocks.3' for timm's blocks, else the top-level
    module name ('patch_embed', 'head', ...)."""
    groups: dict[str, list[tuple[int, int]]] = {}
    offset = 0
    for name, p in trainable(model):
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]
        ranges = groups.setdefault(key, [])
        if ranges and ranges[-1][1] == offset:
            ranges[-1] = (ranges[-1][0], offset + p.numel())
        else:
            ranges.append((offset, offset + p.numel()))
        offset += p.numel()
    return groups


def take(flat: torch.Tensor, ranges: list[tuple[int, int]]) -> torch.Tensor:
    """The columns of a block (a view when the block is one contiguous range)."""
    parts = [flat[..., a:b] for a, b in ranges]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


@contextmanager
def isolated(model: nn.Module):
    """Run gradient computations on `model` and leave no trace of them."""
    was_training = model.training
    buffers = [b.clone() for b in model.buffers()]
    grads = [p.grad for p in model.parameters()]
    cuda = [p.device.index or 0 for p in list(model.parameters())[:1] if p.is_cuda]
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            model.train(was_training)
            with torch.no_grad():
                for b, saved in zip(model.buffers(), buffers):
                    b.copy_(saved)
            for p, g in zip(model.parameters(), grads):
                p.grad = g


def gradient(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor,
             out: torch.Tensor | None = None) -> torch.Tensor:
    for _, p in trainable(model):
        p.grad = None
    loss_fn(model(x), y).backward()
    return flat_grad(model, out)


def minibatch_gradients(model: nn.Module, loss_fn: Callable, batches: Batches, num: int,
                        train_mode: bool = True, seed: int | None = None,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """A num x P tensor of mini-batch gradients (written into `out` if given), dropout active
    when `train_mode` (as in training); `seed` fixes the dropout masks."""
    device = next(model.parameters()).device
    grads = torch.empty(num, num_trainable(model), device=device) if out is None else out
    with isolated(model):
        if seed is not None:
            seed_draws(seed, device)
        model.train(train_mode)
        count = 0
        for (x, y), row in zip(batches, grads):
            gradient(model, loss_fn, x, y, out=row)
            count += 1
    if count != num:
        raise ValueError(f"asked for {num} gradients but the batches gave {count}")
    return grads


def full_gradient(model: nn.Module, loss_fn: Callable, batches: Batches) -> torch.Tensor:
    """The gradient of the mean loss over all samples of `batches`, dropout in inference mode
    (the full model): batch gradients of the mean loss weighted by their sample counts."""
    device = next(model.parameters()).device
    total = torch.zeros(num_trainable(model), device=device, dtype=torch.float64)
    buffer = torch.empty(num_trainable(model), device=device)
    samples = 0
    with isolated(model):
        model.eval()
        for x, y in batches:
            total += gradient(model, loss_fn, x, y, out=buffer).double() * len(y)
            samples += len(y)
    if samples == 0:
        raise ValueError("the full gradient needs at least one sample")
    return (total / samples).float()
