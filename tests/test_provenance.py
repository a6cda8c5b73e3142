"""A run launched from uncommitted changes records them: `git diff HEAD` as uncommitted.diff in
its directory and the diff's sha256 in provenance.json; a clean tree records none."""
import hashlib
import json
import subprocess

import pytest
from conftest import TINY, make_cfg

from repro.loop.run import run
from repro.records import provenance


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A throw-away repository with one commit, standing in for the code's."""
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    (repo / "model.py").write_text("width = 1\n")
    (repo / "results" / "runs.csv").write_text("run,acc\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "start")
    monkeypatch.setattr(provenance, "CODE_DIR", repo)
    monkeypatch.delenv("REPRO_COMMIT", raising=False)
    return repo


def test_uncommitted_changes_are_saved_beside_the_run(repo, tmp_path):
    (repo / "model.py").write_text("width = 2\n")
    (repo / "results" / "runs.csv").write_text("run,acc\nx,1\n")   # records: not part of the code
    (repo / "untracked.py").write_text("ignored = True\n")
    entry = provenance.record_uncommitted(tmp_path)
    diff = (tmp_path / "uncommitted.diff").read_bytes()
    assert b"-width = 1\n+width = 2\n" in diff and b"runs.csv" not in diff and b"untracked" not in diff
    assert entry == {"uncommitted_sha256": hashlib.sha256(diff).hexdigest()}
    applied = tmp_path / "copy"
    git(tmp_path, "clone", "-q", str(repo), str(applied))
    git(applied, "apply", str(tmp_path / "uncommitted.diff"))       # the diff restores what ran
    assert (applied / "model.py").read_text() == "width = 2\n"


def test_a_clean_tree_records_nothing(repo, tmp_path, monkeypatch):
    (tmp_path / "uncommitted.diff").write_text("an earlier launch's\n")
    assert provenance.record_uncommitted(tmp_path) == {}
    assert not (tmp_path / "uncommitted.diff").exists()
    monkeypatch.setenv("REPRO_COMMIT", "abc123")                    # a copy without git: nothing to diff
    (repo / "model.py").write_text("width = 2\n")
    assert provenance.uncommitted_diff() == b""


def test_a_run_records_its_uncommitted_diff(repo, tmp_path):
    (repo / "model.py").write_text("width = 2\n")
    run(make_cfg(*TINY, "train.epochs=1"), tmp_path / "run")
    record = json.loads((tmp_path / "run" / "provenance.json").read_text())
    diff = (tmp_path / "run" / "uncommitted.diff").read_bytes()
    assert record["uncommitted_sha256"] == hashlib.sha256(diff).hexdigest() and b"+width = 2" in diff
