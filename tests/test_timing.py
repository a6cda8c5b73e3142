"""Late s.d.'s timing apart from its rate (experiment late_timing): its grid (both arms at the pilot's
seeds, in the regime study's overfitting cell), standard s.d. at r 0.4 kept apart from the study's
standard s.d. (r 0.1), and the plan, table and glance against hand-computed differences."""
import json

import pytest
from conftest import load_script

from repro.arms import of_method
from repro.compose import compose_config
from repro.loop.validate import validate
from repro.report.claims import DROP_PATH, LATE_SD_SETTING, STANDARD_SD_AT_LATE_RATE, TIMING, TIMING_ARMS
from repro.report.experiments import EXPERIMENTS
from repro.report.figures import settings
from repro.report.plan import make_plan

EXPERIMENT = EXPERIMENTS["late_timing"]
KIND = "cpu AVX512 torch 2.14.1+cu130"


def point(arm: str, seed: int) -> list[str]:
    return sorted([*arm.split(","), f"seed={seed}"])


def test_both_arms_run_at_the_late_rate_in_the_overfitting_cell_seed_by_seed():
    assert load_script("sweep").grid("late_timing", []) == \
        [point(arm, seed) for seed in range(8) for arm in TIMING_ARMS]
    drops = {}
    for arm in TIMING_ARMS:
        cfg = compose_config(["experiment=late_timing", *point(arm, 0)])
        validate(cfg)
        assert (cfg.model.embed_dim, cfg.data.train_subset, cfg.data.crop_padding, cfg.data.hflip) == \
            (48, 1000, 0, False)
        drop = cfg.drop
        drops[arm] = (drop.kind, drop.mode, drop.schedule, drop.rate, drop.cutoff_fraction)
    assert drops == {STANDARD_SD_AT_LATE_RATE: ("drop_path", "standard", "constant", 0.4, 0.0),
                     LATE_SD_SETTING: ("drop_path", "late", "constant", 0.4, 0.1667)}
    # the regime study's standard s.d. (r 0.1) is not this arm, and this arm is not the study's method
    study = {"run": "data.train_subset=1000,drop=drop_path,model.embed_dim=48,seed=0"}
    assert not of_method(study, STANDARD_SD_AT_LATE_RATE)
    assert of_method({"run": "drop.rate=0.4,drop=drop_path,seed=0"}, STANDARD_SD_AT_LATE_RATE)
    assert TIMING[0].baseline != DROP_PATH and TIMING[0].ours and "borrowed" in TIMING[0].source


def rows(diff, seeds=range(8)) -> list[dict]:
    """Standard s.d. at r 0.4 tests 0.74 + 0.001 * seed; late s.d. that plus diff(seed)."""
    out = []
    for arm, mode in ((STANDARD_SD_AT_LATE_RATE, "standard"), (LATE_SD_SETTING, "late")):
        for seed in seeds:
            acc = 0.74 + 0.001 * seed + (diff(seed) if mode == "late" else 0.0)
            out.append({"run": ",".join(point(arm, seed)), "seed": seed, "hardware": KIND,
                        "drop.kind": "drop_path", "drop.mode": mode, "model.name": "vit_micro",
                        "model.embed_dim": 48, "data.name": "fashion_mnist", "data.train_subset": 1000,
                        "train.epochs": 180, "test_acc": acc, "train_full_acc": 1.0,
                        "train_full_loss": 0.004})
    return out


def test_the_plan_and_the_verdict_follow_from_hand_computed_differences(tmp_path):
    """Differences alternating 0.3 +- 0.5 pp: sd 0.5 sqrt(8/7) = 0.5345 pp; the margin is 0.7 pp, so n
    = 15 (the minimum) gives 2.145 * 0.5345 / sqrt 15 = 0.296 <= 0.35: 15 seeds each. At the 8 pilot
    seeds the half-width is 2.365 * 0.5345 / sqrt 8 = 0.447 pp: 0.30 ± 0.45 pp, underpowered."""
    pilot = rows(lambda seed: 0.003 + (0.005 if seed % 2 == 0 else -0.005))
    plan = make_plan(EXPERIMENT, pilot, KIND, 15)
    [comparison] = plan["comparisons"]
    assert comparison["pilot_sd"] == pytest.approx(0.005 * (8 / 7) ** 0.5) and comparison["seeds"] == 15
    assert plan["seeds"] == {LATE_SD_SETTING: 15, STANDARD_SD_AT_LATE_RATE: 15}
    folder = tmp_path / "late_timing"
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(plan))
    seconds = {"late": lambda seed: 120.0 + seed, "standard": lambda seed: 100.0}    # s per run
    (folder / "collection.json").write_text(json.dumps({"runs": [
        {"run": r["run"], "hardware": KIND, "wall_s_last_launch": seconds[r["drop.mode"]](r["seed"])}
        for r in pilot]}))
    text = "\n".join(EXPERIMENT.figures(pilot, [], folder))
    assert "| standard s.d., r = 0.4 | 8 | 74.35 ±" in text
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {TIMING[0].text} |"))
    assert "| 0.70 (ours) | 8 of 15 planned | 0.30 ± 0.45 pp | **underpowered (8 of 15 planned seeds)** |" \
        in line
    [row] = settings.glance(settings.TIMING, pilot, [], folder)
    assert row["base"] == TIMING[0].text and row["planned"] and row["n"] == 8
    assert (folder / "late_timing.png").is_file()
    cost = (folder / "cost.md").read_text()                    # medians: 100 and 123.5; both: 110
    assert f"| {KIND} | standard s.d., r = 0.4 | 8 | 100 |\n" \
           f"| {KIND} | late s.d., r = 0.4 after 1/6 | 8 | 124 |" in cost
    assert f"| plan.json | {KIND} | 30 | 110 | {30 * 110 / 3600:.1f} |" in cost
