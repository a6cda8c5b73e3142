"""Each hardware kind has a plan of its own (plan.json, plan-<kind>.json): written from its own
pilot or another kind's, never rewritten, read by the queue for its kind only, and judged in the
tables and the summary beside the other kinds' plans, never pooled with them."""
import json
import random

import pytest

from repro import paths
from repro import plan as plan_cli
from repro.errors import ConfigError
from repro.records.tables import write_csv
from repro.report import launch, plan
from repro.report.collect import collect_dirs
from repro.report.experiments import EXPERIMENTS
from repro.report.plan import make_plan, plan_name, read_plan, read_plans
from tests.conftest import load_script
from tests.test_ledger import OLD_CPU, make

METHODS = [("none", "standard"), ("dropout", "early"), ("drop_path", "early"), ("dropout", "standard"),
           ("drop_path", "standard")]


def pilot(hardware="cpu", seeds=4):
    rng = random.Random(0)
    return [{"seed": s, "drop.kind": k, "drop.mode": m, "test_acc": 0.8 + rng.gauss(0, 0.01),
             "train_full_loss": 0.5 + rng.gauss(0, 0.01), "hardware": hardware}
            for s in range(seeds) for k, m in METHODS]


def test_plan_file_names_follow_the_kind():
    assert plan_name("NVIDIA H200 (batched)") == "plan-nvidia-h200-batched.json"
    assert plan_name("cpu (batched)") == "plan-cpu-batched.json"


def test_a_kind_without_a_pilot_is_planned_from_another_kinds_pilot():
    runs = pilot("cpu")
    own = make_plan(EXPERIMENTS["early_regime"], runs, "cpu", 15)
    borrowed = make_plan(EXPERIMENTS["early_regime"], runs, "NVIDIA H200", 15, pilot_hardware="cpu")
    assert borrowed["pilot_hardware"] == "cpu" and "pilot_hardware" not in own
    assert borrowed["comparisons"] == own["comparisons"] and borrowed["seeds"] == own["seeds"]
    assert borrowed["hardware"] == "NVIDIA H200"
    with pytest.raises(ValueError, match="no pilot runs on hardware 'tpu'"):
        make_plan(EXPERIMENTS["early_regime"], runs, "NVIDIA H200", 15, pilot_hardware="tpu")


def test_writing_plans_for_two_kinds_and_refusing_a_rewrite(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "results" / "early_regime"
    folder.mkdir(parents=True)
    here = launch.hardware_here(None)              # --hardware's default: this machine's CPU kind
    write_csv(pilot(here, seeds=8), folder / "runs.csv")           # the least a plan is written from
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")

    def main(*args):
        monkeypatch.setattr("sys.argv", ["plan", "early_regime", *args, "--write"])
        plan_cli.main()
    main()
    main("--hardware", "NVIDIA H200 (batched)", "--pilot-hardware", here)
    assert sorted(p.name for p in folder.glob("plan*.json")) == ["plan-nvidia-h200-batched.json", "plan.json"]
    assert read_plan(folder)["hardware"] == here and read_plan(folder)["file"] == "plan.json"
    gpu = read_plan(folder, "NVIDIA H200 (batched)")
    assert gpu["file"] == "plan-nvidia-h200-batched.json" and gpu["pilot_hardware"] == here
    assert read_plan(folder, "NVIDIA H100") is None
    assert [p["hardware"] for p in read_plans(folder)] == [here, "NVIDIA H200 (batched)"]
    before = (folder / "plan-nvidia-h200-batched.json").read_bytes()
    with pytest.raises(SystemExit) as refused:
        main("--hardware", "NVIDIA H200 (batched)", "--pilot-hardware", here, "--min-seeds", "30")
    assert refused.value.code == 2
    assert "plan-nvidia-h200-batched.json already plans" in capsys.readouterr().err
    assert (folder / "plan-nvidia-h200-batched.json").read_bytes() == before
    with pytest.raises(SystemExit) as refused:
        main()
    assert refused.value.code == 2 and f"plan.json already plans '{here}'" in capsys.readouterr().err


def two_plans(results, cpu_seeds=2, gpu_seeds=3, cpu="cpu"):
    folder = results / "early_regime"
    folder.mkdir(parents=True)
    for name, kind, n in (("plan.json", cpu, cpu_seeds), ("plan-gpu.json", "gpu", gpu_seeds)):
        claim = EXPERIMENTS["early_regime"].claims[0]
        (folder / name).write_text(json.dumps({
            "experiment": "early_regime", "hardware": kind,
            "comparisons": [{"claim": claim.text, "metric": claim.metric, "margin": claim.margin,
                             "seeds": n}],
            "seeds": {"dropout/early": n, "none/standard": n}}))
    return folder


def test_the_queue_runs_the_plan_of_its_own_kind(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS", tmp_path)
    two_plans(tmp_path, cpu_seeds=2, gpu_seeds=3)
    assert launch.planned("early_regime", "gpu") == [
        [f"drop={d}", f"seed={s}"] for s in range(3) for d in ("early_dropout", "none")]
    assert launch.planned("early_regime") == launch.planned("early_regime", "cpu")
    assert len(launch.planned("early_regime", "cpu")) == 4
    with pytest.raises(FileNotFoundError, match="no plan for 'tpu'"):
        launch.planned("early_regime", "tpu")
    queue = load_script("plan_queue")
    assert queue.plans(None, "gpu") == queue.plans(None, "cpu") == ["early_regime"]
    assert queue.plans(None, "tpu") == []
    with pytest.raises(ConfigError, match=r"early_regime \(cpu, gpu\).*--pilot-hardware"):
        queue.plans("early_regime", "tpu")


def test_each_kind_is_judged_by_its_own_plan_in_the_table_and_the_summary(tmp_path):
    """cpu: +2, +1, +3 pp over 3 seeds (2.00 ± 2.48), 2 planned; gpu: +1 pp on each of 4 seeds
    (1.00 ± 0.00), 3 planned. Each verdict reads its own plan and its own kind's pairs."""
    src = tmp_path / "multirun"
    for seed, (a, b) in enumerate(((0.80, 0.82), (0.81, 0.82), (0.80, 0.83))):
        make(src, f"none-{seed}", "none", seed, a)
        make(src, f"early-{seed}", "dropout", seed, b, mode="early")
    for seed in range(4):
        make(src, f"gpu-none-{seed}", "none", seed, 0.80, "cuda:0", "gpu")
        make(src, f"gpu-early-{seed}", "dropout", seed, 0.81, "cuda:0", "gpu", mode="early")
    out = two_plans(tmp_path / "results", cpu_seeds=2, gpu_seeds=3, cpu=OLD_CPU)
    runs, curves, _ = collect_dirs(src)
    text = "\n".join(EXPERIMENTS["early_regime"].figures(runs, curves, out))
    cpu, gpu = text.split("Runs on gpu:")
    assert f"Pre-registered verdicts (plan.json, hardware {OLD_CPU};" in cpu
    assert ("| early dropout raises test accuracy | test_acc | 0.40 (the paper's) | 2 of 2 planned | "
            "1.50 ± 6.35 pp | **inconclusive at the planned seeds (interval wider than planned)** | "
            "1 more: 3.00 pp |") in cpu
    assert "Pre-registered verdicts (plan-gpu.json, hardware gpu;" in gpu
    # +1 pp on every seed: the interval excludes the paper's +0.4 on the far side
    assert ("| early dropout raises test accuracy | test_acc | 0.40 (the paper's) | 3 of 3 planned | "
            "1.00 ± 0.00 pp | **larger than the paper's** | 1 more: 1.00 pp |") in gpu
    rows = EXPERIMENTS["early_regime"].glance(runs, curves, out)
    claim = EXPERIMENTS["early_regime"].claims[0].text
    first = [(r["hardware"], r["seeds"], r["verdict"]) for r in rows if r["claim"] == claim]
    wide = "inconclusive at the planned seeds (interval wider than planned)"
    assert first == [(OLD_CPU, "2 of 2 planned", wide),
                     ("gpu", "3 of 3 planned", "larger than the paper's")]


def test_a_plan_pending_its_pilot_is_written_once_and_never_taken_for_a_plan(tmp_path, monkeypatch, capsys):
    """dynamics_batch's claim carries our margin, so a pilot sizes its plan: with fewer than 8 paired
    pilot seeds --write commits the claim, margin and rule as a plan pending its pilot, which no
    queue, sweep or table takes for a plan and which is not rewritten; a kind's 8 pilot seeds then
    give that kind's plan beside it."""
    from tests.test_stats import trajectory_rows
    folder = tmp_path / "results" / "dynamics_batch"
    folder.mkdir(parents=True)
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")

    def main(*args):
        monkeypatch.setattr("sys.argv", ["plan", "dynamics_batch", "--hardware", "gpu", *args, "--write"])
        plan_cli.main()
    write_csv(trajectory_rows({s: -0.05 for s in range(3)}), folder / "curves.csv")
    main()
    pending = (folder / "plan.json").read_text()
    assert json.loads(pending) == plan.pending_plan(EXPERIMENTS["dynamics_batch"])
    assert json.loads(pending)["status"] == "pilot pending" and json.loads(pending)["seeds"] == {}
    assert read_plans(folder) == [] and read_plan(folder) is None
    assert len(read_plans(folder, pending=True)) == 1
    with pytest.raises(SystemExit) as refused:
        main()
    assert refused.value.code == 2 and "plan.json is pending its pilot" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main("--pilot-hardware", "cpu")
    assert "own kind's pilot" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="pending its pilot: seeds 0-7"):
        launch.planned("dynamics_batch", "gpu")
    queue = load_script("plan_queue")
    with pytest.raises(ConfigError, match="pending its pilot"):
        queue.plans("dynamics_batch", "gpu")
    assert queue.plans(None, "gpu") == []

    write_csv(trajectory_rows({s: -0.05 + 0.01 * (s % 2) for s in range(8)}), folder / "curves.csv")
    main()
    assert (folder / "plan.json").read_text() == pending
    own = read_plan(folder, "gpu")
    assert own["file"] == "plan-gpu.json" and own["comparisons"][0]["pilot_seeds"] == list(range(8))
    assert own["seeds"] == {f"drop.rate={rate},train.batch_size=1024": 15 for rate in ("0.0", "0.1")}
    points = launch.planned("dynamics_batch", "gpu")
    assert len(points) == 30 and points[:2] == [["drop.rate=0.0", "seed=0", "train.batch_size=1024"],
                                                ["drop.rate=0.1", "seed=0", "train.batch_size=1024"]]
    assert queue.plans(None, "gpu") == queue.plans("dynamics_batch", "gpu") == ["dynamics_batch"]
