import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from timm.layers import DropPath

from repro.models import build_model, residual_blocks
from repro.schedules import DropController, depth_scales, drop_schedule

E, N, C, P = 10, 7, 3, 0.1  # epochs, steps per epoch, cutoff epoch, rate


def test_standard_is_constant_everywhere():
    s = drop_schedule(P, E, N, C, "standard", "constant")
    assert s.shape == (E * N,) and np.all(s == P)


def test_early_constant_boundaries():
    s = drop_schedule(P, E, N, C, "early", "constant")
    assert s.shape == (70,)
    assert s[0] == P and s[C * N - 1] == P      # step 0 and cutoff - 1
    assert s[C * N] == 0 and s[-1] == 0         # cutoff and last step


def test_early_linear_matches_linspace_and_hits_zero_before_cutoff():
    s = drop_schedule(P, E, N, C, "early", "linear")
    # Hand values: 21 steps from 0.1 to 0, step k = 0.1 * (1 - k / 20).
    assert s[0] == pytest.approx(0.1)
    assert s[10] == pytest.approx(0.05)
    assert s[C * N - 1] == 0.0                   # exactly 0 at cutoff - 1, as official code
    assert s[C * N] == 0.0 and s[-1] == 0.0
    assert np.all(np.diff(s[:C * N]) < 0)


def test_early_cosine_shape():
    s = drop_schedule(P, E, N, C, "early", "cosine")
    assert s[0] == pytest.approx(P) and s[C * N - 1] == pytest.approx(0, abs=1e-12)
    assert s[10] == pytest.approx(P / 2)         # midpoint of a half cosine
    assert np.all(s[C * N:] == 0)


def test_early_increasing_control_ramps_up_then_stops():
    s = drop_schedule(P, E, N, C, "early", "increasing")
    assert s[0] == 0 and s[C * N - 1] == pytest.approx(P) and s[10] == pytest.approx(P / 2)
    assert np.all(np.diff(s[:C * N]) > 0) and np.all(s[C * N:] == 0)


def test_late_constant_boundaries():
    s = drop_schedule(P, E, N, C, "late", "constant")
    assert s[0] == 0 and s[C * N - 1] == 0
    assert s[C * N] == P and s[-1] == P


def test_fractional_cutoff_rounds_to_steps():
    s = drop_schedule(P, 6, 10, 0.5, "early", "constant")  # 0.5 epoch = 5 steps
    assert np.count_nonzero(s) == 5


@pytest.mark.parametrize("args, match", [
    ((1.0, E, N, C, "early", "linear"), "rate"),
    ((-0.1, E, N, C, "early", "linear"), "rate"),
    ((P, E, N, E + 1, "early", "linear"), "cutoff"),
    ((P, E, N, C, "late", "linear"), "late"),
    ((P, E, N, C, "standard", "linear"), "early"),
    ((P, E, N, C, "sometimes", "constant"), "mode"),
])
def test_bad_schedules_raise(args, match):
    with pytest.raises(ValueError, match=match):
        drop_schedule(*args)


def test_depth_scales_linear_rule():
    assert np.allclose(depth_scales(5), [0, 0.25, 0.5, 0.75, 1])
    assert np.allclose(depth_scales(1), [0])
    from timm.layers import calculate_drop_path_rates  # the same rule, in float32
    for blocks in (2, 6, 12, 24):
        assert np.allclose(depth_scales(blocks), calculate_drop_path_rates(1.0, blocks), rtol=0, atol=1e-7)


def vit(depth=4, **rates):
    cfg = OmegaConf.create(dict(arch="vit", patch_size=7, embed_dim=24, depth=depth, num_heads=2,
                                mlp_ratio=2.0, head_dropout=0.3))
    return build_model(cfg, num_classes=10, in_chans=1, img_size=28, **rates)


def mixer(depth=4, **rates):
    cfg = OmegaConf.create(dict(arch="mixer", patch_size=7, embed_dim=24, depth=depth,
                                head_dropout=0.3))
    return build_model(cfg, num_classes=10, in_chans=1, img_size=28, **rates)


def test_dropout_sites_are_the_papers_and_skip_the_head():
    model = vit(depth=4, dropout=0.1)
    ctl = DropController(model, "dropout")
    assert len(ctl.sites) == 1 + 4 * 4            # pos_drop + attn, proj, mlp drop1, drop2
    ctl.apply(0.37)
    assert model.head_drop.p == 0.3               # head dropout untouched
    assert model.pos_drop.p == 0.37 and model.blocks[3].attn.attn_drop.p == 0.37
    assert model.blocks[0].mlp.drop2.p == 0.37


@pytest.mark.parametrize("build", [vit, mixer])
def test_drop_path_gets_linear_depth_rule(build):
    model = build(depth=5, drop_path=0.5)
    ctl = DropController(model, "drop_path", residual_blocks(model))
    ctl.apply(0.4)
    for i, block in enumerate(model.blocks):
        probs = [m.drop_prob for m in block.modules() if isinstance(m, DropPath)]
        assert all(p == pytest.approx(0.4 * i / 4) for p in probs)
        assert probs or i == 0                    # timm makes block 0 Identity in a ViT


def test_drop_path_needs_blocks():
    with pytest.raises(ValueError, match="residual blocks"):
        DropController(torch.nn.Sequential(torch.nn.Linear(2, 2)), "drop_path", [])


def test_drop_schedule_is_the_one_place_rates_are_worked_out():
    from omegaconf import OmegaConf

    from repro.schedules import DropSchedule
    drop = OmegaConf.create(dict(kind="dropout", mode="early", schedule="linear", rate=0.3,
                                 cutoff_epoch=None, cutoff_fraction=0.5))
    s = DropSchedule.from_config(drop, 4, 10)              # cutoff: half of 4 epochs = step 20
    assert s.kind == "dropout"
    assert np.allclose(s.rates, np.concatenate([np.linspace(0.3, 0, 20), np.zeros(20)]))
    assert s.rate(0) == 0.3 and s.rate(20) == 0 and s.rate(10_000) == s.rate(39)
    drop.cutoff_epoch = 1.0                                # an explicit cutoff epoch wins
    assert np.count_nonzero(DropSchedule.from_config(drop, 4, 10).rates) == 9    # linspace ends at 0
    assert DropSchedule.max_rates(drop) == {"dropout": 0.3, "drop_path": 0.0}
    drop.rate = 0.0                                        # dropout at p = 0: every site driven to 0
    assert DropSchedule.from_config(drop, 4, 10).kind == "dropout"
    drop.kind = "drop_path"                                # s.d. at r = 0: timm builds no site to drive
    assert DropSchedule.from_config(drop, 4, 10).kind == "none"
