"""Checkpoints and kills: corrupt and half-written checkpoints, SIGTERM, SIGKILL during a write,
resume equal to the uninterrupted run, finished-run markers, W&B's offline record after a kill."""
import json
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from test_run import ROOT, events
from wandb_history import history

from repro.errors import ConfigError, DataError
from repro.loop.run import run
from repro.records import checkpoint
from repro.records.rundir import RunDir

STATE = {"step": 3, "weights": torch.arange(5.0)}


def test_checkpoint_roundtrip_and_previous_copy(tmp_path):
    path = tmp_path / "c.pt"
    checkpoint.save_atomic(STATE, path)
    checkpoint.save_atomic({**STATE, "step": 4}, path)
    assert checkpoint.load(path)["step"] == 4
    assert checkpoint.load(checkpoint.previous(path))["step"] == 3
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_corrupt_checkpoint_falls_back_to_the_previous(tmp_path, damage):
    path = tmp_path / "c.pt"
    checkpoint.save_atomic(STATE, path)
    checkpoint.save_atomic({**STATE, "step": 4}, path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged = {"flip": raw, "truncate": raw[:len(raw) // 3], "empty": b""}[damage]
    path.write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match="corrupt.*resuming from the previous"):
        assert checkpoint.load(path)["step"] == 3


def test_no_whole_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(checkpoint.CheckpointError, match="corrupt.*delete them to restart"):
        checkpoint.load(path)
    assert checkpoint.load(tmp_path / "none.pt") is None


FAULT = """
import os, signal, sys
from omegaconf import OmegaConf
import repro.records.checkpoint as ckpt
from repro.loop.run import run
fault, when = sys.argv[3], int(sys.argv[4])
saves = 0
real_write = ckpt.write_payload
def faulty_write(path, data):
    global saves
    saves += 1
    if saves == when and fault == "kill-mid-write":
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    real_write(path, data)
    if saves == when and fault == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    if saves == when and fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
ckpt.write_payload = faulty_write
print(run(OmegaConf.load(sys.argv[1]), sys.argv[2]))
"""


def faulty_run(cfg, tmp_path, fault, when):
    OmegaConf.save(cfg, tmp_path / "cfg.yaml")
    return subprocess.run([sys.executable, "-c", FAULT, str(tmp_path / "cfg.yaml"),
                           str(tmp_path / "faulty"), fault, str(when)],
                          cwd=ROOT, capture_output=True, text=True)


def same_run(whole, resumed):
    """Run directories `whole` and `resumed` hold the same metrics.jsonl and final weights."""
    assert events(resumed) == events(whole)
    a, b = (checkpoint.load(d / "checkpoint.pt")["model"] for d in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def same_as_whole(tmp_path):
    same_run(tmp_path / "whole", tmp_path / "faulty")


@pytest.mark.slow
@pytest.mark.parametrize("fault, when", [("kill-mid-write", 3), ("sigterm", 2), ("sigterm", 4), ("kill", 5)],
                         ids=["sigkill-during-write", "sigterm-mid-epoch", "sigterm-epoch-end",
                              "sigkill-between-log-points"])
def test_fault_then_resume_gives_the_uninterrupted_result(tiny_cfg, tmp_path, fault, when):
    # ckpt_every=3 with log_every=2: checkpoints fall between log points too (steps 3, 6, 9, ...)
    cfg = tiny_cfg("drop=dropout", "train.ckpt_every=3")
    run(cfg, tmp_path / "whole")
    proc = faulty_run(cfg, tmp_path, fault, when)
    log = tmp_path / "faulty" / "train.log"
    if fault == "sigterm":
        assert proc.returncode == 0 and "'interrupted': 'SIGTERM at step" in proc.stdout, proc.stderr[-2000:]
        assert "stopped: SIGTERM at step" in log.read_text()
    else:
        assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (tmp_path / "faulty" / "COMPLETE").exists()
    run(cfg, tmp_path / "faulty")
    same_as_whole(tmp_path)
    assert "resuming at step" in log.read_text() and "test accuracy" in log.read_text()


@pytest.mark.slow
def test_corrupted_latest_checkpoint_resumes_from_the_previous(tiny_cfg, tmp_path):
    cfg = tiny_cfg("drop=dropout", "train.ckpt_every=3")
    run(cfg, tmp_path / "whole")
    assert faulty_run(cfg, tmp_path, "kill", 4).returncode == -9
    latest = tmp_path / "faulty" / "checkpoint.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="resuming from the previous"):
        run(cfg, tmp_path / "faulty")
    same_as_whole(tmp_path)


def test_finished_run_is_not_trained_again_and_tampering_is_caught(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=1")
    first = run(cfg, tmp_path)
    marker = json.loads((tmp_path / "COMPLETE").read_text())
    assert marker["summary"] == first
    assert run(cfg, tmp_path) == first
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"event": "train", "step": 99, "loss": 0.0}\n')
    with pytest.raises(DataError, match="checksum in COMPLETE differs"):
        run(cfg, tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        run(tiny_cfg("train.epochs=1", "seed=5"), tmp_path)


@pytest.mark.slow
def test_wandb_offline_record_holds_every_event_once_after_kill_and_resume(tiny_cfg, tmp_path):
    cfg = tiny_cfg("drop=dropout", "train.ckpt_every=3", "logger=wandb", "logger.mode=offline")
    killed = faulty_run(cfg, tmp_path, "kill", 7)           # after epoch 1's eval, at step 18
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = faulty_run(cfg, tmp_path, "none", 0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    [offline] = (tmp_path / "faulty" / "wandb").glob("offline-run-*")    # the earlier launch's: gone
    rows = history(next(offline.glob("run-*.wandb")))
    expected = {}                          # W&B merges the events of one step into one row
    for e in RunDir(tmp_path / "faulty").events():
        expected.setdefault(e["step"], {}).update(
            {f"{e['event']}/{k}": v for k, v in e.items() if k not in ("event", "step")})
    assert [r["_step"] for r in rows] == list(expected)
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows] == list(expected.values())


def test_killed_after_the_last_checkpoint_before_the_summary_finishes_on_relaunch(tiny_cfg, tmp_path):
    """The kill lands between the final checkpoint and summary.json / COMPLETE: the relaunch
    trains nothing more and writes the summary of the same evaluation."""
    cfg = tiny_cfg()
    first = run(cfg, tmp_path)        # finished: its final checkpoint kept, the previous one dropped
    assert (tmp_path / "checkpoint.pt").is_file() and not (tmp_path / "checkpoint.prev.pt").exists()
    for name in ("COMPLETE", "summary.json"):
        (tmp_path / name).unlink()
    again = run(cfg, tmp_path)
    assert (again["test_acc"], again["train_full_loss"], again["steps"]) == \
        (first["test_acc"], first["train_full_loss"], first["steps"])
    assert (tmp_path / "COMPLETE").is_file()
