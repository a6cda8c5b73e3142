"""Config checks run before any data is loaded or model built.

Types, unknown keys and each key's choices are the schema's (repro/config.py, `check_schema`);
what is left here is what a schema cannot say: ranges, settings that must agree with each other,
and what the registered data sets, models, optimizers and this machine support. Each failure
raises ConfigError naming the key, the value and the fix.
"""
from __future__ import annotations

import torch
from timm.optim import list_optimizers

from repro.config import check_schema
from repro.data import DATASETS
from repro.data.transforms import check_auto_augment
from repro.errors import ConfigError
from repro.models import ARCHS, DROP_KINDS
from repro.schedules import check_schedule, cutoff_epoch

ELEMENTWISE = ("adamw", "momentum")   # optimizers whose update of a stacked tensor is each seed's own


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_train(cfg) -> None:
    t = cfg.train
    for key in ("epochs", "batch_size", "accum_steps", "eval_batch_size", "log_every", "eval_every",
                "train_eval_size"):
        require(t[key] >= 1, f"train.{key}={t[key]!r} must be a positive integer")
    require(t.batch_size % t.accum_steps == 0,
            f"train.accum_steps={t.accum_steps} must divide train.batch_size={t.batch_size}")
    require(t.ckpt_every >= 0,
            f"train.ckpt_every={t.ckpt_every!r} must be 0 (checkpoint at epoch ends only) or a "
            "positive number of steps")
    require(t.compile_mode is None or t.compile == "inductor",
            f"train.compile_mode={t.compile_mode} needs train.compile=inductor (got {t.compile!r})")


def check_drop(cfg) -> None:
    """The schedule's own rules (repro.schedules.check_schedule); which kinds a model has sites for
    is the model registry's (check_model)."""
    d, epochs = cfg.drop, cfg.train.epochs
    if d.kind == "none":
        return
    try:
        check_schedule(d.rate, epochs, cutoff_epoch(d, epochs), d.mode, d.schedule)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_model(cfg) -> None:
    m, data = cfg.model, cfg.data
    require(m.arch in ARCHS, f"model.arch={m.arch!r} is unknown; choose one of {sorted(ARCHS)} "
            "(or pick a config from conf/model/)")
    require(cfg.drop.kind in DROP_KINDS[m.arch],
            f"drop.kind={cfg.drop.kind} has no sites in model.arch={m.arch} (it supports "
            f"{list(DROP_KINDS[m.arch])}); choose one of those")
    if m.arch == "swin":
        grid = data.img_size // m.patch_size
        stride = m.window_size * 2 ** (len(m.depths) - 1)
        require(data.img_size % m.patch_size == 0 and grid % stride == 0,
                f"model.arch=swin needs data.img_size / model.patch_size divisible by model.window_size * "
                f"2^(stages - 1) = {stride}; got {data.img_size} / {m.patch_size}: change data.img_size")
    require(not cfg.train.grad_checkpointing or m.arch != "mlp",
            "train.grad_checkpointing=true needs a block model; model.arch=mlp has no blocks")
    if m.patch_size is not None:
        require(m.patch_size >= 1, f"model.patch_size={m.patch_size} must be >= 1")
        require(data.img_size % m.patch_size == 0,
                f"model.patch_size={m.patch_size} does not divide data.img_size={data.img_size}; "
                f"use a divisor of {data.img_size} (e.g. "
                f"{[p for p in range(2, data.img_size) if data.img_size % p == 0][:4]}) or change "
                "data.img_size")


def check_data(cfg) -> None:
    d = cfg.data
    require(d.name in DATASETS, f"data.name={d.name!r} is unknown; choose one of "
            f"{sorted(DATASETS)} (conf/data/)")
    require(d.crop_padding >= 0, f"data.crop_padding={d.crop_padding} must be >= 0")
    require(d.train_subset is None or d.train_subset >= 1,
            f"data.train_subset={d.train_subset} must be a positive number of training images, or "
            "null for the whole training set")
    for key in ("mixup", "cutmix", "label_smoothing"):
        require(d[key] >= 0, f"data.{key}={d[key]} must be >= 0")
    require(not (d.mixup or d.cutmix) or cfg.train.batch_size % 2 == 0,
            f"mixup / cutmix need an even train.batch_size, got {cfg.train.batch_size}")
    check_auto_augment(d.auto_augment)
    require(0 <= d.random_erasing <= 1, f"data.random_erasing={d.random_erasing} must lie in [0, 1]")
    require(d.workers is None or d.workers >= 0, f"data.workers={d.workers} must be >= 0 (0: decode in "
            "the main process), or null for one DataLoader process per core")
    require(0 < d.crop_pct <= 1, f"data.crop_pct={d.crop_pct} must lie in (0, 1] (0.875: 256 -> 224)")
    scale = list(d.rrc_scale)
    require(len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1,
            f"data.rrc_scale={scale} must be [low, high] with 0 < low <= high <= 1, e.g. [0.08, 1.0]")


def check_optim(cfg) -> None:
    o = cfg.optim
    require(o.name in list_optimizers(), f"optim.name={o.name!r} is not a timm optimizer; e.g. "
            "adamw, momentum (plain SGD), lamb")
    require(o.lr > 0, f"optim.lr={o.lr:g} must be > 0")
    require(o.warmup_epochs >= 0, f"optim.warmup_epochs={o.warmup_epochs:g} must be >= 0")
    epochs = cfg.train.epochs
    require(not 0 < epochs <= o.warmup_epochs,
            f"optim.warmup_epochs={o.warmup_epochs:g} is not shorter than training (train.epochs={epochs}): "
            f"the LR would still be warming up at the end; use e.g. optim.warmup_epochs={epochs / 6:.3g} (a "
            "sixth of training, as the paper's 50 of 300 epochs), or train longer")


def check_analysis(cfg) -> None:
    a = cfg.analysis
    require(a.mode == "off" or (cfg.data.name != "imagenet" and not cfg.data.auto_augment),
            f"analysis.mode={a.mode} measures on data held in memory with batched augmentation; it "
            "does not run with data=imagenet or data.auto_augment (use data=imagenet_subset without it)")
    require(a.num_grads >= 2, f"analysis.num_grads={a.num_grads!r} must be an integer >= 2: direction "
            "variance compares pairs of gradients")
    require(all(s >= 0 for s in a.steps),
            f"analysis.steps={list(a.steps)} must be non-negative integers (optimizer steps)")
    for key in ("every", "log_first", "log_points"):
        require(a[key] >= 0, f"analysis.{key}={a[key]!r} must be an integer >= 0")
    require(a.full_subset is None or a.full_subset >= 2,
            f"analysis.full_subset={a.full_subset!r} must be an integer >= 2 (g_hat's sampling error "
            "compares its two halves), or null for the whole training set")
    require(a.mode == "off" or a.steps or a.every or (a.log_first and a.log_points),
            f"analysis.mode={a.mode} but no step is selected: set analysis.steps, analysis.every "
            "or analysis.log_first with analysis.log_points")


def check_runtime(cfg) -> None:
    require(cfg.threads is None or cfg.threads >= 1, f"threads={cfg.threads} must be a positive number "
            "of CPU threads, or null for torch's default")
    device = str(cfg.device)
    require(device == "auto" or device == "cpu" or device.startswith("cuda"),
            f"device={device!r} must be auto, cpu or cuda[:N]")
    require(not device.startswith("cuda") or torch.cuda.is_available(),
            f"device={device} but no CUDA device is visible; use device=auto or device=cpu")


def check_seed_batch(cfg) -> None:
    """A seed of a seed batch (`seed_batch`: the seeds trained together as one model, set by
    repro.loop.run_batched): distinct seeds, its own among them, and only what batching supports."""
    batch = cfg.seed_batch
    if batch is None:
        return
    require(len(set(batch)) == len(batch) and cfg.seed in batch,
            f"seeds={list(batch)} (seed={cfg.seed}): give one or more distinct integer seeds, "
            "e.g. seeds=0,1,2,3")
    t, d = cfg.train, cfg.data
    for key, value, supported, fix in (
            ("train.accum_steps", t.accum_steps, t.accum_steps == 1, "train.accum_steps=1"),
            ("train.compile", t.compile, not t.compile, "train.compile=null"),
            ("train.grad_checkpointing", t.grad_checkpointing, not t.grad_checkpointing,
             "train.grad_checkpointing=false"),
            ("train.channels_last", t.channels_last, not t.channels_last, "train.channels_last=false"),
            ("train.nonfinite", t.nonfinite, t.nonfinite == "stop", "train.nonfinite=stop"),
            ("analysis.mode", cfg.analysis.mode, cfg.analysis.mode == "off", "analysis.mode=off"),
            ("data.mixup", d.mixup, not d.mixup, "data.mixup=0"),
            ("data.cutmix", d.cutmix, not d.cutmix, "data.cutmix=0"),
            ("data.auto_augment", d.auto_augment, not d.auto_augment, "data.auto_augment=null"),
            ("data", d.name, d.name != "imagenet", "data held in memory (e.g. data=imagenet_subset)"),
            ("optim.name", cfg.optim.name, cfg.optim.name in ELEMENTWISE,
             " or ".join(f"optim.name={n}" for n in ELEMENTWISE))):
        require(supported, f"{key}={value} is not supported with seed batching; use {fix}, or train "
                "these seeds one by one with python -m repro.train")


def validate(cfg) -> None:
    typed = check_schema(cfg)       # the checks below read typed values: integers are ints
    for check in (check_train, check_drop, check_model, check_data, check_optim, check_analysis,
                  check_runtime, check_seed_batch):
        check(typed)
