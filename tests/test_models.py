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
