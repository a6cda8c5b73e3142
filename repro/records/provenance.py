"""What produced a run: git commit, package versions, hardware and command line."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

from repro.records.atomic import write_atomic

PACKAGES = ("torch", "torchvision", "timm", "hydra-core", "wandb", "numpy", "matplotlib")


CODE_DIR = Path(__file__).resolve().parent


def git(cwd: Path, *args: str) -> bytes:
    """The output of `git args` in `cwd` (empty where git fails: no repository there)."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10).stdout


def git_commit(cwd: Path = CODE_DIR) -> str:
    """HEAD of the repository holding the code, with '+dirty' when the tree has changes. A copy of
    the tree without its .git (a remote machine) names its commit in REPRO_COMMIT: recorded as
    '<commit> (declared)', since nothing there can check it."""
    if os.environ.get("REPRO_COMMIT"):
        return f"{os.environ['REPRO_COMMIT']} (declared)"
    try:
        commit = git(cwd, "rev-parse", "HEAD").decode().strip()
        dirty = git(cwd, "status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def uncommitted_diff(cwd: Path | None = None) -> bytes:
    """What a '+dirty' commit ran with: `git diff HEAD` of the tracked files (binary ones too, so
    that `git apply` restores the tree) of the repository holding the code, but for results/ (the
    committed records, which no run reads; their diffs run to megabytes). Empty for a clean tree,
    a declared commit (REPRO_COMMIT) or no repository."""
    if os.environ.get("REPRO_COMMIT"):
        return b""
    try:
        return git(cwd or CODE_DIR, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff",
                   "--", ":/", ":(top,exclude)results")
    except (OSError, subprocess.SubprocessError):
        return b""


def record_uncommitted(folder: Path) -> dict:
    """Save `uncommitted_diff()` as folder/uncommitted.diff (and drop an earlier launch's where the
    tree is now clean); return the provenance entry naming it by its sha256 ({} when clean)."""
    diff, path = uncommitted_diff(), Path(folder) / "uncommitted.diff"
    if not diff:
        path.unlink(missing_ok=True)
        return {}
    write_atomic(path, diff)
    return {"uncommitted_sha256": hashlib.sha256(diff).hexdigest()}


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


UNKNOWN_ISA = "cpu, instruction set unknown"


def numerics(device: torch.device) -> dict:
    """What decides a run's floating-point trajectory besides seed, config and code: the device,
    the CPU instruction set torch dispatches to (AVX2 and AVX-512 kernels round differently) and
    the torch version."""
    return {"device": str(device), "hardware": hardware(device),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def hardware_kind(record: dict) -> str:
    """The numerics kind runs are paired within, from a provenance record: 'cpu <instruction set>
    torch <version>' (fp32, any core count) or '<GPU name> torch <version>' (bf16 autocast), with
    ' (batched)' for seeds trained as one batched model (repro.loop.run_batched: other dropout masks).
    Records from before the instruction set was recorded are 'cpu, instruction set unknown' on a
    CPU and the GPU's name alone on a GPU: never guessed. Runs of different kinds are never paired:
    their trajectories diverge seed by seed even when their means agree."""
    cpu = str(record.get("device", "cpu")).startswith("cpu")
    if "cpu_capability" not in record:
        kind = UNKNOWN_ISA if cpu else record["hardware"]
    else:
        kind = f"cpu {record['cpu_capability']}" if cpu else record["hardware"]
        kind += f" torch {record['torch']}"
    return f"{kind}{BATCHED}" if record.get("batched") else kind


BATCHED = " (batched)"


def single_run_kind(kind: str) -> str:
    """The kind a single run on `kind`'s device has (a batched kind's without its suffix)."""
    return kind.removesuffix(BATCHED)


def provenance(device: torch.device) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"commit": git_commit(), "python": platform.python_version(), "versions": versions,
            "host": socket.gethostname(), **numerics(device), "argv": sys.argv}


def save_result(result: dict, folder: Path, stem: str, device: torch.device) -> Path:
    """Write a benchmark's result with its provenance, the hardware and torch version in the
    file name, and print it."""
    result = {**result, "provenance": provenance(device)}
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))
    hw = result["provenance"]["hardware"].replace(" ", "").replace(",", "_")
    out = Path(folder) / f"{stem}_{hw}_torch{torch.__version__}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return out
