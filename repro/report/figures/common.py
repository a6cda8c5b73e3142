"""What every figure module shares: number formatting, grouping, deterministic figure files
(statistics live in repro.report.stats)."""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from repro.report.stats import mean_ci, paired, verdict  # noqa: E402,F401  (the figures' statistics)


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


def settings_row(claim: str, results: list[tuple[float, float, int]], hardware) -> dict:
    """One 'Claims at a glance' row over several settings' paired test-accuracy results
    (difference, half-width, seeds): how many settings got each verdict, the range of effects and
    the seeds per setting."""
    verdicts = [verdict(d, h, +1) for d, h, _ in results]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
    diffs = [100 * d for d, _, _ in results]
    seeds = sorted({n for _, _, n in results})
    return {"claim": claim, "verdict": counts,
            "effect": f"{min(diffs):+.2f} to {max(diffs):+.2f} pp",
            "seeds": "-".join(str(n) for n in (seeds[0], seeds[-1])[:len(seeds)]) + " per setting",
            "hardware": hardware, "n": min(seeds), "paper": "stated in words, no number"}


def wall_times(collection: Path, key: Callable[[str], object]) -> dict:
    """Measured seconds per run (its last launch, collection.json) by (hardware kind, key(its name));
    empty without the file."""
    times: dict = {}
    for e in json.loads(collection.read_text())["runs"] if collection.is_file() else []:
        if e.get("wall_s_last_launch"):
            times.setdefault((e["hardware"], key(e["run"])), []).append(e["wall_s_last_launch"])
    return times
