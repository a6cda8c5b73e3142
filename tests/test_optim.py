import math

import pytest
from omegaconf import OmegaConf
from test_schedules import vit

from repro.optim import build_optimizer, scaled_lr

ADAMW = OmegaConf.create(dict(name="adamw", lr=1e-3, lr_base_batch=None, betas=[0.9, 0.999],
                              weight_decay=0.05, warmup_epochs=1, warmup_lr=0.0, min_lr=0.0))


def test_no_weight_decay_on_1d_params_pos_embed_and_cls_token():
    model = vit()
    opt, _ = build_optimizer(model, ADAMW, 128, 100, 10)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decay}
    assert "pos_embed" not in names and "cls_token" not in names
    assert all(not n.endswith(".bias") and "norm" not in n for n in names)
    assert "blocks.0.attn.qkv.weight" in names and "patch_embed.proj.weight" in names
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_warmup_then_cosine_per_step():
    opt, sched = build_optimizer(vit(), ADAMW, 128, total_steps=110, steps_per_epoch=10)
    lrs = []
    for step in (0, 5, 10, 60, 110):
        sched.step_update(step)
        lrs.append(opt.param_groups[0]["lr"])
    # Hand values: linear warmup over 10 steps, then cosine over the remaining 100 steps.
    expected = [0.0, 0.5e-3, 1e-3, 0.5e-3 * (1 + math.cos(math.pi * 50 / 100)), 0.0]
    assert lrs == pytest.approx(expected, abs=1e-12)


def test_lr_scales_with_batch_like_the_paper():
    cfg = OmegaConf.create(dict(lr=4e-3, lr_base_batch=4096))
    assert scaled_lr(cfg, 1024) == pytest.approx(1e-3)


def test_fused_adamw_matches_the_reference_kernel():
    import torch
    results = []
    for fused in (None, True):
        torch.manual_seed(0)
        model = vit()
        opt, _ = build_optimizer(model, OmegaConf.merge(ADAMW, {"fused": fused}), 128, 10, 10)
        assert opt.param_groups[0].get("fused") == fused
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(4, 1, 28, 28)).pow(2).mean().backward()
            opt.step()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)
