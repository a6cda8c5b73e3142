"""Launching runs: processes pinned to a core or a GPU, each finished run recorded at once, the
planned seeds seed by seed, and the time-boxed queue of every plan's pending runs (estimates from
measured wall times, only what fits is started, SIGTERM at the end of the budget)."""
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from repro import paths
from repro.records.provenance import UNKNOWN_ISA
from repro.records.tables import read_csv
from repro.report import launch
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_parallel_jobs_are_pinned():
    cmd, env = launch.pinned(["python", "x"], 1, gpus=None)
    assert cmd[-2:] == ["threads=1", "device=cpu"]
    assert cmd[:3] == ["taskset", "-c", "1"] or cmd[0] == "python"
    cmd, env = launch.pinned(["python", "x"], 1, gpus=["0", "1"])
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and cmd == ["python", "x"] and env["OMP_NUM_THREADS"] == "1"
    # More jobs than GPUs: round robin.
    assert [launch.pinned(["python"], k, gpus=["2", "5"])[1]["CUDA_VISIBLE_DEVICES"]
            for k in range(4)] == ["2", "5", "2", "5"]


def test_sweep_records_each_run_in_the_tables_as_it_finishes(tmp_path, monkeypatch):
    """Each cleanly finished run is in results/NAME before the sweep ends; a failed one is not."""
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    seen = []

    def command(name, overrides):
        seed = int(overrides[1].split("=")[1])
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.test_ledger import make; "
                "from pathlib import Path; "
                f"make(Path({str(paths.run_dir(name, overrides))!r}).parent, "
                f"{paths.run_dir(name, overrides).name!r}, 'none', {seed}, 0.8); sys.exit({seed})")
        return [sys.executable, "-c", code]

    def record(name):
        launch.record(name)
        seen.append(len(read_csv(tmp_path / "results" / name / "runs.csv")))

    monkeypatch.setattr(launch, "command", command)
    todo = [("early_regime", ["drop=none", f"seed={s}"]) for s in (0, 1)]
    assert launch.launch_parallel(todo, 1, None, record) == 1          # seed 1 exits 1: failed
    assert seen == [1]
    assert [r["run"] for r in read_csv(tmp_path / "results/early_regime/runs.csv")] == ["drop=none,seed=0"]
    assert (tmp_path / "results/early_regime/table.md").is_file()
    # recorded runs count as done on their hardware kind, from any machine
    shutil.rmtree(tmp_path / "multirun")
    done = launch.recorded("early_regime", UNKNOWN_ISA)       # test_ledger.make records no instruction set
    assert launch.status(paths.run_dir(*todo[0]), done) == "done"
    assert launch.status(paths.run_dir(*todo[1]), done) == "new"
    assert launch.recorded("early_regime", "NVIDIA H100") == set()


def test_sweep_plan_runs_the_planned_seeds_seed_by_seed():
    plan = json.loads((ROOT / "results/early_regime/plan.json").read_text())
    points = launch.planned("early_regime")
    assert len(points) == sum(plan["seeds"].values())
    assert points[:2] == [["drop=early_drop_path", "seed=0"], ["drop=drop_path", "seed=0"]]
    seeds = [int(p[1].split("=")[1]) for p in points]
    assert seeds == sorted(seeds)
    assert sum(p[0] == "drop=none" for p in points) == plan["seeds"]["none/standard"]


def test_a_curve_plan_runs_its_grid_points_seed_by_seed():
    """dynamics_decompose's arms are grid points (drop.rate=...), not drop methods."""
    plan = json.loads((ROOT / "results/dynamics_decompose/plan.json").read_text())
    points = launch.planned("dynamics_decompose")
    assert points[:4] == [["drop.rate=0.0", "seed=0"], ["drop.rate=0.1", "seed=0"],
                          ["drop.rate=0.0", "seed=1"], ["drop.rate=0.1", "seed=1"]]
    assert len(points) == 20 == sum(plan["seeds"].values())
    assert paths.run_dir("dynamics_decompose", points[1]).name == "drop.rate=0.1,seed=0"


def sleeper(seconds: float, marker: Path):
    """A command that writes `marker` when it starts, then sleeps; SIGTERM ends it."""
    return [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(marker)!r}).write_text('x'); "
            f"time.sleep({seconds})"]


def test_launcher_starts_only_what_fits_and_stops_the_rest_at_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(launch, "command", lambda name, o: sleeper(float(o[0]), tmp_path / o[1]))
    todo = [("x", ["60", "a"]), ("x", ["0.1", "b"]), ("x", ["0.1", "c"])]
    estimates = {"a": 0.5, "b": 0.5, "c": 50.0}           # a is underestimated; c does not fit
    start = time.monotonic()
    failures = launch.launch_parallel(todo, 2, None, None, start + 3.0, lambda n, o: estimates[o[1]])
    elapsed = time.monotonic() - start
    assert (tmp_path / "a").is_file() and (tmp_path / "b").is_file() and not (tmp_path / "c").exists()
    assert 3.0 <= elapsed < 20                            # a was stopped at the deadline, not after 60 s
    assert failures == 1                                  # a ended by SIGTERM (a real run checkpoints)


def test_queue_schedule_matches_a_hand_computed_greedy_assignment():
    queue = load_script("plan_queue")
    todo = [("e", ["drop=none", f"seed={s}"]) for s in range(5)]
    times = [100, 300, 100, 100, 50]
    fits = queue.schedule(todo, lambda n, o: times[int(o[1][5:])], 2, 350)
    # slot 0: 0-100, then seed 2 at 100-200, seed 3 at 200-300, seed 4 at 300-350; slot 1: seed 1 0-300
    assert [(o[1], start, end) for _, o, start, end in fits] == [
        ("seed=0", 0, 100), ("seed=1", 0, 300), ("seed=2", 100, 200), ("seed=3", 200, 300),
        ("seed=4", 300, 350)]
    assert len(queue.schedule(todo, lambda n, o: 400.0, 2, 350)) == 0


def test_queue_estimates_from_measured_wall_times_on_this_hardware(tmp_path, monkeypatch):
    queue = load_script("plan_queue")
    monkeypatch.setattr(paths, "RESULTS", tmp_path)
    (tmp_path / "e").mkdir()
    runs = [("drop=none,seed=0", "cpu", 100.0), ("drop=none,seed=1", "cpu", 120.0),
            ("drop=none,seed=2", "cpu", 110.0), ("drop=dropout,seed=0", "cpu", 400.0),
            ("drop=none,seed=0", "NVIDIA H100", 10.0)]
    (tmp_path / "e" / "collection.json").write_text(json.dumps(
        {"runs": [{"run": r, "hardware": h, "wall_s_last_launch": w} for r, h, w in runs]}))
    cpu = queue.estimator(["e"], "cpu", 999.0)
    assert cpu("e", ["drop=none", "seed=5"]) == 110.0                 # the method's median
    assert cpu("e", ["drop=early_dropout", "seed=5"]) == 115.0        # the experiment's median
    assert queue.estimator(["e"], "NVIDIA H200", 999.0)("e", ["drop=none", "seed=5"]) == 999.0


def test_queue_dry_run_lists_the_pending_plan(capsys, monkeypatch, tmp_path):
    queue = load_script("plan_queue")
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(launch, "hardware_here", lambda gpus, batched=False: UNKNOWN_ISA)
    plan = json.loads((paths.RESULTS / "early_regime" / "plan.json").read_text())
    done = launch.recorded("early_regime", UNKNOWN_ISA)
    monkeypatch.setattr("sys.argv", ["plan_queue", "--budget", "3600", "--jobs", "2",
                                     "--only", "early_regime", "--dry-run"])
    queue.main()
    out = capsys.readouterr().out.splitlines()
    pending = sum(plan["seeds"].values()) - len(done)
    assert out[-1].startswith(f"{pending} pending runs on {UNKNOWN_ISA} in early_regime; ")
    listed = [line for line in out[:-1]]
    assert listed and all(line.startswith("early_regime drop=") for line in listed)
    assert not any(f"drop={d} seed={s}:" in line for line in listed for d, s in
                   [(r.split(",")[0][5:], r.split(",")[1][5:]) for r in done])
    assert not list(tmp_path.glob("multirun/*"))                     # nothing started


def test_the_queues_deadline_is_its_budget_from_its_start(monkeypatch, tmp_path):
    """On a machine up for hours (time.monotonic() large), the deadline is start + budget, not the
    printed schedule's last start + budget (a shadowed name once stopped a queue at once)."""
    queue = load_script("plan_queue")
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(launch, "hardware_here", lambda gpus, batched=False: UNKNOWN_ISA)
    monkeypatch.setattr(queue.drift, "check_or_exit", lambda kind, device: None)
    monkeypatch.setattr(queue.time, "monotonic", lambda: 50_000.0)
    seen = {}

    def launched(todo, jobs, gpus, on_done, deadline, estimate):
        seen["deadline"] = deadline
        return 0
    monkeypatch.setattr(launch, "launch_parallel", launched)
    monkeypatch.setattr("sys.argv", ["plan_queue", "--budget", "3600", "--jobs", "2",
                                     "--only", "early_regime"])
    with pytest.raises(SystemExit):
        queue.main()
    assert seen["deadline"] == 50_000.0 + 3600


def test_queue_batches_seeds_of_one_method_into_one_process():
    todo = [("e", [f"drop={d}", f"seed={s}"]) for s in (3, 4, 5) for d in ("none", "early_dropout")]
    jobs = launch.batched(todo, 2)
    assert jobs == [("e", ["drop=none", "seeds=3,4"]), ("e", ["drop=early_dropout", "seeds=3,4"]),
                    ("e", ["drop=none", "seeds=5"]), ("e", ["drop=early_dropout", "seeds=5"])]
    cmd = launch.command(*jobs[0])
    assert cmd[1:] == ["-m", "repro.train_batched", "experiment=e", "drop=none", "seeds=3,4"]
    assert launch.command("e", ["drop=none", "seed=3"])[2] == "repro.train"


def test_queue_runs_only_plans_of_this_hardware_kind(capsys, monkeypatch):
    queue = load_script("plan_queue")
    # early_regime_long's plans are withdrawn
    assert queue.plans(None, UNKNOWN_ISA) == ["dynamics_decompose", "early_regime"]
    assert queue.plans(None, UNKNOWN_ISA + " (batched)") == []
    monkeypatch.setattr("sys.argv", ["plan_queue", "--budget", "60", "--batched", "4", "--dry-run"])
    queue.main()
    assert f"no committed plan governs '{launch.hardware_here(None, True)}'" in capsys.readouterr().out
