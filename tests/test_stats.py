"""The verdict rule on constructed differences with known answers, t quantiles against published
tables, seed planning against brute force, and the committed plans re-derived from their pilots."""
import json
import math
import random
from pathlib import Path

import pytest

from repro.records.tables import read_csv
from repro.report.claims import CELL_CLAIMS
from repro.report.experiments import EXPERIMENTS
from repro.report.plan import PENDING, curve_plan, make_plan, pending_plan, pilot_plan, pilot_rows
from repro.report.stats import interval_word, mean_ci, planned_verdict, sample_sd, seeds_needed, t975, verdict

BATCH = EXPERIMENTS["dynamics_batch"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("df, table", [(1, 12.706), (10, 2.228), (30, 2.042), (40, 2.021),
                                       (60, 2.000), (120, 1.980)])
def test_t_quantiles_match_published_tables(df, table):
    assert t975(df) == pytest.approx(table, abs=6e-4)


def test_t_quantiles_decrease_towards_the_normal():
    values = [t975(df) for df in range(1, 400)]
    assert all(a > b for a, b in zip(values, values[1:])) and values[-1] > 1.96


def test_seeds_needed_is_the_smallest_count_that_meets_the_half_width():
    for sd, half in ((0.00867, 0.002), (0.0055, 0.0025), (1.0, 0.5), (0.3, 1.0)):
        n = seeds_needed(sd, half, min_seeds=2)
        brute = next(k for k in range(2, 1000) if t975(k - 1) * sd / math.sqrt(k) <= half)
        assert n == brute
    assert seeds_needed(0.3, 1.0, min_seeds=15) == 15
    assert seeds_needed(0.0, 0.1) == 2
    with pytest.raises(ValueError, match="half_width"):
        seeds_needed(1.0, 0.0)


# (low, high) against the paper's effect +0.5 (margin 0.5, the paper's): every word and each
# boundary between two words (binary fractions, so that mean +- half-width gives them back
# exactly); the same intervals mirrored for a claimed decrease (sign -1).
PAPERS = "no effect as large as the paper's"
WORDS = [
    ((-0.75, -0.125), "opposite"), ((-0.75, 0.0), None), ((-0.25, 0.0), PAPERS),
    ((0.625, 0.75), "larger than the paper's"), ((0.5, 0.75), "reproduced"), ((0.125, 0.75), "reproduced"),
    ((0.125, 0.5), "reproduced"), ((0.125, 0.375), "smaller than the paper's"), ((0.0, 0.375), PAPERS),
    ((-0.375, 0.375), PAPERS), ((-0.5, 0.25), None), ((-0.25, 0.5), None), ((-0.75, 0.75), None),
    ((0.0, 0.5), None)]


@pytest.mark.parametrize("interval, word", WORDS, ids=[str(i) for i, _ in WORDS])
def test_every_interval_gets_exactly_its_word(interval, word):
    low, high = interval
    mean, half = (low + high) / 2, (high - low) / 2
    assert interval_word(low, high, +1, 0.5) == word
    assert interval_word(-high, -low, -1, 0.5) == word
    assert planned_verdict(mean, half, 15, 15, 0.5, +1) == \
        (word or "inconclusive at the planned seeds (interval wider than planned)")
    assert verdict(mean, half, +1, 0.5) == (word or "inconclusive (interval includes 0)")


@pytest.mark.parametrize("interval, word", [
    ((0.625, 0.75), "reproduced"), ((0.125, 0.375), "reproduced"),
    ((-0.375, 0.375), "no effect as large as our margin"), ((-0.75, -0.125), "opposite"),
    ((-0.75, 0.75), None)])
def test_our_margin_has_no_papers_effect_to_be_larger_or_smaller_than(interval, word):
    """With our margin (the paper gives no size) excluding 0 on its side is the whole claim, and
    equivalence names our margin, not the paper's."""
    assert interval_word(*interval, +1, 0.5, ours=True) == word


def test_no_margin_and_too_few_seeds():
    # n below plan: underpowered whatever the interval says (no stopping once 0 is cleared)
    assert planned_verdict(1.0, 0.1, 10, 15, 0.4, +1) == "underpowered (10 of 15 planned seeds)"
    assert planned_verdict(0.1, math.nan, 1, 1, 0.4, +1).startswith("underpowered")
    # no margin (curve claims: the paper gives no effect size): no equivalence verdict
    no_margin = planned_verdict(0.05, 0.2, 10, 10, None, +1)
    assert no_margin == "inconclusive at the planned seeds (interval includes 0)"
    assert planned_verdict(0.5, 0.2, 10, 10, None, +1) == "reproduced"
    assert planned_verdict(-0.5, 0.2, 10, 10, None, +1) == "opposite"
    assert planned_verdict(-0.5, 0.2, 9, 10, None, -1) == "underpowered (9 of 10 planned seeds)"


def test_claims_say_whose_margin_they_use():
    """The paper's margins cite its table; ours say why they are ours."""
    for claim in {c for group in (*(e.claims for e in EXPERIMENTS.values()), *CELL_CLAIMS.values())
                  for c in group}:
        assert ("ours" in claim.source or "borrowed" in claim.source or "no published" in claim.source) \
            == claim.ours, claim.text


def test_equivalence_rule_holds_its_error_rate_on_simulated_null_effects():
    """With no true effect and the planned n, 'no effect as large as the paper's' comes out most
    of the time and an effect on the paper's side (reproduced, smaller or larger than the paper's)
    about 2.5% of the time (one side of a 95% interval)."""
    rng = random.Random(0)
    sd, margin = 1.0, 1.0
    n = seeds_needed(sd, margin / 2)
    outcomes = []
    for _ in range(2000):
        mean, half, _ = mean_ci([rng.gauss(0.0, sd) for _ in range(n)])
        outcomes.append(planned_verdict(mean, half, n, n, margin, +1))
    sided = ("reproduced", "smaller than the paper's", "larger than the paper's")
    effect = sum(outcomes.count(word) for word in sided)
    assert 0.01 < effect / 2000 < 0.045
    assert outcomes.count("no effect as large as the paper's") / 2000 > 0.8


def test_sample_sd_by_hand():
    assert sample_sd([1.0, 2.0, 3.0]) == pytest.approx(1.0)


PLANS = sorted((ROOT / "results").glob("*/plan*.json"))


@pytest.mark.parametrize("path", PLANS, ids=[f"{p.parent.name}/{p.name}" for p in PLANS])
def test_committed_plans_follow_from_their_pilots(path):
    """The plan re-derived from its pilot seeds in the committed table is the committed plan."""
    plan = {k: v for k, v in json.loads(path.read_text()).items() if k != "relabelled"}   # a dated note
    experiment = EXPERIMENTS[plan["experiment"]]
    if plan.get("status") == PENDING:                # the claims, margins and rule before any pilot
        assert pending_plan(experiment) == plan
        return
    if experiment.piloted:                           # curve claims with margins: the kind's own pilot
        seeds = {s for c in plan["comparisons"] for s in c["pilot_seeds"]}
        rows = [r for r in read_csv(path.parent / "curves.csv") if r["seed"] in seeds]
        assert pilot_plan(experiment, rows, plan["hardware"], plan["min_seeds"]) == plan
        return
    if experiment.curve_claims:                      # no pilot: the seeds were stated
        assert curve_plan(experiment, max(plan["seeds"].values()), plan["hardware"]) == plan
        return
    runs = pilot_rows(plan, read_csv(path.parent / "runs.csv"))
    remade = make_plan(experiment, runs, plan["hardware"], plan["min_seeds"],
                       plan.get("pilot_hardware"), plan.get("cell"))
    assert remade == plan
    if "cell" not in plan:
        assert {c["claim"] for c in plan["comparisons"]} == {c.text for c in experiment.claims}


def test_plan_refuses_a_pilot_without_pairs():
    runs = [{"seed": 0, "drop.kind": "none", "drop.mode": "standard", "test_acc": 0.8,
             "train_full_loss": 0.5, "hardware": "cpu"}]
    with pytest.raises(ValueError, match="paired seeds"):
        make_plan(EXPERIMENTS["early_regime"], runs, "cpu", 15)
    with pytest.raises(ValueError, match="no pilot runs on hardware 'gpu'"):
        make_plan(EXPERIMENTS["early_regime"], runs, "gpu", 15)


def dynamics_rows(seeds, shift: dict) -> list[dict]:
    """Analysis rows of two arms whose per-seed difference (0.1 minus 0.0) is shift[seed] in every
    metric at every step."""
    metrics = ("grad_norm", "model_distance", "grad_direction_variance", "grad_direction_error")
    return [{"seed": s, "step": step, "drop.rate": rate,
             **{m: 1.0 + (shift[s] if rate else 0.0) for m in metrics}}
            for s in seeds for rate in (0.0, 0.1) for step in (0, 1, 4, 13, 200, 300)]


def test_dynamics_verdicts_use_exactly_the_planned_seeds():
    """Seeds past the plan are left out of the verdict (10, 11 here would flip every sign); fewer
    than planned is underpowered; no plan falls back to the unplanned rule over every seed."""
    from repro.report.figures.common import group_by
    from repro.report.figures.dynamics import claim_rows
    plan = curve_plan(EXPERIMENTS["dynamics_decompose"], 10, "cpu")
    shift = {s: -1.0 + 0.1 * (s % 3 - 1) for s in range(10)} | {10: 50.0, 11: 50.0}
    rows = claim_rows(group_by(dynamics_rows(range(12), shift), "drop.rate"), plan)
    assert [(r["metric"], r["phase"], r["verdict"], r["seeds"]) for r in rows] == [
        ("grad_norm", "early", "reproduced", 10), ("model_distance", "late", "opposite", 10),
        ("grad_direction_variance", "early", "reproduced", 10),
        ("grad_direction_error", "early", "reproduced", 10),
        ("grad_direction_variance", "late", "opposite", 10), ("grad_direction_error", "late", "opposite", 10)]
    few = claim_rows(group_by(dynamics_rows(range(9), shift), "drop.rate"), plan)
    assert {r["verdict"] for r in few} == {"underpowered (9 of 10 planned seeds)"}
    unplanned = claim_rows(group_by(dynamics_rows(range(12), shift), "drop.rate"))
    assert {r["verdict"] for r in unplanned} == {"inconclusive (interval includes 0)"}
    assert {r["seeds"] for r in unplanned} == {12}


def trajectory_rows(effects: dict, hardware: str = "gpu") -> list[dict]:
    """Analysis rows of dynamics_batch's two arms whose trajectory effect on direction variance
    (masks off at drop rate 0.1 minus drop rate 0.0) averages effects[seed] over the early steps
    (per step effects[seed] + a step's offset, the offsets summing to 0), with other values at
    step 0 and the late step 159, which the early window leaves out."""
    offsets = {0: 9.0, 1: 0.02, 4: -0.02, 13: 0.01, 45: -0.01, 84: 0.0, 159: 5.0}
    rows = []
    for seed, effect in effects.items():
        for step, offset in offsets.items():
            plain = 0.1 + 0.001 * seed
            rows += [{"event": "analysis", "hardware": hardware, "seed": seed, "step": step, "drop.rate": 0.0,
                      "grad_direction_variance": plain, "masks_off/grad_direction_variance": plain},
                     {"event": "analysis", "hardware": hardware, "seed": seed, "step": step, "drop.rate": 0.1,
                      "grad_direction_variance": plain + effect + offset + 0.03,      # masks on: +0.03
                      "masks_off/grad_direction_variance": plain + effect + offset}]
    return rows


def test_the_trajectory_claim_is_judged_and_planned_from_constructed_curves(tmp_path):
    """Per seed the early-window trajectory effect is -0.04 or -0.06 (8 seeds, alternating): by hand
    mean -0.05, sd 0.01 * sqrt(8/7) = 0.010690, half-width t(7) 2.365 * 0.010690 / sqrt(8) =
    0.008939: [-0.0589, -0.0411] excludes 0 on the paper's side (lower), and the margin is ours:
    reproduced. The plan from it: 15 seeds (the minimum; 0.013 = margin / 2 is met at 15)."""
    from repro.report.figures.training_batch import effect_claim_rows
    claim = BATCH.curve_claims[0]
    assert (claim.effect, claim.metric, claim.phase, claim.sign, claim.ours) == \
        ("trajectory", "grad_direction_variance", "early", -1, True)
    curves = trajectory_rows({s: -0.04 if s % 2 else -0.06 for s in range(8)})
    plan = pilot_plan(BATCH, curves, "gpu", 15)
    [comparison] = plan["comparisons"]
    assert comparison["pilot_seeds"] == list(range(8))
    assert comparison["pilot_sd"] == pytest.approx(0.01 * math.sqrt(8 / 7))
    assert comparison["seeds"] == 15 and plan["seeds"] == {
        "drop.rate=0.0,train.batch_size=1024": 15, "drop.rate=0.1,train.batch_size=1024": 15}
    assert pilot_plan(BATCH, curves, "gpu", 2)["seeds"]["drop.rate=0.0,train.batch_size=1024"] == 6
    # by hand at 2 seeds minimum: n = 5 gives 2.776 * 0.010690 / sqrt 5 = 0.01327 > 0.013; n = 6: 0.01122

    folder = tmp_path / "dynamics_batch"
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(pending_plan(BATCH)))
    [pending] = effect_claim_rows(curves[:6 * 14], folder)          # seeds 0-5: the pilot not yet in
    assert pending["verdict"] == "underpowered (pilot pending: 6 of 8 pilot seeds)" and pending["planned"]
    (folder / "plan-gpu.json").write_text(json.dumps({**plan, "comparisons": [{**comparison, "seeds": 8}]}))
    [row] = effect_claim_rows(curves, folder)
    assert (row["diff"], row["n"]) == (pytest.approx(-0.05), 8)
    assert row["half"] == pytest.approx(2.365 * 0.01 * math.sqrt(8 / 7) / math.sqrt(8))
    assert row["effect"] == "-0.0500 ± 0.0089" and row["verdict"] == "reproduced"
    near = trajectory_rows({s: 0.001 if s % 2 else -0.001 for s in range(8)})
    [row] = effect_claim_rows(near, folder)     # -0.0019 .. +0.0019, inside ±0.026
    assert row["verdict"] == "no effect as large as our margin"
    (folder / "plan-gpu.json").unlink()
    [row] = effect_claim_rows(near, folder)     # the pilot is in, no plan written from it yet
    assert row["verdict"] == "underpowered (pilot in; its plan not written yet)"
    (folder / "plan.json").unlink()
    [row] = effect_claim_rows(curves, folder)   # no plan at all: the unplanned rule
    assert (row["verdict"], row["seeds"], row["planned"]) == ("reproduced", "8, unplanned", False)


def test_the_trajectory_claims_margin_is_the_mask_effect_in_its_table():
    """Our margin is the early mask effect on direction variance at training batch 1024, as
    dynamics_batch/table.md prints it."""
    claim = BATCH.curve_claims[0]
    table = (ROOT / "results" / "dynamics_batch" / "table.md").read_text()
    cell = next(line.split(" | ")[4] for line in table.splitlines()
                if line.startswith("| 1024 | grad_direction_variance | "))
    assert cell.startswith(f"{claim.margin:.4f} ± ") and f"+{claim.margin:.4f}" in claim.source
