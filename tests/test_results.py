"""The collector (complete, crashed, running and tampered runs), tables, figures (byte-stable,
and the committed ones rebuilt from the committed tables), the W&B export and the sweep grid."""
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import matplotlib
import pytest
from omegaconf import OmegaConf

from repro import launch
from repro.figures import FIGURES
from repro.figures.common import mean_ci, paired, verdict
from repro.ledger import gather
from repro.results import collect_dirs, collect_wandb, read_csv, write_csv

ROOT = Path(__file__).resolve().parents[1]


def fake_run(folder: Path, kind: str, mode: str, seed: int, acc: float, loss: float,
             status: str = "complete") -> None:
    """A run directory as run() leaves it, with two evaluations and two analysis events."""
    folder.mkdir(parents=True)
    config = {"name": "early_regime", "seed": seed, "model": {"name": "vit_micro"},
              "data": {"name": "fashion_mnist", "train_subset": None}, "train": {"epochs": 2},
              "drop": {"kind": kind, "mode": mode, "schedule": "constant",
                       "rate": 0.0 if kind == "none" else 0.1, "cutoff_epoch": None,
                       "cutoff_fraction": 0.5}}
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    events = [{"event": "analysis", "step": 0, "grad_norm": 1.0 + seed, "model_distance": 0.0,
               "grad_direction_variance": 0.5, "grad_direction_error": 0.4, "bias": 0.1, "variance": 1.0},
              {"event": "train", "step": 10, "loss": 2.0, "drop_rate": 0.1},
              {"event": "eval", "step": 10, "epoch": 1, "test_acc": acc - 0.1, "train_full_loss": loss + 0.5},
              {"event": "analysis", "step": 10, "grad_norm": 0.5 + seed, "model_distance": 2.0,
               "grad_direction_variance": 0.3, "grad_direction_error": 0.2, "bias": 0.1, "variance": 0.5},
              {"event": "train", "step": 20, "loss": 1.0, "drop_rate": 0.0},
              {"event": "eval", "step": 20, "epoch": 2, "test_acc": acc, "train_full_loss": loss}]
    if status == "crashed":
        events = events[:3]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if status in ("complete", "tampered"):
        digest = hashlib.sha256((folder / "metrics.jsonl").read_bytes()).hexdigest()
        (folder / "COMPLETE").write_text(json.dumps({"metrics_sha256": digest}))
    if status == "tampered":
        with open(folder / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"event": "eval", "step": 30, "test_acc": 1.0}) + "\n")
    if status == "running":
        (folder / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))


ACC = {("none", "standard"): [0.79, 0.80, 0.80], ("dropout", "early"): [0.80, 0.82, 0.81]}
LOSS = {("none", "standard"): [0.60, 0.58, 0.59], ("dropout", "early"): [0.55, 0.54, 0.54]}


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "multirun"
    for (kind, mode), accs in ACC.items():
        for seed, acc in enumerate(accs):
            fake_run(root / f"{kind}-{mode}-{seed}", kind, mode, seed, acc, LOSS[kind, mode][seed])
    fake_run(root / "crashed", "none", "standard", 7, 0.1, 9.0, status="crashed")
    fake_run(root / "live", "none", "standard", 8, 0.1, 9.0, status="running")
    fake_run(root / "edited", "none", "standard", 9, 0.1, 9.0, status="tampered")
    return root


def test_collector_keeps_complete_runs_and_reports_the_rest(runs_root):
    runs, curves, skipped = collect_dirs(runs_root)
    assert len(runs) == 6 and all(r["seed"] in (0, 1, 2) for r in runs)
    assert {(s["run"], s["status"], s["last_step"]) for s in skipped} == {
        ("crashed", "incomplete", 10), ("live", "running", 20), ("edited", "tampered", 30)}
    row = next(r for r in runs if r["run"] == "dropout-early-1")
    assert (row["test_acc"], row["train_full_loss"], row["steps"]) == (0.82, 0.54, 20)
    assert row["drop.mode"] == "early"
    assert len(curves) == 6 * 6


def test_csv_roundtrip(tmp_path):
    rows = [{"a": 1, "b": 0.1 + 0.2, "c": None, "d": "x"}, {"a": 2, "b": 1e-7, "c": 3, "d": "y"}]
    write_csv(rows, tmp_path / "t.csv")
    assert read_csv(tmp_path / "t.csv") == rows


def test_statistics_against_hand_values():
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.303 * 1.0 / 3 ** 0.5)
    d, h, n = paired({0: 0.80, 1: 0.82, 2: 0.81}, {0: 0.79, 1: 0.80, 2: 0.80, 5: 0.5})
    assert n == 3 and d == pytest.approx(0.04 / 3)
    assert h == pytest.approx(4.303 * 0.005773503 / 3 ** 0.5, rel=1e-5)
    assert verdict(d, h, +1).startswith("inconclusive")
    assert verdict(0.05, 0.01, +1) == "reproduced"
    assert verdict(-0.05, 0.01, +1).startswith("not reproduced")
    assert verdict(*paired({0: 0.8}, {1: 0.7})[:2], +1) == "inconclusive (no paired runs)"
    assert verdict(*paired({0: 0.8}, {0: 0.7})[:2], +1) == "inconclusive (one seed)"


def build(runs_root, out, name="early_regime"):
    runs, curves, skipped = collect_dirs(runs_root)
    write_csv(runs, out / "runs.csv")
    write_csv(curves, out / "curves.csv")
    return FIGURES[name](read_csv(out / "runs.csv"), read_csv(out / "curves.csv"), out)


def test_early_regime_table_and_byte_stable_figures(runs_root, tmp_path):
    lines = build(runs_root, tmp_path / "a")
    text = "\n".join(lines)
    assert "| early dropout | 3 | 81.00 ± 2.48 |" in text            # hand: mean 0.81, sd 0.01
    assert "| 1.33 ± 1.43 |" in text                                # paired diff vs none (pp)
    # hand: paired differences -0.05, -0.04, -0.05: mean -0.0467, half-width 4.303 * 0.00577 / sqrt 3
    assert "early dropout lowers the final training loss: train_full_loss difference -0.0467 ± 0.0143" \
        " over 3 seeds: **reproduced**" in text
    build(runs_root, tmp_path / "b")
    for name in ("early_regime.png", "early_regime.pdf", "training_curves.png", "training_curves.pdf"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_ablation_table_groups_by_the_swept_key_against_no_dropout(runs_root, tmp_path):
    lines = build(runs_root, tmp_path / "ablation_rate", "ablation_rate")
    assert lines[2].startswith("| no dropout | 3 | 79.67 ± 1.43 |")
    # hand: paired accuracy differences +1, +2, +1 pp: mean 1.33, half-width 4.303 * 0.577 / sqrt 3
    assert lines[3] == "| 0.1 | 3 | 81.00 ± 2.48 | 0.5433 ± 0.0143 | 1.33 ± 1.43 | " \
        "inconclusive (interval includes 0) |"
    assert (tmp_path / "ablation_rate" / "ablation_rate.png").is_file()


def test_late_regime_compares_late_with_standard_stochastic_depth(tmp_path):
    root = tmp_path / "multirun"
    for (mode, accs) in (("standard", [0.80, 0.81, 0.79]), ("late", [0.82, 0.83, 0.80])):
        for seed, acc in enumerate(accs):
            fake_run(root / f"{mode}-{seed}", "drop_path", mode, seed, acc, 0.1)
    text = "\n".join(build(root, tmp_path / "late", "late_regime"))
    # hand: paired differences +2, +2, +1 pp: mean 1.67, half-width 4.303 * 0.577 / sqrt 3 = 1.43
    assert "late s.d. raises test accuracy over standard s.d.: test_acc difference 1.67 ± 1.43 over " \
        "3 seeds: **reproduced**" in text
    assert "| late s.d. | 3 | 81.67 ± 3.79 |" in text
    assert (tmp_path / "late" / "training_curves.png").is_file()


def test_shared_runs_are_taken_from_the_other_experiment(tmp_path):
    fake_run(tmp_path / "ablation_rate" / "p=0.2", "dropout", "early", 0, 0.70, 0.6)
    for (kind, mode) in (("none", "standard"), ("dropout", "early"), ("dropout", "standard")):
        fake_run(tmp_path / "early_regime" / f"{kind}-{mode}", kind, mode, 0, 0.80, 0.5)
    fake_run(tmp_path / "early_regime" / "crashed", "none", "standard", 1, 0.1, 9.0, status="crashed")
    runs, curves, skipped = gather("ablation_rate", tmp_path / "ablation_rate", None)
    assert sorted(r["run"] for r in runs) == [
        "../early_regime/dropout-early", "../early_regime/none-standard", "p=0.2"]
    assert {c["run"] for c in curves} == {r["run"] for r in runs}
    assert [s["run"] for s in skipped] == ["../early_regime/crashed"]


def test_dynamics_figure_and_claims(runs_root, tmp_path):
    lines = build(runs_root, tmp_path, "dynamics")
    assert (tmp_path / "dynamics.png").is_file()
    assert any("direction variance" in line for line in lines)


COMMITTED = sorted(p.parent for p in (ROOT / "results").glob("*/runs.csv"))


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_tables_regenerate_the_committed_figures(folder, tmp_path):
    built_with = json.loads((folder / "figures.json").read_text())["matplotlib"]
    if built_with != matplotlib.__version__:
        pytest.skip(f"figures were built with matplotlib {built_with}, this is {matplotlib.__version__}")
    for extra in ("plan.json", "batch_axis.csv"):          # committed inputs beside the tables
        if (folder / extra).is_file():
            (tmp_path / extra).write_bytes((folder / extra).read_bytes())
    FIGURES[folder.name](read_csv(folder / "runs.csv"), read_csv(folder / "curves.csv"), tmp_path)
    figures = sorted(p.name for p in folder.glob("*.png")) + sorted(p.name for p in folder.glob("*.pdf"))
    assert figures
    for name in figures:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


class FakeRun:
    def __init__(self, name, state, seed):
        self.name, self.state = name, state
        self.config = {"name": "dynamics", "seed": seed, "drop.kind": "dropout", "drop.mode": "standard",
                       "drop.rate": 0.1}

    def scan_history(self):
        return [{"_step": 10, "train/loss": 1.5, "train/drop_rate": 0.1},
                {"_step": 20, "eval/test_acc": 0.7, "eval/train_full_loss": 0.8},
                {"_step": 20, "analysis/grad_norm": 2.0}]


class FakeApi:
    def runs(self, path, filters):
        assert path == "me/proj" and filters == {"group": "dynamics"}
        return [FakeRun("a", "finished", 0), FakeRun("b", "running", 1)]


def test_wandb_export_gives_the_same_tidy_tables():
    runs, curves, skipped = collect_wandb("me/proj", "dynamics", api=FakeApi())
    assert [(r["run"], r["seed"], r["test_acc"], r["steps"]) for r in runs] == [("a", 0, 0.7, 20)]
    assert [(c["event"], c["step"]) for c in curves] == [("train", 10), ("eval", 20), ("analysis", 20)]
    assert skipped == [{"run": "b", "status": "running", "last_step": 20}]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_grid_directories_and_dry_run(tmp_path, capsys, monkeypatch):
    sweep = load_script("sweep")
    assert sweep.grid("dynamics_mixer", []) == sweep.grid("dynamics", [])     # the grid it builds on
    points = sweep.grid("dynamics", ["train.epochs=1", "model=vit_micro,mixer_micro"])
    assert len(points) == 2 * 3 * 2
    assert points[0] == ["drop.rate=0.0", "model=vit_micro", "seed=0", "train.epochs=1"]
    # A grid key with one value restricts its axis: the same points, the same directories.
    assert sweep.grid("dynamics", ["drop.rate=0.0"]) == [
        ["drop.rate=0.0", f"seed={s}"] for s in range(3)] == sweep.grid("dynamics", [])[:3]
    monkeypatch.setattr(launch, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(launch, "RESULTS", tmp_path / "results")
    done = launch.run_dir("dynamics", points[0])
    done.mkdir(parents=True)
    (done / "COMPLETE").write_text("{}")
    half = launch.run_dir("dynamics", points[1])
    half.mkdir(parents=True)
    (half / "checkpoint.pt").write_bytes(b"")
    monkeypatch.setattr("sys.argv", ["sweep", "dynamics", "--dry-run", "train.epochs=1",
                                     "model=vit_micro,mixer_micro"])
    sweep.main()
    out = capsys.readouterr().out
    assert "[done  ] drop.rate=0.0 model=vit_micro seed=0" in out
    assert "[resume] drop.rate=0.0 model=vit_micro seed=1" in out
    assert "12 runs, 1 finished, 11 to run" in out
    assert not list(tmp_path.glob("multirun/dynamics/*/metrics.jsonl"))      # nothing started


def test_several_experiments_queue_into_one_sweep(capsys, monkeypatch, tmp_path):
    sweep = load_script("sweep")
    monkeypatch.setattr(launch, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(launch, "RESULTS", tmp_path / "results")
    monkeypatch.setattr("sys.argv", ["sweep", "ablation_rate,ablation_cutoff", "--dry-run"])
    sweep.main()
    out = capsys.readouterr().out.splitlines()
    expected = [("ablation_rate", p) for p in sweep.grid("ablation_rate", [])] + \
        [("ablation_cutoff", p) for p in sweep.grid("ablation_cutoff", [])]
    assert out[:-1] == [f"[new   ] {name} {' '.join(p)}" for name, p in expected]
    assert out[-1] == f"{len(expected)} runs, 0 finished, {len(expected)} to run"


def test_regime_map_pairs_early_dropout_with_no_dropout_per_cell(tmp_path):
    root = tmp_path / "multirun"
    for width, size, gain in ((48, 6000, +0.02), (96, 6000, -0.01)):
        for seed in range(3):
            for (kind, mode), acc in ((("none", "standard"), 0.80 + 0.01 * seed),
                                      (("dropout", "early"), 0.80 + 0.01 * seed + gain)):
                folder = root / f"{width}-{size}-{kind}-{seed}"
                fake_run(folder, kind, mode, seed, acc, 0.5)
                config = OmegaConf.load(folder / "config.yaml")
                config.model.embed_dim, config.data.train_subset = width, size
                OmegaConf.save(config, folder / "config.yaml")
    lines = build(root, tmp_path / "map", "regime_map")
    assert "| 48 | 6000 | 3 | 81.00 | 2.00 ± 0.00 | reproduced |" in lines
    assert "| 96 | 6000 | 3 | 81.00 | -1.00 ± 0.00 | not reproduced (opposite effect) |" in lines
    assert (tmp_path / "map" / "regime_map.png").is_file()
