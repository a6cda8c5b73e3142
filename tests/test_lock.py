"""One writer per run directory (repro.records.rundir.RunDir.live: flock on .lock for a launch's whole
life). Two launches at once on one directory: one trains, the other exits 2 with one line and
touches nothing; a seed batch with one held directory is refused whole; the lock a kill -9
leaves is taken over; a lock recorded by a live pid here or by another host is refused."""
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from conftest import TINY
from test_cli import assert_refused, launch, snapshot
from test_reliability_kill_resume import faulty_run, same_as_whole
from test_run import cli, events

from repro import paths
from repro.errors import BusyError
from repro.loop.run import run
from repro.records.rundir import RunDir, pid_alive
from repro.train_batched import main as train_batched
from repro.train_batched import seed_run_dirs

HOST = socket.gethostname()
GONE = 2**22 + 1                 # above Linux's largest pid_max: never a live process


def held_by(run_dir, pid=None) -> str:
    """The start of the refusal of a launch on `run_dir` while `pid` (default: this process) holds it."""
    return f"{run_dir} is held by another run (pid {pid or os.getpid()} on host {HOST}); wait for it"


def test_the_lock_records_its_holder_and_goes_with_the_folders_made_for_it(tmp_path):
    run_dir = RunDir(tmp_path / "new" / "run")
    with run_dir.live():
        assert json.loads(run_dir.lock.read_text()) == {"pid": os.getpid(), "host": HOST}
        assert run_dir.status() == "running"
    assert not (tmp_path / "new").exists()


def test_a_held_directory_refuses_a_second_holder_and_is_left_as_it_was(tmp_path):
    run_dir = RunDir(tmp_path)
    with run_dir.live():
        before = snapshot(tmp_path)
        with pytest.raises(BusyError, match=re.escape(held_by(tmp_path))):
            with RunDir(tmp_path).live():
                pytest.fail("a second holder entered")
        assert snapshot(tmp_path) == before
    assert not run_dir.lock.exists()


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    run_dir = RunDir(tmp_path)
    with pytest.raises(RuntimeError, match="crash"):
        with run_dir.live():
            raise RuntimeError("crash")
    assert not run_dir.lock.exists()
    with run_dir.live():                     # free again
        assert run_dir.holder() == {"pid": os.getpid(), "host": HOST}


def test_a_dead_pids_lock_on_this_host_is_taken_over_with_a_note(tmp_path, caplog):
    run_dir = RunDir(tmp_path)
    run_dir.lock.write_text(json.dumps({"pid": GONE, "host": HOST}))
    with caplog.at_level(logging.WARNING, logger="repro"), run_dir.live():
        assert run_dir.holder() == {"pid": os.getpid(), "host": HOST}
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}: taking over the lock of pid {GONE}, which has ended"]
    assert not run_dir.lock.exists()


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("host", ["this host", "another host"])
def test_a_lock_it_cannot_show_dead_is_refused(tmp_path, sleeper, host):
    """A live pid here that holds no flock (a launch of the code before it), or any pid on another
    host (not checkable from here): refused, the record untouched."""
    record = {"pid": sleeper, "host": HOST} if host == "this host" else {"pid": GONE, "host": "elsewhere"}
    run_dir = RunDir(tmp_path)
    run_dir.lock.write_text(json.dumps(record))
    before = snapshot(tmp_path)
    message = held_by(tmp_path, sleeper) if host == "this host" else (
        f"{tmp_path} is held by another run (pid {GONE} on host elsewhere); it cannot be checked from "
        f"host {HOST}: if that run has ended, delete {run_dir.lock} and relaunch")
    with pytest.raises(BusyError, match=re.escape(message)):
        with run_dir.live():
            pytest.fail("entered a held directory")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("extra", [[], ["train.resume=false"]], ids=["resume", "fresh start"])
def test_a_launch_on_a_held_directory_exits_2_and_touches_nothing(tmp_path, monkeypatch, capsys, extra):
    """A requeued job beside its original: resuming would rewrite config.yaml and .hydra/, a
    fresh start would delete the checkpoints."""
    monkeypatch.chdir(tmp_path)
    args = [*TINY, "train.epochs=1", "hydra.run.dir=run"]
    assert launch(monkeypatch, capsys, *args)[0] == 0
    (tmp_path / "run" / "COMPLETE").unlink()               # interrupted, as a requeued job finds it
    with RunDir(tmp_path / "run").live():                  # the original, still training
        before = snapshot(tmp_path)
        code, _, err = launch(monkeypatch, capsys, *args, *extra)
        assert snapshot(tmp_path) == before
    assert_refused(code, err, held_by(tmp_path / "run"))


def test_a_seed_batch_with_one_held_directory_is_refused_whole(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    named = ["data=synthetic", "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "train.epochs=1"]
    free, held = seed_run_dirs("early_regime", named, [0, 1])
    with RunDir(held).live():
        before = snapshot(tmp_path)
        with pytest.raises(SystemExit) as stop:
            train_batched(["experiment=early_regime", *named, "seeds=0,1", "threads=1"])
        assert snapshot(tmp_path) == before and not free.exists()
    assert_refused(stop.value.code, capsys.readouterr().err, held_by(held))


RACER = """
import pathlib, sys, time
from repro.train import main                # start-up done (torch, Hydra), then the barrier
ready, go = map(pathlib.Path, sys.argv[1:3])
ready.touch()
while not go.exists():
    time.sleep(0.01)
sys.argv = ["repro-train", *sys.argv[3:]]
main()
"""


def outcome(run_dir):
    """metrics.jsonl and COMPLETE (verified against it) without their timings."""
    done = RunDir(run_dir).read_json("COMPLETE")
    assert RunDir(run_dir).intact(done)
    return events(run_dir), {**done, "metrics_sha256": None,
                             "summary": {**done["summary"], "wall_s_this_launch": None}}


@pytest.mark.slow
def test_two_launches_at_once_one_trains_the_other_is_refused(tmp_path):
    """`repro-train` twice on one directory, lined up after their start-up so that they reach the
    lock together; the run equals a lone launch's in another directory."""
    args = [*TINY, "train.epochs=3"]
    lone = cli([*args, f"hydra.run.dir={tmp_path}/lone"], tmp_path)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, tmp_path / f"ready{k}", tmp_path / "go", *args,
                                f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(2)]
    while not all((tmp_path / f"ready{k}").exists() or p.poll() is not None for k, p in enumerate(racers)):
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=300) for p in racers]
    lone_err = lone.communicate(timeout=300)[1]
    assert lone.returncode == 0, lone_err[-2000:]
    assert sorted(p.returncode for p in racers) == [0, 2], [err[-2000:] for _, err in outs]
    won = [p.returncode for p in racers].index(0)
    assert "run directory:" in outs[won][0] and "run directory:" not in outs[1 - won][0]
    assert_refused(2, outs[1 - won][1], held_by(tmp_path / "run", racers[won].pid))
    assert outcome(tmp_path / "run") == outcome(tmp_path / "lone")
    assert not (tmp_path / "run" / ".lock").exists()


@pytest.mark.slow
def test_the_lock_a_kill_leaves_is_taken_over_and_the_run_finishes(tiny_cfg, tmp_path, caplog):
    cfg = tiny_cfg("drop=dropout", "train.ckpt_every=3")
    run(cfg, tmp_path / "whole")
    assert faulty_run(cfg, tmp_path, "kill", 5).returncode == -9           # SIGKILL at its 5th save
    killed = RunDir(tmp_path / "faulty")
    owner = killed.holder()
    assert owner["host"] == HOST and owner["pid"] != os.getpid() and not pid_alive(owner["pid"])
    with caplog.at_level(logging.WARNING, logger="repro"):
        run(cfg, killed)
    assert f"{killed}: taking over the lock of pid {owner['pid']}, which has ended" in caplog.messages
    same_as_whole(tmp_path)
    assert killed.status() == "complete" and not killed.lock.exists()
    assert "resuming at step" in (killed / "train.log").read_text()
