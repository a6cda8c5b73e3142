"""The run directory (repro.records.rundir.RunDir) and atomic writes (repro.records.atomic): markers and
status as the collectors and the launcher read them, refusals, and writes that never leave half a file."""
import hashlib
import json
from pathlib import Path

import pytest

from repro.errors import ConfigError, DataError
from repro.records.atomic import replacing, write_atomic
from repro.records.rundir import RunDir


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    write_atomic(target, b"new", durable=True)
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def finished_run(path: Path, summary: dict, config_hash: str) -> RunDir:
    run_dir = RunDir(path)
    run_dir.open({"config.yaml": "seed: 0\n"}, fresh=False)
    run_dir.metrics.write_text(json.dumps({"event": "eval", "step": 5, "test_acc": 0.5}) + "\n")
    run_dir.complete(summary, config_hash)
    return run_dir


def test_status_markers_and_finished(tmp_path):
    run_dir = finished_run(tmp_path / "run", {"test_acc": 0.5}, "abc")
    marker = json.loads((tmp_path / "run" / "COMPLETE").read_text())
    metrics = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    assert marker["metrics_sha256"] == hashlib.sha256(metrics).hexdigest()
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == {"test_acc": 0.5}
    assert run_dir.status() == "complete" and run_dir.finished("abc") == {"test_acc": 0.5}
    with pytest.raises(ConfigError, match="different config"):
        run_dir.finished("another")
    with open(run_dir.metrics, "a") as f:
        f.write(json.dumps({"event": "eval", "step": 6}) + "\n")
    assert run_dir.status() == "tampered" and len(run_dir.events()) == 2
    with pytest.raises(DataError, match="changed after the run finished"):
        run_dir.finished("abc")


def test_a_live_run_holds_its_lock_until_it_ends_even_by_an_error(tmp_path):
    run_dir = RunDir(tmp_path)
    assert run_dir.status() == "incomplete"
    with pytest.raises(KeyboardInterrupt):
        with run_dir.live():
            assert run_dir.status() == "running"
            raise KeyboardInterrupt
    assert not (tmp_path / ".lock").exists() and run_dir.status() == "incomplete"
    (tmp_path / ".lock").write_text(json.dumps({"pid": 2**22 + 1, "host": "elsewhere"}))
    assert run_dir.status() == "incomplete"          # another host's lock is not a live run here


def test_a_fresh_start_drops_the_old_runs_marker_and_checkpoints_only(tmp_path):
    run_dir = finished_run(tmp_path, {"test_acc": 0.5}, "abc")
    for name in ("checkpoint.pt", "checkpoint.prev.pt", ".run_id", "train.log"):
        (tmp_path / name).write_text("x")
    run_dir.open({"config.yaml": "seed: 1\n", ".hydra/overrides.yaml": "[]\n"}, fresh=True)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [".hydra", "config.yaml", "metrics.jsonl", "train.log"]
    assert run_dir.config.read_text() == "seed: 1\n" and run_dir.finished("abc") is None
    assert Path(run_dir) == tmp_path and run_dir.run_id() == run_dir.run_id()
