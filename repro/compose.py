"""How a run's config is composed from conf/: the resolvers conf/ uses, the schemas Hydra checks
the groups with (repro.config.register_schemas), and `compose_config` for scripts and tests."""
from __future__ import annotations

import os
import secrets

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from repro import paths
from repro.config import register_schemas

# A token for run directory names, so jobs started in the same second never collide. Cached in
# the config like Hydra's ${now:}, so that submitit jobs and their requeues (which carry the
# launcher's config cache) resolve the same directory and resume there.
PROCESS_TOKEN = f"{os.getpid()}-{secrets.token_hex(2)}"
OmegaConf.register_new_resolver("uid", lambda: PROCESS_TOKEN, replace=True, use_cache=True)
# Integer division, at least 1: configs that couple two settings, e.g. epochs that grow as the
# training set shrinks (`${idiv:180000,${data.train_subset}}`: the same number of steps).
OmegaConf.register_new_resolver("idiv", lambda a, b: max(1, int(a) // int(b)), replace=True)


register_schemas()


def compose_config(overrides=(), hydra_node: bool = False) -> DictConfig:
    """The config `python -m repro.train OVERRIDES` would run, for scripts and tests (with the
    `hydra` node, e.g. an experiment's sweeper grid, if asked)."""
    with initialize_config_dir(str(paths.CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_node)
