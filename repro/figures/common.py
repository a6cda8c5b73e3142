"""What every figure module shares: number formatting, grouping, deterministic figure files
(statistics live in repro.stats)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from repro.stats import mean_ci, paired, verdict  # noqa: E402,F401  (the figures' statistics)


def fmt(mean: float, half: float, scale: float = 1.0, digits: int = 2) -> str:
    if math.isnan(half):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"


def save(fig, folder: Path, stem: str) -> list[Path]:
    """PNG and PDF with no timestamps or version strings, so rebuilding gives the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=120, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
    return paths


def group_by(rows: list[dict], *keys: str) -> dict:
    groups: dict = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups
