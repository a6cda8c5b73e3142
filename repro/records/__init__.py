"""What a run leaves on disk: its directory and lock, checkpoints, metrics log and W&B run,
provenance, atomic writes, the per-run plot. Imports no training code and no reporting."""
