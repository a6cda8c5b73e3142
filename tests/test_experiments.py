"""Adding an experiment takes one config file and one record (README, "Adding an experiment"): a
throw-away one, added to a copy of conf/ and to EXPERIMENTS, composes, collects, plans and builds."""
import json
import shutil
from functools import partial

from repro import paths
from repro.compose import compose_config
from repro.report import claims, experiments, ledger
from repro.report.claims import Experiment
from repro.report.figures import regimes
from repro.report.plan import make_plan
from tests.test_ledger import OLD_CPU, make


def test_a_throwaway_experiment_needs_one_config_file_and_one_record(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(paths.CONF, conf)
    (conf / "experiment" / "throwaway.yaml").write_text(
        "# @package _global_\nname: throwaway\nhydra:\n  sweeper:\n    params:\n"
        "      drop: none,early_dropout\n      seed: range(0,3)\n")
    monkeypatch.setattr(paths, "CONF", conf)
    cfg = compose_config(["experiment=throwaway"], hydra_node=True)
    assert cfg.name == "throwaway" and cfg.hydra.sweeper.params.drop == "none,early_dropout"
    record = Experiment(name="throwaway", figures=regimes.early, claims=claims.EARLY[:1],
                        glance=partial(regimes.glance, regimes.EARLY))
    monkeypatch.setitem(experiments.EXPERIMENTS, "throwaway", record)
    src, out = tmp_path / "multirun" / "throwaway", tmp_path / "results" / "throwaway"
    for seed, (a, b) in enumerate(((0.80, 0.82), (0.81, 0.82), (0.80, 0.83))):   # +2, +1, +3 pp
        make(src, f"none-{seed}", "none", seed, a)
        make(src, f"early-{seed}", "dropout", seed, b, mode="early")
    ledger.collect("throwaway", src, None, out, record.shared)
    runs = experiments.read_csv(out / "runs.csv")
    plan = make_plan(record, runs, OLD_CPU, 3)
    assert [c["claim"] for c in plan["comparisons"]] == ["early dropout raises test accuracy"]
    (out / "plan.json").write_text(json.dumps(plan))
    text = "\n".join(experiments.build("throwaway", out))
    assert text.startswith("# throwaway") and (out / "table.md").read_text() == text + "\n"
    planned = plan["seeds"]["dropout/early"]          # sd 0.01 against a margin of 0.004: many
    assert planned > 3 and ("| early dropout raises test accuracy | test_acc | 0.40 (the paper's) | "
                            f"3 of {planned} planned | 2.00 ± 2.48 pp | **underpowered") in text
