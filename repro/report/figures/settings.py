"""Experiments whose arms are drop settings, each claim one setting against a baseline setting in one
cell of the regime study's map (repro.report.claims): regime_critic, early dropout at the settings a
critic would try against no dropout in the underfitting cell; late_timing, late s.d. against standard
s.d. at the same rate in the overfitting cell. Per hardware kind: the premise, every arm's test accuracy
and training loss, and each claim's verdict by that kind's plan where it has one, else by the unplanned
rule, marked; and a figure of each claim's effect with its interval, the +-margin band and the verdict."""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repro.arms import of_method
from repro.report import claims
from repro.report.figures.cells import gap_text
from repro.report.figures.common import plt, save, wall_times
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
from repro.report.plan import read_plan, read_plans


@dataclass(frozen=True, kw_only=True)
class Settings:
    regime: Regime                         # the arms (methods), the claims, the baseline; stem: the figure
    premise: Callable[[list[dict]], str]   # the line under a kind's heading, from its runs
    axis: str                              # the figure's effect axis
    family: Callable[[str], str] | None = None   # the paper's claim an arm tests (the Answer's row);
                                                 # None: each claim its own


def critic_family(arm: str) -> str:
    """The robustness claim of the paper an arm's setting tests: across p (the default among them),
    across cutoffs, or the schedule's shape. The Answer shows one row of each, the glance all."""
    if "drop.cutoff_fraction=" in arm:
        return "early dropout's gain holds for cutoffs of 1-50% of training"
    return "early dropout's gain holds with a constant schedule" if "drop.schedule=" in arm else \
        "early dropout's gain holds across p"


CRITIC = Settings(
    regime=Regime(stem="regime_critic", methods={claims.NO_DROPOUT: "no dropout", **claims.SETTINGS},
                  claims=claims.CRITIC, curves=(), cutoff_method=claims.DEFAULT_SETTING,
                  baseline=claims.NO_DROPOUT),
    premise=lambda rows: f"{gap_text(rows)} (the premise: the regime study's underfitting cell, where the "
                         "no-dropout model underfits).",
    axis="test accuracy, early dropout at the setting - no dropout (pp)", family=critic_family)

TIMING = Settings(
    regime=Regime(stem="late_timing", methods=claims.TIMING_ARMS, claims=claims.TIMING, curves=(),
                  cutoff_method=claims.LATE_SD_SETTING, baseline=claims.STANDARD_SD_AT_LATE_RATE),
    premise=lambda rows: "The premise: the regime study's overfitting cell (its no-dropout gap and the "
                         "late claims at the paper's rates: regime_study/table.md).",
    axis="test accuracy, late s.d. - standard s.d. at r = 0.4 (pp)")


def make(settings: Settings, runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    lines, regime = [], settings.regime
    for kind in hardware_kinds(runs):
        rows, plan = rows_on(runs, kind), read_plan(out, kind)
        methods = by_method(regime, rows)
        lines += [f"## On {kind}", "", settings.premise(rows), "", *methods_table(regime, methods), ""]
        lines += planned_lines(regime, methods, plan) if plan else unplanned_lines(regime, rows, kind)
    plot(settings, glance(settings, runs, curves, out)[:len(regime.claims)], out)
    write_cost(regime, out)
    return lines + ["Means ± 95% t-intervals over seeds; differences paired by seed within one hardware "
                    "kind. The arms, claims and margins: repro/report/claims.py; the figure: "
                    f"{regime.stem}.png, on the kind with most runs; seconds per run and what each plan "
                    "costs: cost.md."]


def glance(settings: Settings, runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    """Each claim's row on every hardware kind with runs, most runs first, judged by that kind's plan."""
    regime, family = settings.regime, settings.family
    return [{**row, "base": family(claim.method) if family else claim.text} for kind in hardware_kinds(runs)
            for claim, row in zip(regime.claims, glance_on(regime, runs, read_plan(out, kind), kind))]


def plot(settings: Settings, rows: list[dict], out: Path) -> None:
    """Each claim's effect and 95% interval, the +-margin band and the verdict, drawn as in
    results/claims.png."""
    height = 0.5 * len(rows) + 1.6                        # inches: a row each, and the title and axis
    fig, ax = plt.subplots(figsize=(12.5, height))
    draw_panel(ax, settings.axis, [{**row, "folder": settings.regime.stem} for row in rows])
    fig.subplots_adjust(left=0.31, right=0.72, top=1 - 0.45 / height, bottom=0.6 / height)
    save(fig, out, settings.regime.stem)


def write_cost(regime: Regime, out: Path) -> None:
    """cost.md: the measured seconds per run of each kind and arm, and each plan's cost (its runs x the
    kind's median seconds per run), built from the tables like everything else."""
    labels = [*regime.methods.values(), "another arm"]
    times = wall_times(out / "collection.json", lambda run: next(
        (label for arm, label in regime.methods.items() if of_method({"run": run}, arm)), labels[-1]))
    lines = [f"# {regime.stem}: cost", "", "| hardware | arm | runs | median s per run |",
             "|---|---|---|---|"]
    lines += [f"| {kind} | {arm} | {len(t)} | {statistics.median(t):.0f} |" for (kind, arm), t in
              sorted(times.items(), key=lambda item: (item[0][0], labels.index(item[0][1])))]
    lines += ["", "| plan | hardware | runs planned | s per run (median, every arm) | core- or GPU-hours |",
              "|---|---|---|---|---|"]
    for plan in read_plans(out):
        measured = [t for (kind, _), ts in times.items() if kind == plan["hardware"] for t in ts]
        per_run, runs = statistics.median(measured) if measured else math.nan, sum(plan["seeds"].values())
        lines.append(f"| {plan['file']} | {plan['hardware']} | {runs} | {per_run:.0f} | "
                     f"{runs * per_run / 3600:.1f} |")
    lines += ["", "A plan's runs count its pilot's. On a seed-batched kind a run's seconds are its "
              "process's, shared by the seeds it trained."]
    (out / "cost.md").write_text("\n".join(lines) + "\n")
