"""Cost of one dynamics measurement (|G| mini-batch gradients plus g_hat) against training steps and
an evaluation, side by side in one process, and the projected overhead of an experiment's
measurement cadence over the same run without analysis.

    python scripts/bench_analysis.py [--steps 20] [--reps 3] [hydra overrides ...]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from repro.analysis.gradients import flat_params, num_trainable
from repro.analysis.probe import DynamicsProbe
from repro.compose import compose_config
from repro.loop.assemble import build_trainer, prepare
from repro.records.provenance import save_result

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per segment")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "results" / "bench"))
    parser.add_argument("overrides", nargs="*", default=["experiment=dynamics"])
    args = parser.parse_args()
    cfg = compose_config(["logger=none", "train.progress=false", *args.overrides])
    model, data, device = prepare(cfg)
    trainer = build_trainer(cfg, model, data, device)
    probe = DynamicsProbe(cfg.analysis, model, trainer.batches, trainer.schedule,
                          trainer.model_step.controller, cfg.seed, cfg.train.batch_size, flat_params(model))
    trainer.fit(stop_at=2)                                 # warm up
    step_s, measure_s = [], []
    for _ in range(args.reps):
        start = time.perf_counter()
        trainer.fit(stop_at=trainer.step + args.steps)
        step_s.append((time.perf_counter() - start) / args.steps)
        start = time.perf_counter()
        probe.measure(trainer.step)
        measure_s.append(time.perf_counter() - start)
    step, measure = statistics.median(step_s), statistics.median(measure_s)
    start = time.perf_counter()
    trainer.evaluate()
    evaluation = time.perf_counter() - start
    count, epochs = len(probe.steps), cfg.train.epochs
    # The run without analysis: its steps and its per-epoch evaluations (start-up and checkpoint
    # writes left out, which makes the overhead an upper bound).
    run_s = trainer.total_steps * step + -(-epochs // cfg.train.eval_every) * evaluation
    result = {
        "overrides": args.overrides, "model": cfg.model.name, "drop_rate": cfg.drop.rate,
        "num_grads": cfg.analysis.num_grads, "full_subset": cfg.analysis.full_subset,
        "train_step_s": step, "measurement_s": measure, "measurement_in_steps": measure / step,
        "measurements_per_run": count, "steps_per_run": trainer.total_steps,
        "evaluation_s": evaluation, "run_without_analysis_s": run_s,
        "analysis_s": count * measure, "projected_overhead": count * measure / run_s,
        "overhead_vs_steps_alone": count * measure / (trainer.total_steps * step),
        "grad_buffer_mb": cfg.analysis.num_grads * num_trainable(model) * 4 / 2**20}
    save_result(result, args.out, f"bench_analysis_{cfg.name}_p{cfg.drop.rate}", device)


if __name__ == "__main__":
    main()
