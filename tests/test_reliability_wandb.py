"""W&B faults: a W&B that cannot start or log never stops training, a resumed W&B run gets
exactly the events it lacks, and starting over starts a new W&B run."""
import json

import pytest
from test_run import events

from repro.loop.run import run
from repro.records.logger import MetricsLog


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
