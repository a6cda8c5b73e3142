"""Cost of one dynamics measurement (|G| mini-batch gradients plus g_hat) against training steps,
side by side in one process, and the projected overhead of an experiment's measurement cadence.

    python scripts/bench_analysis.py [--steps 20] [--reps 3] [hydra overrides ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

import repro.train  # noqa: F401  (registers the ${uid:} resolver)
from repro.analysis.gradients import flat_params, num_trainable
from repro.analysis.probe import DynamicsProbe
from repro.data import load_data
from repro.logger import MetricsLog
from repro.models import build_model
from repro.provenance import provenance
from repro.run import max_rates, select_device
from repro.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per segment")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "results" / "bench"))
    parser.add_argument("overrides", nargs="*", default=["experiment=dynamics"])
    args = parser.parse_args()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["logger=none", "train.progress=false", *args.overrides])
    device = select_device(str(cfg.device))
    data = load_data(cfg.data)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes=data.num_classes, in_chans=cfg.data.in_chans,
                        img_size=cfg.data.img_size, **max_rates(cfg.drop))
    trainer = Trainer(cfg, model, data, device, MetricsLog(Path("/dev/null")))
    probe = DynamicsProbe(cfg.analysis, trainer, flat_params(model))
    trainer.fit(stop_at=2)                                 # warm up
    step_s, measure_s = [], []
    for _ in range(args.reps):
        start = time.perf_counter()
        trainer.fit(stop_at=trainer.step + args.steps)
        step_s.append((time.perf_counter() - start) / args.steps)
        start = time.perf_counter()
        probe.measure(trainer)
        measure_s.append(time.perf_counter() - start)
    step, measure = statistics.median(step_s), statistics.median(measure_s)
    count = len(probe.steps)
    result = {
        "overrides": args.overrides, "model": cfg.model.name, "drop_rate": cfg.drop.rate,
        "num_grads": cfg.analysis.num_grads, "full_subset": cfg.analysis.full_subset,
        "train_step_s": step, "measurement_s": measure, "measurement_in_steps": measure / step,
        "measurements_per_run": count, "steps_per_run": trainer.total_steps,
        "projected_overhead": count * measure / (trainer.total_steps * step),
        "grad_buffer_mb": cfg.analysis.num_grads * num_trainable(model) * 4 / 2**20,
        "provenance": provenance(device)}
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))
    hw = result["provenance"]["hardware"].replace(" ", "").replace(",", "_")
    out = Path(args.out) / f"bench_analysis_{cfg.name}_p{cfg.drop.rate}_{hw}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
