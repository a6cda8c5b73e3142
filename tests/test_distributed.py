"""Data parallel on CPU: two gloo processes under torchrun match one process with the same
global batch (no randomness: no dropout, no augmentation), and the drop schedule stays in step."""
import os
import subprocess
import sys

import pytest
from conftest import TINY, make_cfg
from test_run import ROOT, events

from repro.loop.run import run

pytestmark = pytest.mark.slow


def launch(args, cwd=ROOT):
    """`torchrun --nproc_per_node=2 -m repro.train ARGS`, run in `cwd`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "repro.train", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def torchrun(overrides, run_dir):
    proc = launch([*overrides, f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("drop", ["none", "early_dropout"])
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, drop):
    overrides = [*TINY, f"drop={drop}", "train.epochs=1"]
    run(make_cfg(*overrides), tmp_path / "one")
    torchrun(overrides, tmp_path / "two")
    one, two = events(tmp_path / "one", "train"), events(tmp_path / "two", "train")
    assert [e["step"] for e in one] == [e["step"] for e in two]
    assert [e["drop_rate"] for e in one] == [e["drop_rate"] for e in two]   # schedule in step
    if drop == "none":                          # deterministic: losses agree to float tolerance
        assert [e["loss"] for e in two] == pytest.approx([e["loss"] for e in one], rel=1e-4)
        ev1, ev2 = events(tmp_path / "one", "eval")[-1], events(tmp_path / "two", "eval")[-1]
        assert ev2["test_loss"] == pytest.approx(ev1["test_loss"], rel=1e-4)
        assert ev2["test_acc"] == pytest.approx(ev1["test_acc"], abs=1 / 256)
    assert (tmp_path / "two" / "COMPLETE").is_file()


def test_analysis_runs_on_rank_zero_alone_and_measures_the_same_model(tmp_path):
    overrides = [*TINY, "drop=none", "train.epochs=1", "analysis.mode=live", "analysis.steps=[0,8]",
                 "analysis.num_grads=2", "analysis.full_subset=64"]
    run(make_cfg(*overrides), tmp_path / "one")
    torchrun(overrides, tmp_path / "two")
    one, two = events(tmp_path / "one", "analysis"), events(tmp_path / "two", "analysis")
    assert [e["step"] for e in two] == [0, 8]
    for key in ("grad_norm", "full_grad_norm", "grad_direction_variance", "model_distance"):
        assert [e[key] for e in two] == pytest.approx([e[key] for e in one], rel=1e-3, abs=1e-6), key


def test_torchrun_makes_one_run_directory_and_one_report(tmp_path):
    """Rank 0 alone makes the run directory (by default a new one per launch, named after its
    process): rank 1 makes none, writes nothing, and prints nothing."""
    proc = launch([*TINY, "train.epochs=1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(tmp_path.iterdir()) == [tmp_path / "outputs"]
    [run_dir] = (tmp_path / "outputs" / "default").iterdir()
    assert (run_dir / "COMPLETE").is_file() and (run_dir / ".hydra" / "config.yaml").is_file()
    assert proc.stdout.count("run directory:") == 1 and f"run directory: {run_dir}" in proc.stdout
    assert proc.stdout.count("epoch 1/1") == 1 and "epoch 1/1" in (run_dir / "train.log").read_text()


def test_batch_that_does_not_split_across_processes_is_refused(tmp_path):
    proc = launch([*TINY, "train.batch_size=33", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode != 0
    assert "train.batch_size=33 does not split across 2 processes" in proc.stderr


def test_slurm_tasks_become_torchrun_ranks(monkeypatch):
    from repro.distributed import export_slurm_env
    pytest.importorskip("submitit")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(key, "")          # recorded, so the exported values are undone after
        monkeypatch.delenv(key)
    env = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "123", "SLURM_NTASKS": "4",
           "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "node[1-2]"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    export_slurm_env()
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("3", "4", "1")
    assert os.environ["MASTER_ADDR"] == "node1"
