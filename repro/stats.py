"""Paired statistics over seeds and the pre-registered verdict rule.

A comparison is planned before its runs (repro.plan): metric, claimed direction, margin (the
paper's own effect size) and the number of paired seeds. The verdict then separates four
outcomes (docs/statistics.md):

- reproduced: the 95% interval of (method - baseline) excludes 0 on the paper's side;
- opposite: it excludes 0 on the other side;
- no effect as large as the paper's: the whole interval lies inside (-margin, +margin);
- underpowered: fewer paired seeds than planned (whatever the interval says so far).

At the planned count an interval that fits none of the first three (wider than planned) is
"inconclusive at the planned seeds": it is said, never topped up silently.
"""
from __future__ import annotations

import math

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (published tables).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.959964


def t975(df: int) -> float:
    """t_{0.975, df}: the table up to 30, then the Cornish-Fisher expansion (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, half-width of its 95% t-interval (NaN for one value), and the count."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, 1
    return mean, t975(n - 1) * sample_sd(values) / math.sqrt(n), n


def sample_sd(values) -> float:
    n = len(values)
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def paired_differences(a: dict, b: dict) -> dict:
    """a[seed] - b[seed] for the seeds both have (same seed: same initialization and data order,
    so pairing removes that variance)."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def paired(a: dict, b: dict) -> tuple[float, float, int]:
    """Mean and 95% interval of the paired differences a - b, and their count."""
    return mean_ci(list(paired_differences(a, b).values()))


def seeds_needed(sd: float, half_width: float, min_seeds: int = 2, max_seeds: int = 10_000) -> int:
    """The smallest n >= min_seeds with t_{0.975, n-1} * sd / sqrt(n) <= half_width."""
    if not (sd >= 0 and half_width > 0):
        raise ValueError(f"need sd >= 0 and half_width > 0, got sd={sd}, half_width={half_width}")
    n = max(min_seeds, 2)
    while t975(n - 1) * sd / math.sqrt(n) > half_width:
        n += 1
        if n > max_seeds:
            raise ValueError(f"more than {max_seeds} seeds needed (sd={sd}, half_width={half_width})")
    return n


def verdict(diff: float, half: float, claimed_sign: int) -> str:
    """The unplanned rule for exploratory tables: reproduced / opposite / inconclusive."""
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


def planned_verdict(diff: float, half: float, n: int, planned: int, margin: float | None,
                    claimed_sign: int) -> str:
    """The pre-registered rule (module docstring) for n paired seeds against `planned`."""
    if n < planned or math.isnan(half):
        return f"underpowered ({n} of {planned} planned seeds)"
    low, high = diff - half, diff + half
    if (low > 0 and claimed_sign > 0) or (high < 0 and claimed_sign < 0):
        return "reproduced"
    if (low > 0 and claimed_sign < 0) or (high < 0 and claimed_sign > 0):
        return "opposite"
    if margin is None:                   # the paper gives no effect size to test against
        return "inconclusive at the planned seeds (interval includes 0)"
    if -margin < low and high < margin:
        return "no effect as large as the paper's"
    return "inconclusive at the planned seeds (interval wider than planned)"
