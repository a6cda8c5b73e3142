"""The per-image (DataLoader worker) path: the ImageFolder stream at full resolution with timm's
augmentation, and the same augmentation on in-memory images. Tested on real JPEG / PNG trees the
tests write: determinism across workers, resume and ranks; bad input stopped before training."""
import os

import pytest
import torch
from conftest import make_cfg
from writers import write_image_folder

from repro.data import load_data
from repro.data.workers import ImageFiles, WorkerBatches
from repro.distributed import World
from repro.errors import ConfigError, DataError
from repro.loop.run import run
from repro.loop.validate import validate

CLASSES = ["n01", "n02", "n03"]


def stream_cfg(root, *extra):
    return make_cfg("data=imagenet", f"data.root={root}", "data.num_classes=3", "data.img_size=32",
                    "data.workers=0", "model=vit_micro", "model.patch_size=8", "model.embed_dim=16",
                    "model.depth=1", "model.num_heads=2", "train.batch_size=4", "train.epochs=1",
                    "train.eval_batch_size=8", "train.train_eval_size=6", "train.progress=false",
                    "logger=none", "threads=1", "optim.warmup_epochs=0", *extra)


@pytest.fixture
def tree(tmp_path):
    write_image_folder(tmp_path / "in", CLASSES, per_class=4, size=(48, 40))
    return tmp_path / "in"


def epoch_batches(cfg, epoch=0, start=0, world=None, workers=0):
    data = load_data(cfg.data)
    batches, _ = data.pipeline(cfg, torch.device("cpu"), world or World())
    batches.workers = workers
    return [(x.clone(), y.clone()) for x, y in batches.epoch(epoch, start)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


def test_stream_batches_are_a_function_of_seed_epoch_and_index(tree):
    cfg = stream_cfg(tree)
    validate(cfg)
    full = epoch_batches(cfg)
    assert len(full) == 12 // 4 and full[0][0].shape == (4, 3, 32, 32)
    assert same(full, epoch_batches(cfg, workers=2))             # whatever worker draws a sample
    assert same(full[1:], epoch_batches(cfg, start=1))           # resumed mid-epoch
    assert not same(full, epoch_batches(cfg, epoch=1))           # a new order and new augmentation
    assert not same(full, epoch_batches(stream_cfg(tree, "seed=1")))


def test_a_run_resumes_with_another_worker_count_to_the_same_result(tree, tmp_path, monkeypatch):
    """data.workers is no part of the config hash (a run stopped on a machine with other cores
    resumes; it used to be refused as another config), and the result is the same bitwise."""
    from test_reliability_kill_resume import same_run

    from repro.records import checkpoint
    whole = run(stream_cfg(tree, "train.epochs=2"), tmp_path / "whole")
    saved = checkpoint.save_atomic

    def save_then_crash(state, path):
        saved(state, path)
        raise KeyError("crash after the first checkpoint")
    monkeypatch.setattr(checkpoint, "save_atomic", save_then_crash)
    with pytest.raises(KeyError):
        run(stream_cfg(tree, "train.epochs=2", "data.workers=0"), tmp_path / "moved")
    monkeypatch.undo()
    moved = run(stream_cfg(tree, "train.epochs=2", "data.workers=2"), tmp_path / "moved")
    assert {**moved, "wall_s_this_launch": 0} == {**whole, "wall_s_this_launch": 0}
    same_run(tmp_path / "whole", tmp_path / "moved")


def test_ranks_take_their_slice_of_the_same_global_batch(tree):
    cfg = stream_cfg(tree)
    full = epoch_batches(cfg)
    halves = [epoch_batches(cfg, world=World(rank=r, size=2)) for r in (0, 1)]
    for i, (x, y) in enumerate(full):
        assert torch.equal(torch.cat([halves[0][i][0], halves[1][i][0]]), x)
        assert torch.equal(torch.cat([halves[0][i][1], halves[1][i][1]]), y)


def test_augmentation_is_the_official_recipe(tree):
    cfg = stream_cfg(tree)
    batches, sets = load_data(cfg.data).pipeline(cfg, torch.device("cpu"), World())
    train = [type(t).__name__ for t in batches.data.transform.transforms]
    assert train == ["RandomResizedCropAndInterpolation", "RandomHorizontalFlip", "RandAugment",
                     "MaybeToTensor", "Normalize", "RandomErasing"]
    assert batches.data.transform.transforms[2].ops[0].magnitude == 9
    assert batches.data.transform.transforms[-1].probability == 0.25
    evaluate = sets["test"].data.transform.transforms
    assert evaluate[0].size == 36 and list(evaluate[1].size) == [32, 32]     # 32 / 0.875, centre crop
    assert len(sets["test"]) == 12 and len(sets["train_full"]) == 6


def test_a_stream_run_trains_evaluates_and_logs_best_accuracy(tree, tmp_path):
    summary = run(stream_cfg(tree), tmp_path / "run")
    assert 0 <= summary["test_acc"] <= 1 and summary["best_test_acc"] >= summary["test_acc"]
    assert summary["steps"] == 3


@pytest.mark.parametrize("damage", ["empty", "garbage"])
def test_corrupt_image_stops_before_training_naming_the_file_or_is_left_out_and_counted(tree, damage, caplog):
    bad = tree / "train" / "n02" / "img1.png"
    bad.write_bytes(b"" if damage == "empty" else b"not an image at all")
    files = ImageFiles([str(bad)], [0])
    with pytest.raises(DataError, match="img1.png: cannot decode.*data.bad_images=skip"):
        files.load(0)
    with pytest.raises(DataError, match=r"^1 image files cannot be decoded, e.g. \S*img1.png \(.*\); "
                                        "remove or replace them, or set data.bad_images=skip"):
        load_data(stream_cfg(tree).data)                # the scan, before any batch is drawn
    cfg = stream_cfg(tree, "data.bad_images=skip")
    data = load_data(cfg.data)
    assert "data.bad_images=skip: left out 1 image files cannot be decoded" in caplog.text
    assert len(data.train_paths) == 11 and str(bad) not in data.train_paths
    batches, _ = data.pipeline(cfg, torch.device("cpu"), World())
    assert isinstance(batches, WorkerBatches) and len(batches) == 2


def test_an_image_broken_past_its_header_stops_with_one_line_from_the_main_process(tree):
    """A truncated JPEG opens (its header is whole) and fails when decoded in a worker: the error
    is raised again in the main process, one line naming the file (it used to be 'Caught DataError
    in DataLoader worker process 0' and the worker's traceback)."""
    broken = tree / "train" / "n01" / "img0.JPEG"
    raw = broken.read_bytes()
    broken.write_bytes(raw[:len(raw) * 2 // 3])
    with pytest.raises(DataError) as err:
        epoch_batches(stream_cfg(tree), workers=1)
    assert str(err.value).startswith(f"{broken}: cannot decode this image") and "\n" not in str(err.value)


@pytest.mark.parametrize("extra, error, message", [
    (["data.num_classes=5"], DataError, "3 classes in .*train but data.num_classes=5"),
    (["data.root=/nonexistent"], DataError, "data.root must hold train/ and val/"),
])
def test_bad_stream_input_is_named(tree, extra, error, message):
    with pytest.raises(error, match=message):
        load_data(stream_cfg(tree, *extra).data)


def test_missing_class_folder_is_named(tree, tmp_path):
    (tmp_path / "classes.txt").write_text("n01\nn09\nn03\n")
    with pytest.raises(DataError, match="no folder for 1 of the 3 classes, e.g. \\['n09'\\]"):
        load_data(stream_cfg(tree, f"data.class_list={tmp_path / 'classes.txt'}").data)


@pytest.mark.parametrize("extra, message", [
    (["data.auto_augment=rand-x9"], "data.auto_augment='rand-x9' is rejected by timm"),
    (["data.rrc_scale=[0.5,0.1]"], "data.rrc_scale=[0.5, 0.1]"),
    (["analysis.mode=live", "analysis.every=5"], "does not run with data=imagenet"),
])
def test_bad_augmentation_settings_stop_before_training(tree, extra, message):
    with pytest.raises(ConfigError, match=message.replace("[", "\\[").replace("]", "\\]")):
        validate(stream_cfg(tree, *extra))


def test_in_memory_images_take_the_worker_path_when_randaugment_is_asked(tmp_path):
    cfg = make_cfg("data=synthetic", "data.auto_augment=rand-m9-mstd0.5-inc1", "data.random_erasing=0.25",
                   "data.workers=0", "train.batch_size=32", "train.epochs=1", "train.progress=false",
                   "logger=none", "threads=1", "model.embed_dim=16", "model.depth=1", "model.num_heads=2")
    validate(cfg)
    data = load_data(cfg.data)
    batches, _ = data.pipeline(cfg, torch.device("cpu"), World())
    assert isinstance(batches, WorkerBatches)
    x, y = next(iter(batches.epoch(0)))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32
    batches.workers = 2                              # the same batches, whatever worker draws them
    assert all(torch.equal(a, b) for a, b in zip(next(iter(batches.epoch(0))), (x, y)))
    default, _ = data.pipeline(make_cfg("data=synthetic", "data.auto_augment=rand-m9-mstd0.5-inc1"),
                               torch.device("cpu"), World())
    assert default.workers == len(os.sched_getaffinity(0))      # data.workers=null: one per core
    summary = run(cfg, tmp_path / "run")
    assert summary["steps"] == len(data.train_y) // 32
