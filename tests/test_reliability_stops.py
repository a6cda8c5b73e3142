"""Every stop resumable: SIGINT (Ctrl-C, also to the whole process group with DataLoader workers),
SIGTERM and SIGKILL at random steps, and a checkpoint or metrics.jsonl that cannot be written (disk
full, permission lost); each ends with one line and its documented exit status, and the relaunch
ends bitwise as the uninterrupted run."""
import errno
import random
import subprocess
import sys

import pytest
from conftest import TINY, make_cfg
from test_cli import launch
from test_reliability_kill_resume import same_run
from test_run import ROOT

from repro.loop.run import run
from repro.records import checkpoint, logger

ARGS = [*TINY, "drop=dropout"]                # 2 epochs of 16 steps; checkpoints at 16 and 32
WORKERS = ["data.auto_augment=rand-m2-n1", "data.workers=1"]     # the per-image path, one worker

# Run the command line with a signal sent once the step `when` is taken: to the process itself,
# twice (Ctrl-C pressed twice), or to its whole process group (Ctrl-C in a terminal).
SIGNAL_AT = """
import os, signal, sys
import repro.loop.step
from repro.train import main
how, when = sys.argv[1], int(sys.argv[2])
take = repro.loop.step.ModelStep.take
def take_then_signal(self, step, rate, x, y):
    loss = take(self, step, rate, x, y)
    if step + 1 == when:
        if how == "SIGINT to the group":
            os.killpg(os.getpgid(0), signal.SIGINT)
        for _ in range(2 if how == "SIGINT twice" else 1):
            if how != "SIGINT to the group":
                os.kill(os.getpid(), getattr(signal, how.split()[0]))
    return loss
repro.loop.step.ModelStep.take = take_then_signal
sys.argv = ["repro-train", *sys.argv[3:]]
main()
"""
STEPS = random.Random(29).sample(range(1, 32), 6)       # random steps, the same on every run
CASES = {"SIGINT": (STEPS[:2], 130), "SIGTERM": (STEPS[2:4], 0), "SIGKILL": (STEPS[4:], -9),
         "SIGINT twice": ([STEPS[0]], 130), "SIGINT to the group": ([STEPS[1]], 130)}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted runs, without and with DataLoader workers."""
    folder = tmp_path_factory.mktemp("whole")
    run(make_cfg(*ARGS), folder / "plain")
    run(make_cfg(*ARGS, *WORKERS), folder / "workers")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("how, when", [(how, when) for how, (steps, _) in CASES.items() for when in steps])
def test_a_stop_at_a_random_step_resumes_to_the_uninterrupted_result(whole, tmp_path, how, when):
    args = [*ARGS, *(WORKERS if how == "SIGINT to the group" else [])]
    stopped = tmp_path / "stopped"
    command = [sys.executable, "-c", SIGNAL_AT, how, str(when), *args, f"hydra.run.dir={stopped}"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, start_new_session=True,
                          timeout=300)
    assert proc.returncode == CASES[how][1], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if how in ("SIGINT", "SIGTERM", "SIGINT to the group"):          # the step finished, then saved
        line = f"stopped: {how.split()[0]} at step {when}: checkpoint written to {stopped}/checkpoint.pt"
        assert line in proc.stdout and line in (stopped / "train.log").read_text()
        assert checkpoint.load(stopped / "checkpoint.pt")["step"] == when
    if how == "SIGINT twice":
        assert proc.stderr.splitlines()[-1].startswith("error: interrupted: stopped at once; relaunch")
    assert not (stopped / "COMPLETE").exists()
    run(make_cfg(*args), stopped)
    same_run(whole / ("workers" if how == "SIGINT to the group" else "plain"), stopped)


def fail_write(monkeypatch, target: str, error: int, at: int) -> None:
    """The `at`-th checkpoint (target "checkpoint") or metrics.jsonl line ("metrics") written
    fails with OSError `error`."""
    calls = []
    owner, name = (checkpoint, "write_payload") if target == "checkpoint" else (logger.MetricsLog, "log")
    real = getattr(owner, name)

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise OSError(error, f"[Errno {error}] {errno.errorcode[error]}")
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, failing)


WRITES = {"disk full at a checkpoint": ("checkpoint", errno.ENOSPC, 2, "checkpoint.pt"),
          "permission lost at a checkpoint": ("checkpoint", errno.EACCES, 2, "checkpoint.pt"),
          "disk full at metrics.jsonl": ("metrics", errno.ENOSPC, 12, "metrics.jsonl"),
          "disk full before any checkpoint": ("checkpoint", errno.ENOSPC, 1, "checkpoint.pt")}


@pytest.mark.parametrize("case", WRITES)
def test_a_failed_write_stops_with_one_line_and_a_relaunch_resumes(whole, case, tmp_path, monkeypatch,
                                                                   capsys):
    target, error, at, name = WRITES[case]
    monkeypatch.chdir(tmp_path)
    fail_write(monkeypatch, target, error, at)
    code, _, err = launch(monkeypatch, capsys, *ARGS, "hydra.run.dir=run")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    kept = ("no checkpoint was written before it, and relaunching the same command starts over" if at == 1
            else "the checkpoint of step 16 and metrics.jsonl are kept, and relaunching the same command "
            "resumes")
    assert err.startswith(f"error: cannot write {tmp_path}/run/{name} (") and kept in err, err
    assert "GiB free on its file system" in err and "Free space there (or restore write access to" in err
    assert not list((tmp_path / "run").glob("*.tmp")) and not (tmp_path / "run" / "COMPLETE").exists()
    if at > 1:
        assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["step"] == 16
    monkeypatch.undo()
    run(make_cfg(*ARGS), tmp_path / "run")
    same_run(whole / "plain", tmp_path / "run")
