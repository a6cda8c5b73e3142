"""A small plot of one run: train loss, test accuracy and drop rate against optimizer steps."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / "metrics.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_run(run_dir: Path) -> Path:
    events = read_metrics(run_dir)
    train = [e for e in events if e["event"] == "train"]
    evals = [e for e in events if e["event"] == "eval"]
    panels = [("train loss", train, "loss"), ("test accuracy", evals, "test_acc"),
              ("drop rate", train, "drop_rate")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (title, rows, key) in zip(axes, panels):
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="." if rows is evals else None)
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
