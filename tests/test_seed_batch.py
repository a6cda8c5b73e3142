"""Seed-batched training (repro.run_batched) against single runs (repro.run.run) of the same seeds:
the same initial weights and batches, the same training where nothing is random, the same loss
distribution where dropout is, bitwise resumption, records collected as a hardware kind of their own."""
import json
import os
import signal

import numpy as np
import pytest
import torch
from conftest import TINY, make_cfg
from test_results import load_script
from test_run import events
from torch.func import vmap
from wandb_history import history

from repro import checkpoint, launch
from repro.assemble import build_trainer, prepare, seeded_model
from repro.checkpoint import save_atomic
from repro.errors import ConfigError
from repro.ledger import LedgerConflict, merge, one_hardware
from repro.logger import MetricsLog
from repro.results import collect_dirs
from repro.run import run, summarize
from repro.run_batched import run_batched, seed_configs
from repro.seed_batch import SeedBatchTrainer
from repro.train_batched import main


def batch_trainer(cfg, seeds):
    cfgs = seed_configs(cfg, seeds)
    model, data, device = prepare(cfgs[0])
    models = [model, *(seeded_model(c, data) for c in cfgs[1:])]
    return SeedBatchTrainer(cfgs, models, data, device, [MetricsLog(None)] * len(seeds), [None] * len(seeds))


def weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def close(a: list[dict], b: list[dict], rel: float) -> bool:
    """The same events, their float values equal to `rel`."""
    def same(x, v):
        return x == (pytest.approx(v, rel=rel, abs=1e-7) if isinstance(v, float) else v)
    return len(a) == len(b) and all(x.keys() == y.keys() and all(same(x[k], v) for k, v in y.items())
                                    for x, y in zip(a, b))


def test_each_seed_starts_from_its_single_runs_weights_and_batches(tiny_cfg):
    augmented = ("data.crop_padding=2", "data.hflip=true")
    batch = batch_trainer(tiny_cfg(*augmented), [0, 3, 8])
    x, y = next(iter(batch.batches.epoch(1, 5)))             # epoch 1 from its 6th batch
    states = batch.state_dict()
    for k, seed in enumerate([0, 3, 8]):
        cfg = tiny_cfg(*augmented, f"seed={seed}")
        model, data, device = prepare(cfg)
        single = build_trainer(cfg, seeded_model(cfg, data), data, device)
        single_x, single_y = next(iter(single.batches.epoch(1, 5)))
        assert torch.equal(x[k], single_x) and torch.equal(y[k], single_y)
        expected = model.state_dict()
        assert states[k]["model"].keys() == expected.keys()
        assert all(torch.equal(states[k]["model"][n], expected[n]) for n in expected)


def without_key_bias(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The tensor less the key bias (the middle third of qkv.bias): softmax ignores it, so its
    gradient is 0 but for rounding, which AdamW scales up to steps of float noise."""
    if name.endswith("qkv.bias"):
        q, _, v = tensor.chunk(3)
        return torch.cat([q, v])
    return tensor


@pytest.fixture(scope="module", params=[["optim=adamw"], ["optim=sgd", "optim.momentum=0.9"]],
                ids=["adamw", "sgd-momentum"])
def no_dropout_runs(request, tmp_path_factory):
    """Seeds 0-2 without dropout, batched and singly, with strong weight decay (which 1-D
    parameters, pos_embed and cls_token are spared): the single runs are the oracle."""
    root = tmp_path_factory.mktemp("runs")
    extra = [*TINY, "drop=none", *request.param, "optim.weight_decay=0.5"]
    names = [f"drop=none,seed={s}" for s in range(3)]
    run_batched(make_cfg(*extra), [0, 1, 2], [root / "batched" / n for n in names])
    for seed, name in enumerate(names):
        run(make_cfg(*extra, f"seed={seed}"), root / "single" / name)
    return root, names


def test_without_dropout_each_seed_trains_as_its_single_run(no_dropout_runs):
    root, names = no_dropout_runs
    for name in names:
        batched, single = root / "batched" / name, root / "single" / name
        assert close(events(batched), events(single), rel=1e-4)
        b, s = weights(batched), weights(single)
        assert b.keys() == s.keys() and b["step"] == s["step"] == 32
        assert all(torch.allclose(without_key_bias(n, b["model"][n]), without_key_bias(n, s["model"][n]),
                                  rtol=1e-4, atol=1e-6) for n in s["model"])
        b_opt, s_opt = b["optimizer"], s["optimizer"]
        assert b_opt["param_groups"] == s_opt["param_groups"]
        assert b_opt["state"].keys() == s_opt["state"].keys()
        for i, state in s_opt["state"].items():
            assert all(torch.allclose(b_opt["state"][i][n], v, rtol=1e-4, atol=1e-7)
                       for n, v in state.items())
        assert json.loads((batched / "summary.json").read_text())["test_acc"] == pytest.approx(
            json.loads((single / "summary.json").read_text())["test_acc"], abs=1e-9)


def test_batched_runs_are_collected_as_their_own_hardware_kind(no_dropout_runs, tmp_path):
    root, names = no_dropout_runs
    batched, _, skipped = collect_dirs(root / "batched")
    single, _, _ = collect_dirs(root / "single")
    assert not skipped and [r["run"] for r in batched] == [r["run"] for r in single] == names
    assert {r["hardware"] for r in batched} == {"cpu (batched)"}
    assert {r["hardware"] for r in single} == {"cpu"}
    assert json.loads((root / "batched" / names[0] / "provenance.json").read_text())["batched"] == 3
    assert batched[0].keys() == single[0].keys()
    # The same run names enter one ledger side by side, and are never paired with each other.
    assert len(merge(tmp_path, single, [], [], [])) == 3 and len(merge(tmp_path, batched, [], [], [])) == 3
    with pytest.raises(ValueError, match="several hardware kinds"):
        one_hardware(single + batched, "test")
    with pytest.raises(LedgerConflict):
        merge(tmp_path, [{**batched[0], "test_acc": -1.0}], [], [], [])


def test_a_batch_of_one_seed_is_its_single_run_with_scheduled_drop_path(tiny_cfg, tmp_path):
    """Same masks: the generator is seeded as the single run's, and a vmap of one draws as it does."""
    cfg = tiny_cfg("drop=early_drop_path", "drop.rate=0.3", "drop.cutoff_epoch=1.5", "seed=4")
    run_batched(cfg, [4], [tmp_path / "batched"])
    run(cfg, tmp_path / "single")
    b, s = events(tmp_path / "batched"), events(tmp_path / "single")
    assert len({e["drop_rate"] for e in s if e["event"] == "train"}) > 5        # the rate moves per step
    assert close(b, s, rel=1e-4)


def test_each_seed_draws_its_own_dropout_masks(tiny_cfg):
    batch = batch_trainer(tiny_cfg("drop=dropout", "drop.rate=0.5"), [0, 1])
    batch.begin_step()
    with torch.no_grad():
        for tensor in batch.params.values():
            tensor[1] = tensor[0]                              # seed 1 becomes a copy of seed 0
    x, y = next(iter(batch.batches.epoch(0)))
    x, y = x[:1].expand_as(x), y[:1].expand_as(y)               # and sees seed 0's batch
    losses = vmap(batch.seed_loss, randomness="different")(batch.params, batch.buffers, x, y)
    assert losses[0] != losses[1]
    batch.model.eval()
    losses = vmap(batch.seed_loss, randomness="different")(batch.params, batch.buffers, x, y)
    assert losses[0] == losses[1]


def last_epoch_loss(run_dir) -> float:
    """The mean training loss (dropout on) over the second of two epochs."""
    return float(np.mean([e["loss"] for e in events(run_dir, "train") if e["step"] > 16]))


@pytest.mark.slow
def test_batched_dropout_losses_match_single_runs_over_seeds(tiny_cfg, tmp_path):
    """Batched and single runs of seeds 0-3 differ only in their dropout masks: their mean training
    losses agree within 3 standard errors, an interval that excludes the runs without dropout."""
    seeds = [0, 1, 2, 3]
    dropout = ("drop=dropout", "drop.rate=0.3")
    run_batched(tiny_cfg(*dropout), seeds, [tmp_path / f"batched{s}" for s in seeds])
    run_batched(tiny_cfg("drop=none"), seeds, [tmp_path / f"none{s}" for s in seeds])
    for s in seeds:
        run(tiny_cfg(*dropout, f"seed={s}"), tmp_path / f"single{s}")
    batched, single, none = ([last_epoch_loss(tmp_path / f"{kind}{s}") for s in seeds]
                             for kind in ("batched", "single", "none"))
    se = np.sqrt(np.var(batched, ddof=1) / len(seeds) + np.var(single, ddof=1) / len(seeds))
    assert batched != single                                   # other masks, other trajectories
    assert abs(np.mean(batched) - np.mean(single)) < 3 * se
    assert np.mean(single) - np.mean(none) > 3 * se            # the interval tells dropout on from off


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
    monkeypatch.setattr("repro.run.summarize", summarize_then_crash)
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single"]


def test_command_line_puts_each_seed_where_the_sweep_puts_it(tmp_path, monkeypatch, capsys):
    """... and each seed keeps its own W&B run (offline), all open at once."""
    monkeypatch.setattr(launch, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setenv("WANDB_SILENT", "true")
    named = ["data=synthetic", "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "train.epochs=1",
             "train.progress=false"]
    main(["experiment=early_regime", *named, "drop=none", "seeds=1,0", "threads=1"])
    sweep = load_script("sweep")
    points = [p for p in sweep.grid("early_regime", [*named, "drop=none"]) if "seed=2" not in p]
    assert len(points) == 2
    for point in points:
        run_dir = launch.run_dir("early_regime", point)
        assert launch.status(run_dir) == "done"
        [offline] = (run_dir / "wandb").glob("offline-run-*")
        rows = history(next(offline.glob("run-*.wandb")))
        losses = [e["loss"] for e in events(run_dir, "train")]
        assert [r["train/loss"] for r in rows if "train/loss" in r] == losses      # its own, not another's
    assert sorted(p.name for p in (tmp_path / "multirun" / "early_regime").iterdir()) == sorted(
        launch.run_dir("early_regime", p).name for p in points)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["experiment=early_regime", *named, "seed=3"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: seed=...: give the batch's seeds as seeds=a,b,... (e.g. seeds=0,1,2,3)"]
