"""repro.loop.step.ModelStep on a linear model against hand-computed expectations: one SGD step at
the LR scheduled for its step and the drop rate it is given, the same step split into
micro-batches, a non-finite step skipped and recorded, the random draws seeded by (seeds, step,
rank), and a checkpoint round trip that continues as the uninterrupted model does."""
import copy
import json

import numpy as np
import pytest
import torch

from repro.distributed import SINGLE, World
from repro.loop.step import ModelStep
from repro.records.logger import MetricsLog

X = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
Y = torch.tensor([[1.0], [0.0], [2.0], [-1.0]])
W = [[0.5, -0.25, 1.0]]


class Recorder:
    """A drop controller and an LR schedule that record what they are told: LR 0.1 * (step + 1)."""

    def __init__(self, optimizer):
        self.optimizer, self.rates, self.steps = optimizer, [], []

    def apply(self, rate):
        self.rates.append(rate)

    def step_update(self, step):
        self.steps.append(step)
        for group in self.optimizer.param_groups:
            group["lr"] = 0.1 * (step + 1)

    def state_dict(self):
        return {"steps": list(self.steps)}

    def load_state_dict(self, state):
        self.steps = list(state["steps"])


def linear_step(log_path=None, world=SINGLE, momentum=0.0, accum_steps=1, skip_nonfinite=False,
                seeds=(5,)) -> ModelStep:
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=momentum)
    recorder = Recorder(optimizer)
    return ModelStep(model=model, parallel=model, controller=recorder, optimizer=optimizer,
                     scheduler=recorder, mixup=None, criterion=torch.nn.MSELoss(), seeds=seeds, amp=False,
                     accum_steps=accum_steps, skip_nonfinite=skip_nonfinite, eval_batch_size=4,
                     device=torch.device("cpu"), log=MetricsLog(log_path), world=world)


def by_hand(step: int) -> tuple[float, np.ndarray]:
    """The mean squared error at W and W after one SGD step at LR 0.1 * (step + 1)."""
    x, y, w = X.double().numpy(), Y.double().numpy(), np.array(W).T
    residual = x @ w - y
    gradient = 2 * x.T @ residual / len(x)
    return float(np.mean(residual ** 2)), (w - 0.1 * (step + 1) * gradient).T


@pytest.mark.parametrize("accum_steps", [1, 2])
def test_a_step_is_one_sgd_update_at_its_scheduled_lr_and_given_rate(accum_steps):
    step = linear_step(accum_steps=accum_steps)
    loss = step.take(2, 0.2, X, Y)
    expected_loss, expected_w = by_hand(2)
    assert loss.shape == (1,) and loss.item() == pytest.approx(expected_loss, rel=1e-6)
    assert step.model.weight.detach().numpy() == pytest.approx(expected_w, rel=1e-6)
    assert step.controller.rates == [0.2] and step.scheduler.steps == [2] and step.lr == pytest.approx(0.3)


def test_a_non_finite_step_is_skipped_and_recorded(tmp_path):
    step = linear_step(tmp_path / "metrics.jsonl", skip_nonfinite=True)
    loss = step.take(2, 0.2, X, torch.full_like(Y, float("nan")))
    assert loss.item() == 0.0
    assert step.model.weight.tolist() == W
    step.log.close()
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["event"] == "nonfinite" and record["step"] == 3 and record["action"] == "skipped step"


def draws(step: ModelStep, at: int) -> tuple[list, float]:
    step.begin(at, 0.1)
    return torch.rand(4).tolist(), float(np.random.rand())


def test_random_draws_are_seeded_by_seed_step_and_rank():
    step, other_rank = linear_step(), linear_step(world=World(rank=1))
    first = draws(step, 3)
    torch.rand(100), np.random.rand(100)                      # whatever was drawn in between
    assert draws(step, 3) == first                            # a resumed step draws the same
    assert draws(step, 4) != first
    assert draws(other_rank, 3) != first                      # another rank, its own masks
    assert draws(linear_step(seeds=(5, 6)), 3) != first      # a seed batch, its own generator


def test_a_checkpoint_round_trip_continues_as_the_uninterrupted_model():
    whole, resumed = linear_step(momentum=0.9), linear_step(momentum=0.9)
    for at in range(2):
        whole.take(at, at / 10, X, Y)
    states = copy.deepcopy(whole.state_dict())               # as written: no tensor shared
    assert [set(s) for s in states] == [{"model", "optimizer", "scheduler"}]
    resumed.load_state_dict(states)
    assert resumed.scheduler.steps == [0, 1]
    whole.take(2, 0.2, X, Y)
    resumed.take(2, 0.2, X, Y)
    assert torch.equal(resumed.model.weight, whole.model.weight)
    assert not torch.equal(whole.model.weight, linear_step().model.weight)


def test_seed_draws_leaves_the_cpu_generator_as_torch_manual_seed_does():
    from repro.seeding import seed_draws
    torch.manual_seed(123)
    expected = torch.get_rng_state()
    torch.manual_seed(7)
    seed_draws(123, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), expected)
    assert torch.rand(3).tolist() == (torch.manual_seed(123), torch.rand(3))[1].tolist()
