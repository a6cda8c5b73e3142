"""The paper's training-dynamics figures: gradient norm, distance from initialization, gradient
direction variance and error (plus bias and variance), p = 0 against p > 0, mean and 95%
interval over seeds, at every measured step; where the runs measured their gradients with the
masks off too (repro.analysis.probe), the paper's comparison split into the masks' effect and the
trajectory's (`effects`); the training-batch and measurement-batch axes."""
from __future__ import annotations

import math
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
    return section(group_by(analysis_rows(curves), "drop.rate"), out, "")


def make_batch_axis(runs: list[dict], curves: list[dict], out: Path) -> list[str]:
    """The training-batch axis (experiment=dynamics_batch): each training batch size on its own,
    with its figures suffixed _b<batch>."""
    lines = []
    for (batch,), rows in sorted(group_by(analysis_rows(curves), "train_batch_size").items()):
        lines += [f"## Training batch {batch}", ""]
        lines += section(group_by(rows, "drop.rate"), out, f"_b{batch}") + [""]
    return lines


def analysis_rows(curves: list[dict]) -> list[dict]:
    return one_hardware([r for r in curves if r["event"] == "analysis"], "dynamics")


def section(by_rate: dict, out: Path, suffix: str) -> list[str]:
    """The panels and claims of one comparison, and its decomposition where it was measured."""
    plot_panels(by_rate, out, "dynamics" + suffix)
    lines = claims_table(by_rate)
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


# The paper's comparison split in two (repro.analysis.probe): effect names as in the tables.
EFFECTS = ("paper", "mask", "trajectory")
DECOMPOSED = (("grad_norm", "gradient norm"), ("grad_direction_variance", "direction variance"),
              ("grad_direction_error", "direction error"),
              ("noise_to_signal", "noise-to-signal B tr Cov / ||E g||^2"))


def effects(on: float, off: float, plain: float) -> dict:
    """paper = the dropout run with its masks on - the no-dropout run (docs/paper.md section 4);
    mask = masks on - masks off at the dropout run's weights; trajectory = the dropout run's
    weights (masks off) - the no-dropout run's. paper = mask + trajectory."""
    return {"paper": on - plain, "mask": on - off, "trajectory": off - plain}


def number(value) -> float:
    return math.nan if value is None else value


def decomposed(by_rate: dict) -> bool:
    """Whether the highest rate's runs measured with the masks off as well."""
    return all(r.get("masks_off/grad_norm") is not None for r in by_rate[max(by_rate)])


def effect_series(by_rate: dict, key: str) -> dict:
    """{effect: {step: {seed: value}}}, the highest rate's runs against the lowest's (same seed
    and step)."""
    rates = sorted(by_rate)
    plain = {(r["seed"], r["step"]): number(r[key]) for r in by_rate[rates[0]]}
    series: dict = {e: {} for e in EFFECTS}
    for r in by_rate[rates[-1]]:
        if (r["seed"], r["step"]) in plain:
            values = effects(number(r[key]), number(r[f"masks_off/{key}"]), plain[r["seed"], r["step"]])
            for effect, value in values.items():
                series[effect].setdefault(r["step"], {})[r["seed"]] = value
    return series


def window_effect(by_step: dict, steps: list[int]) -> tuple[float, float, int]:
    """Mean and 95% interval over seeds of each seed's mean over `steps`."""
    seeds = {seed for s in steps for seed in by_step.get(s, {})}
    per_seed = [sum(by_step[s][seed] for s in steps) / len(steps) for seed in seeds
                if all(seed in by_step.get(s, {}) for s in steps)]
    return mean_ci(per_seed)


def decomposition(by_rate: dict, out: Path, stem: str) -> list[str]:
    """The decomposition's figure and tables, and g_hat's sampling floor."""
    series = {key: effect_series(by_rate, key) for key, _ in DECOMPOSED}
    steps = sorted(series["grad_norm"]["paper"])
    plot_decomposition(series, steps, out, stem)
    rates = sorted(by_rate)
    return [f"Decomposition (drop rate {rates[-1][0]} against {rates[0][0]}): paper = with masks on - "
            "without dropout; mask effect = masks on - off, same weights; trajectory effect = the "
            "dropout-trained weights with masks off - the weights trained without dropout; paper = "
            "mask + trajectory. Mean ± 95% interval over seeds.", "",
            *decomposition_tables(series, steps), "", *sampling_floor(by_rate)]


def plot_decomposition(series: dict, steps: list[int], out: Path, stem: str) -> None:
    """One panel per metric: the three effects against the step."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, title) in zip(axes.flat, DECOMPOSED):
        for effect in EFFECTS:
            stats = [mean_ci(list(series[key][effect][s].values())) for s in steps]
            ax.plot(steps, [m for m, _, _ in stats], marker=".", label=f"{effect} effect")
            ax.fill_between(steps, [m - h for m, h, _ in stats], [m + h for m, h, _ in stats], alpha=0.2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_title(title)
        ax.set_xlabel("step")
    axes.flat[0].legend()
    fig.tight_layout()
    save(fig, out, stem)


def decomposition_tables(series: dict, steps: list[int]) -> list[str]:
    """Per phase (per seed the mean over the phase's steps, as for the claims), then per step."""
    windows = phase_windows([s for s in steps if s > 0])
    header = ["| metric | paper | mask effect | trajectory effect |", "|---|---|---|---|---|"]
    lines = [f"Per phase: early {windows['early']}, late {windows['late']}.", "",
             "| phase " + header[0], header[1]]
    for key, _ in DECOMPOSED:
        for phase in ("early", "late"):
            cells = [fmt(*window_effect(series[key][e], windows[phase])[:2], digits=4) for e in EFFECTS]
            lines.append(f"| {phase} | {key} | " + " | ".join(cells) + " |")
    lines += ["", "Per step:", "", "| step " + header[0], header[1]]
    for s in steps:
        for key, _ in DECOMPOSED:
            cells = [fmt(*mean_ci(list(series[key][e][s].values()))[:2], digits=4) for e in EFFECTS]
            lines.append(f"| {s} | {key} | " + " | ".join(cells) + " |")
    return lines


def sampling_floor(by_rate: dict) -> list[str]:
    """g_hat's own sampling error relative to its norm, r, and the direction error of about r^2 / 2
    that it alone gives (repro.analysis.metrics.subset_error)."""
    rel = [r["full_grad_error"] / r["full_grad_norm"] for rows in by_rate.values() for r in rows
           if r.get("full_grad_error") is not None]
    if not rel:
        return []
    mean, half, n = mean_ci(rel)
    return [f"g_hat sampling floor (from its two halves): ||g_hat - g_all|| / ||g_hat|| = "
            f"{fmt(mean, half, digits=4)} over {n} measurements, at most {max(rel):.4f}; g_hat's "
            f"sampling alone gives a direction error of about {mean ** 2 / 2:.2g} (at most "
            f"{max(rel) ** 2 / 2:.2g})."]


def batch_axis_lines(rows: list[dict]) -> list[str]:
    """The measurement-batch table (repro.analysis.batch_axis): each effect by training batch,
    step and measurement batch, mean ± 95% interval over seeds."""
    rates = sorted({r["drop.rate"] for r in rows})
    if len(rates) < 2:
        return ["(needs runs at two drop rates)"]
    index = {(r["drop.rate"], r["masks"], r["seed"], r["train.batch_size"], r["step"], r["batch_size"]): r
             for r in rows}
    cells: dict = {}
    for (rate, masks, seed, *point), on in index.items():
        off, plain = index.get((rate, "off", seed, *point)), index.get((rates[0], "off", seed, *point))
        if rate != rates[-1] or masks != "on" or off is None or plain is None:
            continue
        for key, _ in DECOMPOSED:
            for effect, value in effects(number(on[key]), number(off[key]), number(plain[key])).items():
                cells.setdefault((*point, key), {}).setdefault(effect, {})[seed] = value
    lines = [f"Measurement-batch axis, drop rate {rates[-1]} against {rates[0]} (effects as in the "
             "decomposition table), mean ± 95% interval over seeds:", "",
             "| training batch | step | measurement batch | metric | paper | mask effect | "
             "trajectory effect |", "|---|---|---|---|---|---|---|"]
    for (train_batch, step, size, key), by_effect in sorted(cells.items(), key=lambda c: c[0][:3]):
        values = [fmt(*mean_ci(list(by_effect[e].values()))[:2], digits=4) for e in EFFECTS]
        lines.append(f"| {train_batch} | {step} | {size} | {key} | " + " | ".join(values) + " |")
    return lines
