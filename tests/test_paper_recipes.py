"""Each `paper_` experiment (one per row of the paper's Table 1, basic and improved recipes) holds
the official recipe, written out here independently of conf/ so that drift fails CI, and runs a
few steps on CPU through the streaming path on a generated JPEG tree. A recipe keeps its
augmentation whatever data= is chosen; shortened, it is refused while its warmup outlasts training."""
import pytest
from conftest import CONF, compose_config, make_cfg
from writers import write_image_folder

from repro.errors import ConfigError
from repro.loop.run import run
from repro.loop.validate import validate
from repro.optim import scaled_lr

# docs/paper.md sections 5, 6 and 9.
RECIPE = {"train.batch_size": 4096, "optim.name": "adamw", "optim.lr": 4e-3, "optim.lr_base_batch": 4096,
          "optim.weight_decay": 0.05, "optim.warmup_epochs": 50, "optim.min_lr": 1e-6,
          "optim.betas": [0.9, 0.999], "data.name": "imagenet", "data.img_size": 224,
          "data.auto_augment": "rand-m9-mstd0.5-inc1", "data.rrc_scale": [0.08, 1.0],
          "data.interpolation": "bicubic", "data.hflip": True, "data.random_erasing": 0.25,
          "data.crop_pct": 0.875, "data.label_smoothing": 0.1, "drop.cutoff_epoch": 50, "train.amp": False}
BASIC = {"train.epochs": 300, "data.mixup": 0.8, "data.cutmix": 1.0}
IMPROVED = {"train.epochs": 600, "data.mixup": 0.3, "data.cutmix": 0.3}
ALL = ["none", "dropout", "drop_path", "early_dropout", "early_drop_path"]
SD_ONLY = ["none", "drop_path", "early_drop_path"]
ROWS = {"paper_basic_vit_tiny": ("vit_tiny", BASIC, ALL), "paper_basic_mixer_s32": ("mixer_s32", BASIC, ALL),
        "paper_basic_swin_femto": ("swin_femto", BASIC, ALL),
        "paper_basic_convnext_femto": ("convnext_femto", BASIC, SD_ONLY),
        "paper_improved_vit_tiny": ("vit_tiny", IMPROVED, ALL),
        "paper_improved_swin_femto": ("swin_femto", IMPROVED, ALL),
        "paper_improved_convnext_femto": ("convnext_femto", IMPROVED, SD_ONLY)}
RATES = {"dropout": ("standard", 0.1), "drop_path": ("standard", 0.1), "early_dropout": ("early", 0.1),
         "early_drop_path": ("early", 0.5)}


def value(cfg, dotted: str):
    for key in dotted.split("."):
        cfg = cfg[key]
    return list(cfg) if hasattr(cfg, "__len__") and not isinstance(cfg, str) else cfg


def test_every_paper_experiment_is_a_row_of_table_1():
    assert sorted(p.stem for p in (CONF / "experiment").glob("paper_*.yaml")) == sorted(ROWS)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_paper_experiment_holds_the_official_recipe(name):
    model, schedule, methods = ROWS[name]
    grid = make_cfg(f"experiment={name}")
    params = compose_config([f"experiment={name}"], hydra_node=True).hydra.sweeper.params
    assert str(params.drop).split(",") == methods and str(params.seed) == "0"
    for method in methods:
        cfg = make_cfg(f"experiment={name}", f"drop={method}", "data.root=/data/imagenet")
        validate(cfg)
        for key, expected in {**RECIPE, **schedule, "model.name": model}.items():
            assert value(cfg, key) == pytest.approx(expected), (method, key)
        assert scaled_lr(cfg.optim, cfg.train.batch_size) == pytest.approx(4e-3)
        if method in RATES:
            assert (cfg.drop.mode, cfg.drop.rate) == RATES[method]
            assert cfg.drop.schedule == ("linear" if cfg.drop.mode == "early" else "constant")
    assert grid.name == name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ROWS))
def test_paper_experiment_runs_a_few_steps_on_cpu(name, tmp_path):
    write_image_folder(tmp_path / "in", ["a", "b", "c"], per_class=4, size=(48, 40))
    cfg = make_cfg(f"experiment={name}", "drop=early_drop_path", f"data.root={tmp_path / 'in'}",
                   "data.num_classes=3", "data.workers=0", "train.batch_size=4", "train.epochs=1",
                   "drop.cutoff_epoch=0.5", "optim.warmup_epochs=0", "train.eval_batch_size=6",
                   "train.train_eval_size=6", "train.progress=false", "logger=none", "threads=2")
    validate(cfg)
    summary = run(cfg, tmp_path / "run")
    assert summary["steps"] == 3 and 0 <= summary["test_acc"] <= 1


AUGMENTATION = ["data.auto_augment", "data.rrc_scale", "data.interpolation", "data.hflip",
                "data.random_erasing", "data.crop_pct", "data.label_smoothing", "data.mixup", "data.cutmix"]


@pytest.mark.parametrize("data", ["fashion_mnist", "cifar10", "imagenet_subset", "synthetic"])
@pytest.mark.parametrize("recipe, schedule", [("paper_basic", BASIC), ("paper_improved", IMPROVED)],
                         ids=["paper_basic", "paper_improved"])
def test_a_recipe_keeps_its_augmentation_whatever_the_data(recipe, schedule, data, tmp_path):
    """`recipe=paper_basic data=fashion_mnist` used to train without RandAugment, mixup, erasing and
    label smoothing, silently: those keys lived in conf/data/imagenet.yaml alone."""
    cfg = make_cfg(f"recipe={recipe}", f"data={data}")
    assert cfg.data.name == data
    assert {k: value(cfg, k) for k in AUGMENTATION} == {k: ({**RECIPE, **schedule}[k]) for k in AUGMENTATION}
    if data == "synthetic":                                # and it trains so, on the per-image path
        small = ["train.batch_size=32", "train.epochs=1", "drop.cutoff_epoch=0.5", "optim.warmup_epochs=0.1",
                 "data.workers=0", "train.progress=false", "logger=none", "threads=1", "model.embed_dim=16",
                 "model.depth=1", "model.num_heads=2", "train.eval_batch_size=128",
                 "train.train_eval_size=64"]
        assert run(make_cfg(f"recipe={recipe}", "data=synthetic", *small), tmp_path)["steps"] == 512 // 32


def test_a_shortened_recipe_whose_warmup_outlasts_training_is_refused():
    """A paper recipe shortened to 1 epoch kept its 50 warmup epochs (LR 1.1e-6 at step 6)."""
    with pytest.raises(ConfigError, match=r"optim.warmup_epochs=50 is not shorter than training "
                                          r"\(train.epochs=1\): .* use e.g. optim.warmup_epochs=0.167"):
        validate(make_cfg("recipe=paper_basic", "drop=none", "train.epochs=1"))
