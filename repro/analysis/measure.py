"""Measure the saved snapshots of a finished (or running) run afterwards.

    python -m repro.analysis.measure RUN_DIR [analysis.num_grads=32 ...]

Reads RUN_DIR/config.yaml (dot-list overrides change the analysis settings), measures every
`snapshots/step_*.pt` (saved with analysis.mode=snapshot; step 0 is the initialization) and
writes RUN_DIR/analysis.jsonl, one `analysis` event per snapshot, as the live probe logs them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from repro.analysis.gradients import flat_params
from repro.analysis.probe import DynamicsProbe, snapshot_path
from repro.distributed import World
from repro.errors import DataError, one_line
from repro.loop.assemble import prepare
from repro.records import checkpoint
from repro.records.atomic import write_atomic
from repro.schedules import DropSchedule


def load_run(run_dir: Path, overrides: list[str] = ()) -> tuple:
    """A run directory's config, changed by dot-list `overrides`, and a probe of its model (no
    Trainer: the model, training images, drop schedule); distances are from its step-0 snapshot."""
    init = snapshot_path(run_dir / "snapshots", 0)
    if not (run_dir / "config.yaml").is_file():
        raise DataError(f"{run_dir} has no config.yaml: pass the directory of a run")
    if not init.is_file():
        raise DataError(f"{run_dir}/snapshots holds no step_0000000.pt (the initialization): "
                        "train with analysis.mode=snapshot (or live) to save snapshots")
    cfg = OmegaConf.merge(OmegaConf.load(run_dir / "config.yaml"), OmegaConf.from_dotlist(list(overrides)))
    model, data, device = prepare(cfg)
    model = model.to(device)
    images, _ = data.pipeline(cfg, device, World())
    schedule = DropSchedule.from_config(cfg.drop, cfg.train.epochs, len(images))
    return cfg, DynamicsProbe(cfg.analysis, model, images, schedule, schedule.controller(model), cfg.seed,
                              cfg.train.batch_size, flat_params(model, checkpoint.load(init)))


def measure_run(run_dir: Path, overrides: list[str] = ()) -> Path:
    run_dir = Path(run_dir)
    _, probe = load_run(run_dir, overrides)
    lines = []
    for path in sorted((run_dir / "snapshots").glob("step_*.pt")):
        step = int(path.stem.split("_")[1])
        probe.model.load_state_dict(checkpoint.load(path, map_location=probe.images.x.device))
        values = probe.measure(step)
        lines.append(json.dumps({"event": "analysis", "step": step, **values}))
        print(f"step {step}: direction variance {values['grad_direction_variance']:.4f}, "
              f"direction error {values['grad_direction_error']:.4f}")
    out = run_dir / "analysis.jsonl"
    write_atomic(out, "\n".join(lines) + "\n")
    return out


def main():
    parser = argparse.ArgumentParser(description="Measure a run's saved snapshots.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. analysis.num_grads=32")
    args = parser.parse_args()
    with one_line():                         # a run directory it cannot measure: one line, exit 2
        print(f"wrote {measure_run(args.run_dir, args.overrides)}")


if __name__ == "__main__":
    main()
