"""Shared helpers: compose the project's Hydra configs, a tiny fast run on synthetic data, the
gradient metrics' brute-force references, fake run folders as run() leaves them, and a script loader."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch.nn.functional as F
from omegaconf import OmegaConf

from repro.compose import compose_config
from repro.paths import CONF, ROOT  # noqa: F401  (re-exported for tests)
from repro.report.drift import FAST, TINY  # noqa: F401  (tiny runs on synthetic data: the golden cases' config)


def make_cfg(*overrides: str):
    return compose_config(overrides)


@pytest.fixture
def tiny_cfg():
    return lambda *extra: make_cfg(*TINY, *extra)


def ce(logits, y):
    return F.cross_entropy(logits, y)


def brute_noise_to_signal(g: np.ndarray, batch_size: int) -> dict:
    trace = np.trace(np.cov(g.T, ddof=1))
    signal = np.sum(g.mean(0) ** 2) - trace / len(g)
    return {"grad_noise": batch_size * trace, "grad_signal": signal,
            "noise_to_signal": batch_size * trace / signal}


def fake_run(folder: Path, kind: str, mode: str, seed: int, acc: float, loss: float,
             status: str = "complete", train_acc: float | None = None) -> None:
    """A run directory as run() leaves it, with two evaluations (the last with the full model's
    training accuracy `train_acc`, where given) and two analysis events."""
    folder.mkdir(parents=True)
    config = {"name": "early_regime", "seed": seed, "model": {"name": "vit_micro"},
              "data": {"name": "fashion_mnist", "train_subset": None}, "train": {"epochs": 2},
              "drop": {"kind": kind, "mode": mode, "schedule": "constant",
                       "rate": 0.0 if kind == "none" else 0.1, "cutoff_epoch": None,
                       "cutoff_fraction": 0.5}}
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    events = [{"event": "analysis", "step": 0, "grad_norm": 1.0 + seed, "model_distance": 0.0,
               "grad_direction_variance": 0.5, "grad_direction_error": 0.4, "bias": 0.1, "variance": 1.0},
              {"event": "train", "step": 10, "loss": 2.0, "drop_rate": 0.1},
              {"event": "eval", "step": 10, "epoch": 1, "test_acc": acc - 0.1, "train_full_loss": loss + 0.5},
              {"event": "analysis", "step": 10, "grad_norm": 0.5 + seed, "model_distance": 2.0,
               "grad_direction_variance": 0.3, "grad_direction_error": 0.2, "bias": 0.1, "variance": 0.5},
              {"event": "train", "step": 20, "loss": 1.0, "drop_rate": 0.0},
              {"event": "eval", "step": 20, "epoch": 2, "test_acc": acc, "train_full_loss": loss,
               **({"train_full_acc": train_acc} if train_acc is not None else {})}]
    if status == "crashed":
        events = events[:3]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if status in ("complete", "tampered"):
        digest = hashlib.sha256((folder / "metrics.jsonl").read_bytes()).hexdigest()
        (folder / "COMPLETE").write_text(json.dumps({"metrics_sha256": digest}))
    if status == "tampered":
        with open(folder / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"event": "eval", "step": 30, "test_acc": 1.0}) + "\n")
    if status == "running":
        (folder / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))


ACC = {("none", "standard"): [0.79, 0.80, 0.80], ("dropout", "early"): [0.80, 0.82, 0.81]}
LOSS = {("none", "standard"): [0.60, 0.58, 0.59], ("dropout", "early"): [0.55, 0.54, 0.54]}


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "multirun"
    for (kind, mode), accs in ACC.items():
        for seed, acc in enumerate(accs):
            fake_run(root / f"{kind}-{mode}-{seed}", kind, mode, seed, acc, LOSS[kind, mode][seed])
    fake_run(root / "crashed", "none", "standard", 7, 0.1, 9.0, status="crashed")
    fake_run(root / "live", "none", "standard", 8, 0.1, 9.0, status="running")
    fake_run(root / "edited", "none", "standard", 9, 0.1, 9.0, status="tampered")
    return root


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
