"""Data-parallel training under torchrun: NCCL on GPUs, gloo on CPU. One process per device;
rank 0 alone writes files and logs to W&B. Without torchrun everything here is a no-op."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (identity in a single process)."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool, device) -> bool:
        """True on every rank when it is true on any (e.g. one rank received SIGTERM)."""
        if self.size == 1:
            return flag
        return bool(self.sum(torch.tensor(float(flag), device=device)).item())

    def from_main(self, obj):
        """rank 0's value of `obj` on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = World()  # one process


def select_device(name: str) -> torch.device:
    """auto: CUDA if present, else the CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def export_slurm_env() -> None:
    """Under SLURM with several tasks (submitit with hydra.launcher.tasks_per_node or nodes > 1),
    derive torchrun's variables from SLURM's through submitit's helper."""
    if "WORLD_SIZE" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    from submitit.helpers import TorchDistributedEnvironment
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def launch_rank() -> int:
    """This process's rank as its launcher (torchrun, SLURM) sets it, before any process group."""
    export_slurm_env()
    return int(os.environ.get("RANK", "0"))


def setup(device_name: str) -> tuple[World, torch.device]:
    """Join the process group torchrun (or SLURM) describes (WORLD_SIZE, RANK, LOCAL_RANK) and
    pick this process's device: its own GPU, else the CPU."""
    export_slurm_env()
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), select_device(device_name)
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    local = int(os.environ["LOCAL_RANK"])
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size()), device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
