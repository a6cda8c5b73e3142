"""One module per paper figure or table; each builds its outputs from the committed tables
(runs.csv, curves.csv) alone, so figures regenerate byte for byte without data or GPU."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

from repro.figures import ablation, dynamics, regime_map, regimes
from repro.results import read_csv

FIGURES = {"dynamics": dynamics.make, "dynamics_drop_path": dynamics.make,
           "dynamics_mixer": dynamics.make, "early_regime": regimes.early, "late_regime": regimes.late,
           "early_regime_seeds": regimes.early, "late_regime_seeds": regimes.late,
           "ablation_cutoff": ablation.cutoff, "ablation_rate": ablation.rate,
           "ablation_schedule": ablation.schedule, "regime_map": regime_map.make}


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
