"""Every refusal across the scripts as across the command line: one line on stderr, `error: ...`,
exit status 2, no traceback (several used to exit 1)."""
import sys

import pytest
import torch
from conftest import load_script

from repro import paths
from repro.analysis import measure

CASES = {   # name: (the script, its arguments given the test's folder, what the line must say)
    "sweep of no such experiment": ("sweep", lambda tmp: ["no_such_experiment", "--dry-run"],
                                    "no experiment 'no_such_experiment'; choose one of ["),
    "sweep over a range, not a list": ("sweep", lambda tmp: ["dynamics", "--dry-run",
                                                             "drop.rate=interval(0,1)"],
                                       "drop.rate=interval(0,1): a sweep needs a list of values"),
    "sweep of a plan never written": ("sweep", lambda tmp: ["dynamics", "--plan", "--dry-run"],
                                      "results/dynamics has no plan; write one with python -m repro.plan"),
    "queue of an experiment without a plan": ("plan_queue", lambda tmp: ["--budget", "60", "--only",
                                                                         "nothing"],
                                              "no committed plan for ['nothing']"),
    "figures without runs.csv": ("figures", lambda tmp: ["dynamics", "--no-collect", "--out", str(tmp)],
                                 "runs.csv does not exist; collect first"),
    "bench with a malformed variant": ("bench", lambda tmp: ["--variant", "channels_last"],
                                       "--variant 'channels_last' must read NAME="),
    "measure of a folder that is no run": (None, lambda tmp: [str(tmp)],
                                           "has no config.yaml: pass the directory of a run"),
}
if not torch.cuda.is_available():
    CASES["queue with --gpus and no GPU"] = ("plan_queue", lambda tmp: ["--budget", "60", "--gpus"],
                                             "--gpus but no GPU is visible")


@pytest.mark.parametrize("case", CASES)
def test_a_scripts_refusal_exits_2_with_one_line(case, tmp_path, monkeypatch, capsys):
    script, args, message = CASES[case]
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    main = load_script(script).main if script else measure.main
    monkeypatch.setattr(sys, "argv", [script or "measure", *args(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
