"""run_batched(cfg, seeds, run_dirs): `cfg` trained for each of `seeds` in one process, as one
batched model (repro.loop.seed_batch), seed k's run in `run_dirs[k]` with the records a single run
writes (config.yaml, provenance.json, metrics.jsonl, checkpoint.pt, plot.png, summary.json,
COMPLETE), so that results and the ledger collect them as runs like any other.

Seed k's config is `cfg` with `seed: k` and `seed_batch: seeds`: a seed's dropout masks depend on
its batch, so a directory holding one batch's run refuses another batch's or a single run's, and
their provenance (`batched: K`) puts them in a hardware kind of their own ('cpu (batched)'). The
launch is a single run's (repro.loop.run.run_all): every check first (options the batched model
does not support stop it with a ConfigError naming them, repro.loop.validate.check_seed_batch),
finished seeds are not trained again, interrupted ones resume, bitwise on CPU.
"""
from __future__ import annotations

import copy

from omegaconf import open_dict

from repro.errors import ConfigError
from repro.loop.run import run_all


def seed_configs(cfg, seeds) -> list:
    """`cfg` once per seed, each recording its batch (`seed_batch`, which composed configs leave
    out as they do every optional key)."""
    cfgs = []
    for seed in seeds:
        seed_cfg = copy.deepcopy(cfg)
        with open_dict(seed_cfg):
            seed_cfg.seed, seed_cfg.seed_batch = seed, list(seeds)
        cfgs.append(seed_cfg)
    return cfgs


def run_batched(cfg, seeds: list[int], run_dirs) -> list[dict]:
    """Train `cfg` for every seed in `seeds`, seed k in `run_dirs[k]`; return each seed's final
    metrics (its summary.json), or {"interrupted": why, "steps": n} per seed when stopped."""
    if not seeds:
        raise ConfigError("seeds=[]: give one or more distinct integer seeds, e.g. seeds=0,1,2,3")
    return run_all(seed_configs(cfg, seeds), run_dirs)
