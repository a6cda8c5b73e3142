"""The dynamics metrics (direction variance and error, bias/variance, noise-to-signal, g_hat's
sampling error, model distance) against hand values, numpy brute force and torch.func."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import brute_noise_to_signal, ce
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
from repro.analysis.gradients import flat_params


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
