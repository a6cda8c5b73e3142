"""No tests: kept only because tests/test_seed_batch.py imports load_script from here (now in
conftest.py). The tests that were here are in test_results_collect.py, test_results_figures.py
and test_sweep.py."""
from conftest import load_script  # noqa: F401
