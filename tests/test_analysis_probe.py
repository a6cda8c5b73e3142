"""The probe on a micro model: masks-on / masks-off decomposition against brute force, its
seeding (per seed, shared by the arms) and the steps it measures at."""
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import brute_noise_to_signal, ce
from omegaconf import OmegaConf
from torch.func import grad

from repro.analysis.gradients import flat_params
from repro.analysis.probe import DECOMPOSED, DynamicsProbe, measurement_steps
from repro.report.figures.decomposition import effects
from repro.schedules import DropController, DropSchedule


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
        assert derived == pytest.approx({"paper": on - base, "mask": on - off, "trajectory": off - base,
                                         "relative": (on - off) / off}, rel=1e-4, abs=1e-6), key
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
