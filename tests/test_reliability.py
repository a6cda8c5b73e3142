"""Faults: corrupt and half-written checkpoints, SIGTERM, SIGKILL during a checkpoint write,
non-finite losses, W&B failures and W&B's record after a kill, finished-run markers, data that
disagrees with the config."""
import json
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from test_run import ROOT, events
from wandb_history import history
from writers import write_fashion_mnist

from repro import checkpoint
from repro.data import load_data
from repro.errors import ConfigError, DataError
from repro.logger import MetricsLog
from repro.run import run
from repro.rundir import RunDir

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
import repro.checkpoint as ckpt
from repro.run import run
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


def same_as_whole(tmp_path):
    assert events(tmp_path / "faulty") == events(tmp_path / "whole")
    whole = checkpoint.load(tmp_path / "whole" / "checkpoint.pt")["model"]
    resumed = checkpoint.load(tmp_path / "faulty" / "checkpoint.pt")["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


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


REAL_CROSS_ENTROPY = torch.nn.CrossEntropyLoss


class NaNAt:
    """A cross-entropy that returns NaN on its `at`-th call."""
    calls = 0

    def __init__(self, at):
        self.at, self.loss = at, REAL_CROSS_ENTROPY()

    def __call__(self, logits, y):
        NaNAt.calls += 1
        loss = self.loss(logits, y)
        return loss * float("nan") if NaNAt.calls == self.at else loss


def test_nonfinite_loss_stops_naming_step_and_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    NaNAt.calls = 0
    monkeypatch.setattr("repro.assemble.nn.CrossEntropyLoss", lambda **kw: NaNAt(at=20))
    with pytest.raises(FloatingPointError, match=r"at step 20; the last good checkpoint is .*checkpoint.pt"):
        run(tiny_cfg(), tmp_path)
    assert events(tmp_path, "nonfinite")[0]["action"] == "stopped"


def test_nonfinite_loss_skipped_when_configured(tiny_cfg, tmp_path, monkeypatch):
    NaNAt.calls = 0
    monkeypatch.setattr("repro.assemble.nn.CrossEntropyLoss", lambda **kw: NaNAt(at=5))
    summary = run(tiny_cfg("train.nonfinite=skip"), tmp_path)
    assert [e["step"] for e in events(tmp_path, "nonfinite")] == [5]
    assert summary["steps"] == 32 and all(e["loss"] == e["loss"] for e in events(tmp_path, "train"))


def test_wandb_that_cannot_start_or_log_never_stops_training(tiny_cfg, tmp_path, monkeypatch):
    import wandb

    def broken_init(**kw):
        raise RuntimeError("no network")
    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(UserWarning, match="W&B could not start"):
        run(tiny_cfg("logger=wandb", "train.epochs=1"), tmp_path / "a")

    class FlakyRun:
        def log(self, *a, **k):
            raise ConnectionError("connection lost")

        def finish(self):
            pass
    monkeypatch.setattr(wandb, "init", lambda **kw: FlakyRun())
    with pytest.warns(UserWarning, match="W&B logging failed"):
        run(tiny_cfg("logger=wandb", "train.epochs=1"), tmp_path / "b")
    assert events(tmp_path / "b") == events(tmp_path / "a")


@pytest.mark.parametrize("overrides, error, message", [
    (["data=fashion_mnist", "data.root=/nonexistent/fm"], DataError, "data.root='/nonexistent/fm' lacks"),
    (["data=cifar10", "data.root=/nonexistent", "data.download=false", "model.patch_size=4",
      "data.img_size=32", "data.in_chans=3"], DataError, "data.download=true"),
    (["data=imagenet_subset", "model.patch_size=8"], DataError, "data.root is not set"),
    (["data=fashion_mnist", "data.root={fm}", "data.img_size=32", "model.patch_size=4"], DataError,
     "images are 1x28x28 but the config says data.in_chans=1, data.img_size=32"),
    (["data=fashion_mnist", "data.root={fm}", "data.num_classes=5"], ConfigError,
     "data.num_classes=5 but fashion_mnist has 10 classes; set data.num_classes=10"),
    (["data.train_subset=20"], ConfigError, "train.batch_size=32 exceeds the 20 training images "
     "(data.train_subset=20); use train.batch_size=20 or less"),
    (["data.train_subset=0"], ConfigError, "data.train_subset=0 must be a positive number"),
], ids=["fashion_mnist root lacks files", "cifar10 absent, no download", "imagenet_subset without root",
        "image size vs the data", "num_classes vs fashion_mnist", "batch beyond the training set",
        "train_subset=0"])
def test_bad_data_settings_stop_before_training(tiny_cfg, tmp_path, overrides, error, message):
    write_fashion_mnist(tmp_path / "fm")
    overrides = [o.format(fm=tmp_path / "fm") for o in overrides]
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(tiny_cfg(*overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()                 # refused before anything is written


def test_subset_of_zero_images_is_refused_by_the_loader_too(tiny_cfg):
    with pytest.raises(ConfigError, match=r"data.train_subset=0 must lie in \[1, 512\]"):
        load_data(tiny_cfg("data.train_subset=0").data)


class RecordingRun:
    """A W&B run that records what it is given; `step` is where W&B (re)started it: 0 for a new
    or offline run, the server's next step for a resumed online run."""

    def __init__(self, step):
        self.step, self.logged = step, []

    def log(self, values, step):
        self.logged.append((step, values))

    def finish(self):
        pass


def test_wandb_resumed_at_a_step_gets_exactly_the_events_it_lacks(tmp_path):
    path = tmp_path / "metrics.jsonl"
    first = MetricsLog(path)
    for step in (2, 4, 6):
        first.log("train", step, loss=float(step))
    offset = first.tell()                                   # the checkpoint's, at step 6
    first.log("train", 8, loss=8.0)                         # logged, then the process is killed
    first.close()
    resumed = RecordingRun(step=5)                          # the server holds steps 0-4
    log = MetricsLog(path, resumed)
    log.resume_at(offset)
    log.log("train", 8, loss=8.0)                           # training logs it again
    assert resumed.logged == [(6, {"train/loss": 6.0}), (8, {"train/loss": 8.0})]
    fresh = RecordingRun(step=0)                            # a new offline run: the whole record
    MetricsLog(path, fresh).resume_at(path.stat().st_size)
    assert [s for s, _ in fresh.logged] == [2, 4, 6, 8]
    assert [json.loads(line)["step"] for line in open(path)] == [2, 4, 6, 8]


def test_starting_over_starts_a_new_wandb_run(tiny_cfg, tmp_path, monkeypatch):
    import wandb
    ids = []
    monkeypatch.setattr(wandb, "init", lambda **kw: ids.append(kw["id"]) or RecordingRun(step=0))
    run(tiny_cfg("logger=wandb", "train.epochs=1"), tmp_path)
    run(tiny_cfg("logger=wandb", "train.epochs=1", "train.resume=false"), tmp_path)
    assert len(ids) == 2 and ids[0] != ids[1]      # not the old run, whose steps W&B holds


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
    first = run(cfg, tmp_path)
    for name in ("COMPLETE", "summary.json"):
        (tmp_path / name).unlink()
    again = run(cfg, tmp_path)
    assert (again["test_acc"], again["train_full_loss"], again["steps"]) == \
        (first["test_acc"], first["train_full_loss"], first["steps"])
    assert (tmp_path / "COMPLETE").is_file()
