"""The paper's claims as testable comparisons: which method against which baseline, on which
metric, in which direction, and the margin: the paper's own effect size (docs/paper.md section 5)
where it publishes one for the comparison, else ours (`ours`, with the reason in `source`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import OmegaConf

from repro import paths
from repro.arms import method_key

NONE = ("none", "standard")
DROPOUT, DROP_PATH = ("dropout", "standard"), ("drop_path", "standard")
EARLY_DROPOUT, EARLY_DROP_PATH = ("dropout", "early"), ("drop_path", "early")
LATE_DROPOUT, LATE_DROP_PATH = ("dropout", "late"), ("drop_path", "late")


@dataclass(frozen=True)
class Claim:
    text: str
    method: tuple | str      # (drop.kind, drop.mode), or an arm: a drop setting (of_method)
    baseline: tuple | str
    metric: str              # a runs.csv column
    sign: int                # +1: the paper says method > baseline; -1: method < baseline
    margin: float            # in the metric's own units (test_acc is a fraction)
    source: str              # where the margin comes from: the paper's table, or why ours
    ours: bool = False       # the margin is ours: the paper gives no size for this comparison

    @property
    def whose(self) -> str:
        """Whose margin: "the paper's" (its table in `source`) or "ours" (why in `source`)."""
        return "ours" if self.ours else "the paper's"

    @property
    def margin_note(self) -> str:
        """Whose margin and where it comes from, as the tables print it."""
        return self.source if self.source.startswith(self.whose) else f"{self.whose}, {self.source}"

    @property
    def key(self) -> str:
        return f"{method_key(self.method)} vs {method_key(self.baseline)}: {self.metric}"


TABLE1 = "ViT-T/16, ImageNet-1K, basic recipe (Table 1: 73.9 no dropout)"
OURS_LOSS = "ours: 1% of our no-dropout final training loss (~0.51); the paper gives no number"

EARLY = (
    Claim("early dropout raises test accuracy", EARLY_DROPOUT, NONE, "test_acc", +1, 0.004,
          f"{TABLE1}: 74.3 - 73.9"),
    Claim("early s.d. raises test accuracy", EARLY_DROP_PATH, NONE, "test_acc", +1, 0.005,
          f"{TABLE1}: 74.4 - 73.9"),
    Claim("early dropout lowers the final training loss", EARLY_DROPOUT, NONE, "train_full_loss", -1,
          0.005, OURS_LOSS, ours=True),
    Claim("early s.d. lowers the final training loss", EARLY_DROP_PATH, NONE, "train_full_loss", -1,
          0.005, OURS_LOSS, ours=True),
    Claim("standard dropout hurts an underfitting model", DROPOUT, NONE, "test_acc", -1, 0.060,
          f"{TABLE1}: 67.9 - 73.9"),
    Claim("standard s.d. hurts an underfitting model", DROP_PATH, NONE, "test_acc", -1, 0.013,
          f"{TABLE1}: 72.6 - 73.9"),
)

LATE = (
    Claim("late s.d. raises test accuracy over standard s.d.", LATE_DROP_PATH, DROP_PATH, "test_acc",
          +1, 0.007, "ViT-B/16, ImageNet-1K (section 5: 81.6 standard s.d. -> 82.3 late s.d.)"),
    Claim("late s.d. raises test accuracy over no s.d.", LATE_DROP_PATH, NONE, "test_acc", +1, 0.007,
          "as above (no published no-s.d. ViT-B/16 number)", ours=True),
    Claim("standard s.d. raises test accuracy of an overfitting model", DROP_PATH, NONE, "test_acc",
          +1, 0.007, "the late regime's premise; margin taken as the late s.d. gain (no published "
          "no-s.d. ViT-B/16 number)", ours=True),
)


# The regime study (experiment regime_study): claims scoped to a cell of the map, chosen by the
# cell's regime, measured from its no-dropout pilot runs (train - test accuracy gap, 95% interval).
UNDERFIT_MAX_GAP, OVERFIT_MIN_GAP = 0.03, 0.10      # the gap's upper / lower 95% bound


def cell_regime(gap: float, half: float) -> str:
    """underfitting (the gap's upper bound <= 3 pp), overfitting (its lower bound >= 10 pp), or
    between."""
    if gap + half <= UNDERFIT_MAX_GAP:
        return "underfitting"
    return "overfitting" if gap - half >= OVERFIT_MIN_GAP else "between"


LATE_SD = "ViT-B/16, ImageNet-1K (section 5: 81.6 standard s.d. -> 82.3 late s.d.)"
BORROWED = f"borrowed from late s.d.'s gain, {LATE_SD}: the paper publishes no number for this comparison"
REGULARIZES = (
    Claim("standard dropout raises test accuracy of an overfitting model", DROPOUT, NONE, "test_acc", +1,
          0.007, f"the late claims' premise; margin {BORROWED}", ours=True),
    Claim("standard s.d. raises test accuracy of an overfitting model", DROP_PATH, NONE, "test_acc", +1,
          0.007, f"the late claims' premise; margin {BORROWED}", ours=True),
)
LATE_CELL = (
    Claim("late dropout raises test accuracy over standard dropout", LATE_DROPOUT, DROPOUT, "test_acc",
          +1, 0.007, BORROWED, ours=True),
    Claim("late s.d. raises test accuracy over standard s.d.", LATE_DROP_PATH, DROP_PATH, "test_acc",
          +1, 0.007, LATE_SD),
)
CELL_CLAIMS = {"underfitting": EARLY, "overfitting": EARLY[:2] + REGULARIZES + LATE_CELL,
               "between": EARLY[:2]}


# The settings a critic would try (experiment regime_critic): early dropout at other rates, cutoffs
# and schedule shapes, each against no dropout in the regime study's underfitting cell (width 48,
# 60000 images). The paper publishes a number for its default setting only (p = 0.1, linear, cutoff
# 50 of 300 epochs) and says the gain holds for cutoffs of 1-50% of training and, more loosely,
# across p (docs/paper.md section 5); the other settings borrow that number as their margin, ours.
NO_DROPOUT = "drop=none"
DEFAULT_SETTING = "drop=early_dropout"
SETTINGS = {           # arm -> the setting in the paper's words
    "drop=early_dropout,drop.rate=0.05": "p = 0.05 (linear, cutoff 1/6)",
    DEFAULT_SETTING: "p = 0.1, linear, cutoff 1/6 (the paper's default)",
    "drop=early_dropout,drop.rate=0.2": "p = 0.2 (linear, cutoff 1/6)",
    "drop=early_dropout,drop.rate=0.3": "p = 0.3 (linear, cutoff 1/6)",
    "drop=early_dropout,drop.cutoff_fraction=0.01": "cutoff 1% of training (p = 0.1, linear)",
    "drop=early_dropout,drop.cutoff_fraction=0.05": "cutoff 5% of training (p = 0.1, linear)",
    "drop=early_dropout,drop.cutoff_fraction=0.25": "cutoff 25% of training (p = 0.1, linear)",
    "drop=early_dropout,drop.cutoff_fraction=0.5": "cutoff 50% of training (p = 0.1, linear)",
    "drop=early_dropout,drop.schedule=constant": "a constant p = 0.1 until cutoff 1/6",
}
EARLY_GAIN = f"{TABLE1}: 74.3 - 73.9"
BORROWED_GAIN = (f"borrowed from the paper's gain at its default setting, {EARLY_GAIN}: the paper states "
                 "that the gain holds for cutoffs of 1-50% of training and, more loosely, across p, "
                 "with no number for this setting")
CRITIC = tuple(
    Claim(f"early dropout at {label} raises test accuracy", arm, NO_DROPOUT, "test_acc", +1, 0.004,
          EARLY_GAIN if arm == DEFAULT_SETTING else BORROWED_GAIN, ours=arm != DEFAULT_SETTING)
    for arm, label in SETTINGS.items())

# Late s.d.'s timing apart from its rate (experiment late_timing): the regime study's late s.d. claim,
# as the paper's setting, changes timing and rate at once (r 0.4 after the cutoff against standard
# s.d. at r 0.1); here standard s.d. runs at the same r 0.4 throughout, in the same overfitting cell.
LATE_SD_SETTING = "drop=late_drop_path"
STANDARD_SD_AT_LATE_RATE = "drop=drop_path,drop.rate=0.4"
TIMING_ARMS = {STANDARD_SD_AT_LATE_RATE: "standard s.d., r = 0.4",
               LATE_SD_SETTING: "late s.d., r = 0.4 after 1/6"}
TIMING = (
    Claim("late s.d. raises test accuracy over standard s.d. at the same rate (r 0.4)", LATE_SD_SETTING,
          STANDARD_SD_AT_LATE_RATE, "test_acc", +1, 0.007,
          f"late s.d.'s gain, {LATE_SD}, whose standard s.d. rate the paper does not give: borrowed",
          ours=True),
)


@dataclass(frozen=True)
class CurveClaim:
    """A claim about the training-dynamics curves (docs/paper.md section 4): per seed, `effect` of
    the run with dropout against the run without on `metric`, its mean over the phase's measured
    steps (early: steps 1-100; late: the last two), then over seeds. The paper shows these as
    figures only: no effect size, so no margin, unless one of ours is given (why in `source`);
    then a pilot sizes the plan (repro.report.plan.pilot_plan)."""
    text: str
    metric: str              # an analysis record (a curves.csv column)
    phase: str               # early or late
    sign: int
    effect: str = "paper"    # repro.report.figures.decomposition.effects: paper, mask or trajectory
    margin: float | None = None       # ours (the paper gives figures only), in the metric's units
    source: str = ""

    @property
    def ours(self) -> bool:
        return self.margin is not None


DYNAMICS = (
    CurveClaim("smaller gradient norm with dropout", "grad_norm", "early", -1),
    CurveClaim("larger distance from initialization with dropout", "model_distance", "late", +1),
    CurveClaim("lower gradient direction variance early", "grad_direction_variance", "early", -1),
    CurveClaim("lower gradient direction error early", "grad_direction_error", "early", -1),
    CurveClaim("direction variance higher with dropout later (crossing)", "grad_direction_variance",
               "late", +1),
    CurveClaim("direction error higher with dropout later (crossing)", "grad_direction_error",
               "late", +1),
)

# The training-batch axis (experiment dynamics_batch): the paper's mechanism, lower direction
# variance through the trajectory dropout takes, at training batch 1024, where the masks add a
# sixth of the direction variance they add at 128 (README, training-batch axis).
MASKS_AT_1024 = ("ours: the mask effect on early direction variance at training batch 1024, +0.0260 "
                 "(dynamics_batch/table.md, 3 seeds): paper = mask + trajectory, so only a trajectory "
                 "effect beyond -0.026 turns the paper's comparison to the paper's sign at this batch; "
                 "the paper gives figures only")
BATCH_DYNAMICS = (
    CurveClaim("dropout's trajectory lowers early direction variance at training batch 1024",
               "grad_direction_variance", "early", -1, effect="trajectory", margin=0.026,
               source=MASKS_AT_1024),
)

EARLY_LONG = tuple(c for c in EARLY if c.method == EARLY_DROPOUT)
# Experiments of cells and their cell keys, as their configs declare them (logger.cell)
CELL_EXPERIMENTS = {path.stem: tuple(keys) for path in sorted((paths.CONF / "experiment").glob("*.yaml"))
                    if (keys := OmegaConf.load(path).get("logger", {}).get("cell"))}


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """Everything the report knows of one experiment, whose runs conf/experiment/NAME.yaml
    configures: one record each, in repro.report.experiments.EXPERIMENTS."""
    name: str
    figures: Callable                  # (runs, curves, out) -> table.md's lines; writes its figures
    glance: Callable | None = None     # (runs, curves, out) -> its rows in Claims at a glance
    claims: tuple = ()                 # claims on final metrics, each planned from a pilot's spread
    curve_claims: tuple = ()           # claims on the dynamics curves (CurveClaim)
    arms: tuple = ()                   # grid points without the seed: its grid is each at each of
                                       # its seeds (scripts/sweep.py); its claims compare them
    shared: tuple | None = None        # (folder, methods): runs it takes from another experiment
    superseded: str | None = None      # why later evidence replaced it: atop its table, out of the glance

    @property
    def cell(self) -> tuple:
        """The keys of its cells (its config's logger.cell): a plan and a verdict per cell."""
        return CELL_EXPERIMENTS.get(self.name, ())

    @property
    def piloted(self) -> bool:
        """Whether its curve claims carry margins (ours), so that a pilot sizes their plan."""
        return any(c.ours for c in self.curve_claims)
