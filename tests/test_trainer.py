"""repro.loop.trainer's checkpoints: a run's is its model step's part with the loop's and the events' (the
keys checkpoints have always had), a seed batch's one per seed with that seed's config hash; a stop
on request writes them and names them; the progress bar says what its numbers are."""
import pytest
from test_seed_batch import batch_trainer

from repro.loop.assemble import build_trainer, prepare
from repro.preemption import Interrupted
from repro.records import checkpoint

KEYS = {"model", "optimizer", "scheduler", "step", "config_hash", "probe", "best_test_acc",
        "metrics_offset", "loss_window"}


def test_a_runs_checkpoint_has_the_keys_checkpoints_have_always_had(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    model, data, device = prepare(cfg)
    path = tmp_path / "checkpoint.pt"
    trainer = build_trainer(cfg, model, data, device, checkpoint_path=path)
    trainer.stop_requested = lambda: "SIGTERM"
    with pytest.raises(Interrupted, match=f"SIGTERM at step 1: checkpoint written to {path};"):
        trainer.fit()
    state = checkpoint.load(path)
    assert set(state) == KEYS and state["step"] == 1 and state["probe"] is None
    assert state["config_hash"] == checkpoint.config_hash(cfg)


def test_a_seed_batch_has_one_checkpoint_per_seed_with_its_config(tiny_cfg):
    batch = batch_trainer(tiny_cfg(), [0, 3])
    states = batch.checkpoints()
    assert [set(s) for s in states] == [KEYS, KEYS]
    assert [s["config_hash"] for s in states] == [checkpoint.config_hash(c) for c in batch.cfgs]
    assert states[0]["config_hash"] != states[1]["config_hash"]


def test_the_progress_bar_labels_what_it_shows(tiny_cfg, capsys):
    """No bare `acc=nan` through the first epoch: the test accuracy appears once evaluated,
    labelled with its epoch, beside the labelled train loss and drop rate."""
    cfg = tiny_cfg("train.progress=true")
    model, data, device = prepare(cfg)
    build_trainer(cfg, model, data, device).fit()
    bar = capsys.readouterr().err
    assert "nan" not in bar and "acc=" not in bar
    assert "train loss=" in bar and "drop rate=" in bar and "test acc (epoch 1)=" in bar
