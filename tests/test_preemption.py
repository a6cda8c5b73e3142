"""repro.preemption.agreed_stop: one rank's stop request stops every rank at the same step."""
from types import SimpleNamespace

import torch

from repro.distributed import SINGLE
from repro.preemption import agreed_stop

CPU = torch.device("cpu")


def world_where_some_rank(asks: bool) -> SimpleNamespace:
    """A world of several ranks as this rank sees it: `any` is true when another rank asks."""
    return SimpleNamespace(any=lambda flag, device: flag or asks)


def test_a_single_process_stops_for_its_own_reason_only():
    assert agreed_stop(lambda: "SIGTERM", SINGLE, CPU) == "SIGTERM"
    assert agreed_stop(lambda: None, SINGLE, CPU) is None


def test_a_rank_stops_when_another_rank_asks():
    assert agreed_stop(lambda: None, world_where_some_rank(True), CPU) == "a stop request on another rank"
    assert agreed_stop(lambda: "SIGUSR1", world_where_some_rank(True), CPU) == "SIGUSR1"
    assert agreed_stop(lambda: None, world_where_some_rank(False), CPU) is None
