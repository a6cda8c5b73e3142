"""Checkpoints written atomically: a temporary file, fsync'd, then renamed over the old one."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from omegaconf import OmegaConf

# Keys that may change between a run and its resumption without changing the result.
RESUME_FREE_KEYS = ("logger", "train.progress", "train.resume", "threads")


def config_hash(cfg) -> str:
    """A digest of everything in the config that shapes the run's result."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in RESUME_FREE_KEYS:
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_atomic(state: dict, path: Path) -> None:
    """Write `state` so that `path` always holds either the old or the new checkpoint, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path, map_location="cpu") -> dict | None:
    """The checkpoint at `path`, or None when there is none."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises several kinds on a truncated file
        raise RuntimeError(f"checkpoint {path} is unreadable ({err}); delete it to restart the "
                           "run from scratch, or point hydra.run.dir at another directory") from err
