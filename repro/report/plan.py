"""Power planning and pre-registration (docs/statistics.md; command line: python -m repro.plan):
from an experiment's pilot runs, the paired seeds each claim needs, written as results/NAME/plan.json
(another kind's: plan-<kind>[-<cell>].json) and committed before the runs.

For each claim the pilot's paired differences give a standard deviation sd; the plan asks for the
smallest n >= --min-seeds with t_{0.975,n-1} * sd / sqrt(n) <= margin / 2, so that a null effect
lands inside +-margin and the paper's effect excludes 0; a method (a 'kind/mode' pair, or an arm: a
drop setting such as `drop=early_dropout,drop.rate=0.2`, repro.arms) runs as many
seeds as its most demanding claim. Runs pair within one hardware kind only; a kind without a pilot
may be planned from another's (--pilot-hardware). Curve claims without a margin state their seeds
(--seeds); curve claims with one of ours wait for an 8-seed pilot on the plan's kind, committed
meanwhile as a plan pending its pilot (`"status": "pilot pending"`), which read_plans leaves out.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from repro.arms import method_key, method_of, of_method
from repro.records.tables import read_csv
from repro.report.claims import (
    CELL_CLAIMS,
    NONE,
    Claim,
    Experiment,
    cell_regime,
)
from repro.report.stats import mean_ci, paired_differences, sample_sd, seeds_needed

MIN_SEEDS = 15                                       # --min-seeds's default
WINDOW = "the final evaluation (after the last epoch); runs.csv columns"
REGIME_RULE = ("the no-dropout pilot runs' train - test accuracy gap (train_full_acc - test_acc), mean and "
               "95% t-interval: underfitting when its upper bound <= 3 pp, overfitting when its lower "
               "bound >= 10 pp, else between; the claims follow from the regime "
               "(repro.report.claims.CELL_CLAIMS)")


def by_seed(runs: list[dict], method: tuple | str, metric: str) -> dict:
    return {r["seed"]: r[metric] for r in runs if of_method(r, method)}


def plan_claim(claim: Claim, runs: list[dict], min_seeds: int) -> dict:
    diffs = paired_differences(by_seed(runs, claim.method, claim.metric),
                               by_seed(runs, claim.baseline, claim.metric))
    if len(diffs) < 2:
        raise ValueError(f"the pilot has {len(diffs)} paired seeds for '{claim.text}'; run at least 2 "
                         f"seeds of {method_key(claim.method)} and {method_key(claim.baseline)} first")
    sd = sample_sd(list(diffs.values()))
    return {"claim": claim.text, "method": method_key(claim.method), "baseline": method_key(claim.baseline),
            "metric": claim.metric, "sign": claim.sign, "margin": claim.margin, "source": claim.source,
            "target_half_width": claim.margin / 2, "pilot_seeds": sorted(diffs), "pilot_sd": sd,
            "seeds": seeds_needed(sd, claim.margin / 2, min_seeds)}


def in_cell(row: dict, cell: dict | None) -> bool:
    return all(row.get(k) == v for k, v in (cell or {}).items())


def no_dropout_gap(rows: list[dict]) -> tuple[float, float, int]:
    """The no-dropout runs' train - test accuracy gap: mean, 95% half-width, seeds."""
    return mean_ci([r["train_full_acc"] - r["test_acc"] for r in rows
                    if (r["drop.kind"], r["drop.mode"]) == NONE and r["train_full_acc"] is not None])


def cell_claims(pilot: list[dict]) -> tuple[tuple[Claim, ...], dict]:
    """A cell's claims, chosen by its regime as its no-dropout pilot runs measure it."""
    gap, half, n = no_dropout_gap(pilot)
    if n < 2:
        raise ValueError(f"the cell's regime needs at least 2 no-dropout pilot runs, it has {n}")
    regime = cell_regime(gap, half)
    return CELL_CLAIMS[regime], {"regime": regime, "gap": gap, "gap_half_width": half, "gap_seeds": n,
                                 "rule": REGIME_RULE}


def make_plan(experiment: Experiment, runs: list[dict], hardware: str, min_seeds: int,
              pilot_hardware: str | None = None, cell: dict | None = None) -> dict:
    """The plan for `experiment` on `hardware` (in `cell`, for an experiment of cells), from the
    pilot rows of one hardware kind (`pilot_hardware`, by default the plan's own)."""
    name = experiment.name
    if not experiment.claims and not experiment.cell:
        raise ValueError(f"{name} has no claims on final metrics to plan (repro/report/experiments.py)")
    if bool(experiment.cell) != (cell is not None):
        raise ValueError(f"{name} plans cell by cell: give --cell {'=...,'.join(experiment.cell)}=..."
                         if experiment.cell else f"{name} has no cells: leave out --cell")
    source = pilot_hardware or hardware
    pilot = [r for r in runs if r.get("hardware") == source and in_cell(r, cell)]
    if not pilot:
        kinds = sorted({str(r.get("hardware")) for r in runs if in_cell(r, cell)})
        raise ValueError(f"no pilot runs on hardware {source!r}{f' in cell {cell}' if cell else ''}; "
                         f"the runs have {kinds}")
    claims, regime = cell_claims(pilot) if cell else (experiment.claims, {})
    comparisons = [plan_claim(c, pilot, min_seeds) for c in claims]
    seeds: dict = {}
    for c in comparisons:
        for method in (c["method"], c["baseline"]):
            seeds[method] = max(seeds.get(method, 0), c["seeds"])
    borrowed = {"pilot_hardware": source} if source != hardware else {}
    scope = {"cell": cell, **regime} if cell else {}
    return {"experiment": name, "hardware": hardware, **scope, **borrowed, "window": WINDOW,
            "min_seeds": min_seeds,
            "rule": "n = smallest n >= min_seeds with t(0.975, n-1) * pilot_sd / sqrt(n) <= margin / 2; "
                    "the pilot's seeds count toward n; verdicts use the first n seeds in seed order",
            "comparisons": comparisons, "seeds": dict(sorted(seeds.items()))}


CURVE_WINDOW = ("per seed, the mean of the metric over the phase's measured steps (early: steps 1-100, "
                "late: the last two measured steps; step 0 left out), then paired over seeds")


def curve_plan(experiment: Experiment, seeds: int, hardware: str) -> dict:
    """The plan of a curve experiment: every arm (a grid point) runs seeds 0 .. seeds - 1."""
    if seeds < 2:
        raise ValueError(f"--seeds {seeds}: an interval needs at least 2 paired seeds")
    return {"experiment": experiment.name, "hardware": hardware, "window": CURVE_WINDOW,
            "rule": "seeds stated before the runs (no pilot: the paper gives no effect size, so no margin); "
                    "reproduced or opposite when the 95% interval of the paired difference excludes 0, "
                    "else inconclusive at the planned seeds; underpowered before them",
            "comparisons": [{"claim": c.text, "metric": c.metric, "phase": c.phase, "sign": c.sign,
                             "margin": None} for c in experiment.curve_claims],
            "seeds": {arm: seeds for arm in experiment.arms}}


MIN_PILOT_SEEDS = 8     # 3-seed pilots here underestimated the spread about 2x (README)
PENDING = "pilot pending"
EFFECT_WINDOW = ("per seed and measured step, the claim's effect (trajectory: the dropout run's value with "
                 "its masks off minus the no-dropout run's, same seed and step; "
                 "repro.report.figures.decomposition.effects); per seed its mean over the phase's measured "
                 "steps (early: steps 1-100, late: the last two measured steps; step 0 left out); then mean "
                 "and 95% t-interval over seeds")
PILOT_RULE = (f"a pilot of at least {MIN_PILOT_SEEDS} paired seeds on the plan's kind first; then n = "
              "smallest n >= min_seeds with t(0.975, n-1) * pilot_sd / sqrt(n) <= margin / 2; the pilot's "
              "seeds count toward n; verdicts use the first n seeds in seed order (docs/statistics.md "
              "section 4; the margin is ours, so excluding 0 on the paper's side is reproduced, and inside "
              "+-margin is no effect as large as our margin)")


def curve_comparison(claim) -> dict:
    return {"claim": claim.text, "metric": claim.metric, "effect": claim.effect, "phase": claim.phase,
            "sign": claim.sign, "margin": claim.margin, "source": claim.source,
            "target_half_width": claim.margin / 2}


def pending_plan(experiment: Experiment) -> dict:
    """The claims, window, margins and rule of a pilot-sized curve experiment, committed before its
    pilot; no seeds, no kind: each kind's seeds come from its own pilot (pilot_plan)."""
    name = experiment.name
    return {"experiment": name, "status": PENDING, "hardware": None, "window": EFFECT_WINDOW,
            "pilot": f"seeds 0-{MIN_PILOT_SEEDS - 1} of {' and '.join(experiment.arms)} on one numerics "
                     f"kind; then python -m repro.plan {name} --hardware KIND --write writes that kind's "
                     "plan from them (plan-<kind>.json), before any of its planned runs",
            "rule": PILOT_RULE, "comparisons": [curve_comparison(c) for c in experiment.curve_claims],
            "seeds": {}}


def pilot_plan(experiment: Experiment, curves: list[dict], hardware: str, min_seeds: int) -> dict:
    """The plan of curve claims with margins on `hardware`, from its pilot (curves.csv rows): per
    claim the spread over seeds of the per-seed effect, then the seeds as for make_plan; the
    pending plan while fewer than MIN_PILOT_SEEDS seeds are paired."""
    from repro.report.figures.decomposition import claim_effects  # repro.report.figures imports this module
    pilot = [r for r in curves if r["event"] == "analysis" and r.get("hardware") == hardware]
    effects = [claim_effects(pilot, c) for c in experiment.curve_claims]
    if min(len(e) for e in effects) < MIN_PILOT_SEEDS:
        return pending_plan(experiment)
    comparisons = []
    for claim, effect in zip(experiment.curve_claims, effects):
        sd = sample_sd(list(effect.values()))
        comparisons.append({**curve_comparison(claim), "pilot_seeds": sorted(effect), "pilot_sd": sd,
                            "seeds": seeds_needed(sd, claim.margin / 2, min_seeds)})
    seeds = max(c["seeds"] for c in comparisons)
    return {"experiment": experiment.name, "hardware": hardware, "window": EFFECT_WINDOW,
            "min_seeds": min_seeds, "rule": PILOT_RULE, "comparisons": comparisons,
            "seeds": {arm: seeds for arm in experiment.arms}}


def plan_name(hardware: str, cell: dict | None = None) -> str:
    """plan-<kind>[-<cell>].json: the kind (and the cell's key=value pairs) in lower case, runs of
    other characters as one '-'."""
    return "plan-" + slug(hardware + "".join(f" {k}={v}" for k, v in (cell or {}).items())) + ".json"


def slug(text: str) -> str:
    """`text` in lower case, runs of other characters than letters and digits as one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def parse_cell(text: str | None) -> dict | None:
    """--cell 'model.embed_dim=48,data.train_subset=1000' -> {key: number or text}."""
    if not text:
        return None
    cell = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--cell {text!r}: give key=value pairs separated by commas")
        cell[key] = int(value) if value.lstrip("-").isdigit() else value
    return cell


def read_plans(folder: Path, pending: bool = False) -> list[dict]:
    """The folder's plans, plan.json first, each with its file name under "file"; a plan pending
    its pilot only when asked for (`pending`): it plans no runs."""
    files = [Path(folder) / "plan.json", *sorted(Path(folder).glob("plan-*.json"))]
    plans = [{**json.loads(p.read_text()), "file": p.name} for p in files if p.is_file()]
    return [p for p in plans if pending or p.get("status") != PENDING]


def pending_note(folder: Path) -> str:
    """Why the folder has no plan to run yet, where it has one pending its pilot; else ''."""
    waiting = [p for p in read_plans(folder, pending=True) if p.get("status") == PENDING]
    return f" ({waiting[0]['file']} is pending its pilot: {waiting[0]['pilot']})" if waiting else ""


def read_plan(folder: Path, hardware: str | None = None, cell: dict | None = None) -> dict | None:
    """The plan governing `hardware` (in `cell`) in `folder`; without a kind, the folder's first."""
    plans = read_plans(folder)
    if hardware is None:
        return plans[0] if plans else None
    return next((p for p in plans if p["hardware"] == hardware and p.get("cell") == cell), None)


def mirror(experiment: Experiment, folder: Path, pilot_kind: str, hardware: str) -> list[tuple[str, dict]]:
    """Plans for `hardware` mirroring each of `pilot_kind`'s plans in `folder` (cell by cell) that
    `hardware` lacks: the same pilot seeds, rows and min_seeds, borrowed. A pure function of the
    committed pilot, so a GPU window can write them on a machine whose exact kind is known only
    there, and they are what committing them beforehand would have been."""
    runs = read_csv(folder / "runs.csv")
    made = []
    for plan in read_plans(folder):
        if plan["hardware"] != pilot_kind or read_plan(folder, hardware, plan.get("cell")):
            continue
        source = plan.get("pilot_hardware", pilot_kind)
        made.append((plan_name(hardware, plan.get("cell")), make_plan(
            experiment, pilot_rows(plan, runs), hardware, plan["min_seeds"], source, plan.get("cell"))))
    return made


def pilot_rows(plan: dict, runs: list[dict]) -> list[dict]:
    """The runs a plan was derived from: each comparison's method and baseline at its pilot seeds."""
    pilot = {(m, s) for c in plan["comparisons"] for m in (c["method"], c["baseline"])
             for s in c["pilot_seeds"]}
    return [r for r in runs if any(s == r["seed"] and of_method(r, method_of(m)) for m, s in pilot)]
