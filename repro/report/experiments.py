"""Every experiment's record (repro.report.claims.Experiment) in one registry, and what is built
from it: each results folder's table.md and figures (from its committed tables alone, so they
regenerate byte for byte without data or GPU), and results/README.md's generated sections.
Adding an experiment: conf/experiment/NAME.yaml, and its record here."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import matplotlib

from repro.records.tables import read_csv
from repro.report import claims
from repro.report.claims import Experiment
from repro.report.figures import (
    ablation,
    cells,
    dynamics,
    regime_map,
    regimes,
    search,
    settings,
    summary,
    training_batch,
)

# Runs the ablations take from early_regime instead of repeating them: its no-dropout baseline and
# the paper's default early dropout (p = 0.1, linear, cutoff 1/6, 3 epochs).
EARLY_DEFAULTS = ("early_regime", {claims.NONE, claims.EARLY_DROPOUT})
DECOMPOSED = "its question is answered by `dynamics_decompose`, whose seeds 0-2 repeat these runs "\
    "(same model, data, rates and seeds), measured with the masks on and off, with 10 planned seeds. "\
    "Kept as the first look; not in the glance."
STEPS_MAP = "replaced by `regime_map_steps` (the same number of steps in every cell, so that small data "\
    "overfits; here every cell underfits) and now `regime_study` (pre-registered per cell). Kept as the "\
    "first look; not in the glance."


def ablation_of(name: str, figures, key: str) -> Experiment:
    """An ablation over `key` against early_regime's defaults (whose runs it shares)."""
    return Experiment(name=name, figures=figures, glance=partial(ablation.glance, key=key, stem=name),
                      shared=EARLY_DEFAULTS)


# In the order results/README.md's Claims at a glance lists them.
EXPERIMENTS = {e.name: e for e in (
    Experiment(name="early_regime", figures=regimes.early, glance=partial(regimes.glance, regimes.EARLY),
               claims=claims.EARLY),
    Experiment(name="early_regime_long", figures=regimes.early_long,
               glance=partial(regimes.glance, regimes.EARLY_LONG), claims=claims.EARLY_LONG),
    Experiment(name="late_regime", figures=regimes.late, glance=partial(regimes.glance, regimes.LATE),
               claims=claims.LATE),
    Experiment(name="late_regime_search", figures=search.make, glance=search.glance),
    Experiment(name="regime_study", figures=cells.make, glance=cells.glance),
    Experiment(name="regime_critic", figures=partial(settings.make, settings.CRITIC),
               glance=partial(settings.glance, settings.CRITIC), claims=claims.CRITIC,
               arms=(claims.NO_DROPOUT, *claims.SETTINGS)),
    Experiment(name="late_timing", figures=partial(settings.make, settings.TIMING),
               glance=partial(settings.glance, settings.TIMING), claims=claims.TIMING,
               arms=tuple(claims.TIMING_ARMS)),
    Experiment(name="dynamics_decompose", figures=dynamics.make, glance=dynamics.glance,
               curve_claims=claims.DYNAMICS, arms=("drop.rate=0.0", "drop.rate=0.1")),
    Experiment(name="dynamics_batch", glance=training_batch.batch_glance,
               figures=partial(training_batch.make_batch_axis, reference="dynamics_decompose"),
               curve_claims=claims.BATCH_DYNAMICS,
               arms=("drop.rate=0.0,train.batch_size=1024", "drop.rate=0.1,train.batch_size=1024")),
    Experiment(name="dynamics_mixer", figures=dynamics.make, glance=dynamics.glance),
    Experiment(name="dynamics_drop_path", figures=dynamics.make, glance=dynamics.glance),
    ablation_of("ablation_cutoff", ablation.cutoff, "drop.cutoff_fraction"),
    ablation_of("ablation_rate", ablation.rate, "drop.rate"),
    ablation_of("ablation_schedule", ablation.schedule, "drop.schedule"),
    Experiment(name="regime_map_steps", figures=regime_map.make),
    Experiment(name="dynamics", figures=dynamics.make, superseded=DECOMPOSED),
    Experiment(name="regime_map", figures=regime_map.make, superseded=STEPS_MAP),
)}


MARKERS = {"answer": ("<!-- the answer: start -->", "<!-- the answer: end -->"),
           "glance": ("<!-- claims at a glance: start -->", "<!-- claims at a glance: end -->"),
           "regime study": ("<!-- the regime study: start -->", "<!-- the regime study: end -->")}
GLANCE_START, GLANCE_END = MARKERS["glance"]


def evidence(results: Path) -> list[dict]:
    """Every current folder's summary rows, each with its folder and scale."""
    rows = []
    for name, rows_of in ((e.name, e.glance) for e in EXPERIMENTS.values() if e.glance):
        folder = results / name
        if not (folder / "runs.csv").is_file():
            continue
        runs = read_csv(folder / "runs.csv")
        rows += [{"folder": name, "scale": summary.scale_text(runs), **row}
                 for row in rows_of(runs, read_csv(folder / "curves.csv"), folder)]
    return rows


def glance(results: Path) -> list[str]:
    """The 'Claims at a glance' table over every current results folder."""
    return summary.glance(evidence(results))


def build(name: str, out: Path) -> list[str]:
    """Experiment `name`'s figures, table.md and figures.json in `out`, from its tables alone."""
    runs, curves = read_csv(out / "runs.csv"), read_csv(out / "curves.csv")
    skipped = read_csv(out / "skipped.csv") if (out / "skipped.csv").is_file() else []
    experiment = EXPERIMENTS[name]
    note = [f"**Superseded:** {experiment.superseded}", ""] if experiment.superseded else []
    lines = [f"# {name}", "", *note] + experiment.figures(runs, curves, out)
    if skipped:
        lines += ["", "Not included (incomplete runs):", ""]
        lines += [f"- {s['run']}: {s['status']} at step {s['last_step']}" for s in skipped]
    lines += ["", f"Built by `python scripts/figures.py {name} --no-collect` from runs.csv and "
              "curves.csv; each run's commit, hardware, package versions, command and wall time "
              "are in collection.json; the sweep command and verdicts are in ../README.md."]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "figures.json").write_text(json.dumps({"matplotlib": matplotlib.__version__}) + "\n")
    return lines


def write_glance(results: Path) -> None:
    """results/README.md's generated sections (between their markers: the answer, the glance, where
    the regime study's claims hold) and the headline figure results/claims.png / .pdf, from the
    tables."""
    readme = results / "README.md"
    text = readme.read_text()
    rows = evidence(results)
    study = results / "regime_study"
    for key, lines in (("answer", summary.answer(rows)), ("glance", summary.glance(rows)),
                       ("regime study", cells.where(read_csv(study / "runs.csv"), study))):
        start, end = MARKERS[key]
        if start not in text or end not in text:
            raise ValueError(f"{readme} lacks the markers {start} ... {end}; add them where it belongs")
        head, rest = text.split(start, 1)
        text = head + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1]
    readme.write_text(text)
    summary.plot_claims(rows, results)
    (results / "claims.json").write_text(json.dumps({"matplotlib": matplotlib.__version__}) + "\n")
