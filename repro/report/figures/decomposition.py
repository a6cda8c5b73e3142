"""The paper's dynamics comparison split in two (repro.analysis.probe measures both): the masks'
effect (the same weights, masks on against off) and the trajectory's (dropout-trained weights
with masks off against the plain model's), per metric, with g_hat's sampling floor; and the
measurement-batch axis (repro.analysis.batch_axis)."""
from __future__ import annotations

import math
from pathlib import Path

from repro.report.figures.common import fmt, group_by, mean_ci, plt, save


def phase_windows(steps: list[int]) -> dict:
    """early: measured steps <= 100; late: the last two measured steps."""
    return {"early": [s for s in steps if s <= 100], "late": steps[-2:]}


EFFECTS = ("paper", "mask", "trajectory", "relative")
PLOTTED = EFFECTS[:3]                       # in the metric's units; "relative" has none
HEADS = "paper | mask effect | trajectory effect | mask effect / masks-off value"
DECOMPOSED = (("grad_norm", "gradient norm"), ("grad_direction_variance", "direction variance"),
              ("grad_direction_error", "direction error"),
              ("noise_to_signal", "noise-to-signal B tr Cov / ||E g||^2"))


def effects(on: float, off: float, plain: float) -> dict:
    """paper = the dropout run with its masks on - the no-dropout run (docs/paper.md section 4);
    mask = masks on - masks off at the dropout run's weights; trajectory = the dropout run's
    weights (masks off) - the no-dropout run's. paper = mask + trajectory. relative = the mask
    effect over the masks-off value: what the masks add, in units of what is there without them
    (a mask effect that shrinks with the batch only as fast as the value itself is not averaged
    away)."""
    return {"paper": on - plain, "mask": on - off, "trajectory": off - plain,
            "relative": (on - off) / off if off else math.nan}


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


def per_seed(by_step: dict, steps: list[int]) -> dict:
    """{seed: its mean over `steps`}, for the seeds measured at every one of them."""
    seeds = sorted({seed for s in steps for seed in by_step.get(s, {})})
    return {seed: sum(by_step[s][seed] for s in steps) / len(steps) for seed in seeds
            if all(seed in by_step.get(s, {}) for s in steps)}


def window_effect(by_step: dict, steps: list[int]) -> tuple[float, float, int]:
    """Mean and 95% interval over seeds of each seed's mean over `steps`."""
    return mean_ci(list(per_seed(by_step, steps).values()))


def claim_effects(rows: list[dict], claim) -> dict:
    """{seed: the curve claim's effect on its metric, averaged over its phase's measured steps}
    (repro.report.claims.CurveClaim), from one numerics kind's analysis rows at two drop rates."""
    by_rate = group_by(rows, "drop.rate")
    if len(by_rate) < 2:
        return {}
    series = effect_series(by_rate, claim.metric)[claim.effect]
    return per_seed(series, phase_windows(sorted(s for s in series if s > 0))[claim.phase])


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
        for effect in PLOTTED:
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
    header = [f"| metric | {HEADS} |", "|---|---|---|---|---|---|"]
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


def batch_axis_cells(rows: list[dict]) -> tuple[list, dict]:
    """The drop rates and, per (training batch, step, measurement batch, metric), each effect's
    value per seed, from the measurement-batch table (repro.analysis.batch_axis)."""
    rates = sorted({r["drop.rate"] for r in rows})
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
    return rates, cells


def batch_axis_lines(rows: list[dict]) -> list[str]:
    """The measurement-batch table: each effect by training batch, step and measurement batch,
    mean ± 95% interval over seeds."""
    rates, cells = batch_axis_cells(rows)
    if len(rates) < 2:
        return ["(needs runs at two drop rates)"]
    lines = [f"Measurement-batch axis, drop rate {rates[-1]} against {rates[0]} (effects as in the "
             "decomposition table), mean ± 95% interval over seeds:", "",
             f"| training batch | step | measurement batch | metric | {HEADS} |", "|---" * 8 + "|"]
    for (train_batch, step, size, key), by_effect in sorted(cells.items(), key=lambda c: c[0][:3]):
        values = [fmt(*mean_ci(list(by_effect[e].values()))[:2], digits=4) for e in EFFECTS]
        lines.append(f"| {train_batch} | {step} | {size} | {key} | " + " | ".join(values) + " |")
    return lines


def plot_batch_axis(rows: list[dict], out: Path, stem: str = "batch_axis") -> None:
    """Each effect against the measurement batch (log scale), one panel per metric: the mean over
    seeds at each measured step (the first dashed, later ones solid)."""
    _, cells = batch_axis_cells(rows)
    first = min(point[1] for point in cells)
    lines: dict = {}
    for (train_batch, step, size, key), by_effect in sorted(cells.items()):
        for effect in PLOTTED:
            mean = mean_ci(list(by_effect[effect].values()))[0]
            lines.setdefault((key, train_batch, step, effect), []).append((size, mean))
    fig, axes = plt.subplots(1, len(DECOMPOSED), figsize=(4 * len(DECOMPOSED), 3.4))
    for ax, (key, title) in zip(axes, DECOMPOSED):
        for (metric, train_batch, step, effect), points in lines.items():
            if metric == key:
                ax.plot(*zip(*points), color=f"C{EFFECTS.index(effect)}",
                        linestyle="--" if step == first else "-",
                        label=f"{effect}, step {step} (training batch {train_batch})")
        ax.set_xscale("log", base=2)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(title)
        ax.set_xlabel("measurement batch")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    save(fig, out, stem)
