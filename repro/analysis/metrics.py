"""Metrics on flattened gradients: one row of a G x P tensor per mini-batch gradient.

Everything reduces to inner products, computed as one float64 matrix product per chunk of
parameters (no per-parameter Python loops, no G x P float64 copy), so |G| gradients of a ViT-T
cost their float32 storage plus a few hundred MB. A zero gradient has no direction: the direction
metrics raise on one rather than return NaN.
"""
from __future__ import annotations

import math

import torch

CHUNK = 1 << 20  # parameters per float64 chunk


def as_matrix(grads) -> torch.Tensor:
    """A G x P tensor from a tensor or a list of flat tensors."""
    g = grads if isinstance(grads, torch.Tensor) else torch.stack(list(grads))
    if g.dim() != 2:
        raise ValueError(f"expected G x P gradients (or a list of flat tensors), got {tuple(g.shape)}")
    return g


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T in float64, accumulated over chunks of the parameter axis."""
    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[1], CHUNK):
        out += a[:, start:start + CHUNK].double() @ b[:, start:start + CHUNK].double().T
    return out


def check_nonzero(sq_norms: torch.Tensor, what: str) -> None:
    zero = (sq_norms == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(f"{what} {zero} is all zeros: a zero vector has no direction, so its "
                         "cosine is undefined (no loss signal reached those parameters)")


def grad_norm(grad: torch.Tensor) -> float:
    """L2 norm of a flattened gradient (dropped units simply contribute zeros)."""
    return inner(grad[None], grad[None]).sqrt().item()


def model_distance(current: torch.Tensor, initial: torch.Tensor) -> float:
    """||W_t - W_0||_2 between two flat parameter vectors (repro.analysis.gradients.flat_params)."""
    if current.numel() != initial.numel():
        raise ValueError(f"the model has {current.numel()} trainable parameters but the initial "
                         f"copy has {initial.numel()}: it belongs to another model")
    return grad_norm(current - initial.to(current.device))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    k = inner(torch.stack([a, b]), torch.stack([a, b]))
    check_nonzero(k.diagonal(), "vector")
    return (k[0, 1] / (k[0, 0] * k[1, 1]).sqrt()).item()


def grad_direction_variance(grads) -> float:
    """2 / (G (G - 1)) * sum_{i<j} (1 - cos(g_i, g_j)): mean pairwise cosine distance."""
    g = as_matrix(grads)
    n = g.shape[0]
    if n < 2:
        raise ValueError(f"direction variance needs at least 2 gradients, got {n}")
    k = inner(g, g)
    check_nonzero(k.diagonal(), "gradient")
    norms = k.diagonal().sqrt()
    cos = k / (norms[:, None] * norms[None, :])
    return (1 - (cos.sum() - cos.diagonal().sum()) / (n * (n - 1))).item()


def grad_direction_error(grads, full_grad: torch.Tensor) -> float:
    """1 / G * sum_i (1 - cos(g_i, g_hat)): mean cosine distance to the whole-set gradient."""
    g = as_matrix(grads)
    if full_grad.shape != g.shape[1:]:
        raise ValueError(f"reference gradient has shape {tuple(full_grad.shape)}, the gradients "
                         f"have {g.shape[1]} values each")
    sq = inner(g, g).diagonal()
    ref_sq = inner(full_grad[None], full_grad[None])[0]
    check_nonzero(sq, "gradient")
    check_nonzero(ref_sq, "reference gradient")
    cos = inner(g, full_grad[None])[:, 0] / (sq * ref_sq).sqrt()
    return (1 - cos.mean()).item()


def bias_variance(grads, full_grad: torch.Tensor) -> dict:
    """The mini-batch gradient as an estimator of g_hat: bias ||mean_i g_i - g_hat|| and
    variance mean_i ||g_i - mean g||^2, so that mean_i ||g_i - g_hat||^2 = bias^2 + variance."""
    g = as_matrix(grads)
    n = g.shape[0]
    k = inner(g, g)
    to_ref = inner(g, full_grad[None])[:, 0]
    ref_sq = inner(full_grad[None], full_grad[None])[0, 0]
    mean_sq = k.sum() / n**2
    bias_sq = mean_sq - 2 * to_ref.sum() / n + ref_sq
    variance = k.diagonal().sum() / n - mean_sq
    return {"bias": bias_sq.clamp_min(0).sqrt().item(), "variance": variance.clamp_min(0).item()}


def noise_to_signal(grads, batch_size: int) -> dict:
    """Per-sample gradient noise against signal, from G mini-batch gradients of `batch_size`
    samples each (McCandlish et al. 2018's simple noise scale):

    - grad_noise = B * tr Cov(g), Cov estimated without bias (1 / (G - 1)): the per-sample
      gradient covariance trace (dropout masks included), for batches small against the set;
    - grad_signal = ||E g||^2, estimated as ||mean g||^2 - tr Cov(g) / G (unbiased);
    - noise_to_signal = their ratio, batch independent: a measurement batch B sees a mini-batch
      noise-to-signal of noise_to_signal / B. NaN when the signal estimate is not positive.
    """
    g = as_matrix(grads)
    n = g.shape[0]
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 gradients, got {n}")
    k = inner(g, g)
    mean_sq = (k.sum() / n**2).item()
    trace = (k.diagonal().sum() / n).item() - mean_sq
    trace *= n / (n - 1)
    signal = mean_sq - trace / n
    noise = batch_size * trace
    return {"grad_noise": noise, "grad_signal": signal,
            "noise_to_signal": noise / signal if signal > 0 else math.nan}


def subset_error(half_a: torch.Tensor, n_a: int, half_b: torch.Tensor, n_b: int, population: int) -> float:
    """How far the mean of two halves (n_a, n_b samples, together a simple random sample of
    `population` without replacement) lies from the population's mean, estimated from the
    halves' disagreement: with S the per-sample covariance, E||g_a - g_b||^2 =
    tr S * M (1/n_a + 1/n_b) / (M - 1) and E||mean - mu||^2 = tr S * (M - N) / (N (M - 1)).
    Returns the root of the latter's estimate (0 when the sample is the whole population)."""
    n = n_a + n_b
    return grad_norm(half_a - half_b) * math.sqrt(n_a * n_b * (population - n) / (n**2 * population))
