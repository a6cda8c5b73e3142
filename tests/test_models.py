import pytest
import torch
from omegaconf import OmegaConf
from test_schedules import mixer, vit
from timm.layers import DropPath

from repro.models import build_model, residual_blocks
from repro.schedules import DropController, drop_schedule

X = torch.randn(8, 1, 28, 28)


def features(model):
    """Pre-logit features: timm zero-initializes the head, so logits alone hide the body."""
    with torch.no_grad():
        return model.forward_features(X)


def stochastic(model) -> bool:
    model.train()
    return not torch.equal(features(model), features(model))


def eval_output(model):
    model.eval()
    return features(model)


@pytest.mark.parametrize("build", [vit, mixer], ids=["vit", "mixer"])
@pytest.mark.parametrize("kind", ["dropout", "drop_path"])
@pytest.mark.parametrize("mode", ["early", "late"])
def test_scheduled_rate_reaches_the_model(build, kind, mode):
    """At step 0 and at the cutoff the train-mode output is random iff the scheduled rate is > 0;
    the eval-mode output never depends on the rate."""
    torch.manual_seed(0)
    model = build(**{kind: 0.5})                 # built with the schedule's maximum
    ctl = DropController(model, kind, residual_blocks(model))
    rates = drop_schedule(0.5, 4, 5, 2, mode, "constant")
    reference = eval_output(model)
    for step in (0, 10):                         # step 0, and the cutoff step (2 epochs x 5)
        ctl.apply(rates[step])
        assert stochastic(model) == (rates[step] > 0), (mode, step, rates[step])
        assert torch.equal(eval_output(model), reference)


@pytest.mark.parametrize("build", [vit, mixer], ids=["vit", "mixer"])
def test_eval_mode_equals_model_built_without_dropout(build):
    torch.manual_seed(0)
    with_drop = build(dropout=0.5, drop_path=0.5)
    torch.manual_seed(0)
    without = build()
    assert torch.equal(eval_output(with_drop), eval_output(without))


@pytest.mark.parametrize("module", [torch.nn.Dropout(0.3), DropPath(0.3)], ids=["dropout", "droppath"])
def test_inverted_dropout_preserves_the_mean_and_is_identity_in_eval(module):
    torch.manual_seed(0)
    x = torch.ones(200_000, 4)
    module.train()
    y = module(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))   # kept units scaled 1/(1-p)
    assert (~kept).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)              # ~5 sigma bound
    module.eval()
    assert torch.equal(module(x), x)


def test_mlp_is_the_classic_network():
    cfg = OmegaConf.create(dict(arch="mlp", hidden=[256, 256], hidden_dropout=[0.2, 0.5],
                                init_std=0.01))
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=10, in_chans=1, img_size=28)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 256), (256, 256), (256, 10)]
    assert [m.p for m in model if isinstance(m, torch.nn.Dropout)] == [0.2, 0.5]
    assert linears[0].weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert all(torch.all(m.bias == 0) for m in linears)


def test_unknown_arch_names_the_choices():
    with pytest.raises(ValueError, match="model.arch='resnet'.*mixer"):
        build_model(OmegaConf.create({"arch": "resnet"}), num_classes=2, in_chans=1, img_size=8)


def small(arch: str, **rates):
    """A few-block Swin or ConvNeXt on 32-px RGB images, fast enough for per-layer tests."""
    cfg = {"swin": dict(arch="swin", patch_size=2, window_size=2, embed_dim=8, depths=[1, 1, 2, 1],
                        stage_heads=[1, 1, 2, 2], mlp_ratio=2.0, head_dropout=0.0),
           "convnext": dict(arch="convnext", depths=[1, 1, 2, 1], dims=[8, 8, 16, 16], head_dropout=0.0)}
    return build_model(OmegaConf.create(cfg[arch]), num_classes=5, in_chans=3, img_size=32, **rates)


RGB = torch.randn(4, 3, 32, 32)


@pytest.mark.parametrize("arch, kind", [("swin", "dropout"), ("swin", "drop_path"),
                                        ("convnext", "drop_path")])
def test_swin_and_convnext_sites_follow_the_schedule(arch, kind):
    """Train-mode output is random iff the scheduled rate is > 0; eval mode never depends on it."""
    torch.manual_seed(0)
    model = small(arch, **{kind: 0.5})
    ctl = DropController(model, kind, residual_blocks(model))
    with torch.no_grad():
        model.eval()
        reference = model.forward_features(RGB)
        for rate in (0.5, 0.0):
            ctl.apply(rate)
            model.train()
            a, b = model.forward_features(RGB), model.forward_features(RGB)
            assert torch.equal(a, b) == (rate == 0), rate
            model.eval()
            assert torch.equal(model.forward_features(RGB), reference)


@pytest.mark.parametrize("arch", ["swin", "convnext"])
def test_drop_path_depth_rule_runs_over_all_stages(arch):
    model = small(arch, drop_path=0.5)
    blocks = residual_blocks(model)
    assert len(blocks) == 5                                  # 1 + 1 + 2 + 1 across the stages
    DropController(model, "drop_path", blocks).apply(0.4)
    for i, block in enumerate(blocks):
        probs = [m.drop_prob for m in block.modules() if isinstance(m, DropPath)]
        assert probs or i == 0                               # block 0: rate 0, timm's Identity
        assert all(p == pytest.approx(0.4 * i / 4) for p in probs)


def test_swin_dropout_sites_are_patch_embedding_attention_projection_and_mlp():
    model = small("swin", dropout=0.1)
    ctl = DropController(model, "dropout")
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if any(m is s for s, _ in ctl.sites)}
    assert names == {"pos_drop", "attn_drop", "proj_drop", "drop1", "drop2"} and len(ctl.sites) == 1 + 5 * 4


def test_convnext_has_no_dropout_sites():
    with pytest.raises(ValueError, match="stochastic depth only"):
        small("convnext", dropout=0.1)


@pytest.mark.parametrize("name, params", [("swin_femto", 5.13e6), ("convnext_femto", 5.22e6)])
def test_femto_models_have_the_papers_size(name, params):
    from conftest import CONF
    cfg = OmegaConf.load(CONF / "model" / f"{name}.yaml")
    model = build_model(cfg, num_classes=1000, in_chans=3, img_size=224, drop_path=0.1)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.05)
    assert len(residual_blocks(model)) == 12
