"""One module per paper figure or table; each builds its outputs from the committed tables
(runs.csv, curves.csv) alone, so figures regenerate byte for byte without data or GPU."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import matplotlib

from repro.records.tables import read_csv
from repro.report.figures import ablation, cells, dynamics, regime_map, regimes, search, summary

FIGURES = {"dynamics": dynamics.make, "dynamics_drop_path": dynamics.make,
           "dynamics_mixer": dynamics.make, "early_regime": regimes.early, "late_regime": regimes.late,
           "dynamics_decompose": dynamics.make, "dynamics_batch": dynamics.make_batch_axis,
           "early_regime_long": regimes.early_long, "regime_map_steps": regime_map.make,
           "ablation_cutoff": ablation.cutoff, "ablation_rate": ablation.rate,
           "ablation_schedule": ablation.schedule, "regime_map": regime_map.make,
           "late_regime_search": search.make, "regime_study": cells.make}

# Each current results folder's claims as summary rows (claim, verdict, effect, seeds, hardware;
# numbers raw beside them), in the order results/README.md lists them.
GLANCE = {"early_regime": partial(regimes.glance, regimes.EARLY),
          "early_regime_long": partial(regimes.glance, regimes.EARLY_LONG),
          "late_regime": partial(regimes.glance, regimes.LATE),
          "late_regime_search": search.glance, "regime_study": cells.glance,
          "dynamics_decompose": dynamics.glance,
          "dynamics_batch": dynamics.batch_glance,
          "dynamics_mixer": dynamics.glance, "dynamics_drop_path": dynamics.glance,
          "ablation_cutoff": partial(ablation.glance, key="drop.cutoff_fraction", stem="ablation_cutoff"),
          "ablation_rate": partial(ablation.glance, key="drop.rate", stem="ablation_rate"),
          "ablation_schedule": partial(ablation.glance, key="drop.schedule", stem="ablation_schedule")}

# Folders whose runs a later experiment re-used or replaced: said at the top of their table.md,
# and out of the glance, so that no run counts twice.
SUPERSEDED = {
    "dynamics": "its question is answered by `dynamics_decompose`, whose seeds 0-2 repeat these runs "
                "(same model, data, rates and seeds), measured with the masks on and off, with 10 planned "
                "seeds. Kept as the first look; not in the glance.",
    "regime_map": "replaced by `regime_map_steps` (the same number of steps in every cell, so that small "
                  "data overfits; here every cell underfits) and now `regime_study` (pre-registered per "
                  "cell). Kept as the first look; not in the glance."}

MARKERS = {"answer": ("<!-- the answer: start -->", "<!-- the answer: end -->"),
           "glance": ("<!-- claims at a glance: start -->", "<!-- claims at a glance: end -->"),
           "regime study": ("<!-- the regime study: start -->", "<!-- the regime study: end -->")}
GLANCE_START, GLANCE_END = MARKERS["glance"]


def evidence(results: Path) -> list[dict]:
    """Every current folder's summary rows, each with its folder and scale."""
    rows = []
    for name, rows_of in GLANCE.items():
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
    note = [f"**Superseded:** {SUPERSEDED[name]}", ""] if name in SUPERSEDED else []
    lines = [f"# {name}", "", *note] + FIGURES[name](runs, curves, out)
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
