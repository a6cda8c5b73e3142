"""The late-regime search: where does standard stochastic depth regularize? Per model depth, each
s.d. rate against rate 0 (the same code path, dropping nothing) at that depth: final test
accuracy paired by seed, and the train-test gap that says the cell overfits. A setting qualifies
as the late regime of a planned comparison only when its gain's interval is clear of 0."""
from __future__ import annotations

from pathlib import Path

from repro.report.figures.common import fmt, group_by, mean_ci, paired, plt, save, settings_row, verdict
from repro.report.figures.regimes import by_seed
from repro.report.ledger import hardware_kinds, one_hardware

CLAIM = "standard s.d. regularizes the overfitting model (late-regime search)"


def cells(runs: list[dict]) -> dict:
    """(depth, rate) -> rows, in order."""
    return dict(sorted(group_by(runs, "model.depth", "drop.rate").items()))


def gains(runs: list[dict]) -> dict:
    """(depth, rate > 0) -> (difference, half-width, seeds) of test accuracy against rate 0."""
    groups = cells(runs)
    base = {depth: by_seed(rows, "test_acc") for (depth, rate), rows in groups.items() if rate == 0}
    return {(depth, rate): paired(by_seed(rows, "test_acc"), base.get(depth, {}))
            for (depth, rate), rows in groups.items() if rate > 0}


def make(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    one_hardware(runs, "late_regime_search")
    lines = [f"Hardware: {hardware_kinds(runs)[0]}", "",
             "| depth | s.d. rate | runs | test acc % | train acc % | gap (pp) | test acc vs rate 0 (pp) "
             "| verdict: s.d. helps |", "|---|---|---|---|---|---|---|---|"]
    diffs = gains(runs)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for depth, group in group_by(runs, "model.depth").items():
        rates = sorted({r["drop.rate"] for r in group})
        stats = [mean_ci([r["test_acc"] * 100 for r in group if r["drop.rate"] == p]) for p in rates]
        ax.errorbar(rates, [m for m, _, _ in stats], yerr=[h for _, h, _ in stats], fmt="o-", capsize=4,
                    label=f"depth {depth}")
    for (depth, rate), rows in cells(runs).items():
        test, train = mean_ci([r["test_acc"] for r in rows]), mean_ci([r["train_full_acc"] for r in rows])
        gap = mean_ci([r["train_full_acc"] - r["test_acc"] for r in rows])
        d, h, _ = diffs.get((depth, rate), (0.0, float("nan"), 0))
        vs = ("-", "-") if rate == 0 else (fmt(d, h, 100), verdict(d, h, +1))
        lines.append(f"| {depth} | {rate} | {test[2]} | {fmt(*test[:2], 100)} | {fmt(*train[:2], 100)} | "
                     f"{fmt(*gap[:2], 100)} | {vs[0]} | {vs[1]} |")
    ax.set_xlabel("standard s.d. rate")
    ax.set_ylabel("test accuracy %")
    ax.legend()
    fig.tight_layout()
    save(fig, out, "late_regime_search")
    return lines + ["", "Means ± 95% t-intervals over seeds; differences paired by seed against rate 0 "
                    "at the same depth; gap = train accuracy (full model) - test accuracy."]


def glance(runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    """One summary row: how many settings regularize, and the range of their effects."""
    one_hardware(runs, "late_regime_search")
    results = list(gains(runs).values())
    return [settings_row(f"{CLAIM}, {len(results)} settings", results, hardware_kinds(runs)[0])]
