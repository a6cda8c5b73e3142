"""Measuring real runs: the probe leaves training bitwise unchanged, post-hoc and batch-axis
measurement of saved weights equal live measurement, and a step's values ignore the cadence."""
import json

import pytest
import torch
from conftest import TINY, make_cfg

from repro.analysis.batch_axis import measure_axis
from repro.analysis.measure import measure_run
from repro.analysis.probe import DECOMPOSED
from repro.loop.run import run
from repro.report.figures.decomposition import batch_axis_lines, plot_batch_axis


def events(path, kind):
    return [json.loads(line) for line in open(path) if json.loads(line)["event"] == kind]


ANALYSIS = ["analysis.every=8", "analysis.full_subset=256", "analysis.num_grads=4", "drop=dropout"]


@pytest.mark.slow
def test_measuring_leaves_training_bitwise_unchanged_and_matches_post_hoc(tmp_path):
    run(make_cfg(*TINY, *ANALYSIS, "analysis.mode=off"), tmp_path / "off")
    run(make_cfg(*TINY, *ANALYSIS, "analysis.mode=live"), tmp_path / "live")
    run(make_cfg(*TINY, *ANALYSIS, "analysis.mode=snapshot"), tmp_path / "snap")
    for kind in ("train", "eval"):
        strip = [{k: v for k, v in e.items() if k != "img_per_s"}
                 for e in events(tmp_path / "off" / "metrics.jsonl", kind)]
        for other in ("live", "snap"):
            assert strip == [{k: v for k, v in e.items() if k != "img_per_s"}
                             for e in events(tmp_path / other / "metrics.jsonl", kind)]
    a = torch.load(tmp_path / "off" / "checkpoint.pt")["model"]
    b = torch.load(tmp_path / "live" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    live = events(tmp_path / "live" / "metrics.jsonl", "analysis")
    assert [e["step"] for e in live] == [0, 8, 16, 24, 32]
    assert live[0]["model_distance"] == 0 and live[-1]["model_distance"] > 0
    assert "update_cosine" in live[1] and "blocks.1/grad_direction_variance" in live[1]
    for e in live:                                  # masks on and off measured, g_hat's error too
        assert e["full_grad_error"] > 0 and e["masks_off/grad_norm"] != e["grad_norm"]
        for key in DECOMPOSED:
            assert e[f"mask_effect/{key}"] == pytest.approx(e[key] - e[f"masks_off/{key}"], nan_ok=True)
    post = events(measure_run(tmp_path / "snap"), "analysis")
    assert [e["step"] for e in post] == [0, 8, 16, 24, 32]
    for x, y in zip(live, post):
        for key in ("grad_norm", "model_distance", "grad_direction_variance", "grad_direction_error",
                    "bias", "variance", "blocks.0/grad_norm", "noise_to_signal", "full_grad_error",
                    "masks_off/grad_direction_variance", "masks_off/noise_to_signal"):
            assert x[key] == pytest.approx(y[key], rel=1e-5, nan_ok=True), key


@pytest.mark.slow
def test_batch_axis_measures_saved_weights_as_the_live_probe_does(tmp_path):
    """At the initialization and the final checkpoint, masks on and off for a dropout run and
    off only for a plain one; at the training batch and step 0 the values are the live probe's,
    and the two arms' masks-off values at their shared initialization are equal."""
    run(make_cfg(*TINY, *ANALYSIS, "analysis.mode=live"), tmp_path / "p0.1")
    run(make_cfg(*TINY, *ANALYSIS, "analysis.mode=live", "drop.rate=0.0"), tmp_path / "p0")
    rows = {arm: measure_axis(tmp_path / arm, [8, 32]) for arm in ("p0.1", "p0")}
    assert [(r["step"], r["batch_size"], r["masks"]) for r in rows["p0.1"]] == [
        (step, size, masks) for step in (0, 32) for size in (8, 32) for masks in ("off", "on")]
    assert [(r["step"], r["batch_size"], r["masks"]) for r in rows["p0"]] == [
        (step, size, "off") for step in (0, 32) for size in (8, 32)]
    live = events(tmp_path / "p0.1" / "metrics.jsonl", "analysis")[0]
    off, on = [r for r in rows["p0.1"] if r["step"] == 0 and r["batch_size"] == 32]
    assert (off["masks"], on["masks"]) == ("off", "on")
    for key in (*DECOMPOSED, "bias", "variance", "full_grad_error", "full_grad_norm"):
        assert on[key] == pytest.approx(live[key], rel=1e-5, nan_ok=True), key
    for key in DECOMPOSED:
        assert off[key] == pytest.approx(live[f"masks_off/{key}"], rel=1e-5, nan_ok=True), key
        plain = next(r for r in rows["p0"] if r["step"] == 0 and r["batch_size"] == 32)
        assert off[key] == pytest.approx(plain[key], rel=1e-6, nan_ok=True), key   # trajectory effect 0
    table = batch_axis_lines(rows["p0.1"] + rows["p0"])
    assert len(table) == 4 + 2 * 2 * len(DECOMPOSED)
    assert "| 32 | 0 | 32 | grad_direction_variance |" in "\n".join(table)
    plot_batch_axis(rows["p0.1"] + rows["p0"], tmp_path)
    assert (tmp_path / "batch_axis.png").stat().st_size > 0 and (tmp_path / "batch_axis.pdf").is_file()


def test_a_measurement_does_not_depend_on_which_other_steps_are_measured(tmp_path):
    """So a sparser cadence reproduces a denser one's values at the steps they share."""
    run(make_cfg(*TINY, *ANALYSIS, "analysis.mode=live"), tmp_path / "dense")
    run(make_cfg(*TINY, *ANALYSIS, "analysis.mode=live", "analysis.every=0", "analysis.steps=[16]"),
        tmp_path / "sparse")
    (sparse,) = events(tmp_path / "sparse" / "metrics.jsonl", "analysis")
    (dense,) = [e for e in events(tmp_path / "dense" / "metrics.jsonl", "analysis") if e["step"] == 16]
    assert "update_cosine" in sparse
    assert sparse == dense
