"""Refactors keep training bitwise: fingerprints of tiny runs (metrics.jsonl without timings, and
the final weights) recorded at commit 9c7368d, before the drop schedule became one object
(repro.schedules.DropSchedule). A change that alters any loss, rate, metric or weight fails here;
one that means to must say so and record new fingerprints. CPU float results depend on the torch
build and the CPU's vector unit, so the test runs where the fingerprints were recorded."""
import hashlib
import json

import pytest
import torch
from conftest import TINY, make_cfg

from repro.run import run

RECORDED_ON = ("2.14.1", "AVX2")
CASES = {"dropout": (["drop=dropout", "drop.rate=0.2"], "a293e9cd690f0d35", "8f6e1b8ad9c47a03"),
         "drop_path": (["drop=drop_path", "drop.rate=0.2"], "2f7fa9da8d4a91c3", "868ee9445a19c065"),
         "early_dropout": (["drop=early_dropout", "drop.rate=0.3"], "862a412690903c40", "1fa19fb8cd27195e"),
         "late_drop_path": (["drop=late_drop_path"], "15496e8a57e40805", "a47f0f43670fffcc"),
         "probe": (["drop=early_dropout", "analysis.mode=live", "analysis.steps=[0,5,20]",
                    "analysis.num_grads=3", "analysis.full_subset=64"],
                   "20733fd2f757e04e", "fde5b9c7cb4e0971")}


def fingerprints(run_dir) -> tuple[str, str]:
    events = [{k: v for k, v in json.loads(line).items() if k != "img_per_s"}
              for line in open(run_dir / "metrics.jsonl")]
    weights = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    return (hashlib.sha256(json.dumps(events, sort_keys=True).encode()).hexdigest()[:16],
            hashlib.sha256(b"".join(t.numpy().tobytes() for t in weights.values())).hexdigest()[:16])


@pytest.mark.skipif((torch.__version__.split("+")[0], torch.backends.cpu.get_cpu_capability()) != RECORDED_ON,
                    reason=f"fingerprints were recorded with torch / CPU {RECORDED_ON}")
@pytest.mark.parametrize("name", sorted(CASES))
def test_training_is_bitwise_what_it_was(name, tmp_path):
    overrides, events, weights = CASES[name]
    run(make_cfg(*TINY, *overrides), tmp_path)
    assert fingerprints(tmp_path) == (events, weights)
