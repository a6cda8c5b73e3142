"""The parts of a run, built from its config: the data (checked against the config), the seeded
model, and the Trainer with its batches, events and the model's step (drop schedule, optimizer,
loss). run.py (single runs and seed batches), post-hoc measurement and the benchmarks all build
through here."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch.nn.parallel import DistributedDataParallel

from repro import distributed
from repro.data import load_data
from repro.distributed import SINGLE, World
from repro.errors import ConfigError, DataError
from repro.layers import make_compilable
from repro.loop.events import Events, RunEvents
from repro.loop.step import ModelStep
from repro.loop.trainer import Trainer
from repro.models import build_model
from repro.optim import build_optimizer
from repro.records.logger import MetricsLog
from repro.schedules import DropSchedule


def check_loaded(cfg, data) -> None:
    """The loaded data agrees with the config: image geometry, class count, a whole batch."""
    c, h, w = data.geometry
    if (c, h, w) != (cfg.data.in_chans, cfg.data.img_size, cfg.data.img_size):
        raise DataError(f"{cfg.data.name} images are {c}x{h}x{w} but the config says data.in_chans="
                        f"{cfg.data.in_chans}, data.img_size={cfg.data.img_size}; fix those keys")
    if data.num_classes != cfg.data.num_classes:
        listed = f" (data.class_list={cfg.data.class_list})" if cfg.data.get("class_list") else ""
        raise ConfigError(f"data.num_classes={cfg.data.num_classes} but {cfg.data.name}{listed} has "
                          f"{data.num_classes} classes; set data.num_classes={data.num_classes}")
    n = len(data.train_y)
    if cfg.train.batch_size > n:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} exceeds the {n} training images "
                          f"(data.train_subset={cfg.data.train_subset}); use train.batch_size={n} or "
                          "less, or more training data")


def seeded_model(cfg, data):
    """`cfg`'s model for `data`, initialized from `cfg.seed` (the same weights on every call)."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model, num_classes=data.num_classes, in_chans=cfg.data.in_chans,
                       img_size=cfg.data.img_size, **DropSchedule.max_rates(cfg.drop))


def prepare(cfg, device: torch.device | None = None):
    """The data, the seeded model and the device of `cfg`: what every entry point builds first."""
    data = load_data(cfg.data)
    check_loaded(cfg, data)
    return seeded_model(cfg, data), data, device or distributed.select_device(str(cfg.device))


def loss_parts(cfg, num_classes: int) -> tuple[Mixup | None, nn.Module]:
    """timm's Mixup / CutMix (None when off) and the criterion that goes with it."""
    a = cfg.data
    if not (a.mixup or a.cutmix):
        return None, nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    return (Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, label_smoothing=a.label_smoothing,
                  num_classes=num_classes), SoftTargetCrossEntropy())


def build_trainer(cfg, model: nn.Module, data, device: torch.device, log: MetricsLog | None = None,
                  checkpoint_path=None, world: World = SINGLE) -> Trainer:
    """A Trainer for `cfg` at step 0: this rank's batches and evaluation sets, the run's events, and
    the step of `model` on `device` (data parallel over `world`): the drop schedule and its
    controller, optimizer, LR schedule, loss."""
    t = cfg.train
    model = model.to(device)
    if t.grad_checkpointing:                 # recompute block activations in backward
        model.set_grad_checkpointing(True)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    batches, eval_sets = data.pipeline(cfg, device, world)
    schedule = DropSchedule.from_config(cfg.drop, t.epochs, len(batches))
    if t.compile:                            # scheduled rates as data: no recompiles per step
        make_compilable(model, schedule.kind)
    controller = schedule.controller(model)
    ids = [device.index] if device.type == "cuda" else None
    parallel = DistributedDataParallel(model, ids) if world.size > 1 else model
    if t.compile:
        parallel = torch.compile(parallel, backend=t.compile, mode=t.compile_mode)
    optimizer, scheduler = build_optimizer(model, cfg.optim, t.batch_size, t.epochs * len(batches),
                                           len(batches))
    mixup, criterion = loss_parts(cfg, data.num_classes)
    log = log or MetricsLog(None)
    step = ModelStep(model=model, parallel=parallel, controller=controller, optimizer=optimizer,
                     scheduler=scheduler, mixup=mixup, criterion=criterion,
                     seeds=tuple(cfg.get("seed_batch") or [cfg.seed]), amp=t.amp, accum_steps=t.accum_steps,
                     skip_nonfinite=t.nonfinite == "skip", eval_batch_size=t.eval_batch_size, device=device,
                     log=log, world=world)
    events = Events([RunEvents(log, t, len(batches), device, world, checkpoint_path)], [cfg.seed])
    return Trainer(cfgs=[cfg], model_step=step, batches=batches, eval_sets=eval_sets, schedule=schedule,
                   events=events, checkpoint_paths=[checkpoint_path])
