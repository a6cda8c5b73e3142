"""Beyond the paper: where early dropout helps. For each (model width, training-set size) cell,
the paired test-accuracy difference early dropout minus no dropout, as a table with verdicts and
a heat map (means over seeds; cells whose interval excludes 0 are marked), and the no-dropout
model's train - test accuracy gap, which says whether the cell overfits or underfits."""
from __future__ import annotations

import math
from pathlib import Path

from repro.report.claims import NONE
from repro.report.figures.common import fmt, group_by, mean_ci, paired, plt, save, verdict
from repro.report.figures.regimes import by_seed
from repro.report.ledger import one_hardware

EARLY = ("dropout", "early")
WIDTH, SIZE = "model.embed_dim", "data.train_subset"


def make(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    cells = group_by(runs, WIDTH, SIZE)
    widths, sizes = sorted({w for w, _ in cells}), sorted({s for _, s in cells})
    lines = [f"| {WIDTH} | {SIZE} | seeds | test acc, no dropout % | train - test, no dropout (pp) "
             "| early - none (pp) | verdict: helps |", "|---|---|---|---|---|---|---|"]
    diffs = {}
    for (w, s), rows in sorted(cells.items()):
        methods = group_by(one_hardware(rows, f"cell {w} x {s}"), "drop.kind", "drop.mode")
        base, early = methods.get(NONE, []), methods.get(EARLY, [])
        d, h, n = paired(by_seed(early, "test_acc"), by_seed(base, "test_acc"))
        acc = mean_ci([r["test_acc"] for r in base])[0]
        gap = mean_ci([r["train_full_acc"] - r["test_acc"] for r in base
                       if r["train_full_acc"] is not None])
        lines.append(f"| {w} | {s} | {n} | {100 * acc:.2f} | {fmt(*gap[:2], 100)} | {fmt(d, h, 100)} | "
                     f"{verdict(d, h, +1)} |")
        diffs[w, s] = (100 * d, 100 * h)
    grid = [[diffs.get((w, s), (math.nan,))[0] for s in sizes] for w in widths]
    limit = max([abs(v) for row in grid for v in row if not math.isnan(v)], default=1.0) or 1.0
    fig, ax = plt.subplots(figsize=(5.5, 4))
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, origin="lower")
    for (w, s), (d, h) in diffs.items():
        if not math.isnan(d):
            mark = "*" if abs(d) > h else ""          # False for a NaN half-width (one seed)
            ax.text(sizes.index(s), widths.index(w), f"{d:+.2f}{mark}", ha="center", va="center",
                    fontsize=9)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_yticks(range(len(widths)), [str(w) for w in widths])
    ax.set_xlabel("training images")
    ax.set_ylabel("model width (embed dim)")
    ax.set_title("early dropout - no dropout, test acc (pp)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    save(fig, out, "regime_map")
    return lines + ["", "Paired by seed; * marks cells whose 95% interval excludes 0."]
