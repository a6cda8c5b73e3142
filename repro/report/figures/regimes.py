"""The paper's method comparisons: final test accuracy and the full model's final training loss
per method, paired against a baseline, and training curves with the cutoff marked; the early regime
(an underfitting model: the main table) and the late one (standard against late s.d.). Runs pair
within one hardware kind (the first plan's, else the one with most runs; other kinds get tables of
their own), and each kind with a plan (repro.report.plan) gets its pre-registered verdicts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.arms import of_method
from repro.report import claims as paper
from repro.report.claims import NONE, Claim
from repro.report.figures.common import fmt, group_by, mean_ci, paired, plt, save, verdict
from repro.report.ledger import hardware_kinds, rows_on
from repro.report.plan import read_plan, read_plans
from repro.report.stats import planned_verdict
from repro.schedules import cutoff_epoch


@dataclass(frozen=True)
class Regime:
    stem: str                  # the table figure's file name
    methods: dict              # (drop.kind, drop.mode) -> label, in table order
    claims: tuple              # repro.report.claims.Claim
    curves: tuple              # methods whose training curves are drawn
    cutoff_method: tuple       # whose cutoff is marked on the curves
    baseline: tuple | str = NONE   # the method every other one is compared with in its table


EARLY = Regime(
    stem="early_regime",
    methods={NONE: "no dropout", paper.DROPOUT: "standard dropout", paper.DROP_PATH: "standard s.d.",
             paper.EARLY_DROPOUT: "early dropout", paper.EARLY_DROP_PATH: "early s.d."},
    claims=paper.EARLY, curves=(NONE, paper.EARLY_DROPOUT), cutoff_method=paper.EARLY_DROPOUT)

EARLY_LONG = Regime(
    stem="early_regime", methods={NONE: "no dropout", paper.EARLY_DROPOUT: "early dropout"},
    claims=paper.EARLY_LONG, curves=(NONE, paper.EARLY_DROPOUT),
    cutoff_method=paper.EARLY_DROPOUT)

LATE = Regime(
    stem="late_regime",
    methods={NONE: "no s.d.", paper.DROP_PATH: "standard s.d.", paper.LATE_DROP_PATH: "late s.d."},
    claims=paper.LATE, curves=(NONE, paper.DROP_PATH, paper.LATE_DROP_PATH),
    cutoff_method=paper.LATE_DROP_PATH)


def by_method(regime: Regime, rows: list[dict]) -> dict:
    """The rows of each of the regime's methods that has any (repro.arms.of_method)."""
    return {key: found for key in regime.methods if (found := [r for r in rows if of_method(r, key)])}


def by_seed(rows: list[dict], metric: str) -> dict:
    return {r["seed"]: r[metric] for r in rows}


def scale_of(metric: str) -> tuple[float, int]:
    """Display scale and digits: accuracies in percentage points, losses as they are."""
    return (100, 2) if metric.endswith("acc") else (1, 4)


def claim_diff(claim: Claim, methods: dict, seeds: int | None = None,
               start: int = 0) -> tuple[float, float, int]:
    """Paired difference method - baseline over the shared seeds start .. seeds - 1 in seed order
    (all by default)."""
    a = by_seed(methods.get(claim.method, []), claim.metric)
    b = by_seed(methods.get(claim.baseline, []), claim.metric)
    shared = sorted(set(a) & set(b))[start:seeds]
    return paired({s: a[s] for s in shared}, {s: b[s] for s in shared})


def judged(claim: Claim, methods: dict, planned: dict | None, kind) -> dict:
    """One claim's row: with its plan entry, the verdict at exactly the planned seeds and, apart,
    the seeds past the plan with their own estimate; without, the unplanned rule over every seed.
    Numbers stay raw beside their text (diff, half, n) for the headline figure."""
    scale, digits = scale_of(claim.metric)
    unit = " pp" if scale == 100 else ""
    if planned:
        d, h, n = claim_diff(claim, methods, planned["seeds"])
        word = planned_verdict(d, h, n, planned["seeds"], planned["margin"], claim.sign, claim.ours)
        e, eh, extra = claim_diff(claim, methods, start=planned["seeds"])
        past = f"{extra} more: {fmt(e, eh, scale, digits)}{unit}" if extra else "-"
        seeds = f"{n} of {planned['seeds']} planned"
    else:
        d, h, n = claim_diff(claim, methods)
        word, past, seeds = verdict(d, h, claim.sign, claim.margin, claim.ours), "-", f"{n}, unplanned"
    return {"claim": claim.text, "verdict": word, "effect": fmt(d, h, scale, digits) + unit if n else "-",
            "seeds": seeds, "past": past, "hardware": kind, "diff": d * scale, "half": h * scale, "n": n,
            "margin": claim.margin * scale, "sign": claim.sign, "ours": claim.ours, "metric": claim.metric,
            "planned": bool(planned)}


def margin_text(claim: Claim) -> str:
    scale, digits = scale_of(claim.metric)
    return f"{fmt(claim.margin, float('nan'), scale, digits)} ({claim.whose})"


def methods_table(regime: Regime, methods: dict) -> list[str]:
    base = methods.get(regime.baseline, [])
    none = regime.methods[regime.baseline]
    lines = [f"| method | runs | test acc % | train loss (full model) | test acc vs {none} (pp) | "
             f"train loss vs {none} |", "|---|---|---|---|---|---|"]
    for key, label in regime.methods.items():
        rows = methods.get(key, [])
        if not rows:
            continue
        acc, loss = mean_ci([r["test_acc"] for r in rows]), mean_ci([r["train_full_loss"] for r in rows])
        d_acc = paired(by_seed(rows, "test_acc"), by_seed(base, "test_acc"))
        d_loss = paired(by_seed(rows, "train_full_loss"), by_seed(base, "train_full_loss"))
        vs_none = ("-", "-") if key == regime.baseline else (fmt(*d_acc[:2], 100), fmt(*d_loss[:2], digits=4))
        lines.append(f"| {label} | {acc[2]} | {fmt(*acc[:2], 100)} | {fmt(*loss[:2], digits=4)} | "
                     f"{vs_none[0]} | {vs_none[1]} |")
    return lines


def planned_lines(regime: Regime, methods: dict, plan: dict) -> list[str]:
    """Each planned claim's verdict at exactly its planned seeds; seeds past the plan in a column
    of their own, with their own estimate, never folded in; each margin's owner and source."""
    planned = {c["claim"]: c for c in plan["comparisons"]}
    claims = [c for c in regime.claims if c.text in planned]
    lines = [f"Pre-registered verdicts ({plan['file']}, hardware {plan['hardware']}; the first planned "
             "seeds in seed order):", "",
             "| claim | metric | margin | seeds | difference at the planned seeds (95% CI) | verdict "
             "| seeds past the plan (their own estimate) |", "|---|---|---|---|---|---|---|"]
    for claim in claims:
        row = judged(claim, methods, planned[claim.text], plan["hardware"])
        lines.append(f"| {claim.text} | {claim.metric} | {margin_text(claim)} | {row['seeds']} | "
                     f"{row['effect']} | **{row['verdict']}** | {row['past']} |")
    lines += ["", "Margins:", ""] + [f"- {c.text}: {c.margin_note}" for c in claims]
    return lines + [""]


def glance(regime: Regime, runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    """Rows for results/README.md's summary: per claim, the pre-registered verdict where the folder
    has a plan, else the unplanned one, with the effect and its interval; on the primary hardware
    kind, then on each other kind that has a plan of its own and runs."""
    plans = read_plans(out)
    others = [p for p in plans[1:] if rows_on(runs, p["hardware"])]
    return [row for plan in [plans[0] if plans else None, *others]
            for row in glance_on(regime, runs, plan, primary_kind(runs, plan))]


def glance_on(regime: Regime, runs: list[dict], plan: dict | None, kind) -> list[dict]:
    methods = by_method(regime, rows_on(runs, kind))
    planned = {c["claim"]: c for c in plan["comparisons"]} if plan else {}
    return [judged(claim, methods, planned.get(claim.text), kind) for claim in regime.claims]


def unplanned_lines(regime: Regime, runs: list[dict], kind) -> list[str]:
    """Each claim's row by the unplanned rule over every seed on `kind`, marked so."""
    return ["| claim | difference (95% CI) | seeds | verdict (unplanned) |", "|---|---|---|---|",
            *(f"| {r['claim']} | {r['effect']} | {r['seeds']} | {r['verdict']} |"
              for r in glance_on(regime, runs, None, kind)), ""]


def primary_kind(runs: list[dict], plan: dict | None):
    """The hardware kind the tables pair within: the plan's, else the one with most runs."""
    return plan["hardware"] if plan else hardware_kinds(runs)[0]


def table(regime: Regime, runs: list[dict], out: Path) -> list[str]:
    plan = read_plan(out)
    kinds = hardware_kinds(runs)
    primary = primary_kind(runs, plan)
    methods = group_by(rows_on(runs, primary), "drop.kind", "drop.mode")
    apart = len(runs) - len(rows_on(runs, primary))
    lines = [f"Hardware: {primary} ({apart} runs of other kinds are tabled apart, never paired with "
             "these)", ""]
    lines += methods_table(regime, methods)
    lines += ["", "Means ± 95% t-intervals over seeds; differences are paired by seed.", ""]
    if plan:
        lines += planned_lines(regime, methods, plan)
    else:
        lines += ["Verdicts (unplanned rule, every seed; margins: repro/report/claims.py):", ""]
        lines += [f"- {r['claim']}: {r['metric']} difference {r['effect']} over {r['n']} seeds: "
                  f"**{r['verdict']}**" for r in glance_on(regime, runs, None, primary)]
    for kind in kinds:
        if kind != primary:
            on_kind = group_by(rows_on(runs, kind), "drop.kind", "drop.mode")
            lines += ["", f"Runs on {kind}:", ""] + methods_table(regime, on_kind)
            own = read_plan(out, kind)
            lines += ["", *planned_lines(regime, on_kind, own)] if own else []
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
        cutoff = cutoff_epoch({"cutoff_epoch": r["drop.cutoff_epoch"],
                               "cutoff_fraction": r["drop.cutoff_fraction"]}, r["train.epochs"])
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


def make(regime: Regime, runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    lines = table(regime, runs, out)
    kind = primary_kind(runs, read_plan(out))
    plot_curves(regime, rows_on(curves, kind), rows_on(runs, kind), out)
    return lines


def early(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    return make(EARLY, runs, curves, out)


def early_long(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    return make(EARLY_LONG, runs, curves, out)


def late(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    return make(LATE, runs, curves, out)
