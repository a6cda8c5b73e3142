"""The decomposition figures and tables (paper, mask and trajectory effects, the mask effect
relative to the masks-off value; per training batch) built from hand-valued curves.csv analysis
rows."""
from repro.records.tables import write_csv
from repro.report.figures.dynamics import make
from repro.report.figures.training_batch import make_batch_axis


def analysis_row(rate: float, seed: int, step: int, train_batch: int = 128) -> dict:
    """A curves.csv analysis row: plain runs measure 1 + seed, dropout runs 4 + seed + step / 100
    with masks on and 2 + seed with masks off (every metric alike)."""
    on, off = (4 + seed + step / 100, 2 + seed) if rate else (1 + seed, 1 + seed)
    keys = ("grad_norm", "model_distance", "grad_direction_variance", "grad_direction_error", "bias",
            "variance", "noise_to_signal")
    return {"event": "analysis", "hardware": "cpu", "drop.rate": rate, "seed": seed, "step": step,
            "train_batch_size": train_batch, "full_grad_norm": 2.0, "full_grad_error": 0.2,
            **{k: on for k in keys}, **{f"masks_off/{k}": off for k in keys}}


def test_decomposition_figures_and_tables(tmp_path):
    """Hand values: early (step 1) paper 4.01 - 1 = 3.01, mask 2.01, trajectory 1; late (steps
    200, 300) paper 5.5, mask 4.5; g_hat's relative error 0.1, its direction-error floor 0.005."""
    rows = [analysis_row(rate, seed, step) for rate in (0.0, 0.1) for seed in (0, 1)
            for step in (0, 1, 200, 300)]
    text = "\n".join(make([], rows, tmp_path))
    # relative: the mask effect over the masks-off value, per seed 2.01 / 2 and 2.01 / 3
    assert "| early | grad_direction_variance | 3.0100 ± 0.0000 | 2.0100 ± 0.0000 | 1.0000 ± 0.0000 | " \
        "0.8375 ± 2.1283 |" in text
    assert "| late | noise_to_signal | 5.5000 ± 0.0000 | 4.5000 ± 0.0000 | 1.0000 ± 0.0000 |" in text
    assert "| 300 | grad_norm | 6.0000 ± 0.0000 | 5.0000 ± 0.0000 | 1.0000 ± 0.0000 |" in text
    assert "0.1000 ± 0.0000 over 16 measurements" in text and "about 0.005" in text
    assert (tmp_path / "decomposition.png").is_file() and (tmp_path / "dynamics.png").is_file()
    big = [{**r, "train_batch_size": 1024} for r in rows]
    other = [analysis_row(rate, 5, step) for rate in (0.0, 0.1) for step in (0, 1, 200, 300)]
    write_csv(rows + other, tmp_path / "dynamics_decompose" / "curves.csv")   # the batch-128 arm
    text = "\n".join(make_batch_axis([], big, tmp_path / "dynamics_batch", "dynamics_decompose"))
    assert "## Training batch 128" in text and "## Training batch 1024" in text
    assert text.count("| early | grad_norm | 3.0100 ± 0.0000 |") == 2
    for batch in (128, 1024):    # seed 5, not trained at 1024, is left out of the 128 arm
        assert (f"| {batch} | grad_direction_variance | 2 | 3.0100 ± 0.0000 | 2.0100 ± 0.0000 | "
                "1.0000 ± 0.0000 |") in text
    assert (tmp_path / "dynamics_batch" / "decomposition_b1024.png").is_file()
    assert (tmp_path / "dynamics_batch" / "dynamics_b128.png").is_file()
