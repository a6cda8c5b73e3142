"""From run folders to results/: collecting runs, the ledger, claims and their statistics,
plans, launching sweeps and queues, the drift guard, the figures and tables."""
