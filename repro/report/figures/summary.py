"""results/README.md's generated opening and the headline figure, from every current folder's
summary rows (repro.report.figures.evidence): "The answer" (each claim of the paper once, its most
decisive row), "Claims at a glance" (every current row) and results/claims.png (every
pre-registered row: effect, 95% interval, the +-margin band, the paper's effect, the verdict)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

from repro.report.figures.common import plt, save

PAPERS_SIDE = ("reproduced", "smaller than the paper's", "larger than the paper's")


def scale_text(runs: list[dict]) -> str:
    """Model, data and schedule of a folder's runs, e.g. 'vit_micro dim 96, all fashion_mnist,
    3 epochs'; several values joined by '/'."""
    def values(key):
        found = sorted({r.get(key) for r in runs if r.get(key) is not None}, key=str)
        return "/".join(str(v) for v in found)
    size = f"{values('data.train_subset')} images of" if values("data.train_subset") else "all"
    dim = f" dim {values('model.embed_dim')}" if values("model.embed_dim") else ""
    return f"{values('model.name')}{dim}, {size} {values('data.name')}, {values('train.epochs')} epochs"


def papers_effect(row: dict) -> str:
    """The paper's own effect for the row's comparison, or why there is none."""
    if row.get("margin") is None:
        return row.get("paper", "a figure, no number")
    unit = " pp" if row["metric"].endswith("acc") else ""
    digits = 1 if unit else 4
    if row["ours"]:
        return f"none published (our margin ±{row['margin']:.{digits}f}{unit})"
    return f"{row['sign'] * row['margin']:+.{digits}f}{unit}"


def verdict_text(row: dict) -> str:
    return row["verdict"] if row.get("planned") else f"{row['verdict']} (unplanned)"


def decisiveness(row: dict) -> tuple:
    """Planned and complete first, then planned, then by seeds."""
    return (bool(row.get("planned")) and not row["verdict"].startswith("underpowered"),
            bool(row.get("planned")), row.get("n", 0))


def answer(rows: list[dict]) -> list[str]:
    """Each claim once: its most decisive row, with the count of the other rows about it."""
    by_claim: dict = {}
    for row in rows:
        by_claim.setdefault(row.get("base", row["claim"]), []).append(row)
    lines = ["| claim of the paper | our verdict | effect (95% CI) | the paper's effect | seeds | scale | "
             "folder |", "|---|---|---|---|---|---|---|"]
    for group in by_claim.values():
        best = max(group, key=decisiveness)
        more = f" (+{len(group) - 1} in the glance)" if len(group) > 1 else ""
        lines.append(f"| {best['claim']} | **{verdict_text(best)}** | {best['effect']} | "
                     f"{papers_effect(best)} | {best['seeds']} | {best['scale']}; {best['hardware']} | "
                     f"`{best['folder']}/`{more} |")
    return lines


def glance(rows: list[dict]) -> list[str]:
    lines = ["| claim | verdict | effect at the planned seeds (95% CI) | seeds | seeds past the plan "
             "(their own estimate) | hardware | folder |", "|---|---|---|---|---|---|---|"]
    return lines + [f"| {r['claim']} | {verdict_text(r)} | {r['effect']} | {r['seeds']} | "
                    f"{r.get('past', '-')} | {r['hardware']} | `{r['folder']}/` |" for r in rows]


def panel_of(row: dict) -> str:
    if row["metric"] == "test_acc":
        return "test accuracy, method - baseline (pp)"
    if row["metric"] == "train_full_loss":
        return "final training loss, method - baseline"
    return "training dynamics, dropout - none (each metric's own units)"


def plot_claims(rows: list[dict], out: Path) -> list[Path]:
    """One row per pre-registered claim x hardware kind (x cell): the effect and its 95% interval,
    the +-margin band shaded, the paper's own effect marked (a diamond) and the verdict beside it;
    one panel per unit."""
    panels: dict = {}
    for row in rows:
        if row.get("planned"):
            panels.setdefault(panel_of(row), []).append(row)
    heights = [len(p) + 1.2 for p in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12.5, 0.5 * sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (title, group) in zip(axes[:, 0], panels.items()):
        draw_panel(ax, title, group)
    fig.subplots_adjust(left=0.31, right=0.72, top=0.97, bottom=0.03, hspace=0.4)
    return save(fig, out, "claims")


def draw_panel(ax, title: str, group: list[dict]) -> None:
    ys = list(range(len(group)))[::-1]
    for y, row in zip(ys, group):
        if row.get("margin"):
            ax.add_patch(plt.Rectangle((-row["margin"], y - 0.4), 2 * row["margin"], 0.8, color="0.88", lw=0))
            if not row["ours"]:
                ax.plot(row["sign"] * row["margin"], y, "D", color="tab:red", ms=5)
        half = 0.0 if math.isnan(row["half"]) else row["half"]
        word = row["verdict"]
        colour = ("tab:blue" if word in PAPERS_SIDE else "tab:orange" if word == "opposite"
                  else "tab:green" if word.startswith("no effect") else "0.3")
        ax.errorbar(row["diff"], y, xerr=half, fmt="o", color=colour, capsize=3, ms=4)
        seeds = "" if row["verdict"].startswith("underpowered") else f" ({row['seeds']})"
        ax.text(1.01, y, textwrap.fill(row["verdict"] + seeds, 44), transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys, [textwrap.fill(r["claim"], 58) + f"\n{r['folder']} · {r['hardware']}" for r in group],
                  fontsize=7.5)
    ax.set_ylim(-0.7, len(group) - 0.3)
    legend = "   grey band: ±margin; red diamond: the paper's effect"
    ax.set_title(title + (legend if any(r.get("margin") for r in group) else ""), fontsize=9, loc="left")
    ax.tick_params(axis="x", labelsize=8)
