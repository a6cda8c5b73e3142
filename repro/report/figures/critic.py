"""The settings a critic would try (experiment regime_critic): early dropout at other rates, cutoffs
and schedule shapes than the paper's default, each against no dropout in the regime study's
underfitting cell (repro.report.claims.CRITIC). Per hardware kind: the cell's no-dropout train - test
gap (the premise: the model underfits), every arm's test accuracy and training loss, and each claim's
verdict by that kind's plan where it has one, else by the unplanned rule, marked; and a figure of
each claim's effect with its interval, the +-margin band and the verdict."""
from __future__ import annotations

from pathlib import Path

from repro.report import claims
from repro.report.figures.cells import gap_text
from repro.report.figures.common import plt, save
from repro.report.figures.regimes import (
    Regime,
    by_method,
    glance_on,
    methods_table,
    planned_lines,
    unplanned_lines,
)
from repro.report.figures.summary import draw_panel
from repro.report.ledger import hardware_kinds, rows_on
from repro.report.plan import read_plan

CRITIC = Regime(stem="regime_critic", methods={claims.NO_DROPOUT: "no dropout", **claims.SETTINGS},
                claims=claims.CRITIC, curves=(), cutoff_method=claims.DEFAULT_SETTING,
                baseline=claims.NO_DROPOUT)


def make(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    lines = []
    for kind in hardware_kinds(runs):
        rows, plan = rows_on(runs, kind), read_plan(out, kind)
        methods = by_method(CRITIC, rows)
        lines += [f"## On {kind}", "", f"{gap_text(rows)} (the premise: the regime study's underfitting "
                  "cell, where the no-dropout model underfits).", "", *methods_table(CRITIC, methods), ""]
        lines += planned_lines(CRITIC, methods, plan) if plan else unplanned_lines(CRITIC, rows, kind)
    plot(glance(runs, curves, out)[:len(CRITIC.claims)], out)
    return lines + ["Means ± 95% t-intervals over seeds; differences paired by seed within one hardware "
                    "kind. The arms, claims and margins: repro/report/claims.py (SETTINGS, CRITIC); the "
                    "figure: regime_critic.png, on the kind with most runs."]


def family(arm: str) -> str:
    """The robustness claim of the paper an arm's setting tests: across p (the default among them),
    across cutoffs, or the schedule's shape. The Answer shows one row of each, the glance all."""
    if "drop.cutoff_fraction=" in arm:
        return "early dropout's gain holds for cutoffs of 1-50% of training"
    return "early dropout's gain holds with a constant schedule" if "drop.schedule=" in arm else \
        "early dropout's gain holds across p"


def glance(runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    """Each claim's row on every hardware kind with runs, most runs first, judged by that kind's plan."""
    return [{**row, "base": family(claim.method)} for kind in hardware_kinds(runs)
            for claim, row in zip(CRITIC.claims, glance_on(CRITIC, runs, read_plan(out, kind), kind))]


def plot(rows: list[dict], out: Path) -> None:
    """Each claim's effect and 95% interval, the +-margin band and the verdict, drawn as in
    results/claims.png."""
    fig, ax = plt.subplots(figsize=(12.5, 0.5 * len(rows) + 1.2))
    draw_panel(ax, "test accuracy, early dropout at the setting - no dropout (pp)",
               [{**row, "folder": "regime_critic"} for row in rows])
    fig.subplots_adjust(left=0.31, right=0.72, top=0.92, bottom=0.08)
    save(fig, out, "regime_critic")
