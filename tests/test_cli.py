"""The command line as a new user meets it: `repro-train` (its entry point, called in this
process) and `python -m repro.train` run the same `main`. A refused launch exits with status 2
and one line naming the key or path and the fix, before any compute and with no traceback, and
changes nothing on disk: no file written before, no run folder left. An accepted launch keeps
Hydra's record (.hydra/) and its messages (train.log)."""
import errno
import logging
import os
import pathlib
import subprocess
import sys

import pytest
from conftest import TINY
from writers import write_image_folder

from repro.compose import compose_config
from repro.records import rundir
from repro.train import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def launch(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """`repro-train ARGS` in the current directory: exit status, stdout, stderr. Hydra's logging
    set-up (the root logger's handlers and level) is undone afterwards."""
    monkeypatch.setattr(sys, "argv", ["repro-train", *args])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: pathlib.Path) -> dict:
    """Every path under `folder`: a file's bytes and modification time, None for a folder."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None for p in folder.rglob("*")}


def assert_refused(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err


def two_class_imagenet(tmp) -> list[str]:
    write_image_folder(tmp / "in", ["n01", "n02"])
    (tmp / "classes.txt").write_text("n01\nn02\n")
    return [*(a for a in TINY if not a.startswith("data=")), "data=imagenet_subset", f"data.root={tmp}/in",
            f"data.class_list={tmp}/classes.txt", f"data.cache_dir={tmp}/cache", "data.workers=0",
            "data.img_size=28"]


def empty_jpeg(tmp) -> list[str]:
    """An ImageFolder tree with a zero-byte .jpg (it used to fail in a DataLoader worker mid-run,
    a 28-line traceback, the run folder left behind)."""
    write_image_folder(tmp / "in", ["n01", "n02"])
    (tmp / "in" / "train" / "n02" / "img2.jpg").write_bytes(b"")
    return [*(a for a in TINY if not a.startswith("data=")), "data=imagenet", f"data.root={tmp}/in",
            "data.num_classes=2", "data.img_size=28", "data.workers=2"]


def under_a_file(tmp) -> list[str]:
    (tmp / "afile").write_text("not a folder")
    return [*TINY, f"hydra.run.dir={tmp}/afile/run"]


# name: (the arguments, given the test's folder; what the one-line message must say)
FRESH = {
    "train_subset=0": (lambda tmp: [*TINY, "data.train_subset=0"],
                       "data.train_subset=0 must be a positive number of training images"),
    "train_subset beyond the set": (lambda tmp: [*TINY, "data.train_subset=100000"],
                                    "data.train_subset=100000 must lie in [1, 512]"),
    "batch beyond the training set": (lambda tmp: [*TINY, "data.train_subset=20"],
                                      "train.batch_size=32 exceeds the 20 training images"),
    "num_classes vs the class list": (two_class_imagenet,
                                      "data.num_classes=100 but imagenet_subset (data.class_list="),
    "unknown key": (lambda tmp: [*TINY, "+train.epoch=3"], "train.epoch: Key 'epoch' not in"),
    "unknown choice": (lambda tmp: [*TINY, "drop.kind=dropot"],
                       "drop.kind='dropot' is unknown; choose one of none, dropout, drop_path"),
    "unknown logger mode": (lambda tmp: [*TINY, "logger.mode=onlin"],
                            "logger.mode='onlin' is unknown; choose one of offline, online, disabled"),
    "bad value": (lambda tmp: [*TINY, "drop=late_dropout", "drop.schedule=linear"],
                  "use drop.schedule=constant"),
    "run dir in /proc": (lambda tmp: [*TINY, "hydra.run.dir=/proc/x"],
                         "hydra.run.dir=/proc/x cannot be created (No such file or directory)"),
    "run dir not permitted": (lambda tmp: [*TINY, "hydra.run.dir=/sys/x"],
                              "hydra.run.dir=/sys/x cannot be created (Operation not permitted)"),
    "run dir under a file": (under_a_file, "/afile/run cannot be created (Not a directory)"),
    "zero-byte jpg in the ImageFolder tree": (empty_jpeg, "1 image files cannot be decoded, e.g. "),
    "data.workers=-1": (lambda tmp: [*TINY, "data.workers=-1"],      # a ValueError traceback, a run folder
                        "data.workers=-1 must be >= 0 (0: decode in the main process), or null"),
    "threads=-1": (lambda tmp: [*TINY, "threads=-1"],                # a RuntimeError traceback
                   "threads=-1 must be a positive number of CPU threads, or null for torch's default"),
    "threads=0": (lambda tmp: [*TINY, "threads=0"], "threads=0 must be a positive number"),  # ran anyway
    "warmup outlasting training": (lambda tmp: [*TINY, "optim.warmup_epochs=2"],   # LR rising to the end
                                   "optim.warmup_epochs=2 is not shorter than training (train.epochs=2)"),
    "unknown group option": (lambda tmp: [*TINY, "model=vit_huge"],   # Hydra's own: was exit 1, many lines
                             "Could not find 'model/vit_huge'; Available options in 'model': convnext_femto"),
    "bad choice of a data key": (lambda tmp: [*TINY, "data.bad_images=ignore"],
                                 "Error merging override data.bad_images=ignore: Invalid value 'ignore', "
                                 "expected one of [error, skip]"),
}


@pytest.mark.parametrize("case", FRESH)
def test_refused_launch_exits_2_with_one_line_and_leaves_nothing(case, tmp_path, monkeypatch, capsys):
    args, message = FRESH[case]
    monkeypatch.chdir(tmp_path)
    args = args(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = launch(monkeypatch, capsys, *args)
    assert_refused(code, err, message)
    if case == "num_classes vs the class list":
        assert "set data.num_classes=2" in err
    if case == "zero-byte jpg in the ImageFolder tree":
        assert "n02/img2.jpg (an empty file); remove or replace them, or set data.bad_images=skip" in err
    after = snapshot(tmp_path)
    assert {p: after.get(p) for p in before} == before              # nothing written is changed
    assert not (tmp_path / "outputs").exists()                      # no run folder left behind


def test_hydras_own_refusal_after_its_flags_exits_2_too(tmp_path, monkeypatch, capsys):
    """With Hydra's flags (-m) Hydra composes alone and prints its own message; the status is 2."""
    monkeypatch.chdir(tmp_path)
    code, _, err = launch(monkeypatch, capsys, "-m", *TINY, "model=vit_huge")
    assert code == 2 and "Could not find 'model/vit_huge'" in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "existing folder"])
def test_read_only_run_dir_is_a_one_line_error(existing, tmp_path, monkeypatch, capsys):
    # Root writes anywhere: a read-only file system is simulated where the check meets it,
    # at the folder's creation or at the access check of a folder that exists.
    run_dir = tmp_path / "ro" / "run"
    real_mkdir, real_access = pathlib.Path.mkdir, os.access

    def read_only_mkdir(path, *args, **kwargs):
        if not existing and path.is_relative_to(run_dir.parent):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)
    if existing:
        run_dir.mkdir(parents=True)
    monkeypatch.setattr(pathlib.Path, "mkdir", read_only_mkdir)
    monkeypatch.setattr(os, "access", lambda path, mode: path != run_dir and real_access(path, mode))
    before = snapshot(tmp_path)
    code, _, err = launch(monkeypatch, capsys, *TINY, f"hydra.run.dir={run_dir}")
    assert_refused(code, err, "ro/run is not writable" if existing else
                   "ro/run cannot be created (Read-only file system); choose a folder")
    assert snapshot(tmp_path) == before


@pytest.fixture
def finished(tmp_path, monkeypatch, capsys):
    """A run finished through the command line in tmp_path/run, and its stdout."""
    monkeypatch.chdir(tmp_path)
    code, out, err = launch(monkeypatch, capsys, *TINY, "train.epochs=1", "hydra.run.dir=run")
    assert code == 0, err
    return tmp_path / "run", out


def test_accepted_launch_keeps_hydras_record_and_its_messages(finished, monkeypatch, capsys):
    run_dir, out = finished
    assert {p.name for p in (run_dir / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert "- train.epochs=1" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    log = (run_dir / "train.log").read_text()
    for message in (f"run directory: {run_dir}", "epoch 1/1, step 16: test accuracy",
                    "full-model train loss", "metrics.jsonl, checkpoint.pt, plot.png, summary.json in"):
        assert message in log and message in out, message
    assert out.count("run directory:") == 1
    code, out, _ = launch(monkeypatch, capsys, *TINY, "train.epochs=1", "hydra.run.dir=run")
    assert code == 0 and "already finished; nothing to do" in out


def unfinish(run_dir):
    (run_dir / "COMPLETE").unlink()


def truncate_checkpoint(run_dir):
    unfinish(run_dir)
    path = run_dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])


def tamper(run_dir):
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"event": "train", "step": 99, "loss": 0.0}\n')


# name: (the damage done to the finished run first, the relaunch's extra arguments, the message)
RELAUNCH = {
    "finished, other config": (None, ["seed=3"], "holds a finished run of a different config"),
    "interrupted, other config": (unfinish, ["seed=3"],
                                  "holds a run of a different config; choose another hydra.run.dir, "
                                  "or set train.resume=false"),
    "truncated checkpoint": (truncate_checkpoint, [],
                             "checkpoint.pt is truncated or corrupt (checksum mismatch). No whole "
                             "checkpoint is left"),
    "metrics changed after the end": (tamper, [], "metrics.jsonl changed after the run finished"),
}


@pytest.mark.parametrize("case", RELAUNCH)
def test_refused_relaunch_changes_nothing_in_the_run(case, finished, monkeypatch, capsys):
    damage, extra, message = RELAUNCH[case]
    run_dir = finished[0]
    if damage:
        damage(run_dir)
    before = snapshot(run_dir)
    code, _, err = launch(monkeypatch, capsys, *TINY, "train.epochs=1", "hydra.run.dir=run", *extra)
    assert_refused(code, err, message)
    assert snapshot(run_dir) == before                    # .hydra/ and train.log included


def test_only_rank_zero_makes_the_run_dir(tmp_path, monkeypatch):
    cfg = compose_config([f"hydra.run.dir={tmp_path}/a/run"], hydra_node=True)
    monkeypatch.setenv("RANK", "1")
    rundir.MakeRunDir().on_run_start(cfg)
    assert cfg.hydra.run.dir == os.getcwd() and not (tmp_path / "a").exists()
    cfg = compose_config([f"hydra.run.dir={tmp_path}/a/run"], hydra_node=True)
    monkeypatch.setenv("RANK", "0")
    rundir.MakeRunDir().on_run_start(cfg)
    assert rundir.CREATED == [tmp_path / "a", tmp_path / "a" / "run"] and (tmp_path / "a" / "run").is_dir()
    rundir.remove_created()                               # what a refused launch does
    assert not (tmp_path / "a").exists() and rundir.CREATED == []


def test_runs_folder_is_ignored_by_git():
    for path in ("runs/my_run/metrics.jsonl", "outputs/default/x/config.yaml", "multirun/x/y/train.log"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path
