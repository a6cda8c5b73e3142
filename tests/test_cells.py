"""Claims scoped to a cell (experiment regime_study): the regime rule at its boundaries, a plan per
cell whose claims follow from the cell's measured regime, the queue's grid points per cell, the
per-cell table, glance rows and cost table, against hand-computed values."""
import json

import pytest

from repro import paths
from repro import plan as plan_cli
from repro.records.tables import write_csv
from repro.report import launch, plan
from repro.report.claims import CELL_CLAIMS, cell_regime
from repro.report.experiments import EXPERIMENTS
from repro.report.figures import cells
from repro.report.plan import make_plan, plan_name, read_plan, read_plans

STUDY = EXPERIMENTS["regime_study"]

KIND = "cpu AVX512 torch 2.14.1+cu130"
OVER, UNDER = (48, 1000), (48, 60000)
ARMS = {"none": ("none", "standard"), "dropout": ("dropout", "standard"),
        "drop_path": ("drop_path", "standard"),
        "early_dropout": ("dropout", "early"), "early_drop_path": ("drop_path", "early"),
        "late_dropout": ("dropout", "late"), "late_drop_path": ("drop_path", "late")}


@pytest.mark.parametrize("gap,half,regime", [
    (0.020, 0.0099, "underfitting"), (0.020, 0.0101, "between"), (0.0, 0.0, "underfitting"),
    (0.120, 0.0199, "overfitting"), (0.120, 0.0201, "between"), (0.25, 0.02, "overfitting"),
    (0.06, 0.01, "between")])
def test_the_regime_of_a_cell_by_its_gap_interval(gap, half, regime):
    assert cell_regime(gap, half) == regime


def row(cell, arm, seed, test, train):
    kind, mode = ARMS[arm]
    return {"run": f"data.train_subset={cell[1]},drop={arm},model.embed_dim={cell[0]},seed={seed}",
            "seed": seed, "model.embed_dim": cell[0], "data.train_subset": cell[1], "drop.kind": kind,
            "drop.mode": mode, "test_acc": test, "train_full_acc": train, "train_full_loss": 1 - train,
            "hardware": KIND}


def pilot():
    """Overfitting cell: no dropout trains to 100% and tests 74-76% (gap 25 ± 2.48 pp); each arm
    adds its own constant, so the paired differences are exact. Underfitting: gap 1 pp exactly."""
    rows = []
    for seed, base in enumerate((0.74, 0.75, 0.76)):
        for arm, gain in (("none", 0), ("dropout", 0.02), ("drop_path", 0.01), ("early_dropout", 0.0),
                          ("early_drop_path", -0.01), ("late_dropout", 0.025 + 0.001 * seed),
                          ("late_drop_path", 0.01 + 0.002 * seed)):
            rows.append(row(OVER, arm, seed, base + gain, 1.0))
        for arm, gain in (("none", 0), ("dropout", -0.02), ("drop_path", -0.01),
                          ("early_dropout", 0.001 * seed), ("early_drop_path", 0.0)):
            rows.append(row(UNDER, arm, seed, 0.85 + gain - 0.01 * seed, 0.86 + gain - 0.01 * seed))
    return rows


def test_a_plan_per_cell_claims_what_the_cells_regime_calls_for(tmp_path):
    runs = pilot()
    over = make_plan(STUDY, runs, KIND, 8, cell={"model.embed_dim": 48, "data.train_subset": 1000})
    under = make_plan(STUDY, runs, KIND, 8, cell={"model.embed_dim": 48, "data.train_subset": 60000})
    assert over["regime"] == "overfitting" and over["gap"] == pytest.approx(0.25)
    assert over["gap_half_width"] == pytest.approx(4.303 * 0.01 / 3 ** 0.5) and over["gap_seeds"] == 3
    assert [c["claim"] for c in over["comparisons"]] == [c.text for c in CELL_CLAIMS["overfitting"]]
    assert under["regime"] == "underfitting" and under["gap"] == pytest.approx(0.01)
    assert [c["claim"] for c in under["comparisons"]] == [c.text for c in CELL_CLAIMS["underfitting"]]
    late = next(c for c in over["comparisons"] if c["claim"].startswith("late dropout"))
    assert (late["method"], late["baseline"]) == ("dropout/late", "dropout/standard")
    assert late["pilot_sd"] == pytest.approx(0.001) and "borrowed" in late["source"]
    assert over["seeds"]["dropout/late"] >= 8 and "none/standard" in over["seeds"]
    with pytest.raises(ValueError, match="plans cell by cell"):
        make_plan(STUDY, runs, KIND, 8)
    with pytest.raises(ValueError, match="no pilot runs .* in cell"):
        make_plan(STUDY, runs, KIND, 8, cell={"model.embed_dim": 96, "data.train_subset": 1000})
    assert plan_name(KIND, {"model.embed_dim": 48, "data.train_subset": 1000}) == \
        "plan-cpu-avx512-torch-2-14-1-cu130-model-embed-dim-48-data-train-subset-1000.json"


def write_plans(results, runs):
    folder = results / "regime_study"
    folder.mkdir(parents=True)
    write_csv(runs, folder / "runs.csv")
    for cell in (OVER, UNDER):
        scope = {"model.embed_dim": cell[0], "data.train_subset": cell[1]}
        p = make_plan(STUDY, runs, KIND, 3, cell=scope)
        for c in p["comparisons"]:                  # the late dropout claim plans 3 seeds, the others 2
            c["seeds"] = 3 if c["method"] == "dropout/late" else 2
        p["seeds"] = {m: max(c["seeds"] for c in p["comparisons"] if m in (c["method"], c["baseline"]))
                      for m in p["seeds"]}
        (folder / plan_name(KIND, scope)).write_text(json.dumps(p))
    return folder


def test_the_plan_cli_writes_one_file_per_cell_and_refuses_a_rewrite(tmp_path, monkeypatch, capsys):
    """Seeds 3-7 repeat seed 0's runs: an 8-seed pilot, the least a plan is written from."""
    folder = tmp_path / "results" / "regime_study"
    folder.mkdir(parents=True)
    runs = pilot()
    more = [{**r, "seed": s, "run": r["run"].replace("seed=0", f"seed={s}")}
            for r in runs if r["seed"] == 0 for s in range(3, 8)]
    write_csv(runs + [r for r in more if r["drop.kind"] == "none" or r["seed"] < 7], folder / "runs.csv")
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")

    def main(*args):
        monkeypatch.setattr("sys.argv", ["plan", "regime_study", "--hardware", KIND, *args, "--write"])
        plan_cli.main()
    with pytest.raises(SystemExit) as refused:                  # seed 7 of no dropout alone: 7 pairs
        main("--cell", "model.embed_dim=48,data.train_subset=1000")
    assert refused.value.code == 2 and "the pilot has 7 paired seeds for 'early dropout raises test " \
        "accuracy'; a plan needs 8" in capsys.readouterr().err and not list(folder.glob("plan*"))
    write_csv(runs + more, folder / "runs.csv")
    main("--cell", "model.embed_dim=48,data.train_subset=1000")
    main("--cell", "model.embed_dim=48,data.train_subset=60000")
    assert not (folder / "plan.json").exists()
    under = read_plan(folder, KIND, {"model.embed_dim": 48, "data.train_subset": 60000})
    assert under["regime"] == "underfitting"
    for args, message in ((("--cell", "model.embed_dim=48,data.train_subset=1000"), "already plans"),
                          ((), "plans cell by cell"), (("--cell", "model.embed_dim"), "key=value")):
        with pytest.raises(SystemExit) as refused:
            main(*args)
        assert refused.value.code == 2 and message in capsys.readouterr().err


def test_the_queue_runs_every_cells_plan_seed_by_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS", tmp_path)
    write_plans(tmp_path, pilot())
    points = launch.planned("regime_study", KIND)
    over = [p for p in points if "data.train_subset=1000" in p]
    assert len(over) == 2 * 7 + 2 and len(points) - len(over) == 2 * 5     # seed 2: the late pair only
    assert points[10:] == over                          # the cheaper cell's plan (10 runs) first
    assert {p[-1] for p in over[:7]} == {"seed=0"} and len({p[1] for p in over[:7]}) == 7
    assert [p[1:] for p in over[-2:]] == [["drop=late_dropout", "model.embed_dim=48", "seed=2"],
                                          ["drop=dropout", "model.embed_dim=48", "seed=2"]]
    assert over[0][0] == "data.train_subset=1000" and over[0] == sorted(over[0])
    assert paths.run_dir("regime_study", over[0]).name == ",".join(over[0])   # the sweep's folder


def test_the_tables_judge_each_cell_by_its_own_plan(tmp_path):
    runs = pilot()
    folder = write_plans(tmp_path, runs)
    (folder / "collection.json").write_text(json.dumps({"runs": [
        {"run": r["run"], "hardware": KIND, "wall_s_last_launch": 100.0 + 10 * r["seed"]} for r in runs]}))
    text = "\n".join(STUDY.figures(runs, [], folder))
    over, under = text.split("## model.embed_dim=48, data.train_subset=60000")
    assert "No-dropout train - test gap: 25.00 ± 2.48 pp over 3 seeds: overfitting" in over
    # late dropout - standard dropout: +0.5, +0.6, +0.7 pp, planned 3 seeds: 0.60 ± 0.25, reproduced
    late = next(line for line in over.splitlines() if line.startswith("| late dropout raises test accuracy"))
    assert "0.60 ± 0.25" in late and "**reproduced**" in late
    early = next(ln for ln in over.splitlines() if ln.startswith("| early dropout raises test accuracy"))
    assert "0.40" in early and "2" in early.split("|")[4]          # the paper's margin, 2 seeds planned
    assert "standard dropout hurts an underfitting model" in under
    assert "late dropout raises" not in under
    rows = STUDY.glance(runs, [], folder)
    assert [r["claim"] for r in rows if r["verdict"] == "reproduced"][0] == \
        "standard dropout raises test accuracy of an overfitting model [48 x 1000, overfitting]"
    cost = (folder / "cost.md").read_text()
    assert f"| {KIND} | 48 x 1000 | none | 3 | 110 |" in cost
    over_plan = read_plan(folder, KIND, {"model.embed_dim": 48, "data.train_subset": 1000})
    runs_planned = sum(over_plan["seeds"].values())
    assert f"| overfitting | {runs_planned} | 110 | {runs_planned * 110 / 3600:.1f} |" in cost
    assert (folder / "regime_study.png").is_file()


def test_a_gpu_window_mirrors_every_cells_plan_from_the_same_pilot(tmp_path, monkeypatch, capsys):
    runs = pilot()
    folder = write_plans(tmp_path / "results", runs)
    later = runs + [{**r, "seed": 3, "run": r["run"].replace("seed=0", "seed=3"),
                     "test_acc": r["test_acc"] + 0.05} for r in runs if r["seed"] == 0]   # not the pilot's
    write_csv(later, folder / "runs.csv")
    gpu = "NVIDIA H200 torch 2.11.0+cu130 (batched)"
    made = dict(plan.mirror(STUDY, folder, KIND, gpu))
    assert len(made) == 2
    for cell in (OVER, UNDER):
        scope = {"model.embed_dim": cell[0], "data.train_subset": cell[1]}
        own = read_plan(folder, KIND, scope)
        mirrored = made[plan_name(gpu, scope)]
        assert mirrored == make_plan(STUDY, runs, gpu, own["min_seeds"], KIND, scope)
        assert mirrored["pilot_hardware"] == KIND and mirrored["regime"] == own["regime"]
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    monkeypatch.setattr("sys.argv", ["plan", "regime_study", "--mirror", KIND, "--hardware", gpu, "--write"])
    plan_cli.main()
    assert len(read_plans(folder)) == 4 and plan.mirror(STUDY, folder, KIND, gpu) == []


def test_where_sorts_each_cells_claims_by_what_their_verdicts_say(tmp_path):
    assert cells.said_by("reproduced", cells.HOLDS) and cells.said_by("opposite", cells.FAILS)
    assert cells.said_by("no effect as large as our margin", cells.FAILS)
    assert cells.said_by("underpowered (2 of 3 planned seeds)", ()) and not cells.said_by("reproduced", ())
    assert cells.said_by("inconclusive at the planned seeds", ())
    runs = pilot()
    folder = write_plans(tmp_path, runs)
    over, under = "\n".join(cells.where(runs, folder)).split("\n\n")
    assert over.startswith("**Width 48, 1000 images (overfitting: no-dropout gap 25.00 ± 2.48 pp, 3 seeds)")
    holds = next(line for line in over.splitlines() if line.startswith("- Holds: "))
    assert "late dropout raises test accuracy over standard dropout (0.60 ± 0.25 pp; 3 of 3 planned seeds: " \
           "reproduced)" in holds
    assert under.startswith("**Width 48, 60000 images (underfitting") and "late dropout" not in under


def test_a_cell_with_only_its_no_dropout_runs_shows_its_gap_and_claims_nothing_yet(tmp_path):
    """A cell in between, its no-dropout runs in first (they decide the regime): the table gives the
    gap (exactly 8 pp: between) and its claims with no number; the glance and the README's summary
    list no verdict for it, only what has not run."""
    runs = pilot()
    folder = write_plans(tmp_path, runs)
    between = [row((48, 10000), "none", seed, 0.80 + 0.01 * seed, 0.88 + 0.01 * seed) for seed in range(3)]
    text = "\n".join(STUDY.figures(runs + between, [], folder))
    cell = text.split("## model.embed_dim=48, data.train_subset=10000")[1].split("## ")[0]
    assert "No-dropout train - test gap: 8.00 ± 0.00 pp over 3 seeds: between (no plan yet)" in cell
    assert "| early dropout raises test accuracy | - | 0, unplanned |" in cell and "nan" not in cell
    assert not [r for r in STUDY.glance(runs + between, [], folder) if "10000" in r["claim"]]
    summary = "\n".join(cells.where(runs + between, folder))
    summary = summary.split("**Width 48, 10000 images")[1].split("\n\n")[0]
    assert summary.startswith(" (between: no-dropout gap 8.00 ± 0.00 pp, 3 seeds)")
    assert summary.splitlines()[1:] == ["- Not run yet (no paired runs): early dropout raises test accuracy; "
                                        "early s.d. raises test accuracy."]       # one period, no empty lists


def test_the_map_writes_each_cells_effect_or_why_it_has_none(tmp_path):
    """A claimed family: the test-accuracy claim's effect and verdict at its planned seeds (not the
    training-loss claim's verdict, which shares its arms); an unclaimed one: not claimed; a cell with
    no pairs: no paired runs yet. Without plans: every seed, marked unplanned."""
    runs = pilot() + [row((48, 10000), "none", seed, 0.80, 0.88) for seed in range(3)]
    folder = write_plans(tmp_path, runs)
    effects, texts = cells.map_cells(cells.cells_on(runs, KIND, folder), KIND)
    late = (("dropout", "late"), ("dropout", "standard"))
    assert effects[late, OVER] == pytest.approx(0.6)          # +0.5, +0.6, +0.7 pp
    assert texts[late, OVER] == "0.60 ± 0.25 pp, 3 of 3 planned seeds\nreproduced\noverfitting, gap 25.0 pp"
    early_sd = (("drop_path", "early"), ("none", "standard"))
    assert texts[early_sd, UNDER] == "0.00 ± 0.00 pp, 2 of 2 planned seeds\nno effect as large as the " \
                                     "paper's\nunderfitting, gap 1.0 pp"     # not the loss claim's
    assert texts[late, UNDER] == "not claimed in this regime\nunderfitting, gap 1.0 pp"
    early = (("dropout", "early"), ("none", "standard"))
    assert texts[early, (48, 10000)] == "no paired runs yet\nbetween, gap 8.0 pp"
    assert (early, (48, 10000)) not in effects and (late, UNDER) not in effects
    _, unplanned = cells.map_cells(cells.cells_on(runs, KIND, tmp_path / "none"), KIND)
    assert unplanned[late, OVER].startswith("0.60 ± 0.25 pp, 3 seeds, unplanned\nreproduced")


def test_cell_all_plans_every_cell_whose_pilot_is_in_and_names_the_others(tmp_path, monkeypatch, capsys):
    """A GPU window's one plan command: the cells without a plan on the kind get one when their pilot
    has 8 paired seeds; a cell with its no-dropout runs alone (no early arm yet) is named and left."""
    folder = tmp_path / "results" / "regime_study"
    folder.mkdir(parents=True)
    runs = pilot()
    runs += [{**r, "seed": s, "run": r["run"].replace("seed=0", f"seed={s}")}
             for r in runs if r["seed"] == 0 for s in range(3, 8)]
    runs += [row((48, 10000), "none", seed, 0.80, 0.88) for seed in range(8)]
    write_csv(runs, folder / "runs.csv")
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    monkeypatch.setattr("sys.argv", ["plan", "regime_study", "--hardware", KIND, "--cell", "all", "--write"])
    plan_cli.main()
    assert [p["cell"]["data.train_subset"] for p in read_plans(folder)] == [1000, 60000]
    err = capsys.readouterr().err
    assert "cell {'model.embed_dim': 48, 'data.train_subset': 10000}: no plan: the pilot has 0 paired " \
           "seeds for 'early dropout raises test accuracy'" in err
    before = {p.name: p.read_bytes() for p in folder.glob("plan*.json")}
    plan_cli.main()                                              # again: the short cell alone
    assert {p.name: p.read_bytes() for p in folder.glob("plan*.json")} == before
    assert capsys.readouterr().err.count("no plan: the pilot has 0 paired seeds") == 1
    monkeypatch.setattr("sys.argv", ["plan", "regime_study", "--hardware", "tpu", "--cell", "all", "--write"])
    plan_cli.main()                                              # a kind with no runs of its own
    assert "no cell that runs on 'tpu' span lacks a plan on 'tpu'" in capsys.readouterr().err
    monkeypatch.setattr("sys.argv", ["plan", "regime_critic", "--hardware", KIND, "--cell", "all"])
    (tmp_path / "results" / "regime_critic").mkdir()
    write_csv(runs, tmp_path / "results" / "regime_critic" / "runs.csv")
    with pytest.raises(SystemExit) as refused:
        plan_cli.main()
    assert refused.value.code == 2 and "--cell all is for experiments of cells" in capsys.readouterr().err
