"""Hydra entry point: `python -m repro.train [overrides]` (console script `repro-train`)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from repro import distributed, rundir
from repro.config import register_schemas
from repro.errors import BusyError, ConfigError, DataError, refuse
from repro.run import run

# A token for run directory names, so jobs started in the same second never collide. Cached in
# the config like Hydra's ${now:}, so that submitit jobs and their requeues (which carry the
# launcher's config cache) resolve the same directory and resume there.
PROCESS_TOKEN = f"{os.getpid()}-{secrets.token_hex(2)}"
OmegaConf.register_new_resolver("uid", lambda: PROCESS_TOKEN, replace=True, use_cache=True)
# Integer division, at least 1: configs that couple two settings, e.g. epochs that grow as the
# training set shrinks (`${idiv:180000,${data.train_subset}}`: the same number of steps).
OmegaConf.register_new_resolver("idiv", lambda a, b: max(1, int(a) // int(b)), replace=True)


CONF = Path(__file__).resolve().parents[1] / "conf"
register_schemas()


def compose_config(overrides=(), hydra_node: bool = False) -> DictConfig:
    """The config `python -m repro.train OVERRIDES` would run, for scripts and tests (with the
    `hydra` node, e.g. an experiment's sweeper grid, if asked)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_node)


def hydra_record(cfg: DictConfig) -> dict[str, str]:
    """Hydra's own record of the launch (.hydra/), which Hydra is told not to write itself
    (hydra.output_subdir: null) so that a refused launch changes nothing."""
    hydra_cfg = HydraConfig.get()
    return {".hydra/config.yaml": OmegaConf.to_yaml(cfg),
            ".hydra/hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})),
            ".hydra/overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task)}


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")   # absolute: repro-train too
def main(cfg: DictConfig) -> float | None:
    try:
        summary = run(cfg, HydraConfig.get().runtime.output_dir, hydra_record(cfg))
    except (ConfigError, DataError, BusyError) as err:
        refuse(err)
    finally:
        rundir.remove_created()          # a refused run leaves no folder behind
        distributed.teardown()
    return None if "interrupted" in summary else summary["test_acc"]


if __name__ == "__main__":
    main()
