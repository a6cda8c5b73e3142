"""repro.loop.events against hand-computed expectations: the mean of a loss window, the stop on a
non-finite mean naming the checkpoint, the best test accuracy, a checkpoint round trip that cuts
metrics.jsonl back to where the checkpoint was written, and the loop's events over K runs (a single
run's, a seed batch's) kept per run."""
import json
import math
from types import SimpleNamespace

import pytest
import torch

from repro.loop.events import Events, RunEvents
from repro.records.logger import MESSAGES, MetricsLog

TRAIN = SimpleNamespace(epochs=3, batch_size=8)
CPU = torch.device("cpu")


def rows(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def run_events(path, checkpoint_path=None) -> RunEvents:
    return RunEvents(MetricsLog(path), TRAIN, 4, CPU, checkpoint_path=checkpoint_path)


def add_all(events, losses) -> None:
    for loss in losses:
        events.add(torch.tensor(loss))


def test_a_train_event_logs_the_window_mean_and_starts_a_new_window(tmp_path):
    events = run_events(tmp_path / "metrics.jsonl")
    add_all(events, [1.0, 2.0, 4.5])
    assert events.log_train(3, drop_rate=0.1, lr=0.01, seconds=2.0) == 2.5
    add_all(events, [7.0])
    assert events.log_train(4, drop_rate=0.0, lr=0.02, seconds=0.5) == 7.0
    assert rows(tmp_path / "metrics.jsonl") == [
        {"event": "train", "step": 3, "epoch": 0.75, "loss": 2.5, "lr": 0.01, "drop_rate": 0.1,
         "img_per_s": 3 * 8 / 2.0},
        {"event": "train", "step": 4, "epoch": 1.0, "loss": 7.0, "lr": 0.02, "drop_rate": 0.0,
         "img_per_s": 1 * 8 / 0.5}]


@pytest.mark.parametrize("written", [True, False], ids=["a checkpoint", "none yet"])
def test_a_nonfinite_mean_stops_naming_the_step_and_the_checkpoint(tmp_path, written):
    events = run_events(tmp_path / "metrics.jsonl", tmp_path / "checkpoint.pt")
    if written:
        (tmp_path / "checkpoint.pt").write_bytes(b"")
    add_all(events, [1.0, math.inf])
    kept = (rf"the last good checkpoint is {tmp_path / 'checkpoint.pt'}, but relaunching unchanged" if written
            else "no checkpoint was written before it")
    with pytest.raises(FloatingPointError, match=rf"loss is inf at step 6; {kept}.*train\.nonfinite=skip"):
        events.log_train(6, drop_rate=0.0, lr=0.01, seconds=1.0)
    assert rows(tmp_path / "metrics.jsonl") == [
        {"event": "nonfinite", "step": 6, "loss": math.inf, "action": "stopped"}]


def test_eval_events_carry_the_best_test_accuracy_so_far(tmp_path):
    events = run_events(tmp_path / "metrics.jsonl")
    events.eval_event(4, 1, {"test_acc": 0.5, "train_full_loss": 1.0})
    events.eval_event(8, 2, {"test_acc": 0.25, "train_full_loss": 0.75})
    assert events.best_test_acc == 0.5
    assert [(r["epoch"], r["test_acc"], r["best_test_acc"]) for r in rows(tmp_path / "metrics.jsonl")] == [
        (1, 0.5, 0.5), (2, 0.25, 0.5)]


def test_a_checkpoint_round_trip_resumes_the_window_and_cuts_later_events(tmp_path):
    path = tmp_path / "metrics.jsonl"
    events = run_events(path)
    events.eval_event(4, 1, {"test_acc": 0.5, "train_full_loss": 1.0})
    add_all(events, [1.0, 2.0])
    state = events.state_dict()
    assert state["loss_window"] == (3.0, 2) and state["best_test_acc"] == 0.5
    add_all(events, [30.0])
    events.log_train(7, drop_rate=0.0, lr=0.01, seconds=1.0)       # after the checkpoint: cut
    events.log.close()
    resumed = run_events(path)
    resumed.load_state_dict(state)
    assert [r["event"] for r in rows(path)] == ["eval"]
    add_all(resumed, [6.0])
    assert resumed.log_train(7, drop_rate=0.0, lr=0.01, seconds=1.0) == 3.0   # (1 + 2 + 6) / 3
    assert resumed.best_test_acc == 0.5


def test_a_seed_batch_keeps_each_seeds_events_in_its_own_log(tmp_path, caplog):
    paths = [tmp_path / "s3.jsonl", tmp_path / "s5.jsonl"]
    checkpoints = [tmp_path / "s3.pt", tmp_path / "s5.pt"]
    events = Events([run_events(p, c) for p, c in zip(paths, checkpoints)], [3, 5])
    events.add(torch.tensor([1.0, 10.0]))
    events.add(torch.tensor([2.0, 20.0]))
    assert events.log_train(2, drop_rate=0.1, lr=0.01, seconds=1.0) == (1.5 + 15.0) / 2
    seeds = [{"test_acc": 0.25, "train_full_loss": 1.0}, {"test_acc": 0.75, "train_full_loss": 2.0}]
    with caplog.at_level("INFO", logger=MESSAGES.name):
        events.log_eval(4, 1, seeds)
    assert caplog.messages == ["epoch 1/3, step 4: test accuracy of seeds [3, 5]: 0.2500, 0.7500, "
                               "full-model train loss 1.0000, 2.0000"]
    assert events.best_test_acc == [0.25, 0.75]
    assert [[(r["event"], r["step"], r.get("loss", r.get("test_acc"))) for r in rows(p)] for p in paths] == [
        [("train", 2, 1.5), ("eval", 4, 0.25)], [("train", 2, 15.0), ("eval", 4, 0.75)]]
    states = events.state_dict()
    checkpoints[1].write_bytes(b"")                          # as if written then
    events.add(torch.tensor([1.0, math.nan]))
    with pytest.raises(FloatingPointError, match=f"last good checkpoint is {checkpoints[1]}"):
        events.log_train(5, drop_rate=0.0, lr=0.01, seconds=1.0)
    events.load_state_dict(states)
    assert [len(rows(p)) for p in paths] == [2, 2]           # seed 3's train event and seed 5's stop cut
    assert [run.loss_count for run in events.runs] == [0, 0]


def test_a_single_runs_events_are_a_batch_of_one_in_shape(tmp_path, caplog):
    """The loop's one shape: [1] losses, a list of one evaluation, one state; its line in train.log
    as a single run's always read."""
    events = Events([run_events(tmp_path / "metrics.jsonl")], [0])
    events.add(torch.tensor([2.0]))
    assert events.log_train(1, drop_rate=0.0, lr=0.01, seconds=1.0) == 2.0
    with caplog.at_level("INFO", logger=MESSAGES.name):
        events.log_eval(4, 1, [{"test_acc": 0.5, "train_full_loss": 1.0}])
    assert caplog.messages == ["epoch 1/3, step 4: test accuracy 0.5000, full-model train loss 1.0000"]
    events.log_analysis(4, {"grad_norm": 1.5})
    assert events.best_test_acc == [0.5] and [s["best_test_acc"] for s in events.state_dict()] == [0.5]
    assert [r["event"] for r in rows(tmp_path / "metrics.jsonl")] == ["train", "eval", "analysis"]
