"""The benchmark script: its FLOP count against hand-computed products, and a tiny end-to-end
run that writes every variant's numbers (timings themselves are not tested)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, load_script

from repro.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_train_flops_counts_forward_and_backward_products():
    bench = load_script("bench")
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    # hand: forward 2 * 5 * (4*8 + 8*3) = 560; backward: weight grads 560 again, input grads only
    # for the second layer (the images need none): 2 * 5 * 8*3 = 240.
    assert bench.train_flops(model, x, y) == 560 + 560 + 240
    assert all(p.grad is None for p in model.parameters())


def test_bench_runs_every_variant_and_writes_its_result(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--models", "vit_micro", "--steps", "2",
           "--reps", "1", "--compile", "aot_eager", "--dataloader", "--out", str(tmp_path),
           "--variant", "nhwc_fused=train.channels_last=true optim.fused=true",
           "drop=dropout", "data.num_train=1024", *TINY]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path)
    (path,) = tmp_path.glob("bench_vit_micro_*.json")
    (result,) = json.loads(path.read_text())["results"]
    ips = result["img_per_s"]
    assert set(ips) == {"ours", "bare", "bare_on_our_batches", "ours_compiled", "nhwc_fused",
                        "dataloader_eager_amp"}
    assert len(result["loop_overhead"]["per_rep"]) == 1
    assert all(v > 0 for v in ips.values())
    assert result["vs_ours_eager"]["nhwc_fused"] == pytest.approx(ips["nhwc_fused"] / ips["ours"])
    assert set(result["vs_dataloader"]) == {"ours", "ours_compiled", "nhwc_fused"}
    assert result["train_gflop_per_image"] > 0 and result["mfu"] is None     # no GPU peak on CPU


@pytest.mark.parametrize("spec", ["channels_last", "2fast=train.amp=false", "empty="])
def test_a_malformed_variant_is_refused_before_any_work(spec):
    bench = load_script("bench")
    with pytest.raises(ConfigError, match="must read NAME="):
        bench.parse_variants([spec], None)
    assert bench.parse_variants(['g=train.compile=inductor train.compile_mode=reduce-overhead'],
                                "inductor") == {
        "ours_compiled": ["train.compile=inductor"],
        "g": ["train.compile=inductor", "train.compile_mode=reduce-overhead"]}


def test_the_loop_overhead_is_paired_rep_by_rep():
    bench = load_script("bench")
    times = {"ours": [1.1, 1.3, 1.05], "base": [1.0, 1.2, 1.0]}
    got = bench.paired_overhead(times, "ours", "base")
    # by hand: 0.1, 0.08333, 0.05; mean 0.07778, sd 0.02546, t(0.975, 2) = 4.303: half 0.06325
    assert got["per_rep"] == pytest.approx([0.1, 1.3 / 1.2 - 1, 0.05])
    assert got["mean"] == pytest.approx(0.077778, abs=1e-5)
    assert got["ci95_half_width"] == pytest.approx(0.06325, abs=1e-4)
