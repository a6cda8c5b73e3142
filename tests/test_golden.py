"""The drift guard (repro.report.drift): training is bitwise what results/golden.json recorded for this
machine's numerics kind, on every kind (an unrecorded kind records, then must reproduce itself);
a first-seen kind replays a committed planned run first; a mismatch names the cases and stops
the sweep and the queue before any run is added."""
import json

import pytest
import torch
from conftest import load_script

from repro import paths
from repro.records.provenance import hardware_kind, numerics
from repro.records.tables import write_csv
from repro.report import drift, launch


def test_training_is_bitwise_what_this_kind_recorded(tmp_path):
    kind = launch.hardware_here(None)
    record = json.loads(drift.GOLDEN.read_text()).get(kind, {})
    got = drift.measure()
    if not record:     # a kind not yet recorded: what the guard would record must reproduce itself
        record = drift.measure()
    cases = [c for c in drift.CASES if c in record]
    assert {c: got[c] for c in cases} == {c: record[c] for c in cases}


def fake_measure(values):
    return lambda device="cpu": {c: list(values) for c in drift.CASES}


@pytest.mark.parametrize("capability", ["AVX2", "AVX512"])
def test_guard_records_a_new_kind_then_compares(capability, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    kind = launch.hardware_here(None)
    assert kind == f"cpu {capability} torch {torch.__version__}"
    golden, results = tmp_path / "golden.json", tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(drift, "measure", fake_measure(["aa", "bb"]))
    assert drift.guard(kind, golden=golden, results=results) == "recorded"
    assert json.loads(golden.read_text())[kind]["probe"] == ["aa", "bb"]
    assert drift.guard(kind, golden=golden, results=results) == "matched"
    monkeypatch.setattr(drift, "measure", lambda device="cpu": {**fake_measure(["aa", "bb"])(),
                                                                "early_drop_path": ["aa", "XX"]})
    with pytest.raises(drift.Drift, match=r"in cases \['early_drop_path'\]"):
        drift.guard(kind, golden=golden, results=results)
    other = "cpu AVX512" if capability == "AVX2" else "cpu AVX2"      # the other kind is untouched
    assert not any(k.startswith(other) for k in json.loads(golden.read_text()))


def test_old_records_have_a_kind_of_their_own():
    assert hardware_kind({"device": "cpu", "hardware": "x86_64, 1 threads"}) == "cpu, instruction set unknown"
    assert hardware_kind({"device": "cpu", "batched": 4}) == "cpu, instruction set unknown (batched)"
    old_gpu = {"device": "cuda:0", "hardware": "NVIDIA H200", "batched": 41}
    assert hardware_kind(old_gpu) == "NVIDIA H200 (batched)"
    new = numerics(torch.device("cpu"))
    assert hardware_kind(new) == f"cpu {torch.backends.cpu.get_cpu_capability()} torch {torch.__version__}"
    assert hardware_kind({**new, "device": "cuda:0", "hardware": "NVIDIA H200"}) == \
        f"NVIDIA H200 torch {torch.__version__}"


def committed_run(tmp_path, kind, shift=0.0):
    """results/NAME with a plan for `kind` and one run trained here, as the ledger records it."""
    from repro.compose import compose_config
    from repro.loop.run import run
    argv = ["repro/train.py", *drift.TINY, "drop=early_dropout", "seed=0", "hydra.run.dir=x"]
    summary = run(compose_config(argv[1:-1]), tmp_path / "run")
    folder = tmp_path / "results" / "exp"
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps({"hardware": kind, "seeds": {}}))
    write_csv([{"run": "r0", "hardware": kind, **{k: summary[k] + shift for k in ("test_acc", "test_loss")}}],
              folder / "runs.csv")
    (folder / "collection.json").write_text(json.dumps({"runs": [{"run": "r0", "argv": argv}]}))
    return tmp_path / "results"


def test_a_first_seen_kind_replays_a_committed_run_first(tmp_path, monkeypatch):
    kind = "cpu TEST torch 0"
    results = committed_run(tmp_path, kind)
    monkeypatch.setattr(drift, "measure", fake_measure(["aa", "bb"]))
    assert drift.guard(kind, golden=tmp_path / "g.json", results=results) == "recorded"
    results = committed_run(tmp_path / "other", kind, shift=1e-4)     # a run this machine does not reproduce
    with pytest.raises(drift.Drift, match="does not reproduce that kind's runs"):
        drift.guard(kind, golden=tmp_path / "g2.json", results=results)
    assert not (tmp_path / "g2.json").is_file()


@pytest.mark.parametrize("script,args", [("sweep", ["early_regime", "seed=999", "drop=none"]),
                                         ("plan_queue", ["--budget", "9999", "--only", "early_regime"])])
def test_sweep_and_queue_stop_before_launching_on_drift(script, args, tmp_path, monkeypatch, capsys):
    module = load_script(script)
    monkeypatch.setattr(paths, "MULTIRUN", tmp_path / "multirun")
    monkeypatch.setattr(launch, "hardware_here", lambda gpus, batched=False: "cpu, instruction set unknown")

    def drifted(kind, device="cpu"):
        raise drift.Drift("training on X no longer reproduces its golden fingerprints in cases ['probe']")
    monkeypatch.setattr(drift, "guard", drifted)
    monkeypatch.setattr(launch, "launch_parallel", lambda *a, **k: pytest.fail("launched despite drift"))
    monkeypatch.setattr("sys.argv", [script, *args])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 2
    assert "in cases ['probe']" in capsys.readouterr().err
