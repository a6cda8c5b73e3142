"""Evaluation of the full model (eval mode: no dropout, no drop path): summed loss and accuracy
over an evaluation set, summed across data-parallel ranks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(model: torch.nn.Module, eval_sets: dict, batch_size: int, autocast, world, device) -> dict:
    """`{name}_loss` (mean cross-entropy) and `{name}_acc` (top-1) for each set in `eval_sets`,
    whose `batches(size)` give this rank's share; `autocast()` is the training precision."""
    model.eval()
    out = {}
    for name, images in eval_sets.items():
        loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        seen = 0
        for xb, yb in images.batches(batch_size):
            with autocast():
                logits = model(xb).float()
            loss += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
        count = world.sum(torch.tensor(float(seen), device=device))
        out[f"{name}_loss"] = (world.sum(loss) / count).item()
        out[f"{name}_acc"] = (world.sum(correct.double()) / count).item()
    model.train()
    return out
