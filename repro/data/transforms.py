"""The official recipe's per-image augmentation, built by timm's own factory (docs/paper.md
section 9): RandomResizedCrop (bicubic), horizontal flip, RandAugment, random erasing; evaluation
by resize and centre crop (crop fraction 0.875: 256 -> 224)."""
from __future__ import annotations

from timm.data import create_transform

from repro.errors import ConfigError


def floats(values) -> tuple[float, ...]:
    """Per-channel statistics as plain floats (timm rounds them for RandAugment's fill colour)."""
    return tuple(float(v) for v in values)


def train_transform(d, mean, std):
    """Training transform of data config `d` (PIL image in, normalized tensor out)."""
    return create_transform(
        input_size=(d.in_chans, d.img_size, d.img_size), is_training=True, scale=tuple(d.rrc_scale),
        hflip=0.5 if d.hflip else 0.0, auto_augment=d.auto_augment, interpolation=d.interpolation,
        re_prob=d.random_erasing, re_mode="pixel", re_count=1, mean=floats(mean), std=floats(std))


def eval_transform(d, mean, std):
    return create_transform(input_size=(d.in_chans, d.img_size, d.img_size), is_training=False,
                            crop_pct=d.crop_pct, interpolation=d.interpolation, mean=floats(mean),
                            std=floats(std))


def check_auto_augment(policy: str | None) -> None:
    """Stop before any data is read when timm rejects the augmentation string."""
    if policy is None:
        return
    try:
        create_transform(input_size=(3, 32, 32), is_training=True, auto_augment=policy)
    except (AssertionError, ValueError, KeyError, IndexError) as err:
        raise ConfigError(f"data.auto_augment={policy!r} is rejected by timm ({err or type(err).__name__}); "
                          "use a timm policy string such as rand-m9-mstd0.5-inc1, or null") from err
