"""Model registry: `model.arch` names a builder of a timm model (Swin with the official code's
dropout after the patch embedding added) or of the classic MLP.

Every builder takes the model config plus the data geometry and the maximum dropout / drop-path
rates of the run's schedule, so that every site the schedule will drive exists from step 0.
"""
from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn
from timm.models.convnext import ConvNeXt
from timm.models.mlp_mixer import MlpMixer
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

ARCHS: dict[str, Callable[..., nn.Module]] = {}
DROP_KINDS: dict[str, tuple[str, ...]] = {}     # the drop kinds each arch has sites for


def register(name: str, drop_kinds: tuple[str, ...] = ("none", "dropout", "drop_path")):
    def add(builder):
        ARCHS[name] = builder
        DROP_KINDS[name] = drop_kinds
        return builder
    return add


def build_model(cfg, *, num_classes: int, in_chans: int, img_size: int,
                dropout: float = 0.0, drop_path: float = 0.0) -> nn.Module:
    """Build `cfg.arch` for the data geometry with the given maximum drop rates."""
    if cfg.arch not in ARCHS:
        raise ValueError(f"model.arch={cfg.arch!r} is unknown; choose one of {sorted(ARCHS)}")
    return ARCHS[cfg.arch](cfg, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                           dropout=dropout, drop_path=drop_path)


def residual_blocks(model: nn.Module) -> list[nn.Module]:
    """The residual blocks that stochastic depth drops, in depth order across stages: timm keeps
    them in `model.blocks` (ViT, Mixer), `model.layers[i].blocks` (Swin) or `model.stages[i].blocks`
    (ConvNeXt). The linear depth rule runs over all of them, as in the official code."""
    if hasattr(model, "blocks"):
        return list(model.blocks)
    stages = getattr(model, "layers", None) or getattr(model, "stages", None) or []
    return [block for stage in stages for block in getattr(stage, "blocks", [])]


@register("vit")
def vit(cfg, *, num_classes, in_chans, img_size, dropout, drop_path):
    """timm VisionTransformer; the paper's dropout hits pos-embed, attention and MLP sites."""
    return VisionTransformer(
        img_size=img_size, patch_size=cfg.patch_size, in_chans=in_chans, num_classes=num_classes,
        embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio, drop_rate=cfg.head_dropout, pos_drop_rate=dropout,
        attn_drop_rate=dropout, proj_drop_rate=dropout, drop_path_rate=drop_path)


@register("mixer")
def mixer(cfg, *, num_classes, in_chans, img_size, dropout, drop_path):
    """timm MlpMixer built from its class (create_model rejects a patch_size override)."""
    return MlpMixer(
        num_classes=num_classes, img_size=img_size, in_chans=in_chans, patch_size=cfg.patch_size,
        num_blocks=cfg.depth, embed_dim=cfg.embed_dim, drop_rate=cfg.head_dropout,
        proj_drop_rate=dropout, drop_path_rate=drop_path)


class Swin(SwinTransformer):
    """timm's SwinTransformer plus the official Swin's dropout after the patch embedding
    (`pos_drop`, a scheduled site), which timm's lacks; otherwise timm's forward and weights."""

    def __init__(self, pos_drop_rate: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.pos_drop = nn.Dropout(pos_drop_rate)

    def forward_features(self, x):
        return self.norm(self.layers(self.pos_drop(self.patch_embed(x))))


@register("swin")
def swin(cfg, *, num_classes, in_chans, img_size, dropout, drop_path):
    """Swin (above): dropout after the patch embedding and at the attention, projection and MLP
    sites, 1 + 4 per block as in the official code (49 in Swin-F)."""
    return Swin(
        img_size=img_size, patch_size=cfg.patch_size, window_size=cfg.window_size, in_chans=in_chans,
        num_classes=num_classes, embed_dim=cfg.embed_dim, depths=tuple(cfg.depths),
        num_heads=tuple(cfg.stage_heads), mlp_ratio=cfg.mlp_ratio, drop_rate=cfg.head_dropout,
        pos_drop_rate=dropout, proj_drop_rate=dropout, attn_drop_rate=dropout, drop_path_rate=drop_path)


@register("convnext", drop_kinds=("none", "drop_path"))
def convnext(cfg, *, num_classes, in_chans, img_size, dropout, drop_path):
    """timm ConvNeXt; stochastic depth only, as the official code schedules it (docs/paper.md
    section 9): its only dropout is the head's."""
    if dropout:
        raise ValueError("model.arch=convnext has no dropout sites to schedule (the official code "
                         "uses stochastic depth only); use drop.kind=drop_path")
    return ConvNeXt(in_chans=in_chans, num_classes=num_classes, depths=tuple(cfg.depths),
                    dims=tuple(cfg.dims), drop_rate=cfg.head_dropout, drop_path_rate=drop_path)


@register("mlp", drop_kinds=("none", "dropout"))
def mlp(cfg, *, num_classes, in_chans, img_size, dropout, drop_path):
    """The classic ReLU MLP with dropout after each hidden layer, weights N(0, init_std)."""
    rates = list(cfg.hidden_dropout)
    if len(rates) != len(cfg.hidden):
        raise ValueError(f"model.hidden_dropout has {len(rates)} rates for {len(cfg.hidden)} "
                         "hidden layers in model.hidden: give one rate per hidden layer")
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_chans * img_size * img_size
    for hidden, rate in zip(cfg.hidden, rates):
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(max(rate, dropout))]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=cfg.init_std)
            nn.init.zeros_(m.bias)
    return model
