"""Ablations: final test accuracy and full-model training loss against one swept setting
(cutoff, rate or schedule shape), mean and 95% interval over seeds."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from repro.figures.common import fmt, group_by, mean_ci, plt, save


def make(runs: list[dict], curves: list[dict], out: Path, key: str) -> list[str]:
    groups = sorted(group_by(runs, key).items(), key=lambda item: str(item[0][0]))
    lines = [f"| {key} | runs | test acc % | train loss (full model) |", "|---|---|---|---|"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    accs, losses = [], []
    for (value,), rows in groups:
        acc = mean_ci([r["test_acc"] for r in rows])
        loss = mean_ci([r["train_full_loss"] for r in rows])
        accs.append(acc)
        losses.append(loss)
        lines.append(f"| {value} | {acc[2]} | {fmt(*acc[:2], 100)} | {fmt(*loss[:2], digits=4)} |")
    labels = [str(value) for (value,), _ in groups]
    for ax, values, title in zip(axes, (accs, losses), ("test accuracy", "final training loss")):
        ax.errorbar(range(len(values)), [m for m, _, _ in values], yerr=[h for _, h, _ in values],
                    fmt="o-", capsize=4)
        ax.set_xticks(range(len(values)), labels)
        ax.set_xlabel(key)
        ax.set_title(title)
    fig.tight_layout()
    save(fig, out, out.name if out.name.startswith("ablation") else "ablation")
    return lines + ["", "Means ± 95% t-intervals over seeds."]


cutoff = partial(make, key="drop.cutoff_fraction")
rate = partial(make, key="drop.rate")
schedule = partial(make, key="drop.schedule")
