"""Data pipeline throughput, side by side in one process: the streaming ImageFolder path (decode +
timm augmentation in DataLoader workers, data=imagenet) against the in-memory paths on the same
images (decoded once and cached: batched crops / flips on the device, or the same timm
augmentation per image in workers). Images per second of training batches, no model.

    python scripts/bench_data.py --root /path/to/imagenet --classes 10 [--workers 8] [--batches 20]
    python scripts/bench_data.py --generate 2000          # a JPEG tree written to a temp folder

Writes results/bench/bench_data_<hardware>_torch<version>.json (repro.records.provenance.save_result).
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from repro.compose import compose_config
from repro.data import load_data
from repro.distributed import World
from repro.records.provenance import save_result

ROOT = Path(__file__).resolve().parents[1]


def write_jpeg(path: Path, shape: tuple[int, int], seed: int) -> None:
    """A random-content JPEG of `shape` (width, height): blocks of noise, smoothed by upscaling."""
    base = np.random.default_rng(seed).integers(0, 256, (shape[1] // 8, shape[0] // 8, 3), dtype=np.uint8)
    Image.fromarray(base).resize(shape, Image.BILINEAR).save(path, quality=90)


def generate(root: Path, images: int, classes: int, shape: tuple[int, int] = (320, 240),
             workers: int = 1) -> None:
    """A train/val ImageFolder tree of random-content JPEGs (about ImageNet's mean file size),
    written by `workers` processes; image i of a split is the same whatever the worker count."""
    jobs = []
    for split, n, first_seed in (("train", images, 0), ("val", max(classes, images // 10), images)):
        for c in range(classes):
            (root / split / f"c{c:03d}").mkdir(parents=True, exist_ok=True)
        jobs += [(root / split / f"c{i % classes:03d}" / f"{i}.JPEG", tuple(shape), first_seed + i)
                 for i in range(n)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.starmap(write_jpeg, jobs, chunksize=64)


def throughput(cfg, batches: int) -> float:
    """Images per second drawn from the training pipeline of `cfg` (after one warm-up batch)."""
    pipeline, _ = load_data(cfg.data).pipeline(cfg, torch.device("cpu"), World())
    stream = pipeline.epoch(0)
    next(stream)
    start, seen = time.perf_counter(), 0
    for _, (_, y) in zip(range(batches), stream):
        seen += len(y)
    return seen / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="an ImageFolder tree (train/, val/)")
    parser.add_argument("--generate", type=int, metavar="N", help="write N training JPEGs instead")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=224)
    args = parser.parse_args()
    if not (args.root or args.generate):
        parser.error("give --root or --generate")
    tmp = tempfile.TemporaryDirectory()
    root = args.root or Path(tmp.name)
    if args.generate:
        generate(root, args.generate, args.classes)
    (root / "classes.txt").write_text("\n".join(sorted(p.name for p in (root / "train").iterdir())))
    common = [f"data.root={root}", f"data.num_classes={args.classes}", f"data.img_size={args.img_size}",
              f"data.workers={args.workers}", f"train.batch_size={args.batch_size}", "logger=none"]
    cached = common + ["data=imagenet_subset", f"data.class_list={root / 'classes.txt'}",
                       f"data.cache_dir={root / 'cache'}", "model.patch_size=16"]
    variants = {"stream_imagenet_timm_aug": ["data=imagenet"] + common,
                "in_memory_timm_aug_workers": cached + ["data.auto_augment=rand-m9-mstd0.5-inc1",
                                                        "data.random_erasing=0.25"],
                "in_memory_batched_crop_flip": cached}
    load_data(compose_config(variants["in_memory_batched_crop_flip"]).data)    # decode and cache once
    result = {name: throughput(compose_config(o), args.batches) for name, o in variants.items()}
    base = result["in_memory_batched_crop_flip"]
    ratios = {k: v / base for k, v in result.items()}
    save_result({"images_per_s": result, "ratio_to_in_memory_batched": ratios,
                 "workers": args.workers, "batch_size": args.batch_size, "img_size": args.img_size,
                 "train_images": args.generate or None}, ROOT / "results" / "bench", "bench_data",
                torch.device("cpu"))


if __name__ == "__main__":
    main()
