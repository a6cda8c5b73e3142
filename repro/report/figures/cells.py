"""The regime study (experiment regime_study): the paper's thesis cell by cell of a map (model width
x training-set size, one protocol). Per hardware kind and cell: the regime, measured from the
no-dropout runs' train - test gap with its interval (repro.report.claims.cell_regime); every arm's test
accuracy; the cell's claims, judged by the cell's pre-registered plan where it has one (else the
unplanned rule, marked); the map figure (one panel per claim family, each cell's effect, interval
and verdict); and cost.md, the measured seconds per run and what each plan still costs."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from repro.report import claims as paper
from repro.report.claims import CELL_CLAIMS, CELL_EXPERIMENTS, NONE, cell_regime
from repro.report.figures.common import fmt, group_by, plt, save, wall_times
from repro.report.figures.regimes import (
    Regime,
    claim_diff,
    glance_on,
    methods_table,
    planned_lines,
    unplanned_lines,
)
from repro.report.figures.summary import scale_text
from repro.report.ledger import hardware_kinds, rows_on
from repro.report.plan import no_dropout_gap as gap
from repro.report.plan import read_plans

WIDTH, SIZE = CELL_EXPERIMENTS["regime_study"]
METHODS = {NONE: "no dropout", paper.DROPOUT: "standard dropout", paper.DROP_PATH: "standard s.d.",
           paper.EARLY_DROPOUT: "early dropout", paper.EARLY_DROP_PATH: "early s.d.",
           paper.LATE_DROPOUT: "late dropout", paper.LATE_DROP_PATH: "late s.d."}
FAMILIES = ((paper.EARLY_DROPOUT, NONE), (paper.EARLY_DROP_PATH, NONE), (paper.DROPOUT, NONE),
            (paper.DROP_PATH, NONE), (paper.LATE_DROPOUT, paper.DROPOUT),
            (paper.LATE_DROP_PATH, paper.DROP_PATH))


def regime_of(rows: list[dict], plan: dict | None) -> str:
    """The plan's regime (fixed at pre-registration) or, without a plan, the runs' so far."""
    if plan:
        return plan["regime"]
    g, h, n = gap(rows)
    return cell_regime(g, h) if n >= 2 else "between"


def gap_text(rows: list[dict]) -> str:
    """The no-dropout runs' train - test gap with its interval, and the regime it measures."""
    g, h, n = gap(rows)
    return f"No-dropout train - test gap: {fmt(g, h, 100)} pp over {n} seeds: " + \
        (cell_regime(g, h) if n >= 2 else "unmeasured")


def cell_of(plan: dict) -> tuple:
    return plan["cell"][WIDTH], plan["cell"][SIZE]


def cells_on(runs: list[dict], kind, out: Path) -> list[tuple[tuple, list[dict], dict | None]]:
    """(cell, its runs on `kind`, its plan for `kind` or None), cells in order."""
    plans = {cell_of(p): p for p in read_plans(out) if p["hardware"] == kind}
    rows = group_by(rows_on(runs, kind), WIDTH, SIZE)
    return [(cell, rows.get(cell, []), plans.get(cell)) for cell in sorted(set(rows) | set(plans))]


def regime_for(rows: list[dict], plan: dict | None) -> Regime:
    return Regime(stem="regime_study", methods=METHODS, claims=CELL_CLAIMS[regime_of(rows, plan)],
                  curves=(), cutoff_method=paper.EARLY_DROPOUT)


def make(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    lines = []
    for kind in hardware_kinds(runs):
        for (w, s), rows, plan in cells_on(runs, kind, out):
            regime = regime_for(rows, plan)
            fixed = f"; the plan's regime: **{plan['regime']}**" if plan else " (no plan yet)"
            lines += [f"## {WIDTH}={w}, {SIZE}={s} on {kind}", "", f"{gap_text(rows)}{fixed}.", ""]
            methods = group_by(rows, "drop.kind", "drop.mode")
            lines += methods_table(regime, methods) + [""]
            lines += planned_lines(regime, methods, plan) if plan else unplanned_lines(regime, rows, kind)
    plot_map(runs, out)
    write_cost(out)
    return lines + ["Means ± 95% t-intervals over seeds; differences paired by seed within one hardware kind "
                    "and cell. The regime rule and the claims per regime: repro/report/claims.py "
                    "(cell_regime, CELL_CLAIMS); cost per run and per plan: cost.md."]


def glance(runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    """Per hardware kind and cell, each claim's row with paired runs, the cell named in the claim."""
    return [{**row, "base": row["claim"], "claim": f"{row['claim']} [{w} x {s}, {regime_of(rows, plan)}]",
             "scale": scale_text(rows)}
            for kind in hardware_kinds(runs) for (w, s), rows, plan in cells_on(runs, kind, out)
            for row in glance_on(regime_for(rows, plan), rows, plan, kind) if row["n"]]


# Verdict words by what they say of the claim in a cell (repro.report.stats.interval_word)
HOLDS = ("reproduced", "smaller than the paper's", "larger than the paper's")
FAILS = ("opposite", "no effect as large as")


def said_by(verdict: str, words: tuple) -> bool:
    """Whether `verdict` is one of `words`; with no words, whether it is none of HOLDS and FAILS."""
    return any(map(verdict.startswith, words or HOLDS + FAILS)) == bool(words)


def stated(row: dict) -> str:
    seeds = "" if row["verdict"].startswith("underpowered") else f"{row['seeds']} seeds: "
    return f"{row['claim']} ({row['effect']}; {seeds}{row['verdict']})"


def where(runs: list[dict], out: Path) -> list[str]:
    """results/README.md's regime-study summary: per hardware kind and cell, the regime (gap) and
    where each claim holds, where it does not and where it is still undecided, with the numbers."""
    lines = []
    for kind in hardware_kinds(runs):
        for (w, s), rows, plan in cells_on(runs, kind, out):
            g, h, n = gap(rows)
            judged = glance_on(regime_for(rows, plan), rows, plan, kind)
            lines.append(f"**Width {w}, {s} images ({regime_of(rows, plan)}: no-dropout gap "
                         f"{fmt(g, h, 100)} pp, {n} seeds), on {kind}.**")
            for label, words in (("Holds", HOLDS), ("Does not hold (opposite, or no effect as large as the "
                                                       "margin)", FAILS), ("Undecided", ())):
                said = [r for r in judged if r["n"] and said_by(r["verdict"], words)]
                if any(r["n"] for r in judged):
                    lines.append(f"- {label}: " + ("; ".join(map(stated, said)) or "none") + ".")
            if unrun := [r["claim"] for r in judged if not r["n"]]:
                lines.append(f"- Not run yet (no paired runs): {'; '.join(unrun).removesuffix('.')}.")
            lines.append("")
    return lines[:-1]


def map_cells(cells: list, kind) -> tuple[dict, dict]:
    """Per (claim family, cell): the test-accuracy effect in pp where the cell has paired runs, and
    the text the map writes in it: the effect, interval, seeds and verdict of the cell's claim (at
    its planned seeds, as its table has them), the effect over every seed where its regime claims
    nothing, or that it has no paired runs yet; then the regime and the no-dropout gap."""
    texts, effects = {}, {}
    for cell, rows, plan in cells:
        regime = regime_for(rows, plan)
        judged = {(c.method, c.baseline): r for c, r in
                  zip(regime.claims, glance_on(regime, rows, plan, kind)) if c.metric == "test_acc"}
        for family in FAMILIES:
            row = judged.get(family)
            if row:
                d, h, n = row["diff"], row["half"], row["n"]
                said = f"{row['seeds']} seeds" if row["planned"] else f"{n} seeds, unplanned"
                said = f"{fmt(d, h)} pp, {said}\n{row['verdict']}"
            else:
                claim = paper.Claim("", family[0], family[1], "test_acc", +1, 0.0, "")
                d, h, n = claim_diff(claim, group_by(rows, "drop.kind", "drop.mode"))
                d, h = 100 * d, 100 * h
                said = f"{fmt(d, h)} pp, {n} seeds\nnot claimed in this regime"
            if n:
                effects[family, cell] = d
            else:
                said = "no paired runs yet" if row else "not claimed in this regime"
            texts[family, cell] = f"{said}\n{regime_of(rows, plan)}, gap {100 * gap(rows)[0]:.1f} pp"
    return effects, texts


def plot_map(runs: list[dict], out: Path) -> None:
    """One panel per claim family (map_cells): each cell's paired test-accuracy effect (pp; colour on
    a symmetric scale shared by all panels) and its text, black on light cells and white on dark ones."""
    kind = hardware_kinds(runs)[0]
    cells = cells_on(runs, kind, out)
    widths, sizes = sorted({w for (w, _), _, _ in cells}), sorted({s for (_, s), _, _ in cells})
    effects, texts = map_cells(cells, kind)
    limit = max([abs(d) for d in effects.values()], default=1.0) or 1.0
    fig, axes = plt.subplots(2, 3, figsize=(15, 3 + 5 * len(widths)), squeeze=False, layout="constrained")
    cmap = plt.get_cmap("RdBu")
    for ax, family in zip(axes.flat, FAMILIES):
        grid = [[effects.get((family, (w, s)), math.nan) for s in sizes] for w in widths]
        image = ax.imshow(grid, cmap=cmap, vmin=-limit, vmax=limit, origin="lower", aspect="auto")
        for (fam, (w, s)), text in texts.items():
            if fam == family:
                r, g, b, _ = cmap(0.5 + 0.5 * effects.get((fam, (w, s)), 0.0) / limit)
                dark = 0.299 * r + 0.587 * g + 0.114 * b <= 0.5
                ax.text(sizes.index(s), widths.index(w), wrap(text, 68 // len(sizes)), ha="center",
                        va="center", fontsize=7 if len(sizes) < 4 else 6, color="white" if dark else "black")
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_yticks(range(len(widths)), [str(w) for w in widths])
        ax.set_xlabel("training images")
        ax.set_ylabel("model width")
        ax.set_title(f"{METHODS[family[0]]} - {METHODS[family[1]]}", fontsize=10)
    fig.colorbar(image, ax=axes, label=f"test accuracy difference (pp), {kind}")
    save(fig, out, "regime_study")


def wrap(text: str, width: int = 34) -> str:
    """Long verdicts broken at spaces so that they stay inside their cell."""
    import textwrap
    return "\n".join(part for line in text.split("\n") for part in textwrap.wrap(line, width))


def cell_and_drop(run: str) -> tuple:
    """A run's cell and drop option, from its name."""
    parts = dict(p.split("=", 1) for p in run.split(","))
    return (int(parts[WIDTH]), int(parts[SIZE])), parts["drop"]


def write_cost(out: Path) -> None:
    """cost.md: the measured seconds per run of each kind, cell and arm, and each plan's cost
    (its runs x the cell's median seconds per run), built from the tables like everything else."""
    times = wall_times(out / "collection.json", cell_and_drop)
    lines = ["# regime_study: cost", "",
             "| hardware | cell (width x images) | arm | runs | median s per run |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {c[0]} x {c[1]} | {arm} | {len(t)} | {statistics.median(t):.0f} |"
              for (k, (c, arm)), t in sorted(times.items(), key=str)]
    lines += ["", "| plan | hardware | cell | regime | runs planned | s per run (median, cell) | "
              "core- or GPU-hours |", "|---|---|---|---|---|---|---|"]
    for plan in read_plans(out):
        cell = cell_of(plan)
        measured = [t for (k, (c, _)), ts in times.items() if k == plan["hardware"] and c == cell for t in ts]
        per_run = statistics.median(measured) if measured else math.nan
        runs = sum(plan["seeds"].values())
        lines.append(f"| {plan['file']} | {plan['hardware']} | {cell[0]} x {cell[1]} | {plan['regime']} | "
                     f"{runs} | {per_run:.0f} | {runs * per_run / 3600:.1f} |")
    (out / "cost.md").write_text("\n".join(lines) + "\n")
