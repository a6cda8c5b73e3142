"""Run metrics: `metrics.jsonl` is the source of truth; W&B, when on, mirrors it.

One JSON line per event (`train`, `eval`, ...) with its optimizer step. A W&B failure never stops
training: it is reported once and the mirror switches itself off.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}, the form W&B filters and groups on."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, name + ".") if isinstance(value, dict) else {name: value})
    return flat


class MetricsLog:
    """Appends events to `metrics.jsonl`, flushed per line, and mirrors them to a W&B run.
    With no path (non-zero ranks, benchmarks) it records nothing."""

    def __init__(self, path: Path | None, wandb_run=None):
        self.path = path
        self.file = open(path, "a") if path is not None else None
        self.wandb_run = wandb_run

    def tell(self) -> int:
        return self.file.tell() if self.file else 0

    def truncate(self, offset: int) -> None:
        """Drop events logged after a checkpoint, when resuming from it."""
        if self.file:
            self.file.truncate(offset)
            self.file.seek(offset)

    def log(self, event: str, step: int, **values) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps({"event": event, "step": step, **values}) + "\n")
        self.file.flush()
        if self.wandb_run is not None:
            try:
                self.wandb_run.log({f"{event}/{k}": v for k, v in values.items()}, step=step)
            except Exception as err:
                self.mirror_failed(err)

    def mirror_failed(self, err: Exception) -> None:
        warnings.warn(f"W&B logging failed ({err}); continuing with metrics.jsonl only")
        self.wandb_run = None

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish()
            except Exception as err:
                self.mirror_failed(err)


def start_wandb(cfg_logger, config: dict, run_dir: Path, run_id: str, tags: list[str]):
    """An offline / online W&B run for this run directory, or None (disabled, or it failed)."""
    if cfg_logger.mode == "disabled":
        return None
    try:
        import wandb
        return wandb.init(
            project=cfg_logger.project, entity=cfg_logger.get("entity"),
            group=cfg_logger.get("group"), tags=tags, config=flatten(config),
            name=run_dir.name, id=run_id, resume="allow", dir=str(run_dir),
            mode=cfg_logger.mode, reinit="finish_previous")
    except Exception as err:
        warnings.warn(f"W&B could not start ({err}); continuing with metrics.jsonl only")
        return None
