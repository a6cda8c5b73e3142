"""Drop layers whose rate is data (a 0-d buffer), not a Python float: a compiled model then
does not recompile when the schedule changes the rate every step. `make_compilable` swaps them
in for torch's Dropout or timm's DropPath, whichever the schedule drives, and routes timm's
attention through its dropout module when dropout is scheduled (fused attention takes the rate
as a float)."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import DropPath


class BufferRate:
    """A float attribute (`p`, `drop_prob`) kept in the module's 0-d `rate` buffer."""

    def __get__(self, module, owner=None):
        return self if module is None else module.rate.item()

    def __set__(self, module, value: float) -> None:
        module.rate.fill_(value)


def _inverted(x: torch.Tensor, rate: torch.Tensor, shape) -> torch.Tensor:
    keep = torch.rand(shape, device=x.device, dtype=x.dtype) >= rate
    return x * keep / (1 - rate)


class ScheduledDropout(nn.Dropout):
    """Inverted dropout reading its rate from a buffer; `.p` reads and writes that buffer."""

    p = BufferRate()

    def __init__(self, p: float = 0.0):
        nn.Module.__init__(self)
        self.inplace = False
        self.register_buffer("rate", torch.tensor(float(p)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _inverted(x, self.rate, x.shape) if self.training else x


class ScheduledDropPath(DropPath):
    """Stochastic depth (per-sample) reading its rate from a buffer; `.drop_prob` is that buffer."""

    drop_prob = BufferRate()

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        nn.Module.__init__(self)
        self.scale_by_keep = scale_by_keep
        self.register_buffer("rate", torch.tensor(float(drop_prob)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return _inverted(x, self.rate, (x.shape[0],) + (1,) * (x.ndim - 1))


def unfuse_attention(model: nn.Module) -> None:
    """Run every timm attention of `model` unfused, through its dropout module: fused attention
    takes the dropout rate as a float and draws its own masks."""
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False


def make_compilable(model: nn.Module, kind: str) -> nn.Module:
    """Swap in the scheduled layers for the drop `kind` the schedule drives ("dropout",
    "drop_path" or "none"), same rates, rate buffers on the model's device; in place.

    Only scheduled dropout turns fused attention off (its kernel takes the rate as a float);
    layers no schedule drives keep their constant float rate, which compiles once, so drop-path
    and no-drop runs keep the fused attention kernel."""
    device = next(model.parameters()).device
    swap = {"dropout": (nn.Dropout, lambda m: ScheduledDropout(m.p)),
            "drop_path": (DropPath, lambda m: ScheduledDropPath(m.drop_prob, m.scale_by_keep))}
    if kind not in swap:
        return model
    if kind == "dropout":
        unfuse_attention(model)
    layer, scheduled = swap[kind]
    for module in list(model.modules()):
        for child_name, child in module.named_children():
            if type(child) is layer:
                setattr(module, child_name, scheduled(child).to(device))
    return model
