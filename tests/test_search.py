"""The late-regime search table: each s.d. rate paired by seed against rate 0 at the same depth
(hand values), the overfitting gap, the summary row, and the refusal to mix hardware kinds."""
import pytest

from repro.report.experiments import EXPERIMENTS


def rows(depth, rate, accs, hardware="cpu"):
    return [{"run": f"d{depth}-r{rate}-{seed}", "seed": seed, "model.depth": depth, "drop.rate": rate,
             "test_acc": acc, "train_full_acc": 1.0, "hardware": hardware} for seed, acc in enumerate(accs)]


def test_each_rate_is_paired_with_rate_zero_at_its_depth(tmp_path):
    runs = (rows(6, 0.0, [0.70, 0.71, 0.72]) + rows(6, 0.3, [0.72, 0.72, 0.73])
            + rows(12, 0.0, [0.70, 0.70, 0.70]) + rows(12, 0.5, [0.72, 0.73, 0.74]))
    text = "\n".join(EXPERIMENTS["late_regime_search"].figures(runs, [], tmp_path))
    # depth 6: +2, +1, +1 pp: mean 1.33, sd 0.577, half 4.303 * 0.577 / sqrt 3 = 1.43
    assert "| 6 | 0.3 | 3 | 72.33 ± 1.43 | 100.00 ± 0.00 | 27.67 ± 1.43 | 1.33 ± 1.43 | inconclusive" in text
    # depth 12: +2, +3, +4 pp: mean 3, sd 1, half 2.48; never paired with depth 6's rate 0
    assert "| 12 | 0.5 | 3 | 73.00 ± 2.48 | 100.00 ± 0.00 | 27.00 ± 2.48 | 3.00 ± 2.48 | reproduced |" in text
    assert "| 12 | 0.0 | 3 | 70.00 ± 0.00 | 100.00 ± 0.00 | 30.00 ± 0.00 | - | - |" in text
    assert (tmp_path / "late_regime_search.png").is_file()
    [row] = EXPERIMENTS["late_regime_search"].glance(runs, [], tmp_path)
    assert row["verdict"] == "1 inconclusive (interval includes 0), 1 reproduced"
    assert (row["effect"], row["seeds"], row["hardware"]) == ("+1.33 to +3.00 pp", "3 per setting", "cpu")
    with pytest.raises(ValueError, match="several hardware kinds"):
        EXPERIMENTS["late_regime_search"].figures(runs + rows(6, 0.0, [0.7], "NVIDIA H200"), [], tmp_path)
