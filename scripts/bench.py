"""Training throughput of each model config: our Trainer against a bare PyTorch loop (same model,
initialization, batch, precision, data already on the device), eager and compiled, and optionally
against the official code's way (a DataLoader with CPU transforms feeding an eager AMP loop).
Segments alternate, all in one process, so drift in machine load hits every variant alike.
Also: step time, peak memory, model FLOPs utilization (GPU) and the largest batch that fits.

    python scripts/bench.py [--models vit_micro,mixer_micro] [--compile inductor] [--dataloader]
                            [--variant NAME="key=value ..."] [--largest-batch] [--steps 30] [--reps 5]
                            [hydra overrides ...]

`--variant` (repeatable) also times our trainer with more overrides, e.g. the fast-path switches:
    --variant channels_last="train.channels_last=true" --variant fused_adamw="optim.fused=true"
    --variant cuda_graphs="train.compile=inductor train.compile_mode=reduce-overhead"

e.g. ViT-T/16 at 224 px on a GPU, against the official way:
    python scripts/bench.py --models vit_tiny --compile inductor --dataloader --largest-batch --steps 10 \\
        data=synthetic data.img_size=224 data.in_chans=3 data.num_train=20000 train.batch_size=256
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import shlex
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.errors import HydraException
from torch.utils.flop_counter import FlopCounterMode

from repro.compose import compose_config
from repro.data.loader import eval_batches
from repro.errors import ConfigError, one_line
from repro.loop.assemble import build_trainer, prepare, seeded_model
from repro.loop.reference_loops import bare_loop, dataloader_loop
from repro.records.provenance import save_result
from repro.report.stats import mean_ci

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peaks (FLOP/s) for model FLOPs utilization; other devices report none.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops(device) -> float | None:
    """The dense bf16 peak of `device` (FLOP/s); None off the GPUs listed in PEAK_BF16."""
    if device.type != "cuda":
        return None
    return next((v for k, v in PEAK_BF16.items() if k in torch.cuda.get_device_name(device)), None)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(variants: dict, images: int, reps: int, device,
                 settle: float = 0.0) -> tuple[dict, dict, dict]:
    """Median throughput of each variant over `reps` alternating segments (after one warm-up),
    its range over the segments, and each segment's seconds. `settle` seconds of pause before each
    segment let background work (a DataLoader's workers prefetching) end before the next variant is
    timed."""
    times = {name: [] for name in variants}
    for rep in range(reps + 1):
        for name, segment in variants.items():
            time.sleep(settle)
            sync(device)
            start = time.perf_counter()
            segment()
            sync(device)
            if rep:
                times[name].append(time.perf_counter() - start)
    return ({name: images / statistics.median(t) for name, t in times.items()},
            {name: [images / max(t), images / min(t)] for name, t in times.items()}, times)


def paired_overhead(times: dict, ours: str, base: str) -> dict:
    """`ours`'s time over `base`'s - 1, paired segment by segment (each rep times both, side by
    side): mean, 95% t-interval half-width, and the per-rep values."""
    ratios = [a / b - 1 for a, b in zip(times[ours], times[base])]
    mean, half, _ = mean_ci(ratios)
    return {"mean": mean, "ci95_half_width": half, "per_rep": ratios}


def peak_memory_mb(segment, device) -> float | None:
    """Peak GPU memory of one segment (CPU: none; see the process's peak RSS instead)."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    segment()
    return torch.cuda.max_memory_allocated(device) / 2**20


def train_flops(model, x, y) -> int:
    """FLOPs of one forward and backward pass (matrix products and convolutions)."""
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def largest_batch(cfg, data, device, start: int, checkpointing: bool) -> dict | None:
    """The largest batch (doubling from `start`, up to 2**16) whose training step runs on the GPU,
    with or without activation checkpointing, and what stopped the search: running out of memory,
    or a kernel that refuses the size (cuDNN attention did, at batch 65536 of a tiny ViT)."""
    if device.type != "cuda":
        return None
    model = seeded_model(cfg, data).to(device)
    model.set_grad_checkpointing(checkpointing)
    optimizer = torch.optim.AdamW(model.parameters())
    shape = (cfg.data.in_chans, cfg.data.img_size, cfg.data.img_size)
    fits, batch, stopped_by = None, start, "the search's cap"
    while batch <= 2**16:
        try:
            x = torch.randn(batch, *shape, device=device)
            y = torch.randint(0, data.num_classes, (batch,), device=device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.train.amp):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            fits, batch = batch, batch * 2
        except RuntimeError as error:            # torch.OutOfMemoryError is one
            stopped_by = f"batch {batch}: {str(error).splitlines()[0][:200]}"
            break
        finally:
            x = y = loss = None
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    return {"batch": fits, "stopped_by": stopped_by}


def trainer_segment(trainer, steps: int):
    return lambda: trainer.fit(stop_at=trainer.step + steps)


def parse_variants(specs: list[str], compile_backend: str | None) -> dict[str, list[str]]:
    """`NAME=overrides` specs (overrides split like a shell line) into {name: override list};
    `--compile B` is the variant ours_compiled."""
    variants = {"ours_compiled": [f"train.compile={compile_backend}"]} if compile_backend else {}
    for spec in specs:
        name, sep, extra = spec.partition("=")
        if not sep or not name.isidentifier() or not shlex.split(extra):
            raise ConfigError(f"--variant {spec!r} must read NAME=\"key=value ...\", e.g. "
                              'channels_last="train.channels_last=true"')
        variants[name] = shlex.split(extra)
    return variants


def overrides(name: str, args) -> list[str]:
    return ["logger=none", "train.progress=false", f"model={name}", *args.overrides]


def bench_model(name: str, args) -> tuple[dict, torch.device]:
    cfg = compose_config(overrides(name, args))
    b, images = cfg.train.batch_size, cfg.train.batch_size * args.steps
    model, host_data, device = prepare(cfg)
    data = host_data.to(device)                     # one copy on the device, shared by the trainers
    if len(data.train_y) < images * (args.reps + 2):
        raise ConfigError(f"{len(data.train_y)} training images are too few for "
                          f"{args.reps + 2} segments of {args.steps} steps at batch {b}: lower --steps "
                          "or --reps, or raise data.num_train (synthetic data)")
    bare_model = copy.deepcopy(model).to(device).train()
    trainer = build_trainer(cfg, model, data, device)
    batches = list(eval_batches(data.train_x[:images], data.train_y[:images], b, trainer.batches.normalize))

    def pipeline_batches():                         # one segment's batches, as our trainer makes them
        return (batch for _, batch in zip(range(args.steps), trainer.batches.epoch(0)))
    variants = {"ours": trainer_segment(trainer, args.steps),
                "bare": bare_loop(bare_model, lambda: batches, cfg, device),
                "bare_on_our_batches": bare_loop(copy.deepcopy(bare_model), pipeline_batches, cfg, device),
                "data_pipeline_alone": lambda: list(zip(range(args.steps), trainer.batches.epoch(0)))}
    for variant, extra in args.variants.items():      # our trainer under more overrides
        vcfg = compose_config([*overrides(name, args), *extra])
        variants[variant] = trainer_segment(build_trainer(vcfg, seeded_model(vcfg, data), data, device),
                                            args.steps)
    if args.dataloader:
        workers = min(8, os.cpu_count() or 1)
        variants["dataloader_eager_amp"] = dataloader_loop(copy.deepcopy(bare_model), host_data, cfg,
                                                           device, args.steps, workers)
    resident = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else None
    memory = {k: peak_memory_mb(v, device) for k, v in variants.items() if k != "data_pipeline_alone"}
    ips, spread, times = images_per_s(variants, images, args.reps, device,
                                      settle=args.dataloader * args.settle)
    pipeline = ips.pop("data_pipeline_alone")
    flops = train_flops(copy.deepcopy(bare_model), *batches[0]) / b      # per image
    peak = peak_flops(device)
    result = {"model": name, "batch_size": b, "img_size": cfg.data.img_size, "img_per_s": ips,
              "img_per_s_range": spread,
              "step_ms": {k: 1000 * b / v for k, v in ips.items()},
              "overhead_vs_bare": ips["bare"] / ips["ours"] - 1,
              # the loop alone: the bare loop fed the same data pipeline (crops, flips) as ours
              "loop_overhead": paired_overhead(times, "ours", "bare_on_our_batches"),
              "data_pipeline_img_per_s": pipeline, "data_pipeline_vs_model": pipeline / ips["ours"],
              "peak_memory_mb": memory,     # each segment's peak, `resident_memory_mb` included
              "resident_memory_mb": resident,   # data, models and optimizer states of every variant
              "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "train_gflop_per_image": flops / 1e9,
              "achieved_tflop_s": {k: v * flops / 1e12 for k, v in ips.items()},
              "mfu": {k: v * flops / peak for k, v in ips.items()} if peak else None}
    ours = ["ours", *args.variants]
    result["vs_ours_eager"] = {k: ips[k] / ips["ours"] for k in args.variants}
    if "dataloader_eager_amp" in ips:
        result["vs_dataloader"] = {k: ips[k] / ips["dataloader_eager_amp"] for k in ours}
    if args.largest_batch:
        result["largest_batch"] = {"plain": largest_batch(cfg, data, device, b, False)}
        if hasattr(model, "set_grad_checkpointing"):
            result["largest_batch"]["grad_checkpointing"] = largest_batch(cfg, data, device, b, True)
    return result, device


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vit_micro,mixer_micro", help="model configs, comma-separated")
    parser.add_argument("--compile", metavar="BACKEND", help="also time our trainer compiled (inductor)")
    parser.add_argument("--variant", action="append", default=[], metavar='NAME="key=value ..."',
                        help="also time our trainer with these overrides (repeatable)")
    parser.add_argument("--dataloader", action="store_true", help="also time the official code's way")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of pause before each segment when timing the DataLoader")
    parser.add_argument("--largest-batch", action="store_true", help="search the largest batch (GPU)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per segment")
    parser.add_argument("--reps", type=int, default=5, help="alternating timed segments of each")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench"))
    parser.add_argument("overrides", nargs="*", default=["drop=dropout"])
    args = parser.parse_args()
    with one_line(HydraException):                  # a refusal: one line, exit status 2
        args.variants = parse_variants(args.variant, args.compile)
        results, devices = zip(*(bench_model(name, args) for name in args.models.split(",")))
    save_result({"overrides": args.overrides, "steps_per_segment": args.steps, "reps": args.reps,
                 "results": results}, args.out, "bench_" + "-".join(r["model"] for r in results),
                devices[0])


if __name__ == "__main__":
    main()
