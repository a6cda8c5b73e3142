"""The schema (repro/config.py) checks types, unknown keys and each key's choices; the config a run
records (config.yaml, .hydra/config.yaml) and hashes (checkpoint.config_hash, by which finished
and interrupted runs are recognised) is exactly the one composed before the schema took over, and
the worker count is no part of the hash (runs hashed with it are still recognised)."""
import hashlib

import pytest
from conftest import CONF, TINY, make_cfg
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from repro.config import AnalysisConfig, LoggerConfig, TrainConfig, check_schema
from repro.errors import ConfigError
from repro.loop.run_batched import seed_configs
from repro.records.checkpoint import config_hash

# config_hash as recorded at commit e27186d, before the choices became Enums and the train defaults
# moved from conf/config.yaml into TrainConfig, and kept while data.workers was hashed (4 by
# default, 8 for imagenet): checkpoint.config_hash(cfg, workers) still gives it, so runs recorded
# then resume and count as finished. Then, recorded when data.workers left the hash (its default
# null: one worker per core): config_hash and sha256[:16] of OmegaConf.to_yaml resolved (the
# run's config.yaml) and unresolved (.hydra/config.yaml); the digests re-recorded when logger.cell
# joined the schema (the logger is out of the hash: both hashes unchanged).
PINNED = {
    "experiment=early_regime drop=early_dropout seed=3": ("68896fc852bf4b83", "cbba2f5d8ed68aeb",
                                                         "91139c6087139467", "712d8b6c0c96b9ea"),
    "experiment=late_regime drop=late_drop_path": ("cc747398a4d27bd5", "9c580596f0d3e596",
                                                   "e52f315f2b7546de", "790ed55237bc2c70"),
    "": ("e273a1232817232b", "784ea34b4e530429", "d955f3f84e30f2e2", "129ceb6c93c628b6"),
    "experiment=regime_map_steps data.train_subset=1000 drop=none": (
        "67419198d2417ab2", "ec613a0cfdb4064d", "ae582c380001b5a3", "e8f7b506be22932e"),
    "recipe=paper_basic drop=early_drop_path": ("5994b41a0cbe18cb", "ccef27d7b1ab55ff", "864f9e94919554a5",
                                                "166439f6996f4b34"),
    "data=imagenet data.bad_images=skip train.nonfinite=skip": ("0b85e00a0b57beaa", "9e5f881339413c0f",
                                                               "ff32f02ca7b1c04e", "8ae6e3cd651144c6"),
    "experiment=dynamics analysis.mode=snapshot": ("221af225778edc13", "12ea33122adbcbe4",
                                                   "5d060bcbf9a8092f", "e4a6d3be52d2951f"),
}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("overrides", PINNED)
def test_composed_config_and_its_hash_are_unchanged(overrides):
    cfg = make_cfg(*overrides.split())
    then = config_hash(cfg, workers=8 if cfg.data.name == "imagenet" else 4)
    assert (then, config_hash(cfg), digest(OmegaConf.to_yaml(cfg, resolve=True)),
            digest(OmegaConf.to_yaml(cfg))) == PINNED[overrides]
    assert config_hash(make_cfg(*overrides.split(), "data.workers=3")) == config_hash(cfg)


# config_hash as recorded at commit c0d71c7, when a seed batch's seeds entered a seed's config
# through open_dict (the schema did not declare seed_batch): (overrides, batch, seed) -> its hash;
# a single run's (batch None) stays the hash without the key.
BATCH_PINNED = {
    ("", (1, 2, 5), 2): "c8829f7b3420f5ec",
    ("experiment=early_regime", (1, 2, 5), 2): "38ce1424324fc4f6",
    ("experiment=early_regime seed=7", (0, 3), 3): "2859ef5e2fa38195",
    ("experiment=early_regime seed=7", (3,), 3): "a9f35584392e5138",
    ("experiment=early_regime seed=7", None, 7): "241165d758310c0e",
    ("model=vit_micro drop=late_drop_path", (1, 2, 5), 2): "f00fe3602cb2ae81",
    ("model=vit_micro drop=late_drop_path", None, 0): "2dd7c0a70a5d0e3f",
    ("experiment=early_regime", None, 0): "127fe4566f5d7196",
}


@pytest.mark.parametrize("overrides, batch, seed", BATCH_PINNED)
def test_seed_batch_hashes_are_unchanged_and_a_single_run_hashes_without_the_key(overrides, batch, seed):
    cfg = make_cfg(*overrides.split())
    if batch is None:
        with open_dict(cfg):
            cfg.seed_batch = None                    # declared, unset: no part of the hash
    else:
        cfg = next(c for c in seed_configs(cfg, list(batch)) if c.seed == seed)
    assert config_hash(cfg) == BATCH_PINNED[overrides, batch, seed]
    assert check_schema(cfg).seed_batch == (None if batch is None else list(batch))


def test_composed_values_read_as_plain_strings():
    cfg = make_cfg("data=imagenet")
    assert type(cfg.drop.kind) is str and type(cfg.train.nonfinite) is str
    assert type(cfg.logger.mode) is str and type(cfg.analysis.mode) is str
    assert check_schema(cfg).drop.kind == cfg.drop.kind == "dropout"    # the typed copy compares equal
    assert f"{check_schema(cfg).data.interpolation}" == "bicubic"


def test_train_defaults_are_stated_once():
    assert "train" not in OmegaConf.load(CONF / "config.yaml")
    assert OmegaConf.to_container(make_cfg().train) == OmegaConf.to_container(
        OmegaConf.structured(TrainConfig), enum_to_str=True)


def test_analysis_and_logger_defaults_are_stated_once():
    assert not (CONF / "analysis").exists()
    keys = {key for f in (CONF / "logger").glob("*.yaml") for key in OmegaConf.load(f)}
    assert keys == {"defaults", "mode"}
    cfg = make_cfg("logger=none")
    assert OmegaConf.to_container(cfg.analysis) == OmegaConf.to_container(
        OmegaConf.structured(AnalysisConfig), enum_to_str=True)
    logger = (cfg.logger.mode, cfg.logger.project, cfg.logger.group)
    assert logger == ("disabled", LoggerConfig.project, "default")


@pytest.mark.parametrize("override, choices", [("drop.kind=dropot", "none, dropout, drop_path"),
                                               ("drop.mode=erly", "standard, early, late"),
                                               ("logger.mode=onlin", "offline, online, disabled")])
def test_wrong_choice_is_refused_by_run_naming_the_choices(override, choices, tmp_path):
    from repro.loop.run import run
    key, _, value = override.partition("=")
    with pytest.raises(ConfigError, match=f"^{key}='{value}' is unknown; choose one of {choices}$"):
        run(make_cfg(*TINY, override), tmp_path / "run")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("key, value, choices", [
    ("interpolation", "bicubc", "bicubic, bilinear, nearest, random"),
    ("bad_images", "ignore", "error, skip")])
def test_data_choices_are_checked_by_hydra_as_it_composes(key, value, choices):
    with pytest.raises(ConfigCompositionException) as err:     # conf/data files start from data/schema
        make_cfg("data=imagenet", f"data.{key}={value}")
    assert f"expected one of [{choices}]" in str(err.value.__cause__)
    assert f"full_key: data.{key}" in str(err.value.__cause__)


def test_missing_value_is_named():
    cfg = make_cfg()
    cfg.drop.kind = "???"       # OmegaConf's MISSING, e.g. a group file that leaves the key out
    with pytest.raises(ConfigError, match="^drop.kind has no value"):
        check_schema(cfg)
