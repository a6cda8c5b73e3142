"""Bad inputs: non-finite losses (stop naming the step, or skip), and data settings that
disagree with the data or the config, refused before training."""
import pytest
import torch
from conftest import TINY
from test_cli import launch
from test_run import events
from writers import write_fashion_mnist

from repro.data import load_data
from repro.errors import ConfigError, DataError
from repro.loop.run import run
from repro.records import checkpoint

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
    monkeypatch.setattr("repro.loop.assemble.nn.CrossEntropyLoss", lambda **kw: NaNAt(at=20))
    with pytest.raises(FloatingPointError, match=r"at step 20; the last good checkpoint is .*checkpoint.pt"):
        run(tiny_cfg(), tmp_path)
    assert events(tmp_path, "nonfinite")[0]["action"] == "stopped"


def test_nonfinite_loss_before_any_checkpoint_says_none_was_written(tiny_cfg, tmp_path, monkeypatch, capsys):
    """Through the command line: one line, exit status 1; it used to name a checkpoint.pt that
    did not exist."""
    NaNAt.calls = 0
    monkeypatch.setattr("repro.loop.assemble.nn.CrossEntropyLoss", lambda **kw: NaNAt(at=5))
    monkeypatch.chdir(tmp_path)
    code, _, err = launch(monkeypatch, capsys, *TINY, "hydra.run.dir=run")
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: training loss is nan at step 6; no checkpoint was written before it. "
                          "Lower optim.lr"), err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_nonfinite_loss_between_log_points_is_never_checkpointed(tiny_cfg, tmp_path, monkeypatch):
    """A checkpoint due between two train events (step 9) checks the losses since the last one:
    the run stops there, and its last checkpoint (step 6) holds finite weights, as the stop says."""
    NaNAt.calls = 0
    monkeypatch.setattr("repro.loop.assemble.nn.CrossEntropyLoss", lambda **kw: NaNAt(at=9))
    with pytest.raises(FloatingPointError, match="at step 9; the last good checkpoint is .*checkpoint.pt"):
        run(tiny_cfg("train.ckpt_every=3"), tmp_path)
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert state["step"] == 6 and all(torch.isfinite(w).all() for w in state["model"].values())


def test_nonfinite_loss_skipped_when_configured(tiny_cfg, tmp_path, monkeypatch):
    NaNAt.calls = 0
    monkeypatch.setattr("repro.loop.assemble.nn.CrossEntropyLoss", lambda **kw: NaNAt(at=5))
    summary = run(tiny_cfg("train.nonfinite=skip"), tmp_path)
    assert [e["step"] for e in events(tmp_path, "nonfinite")] == [5]
    assert summary["steps"] == 32 and all(e["loss"] == e["loss"] for e in events(tmp_path, "train"))


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
