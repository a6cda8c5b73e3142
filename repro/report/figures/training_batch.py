"""The training-batch axis (experiment dynamics_batch): its pre-registered claim on the trajectory
effect at training batch 1024, the axis's tables and figures beside dynamics_decompose's batch-128
runs per numerics kind, its glance row and cost.md (what its plan costs per hardware kind)."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from repro.records.tables import read_csv
from repro.report.claims import BATCH_DYNAMICS
from repro.report.figures.common import fmt, group_by, mean_ci, verdict, wall_times
from repro.report.figures.decomposition import (
    DECOMPOSED,
    EFFECTS,
    HEADS,
    claim_effects,
    effect_series,
    phase_windows,
    window_effect,
)
from repro.report.figures.dynamics import section
from repro.report.ledger import rows_on
from repro.report.plan import MIN_PILOT_SEEDS, MIN_SEEDS, PENDING, read_plans, slug
from repro.report.stats import planned_verdict, sample_sd, seeds_needed

GPU_ANALOG = "dynamics_mixer"    # the nearest experiment timed on a GPU: the dynamics analysis, masks on
GPU_JOBS = 12                    # processes side by side on the GPU, as it was timed
SPREAD_RATIO = 2                 # 3-seed pilots here underestimated the spread about 2x (README)


def make_batch_axis(runs: list[dict], curves: list[dict], out: Path, reference: str) -> list[str]:
    """The training-batch axis (experiment=dynamics_batch): its pre-registered claim
    (repro.report.claims.BATCH_DYNAMICS), then per numerics kind its runs at batch 1024 beside
    `reference`'s runs (dynamics_decompose) of the same kind and seeds at 128 (the same config: the LR
    scaled by 128/128; tests/test_config.py), the early-window effects side by side, then each
    batch on its own with figures suffixed _b<batch> (and -<kind> after the tables' first kind);
    and cost.md."""
    analysis = [r for r in curves if r["event"] == "analysis"]
    at_128 = [r for r in read_csv(out.parent / reference / "curves.csv") if r["event"] == "analysis"]
    lines = effect_claim_lines(effect_claim_rows(analysis, out), analysis)
    kinds = first_seen_kinds(analysis)
    for kind in kinds:
        own = rows_on(analysis, kind)
        seeds = {r["seed"] for r in own}
        rows = own + [r for r in rows_on(at_128, kind) if r["seed"] in seeds]
        lines += ["", *batch_axis_section(rows, out, "" if kind == kinds[0] else f"-{slug(kind)}",
                                          kind if len(kinds) > 1 else "")]
    write_cost(out, analysis)
    return lines


def batch_axis_section(rows: list[dict], out: Path, tag: str, kind: str) -> list[str]:
    """One numerics kind's rows by training batch: the early-window effects side by side, then each
    batch's panels, claims and decomposition (figures suffixed _b<batch><tag>)."""
    by_batch = {batch: group_by(batch_rows, "drop.rate")
                for (batch,), batch_rows in sorted(group_by(rows, "train_batch_size").items())}
    lines = [f"Early-window effects by training batch{f' on {kind}' if kind else ''} (drop rate 0.1 minus "
             "0.0; per seed the mean over the early steps, then mean ± 95% interval over seeds):", "",
             f"| training batch | metric | seeds | {HEADS} |", "|---|---|---|---|---|---|---|"]
    for batch, by_rate in by_batch.items():
        for key, _ in DECOMPOSED:
            series = effect_series(by_rate, key)
            early = phase_windows(sorted(s for s in series["paper"] if s > 0))["early"]
            cells = [window_effect(series[e], early) for e in EFFECTS]
            lines.append(f"| {batch} | {key} | {cells[0][2]} | "
                         + " | ".join(fmt(m, h, digits=4) for m, h, _ in cells) + " |")
    for batch, by_rate in by_batch.items():
        lines += ["", f"## Training batch {batch}{f', {kind}' if kind else ''}", "",
                  *section(by_rate, out, f"_b{batch}{tag}")]
    return lines


def effect_claim_rows(analysis: list[dict], out: Path) -> list[dict]:
    """Each curve claim with a margin (BATCH_DYNAMICS) per numerics kind, as glance rows: its
    effect over the first seeds the kind's plan asks for, judged by the plan's rule (seeds past it
    apart); while the claims wait for a kind's pilot (a plan pending it), underpowered; with no
    plan at all, the unplanned rule."""
    plans = read_plans(out, pending=True)
    registered = any(p.get("status") == PENDING for p in plans)
    rows = []
    for claim in BATCH_DYNAMICS:
        for kind in first_seen_kinds(analysis):
            effects = claim_effects(rows_on(analysis, kind), claim)
            plan = next((p for p in plans if p["hardware"] == kind), None)
            planned = plan and next(c["seeds"] for c in plan["comparisons"] if c["claim"] == claim.text)
            seeds = sorted(effects)[:planned] if planned else sorted(effects)
            d, h, n = mean_ci([effects[s] for s in seeds])
            past = mean_ci([effects[s] for s in sorted(effects)[len(seeds):]])
            if plan:
                judged, count = (planned_verdict(d, h, n, planned, claim.margin, claim.sign, ours=True),
                                 f"{n} of {planned} planned")
            elif registered:
                judged = (f"underpowered (pilot pending: {n} of {MIN_PILOT_SEEDS} pilot seeds)"
                          if n < MIN_PILOT_SEEDS else "underpowered (pilot in; its plan not written yet)")
                count = f"{n} of {MIN_PILOT_SEEDS} pilot seeds, plan pending"
            else:
                judged, count = verdict(d, h, claim.sign, claim.margin, ours=True), f"{n}, unplanned"
            rows.append({"claim": f"{claim.text} ({claim.effect} effect, {claim.metric}, {claim.phase})",
                         "verdict": judged, "effect": fmt(d, h, digits=4), "seeds": count,
                         "past": f"{past[2]} more: {fmt(*past[:2], digits=4)}" if past[2] else "-",
                         "hardware": kind, "diff": d, "half": h, "n": n, "margin": claim.margin,
                         "sign": claim.sign, "ours": True, "planned": bool(plan) or registered,
                         "metric": claim.metric, "source": claim.source,
                         "plan": plan["file"] if plan else f"plan.json, {PENDING}" if registered else "none"})
    return rows


def first_seen_kinds(rows: list[dict]) -> list:
    """The numerics kinds in the order the tables first hold them (the ledger only appends)."""
    return list(dict.fromkeys(r["hardware"] for r in rows))


def effect_claim_lines(rows: list[dict], analysis: list[dict]) -> list[str]:
    """The pre-registered claims' table, each with its definition and whose margin it is."""
    early = {kind: phase_windows(sorted({r["step"] for r in rows_on(analysis, kind)} - {0}))["early"]
             for kind in first_seen_kinds(analysis)}
    lines = ["Pre-registered claim (plan.json; docs/statistics.md section 4): per seed, the effect "
             "(trajectory: the drop-rate-0.1 run's value with its masks off minus the drop-rate-0.0 run's, "
             "same seed and step) averaged over the phase's measured steps (early: "
             + "; ".join(f"{steps} on {kind}" for kind, steps in early.items())
             + "), then mean ± 95% interval over the plan's first seeds:", "",
             "| claim | hardware | plan | seeds | effect | verdict | seeds past the plan |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['hardware']} | {r['plan']} | {r['seeds']} | {r['effect']} | "
              f"**{r['verdict']}** | {r['past']} |" for r in rows]
    margins = sorted({(r["claim"], r["margin"], r["source"]) for r in rows})
    return lines + ["", *(f"- {claim}: margin ±{margin:.4f}, {source}" for claim, margin, source in margins)]


def batch_glance(runs: list[dict], curves: list[dict], out: Path) -> list[dict]:
    return effect_claim_rows([r for r in curves if r["event"] == "analysis"], out)


def arm_times(collection: Path) -> dict:
    """{(hardware, arm): [seconds per run]} from a collection.json; the arm is the run's name
    without its seed."""
    return wall_times(collection, lambda run: ",".join(o for o in run.split(",") if o[:5] != "seed="))


def write_cost(out: Path, analysis: list[dict]) -> None:
    """cost.md: the measured seconds per run; the GPU's (this experiment's GPU runs, else the nearest
    experiment timed on one); what the pilot, each written plan and, at the spread of the seeds in
    so far, each claim's plan cost; built from the tables. None without a CPU timing and a GPU one
    (this experiment's or its analog's) to build it from."""
    times = arm_times(out / "collection.json")
    cpu_times = [t for (kind, _), ts in times.items() if kind.startswith("cpu") for t in ts]
    gpu = {key: t for key, t in times.items() if not key[0].startswith("cpu")}
    source = (f"{out.name}'s own runs" if gpu else f"no run of {out.name} yet; a rough guide: {GPU_ANALOG}, "
              "the dynamics analysis on another model and cadence, masks on only")
    gpu = gpu or {key: t for key, t in arm_times(out.parent / GPU_ANALOG / "collection.json").items()
                  if not key[0].startswith("cpu")}
    analog = [t for ts in gpu.values() for t in ts]
    if not cpu_times or not analog:
        return
    cpu, per_run = statistics.median(cpu_times), statistics.median(analog)
    lines = [f"# {out.name}: cost", "", "Measured seconds per run (collection.json; the drop-rate-0.1 arm "
             "measures twice, masks on and off):", "",
             "| hardware | arm | runs | median s per run |", "|---|---|---|---|",
             *(f"| {kind} | {arm} | {len(t)} | {statistics.median(t):.0f} |"
               for (kind, arm), t in sorted(times.items())), "",
             f"On a GPU ({source}; {', '.join(sorted({kind for kind, _ in gpu}))}): "
             f"{len(analog)} runs, median {per_run:.0f} s per run with {GPU_JOBS} processes side by side "
             f"(collection.json). At that rate R runs take about ceil(R / {GPU_JOBS}) x {per_run:.0f} s of "
             f"one GPU; on the CPU, R x {cpu:.0f} s (the CPU median above). A plan's seeds come from its "
             f"kind's {MIN_PILOT_SEEDS}-seed pilot; the plans at the spread of the seeds in so far, and at "
             "twice it (3-seed pilots here underestimated the spread about 2x), are a guide only.", "",
             "| what | seeds per arm | runs | CPU core-hours | minutes of one GPU |", "|---|---|---|---|---|"]
    rows = [(f"the pilot (plan.json: {PENDING})", MIN_PILOT_SEEDS)]
    rows += [(plan["file"], max(plan["seeds"].values())) for plan in read_plans(out)]
    for claim in BATCH_DYNAMICS:
        for kind in first_seen_kinds(analysis):
            effects = list(claim_effects(rows_on(analysis, kind), claim).values())
            for ratio in (1, SPREAD_RATIO) if len(effects) > 1 else ():
                sd = ratio * sample_sd(effects)
                rows.append((f"{claim.text}: the plan at sd {sd:.4f} ({ratio}x that of {len(effects)} seeds "
                             f"on {kind}), margin ±{claim.margin:.4f}",
                             seeds_needed(sd, claim.margin / 2, MIN_SEEDS)))
    lines += [f"| {what} | {seeds} | {2 * seeds} | {2 * seeds * cpu / 3600:.1f} | "
              f"{math.ceil(2 * seeds / GPU_JOBS) * per_run / 60:.0f} |" for what, seeds in rows]
    (out / "cost.md").write_text("\n".join(lines) + "\n")
