"""Every config under conf/ composes and passes validation; bad values stop with a clear message."""

import pytest
from conftest import CONF, make_cfg
from omegaconf import OmegaConf

from repro.errors import ConfigError
from repro.loop.validate import validate

GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml"))
          for g in CONF.iterdir() if g.is_dir() and g.name != "experiment"}
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# Some options only make sense together; give each the partner it needs to validate.
PARTNERS = {("model", "vit_tiny"): ["data=imagenet_subset", "data.img_size=224"],
            ("model", "vit_base"): ["data=imagenet_subset", "data.img_size=224"],
            ("model", "mixer_s32"): ["data=imagenet_subset", "data.img_size=224"],
            ("model", "mixer_b16"): ["data=imagenet_subset", "data.img_size=224"],
            ("model", "swin_femto"): ["data=imagenet_subset", "data.img_size=224"],
            ("model", "convnext_femto"): ["data=imagenet_subset", "data.img_size=224",
                                          "drop=early_drop_path"],
            ("data", "cifar10"): ["model.patch_size=4"], ("data", "cifar100"): ["model.patch_size=4"],
            ("data", "imagenet_subset"): ["model.patch_size=8"],
            ("optim", "paper_adamw"): ["train.epochs=300"]}     # its 50 warmup epochs: refused in 3


def test_groups_are_found():
    assert {"data", "model", "drop", "optim", "logger"} <= set(GROUPS)
    assert "seed_mlp_fashion" in EXPERIMENTS


@pytest.mark.parametrize("group, option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_validates(group, option):
    extra = PARTNERS.get((group, option), [])
    if group == "drop" and option in ("drop_path", "early_drop_path", "late_drop_path"):
        extra = extra + ["model=vit_micro"]
    cfg = make_cfg(f"{group}={option}", *extra)
    validate(cfg)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name):
    cfg = make_cfg(f"experiment={name}")
    validate(cfg)
    assert cfg.name == name


def test_seed_mlp_experiment_matches_the_reference_recipe():
    cfg = make_cfg("experiment=seed_mlp_fashion")
    model = cfg.model
    assert (model.arch, list(model.hidden), list(model.hidden_dropout)) == ("mlp", [256, 256], [0.2, 0.5])
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.min_lr, cfg.optim.momentum) == ("momentum", 0.5, 0.5, 0.0)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.drop.kind) == (256, 5, "none")


def test_paper_defaults():
    early, early_sd, late_sd = (make_cfg(f"drop={d}").drop
                                for d in ("early_dropout", "early_drop_path", "late_drop_path"))
    assert (early.rate, early.schedule, early.mode) == (0.1, "linear", "early")
    assert (early_sd.rate, early_sd.schedule) == (0.5, "linear")
    assert (late_sd.rate, late_sd.schedule, late_sd.mode) == (0.4, "constant", "late")
    assert early.cutoff_fraction * 300 == pytest.approx(50, abs=0.1)


BAD = [
    (["drop.rate=1.0"], "drop.rate=1.0 must lie in [0, 1)"),
    (["drop.rate=-0.2"], "drop.rate=-0.2"),
    (["drop=late_dropout", "drop.schedule=linear"], "drop.mode=late with drop.schedule=linear"),
    (["drop=dropout", "drop.schedule=cosine"], "needs drop.mode=early"),
    (["drop.cutoff_epoch=4", "train.epochs=3"], "drop.cutoff_epoch=4 lies beyond training"),
    (["drop.cutoff_fraction=1.5"], "drop.cutoff_fraction=1.5"),
    (["drop.mode=sometimes"], "drop.mode='sometimes' is unknown; choose one of standard, early, late"),
    (["drop.kind=dropblock"], "drop.kind='dropblock' is unknown; choose one of none, dropout, drop_path"),
    (["drop.kind=dropot"], "drop.kind='dropot' is unknown; choose one of none, dropout, drop_path"),
    (["drop.schedule=cosin"], "drop.schedule='cosin' is unknown; choose one of constant, linear, cosine,"),
    (["model.arch=resnet"], "model.arch='resnet' is unknown"),
    (["model.patch_size=5"], "model.patch_size=5 does not divide data.img_size=28"),
    (["data.name=mnist"], "data.name='mnist' is unknown"),
    (["model=mlp", "drop=early_drop_path"], "drop.kind=drop_path has no sites in model.arch=mlp"),
    (["train.batch_size=0"], "train.batch_size=0 must be a positive integer"),
    (["train.accum_steps=3"], "train.accum_steps=3 must divide train.batch_size=128"),
    (["train.ckpt_every=-5"], "train.ckpt_every=-5 must be 0"),
    (["train.nonfinite=ignore"], "train.nonfinite='ignore' is unknown; choose one of stop, skip"),
    (["optim.name=adamx2"], "optim.name='adamx2' is not a timm optimizer"),
    (["optim.lr=0"], "optim.lr=0"),
    (["logger.mode=loud"], "logger.mode='loud'"),
    (["logger.mode=onlin"], "logger.mode='onlin' is unknown; choose one of offline, online, disabled"),
    (["device=tpu"], "device='tpu'"),
    (["data.mixup=0.8", "train.batch_size=127"], "even train.batch_size"),
    (["train.epochs=abc"], "train.epochs: Value 'abc' of type 'str' could not be converted"),
    (["+train.epoch=3"], "train.epoch: Key 'epoch' not in 'TrainConfig'"),
    (["drop.rate=high"], "drop.rate: Value 'high'"),
    (["seed=1.5"], "seed: Value '1.5'"),
    (["model.patch_size=0"], "model.patch_size=0 must be >= 1"),
    (["train.epochs=0"], "train.epochs=0 must be a positive integer"),
    (["train.eval_every=0"], "train.eval_every=0 must be a positive integer"),
    (["train.compile_mode=fast"], "train.compile_mode='fast' is unknown; choose one of default, reduce-"),
    (["train.compile_mode=reduce-overhead"], "needs train.compile=inductor"),
    (["optim.warmup_epochs=-1"], "optim.warmup_epochs=-1"),
    (["data.crop_padding=-2"], "data.crop_padding=-2"),
    (["analysis.mode=sometimes"], "analysis.mode='sometimes' is unknown; choose one of off, live, snapshot"),
    (["analysis.mode=false"], "analysis.mode=False is unknown; choose one of off, live, snapshot (YAML"),
    (["analysis.mode=live", "analysis.every=10", "analysis.num_grads=1"], "analysis.num_grads=1"),
    (["analysis.mode=live"], "no step is selected"),
    (["analysis.full_subset=0"], "analysis.full_subset=0"),
    (["analysis.full_subset=1"], "must be an integer >= 2"),
    (["data.train_subset=0"], "data.train_subset=0 must be a positive number of training images"),
    (["data.train_subset=-5"], "data.train_subset=-5 must be a positive number"),
    (["model=mlp", "train.grad_checkpointing=true"], "train.grad_checkpointing=true needs a block model"),
    (["model=convnext_femto", "data=imagenet_subset", "data.img_size=224"],
     "drop.kind=dropout has no sites in model.arch=convnext"),
    (["model=swin_femto", "data=imagenet_subset", "data.img_size=192"], "2^(stages - 1) = 56"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_input_is_named_with_its_fix(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert message in str(err.value)


def test_unknown_group_option_is_rejected_by_hydra():
    from hydra.errors import MissingConfigException
    with pytest.raises(MissingConfigException, match="vit_huge"):
        make_cfg("model=vit_huge")


@pytest.mark.parametrize("subset, epochs, eval_every", [(1000, 180, 60), (6000, 30, 10), (60000, 3, 1)])
def test_regime_map_steps_gives_every_cell_the_same_number_of_steps(subset, epochs, eval_every):
    cfg = make_cfg("experiment=regime_map_steps", f"data.train_subset={subset}")
    validate(cfg)
    assert (cfg.train.epochs, cfg.train.eval_every) == (epochs, eval_every)
    assert epochs * subset == 180000 and not cfg.data.hflip and cfg.data.crop_padding == 0


def test_dynamics_batch_at_128_is_dynamics_decompose():
    """The training-batch axis takes its batch-128 arm from dynamics_decompose's runs: the two
    configs differ only in their name and the LR rule, which at batch 128 gives the same LR."""
    from repro.optim import scaled_lr
    batch = OmegaConf.to_container(make_cfg("experiment=dynamics_batch", "train.batch_size=128"),
                                   resolve=True)
    decompose = OmegaConf.to_container(make_cfg("experiment=dynamics_decompose"), resolve=True)
    assert batch["optim"].pop("lr_base_batch") == 128 and decompose["optim"].pop("lr_base_batch") is None
    assert (batch["name"], decompose["name"]) == ("dynamics_batch", "dynamics_decompose")
    assert {**batch, "name": None, "logger": None} == {**decompose, "name": None, "logger": None}
    wide = make_cfg("experiment=dynamics_batch", "train.batch_size=1024").optim
    lr = scaled_lr(OmegaConf.create({**batch["optim"], "lr_base_batch": 128}), 128)
    assert lr == decompose["optim"]["lr"]
    assert scaled_lr(wide, 1024) == 8 * decompose["optim"]["lr"]
