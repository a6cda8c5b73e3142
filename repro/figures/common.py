"""Statistics over seeds, claim verdicts, and deterministic figure files."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (beyond: 1.96 is within 2%).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, half-width of its 95% t-interval (NaN for one value), and the count."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, 1
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, (T975[n - 2] if n - 1 <= len(T975) else 1.96) * sd / math.sqrt(n), n


def paired(a: dict, b: dict) -> tuple[float, float, int]:
    """Mean and 95% interval of a[seed] - b[seed] over the seeds both have (same seed = same
    initialization and data order, so pairing removes that variance)."""
    return mean_ci([a[s] - b[s] for s in sorted(set(a) & set(b))])


def verdict(diff: float, half: float, claimed_sign: int) -> str:
    """reproduced when the interval excludes 0 on the claimed side, contradicted when it
    excludes 0 on the other side, else inconclusive."""
    if math.isnan(diff):
        return "inconclusive (no paired runs)"
    if math.isnan(half):
        return "inconclusive (one seed)"
    low, high = diff - half, diff + half
    if (low > 0 and claimed_sign > 0) or (high < 0 and claimed_sign < 0):
        return "reproduced"
    if (low > 0 and claimed_sign < 0) or (high < 0 and claimed_sign > 0):
        return "not reproduced (opposite effect)"
    return "inconclusive (interval includes 0)"


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
