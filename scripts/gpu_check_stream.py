"""The GPU check's stream section (scripts/gpu_check.py): ViT-T/16 fed by the streamed ImageFolder
path (data=imagenet: JPEG decode and the paper's timm augmentation, RandomResizedCrop, flip,
RandAugment, random erasing, in one DataLoader worker per core; mixup / cutmix on the device) on
a JPEG tree of ImageNet-like sizes written here. Side by side in one process: the pipeline's
img/s alone (batches on the device, no model), our trainer's step (eager) fed by it, and the same
step fed by GPU-resident data; with section vit's fastest GPU-resident rate when it is in OUT_DIR."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import bench
import bench_data
from gpu_check import DRY_MODEL, record

from repro.compose import compose_config
from repro.loop.assemble import build_trainer, prepare

RECIPE = ["data.mixup=0.8", "data.cutmix=1.0", "data.label_smoothing=0.1"]   # conf/data/imagenet.yaml's


def timed(batches, dev, trainer=None, skip: int = 1) -> dict:
    """Images/s of a stream of device batches (each through `trainer`'s step when given): over
    all of it from the iterator's start (worker start-up included), and in steady state after the
    first `skip` batches (DataLoader workers deliver their first batches together)."""
    start, stamps, sizes = time.perf_counter(), [], []
    for step, (x, y) in enumerate(batches):
        if trainer:
            trainer.model_step.take(step, trainer.schedule.rate(step), x, y)
        stamps.append(time.perf_counter())
        sizes.append(len(y))
    bench.sync(dev)
    stamps[-1] = time.perf_counter()
    steady = sum(sizes[skip:]) / (stamps[-1] - stamps[skip - 1]) if len(sizes) > skip else None
    return {"batches": len(sizes), "images": sum(sizes), "seconds": stamps[-1] - start,
            "img_per_s_all": sum(sizes) / (stamps[-1] - start), "img_per_s_steady": steady,
            "skipped_batches": skip}


def best_resident(out: Path) -> tuple[str, float] | None:
    """Section vit's fastest GPU-resident variant in OUT_DIR (None when it has not run)."""
    found = sorted(out.glob("gpu_check_vit_*.json"))
    if not found:
        return None
    ips = json.loads(found[-1].read_text())["img_per_s"]
    name = max((k for k in ips if k != "dataloader_eager_amp"), key=ips.get)
    return name, ips[name]


def stream(out: Path, dry: bool) -> None:
    images, shape, size, batch, classes = ((64, (40, 35), 32, 8, 4) if dry else
                                           (6144, (400, 350), 224, 128, 100))
    workers = os.cpu_count() or 1
    common = ["logger=none", "train.progress=false", "model=vit_tiny", f"data.img_size={size}",
              f"train.batch_size={batch}", f"data.num_classes={classes}", *DRY_MODEL * dry]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        bench_data.generate(Path(tmp), images, classes, shape, workers)
        written = time.perf_counter() - start
        cfg = compose_config(["data=imagenet", f"data.root={tmp}", f"data.workers={workers}", *common])
        model, data, dev = prepare(cfg)
        trainer = build_trainer(cfg, model, data, dev)
        skip = min(workers, len(trainer.batches) // 2)
        rates = {"pipeline_alone": timed(trainer.batches.epoch(0), dev, skip=skip),
                 "train_streamed": timed(trainer.batches.epoch(1), dev, trainer, skip)}
    steps = 6 if dry else 24
    rcfg = compose_config(["data=synthetic", "data.in_chans=3", f"data.num_train={batch * steps}", *RECIPE,
                           *common])
    resident = build_trainer(rcfg, *prepare(rcfg))
    rates["train_resident"] = timed(resident.batches.epoch(0), dev, resident, 2)
    base = rates["train_resident"]["img_per_s_steady"]
    result = {"images": images, "image_shape": shape, "img_size": size, "batch_size": batch,
              "workers": workers, "jpeg_seconds": written, "rates": rates,
              "streamed_vs_resident": rates["train_streamed"]["img_per_s_steady"] / base,
              "pipeline_vs_resident": rates["pipeline_alone"]["img_per_s_steady"] / base}
    rows = [[k, r["img_per_s_steady"], r["img_per_s_all"], r["batches"], r["img_per_s_steady"] / base]
            for k, r in rates.items()]
    fastest = best_resident(out)
    if fastest:
        alone = rates["pipeline_alone"]["img_per_s_steady"]
        result["vit_fastest_resident"] = {"variant": fastest[0], "img_per_s": fastest[1],
                                          "pipeline_vs_it": alone / fastest[1]}
        rows.append([f"section vit: {fastest[0]} (GPU-resident)", fastest[1], None, None, fastest[1] / base])
    record(out, "stream", result, ["measure", "img/s (steady)", "img/s (all, start-up included)", "batches",
                                   "vs train_resident"], rows,
           (f"{images} JPEGs of {shape[0]}x{shape[1]} px ({classes} classes) written in {written:.1f} s "
            f"by {workers} processes; ViT-T/16 at {size} px, batch {batch}, {workers} DataLoader workers, "
            f"eager; steady: after the first {skip} batches (streamed) or 2 (resident). The streamed "
            "batches reach the device as float32 from pageable memory, as in training.",))
