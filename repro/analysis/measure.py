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

from repro import checkpoint
from repro.analysis.probe import DynamicsProbe, flat_state, snapshot_path
from repro.errors import DataError
from repro.logger import MetricsLog
from repro.run import prepare
from repro.trainer import Trainer


def load_run(run_dir: Path, overrides: list[str] = ()) -> tuple[Trainer, DynamicsProbe]:
    """A trainer (no training: its model, data and schedule) and a probe for a run's directory,
    its config changed by dot-list `overrides`; distances are from its step-0 snapshot."""
    init = snapshot_path(run_dir / "snapshots", 0)
    if not (run_dir / "config.yaml").is_file():
        raise DataError(f"{run_dir} has no config.yaml: pass the directory of a run")
    if not init.is_file():
        raise DataError(f"{run_dir}/snapshots holds no step_0000000.pt (the initialization): "
                        "train with analysis.mode=snapshot (or live) to save snapshots")
    cfg = OmegaConf.merge(OmegaConf.load(run_dir / "config.yaml"), OmegaConf.from_dotlist(list(overrides)))
    model, data, device = prepare(cfg)
    trainer = Trainer(cfg, model, data, device, MetricsLog(None))
    return trainer, DynamicsProbe(cfg.analysis, trainer, flat_state(model, checkpoint.load(init)))


def measure_run(run_dir: Path, overrides: list[str] = ()) -> Path:
    run_dir = Path(run_dir)
    trainer, probe = load_run(run_dir, overrides)
    lines = []
    for path in sorted((run_dir / "snapshots").glob("step_*.pt")):
        trainer.step = int(path.stem.split("_")[1])
        trainer.model.load_state_dict(checkpoint.load(path, map_location=trainer.device))
        values = probe.measure(trainer)
        lines.append(json.dumps({"event": "analysis", "step": trainer.step, **values}))
        print(f"step {trainer.step}: direction variance {values['grad_direction_variance']:.4f}, "
              f"direction error {values['grad_direction_error']:.4f}")
    out = run_dir / "analysis.jsonl"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    return out


def main():
    parser = argparse.ArgumentParser(description="Measure a run's saved snapshots.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. analysis.num_grads=32")
    args = parser.parse_args()
    print(f"wrote {measure_run(args.run_dir, args.overrides)}")


if __name__ == "__main__":
    main()
