"""The dynamics metrics against hand values, numpy brute force and torch.func; the masks-on /
masks-off decomposition against brute force on a micro model; the probe's seeding (per seed,
shared by the arms) and g_hat's sampling error against simulation; the probe leaves training
bitwise unchanged; post-hoc and batch-axis measurement of saved weights equal live measurement."""
import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import TINY, make_cfg
from omegaconf import OmegaConf
from torch.func import functional_call, grad

from repro.analysis import (
    bias_variance,
    cosine,
    flat_grad,
    full_gradient,
    grad_direction_error,
    grad_direction_variance,
    grad_norm,
    minibatch_gradients,
    model_distance,
    noise_to_signal,
    parameter_blocks,
    subset_error,
)
from repro.analysis.batch_axis import measure_axis
from repro.analysis.gradients import flat_params
from repro.analysis.measure import measure_run
from repro.analysis.probe import DECOMPOSED, DynamicsProbe, measurement_steps
from repro.figures.decomposition import batch_axis_lines, effects, plot_batch_axis
from repro.figures.dynamics import make, make_batch_axis
from repro.run import run
from repro.schedules import DropController, DropSchedule


def test_hand_computed_values():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # Pairwise cosines: 0, 1/sqrt2, 1/sqrt2.
    assert grad_direction_variance(g) == pytest.approx((1 + 2 * (1 - 1 / math.sqrt(2))) / 3)
    ref = torch.tensor([1.0, 0.0])
    assert grad_direction_error(g, ref) == pytest.approx((0 + 1 + (1 - 1 / math.sqrt(2))) / 3)
    assert grad_norm(torch.tensor([3.0, 4.0])) == 5.0
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.0])) == pytest.approx(-1)
    bv = bias_variance(g, ref)              # mean (2/3, 2/3); deviations hand-summed: 4/3 / 3
    assert bv["bias"] == pytest.approx(math.hypot(2 / 3 - 1, 2 / 3))
    assert bv["variance"] == pytest.approx((5 / 9 + 5 / 9 + 2 / 9) / 3)
    # Unbiased covariance trace (4/3) / 2; signal ||mean||^2 - trace / 3 = 8/9 - 2/9; batch 2.
    assert noise_to_signal(g, batch_size=2) == pytest.approx(
        {"grad_noise": 4 / 3, "grad_signal": 2 / 3, "noise_to_signal": 2.0})
    assert math.isnan(noise_to_signal(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), 4)["noise_to_signal"])


def test_against_numpy_brute_force():
    rng = np.random.default_rng(0)
    g, ref = rng.normal(size=(7, 50)), rng.normal(size=50)

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    pairs = list(itertools.combinations(range(7), 2))
    gdv = sum(1 - cos(g[i], g[j]) for i, j in pairs) * 2 / (7 * 6)
    gde = np.mean([1 - cos(row, ref) for row in g])
    mean = g.mean(0)
    bias, var = np.linalg.norm(mean - ref), np.mean([np.sum((row - mean) ** 2) for row in g])
    tg, tref = torch.tensor(g, dtype=torch.float32), torch.tensor(ref, dtype=torch.float32)
    assert grad_direction_variance(tg) == pytest.approx(gdv, rel=1e-5)
    assert grad_direction_variance(list(tg)) == pytest.approx(gdv, rel=1e-5)
    assert grad_direction_error(tg, tref) == pytest.approx(gde, rel=1e-5)
    bv = bias_variance(tg, tref)
    assert bv["bias"] == pytest.approx(bias, rel=1e-5) and bv["variance"] == pytest.approx(var, rel=1e-5)
    mse = np.mean([np.sum((row - ref) ** 2) for row in g])
    assert bv["bias"] ** 2 + bv["variance"] == pytest.approx(mse, rel=1e-5)
    shifted = g + 0.5                           # a mean that stands out of the noise
    assert noise_to_signal(torch.tensor(shifted, dtype=torch.float32), 32) == pytest.approx(
        brute_noise_to_signal(shifted, 32), rel=1e-5)


def brute_noise_to_signal(g: np.ndarray, batch_size: int) -> dict:
    trace = np.trace(np.cov(g.T, ddof=1))
    signal = np.sum(g.mean(0) ** 2) - trace / len(g)
    return {"grad_noise": batch_size * trace, "grad_signal": signal,
            "noise_to_signal": batch_size * trace / signal}


@pytest.mark.parametrize("subset", [20, 21, 60])          # even and uneven halves, the whole set
def test_subset_error_estimates_the_sampling_error_of_g_hat(subset):
    """Simulated: random subsets of a population of 60 'per-sample gradients'; the mean of the
    estimate's square matches both the exact E||mean_S - mu||^2 and the simulated one."""
    rng = np.random.default_rng(0)
    population = rng.normal(size=(60, 4)) + np.array([3.0, 0.0, -1.0, 0.5])
    mu, m = population.mean(0), len(population)
    exact = np.trace(np.cov(population.T, ddof=0)) * (m - subset) / (subset * (m - 1))
    estimates, errors = [], []
    for _ in range(4000):
        sample = torch.tensor(population[rng.permutation(m)[:subset]])
        half = subset // 2
        a, b = sample[:half].mean(0), sample[half:].mean(0)
        estimates.append(subset_error(a, half, b, subset - half, m) ** 2)
        errors.append(np.sum((sample.mean(0).numpy() - mu) ** 2))
    if subset == m:
        assert max(estimates) == 0 and max(errors) < 1e-20
        return
    assert np.mean(errors) == pytest.approx(exact, rel=0.05)
    assert np.mean(estimates) == pytest.approx(exact, rel=0.05)


def test_edge_cases_raise_clearly():
    with pytest.raises(ValueError, match="at least 2 gradients"):
        grad_direction_variance(torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"gradient\(s\)|\[1\] is all zeros"):
        grad_direction_variance(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="reference gradient .* all zeros"):
        grad_direction_error(torch.ones(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        grad_direction_error(torch.ones(2, 3), torch.ones(2))


class Micro(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.unused = nn.Linear(5, 4), nn.Linear(4, 3), nn.Linear(2, 2)
        self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x))) + self.frozen


def ce(logits, y):
    return F.cross_entropy(logits, y)


def func_grad(model, x, y):
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    g = grad(lambda p: ce(functional_call(model, {**p, "frozen": model.frozen}, (x,)), y))(params)
    return torch.cat([g[n].flatten() for n in params])


def test_gradients_match_torch_func_and_the_one_batch_mean():
    torch.manual_seed(0)
    model, x, y = Micro(), torch.randn(23, 5), torch.randint(0, 3, (23,))
    batches = [(x[i:i + 7], y[i:i + 7]) for i in range(0, 23, 7)]   # 7, 7, 7, 2: uneven
    full = full_gradient(model, ce, batches)
    assert torch.allclose(full, func_grad(model, x, y), atol=1e-6)  # one batch of all 23
    grads = minibatch_gradients(model, ce, batches, num=4)
    for row, (xb, yb) in zip(grads, batches):
        assert torch.allclose(row, func_grad(model, xb, yb), atol=1e-6)
    # unused parameters give zeros; frozen ones are left out of the flat vector
    assert grads.shape[1] == 5 * 4 + 4 + 4 * 3 + 3 + 2 * 2 + 2
    assert torch.all(grads[:, -6:] == 0)
    assert model.fc1.weight.grad is None                             # no trace left


def test_minibatch_gradients_use_dropout_full_gradient_does_not():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    same = [(x, y)] * 3
    grads = minibatch_gradients(model, ce, same, num=3, seed=1)
    assert not torch.equal(grads[0], grads[1])                       # different masks
    assert torch.equal(grads, minibatch_gradients(model, ce, same, num=3, seed=1))
    assert torch.equal(full_gradient(model, ce, same[:1]), full_gradient(model, ce, same[:1]))
    model.eval()
    assert torch.allclose(full_gradient(model, ce, same[:1]), func_grad_seq(model, x, y), atol=1e-6)
    assert model.training is False                                   # mode restored


def func_grad_seq(model, x, y):
    model.zero_grad()
    ce(model(x), y).backward()
    out = flat_grad(model).clone()
    model.zero_grad(set_to_none=True)
    return out


def test_model_distance_and_blocks():
    torch.manual_seed(0)
    model = Micro()
    initial = flat_params(model)
    with torch.no_grad():
        model.fc2.bias += torch.tensor([3.0, 0.0, 4.0])
    assert model_distance(flat_params(model), initial) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="another model"):
        model_distance(flat_params(model)[:-1], initial)
    blocks = parameter_blocks(model)
    assert list(blocks) == ["fc1", "fc2", "unused"] and blocks["fc2"] == [(24, 39)]


class DropMicro(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(5, 8), nn.Dropout(p), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.drop(self.fc1(x))))


def hand_forward(params, x, mask):
    """DropMicro's forward written out, with an explicit (scaled) dropout mask."""
    h = (x @ params["fc1.weight"].T + params["fc1.bias"]) * mask
    return torch.tanh(h) @ params["fc2.weight"].T + params["fc2.bias"]


def hand_grad(model, x, y, mask) -> np.ndarray:
    params = {n: p.detach() for n, p in model.named_parameters()}
    g = grad(lambda p: ce(hand_forward(p, x, mask), y))(params)
    return torch.cat([g[n].flatten() for n in params]).double().numpy()


PROBE_CFG = dict(steps=[3], every=0, log_first=0, log_points=0, num_grads=5, batch_size=None,
                 full_subset=40, full_batch_size=16, per_block=False, seed=0)


STEP = 3   # the micro probes measure at step 3 of 10


def micro_probe(model, rate: float, seed: int, x, y, batch_size: int = 8) -> DynamicsProbe:
    """A probe of a micro model trained 10 steps at a constant drop rate, on images x, y."""
    kind = "dropout" if rate > 0 else "none"
    return DynamicsProbe(OmegaConf.create(PROBE_CFG), model, SimpleNamespace(x=x, y=y, normalize=lambda v: v),
                         DropSchedule(kind, np.full(10, rate)), DropController(model, kind), seed, batch_size,
                         flat_params(model))


def brute_metrics(grads: np.ndarray, full: np.ndarray, batch_size: int) -> dict:
    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    pairs = list(itertools.combinations(range(len(grads)), 2))
    return {"grad_norm": np.mean([np.linalg.norm(g) for g in grads]),
            "grad_direction_variance": np.mean([1 - cos(grads[i], grads[j]) for i, j in pairs]),
            "grad_direction_error": np.mean([1 - cos(g, full) for g in grads]),
            "noise_to_signal": brute_noise_to_signal(grads, batch_size)["noise_to_signal"]}


def test_mask_and_trajectory_effects_against_brute_force_on_a_micro_model():
    """A dropout model (p = 0.5) at weights 'trained with dropout' and a plain one at other
    weights, both probed; every gradient redone by hand (explicit masks, torch.func), the metrics
    in numpy: masks on, masks off and plain values, and the three effects, agree."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    dropped, plain = DropMicro(0.5), DropMicro(0.0)
    with torch.no_grad():
        for p in dropped.parameters():
            p.add_(0.3 * torch.randn_like(p))                 # the trajectory: other weights
    masks = []
    dropped.drop.register_forward_hook(lambda m, inp, out: masks.append((out != 0) / (1 - m.p))
                                       if m.training and m.p > 0 else None)
    records, brute = {}, {}
    for name, model, rate in (("dropout", dropped, 0.5), ("plain", plain, 0.0)):
        probe = micro_probe(model, rate, seed=7, x=x, y=y)
        records[name] = probe.measure(STEP)
        batches = list(probe.random_batches(STEP, 8))
        full = np.mean([hand_grad(model, xi[None], yi[None], torch.ones(8))
                        for xi, yi in zip(probe.full_x, probe.full_y)], axis=0)
        off = np.stack([hand_grad(model, xb, yb, torch.ones(8)) for xb, yb in batches])
        brute[name, "off"] = brute_metrics(off, full, 8)
        if rate > 0:
            assert len(masks) == 5 and all(0 < (m == 0).float().mean() < 1 for m in masks)
            on = np.stack([hand_grad(model, xb, yb, mask) for (xb, yb), mask in zip(batches, masks)])
            brute[name, "on"] = brute_metrics(on, full, 8)
        assert model.drop.p == rate                                     # the step's rate, as trained
    d, p = records["dropout"], records["plain"]
    for key in DECOMPOSED:
        on, off, base = brute["dropout", "on"][key], brute["dropout", "off"][key], brute["plain", "off"][key]
        assert d[key] == pytest.approx(on, rel=1e-4), key
        assert d[f"masks_off/{key}"] == pytest.approx(off, rel=1e-4), key
        assert p[key] == p[f"masks_off/{key}"] == pytest.approx(base, rel=1e-4), key
        assert d[f"mask_effect/{key}"] == pytest.approx(on - off, rel=1e-4, abs=1e-6), key
        assert p[f"mask_effect/{key}"] == 0
        derived = effects(d[key], d[f"masks_off/{key}"], p[key])
        assert derived == pytest.approx({"paper": on - base, "mask": on - off, "trajectory": off - base},
                                        rel=1e-4, abs=1e-6), key
        assert derived["paper"] == pytest.approx(derived["mask"] + derived["trajectory"])


def test_probe_randomness_is_per_seed_and_shared_by_the_arms():
    """Seeds see different probe batches and g_hat subsets (so intervals over seeds include
    batch-sampling noise); both arms of one seed see the same ones (so the comparison is paired);
    batches of different sizes are nested."""
    x, y = torch.randn(64, 5), torch.arange(64)

    def probe_of(rate, seed, batch_size=8):
        probe = micro_probe(DropMicro(rate), rate, seed, x, y, batch_size)
        return probe, [yb.tolist() for _, yb in probe.random_batches(STEP, batch_size)]

    (a, batches_a), (b, batches_b), (c, batches_c) = probe_of(0.5, 0), probe_of(0.0, 0), probe_of(0.5, 1)
    assert batches_a == batches_b and torch.equal(a.full_y, b.full_y) and a.seed(3, 1) == b.seed(3, 1)
    assert batches_a != batches_c and not torch.equal(a.full_y, c.full_y) and a.seed(3, 1) != c.seed(3, 1)
    assert [batch[:8] for batch in probe_of(0.5, 0, 16)[1]] == batches_a


def test_measurement_steps():
    cfg = OmegaConf.create(dict(steps=[5, 500], every=100, log_first=50, log_points=4))
    assert measurement_steps(cfg, 300) == [0, 1, 4, 5, 14, 50, 100, 200, 300]


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
    assert "| early | grad_direction_variance | 3.0100 ± 0.0000 | 2.0100 ± 0.0000 | 1.0000 ± 0.0000 |" in text
    assert "| late | noise_to_signal | 5.5000 ± 0.0000 | 4.5000 ± 0.0000 | 1.0000 ± 0.0000 |" in text
    assert "| 300 | grad_norm | 6.0000 ± 0.0000 | 5.0000 ± 0.0000 | 1.0000 ± 0.0000 |" in text
    assert "0.1000 ± 0.0000 over 16 measurements" in text and "about 0.005" in text
    assert (tmp_path / "decomposition.png").is_file() and (tmp_path / "dynamics.png").is_file()
    big = [{**r, "train_batch_size": 1024} for r in rows]
    text = "\n".join(make_batch_axis([], rows + big, tmp_path))
    assert "## Training batch 128" in text and "## Training batch 1024" in text
    assert text.count("| early | grad_norm | 3.0100 ± 0.0000 |") == 2
    assert (tmp_path / "decomposition_b1024.png").is_file() and (tmp_path / "dynamics_b128.png").is_file()
