"""One module per paper figure or table; each builds its outputs from the committed tables
(runs.csv, curves.csv) alone, so figures regenerate byte for byte without data or GPU."""
from __future__ import annotations

from repro.figures import ablation, dynamics, early_regime

FIGURES = {"dynamics": dynamics.make, "dynamics_drop_path": dynamics.make,
           "dynamics_mixer": dynamics.make, "early_regime": early_regime.make,
           "ablation_cutoff": ablation.cutoff, "ablation_rate": ablation.rate,
           "ablation_schedule": ablation.schedule}
