"""Hydra entry point: `python -m repro.train [overrides]` (console script `repro-train`)."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from repro import distributed
from repro.errors import ConfigError, DataError
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


def compose_config(overrides=(), hydra_node: bool = False) -> DictConfig:
    """The config `python -m repro.train OVERRIDES` would run, for scripts and tests (with the
    `hydra` node, e.g. an experiment's sweeper grid, if asked)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_node)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        summary = run(cfg, run_dir)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        distributed.teardown()
    if "interrupted" in summary:
        return None
    print(f"run directory: {run_dir}\n  metrics.jsonl, checkpoint.pt, plot.png, summary.json\n"
          f"  test accuracy {summary['test_acc']:.4f}, full-model train loss "
          f"{summary['train_full_loss']:.4f}")
    return summary["test_acc"]


if __name__ == "__main__":
    main()
