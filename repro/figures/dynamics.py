"""The paper's training-dynamics figures: gradient norm, distance from initialization, gradient
direction variance and error (plus bias and variance), p = 0 against p > 0, mean and 95%
interval over seeds, at every measured step."""
from __future__ import annotations

from pathlib import Path

from repro.figures.common import fmt, group_by, mean_ci, paired, plt, save, verdict

PANELS = (("grad_norm", "gradient norm"), ("model_distance", "distance from init"),
          ("grad_direction_variance", "direction variance"),
          ("grad_direction_error", "direction error"), ("bias", "bias ||mean g - g_hat||"),
          ("variance", "variance mean ||g - mean g||^2"))
# PAPER.md section 4: the sign of (with drop) - (without) early in training.
CLAIMS = (("grad_norm", -1, "smaller gradient norm"), ("model_distance", +1, "larger distance from init"),
          ("grad_direction_variance", -1, "lower direction variance early"),
          ("grad_direction_error", -1, "lower direction error early"))


def make(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    analysis = [r for r in curves if r["event"] == "analysis"]
    by_rate = group_by(analysis, "drop.rate")
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (key, title) in zip(axes.flat, PANELS):
        for (rate,), rows in sorted(by_rate.items()):
            steps = sorted({r["step"] for r in rows})
            stats = [mean_ci([r[key] for r in rows if r["step"] == s]) for s in steps]
            mean = [m for m, _, _ in stats]
            ax.plot(steps, mean, marker=".", label=f"drop rate {rate}")
            ax.fill_between(steps, [m - h for m, h, _ in stats], [m + h for m, h, _ in stats], alpha=0.2)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_title(title)
        ax.set_xlabel("step")
    axes.flat[0].legend()
    fig.tight_layout()
    save(fig, out, "dynamics")
    return claims_table(by_rate)


def claims_table(by_rate: dict) -> list[str]:
    """Paired (same seed) differences with drop minus without, at each measured step window."""
    rates = sorted(by_rate)
    if len(rates) < 2:
        return ["(needs runs at two drop rates)"]
    low, high = by_rate[rates[0]], by_rate[rates[-1]]
    steps = sorted({r["step"] for r in high} & {r["step"] for r in low} - {0})
    lines = [f"Paired difference, drop rate {rates[-1][0]} minus {rates[0][0]}, mean ± 95% "
             "interval over seeds:", "",
             "| step | " + " | ".join(k for k, _, _ in CLAIMS) + " |", "|---" * (len(CLAIMS) + 1) + "|"]
    for s in steps:
        cells = []
        for key, _, _ in CLAIMS:
            a = {r["seed"]: r[key] for r in high if r["step"] == s}
            b = {r["seed"]: r[key] for r in low if r["step"] == s}
            d, h, _ = paired(a, b)
            cells.append(fmt(d, h, digits=4))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "Verdicts (early: steps <= 100; late: the last two measured steps):", ""]
    for key, sign, claim in CLAIMS:
        for phase, window in (("early", [s for s in steps if s <= 100]), ("late", steps[-2:])):
            a = {seed: mean_over(high, key, seed, window) for seed in {r["seed"] for r in high}}
            b = {seed: mean_over(low, key, seed, window) for seed in {r["seed"] for r in low}}
            d, h, n = paired(a, b)
            lines.append(f"- {claim} ({phase}, {key}): difference {fmt(d, h, digits=4)} over {n} "
                         f"seeds: **{verdict(d, h, sign)}**")
    return lines


def mean_over(rows: list[dict], key: str, seed, steps: list[int]) -> float:
    values = [r[key] for r in rows if r["seed"] == seed and r["step"] in steps]
    return sum(values) / len(values)
