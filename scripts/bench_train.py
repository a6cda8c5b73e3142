"""Our training step against a bare hand-written PyTorch loop, side by side in one process.

Both train the same model (same initialization), batch size and data; ours adds the drop
schedule, per-step seeding, on-device augmentation, LR schedule and logging. Segments alternate
so that drift in machine load hits both alike. Also times the data pipeline alone.

    python scripts/bench_train.py [--steps 30] [--reps 5] [hydra overrides ...]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from repro.data.loader import eval_batches
from repro.logger import MetricsLog
from repro.provenance import save_result
from repro.run import prepare
from repro.train import compose_config
from repro.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per segment")
    parser.add_argument("--reps", type=int, default=5, help="alternating segments of each")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench"))
    parser.add_argument("overrides", nargs="*", default=["drop=dropout"])
    args = parser.parse_args()
    cfg = compose_config(["logger=none", "train.progress=false", "train.log_every=10",
                          *args.overrides])
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    model, data, device = prepare(cfg)
    bare_model = copy.deepcopy(model).to(device)
    trainer = Trainer(cfg, model, data, device, MetricsLog(None))
    bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=cfg.optim.lr)
    b = cfg.train.batch_size
    batches = list(eval_batches(data.train_x[:b * args.steps].to(device),
                                data.train_y[:b * args.steps].to(device), b, trainer.normalize))

    def ours():
        trainer.fit(stop_at=trainer.step + args.steps)

    def bare():
        for x, y in batches:
            bare_opt.zero_grad(set_to_none=True)
            F.cross_entropy(bare_model(x), y).backward()
            bare_opt.step()

    def pipeline():
        for i, _ in enumerate(trainer.batches.epoch(0)):
            if i + 1 == args.steps:
                break

    bare_model.train()
    ours(), bare()                                       # warm up both
    times = {"ours": [], "bare": [], "pipeline": []}
    for _ in range(args.reps):
        times["ours"].append(timed(ours))
        times["bare"].append(timed(bare))
        times["pipeline"].append(timed(pipeline))
    ips = {k: b * args.steps / statistics.median(v) for k, v in times.items()}
    result = {"overrides": args.overrides, "model": cfg.model.name, "batch_size": b,
              "steps_per_segment": args.steps, "reps": args.reps, "img_per_s": ips,
              "overhead_vs_bare": ips["bare"] / ips["ours"] - 1,
              "pipeline_vs_model": ips["pipeline"] / ips["ours"]}
    save_result(result, args.out, f"bench_train_{cfg.model.name}_{cfg.drop.kind}-{cfg.drop.mode}",
                device)


if __name__ == "__main__":
    main()
