"""Collect runs into tidy tables: one row per run (runs.csv) and one per logged event
(curves.csv). Sources: run directories (metrics.jsonl, the source of truth) or W&B's API.

Only finished runs whose COMPLETE marker matches their metrics enter the tables; running,
crashed or tampered runs are returned separately so that they are reported, never averaged.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from repro.records.logger import flatten
from repro.records.provenance import hardware_kind
from repro.records.rundir import RunDir

CONFIG_KEYS = ("name", "seed", "model.name", "model.embed_dim", "model.depth", "data.name",
               "data.train_subset", "train.epochs", "drop.kind", "drop.mode", "drop.schedule", "drop.rate",
               "drop.cutoff_epoch", "drop.cutoff_fraction")
FINAL_KEYS = ("test_acc", "test_loss", "train_full_acc", "train_full_loss", "best_test_acc", "steps")
EVENT_KEYS = ("loss", "lr", "drop_rate", "test_acc", "test_loss", "train_full_acc", "train_full_loss",
              "grad_norm", "full_grad_norm", "model_distance", "grad_direction_variance",
              "grad_direction_error", "bias", "variance", "update_cosine")
# Analysis records only some runs log (repro.analysis.probe): columns only where logged, so the
# tables of experiments without them keep their columns.
OPTIONAL_KEYS = ("batch_size", "train_batch_size", "noise_to_signal", "grad_noise", "grad_signal",
                 "full_grad_error", *(f"masks_off/{k}" for k in (
                     "grad_norm", "grad_direction_variance", "grad_direction_error", "bias", "variance",
                     "noise_to_signal", "grad_noise", "grad_signal")))


def run_hardware(run_dir: RunDir) -> str | None:
    """The run's hardware kind (repro.records.provenance.hardware_kind), None without provenance.json."""
    if not (run_dir / "provenance.json").is_file():
        return None
    return hardware_kind(run_dir.read_json("provenance.json"))


def tidy(run: str, config: dict, events: list[dict]) -> tuple[dict, list[dict]]:
    """The run's row (config keys and final evaluation) and its event rows."""
    keys = {k: config.get(k) for k in CONFIG_KEYS}
    evals = [e for e in events if e["event"] == "eval"]
    final = {k: evals[-1].get(k) for k in FINAL_KEYS if evals} if evals else {}
    final["steps"] = max((e["step"] for e in events), default=0)
    rows = [{"run": run, **keys, "event": e["event"], "step": e["step"], "epoch": e.get("epoch"),
             **{k: e.get(k) for k in EVENT_KEYS}, **{k: e[k] for k in OPTIONAL_KEYS if k in e}}
            for e in events if e["event"] in ("train", "eval", "analysis")]
    return {"run": run, **keys, **final}, rows


def collect_dirs(root: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """(run rows, event rows, skipped runs) for every run directory under `root`."""
    runs, curves, skipped = [], [], []
    for config_path in sorted(Path(root).rglob("config.yaml")):
        run_dir = RunDir(config_path.parent)
        if not run_dir.metrics.is_file() or run_dir.path.name == ".hydra":
            continue
        name = str(run_dir.path.relative_to(root))
        events = run_dir.events()
        status = run_dir.status()
        if status != "complete":
            skipped.append({"run": name, "status": status,
                            "last_step": max((e["step"] for e in events), default=0)})
            continue
        row, rows = tidy(name, flatten(OmegaConf.to_container(OmegaConf.load(config_path))), events)
        hardware = run_hardware(run_dir)
        runs.append({**row, "hardware": hardware})
        curves += [{**r, "hardware": hardware} for r in rows]
    return runs, curves, skipped


def collect_wandb(path: str, group: str, api=None) -> tuple[list[dict], list[dict], list[dict]]:
    """The same tables from W&B (`entity/project`, runs of one group), every history row via
    scan_history (history() samples). Runs not in state 'finished' are skipped and reported."""
    if api is None:
        import wandb
        api = wandb.Api()
    runs, curves, skipped = [], [], []
    for r in api.runs(path, filters={"group": group}):
        history = list(r.scan_history())
        events = []
        for row in history:
            for event in ("train", "eval", "analysis"):
                values = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith(event + "/")}
                if values:
                    events.append({"event": event, "step": row["_step"], **values})
        if r.state != "finished":
            skipped.append({"run": r.name, "status": r.state,
                            "last_step": max((e["step"] for e in events), default=0)})
            continue
        row, rows = tidy(r.name, dict(r.config), events)
        runs.append(row)
        curves += rows
    return runs, curves, skipped
