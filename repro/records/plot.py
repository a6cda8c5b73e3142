"""A small plot of one run: train loss, test accuracy and drop rate against optimizer steps."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from repro.records.rundir import RunDir  # noqa: E402


def plot_run(run_dir: Path, rates) -> Path:
    """Plot `run_dir`'s metrics and `rates`, the drop rate of every optimizer step: the schedule
    itself, since train events sample it only every train.log_every steps, after the first."""
    events = RunDir(run_dir).events()
    train = [e for e in events if e["event"] == "train"]
    evals = [e for e in events if e["event"] == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train])
    axes[1].plot([r["step"] for r in evals], [r["test_acc"] for r in evals], marker=".")
    axes[2].plot(np.arange(1, len(rates) + 1), rates)       # step s runs at rates[s - 1]
    for ax, title in zip(axes, ("train loss", "test accuracy", "drop rate")):
        ax.set_title(title)
        ax.set_xlabel("step")
    if evals:
        axes[0].plot([r["step"] for r in evals], [r["train_full_loss"] for r in evals], "o-",
                     label="full model, eval mode")
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(run_dir) / "plot.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
