"""One module per paper figure or table; each builds its outputs from the committed tables
(runs.csv, curves.csv) alone, so figures regenerate byte for byte without data or GPU."""
from __future__ import annotations

from repro.figures import ablation, dynamics, regime_map, regimes

FIGURES = {"dynamics": dynamics.make, "dynamics_drop_path": dynamics.make,
           "dynamics_mixer": dynamics.make, "early_regime": regimes.early, "late_regime": regimes.late,
           "early_regime_seeds": regimes.early, "late_regime_seeds": regimes.late,
           "ablation_cutoff": ablation.cutoff, "ablation_rate": ablation.rate,
           "ablation_schedule": ablation.schedule, "regime_map": regime_map.make}

# Runs an experiment takes from another instead of repeating them: its no-dropout baseline and the
# paper's default early dropout (p = 0.1, linear, cutoff 1/6, 3 epochs) are early_regime's runs.
SHARED = {name: ("early_regime", {("none", "standard"), ("dropout", "early")})
          for name in ("ablation_cutoff", "ablation_rate", "ablation_schedule")}
