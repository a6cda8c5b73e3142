"""Ablations of early dropout: final test accuracy and full-model training loss against one swept
setting (cutoff, rate or schedule shape), each paired by seed against no dropout, mean and 95%
interval over seeds. The paper's claim: the gain over no dropout holds across the setting."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from repro.report.claims import NONE
from repro.report.figures.common import fmt, group_by, mean_ci, paired, plt, save, settings_row, verdict
from repro.report.figures.regimes import by_seed
from repro.report.ledger import hardware_kinds, one_hardware


def make(runs: list[dict], curves: list[dict], out: Path, key: str, stem: str) -> list[str]:
    one_hardware(runs, stem)
    base = [r for r in runs if (r["drop.kind"], r["drop.mode"]) == NONE]
    swept = [r for r in runs if (r["drop.kind"], r["drop.mode"]) != NONE]
    groups = [("no dropout", base)] if base else []
    groups += [(value, rows) for (value,), rows in sorted(group_by(swept, key).items())]
    lines = [f"| {key} | runs | test acc % | train loss (full model) | test acc vs no dropout (pp) | "
             "verdict: early dropout helps |", "|---|---|---|---|---|---|"]
    stats = {"test_acc": [], "train_full_loss": []}
    for value, rows in groups:
        for metric in stats:
            stats[metric].append(mean_ci([r[metric] for r in rows]))
        acc, loss = stats["test_acc"][-1], stats["train_full_loss"][-1]
        d, h, _ = paired(by_seed(rows, "test_acc"), by_seed(base, "test_acc"))
        diff = ("-", "-") if rows is base else (fmt(d, h, 100), verdict(d, h, +1))
        lines.append(f"| {value} | {acc[2]} | {fmt(*acc[:2], 100)} | {fmt(*loss[:2], digits=4)} | "
                     f"{diff[0]} | {diff[1]} |")
    labels = [str(value) for value, _ in groups]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, values, title in zip(axes, stats.values(), ("test accuracy", "final training loss")):
        ax.errorbar(range(len(values)), [m for m, _, _ in values], yerr=[h for _, h, _ in values],
                    fmt="o", capsize=4)
        ax.set_xticks(range(len(values)), labels)
        ax.set_xlabel(key)
        ax.set_title(title)
    fig.tight_layout()
    save(fig, out, stem)
    return lines + ["", "Means ± 95% t-intervals over seeds; differences paired by seed against no "
                    "dropout (the same initialization and data order)."]


def glance(runs: list[dict], curves: list[dict], out: Path, key: str, stem: str) -> list[dict]:
    """One summary row: the paper's robustness claim over every setting of `key`."""
    one_hardware(runs, stem)
    base = by_seed([r for r in runs if (r["drop.kind"], r["drop.mode"]) == NONE], "test_acc")
    swept = group_by([r for r in runs if (r["drop.kind"], r["drop.mode"]) != NONE], key)
    results = [paired(by_seed(rows, "test_acc"), base) for _, rows in sorted(swept.items())]
    return [settings_row(f"early dropout's gain holds across {key} ({len(results)} settings)", results,
                         hardware_kinds(runs)[0])]


cutoff = partial(make, key="drop.cutoff_fraction", stem="ablation_cutoff")
rate = partial(make, key="drop.rate", stem="ablation_rate")
schedule = partial(make, key="drop.schedule", stem="ablation_schedule")
