"""The typed schema of every config group and the choices its keys take, stated once here.

Hydra composes a run's config from conf/. `check_schema` merges it into `Config`, so a wrong type,
an unknown key (e.g. a typo added with `+`) or a value outside a key's choices stops the run,
naming the key (and the choices), before anything is loaded. `register_schemas` puts each group's
schema in Hydra's ConfigStore (`GROUP/schema`) and the train, logger and analysis defaults below
(`GROUP/defaults`: plain values, as a YAML file would state them) that conf/ starts from, so
those defaults are stated only here. Every conf/data file starts from `data/schema`, so Hydra
checks those keys as it composes; the other groups stay untyped until `check_schema` on purpose:
started from their schema, a composed config would gain the optional keys a file leaves out and
turn integers into floats (cutoff_epoch: 50 -> 50.0), which changes `checkpoint.config_hash` of
existing runs, and a bad value would stop Hydra itself rather than be refused with the one-line
message and exit status 2 of `repro.errors.refuse`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, is_dataclass
from enum import Enum
from typing import Any, Optional, get_type_hints

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from repro.errors import ConfigError

# Keys that say how a run is watched or executed, not what it computes: left out of its config hash
# (repro.records.checkpoint.config_hash), so changing them resumes the same run.
RESUME_FREE_KEYS = ("logger", "train.progress", "train.resume", "threads", "data.workers")


class Choice(str, Enum):
    """One of a key's choices: equal to, printed and serialized as its value (like 3.11's StrEnum),
    and named by it, so that configs, to_yaml and config hashes read as plain strings."""
    __str__ = str.__str__
    __format__ = str.__format__


def choice(name: str, *names: str) -> type[Choice]:
    return Choice(name, [(v, v) for v in names], module=__name__)


def values(choices: type[Choice]) -> tuple[str, ...]:
    return tuple(c.value for c in choices)


DropKind = choice("DropKind", "none", "dropout", "drop_path")
DropMode = choice("DropMode", "standard", "early", "late")
DropShape = choice("DropShape", "constant", "linear", "cosine", "increasing")
LoggerMode = choice("LoggerMode", "offline", "online", "disabled")
AnalysisMode = choice("AnalysisMode", "off", "live", "snapshot")   # quote off in YAML: "off"
NonFinite = choice("NonFinite", "stop", "skip")
Interpolation = choice("Interpolation", "bicubic", "bilinear", "nearest", "random")
BadImages = choice("BadImages", "error", "skip")
CompileMode = choice("CompileMode", "default", "reduce-overhead", "max-autotune",
                     "max-autotune-no-cudagraphs")


@dataclass
class DataConfig:
    name: str
    img_size: int
    in_chans: int
    num_classes: int
    root: Optional[str] = None
    crop_padding: int = 0
    hflip: bool = False
    mixup: float = 0.0
    cutmix: float = 0.0
    label_smoothing: float = 0.0
    train_subset: Optional[int] = None
    subset_seed: int = 0
    download: bool = True               # cifar
    class_list: Optional[str] = None    # imagenet_subset
    cache_dir: Optional[str] = None
    workers: Optional[int] = None       # DataLoader processes; null: one per core (not hashed)
    auto_augment: Optional[str] = None  # a timm policy (rand-m9-mstd0.5-inc1): per-image, in workers
    rrc_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])   # with auto_augment / imagenet
    interpolation: Interpolation = Interpolation.bicubic
    random_erasing: float = 0.0
    crop_pct: float = 0.875
    bad_images: BadImages = BadImages.error   # imagenet: a file that cannot be decoded
    seed: int = 0                       # synthetic
    num_train: int = 512
    num_test: int = 256
    noise: float = 40.0


@dataclass
class ModelConfig:
    name: str
    arch: str
    patch_size: Optional[int] = None    # vit, mixer
    embed_dim: Optional[int] = None
    depth: Optional[int] = None
    num_heads: Optional[int] = None     # vit
    mlp_ratio: float = 4.0
    head_dropout: float = 0.0
    depths: Optional[list[int]] = None  # swin, convnext: blocks per stage
    dims: Optional[list[int]] = None    # convnext: width per stage
    stage_heads: Optional[list[int]] = None   # swin: attention heads per stage
    window_size: Optional[int] = None   # swin
    hidden: Optional[list[int]] = None  # mlp
    hidden_dropout: Optional[list[float]] = None
    init_std: float = 0.01


@dataclass
class DropConfig:
    kind: DropKind
    mode: DropMode
    schedule: DropShape
    rate: float
    cutoff_epoch: Optional[float] = None
    cutoff_fraction: float = 0.0


@dataclass
class OptimConfig:
    name: str
    lr: float
    weight_decay: float
    warmup_epochs: float
    warmup_lr: float
    min_lr: float
    lr_base_batch: Optional[int] = None
    betas: Optional[list[float]] = None
    momentum: Optional[float] = None
    eps: Optional[float] = None
    fused: Optional[bool] = None        # fused AdamW kernel (torch >= 2.4 on CPU and CUDA)


@dataclass
class LoggerConfig:
    """The W&B mirror of metrics.jsonl (metrics.jsonl is written in every mode)."""
    mode: LoggerMode
    project: str = "dropout-reduces-underfitting"
    entity: Optional[str] = None
    group: Optional[str] = "${name}"    # the experiment's name
    # An experiment of cells (conf/experiment/NAME.yaml sets it): the keys whose values name a
    # run's cell; W&B and results/ group by them (a plan and a verdict per cell)
    cell: list[str] = field(default_factory=list)


@dataclass
class AnalysisConfig:
    """Training-dynamics measurement (docs/paper.md section 4), its defaults stated only here:
    gradient norm, distance from init, direction variance and error, bias / variance,
    noise-to-signal, per-block values, update cosine; mini-batch gradients with the dropout masks
    on (as trained) and off. live: measure during training (`analysis` events); snapshot: save
    the weights at the measured steps, measure later (`python -m repro.analysis.measure RUN_DIR`)."""
    mode: AnalysisMode = AnalysisMode.off
    steps: list[int] = field(default_factory=list)   # explicit optimizer steps (0 = initialization)
    every: int = 0                  # and every k steps
    log_first: int = 0              # and log_points log-spaced steps over the first log_first steps
    log_points: int = 0
    num_grads: int = 16             # |G| mini-batch gradients per measurement
    batch_size: Optional[int] = None    # null: train.batch_size
    full_subset: Optional[int] = 10000  # images for the whole-set gradient g_hat (null: all of them);
                                        # its sampling error is logged as full_grad_error
    full_batch_size: int = 1000
    per_block: bool = True          # also per block (blocks.i, patch_embed, head, ...)
    seed: int = 0                   # the probe's own randomness (g_hat subset, batches, masks), mixed
                                    # with the run's seed: per seed, shared by the arms of one seed


@dataclass
class TrainConfig:
    """The train defaults, stated only here (conf/config.yaml takes them as `train: defaults`;
    recipes and experiments override them)."""
    epochs: int = 3
    batch_size: int = 128           # images per optimizer step
    accum_steps: int = 1            # split each step into this many micro-batches (gradient accumulation)
    eval_batch_size: int = 1000
    train_eval_size: int = 10000    # fixed training subset for the full-model (eval-mode) training loss
    log_every: int = 10             # optimizer steps between train events in metrics.jsonl
    eval_every: int = 1             # epochs between evaluations (the last epoch is always evaluated)
    ckpt_every: int = 0             # steps between mid-epoch checkpoints (0: at epoch ends only)
    # a non-finite loss: stop (naming the last good checkpoint) or skip the step
    nonfinite: NonFinite = NonFinite.stop
    # finish the step, checkpoint, stop (SLURM / submitit); Ctrl-C (SIGINT) always does
    stop_signals: list[str] = field(default_factory=lambda: ["SIGTERM", "SIGUSR1", "SIGUSR2"])
    amp: bool = True                # bf16 autocast on CUDA (CPU always runs fp32)
    grad_checkpointing: bool = False    # recompute block activations in backward: less memory, ~30% slower
    compile: Optional[str] = None   # a torch.compile backend, e.g. inductor (GPU); drop rates live in buffers
    compile_mode: Optional[CompileMode] = None  # inductor only: reduce-overhead (CUDA graphs), ...
    channels_last: bool = False     # NHWC images and weights (helps convolutions on GPUs: patch embedding)
    progress: bool = True
    resume: bool = True             # continue from the run directory's checkpoint if there is one


@dataclass
class Config:
    data: DataConfig
    model: ModelConfig
    drop: DropConfig
    optim: OptimConfig
    logger: LoggerConfig
    analysis: AnalysisConfig
    train: TrainConfig
    name: str = "default"
    seed: int = 0
    device: str = "auto"
    threads: Optional[int] = None
    seed_batch: Optional[list[int]] = None   # the seeds trained with this one as one model (train_batched)
    hydra: Any = None                   # present when composed with Hydra's own config


def register_schemas() -> None:
    """Each group's schema as `GROUP/schema` in Hydra's ConfigStore (a group file starts from it
    with `defaults: [schema, _self_]`, as every conf/data file does), and the train, logger and
    analysis defaults as `GROUP/defaults`: plain values, untyped like a YAML file's, so that the
    composed config is the one conf/ stated them in before."""
    from hydra.core.config_store import ConfigStore
    store = ConfigStore.instance()
    for group, schema in get_type_hints(Config).items():
        if is_dataclass(schema):
            store.store(group=group, name="schema", node=schema)
    for group, schema in (("train", TrainConfig), ("logger", LoggerConfig), ("analysis", AnalysisConfig)):
        store.store(group=group, name="defaults",
                    node=OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True))


def check_schema(cfg):
    """`cfg` merged into the schema: every value of the right type and among its key's choices.
    Raise ConfigError naming the key and the fix when it is not."""
    try:
        typed = OmegaConf.merge(OmegaConf.structured(Config), cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(schema_message(err)) from None
    missing = sorted(k for k in OmegaConf.missing_keys(typed) if not k.startswith("hydra."))
    if missing:
        raise ConfigError(f"{missing[0]} has no value; set it (see conf/ for the values each group takes)")
    return typed


def schema_message(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or "?"
    enum = getattr(getattr(err, "child_node", None), "enum_type", None)
    if enum is not None:
        hint = " (YAML reads off / no / yes as booleans: quote it)" if isinstance(err.value, bool) else ""
        return f"{key}={err.value!r} is unknown; choose one of {', '.join(values(enum))}{hint}"
    fix = ("Remove the key if it is a typo (see conf/ for the keys each group takes)"
           if isinstance(err, ConfigKeyError) else "Fix the value's type")
    return f"{key}: {str(err).splitlines()[0]}. {fix}"
