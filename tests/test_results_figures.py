"""Tables and figures from collected runs: statistics against hand values, each experiment's table,
byte-stable figures, and the committed figures rebuilt from the committed tables."""
import json

import matplotlib
import pytest
from conftest import ROOT, fake_run
from omegaconf import OmegaConf

from repro.records.tables import read_csv, write_csv
from repro.report.collect import collect_dirs
from repro.report.experiments import EXPERIMENTS
from repro.report.experiments import build as build_folder
from repro.report.figures.common import mean_ci, paired, verdict


def test_statistics_against_hand_values():
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.303 * 1.0 / 3 ** 0.5)
    d, h, n = paired({0: 0.80, 1: 0.82, 2: 0.81}, {0: 0.79, 1: 0.80, 2: 0.80, 5: 0.5})
    assert n == 3 and d == pytest.approx(0.04 / 3)
    assert h == pytest.approx(4.303 * 0.005773503 / 3 ** 0.5, rel=1e-5)
    assert verdict(d, h, +1).startswith("inconclusive")
    assert verdict(0.05, 0.01, +1) == "reproduced"
    assert verdict(-0.05, 0.01, +1) == "opposite"
    assert verdict(*paired({0: 0.8}, {1: 0.7})[:2], +1) == "inconclusive (no paired runs)"
    assert verdict(*paired({0: 0.8}, {0: 0.7})[:2], +1) == "inconclusive (one seed)"


def build(runs_root, out, name="early_regime"):
    runs, curves, skipped = collect_dirs(runs_root)
    write_csv(runs, out / "runs.csv")
    write_csv(curves, out / "curves.csv")
    return EXPERIMENTS[name].figures(read_csv(out / "runs.csv"), read_csv(out / "curves.csv"), out)


def test_early_regime_table_and_byte_stable_figures(runs_root, tmp_path):
    lines = build(runs_root, tmp_path / "a")
    text = "\n".join(lines)
    assert "| early dropout | 3 | 81.00 ± 2.48 |" in text            # hand: mean 0.81, sd 0.01
    assert "| 1.33 ± 1.43 |" in text                                # paired diff vs none (pp)
    # hand: paired differences -0.05, -0.04, -0.05: mean -0.0467, half-width 4.303 * 0.00577 / sqrt 3
    assert "early dropout lowers the final training loss: train_full_loss difference -0.0467 ± 0.0143" \
        " over 3 seeds: **reproduced**" in text
    build(runs_root, tmp_path / "b")
    for name in ("early_regime.png", "early_regime.pdf", "training_curves.png", "training_curves.pdf"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_ablation_table_groups_by_the_swept_key_against_no_dropout(runs_root, tmp_path):
    lines = build(runs_root, tmp_path / "ablation_rate", "ablation_rate")
    assert lines[2].startswith("| no dropout | 3 | 79.67 ± 1.43 |")
    # hand: paired accuracy differences +1, +2, +1 pp: mean 1.33, half-width 4.303 * 0.577 / sqrt 3
    assert lines[3] == "| 0.1 | 3 | 81.00 ± 2.48 | 0.5433 ± 0.0143 | 1.33 ± 1.43 | " \
        "inconclusive (interval includes 0) |"
    assert (tmp_path / "ablation_rate" / "ablation_rate.png").is_file()


def test_late_regime_compares_late_with_standard_stochastic_depth(tmp_path):
    root = tmp_path / "multirun"
    for (mode, accs) in (("standard", [0.80, 0.81, 0.79]), ("late", [0.82, 0.83, 0.80])):
        for seed, acc in enumerate(accs):
            fake_run(root / f"{mode}-{seed}", "drop_path", mode, seed, acc, 0.1)
    text = "\n".join(build(root, tmp_path / "late", "late_regime"))
    # hand: paired differences +2, +2, +1 pp: mean 1.67, half-width 4.303 * 0.577 / sqrt 3 = 1.43
    assert "late s.d. raises test accuracy over standard s.d.: test_acc difference 1.67 ± 1.43 pp over " \
        "3 seeds: **reproduced**" in text                          # includes the paper's +0.7 pp
    assert "| late s.d. | 3 | 81.67 ± 3.79 |" in text
    assert (tmp_path / "late" / "training_curves.png").is_file()


def test_planned_verdict_at_the_planned_seeds_and_the_seeds_past_the_plan_apart():
    """Seeds past the plan get their own column and their own estimate (here they would turn the
    verdict), and the margin says whose it is."""
    from repro.report.figures.regimes import EARLY, planned_lines
    none = [{"seed": s, "test_acc": 0.80} for s in range(5)]
    early = [{"seed": s, "test_acc": a} for s, a in enumerate((0.81, 0.82, 0.81, 0.70, 0.72))]
    plan = {"file": "plan.json", "hardware": "cpu",
            "comparisons": [{"claim": "early dropout raises test accuracy", "seeds": 3, "margin": 0.004}]}
    lines = planned_lines(EARLY, {("none", "standard"): none, ("dropout", "early"): early}, plan)
    # hand: planned differences +1, +2, +1 pp: 1.33 ± 1.43; past the plan -10, -8 pp:
    # -9 ± 12.706 * 1.414 / sqrt 2
    assert ("| early dropout raises test accuracy | test_acc | 0.40 (the paper's) | 3 of 3 planned | "
            "1.33 ± 1.43 pp | **inconclusive at the planned seeds (interval wider than planned)** | "
            "2 more: -9.00 ± 12.71 pp |") in lines
    assert "- early dropout raises test accuracy: the paper's, ViT-T/16, ImageNet-1K, basic recipe " \
        "(Table 1: 73.9 no dropout): 74.3 - 73.9" in lines


def test_dynamics_figure_and_claims(runs_root, tmp_path):
    lines = build(runs_root, tmp_path, "dynamics")
    assert (tmp_path / "dynamics.png").is_file()
    assert any("direction variance" in line for line in lines)


COMMITTED = sorted(p.parent for p in (ROOT / "results").glob("*/runs.csv"))


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_tables_regenerate_the_committed_figures(folder, tmp_path):
    built_with = json.loads((folder / "figures.json").read_text())["matplotlib"]
    if built_with != matplotlib.__version__:
        pytest.skip(f"figures were built with matplotlib {built_with}, this is {matplotlib.__version__}")
    for other in COMMITTED:          # the other experiments beside it, as in results/ (dynamics_batch
        if other != folder:          # reads dynamics_decompose's tables)
            (tmp_path / other.name).symlink_to(other)
    out = tmp_path / folder.name
    out.mkdir()
    inputs = ("runs.csv", "curves.csv", "skipped.csv", "plan*.json", "batch_axis.csv",   # the committed
              "collection.json")                                                          # tables, plans
    for path in (p for pattern in inputs for p in folder.glob(pattern)):
        (out / path.name).write_bytes(path.read_bytes())
    build_folder(folder.name, out)
    figures = sorted(p.name for p in folder.glob("*.png")) + sorted(p.name for p in folder.glob("*.pdf"))
    assert figures
    for name in [*figures, "table.md", *(p.name for p in folder.glob("cost.md"))]:
        assert (out / name).read_bytes() == (folder / name).read_bytes(), name


def test_regime_map_pairs_early_dropout_with_no_dropout_per_cell(tmp_path):
    root = tmp_path / "multirun"
    for width, size, gain in ((48, 6000, +0.02), (96, 6000, -0.01)):
        for seed in range(3):
            for (kind, mode), acc in ((("none", "standard"), 0.80 + 0.01 * seed),
                                      (("dropout", "early"), 0.80 + 0.01 * seed + gain)):
                folder = root / f"{width}-{size}-{kind}-{seed}"
                fake_run(folder, kind, mode, seed, acc, 0.5, train_acc=acc + 0.05 * width / 48)
                config = OmegaConf.load(folder / "config.yaml")
                config.model.embed_dim, config.data.train_subset = width, size
                OmegaConf.save(config, folder / "config.yaml")
    lines = build(root, tmp_path / "map", "regime_map")
    # the gap is the no-dropout runs' train - test accuracy: 5 pp at width 48, 10 pp at width 96
    assert "| 48 | 6000 | 3 | 81.00 | 5.00 ± 0.00 | 2.00 ± 0.00 | reproduced |" in lines
    assert "| 96 | 6000 | 3 | 81.00 | 10.00 ± 0.00 | -1.00 ± 0.00 | opposite |" in lines
    assert (tmp_path / "map" / "regime_map.png").is_file()
