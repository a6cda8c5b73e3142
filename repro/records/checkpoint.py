"""Checkpoints that survive crashes: written to a temporary file, fsync'd and renamed; the
previous checkpoint is kept beside the new one; a SHA-256 trailer detects truncation or
corruption, and loading falls back to the previous checkpoint rather than loading half a file.
A write that fails (disk full, permission lost) leaves the checkpoints as they were and stops the
run with WriteFailed, which names the file, the free space and the fix."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import torch
from omegaconf import OmegaConf

from repro.config import RESUME_FREE_KEYS
from repro.errors import DataError, RunError
from repro.records.atomic import replacing

# Keys that may change between a run and its resumption without changing the result (batches are
# a function of (seed, epoch, index) whatever the number of DataLoader workers: data.workers).
HASHED_WORKERS = (4, 8)   # data.workers's defaults while it was hashed (the schema's, imagenet's)
DIGEST = 32  # bytes of the SHA-256 trailer


class CheckpointError(DataError):
    """No readable checkpoint although one exists: the message says which and what to do."""


class WriteFailed(RunError):
    """A run's file could not be written: the checkpoints and metrics.jsonl are as they were."""

    def __init__(self, path, err: OSError, saved_at: int | None):
        path = Path(path)
        folder = next(p for p in path.parents if p.exists())
        free = shutil.disk_usage(folder).free / 2**30
        kept = (f"the checkpoint of step {saved_at} and metrics.jsonl are kept, and relaunching the same "
                "command resumes from it" if saved_at is not None else
                "no checkpoint was written before it, and relaunching the same command starts over")
        super().__init__(f"cannot write {path} ({err.strerror or err}; {free:.2f} GiB free on its file "
                         f"system); {kept}. Free space there (or restore write access to {path.parent}), "
                         "then relaunch")


def config_hash(cfg, workers: int | None = None) -> str:
    """A digest of everything in the config that shapes the run's result; with `workers`, the
    digest runs recorded while data.workers was hashed, for data.workers=`workers`. seed_batch
    enters it only when set (a seed batch's seed), so a single run's digest is the one it had
    before the schema declared the key."""
    config = OmegaConf.to_container(cfg, resolve=True)
    if config.get("seed_batch") is None:
        config.pop("seed_batch", None)
    for key in RESUME_FREE_KEYS:
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    if workers is not None:
        config["data"]["workers"] = workers
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def matches(stored: str, cfg, recorded: Path) -> bool:
    """`stored` (a checkpoint's or COMPLETE marker's hash) is `cfg`'s: its config_hash, or for a run
    recorded while data.workers was hashed, that digest with the worker count its config.yaml
    (`recorded`) holds, or one of the defaults of then (HASHED_WORKERS)."""
    if stored == config_hash(cfg):
        return True
    then = OmegaConf.load(recorded).data.get("workers") if Path(recorded).is_file() else None
    return any(stored == config_hash(cfg, w) for w in {then, *HASHED_WORKERS} if isinstance(w, int))


def previous(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_atomic(state: dict, path: Path, keep_previous: bool = True) -> None:
    """Write `state` so that a crash at any moment leaves a whole checkpoint behind."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    with replacing(path, durable=True) as tmp:
        write_payload(tmp, payload)
        if keep_previous and path.is_file():
            os.replace(path, previous(path))


def write_payload(path: Path, payload: bytes) -> None:
    """A checkpoint file: the serialized state followed by its SHA-256 trailer."""
    path.write_bytes(payload + hashlib.sha256(payload).digest())


def read_verified(path: Path, map_location) -> dict:
    """The checkpoint at `path`; raises CheckpointError if truncated or corrupt."""
    raw = path.read_bytes()
    payload, digest = raw[:-DIGEST], raw[-DIGEST:]
    if len(raw) <= DIGEST or hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path} is truncated or corrupt (checksum mismatch)")
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)


def load(path: Path, map_location="cpu") -> dict | None:
    """The newest whole checkpoint (`path`, else its previous copy), or None when there is none."""
    candidates = [p for p in (path, previous(path)) if p.is_file()]
    errors = []
    for candidate in candidates:
        try:
            state = read_verified(candidate, map_location)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        if errors:
            warnings.warn(f"{errors[0]}; resuming from the previous checkpoint {candidate}")
        return state
    if errors:
        raise CheckpointError("; ".join(errors) + ". No whole checkpoint is left: delete them to "
                              "restart the run from scratch (or set train.resume=false), or choose "
                              "another hydra.run.dir")
    return None
