"""Optimizer and per-step learning-rate schedule, both from timm.

timm's `create_optimizer_v2` already leaves 1-D parameters, biases and the model's
`no_weight_decay()` set (pos_embed, cls_token) out of weight decay. The schedule is linear warmup
then cosine, evaluated per optimizer step; a constant rate is cosine with `min_lr == lr`.
"""
from __future__ import annotations

from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler


def scaled_lr(cfg, batch_size: int) -> float:
    """`optim.lr`, scaled linearly by batch / `optim.lr_base_batch` when that is set (paper: 4096)."""
    base = cfg.get("lr_base_batch")
    return cfg.lr * batch_size / base if base else cfg.lr


def build_optimizer(model, cfg, batch_size: int, total_steps: int, steps_per_epoch: int):
    lr = scaled_lr(cfg, batch_size)
    extra = {k: tuple(cfg[k]) if k == "betas" else cfg[k]
             for k in ("betas", "momentum", "eps", "fused") if cfg.get(k) is not None}
    optimizer = create_optimizer_v2(model, opt=cfg.name, lr=lr, weight_decay=cfg.weight_decay,
                                    **extra)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    scheduler = CosineLRScheduler(
        optimizer, t_initial=max(total_steps - warmup, 1), lr_min=min(cfg.min_lr, lr),
        warmup_t=warmup, warmup_lr_init=min(cfg.warmup_lr, lr), warmup_prefix=True,
        t_in_epochs=False)
    return optimizer, scheduler
