"""Paired statistics over seeds and the verdict rule (docs/statistics.md section 4).

One table of words, first match wins; each interval of (method - baseline) gets exactly one:

1. underpowered: fewer paired seeds than planned (pre-registered verdicts only);
2. opposite: the 95% interval excludes 0 against the paper's side;
3. larger than the paper's: it excludes the paper's effect on the far side;
4. reproduced: it excludes 0 on the paper's side and includes the paper's effect (where the paper
   gives no size, excluding 0 on its side is the whole claim);
5. smaller than the paper's: it excludes 0 on the paper's side and the paper's effect: a real
   effect, weaker;
6. no effect as large as the paper's / as our margin: inside (-margin, +margin), 0 included; the
   words say whose margin it is (repro.report.claims.Claim.ours);
7. inconclusive at the planned seeds (planned) / inconclusive (unplanned): none of these.
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


def interval_word(low: float, high: float, sign: int, margin: float | None = None,
                  ours: bool = False) -> str | None:
    """Words 2-6 of the table for the interval [low, high]; None where none fits. `margin` is the
    paper's effect size (`ours`: our margin, so there is no paper's effect to compare with)."""
    near, far = sorted((sign * low, sign * high))        # the paper's side made positive
    if far < 0:
        return "opposite"
    if near > 0:
        if margin is None or ours:
            return "reproduced"
        if near > margin:
            return "larger than the paper's"
        return "smaller than the paper's" if far < margin else "reproduced"
    if margin is not None and -margin < near and far < margin:
        return "no effect as large as " + ("our margin" if ours else "the paper's")
    return None


def verdict(diff: float, half: float, claimed_sign: int, margin: float | None = None,
            ours: bool = False) -> str:
    """The unplanned rule for exploratory tables: the table's words 2-6, else inconclusive."""
    if math.isnan(diff):
        return "inconclusive (no paired runs)"
    if math.isnan(half):
        return "inconclusive (one seed)"
    word = interval_word(diff - half, diff + half, claimed_sign, margin, ours)
    return word or "inconclusive (interval includes 0)"


def planned_verdict(diff: float, half: float, n: int, planned: int, margin: float | None,
                    claimed_sign: int, ours: bool = False) -> str:
    """The pre-registered rule (module docstring) for n paired seeds against `planned`."""
    if n < planned or math.isnan(half):
        return f"underpowered ({n} of {planned} planned seeds)"
    word = interval_word(diff - half, diff + half, claimed_sign, margin, ours)
    if word:
        return word
    if margin is None:                   # the paper gives no effect size to test against
        return "inconclusive at the planned seeds (interval includes 0)"
    return "inconclusive at the planned seeds (interval wider than planned)"
