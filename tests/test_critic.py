"""The settings a critic would try (experiment regime_critic): its grid (each arm at each pilot seed),
claims that name an arm, the plan from a pilot of known spread and the queue's grid points from it,
the table's and the glance's verdicts against hand-computed differences, the GPU window's dry path,
and the next window's cost against the tables it cites."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

from repro import paths
from repro import plan as plan_cli
from repro.arms import of_method
from repro.compose import compose_config
from repro.loop.validate import validate
from repro.records.tables import write_csv
from repro.report import launch
from repro.report.claims import CRITIC, EARLY, NO_DROPOUT, SETTINGS
from repro.report.experiments import EXPERIMENTS, evidence
from repro.report.figures import settings, summary
from repro.report.plan import make_plan, pilot_rows, read_plan
from repro.report.stats import seeds_needed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
EXPERIMENT = EXPERIMENTS["regime_critic"]
KIND = "NVIDIA H200 torch 2.11.0+cu130 (batched)"
ARMS = (NO_DROPOUT, *SETTINGS)
P05, DEFAULT, P02, P03, CUT01, CUT05, CUT25, CUT50, CONSTANT = SETTINGS


def point(arm: str, seed: int) -> list[str]:
    return sorted([*arm.split(","), f"seed={seed}"])


def test_the_pilot_grid_is_every_arm_at_seeds_0_to_7_seed_by_seed():
    sweep = load_script("sweep")
    points = sweep.grid("regime_critic", [])
    assert points == [point(arm, seed) for seed in range(8) for arm in ARMS]
    assert sweep.grid("regime_critic", ["drop=none"]) == [point(NO_DROPOUT, s) for s in range(8)]
    assert sweep.grid("regime_critic", ["drop.rate=0.2,0.3", "seed=0"]) == [point(P02, 0), point(P03, 0)]
    drops = {}
    for arm in ARMS:
        cfg = compose_config(["experiment=regime_critic", *point(arm, 0)])
        validate(cfg)                                  # the checks a run passes before anything is written
        assert (cfg.model.embed_dim, cfg.data.train_subset, cfg.train.epochs, cfg.data.crop_padding,
                cfg.data.hflip) == (48, 60000, 3, 0, False)                    # the underfitting cell
        drop = cfg.drop
        drops[arm] = (drop.kind, drop.mode, drop.schedule, drop.rate, drop.cutoff_fraction)
    assert drops[NO_DROPOUT][:2] == ("none", "standard")
    assert drops[DEFAULT] == ("dropout", "early", "linear", 0.1, 0.1667)
    assert [drops[a][3] for a in (P05, P02, P03)] == [0.05, 0.2, 0.3]
    assert [drops[a][4] for a in (CUT01, CUT05, CUT25, CUT50)] == [0.01, 0.05, 0.25, 0.5]
    assert drops[CONSTANT] == ("dropout", "early", "constant", 0.1, 0.1667)


def test_a_claim_names_its_arm_and_runs_match_it_by_their_drop_overrides():
    row = {"run": "drop.rate=0.2,drop=early_dropout,seed=3", "drop.kind": "dropout", "drop.mode": "early"}
    assert of_method(row, P02) and of_method(row, ("dropout", "early"))
    assert not of_method(row, DEFAULT) and not of_method(row, NO_DROPOUT)    # p = 0.1 is another arm
    cell = {"run": "data.train_subset=60000,drop=early_dropout,model.embed_dim=48,seed=0"}
    assert of_method(cell, DEFAULT)
    assert [c.method for c in CRITIC] == list(SETTINGS) and {c.baseline for c in CRITIC} == {NO_DROPOUT}
    assert {(c.metric, c.sign, c.margin) for c in CRITIC} == {("test_acc", +1, EARLY[0].margin)}
    assert [c.ours for c in CRITIC] == [arm != DEFAULT for arm in SETTINGS]   # a number for its default only
    assert all("borrowed" in c.source and "74.3 - 73.9" in c.source for c in CRITIC if c.ours)


def runs(diffs: dict, seeds=range(8), extra: dict | None = None) -> list[dict]:
    """No dropout tests 0.80 + 0.001 * seed and trains 2 pp above it; each arm tests no dropout's
    accuracy + diffs[arm](seed), seeds of its own from `extra` (arm -> seeds) where given."""
    rows = []
    for arm in ARMS:
        for seed in (extra or {}).get(arm, seeds):
            base = 0.80 + 0.001 * seed
            kind, mode = ("none", "standard") if arm == NO_DROPOUT else ("dropout", "early")
            rows.append({"run": ",".join(point(arm, seed)), "seed": seed, "hardware": KIND, "drop.kind": kind,
                         "drop.mode": mode, "model.name": "vit_micro", "model.embed_dim": 48,
                         "data.name": "fashion_mnist", "data.train_subset": 60000, "train.epochs": 3,
                         "test_acc": base + (0.0 if arm == NO_DROPOUT else diffs[arm](seed)),
                         "train_full_acc": base + 0.02, "train_full_loss": 0.5})
    return rows


def alternating(mean: float, spread: float):
    """mean + spread on even seeds, mean - spread on odd ones: over 8 seeds the sd is spread * sqrt(8/7)."""
    return lambda seed: mean + (spread if seed % 2 == 0 else -spread)


def test_the_plan_follows_from_a_pilot_of_known_spread_and_the_queue_runs_it(tmp_path, monkeypatch):
    """p = 0.3's differences alternate +-0.5 pp (sd 0.5 sqrt(8/7) = 0.5345 pp): by hand n = 29 gives
    2.048 * 0.5345 / sqrt 29 = 0.2033 > 0.2 pp = margin / 2, n = 30 gives 2.045 * 0.5345 / sqrt 30 =
    0.1996: 30 seeds. The others alternate +-0.1 pp: the minimum, 15. No dropout runs the most, 30."""
    diffs = {arm: alternating(0.0, 0.005 if arm == P03 else 0.001) for arm in SETTINGS}
    pilot = runs(diffs)
    plan = make_plan(EXPERIMENT, pilot, KIND, 15)
    assert "cell" not in plan and len(plan["comparisons"]) == 9
    wide = next(c for c in plan["comparisons"] if c["method"] == P03)
    assert wide["pilot_sd"] == pytest.approx(0.005 * math.sqrt(8 / 7)) and wide["seeds"] == 30
    assert (wide["baseline"], wide["margin"], wide["pilot_seeds"]) == (NO_DROPOUT, 0.004, list(range(8)))
    assert plan["seeds"] == {arm: 30 if arm in (P03, NO_DROPOUT) else 15 for arm in ARMS}
    assert make_plan(EXPERIMENT, pilot_rows(plan, pilot + runs(diffs, range(8, 12))), KIND, 15) == plan

    folder = tmp_path / "regime_critic"
    folder.mkdir()
    write_csv(pilot, folder / "runs.csv")
    monkeypatch.setattr(paths, "RESULTS", tmp_path)
    monkeypatch.setattr("sys.argv", ["plan", "regime_critic", "--hardware", KIND, "--write"])
    plan_cli.main()                                   # the window's command: the folder's first plan
    assert read_plan(folder, KIND) == {**plan, "file": "plan.json"}
    with pytest.raises(SystemExit) as refused:
        plan_cli.main()                               # a committed plan is never rewritten
    assert refused.value.code == 2

    points = launch.planned("regime_critic", KIND)
    assert len(points) == 15 * 10 + 15 * 2
    assert [p[-1] for p in points] == sorted((p[-1] for p in points), key=lambda s: int(s[5:]))
    sweep = load_script("sweep")
    pilot_points = sweep.grid("regime_critic", [])
    assert sorted(points[:80]) == sorted(pilot_points)             # the pilot's runs, in the pilot's folders
    assert {paths.run_dir("regime_critic", p).name for p in points[:80]} == \
        {paths.run_dir("regime_critic", p).name for p in pilot_points}
    assert {",".join(p[:-1]) for p in points[150:]} == {",".join(point(NO_DROPOUT, 0)[:-1]),
                                                       ",".join(point(P03, 0)[:-1])}


def verdict_runs() -> list[dict]:
    """8 planned seeds; each arm's differences alternate +-0.1 pp around its mean; the constant
    schedule has 5 seeds only; p = 0.05 has 2 more seeds (8, 9) at +5 pp, past the plan."""
    means = {DEFAULT: 0.01, P05: 0.0005, P02: -0.01, P03: 0.003}
    diffs = {arm: alternating(means.get(arm, 0.0005), 0.001) for arm in SETTINGS}
    diffs[P05] = lambda seed: 0.05 if seed >= 8 else alternating(0.0005, 0.001)(seed)
    return runs(diffs, extra={NO_DROPOUT: range(10), P05: range(10), CONSTANT: range(5)})


def test_the_table_and_glance_judge_each_setting_by_hand_computed_differences(tmp_path):
    """Over 8 seeds the half-width is t(7) 2.365 * 0.1 pp * sqrt(8/7) / sqrt 8 = 0.0894 pp: the default
    +1.00 +- 0.09 pp clears the paper's +0.4 (larger than the paper's); p = 0.3, +0.30 +- 0.09, excludes
    0 with a borrowed margin (reproduced: no paper's number to be smaller than); p = 0.2, -1.00,
    opposite; +0.05 +- 0.09 is inside +-0.4 (no effect as large as our margin), and p = 0.05's two
    seeds past the plan (+5 pp) stay apart; the constant schedule has 5 of 8 seeds."""
    rows = verdict_runs()
    folder = tmp_path / "regime_critic"
    folder.mkdir()
    pilot = [r for r in rows if r["seed"] < 8]
    (folder / "plan.json").write_text(json.dumps(make_plan(EXPERIMENT, pilot, KIND, 8)))
    text = "\n".join(EXPERIMENT.figures(rows, [], folder))
    assert f"## On {KIND}" in text
    assert "No-dropout train - test gap: 2.00 ± 0.00 pp over 10 seeds: underfitting (the premise" in text
    assert "| p = 0.2 (linear, cutoff 1/6) | 8 | 79.35 ± 0.20 |" in text          # 80.35 - 1.00
    assert "| -1.00 ± 0.09 |" in text
    expected = {DEFAULT: ("0.40 (the paper's)", "1.00 ± 0.09 pp", "larger than the paper's", "-"),
                P03: ("0.40 (ours)", "0.30 ± 0.09 pp", "reproduced", "-"),
                P02: ("0.40 (ours)", "-1.00 ± 0.09 pp", "opposite", "-"),
                P05: ("0.40 (ours)", "0.05 ± 0.09 pp", "no effect as large as our margin",
                      "2 more: 5.00 ± 0.00 pp"),
                CUT01: ("0.40 (ours)", "0.05 ± 0.09 pp", "no effect as large as our margin", "-")}
    for arm, (margin, effect, word, past) in expected.items():
        claim = f"early dropout at {SETTINGS[arm]} raises test accuracy"
        row = f"| {claim} | test_acc | {margin} | 8 of 8 planned | {effect} | **{word}** | {past} |"
        assert row in text, arm
    constant = next(ln for ln in text.splitlines() if ln.startswith(f"| {CRITIC[-1].text} |"))
    assert "5 of 8 planned" in constant and "**underpowered (5 of 8 planned seeds)**" in constant
    assert f"- {CRITIC[0].text}: ours, borrowed from the paper's gain" in text
    assert (folder / "regime_critic.png").is_file()

    glance = EXPERIMENT.glance(rows, [], folder)
    assert [r["claim"] for r in glance] == [c.text for c in CRITIC]
    assert {r["hardware"] for r in glance} == {KIND} and all(r["planned"] for r in glance)
    words = {r["claim"]: r["verdict"] for r in glance}
    assert words[CRITIC[1].text] == "larger than the paper's" and words[CRITIC[2].text] == "opposite"
    answer = summary.answer([{**r, "folder": "regime_critic", "scale": "s"} for r in glance])[2:]
    assert len(answer) == 3                           # one row per robustness claim: p, cutoff, schedule
    assert ["(+3 in the glance)" in line for line in answer] == [True, True, False]
    (folder / "plan.json").unlink()
    unplanned = "\n".join(EXPERIMENT.figures(rows, [], folder))
    assert "| claim | difference (95% CI) | seeds | verdict (unplanned) |" in unplanned
    assert not any(r["planned"] for r in EXPERIMENT.glance(rows, [], folder))


def test_a_pilot_half_in_and_no_runs_at_all_break_nothing(tmp_path, monkeypatch, capsys):
    """The first seed batch recorded (no dropout alone): every claim is without pairs. No runs.csv
    (the folder holds NEXT_GPU.md alone): the glance has no row of it and the plan command refuses,
    naming the pilot."""
    folder = tmp_path / "regime_critic"
    folder.mkdir()
    first = [r for r in verdict_runs() if r["drop.kind"] == "none"]
    settings.make(settings.CRITIC, first, [], folder)
    verdicts = {r["verdict"] for r in settings.glance(settings.CRITIC, first, [], folder)}
    assert verdicts == {"inconclusive (no paired runs)"}
    empty = tmp_path / "empty" / "regime_critic"
    empty.mkdir(parents=True)
    (empty / "NEXT_GPU.md").write_text("the next window")
    assert evidence(empty.parent) == []
    monkeypatch.setattr(paths, "RESULTS", empty.parent)
    monkeypatch.setattr("sys.argv", ["plan", "regime_critic", "--hardware", KIND, "--write"])
    with pytest.raises(SystemExit) as refused:
        plan_cli.main()
    assert refused.value.code == 2
    assert "runs.csv does not exist; run and collect a pilot first" in capsys.readouterr().err


def window(out: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/gpu_window.sh", str(out), "abc1234", "60", "8", "10"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT), **env})


@pytest.mark.slow
def test_the_gpu_windows_dry_run_pilots_every_arm_seed_batched_then_plans_and_queues_nothing(tmp_path):
    """The window's pilot call rehearsed on the CPU: one process of seeds 0-7 per arm, the plan step on
    the batched kind (refused here: no pilot runs of this kind), no queue, nothing trained or packed."""
    refused = window(tmp_path / "a", DRY="1", PILOT_BATCHED="regime_critic")
    assert refused.returncode == 2 and "PILOT_S=SECONDS is needed" in refused.stderr
    out = tmp_path / "b"
    out.mkdir()
    done = window(out, DRY="1", PILOT_BATCHED="regime_critic", PILOT_S="300")
    assert done.returncode == 0, done.stdout + done.stderr
    log = (out / "pilot-regime_critic.log").read_text()
    batches = [line for line in log.splitlines() if line.startswith("[batch ] ")]
    assert sorted(batches) == sorted(f"[batch ] {' '.join(point(arm, 0)[:-1])} seeds=0,1,2,3,4,5,6,7"
                                     for arm in ARMS)
    assert "80 runs, 0 finished, 80 to run as 10 seed-batched processes" in log
    plan_line = re.search(r"plan: python -m repro.plan regime_critic --hardware '(.+)'", log)
    assert plan_line and plan_line.group(1).endswith(" (batched)")
    assert re.search(r"error: .*(runs.csv does not exist|no pilot runs on hardware)", log)
    assert "no queue" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["pilot-regime_critic.log"]   # no queue, nothing packed


def test_the_next_windows_cost_cites_its_tables():
    """NEXT_GPU.md's numbers are the cited tables': early_regime's measured H200 seed batches
    (collection.json) and the plans at the two spreads (the CPU's seconds per run it leaves to
    regime_study/cost.md, which grows as that study's runs come in)."""
    text = " ".join((RESULTS / "regime_critic" / "NEXT_GPU.md").read_text().split())
    entries = [e for e in json.loads((RESULTS / "early_regime" / "collection.json").read_text())["runs"]
               if e["hardware"] == "NVIDIA H200 (batched)"]
    walls: dict = {}
    for e in entries:
        size = len(next(a for a in e["argv"] if a.startswith("seeds="))[6:].split(","))
        walls.setdefault(size, set()).add(e["wall_s_last_launch"])
    assert f"{len(entries)} runs in {sum(map(len, walls.values()))} processes" in text

    def span(*sizes) -> str:
        """The processes' wall times over these batch sizes, as 'min-max' seconds (or one value)."""
        times = [w for s in sizes for w in walls[s]]
        return "-".join(dict.fromkeys(f"{w:.0f}" for w in (min(times), max(times))))
    assert f"A process of 9 seeds took {span(9)} s, of 15 seeds {span(15)} s, and of 39-41 seeds " \
           f"{span(39, 41)} s" in text and sorted(walls) == [9, 15, 39, 41]
    for path in ("regime_study/plan-cpu-avx512-torch-2-14-1-cu130-model-embed-dim-48-data-train-subset-"
                 "60000.json", "early_regime/plan-nvidia-h200-batched.json"):
        plan = json.loads((RESULTS / path).read_text())
        sd = next(c["pilot_sd"] for c in plan["comparisons"] if c["claim"] == EARLY[0].text)
        n = seeds_needed(sd, 0.002, 15)
        assert f"({100 * sd:.2f} pp, `{path}`" in text
        assert f"needs {n} seeds: {10 * n} runs, {10 * n - 80} past the pilot, 10 processes of " \
               f"{n - 8} seeds" in text, path
