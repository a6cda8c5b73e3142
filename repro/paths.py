"""Where things live, stated once: the project's root, its configs, results/ (the committed tables),
multirun/ (the sweeps' run folders), and the folder a grid point's run is given."""
from __future__ import annotations

from pathlib import Path

from repro.config import RESUME_FREE_KEYS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
RESULTS = ROOT / "results"
MULTIRUN = ROOT / "multirun"

# Overrides that say how a run is launched, not what it computes (the keys its config hash leaves
# out, its device, the experiment that names its parent folder, Hydra's own): they name no folder.
LAUNCH_KEYS = (*RESUME_FREE_KEYS, "device", "experiment", "hydra")
BEFORE = ("experiment", "threads", "device")      # the only ones left out of the names before


def key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def named(overrides: list[str]) -> list[str]:
    """The overrides that name a run's folder, sorted: all but LAUNCH_KEYS (and their subkeys)."""
    return sorted(o for o in overrides
                  if not any(key(o) == k or key(o).startswith(f"{k}.") for k in LAUNCH_KEYS))


def run_dir(name: str, overrides: list[str], parent: Path | None = None) -> Path:
    """Where the run of `overrides` lives: parent (default multirun/NAME) / its named overrides,
    comma-joined. Where that folder does not exist but the one named as before does
    (multirun/NAME / all overrides but BEFORE's), the run is that one's."""
    path = (MULTIRUN / name if parent is None else Path(parent)) / ",".join(named(overrides))
    before = MULTIRUN / name / ",".join(sorted(o for o in overrides if key(o) not in BEFORE))
    return before if before != path and before.is_dir() and not path.exists() else path
