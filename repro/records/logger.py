"""Run records: `metrics.jsonl` is the source of truth; W&B, when on, mirrors it; `train.log`
holds the run's messages.

One JSON line per event (`train`, `eval`, ...) with its optimizer step. A W&B failure never stops
training: it is reported once and the mirror switches itself off. Each W&B run carries what
results/ groups by (`grouping`: experiment, cell, arm, seed, plan file, numerics kind) as config
keys `grouping.*` and as tags `key:value`, so a dashboard groups like the tables.
"""
from __future__ import annotations

import json
import logging
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

from repro import paths
from repro.arms import method_of, of_method
from repro.records.provenance import hardware_kind

MESSAGES = logging.getLogger("repro")


@contextmanager
def run_messages(path: Path | None):
    """While a run lasts, repro's messages from INFO up, also appended with their time to `path`
    (the run's train.log); with no path (ranks > 0) warnings only, so that one rank speaks."""
    MESSAGES.setLevel(logging.INFO if path else logging.WARNING)
    handler = logging.FileHandler(path) if path else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    MESSAGES.addHandler(handler)
    try:
        yield
    finally:
        MESSAGES.removeHandler(handler)
        handler.close()
        MESSAGES.setLevel(logging.NOTSET)


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
        # W&B takes no step below the one its run starts at: 0 offline, the server's next online
        self.mirror_from = getattr(wandb_run, "step", 0)

    def tell(self) -> int:
        return self.file.tell() if self.file else 0

    def resume_at(self, offset: int) -> None:
        """Continue from a checkpoint's `offset`: drop the events logged after it (training logs
        them again) and mirror the kept ones W&B lacks (all of them offline: each launch's
        offline run is whole, and supersedes the earlier launches')."""
        if self.file is None:
            return
        self.file.truncate(offset)
        self.file.seek(offset)
        with open(self.path) as f:
            for line in f:
                self.mirror(json.loads(line))

    def log(self, event: str, step: int, **values) -> None:
        if self.file is None:
            return
        row = {"event": event, "step": step, **values}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        self.mirror(row)

    def mirror(self, row: dict) -> None:
        if self.wandb_run is None or row["step"] < self.mirror_from:
            return
        values = {f"{row['event']}/{k}": v for k, v in row.items() if k not in ("event", "step")}
        try:
            self.wandb_run.log(values, step=row["step"])
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


def grouping(config: dict, run_dir: Path) -> dict:
    """What results/ groups a run by: its experiment, cell (the values of the keys its config's
    logger.cell names), arm (drop kind/mode and rate), seed, the plan file that governs
    it (results/NAME/plan*.json for its kind and cell, when the run is of one of the plan's arms,
    matched as the tables match them (repro.arms.of_method), and its seed is in the plan; else
    'unplanned') and numerics kind (provenance.hardware_kind, from the run's provenance.json)."""
    flat, name = flatten(config), config.get("name")
    cell = {key: flat.get(key) for key in config.get("logger", {}).get("cell") or ()}
    record = run_dir / "provenance.json"
    kind = hardware_kind(json.loads(record.read_text())) if record.is_file() else "unknown"
    drop = {k: flat.get(f"drop.{k}") for k in ("kind", "mode", "rate")}
    plans = [{**json.loads(p.read_text()), "file": p.name}
             for p in (paths.RESULTS / str(name)).glob("plan*.json")]
    plan = next((p for p in plans if p["hardware"] == kind and p.get("cell") == (cell or None)), None)
    row = {"run": run_dir.name, "drop.kind": drop["kind"], "drop.mode": drop["mode"]}
    seeds = max([n for arm, n in (plan or {}).get("seeds", {}).items() if of_method(row, method_of(arm))],
                default=0)
    return {"experiment": name, "cell": ",".join(f"{k}={v}" for k, v in cell.items()) or "-",
            "arm": f"{drop['kind']}/{drop['mode']} rate {drop['rate']}", "seed": flat.get("seed"),
            "plan": plan["file"] if plan and flat.get("seed", 0) < seeds else "unplanned",
            "numerics": kind}


def start_wandb(cfg_logger, config: dict, run_dir: Path, run_id: str, tags: list[str],
                reinit: str = "finish_previous"):
    """An offline / online W&B run for this run directory, or None (disabled, or it failed).
    Offline, the earlier launches' runs are deleted once this one starts: it gets their events
    again from metrics.jsonl, and syncing both would log them twice. `reinit="create_new"` keeps
    the process's other runs open (the seeds of a batched run)."""
    if cfg_logger.mode == "disabled":
        return None
    earlier = list((run_dir / "wandb").glob("offline-run-*")) if cfg_logger.mode == "offline" else []
    try:
        import wandb
        groups = grouping(config, run_dir)
        tags = [*tags, *(f"{k}:{v}"[:64] for k, v in groups.items())]       # W&B's tag limit: 64
        run = wandb.init(
            project=cfg_logger.project, entity=cfg_logger.get("entity"), group=cfg_logger.get("group"),
            tags=tags, config={**flatten(config), **flatten({"grouping": groups})},
            name=run_dir.name, id=run_id, resume="allow", dir=str(run_dir),
            mode=cfg_logger.mode, reinit=reinit)
    except Exception as err:
        warnings.warn(f"W&B could not start ({err}); continuing with metrics.jsonl only")
        return None
    for folder in earlier:
        shutil.rmtree(folder, ignore_errors=True)
    return run
