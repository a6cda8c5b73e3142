"""The drift guard: golden fingerprints of tiny training runs, kept per numerics kind
(repro.records.provenance.hardware_kind), so that runs added to a plan train exactly as the plan's
earlier runs did.

    python -m repro.drift [--device cpu|cuda]     # compare (or, for a new kind, record)

A fingerprint is a hash of a tiny run's metrics.jsonl (timings left out) and one of its final
weights. The sweep and the plan queue call `guard` before they launch: on a kind already in
results/golden.json the cases must come out bitwise as recorded, else they stop, naming the cases
(the code's training semantics or the machine's numerics changed: a deliberate change starts a
new plan). The first time a kind is seen its fingerprints are recorded (commit the file); if a
plan already holds runs of that kind, one of them is first replayed and must reproduce its
committed numbers exactly, so that the new record vouches for the old runs too.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

from repro import paths
from repro.errors import ConfigError, refuse
from repro.records.provenance import single_run_kind
from repro.records.tables import read_csv
from repro.report.collect import FINAL_KEYS

GOLDEN = paths.RESULTS / "golden.json"

# Synthetic 28x28 data, 16 steps per epoch; with the tiny ViT a couple of seconds per run.
FAST = ["data=synthetic", "train.epochs=2", "train.batch_size=32", "train.eval_batch_size=128",
        "train.train_eval_size=128", "train.log_every=2", "train.progress=false", "logger=none",
        "optim.warmup_epochs=0.5", "optim.lr=3e-3", "threads=1"]
TINY = FAST + ["model.embed_dim=32", "model.depth=2", "model.num_heads=2"]
CASES = {"dropout": ["drop=dropout", "drop.rate=0.2"],
         "drop_path": ["drop=drop_path", "drop.rate=0.2"],
         "early_dropout": ["drop=early_dropout", "drop.rate=0.3"],
         "early_drop_path": ["drop=early_drop_path"],
         "late_drop_path": ["drop=late_drop_path"],
         "probe": ["drop=early_dropout", "analysis.mode=live", "analysis.steps=[0,5,20]",
                   "analysis.num_grads=3", "analysis.full_subset=64"]}


class Drift(ConfigError):
    """Training here does not reproduce what this numerics kind recorded."""


def fingerprints(run_dir) -> list[str]:
    """[metrics hash, weights hash] of a finished run directory (16 hex digits each)."""
    import torch
    events = [{k: v for k, v in json.loads(line).items() if k != "img_per_s"}
              for line in open(Path(run_dir) / "metrics.jsonl")]
    weights = torch.load(Path(run_dir) / "checkpoint.pt", weights_only=False)["model"]
    return [hashlib.sha256(json.dumps(events, sort_keys=True).encode()).hexdigest()[:16],
            hashlib.sha256(b"".join(t.cpu().numpy().tobytes() for t in weights.values())).hexdigest()[:16]]


def run_case(name: str, folder: Path, device: str = "cpu") -> list[str]:
    from repro.compose import compose_config
    from repro.loop.run import run
    run(compose_config([*TINY, *CASES[name], f"device={device}"]), folder)
    return fingerprints(folder)


def measure(device: str = "cpu") -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        return {name: run_case(name, Path(tmp) / name, device) for name in CASES}


def planned_runs(kind: str, results: Path) -> list[tuple[str, dict, dict]]:
    """(experiment, runs.csv row, collection entry) of the single runs of `kind` in folders
    with a plan for that kind."""
    from repro.report.plan import read_plans
    found = []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        if kind not in {p["hardware"] for p in read_plans(folder)} or not (folder / "runs.csv").is_file():
            continue
        entries = {e["run"]: e for e in json.loads((folder / "collection.json").read_text())["runs"]}
        found += [(folder.name, r, entries[r["run"]]) for r in read_csv(folder / "runs.csv")
                  if r.get("hardware") == kind and r["run"] in entries
                  and "repro.train_batched" not in " ".join(entries[r["run"]]["argv"])]
    return found


def replay(name: str, row: dict, entry: dict) -> None:
    """Train a committed run again from its recorded command line; its final numbers must match."""
    from repro.compose import compose_config
    from repro.loop.run import run
    overrides = [a for a in entry["argv"][1:] if not a.startswith("hydra.")]
    with tempfile.TemporaryDirectory() as tmp:
        got = run(compose_config(overrides), Path(tmp))
    differ = [k for k in FINAL_KEYS if k in got and k in row and row[k] is not None and got[k] != row[k]]
    if differ:
        key = differ[0]
        raise Drift(f"replaying {name}/{row['run']} on {row['hardware']} gives {key}={got[key]!r}, "
                    f"committed {row[key]!r}: this machine does not reproduce that kind's runs; "
                    "do not add runs to its plan here")


def guard(kind: str, device: str = "cpu", golden: Path = GOLDEN, results: Path = paths.RESULTS) -> str:
    """'matched' when this machine reproduces `kind`'s golden fingerprints, 'recorded' when the
    kind was new and its fingerprints are now in `golden`; raise Drift on a mismatch."""
    key = single_run_kind(kind)       # fingerprints are single runs: a batched kind shares its device's
    record = json.loads(golden.read_text()) if golden.is_file() else {}
    got = measure(device)
    known = record.setdefault(key, {})
    bad = [c for c in CASES if c in known and known[c] != got[c]]
    if bad:
        raise Drift(f"training on {key} no longer reproduces its golden fingerprints ({golden.name}) "
                    f"in cases {bad}: the code's training semantics or this machine's numerics changed. "
                    "Runs made now would not pair with that kind's plans; a deliberate change of "
                    "training semantics starts a new plan (and new fingerprints)")
    new = [c for c in CASES if c not in known]
    if not new:
        return "matched"
    if not known:                        # a kind seen for the first time
        done = planned_runs(kind, results)
        if done:
            replay(*done[0])
    known.update({c: got[c] for c in new})
    golden.write_text(json.dumps(dict(sorted(record.items())), indent=2) + "\n")
    return "recorded"


def check_or_exit(kind: str, device: str = "cpu") -> None:
    """`guard` for the launch scripts: one line, exit 2 on drift."""
    try:
        state = guard(kind, device)
    except Drift as err:
        refuse(err)
    print(f"drift guard: {kind}: golden fingerprints {state}"
          + (f" (commit {GOLDEN.relative_to(paths.ROOT)})" if state == "recorded" else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    from repro.records.provenance import hardware_kind, numerics
    check_or_exit(hardware_kind(numerics(torch.device(args.device))), args.device)


