"""The paper's method comparisons: final test accuracy and the full model's final training loss
per method with paired differences against a baseline, and training curves with the cutoff
marked. The early regime is the main table (an underfitting model), the late regime the
overfitting one (standard against late stochastic depth)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.figures.common import fmt, group_by, mean_ci, paired, plt, save, verdict

NONE = ("none", "standard")


@dataclass(frozen=True)
class Regime:
    stem: str                  # the table figure's file name
    methods: dict              # (drop.kind, drop.mode) -> label, in table order
    claims: tuple              # (method, baseline, metric, claimed sign of method - baseline, claim)
    curves: tuple              # methods whose training curves are drawn
    cutoff_method: tuple       # whose cutoff is marked on the curves


EARLY = Regime(
    stem="early_regime",
    methods={NONE: "no dropout", ("dropout", "standard"): "standard dropout",
             ("drop_path", "standard"): "standard s.d.", ("dropout", "early"): "early dropout",
             ("drop_path", "early"): "early s.d."},
    claims=((("dropout", "early"), NONE, "test_acc", +1, "early dropout raises test accuracy"),
            (("drop_path", "early"), NONE, "test_acc", +1, "early s.d. raises test accuracy"),
            (("dropout", "early"), NONE, "train_full_loss", -1,
             "early dropout lowers the final training loss"),
            (("drop_path", "early"), NONE, "train_full_loss", -1,
             "early s.d. lowers the final training loss"),
            (("dropout", "standard"), NONE, "test_acc", -1, "standard dropout hurts an underfitting model")),
    curves=(NONE, ("dropout", "early")), cutoff_method=("dropout", "early"))

LATE = Regime(
    stem="late_regime",
    methods={NONE: "no s.d.", ("drop_path", "standard"): "standard s.d.", ("drop_path", "late"): "late s.d."},
    claims=((("drop_path", "late"), ("drop_path", "standard"), "test_acc", +1,
             "late s.d. raises test accuracy over standard s.d."),
            (("drop_path", "late"), NONE, "test_acc", +1, "late s.d. raises test accuracy over no s.d."),
            (("drop_path", "standard"), NONE, "test_acc", +1,
             "standard s.d. raises test accuracy of an overfitting model")),
    curves=(NONE, ("drop_path", "standard"), ("drop_path", "late")), cutoff_method=("drop_path", "late"))


def by_seed(rows: list[dict], metric: str) -> dict:
    return {r["seed"]: r[metric] for r in rows}


def table(regime: Regime, runs: list[dict], out: Path) -> list[str]:
    methods = group_by(runs, "drop.kind", "drop.mode")
    base = methods.get(NONE, [])
    none = regime.methods[NONE]
    lines = [f"| method | runs | test acc % | train loss (full model) | test acc vs {none} (pp) | "
             f"train loss vs {none} |", "|---|---|---|---|---|---|"]
    for key, label in regime.methods.items():
        rows = methods.get(key, [])
        if not rows:
            continue
        acc, loss = mean_ci([r["test_acc"] for r in rows]), mean_ci([r["train_full_loss"] for r in rows])
        d_acc = paired(by_seed(rows, "test_acc"), by_seed(base, "test_acc"))
        d_loss = paired(by_seed(rows, "train_full_loss"), by_seed(base, "train_full_loss"))
        vs_none = ("-", "-") if key == NONE else (fmt(*d_acc[:2], 100), fmt(*d_loss[:2], digits=4))
        lines.append(f"| {label} | {acc[2]} | {fmt(*acc[:2], 100)} | {fmt(*loss[:2], digits=4)} | "
                     f"{vs_none[0]} | {vs_none[1]} |")
    lines += ["", "Means ± 95% t-intervals over seeds; differences are paired by seed.", "",
              "Verdicts:", ""]
    for key, baseline, metric, sign, claim in regime.claims:
        d, h, n = paired(by_seed(methods.get(key, []), metric), by_seed(methods.get(baseline, []), metric))
        scale = 100 if metric == "test_acc" else 1
        lines.append(f"- {claim}: {metric} difference {fmt(d, h, scale, 4 if scale == 1 else 2)} "
                     f"over {n} seeds: **{verdict(d, h, sign)}**")
    plot_table(regime, methods, out)
    return lines


def plot_table(regime: Regime, methods: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    keys = [key for key in regime.methods if key in methods]
    for ax, metric, title, scale in ((axes[0], "test_acc", "test accuracy %", 100),
                                     (axes[1], "train_full_loss", "final training loss (full model)", 1)):
        stats = [mean_ci([r[metric] * scale for r in methods[key]]) for key in keys]
        ax.errorbar(range(len(stats)), [m for m, _, _ in stats], yerr=[h for _, h, _ in stats],
                    fmt="o", capsize=4)
        ax.set_xticks(range(len(stats)), [regime.methods[key] for key in keys], rotation=20)
        ax.set_title(title)
    fig.tight_layout()
    save(fig, out, regime.stem)


def plot_curves(regime: Regime, curves: list[dict], runs: list[dict], out: Path) -> None:
    """Train loss against steps; the full model's training loss and test accuracy against epochs."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for key in regime.curves:
        rows = [r for r in curves if (r["drop.kind"], r["drop.mode"]) == key]
        for ax, event, metric in ((axes[0], "train", "loss"), (axes[1], "eval", "train_full_loss"),
                                  (axes[2], "eval", "test_acc")):
            picked = [r for r in rows if r["event"] == event]
            x_key = "step" if event == "train" else "epoch"
            xs = sorted({r[x_key] for r in picked})
            stats = [mean_ci([r[metric] for r in picked if r[x_key] == x]) for x in xs]
            ax.plot(xs, [m for m, _, _ in stats], marker="." if event == "eval" else None,
                    label=regime.methods[key])
            ax.fill_between(xs, [m - h for m, h, _ in stats], [m + h for m, h, _ in stats], alpha=0.2)
    marked = [r for r in runs if (r["drop.kind"], r["drop.mode"]) == regime.cutoff_method]
    if marked:
        r = marked[0]
        cutoff = r["drop.cutoff_epoch"]
        if cutoff is None:
            cutoff = r["drop.cutoff_fraction"] * r["train.epochs"]
        steps_per_epoch = r["steps"] / r["train.epochs"]
        axes[0].axvline(cutoff * steps_per_epoch, color="gray", ls="--", label="cutoff")
        for ax in axes[1:]:
            ax.axvline(cutoff, color="gray", ls="--")
    for ax, title, xlabel in zip(axes, ("train loss (as trained, drops on)", "training loss (full model)",
                                        "test accuracy"), ("step", "epoch", "epoch")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
    axes[0].legend()
    fig.tight_layout()
    save(fig, out, "training_curves")


def early(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    lines = table(EARLY, runs, out)
    plot_curves(EARLY, curves, runs, out)
    return lines


def late(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    lines = table(LATE, runs, out)
    plot_curves(LATE, curves, runs, out)
    return lines
