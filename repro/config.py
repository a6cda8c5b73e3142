"""The typed schema of every config group. `check_schema` merges a config into it, so a wrong
type or an unknown key (e.g. a typo added with `+`) stops the run before anything is loaded."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from repro.errors import ConfigError


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
    workers: int = 4
    auto_augment: Optional[str] = None  # a timm policy (rand-m9-mstd0.5-inc1): per-image, in workers
    rrc_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])   # with auto_augment / imagenet
    interpolation: str = "bicubic"
    random_erasing: float = 0.0
    crop_pct: float = 0.875
    bad_images: str = "error"           # imagenet: error or skip
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
    kind: str
    mode: str
    schedule: str
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
    mode: str
    project: str
    entity: Optional[str] = None
    group: Optional[str] = None


@dataclass
class AnalysisConfig:
    mode: str
    steps: list[int] = field(default_factory=list)
    every: int = 0
    log_first: int = 0
    log_points: int = 0
    num_grads: int = 16
    batch_size: Optional[int] = None
    full_subset: Optional[int] = None
    full_batch_size: int = 1000
    per_block: bool = True
    seed: int = 0


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    accum_steps: int = 1
    eval_batch_size: int = 1000
    train_eval_size: int = 10000
    log_every: int = 10
    eval_every: int = 1
    ckpt_every: int = 0
    nonfinite: str = "stop"
    stop_signals: list[str] = field(default_factory=lambda: ["SIGTERM", "SIGUSR1", "SIGUSR2"])
    amp: bool = True
    grad_checkpointing: bool = False
    compile: Optional[str] = None       # a torch.compile backend (inductor, aot_eager, ...)
    compile_mode: Optional[str] = None  # inductor's mode, e.g. reduce-overhead (CUDA graphs)
    channels_last: bool = False
    progress: bool = True
    resume: bool = True


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
    hydra: Any = None                   # present when composed with Hydra's own config


def register_schemas() -> None:
    """Put the data schema in Hydra's ConfigStore as `data/schema`: every conf/data file starts
    from it (`defaults: [schema, _self_]`), so a dataset states only what differs from the
    defaults above, and Hydra checks types and unknown keys when it composes."""
    from hydra.core.config_store import ConfigStore
    ConfigStore.instance().store(group="data", name="schema", node=DataConfig)


def check_schema(cfg) -> None:
    """Raise ConfigError naming the key when `cfg` has a wrong type or an unknown key."""
    try:
        OmegaConf.merge(OmegaConf.structured(Config), cfg)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        reason = str(err).splitlines()[0]
        raise ConfigError(f"{key}: {reason}. Fix the value's type, or remove the key if it is a "
                          "typo (see conf/ for the keys each group takes)") from None
