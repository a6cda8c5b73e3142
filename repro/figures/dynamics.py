"""The paper's training-dynamics figures: gradient norm, distance from initialization, gradient
direction variance and error (plus bias and variance), p = 0 against p > 0, mean and 95%
interval over seeds, at every measured step."""
from __future__ import annotations

from pathlib import Path

from repro.figures.common import fmt, group_by, mean_ci, paired, plt, save, verdict
from repro.ledger import hardware_kinds, one_hardware

PANELS = (("grad_norm", "gradient norm"), ("model_distance", "distance from init"),
          ("grad_direction_variance", "direction variance"),
          ("grad_direction_error", "direction error"), ("bias", "bias ||mean g - g_hat||"),
          ("variance", "variance mean ||g - mean g||^2"))
METRICS = ("grad_norm", "model_distance", "grad_direction_variance", "grad_direction_error")
# docs/paper.md section 4: (metric, phase, claimed sign of (with drop) - (without), claim).
# early: measured steps <= 100; late: the last two measured steps.
CLAIMS = (("grad_norm", "early", -1, "smaller gradient norm with dropout"),
          ("model_distance", "late", +1, "larger distance from initialization with dropout"),
          ("grad_direction_variance", "early", -1, "lower gradient direction variance early"),
          ("grad_direction_error", "early", -1, "lower gradient direction error early"),
          ("grad_direction_variance", "late", +1, "direction variance higher with dropout later (crossing)"),
          ("grad_direction_error", "late", +1, "direction error higher with dropout later (crossing)"))


def make(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    analysis = [r for r in curves if r["event"] == "analysis"]
    by_rate = group_by(one_hardware(analysis, "dynamics"), "drop.rate")
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
             "| step | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for s in steps:
        cells = []
        for key in METRICS:
            a = {r["seed"]: r[key] for r in high if r["step"] == s}
            b = {r["seed"]: r[key] for r in low if r["step"] == s}
            d, h, _ = paired(a, b)
            cells.append(fmt(d, h, digits=4))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    windows = phase_windows(steps)
    lines += ["", f"Verdicts (per seed, the mean over the phase's steps: early {windows['early']}, "
              f"late {windows['late']}; then paired over seeds):", ""]
    for row in claim_rows(by_rate):
        lines.append(f"- {row['claim']} ({row['metric']}, {row['phase']}): difference {row['effect']} "
                     f"over {row['seeds']} seeds: **{row['verdict']}**")
    return lines


def phase_windows(steps: list[int]) -> dict:
    """early: measured steps <= 100; late: the last two measured steps."""
    return {"early": [s for s in steps if s <= 100], "late": steps[-2:]}


def claim_rows(by_rate: dict) -> list[dict]:
    """Each claim's paired difference (highest rate minus lowest) and verdict."""
    rates = sorted(by_rate)
    low, high = by_rate[rates[0]], by_rate[rates[-1]]
    windows = phase_windows(sorted({r["step"] for r in high} & {r["step"] for r in low} - {0}))
    rows = []
    for key, phase, sign, claim in CLAIMS:
        a = {seed: mean_over(high, key, seed, windows[phase]) for seed in {r["seed"] for r in high}}
        b = {seed: mean_over(low, key, seed, windows[phase]) for seed in {r["seed"] for r in low}}
        d, h, n = paired(a, b)
        rows.append({"claim": claim, "metric": key, "phase": phase, "effect": fmt(d, h, digits=4),
                     "seeds": n, "verdict": verdict(d, h, sign)})
    return rows


def glance(runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    analysis = [r for r in curves if r["event"] == "analysis"]
    kinds = hardware_kinds(analysis)
    rows = claim_rows(group_by(one_hardware(analysis, "dynamics"), "drop.rate"))
    return [{"claim": f"{r['claim']} ({r['metric']}, {r['phase']})", "verdict": r["verdict"] + " (unplanned)",
             "effect": r["effect"], "seeds": str(r["seeds"]), "hardware": kinds[0]} for r in rows]


def mean_over(rows: list[dict], key: str, seed, steps: list[int]) -> float:
    values = [r[key] for r in rows if r["seed"] == seed and r["step"] in steps]
    return sum(values) / len(values)
