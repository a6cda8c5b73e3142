"""The committed tables grow run by run: collecting again adds new runs and keeps the old ones,
runs on another hardware kind are separate records, a changed record is refused with nothing
written, and no table pairs runs across hardware kinds."""
import json
import shutil
from pathlib import Path

import pytest

from repro.records.provenance import UNKNOWN_ISA
from repro.records.tables import read_csv, write_csv
from repro.report import ledger
from repro.report.collect import collect_dirs
from repro.report.experiments import EXPERIMENTS
from repro.report.ledger import LedgerConflict, merge, one_hardware, read_tables
from tests.conftest import fake_run

ROOT = Path(__file__).resolve().parents[1]

OLD_CPU = UNKNOWN_ISA      # the records written here carry no instruction set


def provenance(folder, device="cpu", hardware="x86_64, 1 threads"):
    (folder / "provenance.json").write_text(json.dumps({
        "commit": "abc", "device": device, "hardware": hardware, "versions": {}, "argv": ["x"]}))
    (folder / "summary.json").write_text(json.dumps({"wall_s_this_launch": 1.5}))


def make(root, name, kind, seed, acc, device="cpu", hardware="x86_64, 1 threads", mode="standard"):
    fake_run(root / name, kind, mode, seed, acc, 0.5)
    provenance(root / name, device, hardware)


def test_collecting_twice_adds_only_new_runs_and_keeps_old_ones(tmp_path):
    src, out = tmp_path / "multirun", tmp_path / "results"
    make(src, "none-0", "none", 0, 0.80)
    ledger.collect("early_regime", src, None, out)
    shutil.rmtree(src)                                   # another day, another machine
    make(src, "none-1", "none", 1, 0.81)
    make(src, "none-1-gpu", "none", 1, 0.82, "cuda:0", "NVIDIA H100")
    fake_run(src / "crashed", "none", "standard", 2, 0.1, 9.0, status="crashed")
    ledger.collect("early_regime", src, None, out)
    runs, curves, entries = read_tables(out)
    assert [(r["run"], r["hardware"], r["test_acc"]) for r in runs] == [
        ("none-0", OLD_CPU, 0.80), ("none-1", OLD_CPU, 0.81), ("none-1-gpu", "NVIDIA H100", 0.82)]
    assert {(c["run"], c["hardware"]) for c in curves} == {(r["run"], r["hardware"]) for r in runs}
    assert len(curves) == 3 * 6
    assert [(e["run"], e["hardware"], e["machine"]) for e in entries] == [
        ("none-0", OLD_CPU, "x86_64, 1 threads"), ("none-1", OLD_CPU, "x86_64, 1 threads"),
        ("none-1-gpu", "NVIDIA H100", "NVIDIA H100")]
    assert all(e["source"].endswith("multirun") and e["wall_s_last_launch"] == 1.5 for e in entries)
    assert [s["run"] for s in read_csv(out / "skipped.csv")] == ["crashed"]


def test_a_run_that_comes_back_different_is_refused_and_nothing_is_written(tmp_path):
    src, out = tmp_path / "multirun", tmp_path / "results"
    make(src, "none-0", "none", 0, 0.80)
    merge(out, *collect_dirs(src), [])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    shutil.rmtree(src)
    make(src, "none-0", "none", 0, 0.79)
    make(src, "none-5", "none", 5, 0.79)
    with pytest.raises(LedgerConflict, match="test_acc=0.8.*gives 0.79"):
        merge(out, *collect_dirs(src), [])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(LedgerConflict, match="never overwritten"):
        ledger.collect("early_regime", src, None, out)


def test_the_same_run_collected_again_is_kept_once(tmp_path):
    src, out = tmp_path / "multirun", tmp_path / "results"
    make(src, "none-0", "none", 0, 0.80)
    assert len(merge(out, *collect_dirs(src), [])) == 1
    assert merge(out, *collect_dirs(src), []) == []
    assert len(read_csv(out / "runs.csv")) == 1 and len(read_csv(out / "curves.csv")) == 6


def test_tables_pair_within_one_hardware_kind(tmp_path):
    src = tmp_path / "multirun"
    for seed, (a, b) in enumerate(((0.80, 0.82), (0.81, 0.82), (0.80, 0.83))):
        make(src, f"none-{seed}", "none", seed, a)
        make(src, f"early-{seed}", "dropout", seed, b, mode="early")
    for seed in range(7):                                   # more GPU runs than CPU runs
        make(src, f"gpu-none-{seed}", "none", seed, 0.5, "cuda:0", "NVIDIA H100")
    runs, curves, _ = collect_dirs(src)
    text = "\n".join(EXPERIMENTS["early_regime"].figures(runs, curves, tmp_path / "out"))
    assert "Hardware: NVIDIA H100" in text and f"Runs on {OLD_CPU}:" in text
    # the CPU pairs alone: +2, +1, +3 pp; the GPU no-dropout runs never enter them
    cpu_table = text.split(f"Runs on {OLD_CPU}:")[1]
    assert "| early dropout | 3 | 82.33 ± 1.43 | 0.5000 ± 0.0000 | 2.00 ± 2.48 |" in cpu_table
    with pytest.raises(ValueError, match="several hardware kinds"):
        one_hardware(runs, "test")
    mixed = [r for r in runs if r["run"] in ("none-0", "gpu-none-1")]
    with pytest.raises(ValueError, match="several hardware kinds"):
        early = [{**r, "drop.mode": "early", "drop.kind": "dropout"} for r in mixed]
        EXPERIMENTS["regime_map"].figures(mixed + early, [], tmp_path / "map")


def test_tables_from_another_machine_merge_like_its_run_folders(tmp_path):
    """A machine whose run folders cannot come back sends its results/NAME: merging it adds the
    runs this copy lacks, keeps this copy's rows and skipped list, and refuses a changed record."""
    src, here, there = tmp_path / "multirun", tmp_path / "here", tmp_path / "there"
    make(src, "none-0", "none", 0, 0.80)
    fake_run(src / "crashed", "none", "standard", 2, 0.1, 9.0, status="crashed")
    ledger.collect("early_regime", src, None, here)
    ledger.collect("early_regime", src, None, there)
    make(src, "none-0-gpu", "none", 0, 0.83, "cuda:0", "NVIDIA H200")
    ledger.collect("early_regime", src, None, there)              # the other machine's new run
    ledger.merge_tables(there, here)
    runs, curves, entries = read_tables(here)
    assert [(r["run"], r["hardware"], r["test_acc"]) for r in runs] == [
        ("none-0", OLD_CPU, 0.80), ("none-0-gpu", "NVIDIA H200", 0.83)]
    assert len(curves) == 2 * 6 and [e["machine"] for e in entries] == ["x86_64, 1 threads", "NVIDIA H200"]
    assert [s["run"] for s in read_csv(here / "skipped.csv")] == ["crashed"]
    before = {p.name: p.read_bytes() for p in here.iterdir()}
    ledger.merge_tables(there, here)                                # again: nothing new
    assert {p.name: p.read_bytes() for p in here.iterdir()} == before
    rows = read_csv(there / "runs.csv")
    rows[0]["test_acc"] = 0.79
    write_csv(rows, there / "runs.csv")
    with pytest.raises(LedgerConflict, match="test_acc=0.8.*gives 0.79"):
        ledger.merge_tables(there, here)
    assert {p.name: p.read_bytes() for p in here.iterdir()} == before
    with pytest.raises(FileNotFoundError, match="takes a results folder"):
        ledger.merge_tables(tmp_path / "nowhere", here)


def test_merging_tables_brings_the_plans_the_other_machine_wrote_and_never_rewrites_one(tmp_path):
    src, here, there = tmp_path / "multirun", tmp_path / "here", tmp_path / "there"
    make(src, "none-0", "none", 0, 0.80)
    ledger.collect("early_regime", src, None, here)
    ledger.collect("early_regime", src, None, there)
    (here / "plan.json").write_text('{"hardware": "cpu"}')
    (there / "plan.json").write_text('{"hardware": "cpu"}')
    (there / "plan-nvidia-h200-batched.json").write_text('{"hardware": "NVIDIA H200 (batched)"}')
    ledger.merge_tables(there, here)                        # a GPU window's plan comes back with it
    assert (here / "plan-nvidia-h200-batched.json").read_text() == '{"hardware": "NVIDIA H200 (batched)"}'
    (there / "plan.json").write_text('{"hardware": "cpu", "seeds": {}}')
    make(src, "none-1", "none", 1, 0.81)
    ledger.collect("early_regime", src, None, there)
    before = {p.name: p.read_bytes() for p in here.iterdir()}
    with pytest.raises(LedgerConflict, match="plan.json differs .* a committed plan is never rewritten"):
        ledger.merge_tables(there, here)
    assert {p.name: p.read_bytes() for p in here.iterdir()} == before        # not even the new run
