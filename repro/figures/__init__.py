"""One module per paper figure or table; each builds its outputs from the committed tables
(runs.csv, curves.csv) alone, so figures regenerate byte for byte without data or GPU."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import matplotlib

from repro.figures import ablation, cells, dynamics, regime_map, regimes, search
from repro.results import read_csv

FIGURES = {"dynamics": dynamics.make, "dynamics_drop_path": dynamics.make,
           "dynamics_mixer": dynamics.make, "early_regime": regimes.early, "late_regime": regimes.late,
           "dynamics_decompose": dynamics.make, "dynamics_batch": dynamics.make_batch_axis,
           "early_regime_long": regimes.early_long, "regime_map_steps": regime_map.make,
           "ablation_cutoff": ablation.cutoff, "ablation_rate": ablation.rate,
           "ablation_schedule": ablation.schedule, "regime_map": regime_map.make,
           "late_regime_search": search.make, "regime_study": cells.make}

# Each results folder's claims as summary rows (claim, verdict, effect, seeds, hardware), in the
# order results/README.md lists them.
GLANCE = {"regime_study": cells.glance, "early_regime": partial(regimes.glance, regimes.EARLY),
          "early_regime_long": partial(regimes.glance, regimes.EARLY_LONG),
          "late_regime": partial(regimes.glance, regimes.LATE),
          "late_regime_search": search.glance,
          "dynamics_decompose": dynamics.glance, "dynamics": dynamics.glance,
          "dynamics_mixer": dynamics.glance, "dynamics_drop_path": dynamics.glance,
          "ablation_cutoff": partial(ablation.glance, key="drop.cutoff_fraction", stem="ablation_cutoff"),
          "ablation_rate": partial(ablation.glance, key="drop.rate", stem="ablation_rate"),
          "ablation_schedule": partial(ablation.glance, key="drop.schedule", stem="ablation_schedule")}


GLANCE_START, GLANCE_END = "<!-- claims at a glance: start -->", "<!-- claims at a glance: end -->"


def glance(results: Path) -> list[str]:
    """The 'Claims at a glance' table over every results folder GLANCE knows."""
    lines = ["| claim | verdict | effect (95% CI) | seeds | hardware | folder |", "|---|---|---|---|---|---|"]
    for name, rows_of in GLANCE.items():
        folder = results / name
        if not (folder / "runs.csv").is_file():
            continue
        for row in rows_of(read_csv(folder / "runs.csv"), read_csv(folder / "curves.csv"), folder):
            lines.append(f"| {row['claim']} | {row['verdict']} | {row['effect']} | {row['seeds']} | "
                         f"{row['hardware']} | `{name}/` |")
    return lines


def build(name: str, out: Path) -> list[str]:
    """Experiment `name`'s figures, table.md and figures.json in `out`, from its tables alone."""
    runs, curves = read_csv(out / "runs.csv"), read_csv(out / "curves.csv")
    skipped = read_csv(out / "skipped.csv") if (out / "skipped.csv").is_file() else []
    lines = [f"# {name}", ""] + FIGURES[name](runs, curves, out)
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
    """Replace the table between the glance markers of results/README.md with a fresh one."""
    readme = results / "README.md"
    text = readme.read_text()
    if GLANCE_START not in text or GLANCE_END not in text:
        raise ValueError(f"{readme} lacks the markers {GLANCE_START} ... {GLANCE_END}; add them where "
                         "the table belongs")
    head, rest = text.split(GLANCE_START, 1)
    tail = rest.split(GLANCE_END, 1)[1]
    readme.write_text(head + GLANCE_START + "\n" + "\n".join(glance(results)) + "\n" + GLANCE_END + tail)
