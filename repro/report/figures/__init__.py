"""One module per paper figure or table, each building its outputs from the committed tables
(runs.csv, curves.csv) alone; which experiment uses which: repro.report.experiments."""
