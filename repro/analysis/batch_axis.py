"""The measurement-batch axis: at a run's saved weights, the dynamics metrics for several
measurement batch sizes, with the dropout masks on and off, as one tidy table (no training).

    python -m repro.analysis.batch_axis RUN_DIR [RUN_DIR ...] --out TABLE.csv \
        [--batch-sizes 32,128,512,2048,4096] [--steps 0,final] [--set analysis.num_grads=16 ...]

Weights: step 0 is the run's initialization (snapshots/step_0000000.pt), `final` its last
checkpoint (checkpoint.pt: after training), any other step its snapshot. One row per run, step,
measurement batch size and masks (on: as trained at that step; off: rate 0, same batches; a run
or step without dropout has only off). g_hat is computed once per step and shared. The paper /
mask / trajectory effects by batch size, paired over seeds, are the report's
(`scripts/figures.py dynamics_decompose` reads the table from results/dynamics_decompose/).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from repro.analysis.measure import load_run
from repro.analysis.probe import snapshot_path
from repro.errors import DataError
from repro.records import checkpoint
from repro.records.tables import write_csv

RUN_KEYS = ("name", "seed", "drop.kind", "drop.rate", "train.batch_size", "optim.lr")
BATCH_SIZES = (32, 128, 512, 2048, 4096)


def saved_weights(run_dir: Path, step: str) -> tuple[int, dict]:
    """(step, model state) of `step`: an integer (its snapshot) or `final` (the checkpoint)."""
    if step == "final":
        state = checkpoint.load(run_dir / "checkpoint.pt")
        if state is None:
            raise DataError(f"{run_dir} has no checkpoint.pt: train the run first")
        return state["step"], state["model"]
    path = snapshot_path(run_dir / "snapshots", int(step))
    if not path.is_file():
        raise DataError(f"{path} does not exist: measure a saved step (snapshots/step_*.pt) or final")
    return int(step), checkpoint.load(path)


def measure_axis(run_dir: Path, batch_sizes, steps=("0", "final"), overrides=()) -> list[dict]:
    """The table's rows for one run."""
    run_dir = Path(run_dir)
    cfg, probe = load_run(run_dir, overrides)
    largest = len(probe.images.y)
    if max(batch_sizes) > largest:
        raise DataError(f"measurement batch {max(batch_sizes)} exceeds the {largest} training images")
    run = {"run": str(run_dir), **{k: OmegaConf.select(cfg, k) for k in RUN_KEYS}}
    rows = []
    for saved in steps:
        step, state = saved_weights(run_dir, saved)
        probe.model.load_state_dict(state)
        full, full_error = probe.whole_set()
        for size in batch_sizes:
            for masks, values in probe.by_masks(step, size, full)[0].items():
                rows.append({**run, "step": step, "batch_size": size, "masks": masks,
                             "num_grads": probe.cfg.num_grads, "full_set_size": len(probe.full_y),
                             "full_grad_error": full_error, **values})
            print(f"{run_dir} step {step} batch {size}: measured")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="the table (CSV)")
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--steps", default="0,final", help="saved steps: integers and/or final")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, e.g. --set analysis.num_grads=8 (repeatable)")
    args = parser.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = [row for run_dir in args.run_dirs
            for row in measure_axis(run_dir, sizes, args.steps.split(","), args.set)]
    write_csv(rows, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
