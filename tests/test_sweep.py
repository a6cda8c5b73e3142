"""scripts/sweep.py: the grid of points, their run directories, the dry run's report, and several
experiments queued into one sweep."""
from conftest import load_script

from repro import paths


def test_sweep_grid_directories_and_dry_run(tmp_path, capsys, monkeypatch):
    sweep = load_script("sweep")
    assert sweep.grid("dynamics_mixer", []) == sweep.grid("dynamics", [])     # the grid it builds on
    points = sweep.grid("dynamics", ["train.epochs=1", "model=vit_micro,mixer_micro"])
    assert len(points) == 2 * 3 * 2
    assert points[0] == ["drop.rate=0.0", "model=vit_micro", "seed=0", "train.epochs=1"]
    # A grid key with one value restricts its axis: the same points, the same directories.
    assert sweep.grid("dynamics", ["drop.rate=0.0"]) == [
        ["drop.rate=0.0", f"seed={s}"] for s in range(3)] == sweep.grid("dynamics", [])[::2]
    # A seed's arms run together: seed by seed, the drop keys varying fastest.
    assert points[:4] == [["drop.rate=0.0", "model=vit_micro", "seed=0", "train.epochs=1"],
                          ["drop.rate=0.1", "model=vit_micro", "seed=0", "train.epochs=1"],
                          ["drop.rate=0.0", "model=mixer_micro", "seed=0", "train.epochs=1"],
                          ["drop.rate=0.1", "model=mixer_micro", "seed=0", "train.epochs=1"]]
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    done = paths.run_dir("dynamics", points[0])
    done.mkdir(parents=True)
    (done / "COMPLETE").write_text("{}")
    half = paths.run_dir("dynamics", points[1])
    half.mkdir(parents=True)
    (half / "checkpoint.pt").write_bytes(b"")
    monkeypatch.setattr("sys.argv", ["sweep", "dynamics", "--dry-run", "train.epochs=1",
                                     "model=vit_micro,mixer_micro"])
    sweep.main()
    out = capsys.readouterr().out
    assert "[done  ] drop.rate=0.0 model=vit_micro seed=0" in out
    assert "[resume] drop.rate=0.1 model=vit_micro seed=0" in out
    assert "12 runs, 1 finished, 11 to run" in out
    assert not list(tmp_path.glob("multirun/dynamics/*/metrics.jsonl"))      # nothing started


def test_several_experiments_queue_into_one_sweep(capsys, monkeypatch, tmp_path):
    sweep = load_script("sweep")
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    monkeypatch.setattr("sys.argv", ["sweep", "ablation_rate,ablation_cutoff", "--dry-run"])
    sweep.main()
    out = capsys.readouterr().out.splitlines()
    expected = [("ablation_rate", p) for p in sweep.grid("ablation_rate", [])] + \
        [("ablation_cutoff", p) for p in sweep.grid("ablation_cutoff", [])]
    assert out[:-1] == [f"[new   ] {name} {' '.join(p)}" for name, p in expected]
    assert out[-1] == f"{len(expected)} runs, 0 finished, {len(expected)} to run"
