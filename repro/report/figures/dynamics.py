"""The paper's training-dynamics figures: gradient norm, distance from initialization, gradient
direction variance and error (plus bias and variance), p = 0 against p > 0, mean and 95%
interval over seeds, at every measured step; where the runs measured their gradients with the
masks off too (repro.analysis.probe), the paper's comparison split into the masks' effect and the
trajectory's (repro.report.figures.decomposition). The training-batch axis: training_batch.py."""
from __future__ import annotations

from pathlib import Path

from repro.records.tables import read_csv
from repro.report.claims import DYNAMICS
from repro.report.figures.common import fmt, group_by, mean_ci, paired, plt, save, verdict
from repro.report.figures.decomposition import (
    batch_axis_lines,
    decomposed,
    decomposition,
    phase_windows,
    plot_batch_axis,
)
from repro.report.ledger import hardware_kinds, one_hardware
from repro.report.plan import read_plan
from repro.report.stats import planned_verdict

PANELS = (("grad_norm", "gradient norm"), ("model_distance", "distance from init"),
          ("grad_direction_variance", "direction variance"),
          ("grad_direction_error", "direction error"), ("bias", "bias ||mean g - g_hat||"),
          ("variance", "variance mean ||g - mean g||^2"))
METRICS = ("grad_norm", "model_distance", "grad_direction_variance", "grad_direction_error")


def make(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    """The comparison, judged by results/NAME/plan.json's rule where the experiment has one; and
    the measurement-batch axis where batch_axis.csv (repro.analysis.batch_axis) is committed."""
    lines = section(group_by(analysis_rows(curves), "drop.rate"), out, "", read_plan(out))
    if (out / "batch_axis.csv").is_file():
        axis = read_csv(out / "batch_axis.csv")
        plot_batch_axis(axis, out)
        lines += ["", *batch_axis_lines(axis)]
    return lines


def analysis_rows(curves: list[dict]) -> list[dict]:
    return one_hardware([r for r in curves if r["event"] == "analysis"], "dynamics")


def section(by_rate: dict, out: Path, suffix: str, plan: dict | None = None) -> list[str]:
    """The panels and claims of one comparison, and its decomposition where it was measured."""
    plot_panels(by_rate, out, "dynamics" + suffix)
    lines = claims_table(by_rate, plan)
    if len(by_rate) > 1 and decomposed(by_rate):
        lines += ["", *decomposition(by_rate, out, "decomposition" + suffix)]
    return lines


def plot_panels(by_rate: dict, out: Path, stem: str) -> None:
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
    save(fig, out, stem)


def claims_table(by_rate: dict, plan: dict | None = None) -> list[str]:
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
    rule = (f"the plan's rule (plan.json: {planned_seeds(plan)} seeds per arm, no margin)" if plan else
            "unplanned: reproduced, opposite or inconclusive")
    lines += ["", f"Verdicts (per seed, the mean over the phase's steps: early {windows['early']}, "
              f"late {windows['late']}; then paired over seeds; {rule}):", ""]
    for row in claim_rows(by_rate, plan):
        lines.append(f"- {row['claim']} ({row['metric']}, {row['phase']}): difference {row['effect']} "
                     f"over {row['seeds']} seeds: **{row['verdict']}**")
    return lines


def planned_seeds(plan: dict) -> int:
    return min(plan["seeds"].values())


def claim_rows(by_rate: dict, plan: dict | None = None) -> list[dict]:
    """Each claim's paired difference (highest rate minus lowest) and verdict: with a plan, over
    exactly its first seeds and by its rule (repro.report.stats.planned_verdict), else the unplanned rule."""
    rates = sorted(by_rate)
    low, high = by_rate[rates[0]], by_rate[rates[-1]]
    windows = phase_windows(sorted({r["step"] for r in high} & {r["step"] for r in low} - {0}))
    seeds = {r["seed"] for r in high} & {r["seed"] for r in low}
    if plan:
        seeds = sorted(seeds)[:planned_seeds(plan)]
    rows = []
    for c in DYNAMICS:
        a = {seed: mean_over(high, c.metric, seed, windows[c.phase]) for seed in seeds}
        b = {seed: mean_over(low, c.metric, seed, windows[c.phase]) for seed in seeds}
        d, h, n = paired(a, b)
        judged = (planned_verdict(d, h, n, planned_seeds(plan), None, c.sign) if plan else
                  verdict(d, h, c.sign))
        rows.append({"claim": c.text, "metric": c.metric, "phase": c.phase, "effect": fmt(d, h, digits=4),
                     "seeds": n, "verdict": judged, "diff": d, "half": h, "n": n, "margin": None,
                     "sign": c.sign, "ours": False, "planned": bool(plan)})
    return rows


def glance(runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    analysis = [r for r in curves if r["event"] == "analysis"]
    kinds = hardware_kinds(analysis)
    plan = read_plan(out)
    rows = claim_rows(group_by(one_hardware(analysis, "dynamics"), "drop.rate"), plan)
    return [{**r, "claim": f"{r['claim']} ({r['metric']}, {r['phase']})", "past": "-", "hardware": kinds[0],
             "seeds": f"{r['n']} of {planned_seeds(plan)} planned" if plan else f"{r['n']}, unplanned"}
            for r in rows]


def mean_over(rows: list[dict], key: str, seed, steps: list[int]) -> float:
    values = [r[key] for r in rows if r["seed"] == seed and r["step"] in steps]
    return sum(values) / len(values)


# The paper's comparison split in two (repro.analysis.probe): effect names as in the tables.
