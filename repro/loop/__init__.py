"""The training loop and one run's life: checks, resume, the loop over optimizer steps (one
model, or K seeds as one), evaluation, summary. Never imports repro.report."""
