"""Launching a seed batch (repro.loop.run_batched, python -m repro.train_batched): stopped (SIGTERM, or a
crash between the seeds' checkpoints or summaries) and resumed bitwise; options and run
directories it cannot take refused before anything is written; each seed where a sweep puts it."""
import os
import signal

import pytest
import torch
from conftest import load_script
from omegaconf import open_dict
from test_run import events
from test_seed_batch import weights
from wandb_history import history

from repro import paths
from repro.compose import compose_config
from repro.errors import ConfigError
from repro.loop.run import run, summarize
from repro.loop.run_batched import run_batched
from repro.records import checkpoint
from repro.records.checkpoint import save_atomic
from repro.report import launch
from repro.train_batched import main


class Crash(Exception):
    pass


STOPS = {"SIGTERM": [5, 5],                                  # the seeds' steps when stopped
         "crash between the seeds' saves": [8, 4],
         "crash between the seeds' summaries": [32, 32]}


@pytest.mark.parametrize("how", STOPS)
def test_a_stopped_batch_resumes_bitwise(tiny_cfg, tmp_path, monkeypatch, how):
    cfg = tiny_cfg("drop=dropout", "train.ckpt_every=4")     # saves at steps 4, 8, 12, 16 (epoch end), ...
    whole = [tmp_path / "whole" / f"s{k}" for k in range(2)]
    summaries = run_batched(cfg, [0, 1], whole)
    saves = []

    def save_then_stop(state, path):
        save_atomic(state, path)
        saves.append(state["step"])
        if how == "SIGTERM" and len(saves) == 2:             # both seeds at step 4: stop after step 5
            os.kill(os.getpid(), signal.SIGTERM)
        if how == "crash between the seeds' saves" and len(saves) == 3:     # seed 0 at step 8
            raise Crash

    def summarize_then_crash(*args):
        summarize(*args)
        raise Crash                                            # seed 0 finished, seed 1 not
    monkeypatch.setattr(checkpoint, "save_atomic", save_then_stop)
    monkeypatch.setattr("repro.loop.run.summarize", summarize_then_crash)
    stopped = [tmp_path / "stopped" / f"s{k}" for k in range(2)]
    if how == "SIGTERM":
        assert [s["steps"] for s in run_batched(cfg, [0, 1], stopped)] == [5, 5]
    else:
        with pytest.raises(Crash):
            run_batched(cfg, [0, 1], stopped)
    assert [weights(d)["step"] for d in stopped] == STOPS[how]
    monkeypatch.undo()
    resumed = run_batched(cfg, [0, 1], stopped)
    for k in range(2):
        assert events(stopped[k]) == events(whole[k])
        a, b = weights(whole[k]), weights(stopped[k])
        assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])
        assert {**resumed[k], "wall_s_this_launch": 0} == {**summaries[k], "wall_s_this_launch": 0}
    assert run_batched(cfg, [0, 1], stopped) == resumed       # finished: nothing left to do


@pytest.mark.parametrize("overrides, key", [
    (["train.accum_steps=2"], "train.accum_steps=2"),
    (["train.compile=inductor"], "train.compile=inductor"),
    (["train.channels_last=true"], "train.channels_last=True"),
    (["train.grad_checkpointing=true"], "train.grad_checkpointing=True"),
    (["train.nonfinite=skip"], "train.nonfinite=skip"),
    (["analysis.mode=live", "analysis.every=4"], "analysis.mode=live"),
    (["data.mixup=0.8"], "data.mixup=0.8"),
    (["optim.name=lamb"], "optim.name=lamb"),
])
def test_unsupported_options_are_refused_before_anything_is_written(tiny_cfg, tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=f"^{key} is not supported with seed batching; use "):
        run_batched(tiny_cfg(*overrides), [0, 1], [tmp_path / "a", tmp_path / "b"])
    assert not any(tmp_path.iterdir())


def test_a_directory_of_a_single_run_or_another_batch_is_refused(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=1")
    run(cfg, tmp_path / "single")
    with pytest.raises(ConfigError, match="holds a finished run of a different config"):
        run_batched(cfg, [0, 1], [tmp_path / "single", tmp_path / "other"])
    with pytest.raises(ConfigError, match="distinct integer seeds"):
        run_batched(cfg, [1, 1], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="distinct run directories"):
        run_batched(cfg, [0, 1], [tmp_path / "a", tmp_path / "a"])
    with open_dict(cfg):
        cfg.seed_batch = [0, 1]                                # one seed of a batch, launched alone
    with pytest.raises(ConfigError, match="trains all its seeds at once; .* repro.train_batched seeds=0,1"):
        run(cfg, tmp_path / "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single"]


def test_command_line_puts_each_seed_where_the_sweep_puts_it(tmp_path, monkeypatch, capsys):
    """... and each seed keeps its own W&B run (offline), all open at once."""
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setenv("WANDB_SILENT", "true")
    named = ["data=synthetic", "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "train.epochs=1",
             "train.progress=false"]
    main(["experiment=early_regime", *named, "drop=none", "seeds=1,0", "threads=1"])
    sweep = load_script("sweep")
    points = [p for p in sweep.grid("early_regime", [*named, "drop=none"]) if "seed=2" not in p]
    assert len(points) == 2
    for point in points:
        run_dir = paths.run_dir("early_regime", point)
        assert launch.status(run_dir) == "done"
        [offline] = (run_dir / "wandb").glob("offline-run-*")
        rows = history(next(offline.glob("run-*.wandb")))
        losses = [e["loss"] for e in events(run_dir, "train")]
        assert [r["train/loss"] for r in rows if "train/loss" in r] == losses      # its own, not another's
    assert sorted(p.name for p in (tmp_path / "multirun" / "early_regime").iterdir()) == sorted(
        paths.run_dir("early_regime", p).name for p in points)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["experiment=early_regime", *named, "seed=3"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: seed=...: give the batch's seeds as seeds=a,b,... (e.g. seeds=0,1,2,3)"]


SMALL = ["data=synthetic", "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "train.epochs=1"]
LAUNCH = ["logger=none", "threads=1", "train.progress=false", "data.workers=0"]     # name no folder


def test_hydra_run_dir_is_the_parent_of_folders_named_by_the_swept_keys(tmp_path, monkeypatch):
    """It used to be ignored and put into the names, with logger=none and the like."""
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    main(["experiment=early_regime", *SMALL, "drop=none", "seeds=0,1", f"hydra.run.dir={tmp_path}/mine",
          *LAUNCH])
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == [
        ",".join(sorted([*SMALL, "drop=none", f"seed={k}"])) for k in (0, 1)]
    assert all(launch.status(p) == "done" for p in (tmp_path / "mine").iterdir())
    assert not (tmp_path / "multirun").exists()


def test_a_folder_named_as_before_is_found_and_resumed(tmp_path, monkeypatch):
    """Seed folders named by every override but experiment=, threads= and device= (as they were
    before the launch settings left the names) are where a relaunch resumes, and the sweep looks."""
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    args = [*SMALL, "drop=none", *LAUNCH]
    before = [tmp_path / "multirun" / "early_regime" / ",".join(sorted(    # as train_batched named them
        [o for o in args if not o.startswith("threads=")] + [f"seed={k}"])) for k in (0, 1)]
    whole = run_batched(compose_config(["experiment=early_regime", *args]), [0, 1], before)
    for folder in before:                                 # stopped before their summaries
        (folder / "COMPLETE").unlink()
        (folder / "summary.json").unlink()
    resumed = main(["experiment=early_regime", *args, "seeds=0,1"])
    assert sorted((tmp_path / "multirun" / "early_regime").iterdir()) == before
    assert all("resuming at step 4 of 4" in (f / "train.log").read_text() for f in before)
    same = [{**s, "wall_s_this_launch": 0} for s in whole]
    assert [{**s, "wall_s_this_launch": 0} for s in resumed] == same
    assert [paths.run_dir("early_regime", [*args, f"seed={k}"]) for k in (0, 1)] == before
