"""A run's W&B record carries what results/ groups by (experiment, cell, arm, seed, plan file,
numerics kind), as config and as tags: read back from the offline run file."""
import json

from wandb_history import records

from repro import paths
from repro.loop.run import run
from repro.records.provenance import hardware_kind


def offline_run(run_dir) -> tuple[dict, list[str]]:
    """The config and tags of the run's offline W&B record."""
    [offline] = (run_dir / "wandb").glob("offline-run-*")
    config, tags = {}, []
    for record in records(next(offline.glob("run-*.wandb"))):
        if record.WhichOneof("record_type") == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            tags = list(record.run.tags)
    return config, tags


def test_a_runs_wandb_record_groups_like_the_tables(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("logger=wandb", "logger.mode=offline", "name=regime_study", "drop=early_dropout",
                   "seed=1", "logger.cell=[model.embed_dim,data.train_subset]")   # as its experiment says
    cell = {"model.embed_dim": 32, "data.train_subset": cfg.data.train_subset}
    first = run(cfg, tmp_path / "unplanned")
    assert "test_acc" in first
    kind = hardware_kind(json.loads((tmp_path / "unplanned" / "provenance.json").read_text()))
    plan = {"experiment": "regime_study", "hardware": kind, "cell": cell, "comparisons": [],
            "seeds": {"dropout/early": 2, "none/standard": 2}}
    (tmp_path / "results" / "regime_study").mkdir(parents=True)
    (tmp_path / "results" / "regime_study" / "plan-x.json").write_text(json.dumps(plan))
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    run(cfg, tmp_path / "planned")
    expected = {"experiment": "regime_study", "seed": 1, "numerics": kind,
                "cell": f"model.embed_dim=32,data.train_subset={cell['data.train_subset']}",
                "arm": f"dropout/early rate {cfg.drop.rate}"}
    for folder, plan_file in (("unplanned", "unplanned"), ("planned", "plan-x.json")):
        config, tags = offline_run(tmp_path / folder)
        groups = {k.removeprefix("grouping."): v for k, v in config.items() if k.startswith("grouping.")}
        assert groups == {**expected, "plan": plan_file}
        assert {f"{k}:{v}" for k, v in groups.items()} <= set(tags)
        assert config["drop.kind"] == "dropout"            # the whole config, flattened, as before


def test_the_cell_keys_are_the_experiment_files_own():
    from repro.compose import compose_config
    from repro.report.claims import CELL_EXPERIMENTS
    cfg = compose_config(["experiment=regime_study"])
    keys = ["model.embed_dim", "data.train_subset"]
    assert list(cfg.logger.cell) == list(CELL_EXPERIMENTS["regime_study"]) == keys
    assert list(compose_config(["experiment=early_regime"]).logger.cell) == []
    assert "early_regime" not in CELL_EXPERIMENTS


def test_a_setting_arm_is_planned_as_the_tables_match_it(tmp_path, monkeypatch):
    """regime_critic's arms are drop settings (p = 0.2 is not p = 0.1): the W&B plan tag follows
    repro.arms.of_method on the run's folder name, as the plans and tables do."""
    from repro.records.logger import grouping
    plan = {"experiment": "regime_critic", "hardware": "unknown", "comparisons": [],
            "seeds": {"drop=early_dropout,drop.rate=0.2": 3, "none/standard": 5}}
    (tmp_path / "regime_critic").mkdir()
    (tmp_path / "regime_critic" / "plan.json").write_text(json.dumps(plan))
    monkeypatch.setattr(paths, "RESULTS", tmp_path)

    def tag(folder: str, kind: str, mode: str, rate: float, seed: int) -> str:
        config = {"name": "regime_critic", "seed": seed, "drop": {"kind": kind, "mode": mode, "rate": rate}}
        return grouping(config, tmp_path / folder)["plan"]
    assert tag("drop.rate=0.2,drop=early_dropout,seed=2", "dropout", "early", 0.2, 2) == "plan.json"
    assert tag("drop.rate=0.2,drop=early_dropout,seed=3", "dropout", "early", 0.2, 3) == "unplanned"
    assert tag("drop=early_dropout,seed=2", "dropout", "early", 0.1, 2) == "unplanned"  # another arm
    assert tag("drop=none,seed=4", "none", "standard", 0.0, 4) == "plan.json"
