"""End-to-end runs: synthetic and real-format data, determinism, resume after SIGKILL, the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, TINY, make_cfg
from omegaconf import OmegaConf
from writers import write_fashion_mnist

from repro import paths
from repro.loop.run import run
from repro.schedules import drop_schedule

ROOT = Path(__file__).resolve().parents[1]


def events(run_dir, kind=None):
    rows = [json.loads(line) for line in open(Path(run_dir) / "metrics.jsonl")]
    return [{k: v for k, v in r.items() if k != "img_per_s"} for r in rows
            if kind is None or r["event"] == kind]


def test_synthetic_run_learns_and_logs_the_schedule(tiny_cfg, tmp_path):
    summary = run(tiny_cfg("train.epochs=3"), tmp_path)
    train = events(tmp_path, "train")
    assert [e["step"] for e in train] == list(range(2, 49, 2))
    assert [e["step"] for e in events(tmp_path, "eval")] == [16, 32, 48]
    expected = drop_schedule(0.1, 3, 16, 0.1667 * 3, "early", "linear")
    assert [e["drop_rate"] for e in train] == pytest.approx([expected[s - 1] for s in range(2, 49, 2)])
    assert train[-1]["loss"] < 0.5 * train[0]["loss"]
    assert summary["test_acc"] > 0.5 and summary["steps"] == 48
    for name in ("config.yaml", "provenance.json", "checkpoint.pt", "summary.json", "plot.png"):
        assert (tmp_path / name).is_file(), name
    assert "commit" in json.loads((tmp_path / "provenance.json").read_text())
    assert OmegaConf.load(tmp_path / "config.yaml").drop.mode == "early"


def test_plot_shows_the_drop_rate_of_every_step(tiny_cfg, tmp_path, monkeypatch):
    """An early schedule over before the first train event (step 8): the drop-rate panel still
    shows it, from its starting rate, where the logged rates are all 0."""
    import repro.records.plot
    figures = []
    monkeypatch.setattr(repro.records.plot.plt, "close", figures.append)
    run(tiny_cfg("drop.cutoff_epoch=0.25", "train.log_every=8", "train.epochs=1"), tmp_path)
    assert {e["drop_rate"] for e in events(tmp_path, "train")} == {0.0}
    [panel] = [ax for ax in figures[0].axes if ax.get_title() == "drop rate"]
    steps, rates = panel.lines[0].get_data()
    assert list(steps) == list(range(1, 17))
    assert list(rates) == pytest.approx(drop_schedule(0.1, 1, 16, 0.25, "early", "linear"))
    assert rates[0] == pytest.approx(0.1)


def test_a_run_put_in_results_is_warned_about(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    with pytest.warns(UserWarning, match="lies in results/, which git tracks.*Use outputs/ or runs/"):
        run(tiny_cfg("train.epochs=1"), tmp_path / "results" / "x" / "run")
    assert (tmp_path / "results" / "x" / "run" / "COMPLETE").is_file()


def test_same_seed_same_run_other_seed_other_run(tiny_cfg, tmp_path):
    run(tiny_cfg("drop=dropout", "train.epochs=1"), tmp_path / "a")
    run(tiny_cfg("drop=dropout", "train.epochs=1"), tmp_path / "b")
    run(tiny_cfg("drop=dropout", "train.epochs=1", "seed=1"), tmp_path / "c")
    assert events(tmp_path / "a") == events(tmp_path / "b")
    assert events(tmp_path / "a") != events(tmp_path / "c")


def test_sparser_evaluation_leaves_training_unchanged(tiny_cfg, tmp_path):
    every = run(tiny_cfg("drop=dropout", "train.epochs=3"), tmp_path / "every")
    sparse = run(tiny_cfg("drop=dropout", "train.epochs=3", "train.eval_every=2"), tmp_path / "sparse")
    assert [e["epoch"] for e in events(tmp_path / "sparse", "eval")] == [2, 3]   # the last always
    assert events(tmp_path / "sparse", "train") == events(tmp_path / "every", "train")
    assert events(tmp_path / "sparse", "eval") == events(tmp_path / "every", "eval")[1:]
    assert sparse["test_acc"] == every["test_acc"]


def test_run_on_real_format_fashion_mnist(tiny_cfg, tmp_path):
    write_fashion_mnist(tmp_path / "fm", n_train=64, n_test=32)
    summary = run(tiny_cfg("data=fashion_mnist", f"data.root={tmp_path / 'fm'}",
                           "train.train_eval_size=64"), tmp_path / "run")
    assert summary["steps"] == 4                             # 64 // 32 steps x 2 epochs
    assert 0 <= summary["test_acc"] <= 1 and np.isfinite(summary["train_full_loss"])


def test_mlp_with_accumulation_equals_one_big_batch(tmp_path):
    """Gradient accumulation over 4 micro-batches gives the same weights as one batch."""
    base = (*FAST, "model=mlp", "drop=none", "model.hidden_dropout=[0,0]", "optim=sgd",
            "train.epochs=1")
    run(make_cfg(*base), tmp_path / "one")
    run(make_cfg(*base, "train.accum_steps=4"), tmp_path / "four")
    a = torch.load(tmp_path / "one" / "checkpoint.pt")["model"]
    b = torch.load(tmp_path / "four" / "checkpoint.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


KILLER = """
import os, signal, sys
from omegaconf import OmegaConf
import repro.records.checkpoint as ckpt
from repro.loop.run import run
saves, kill_after = 0, int(sys.argv[3])
real_save = ckpt.save_atomic
def save_then_die(state, path):
    global saves
    real_save(state, path)
    saves += 1
    if saves == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
ckpt.save_atomic = save_then_die
run(OmegaConf.load(sys.argv[1]), sys.argv[2])
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [2, 4], ids=["mid-epoch", "epoch-end"])
def test_killed_run_resumes_to_the_same_result(tiny_cfg, tmp_path, kill_after):
    cfg = tiny_cfg("drop=dropout", "train.ckpt_every=4")     # saves at 4, 8, 12, 16(end), ...
    run(cfg, tmp_path / "whole")
    OmegaConf.save(cfg, tmp_path / "cfg.yaml")
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "cfg.yaml"),
                           str(tmp_path / "killed"), str(kill_after)], cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not (tmp_path / "killed" / "summary.json").exists()
    step = torch.load(tmp_path / "killed" / "checkpoint.pt")["step"]
    assert step == 4 * kill_after
    run(cfg, tmp_path / "killed")
    assert events(tmp_path / "killed") == events(tmp_path / "whole")
    a = torch.load(tmp_path / "whole" / "checkpoint.pt")["model"]
    b = torch.load(tmp_path / "killed" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_config(tiny_cfg, tmp_path):
    from repro.errors import ConfigError
    run(tiny_cfg("train.epochs=1"), tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        run(tiny_cfg("train.epochs=1", "drop.rate=0.2"), tmp_path)


@pytest.mark.parametrize("workers", [4, 6], ids=["the default of then", "recorded in config.yaml"])
def test_a_run_hashed_with_its_worker_count_still_resumes_and_counts_as_finished(tiny_cfg, tmp_path, workers):
    """Checkpoints and COMPLETE markers written while data.workers was in the config hash (4 by
    default, or as config.yaml recorded it) are still this config's; another count is not."""
    from repro.errors import ConfigError
    from repro.records import checkpoint
    cfg = tiny_cfg()
    first = run(cfg, tmp_path)
    then = checkpoint.config_hash(cfg, workers)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("workers: null", f"workers: {workers}"))
    done = json.loads((tmp_path / "COMPLETE").read_text())
    (tmp_path / "COMPLETE").write_text(json.dumps({**done, "config_hash": then}))
    assert run(cfg, tmp_path) == first                              # finished: nothing to do
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    for name in ("COMPLETE", "summary.json"):
        (tmp_path / name).unlink()
    checkpoint.save_atomic({**state, "config_hash": then}, tmp_path / "checkpoint.pt", keep_previous=False)
    again = run(cfg, tmp_path)                                      # resumed at its last step
    assert {**again, "wall_s_this_launch": 0} == {**first, "wall_s_this_launch": 0}
    (tmp_path / "COMPLETE").unlink()
    checkpoint.save_atomic({**state, "config_hash": checkpoint.config_hash(cfg, 5)},
                           tmp_path / "checkpoint.pt", keep_previous=False)
    with pytest.raises(ConfigError, match="different config"):
        run(cfg, tmp_path)


def cli(args, cwd):
    env = {**os.environ, "WANDB_SILENT": "true"}
    return subprocess.Popen([sys.executable, "-m", "repro.train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_cli_runs_in_unique_directories_with_offline_wandb(tmp_path):
    procs = [cli([*TINY, "logger=wandb", "logger.mode=offline"], tmp_path),
             cli(TINY, tmp_path)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "run directory:" in out and "test accuracy" in out
    runs = sorted((tmp_path / "outputs" / "default").iterdir())
    assert len(runs) == 2                                    # same second, distinct directories
    with_wandb = [r for r in runs if (r / "wandb").is_dir()]
    assert len(with_wandb) == 1 and list((with_wandb[0] / "wandb").glob("offline-run-*"))
    for r in runs:
        assert {"config.yaml", "metrics.jsonl", "checkpoint.pt", "plot.png", "summary.json",
                "provenance.json"} <= {p.name for p in r.iterdir()}


@pytest.mark.slow
def test_cli_bad_input_stops_before_compute_with_the_fix(tmp_path):
    p = cli([*TINY, "drop=late_dropout", "drop.schedule=linear", f"hydra.run.dir={tmp_path}/r"], tmp_path)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2
    assert "drop.mode=late with drop.schedule=linear" in err and "use drop.schedule=constant" in err
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


@pytest.mark.parametrize("option", ["train.grad_checkpointing=true", "train.channels_last=true"])
def test_memory_options_give_the_same_training(tiny_cfg, tmp_path, option):
    run(tiny_cfg("drop=dropout", "train.epochs=1"), tmp_path / "plain")
    run(tiny_cfg("drop=dropout", "train.epochs=1", option), tmp_path / "option")
    a, b = events(tmp_path / "plain", "train"), events(tmp_path / "option", "train")
    assert [e["loss"] for e in a] == pytest.approx([e["loss"] for e in b], rel=1e-5)


def test_channels_last_lays_out_images_and_patch_weights_nhwc(tiny_cfg):
    from repro.loop.assemble import build_trainer, prepare
    cfg = tiny_cfg("train.channels_last=true", "data.in_chans=3")     # one channel: both layouts agree
    model, data, device = prepare(cfg)
    trainer = build_trainer(cfg, model, data, device)
    x, _ = next(iter(trainer.batches.epoch(0)))
    nhwc = torch.channels_last
    assert x.is_contiguous(memory_format=nhwc) and not x.is_contiguous()
    assert model.patch_embed.proj.weight.is_contiguous(memory_format=nhwc)


def test_commit_is_read_from_git_or_declared_for_a_copy_without_git(tmp_path, monkeypatch):
    from repro.records.provenance import git_commit
    monkeypatch.delenv("REPRO_COMMIT", raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert git_commit().removesuffix("+dirty") == head
    assert git_commit(tmp_path) == "unknown"                 # no repository there
    monkeypatch.setenv("REPRO_COMMIT", "abc123")
    assert git_commit(tmp_path) == "abc123 (declared)"


def test_drop_path_at_rate_zero_trains_exactly_as_no_drop(tiny_cfg, tmp_path):
    # timm builds no DropPath at rate 0: the p = 0 arm of a drop-path sweep (dynamics_drop_path).
    run(tiny_cfg("drop=drop_path", "drop.rate=0.0", "train.epochs=1"), tmp_path / "zero")
    run(tiny_cfg("drop=none", "train.epochs=1"), tmp_path / "none")
    zero, none = events(tmp_path / "zero", "train"), events(tmp_path / "none", "train")
    assert [e["loss"] for e in zero] == [e["loss"] for e in none] and len(zero) > 3
