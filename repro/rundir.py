"""The run directory of a command-line launch. Hydra would create `hydra.run.dir` on every rank
before any check; instead rank 0 alone creates it (other ranks create nothing: rank 0's is the
run's), a folder that cannot be made is a one-line error, and the folders a launch created are
removed again when its run is refused, so that a refused launch leaves nothing behind."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import read_write

from repro import distributed
from repro.errors import ConfigError, refuse

RESULTS = Path(__file__).resolve().parents[1] / "results"
CREATED: list[Path] = []     # the folders this launch created for its run directory, outermost first


def make(path: Path) -> list[Path]:
    """Create `path` and its missing parents; return those it created, outermost first."""
    missing = [p for p in (path, *path.parents) if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"hydra.run.dir={path} cannot be created ({err.strerror}); choose a folder "
                          "you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):      # an existing folder, read-only (or its file system)
        raise ConfigError(f"hydra.run.dir={path} is not writable; choose a folder you can write to")
    return missing


def remove_created() -> None:
    """Remove the folders this launch created if they are still empty (its run was refused)."""
    for folder in reversed(CREATED):
        try:
            folder.rmdir()
        except OSError:          # it holds the run's files: keep it and its parents
            break
    CREATED.clear()


def warn_if_committed(run_dir: Path) -> None:
    """Warn about a run put in the repository's results/, which holds the committed tables."""
    if run_dir.resolve().is_relative_to(RESULTS):
        warnings.warn(f"{run_dir} lies in results/, which git tracks: this run's files (all but "
                      "checkpoints, snapshots and wandb/) become changes to commit. Use outputs/ or "
                      "runs/ unless the run is meant to be committed")


class MakeRunDir(Callback):
    """Hydra calls this before it makes `hydra.run.dir` (single runs; multirun folders stay
    Hydra's): rank 0 makes it, other ranks point Hydra at the working directory, which exists."""

    def on_run_start(self, config, **kwargs) -> None:
        if distributed.launch_rank():
            with read_write(config.hydra.run):
                config.hydra.run.dir = os.getcwd()
            return
        try:
            CREATED[:] = make(Path(config.hydra.run.dir))
        except ConfigError as err:
            refuse(err)
