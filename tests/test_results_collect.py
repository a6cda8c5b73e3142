"""Collecting runs into tidy tables: complete, crashed, running and tampered run folders, the CSV
round trip, runs shared with another experiment, and the W&B export."""
from conftest import fake_run

from repro.records.tables import read_csv, write_csv
from repro.report.collect import collect_dirs, collect_wandb
from repro.report.experiments import EXPERIMENTS
from repro.report.ledger import gather


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


def test_shared_runs_are_taken_from_the_other_experiment(tmp_path):
    fake_run(tmp_path / "ablation_rate" / "p=0.2", "dropout", "early", 0, 0.70, 0.6)
    for (kind, mode) in (("none", "standard"), ("dropout", "early"), ("dropout", "standard")):
        fake_run(tmp_path / "early_regime" / f"{kind}-{mode}", kind, mode, 0, 0.80, 0.5)
    fake_run(tmp_path / "early_regime" / "crashed", "none", "standard", 1, 0.1, 9.0, status="crashed")
    runs, curves, skipped = gather("ablation_rate", tmp_path / "ablation_rate", None,
                                   EXPERIMENTS["ablation_rate"].shared)
    assert sorted(r["run"] for r in runs) == [
        "../early_regime/dropout-early", "../early_regime/none-standard", "p=0.2"]
    assert {c["run"] for c in curves} == {r["run"] for r in runs}
    assert [s["run"] for s in skipped] == ["../early_regime/crashed"]


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
