"""Shared helpers: compose the project's Hydra configs, and a tiny fast run on synthetic data."""
from __future__ import annotations

import pytest

from repro.train import CONF, compose_config  # noqa: F401  (CONF: re-exported for tests)

# Synthetic 28x28 data, 16 steps per epoch; with the tiny ViT a couple of seconds per run.
FAST = ["data=synthetic", "train.epochs=2", "train.batch_size=32", "train.eval_batch_size=128",
        "train.train_eval_size=128", "train.log_every=2", "train.progress=false", "logger=none",
        "optim.warmup_epochs=0.5", "optim.lr=3e-3", "threads=1"]
TINY = FAST + ["model.embed_dim=32", "model.depth=2", "model.num_heads=2"]


def make_cfg(*overrides: str):
    return compose_config(overrides)


@pytest.fixture
def tiny_cfg():
    return lambda *extra: make_cfg(*TINY, *extra)
