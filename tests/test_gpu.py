"""The CUDA path against the CPU one (skipped without a GPU; run on a lent one): fp32 training
matches the CPU, bf16 autocast stays close to fp32, channels-last and fused AdamW change
nothing, CUDA graphs (compile_mode=reduce-overhead) follow a rate that changes every step without
recompiling, and the data stays on the GPU as uint8."""
import pytest
import torch
from test_run import events
from torch._dynamo.utils import counters

from repro.loop.assemble import build_trainer, prepare
from repro.loop.run import run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def losses(tiny_cfg, path, *overrides):
    run(tiny_cfg("train.epochs=1", *overrides), path)
    return [e["loss"] for e in events(path, "train")]


def test_fp32_training_on_the_gpu_matches_the_cpu(tiny_cfg, tmp_path):
    # No dropout: the two devices draw different random masks. No augmentation on synthetic data.
    cpu = losses(tiny_cfg, tmp_path / "cpu", "device=cpu", "drop=none")
    gpu = losses(tiny_cfg, tmp_path / "gpu", "device=cuda", "drop=none", "train.amp=false")
    assert gpu == pytest.approx(cpu, rel=1e-4)


def test_bf16_autocast_stays_close_to_fp32(tiny_cfg, tmp_path):
    fp32 = losses(tiny_cfg, tmp_path / "fp32", "device=cuda", "drop=none", "train.amp=false")
    bf16 = losses(tiny_cfg, tmp_path / "bf16", "device=cuda", "drop=none", "train.amp=true")
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=3e-2)


@pytest.mark.parametrize("option", ["train.channels_last=true", "optim.fused=true"])
def test_fast_path_options_give_the_same_training_on_the_gpu(tiny_cfg, tmp_path, option):
    plain = losses(tiny_cfg, tmp_path / "plain", "device=cuda", "drop=none", "train.amp=false")
    fast = losses(tiny_cfg, tmp_path / "fast", "device=cuda", "drop=none", "train.amp=false", option)
    assert fast == pytest.approx(plain, rel=2e-3)        # cuDNN may pick TF32 convolutions


def test_cuda_graphs_follow_a_rate_that_changes_every_step_without_recompiling(tiny_cfg, tmp_path):
    torch._dynamo.reset()
    counters.clear()
    compiled = ("train.compile=inductor", "train.compile_mode=reduce-overhead")
    eager = losses(tiny_cfg, tmp_path / "eager", "device=cuda", "drop=none", "train.amp=false")
    graphs = losses(tiny_cfg, tmp_path / "graphs", "device=cuda", "drop=none", "train.amp=false", *compiled)
    assert graphs == pytest.approx(eager, rel=1e-3)
    torch._dynamo.reset()
    counters.clear()
    run(tiny_cfg("device=cuda", "drop=early_dropout", "drop.rate=0.5", "drop.cutoff_epoch=1",
                 "train.epochs=1", *compiled), tmp_path / "early")
    train = events(tmp_path / "early", "train")
    assert len({e["drop_rate"] for e in train}) > 5                  # a new rate at every step
    assert counters["stats"]["unique_graphs"] == 1
    # The rate read from the buffer inside the graph: the losses differ from training without it.
    assert [e["loss"] for e in train][1:] != pytest.approx(eager[1:], rel=1e-3)


def test_training_data_stays_on_the_gpu_as_uint8(tiny_cfg):
    cfg = tiny_cfg("device=cuda", "data.crop_padding=2", "data.hflip=true")
    model, data, device = prepare(cfg)
    trainer = build_trainer(cfg, model, data, device)
    assert trainer.batches.x.is_cuda and trainer.batches.x.dtype == torch.uint8
    x, y = next(iter(trainer.batches.epoch(0)))
    assert x.is_cuda and y.is_cuda and x.dtype == torch.float32


def test_largest_batch_doubles_until_the_step_fails(tiny_cfg):
    from conftest import load_script
    bench = load_script("bench")
    cfg = tiny_cfg("device=cuda")
    model, data, device = prepare(cfg)
    plain = bench.largest_batch(cfg, data, device, 256, checkpointing=False)
    recomputed = bench.largest_batch(cfg, data, device, 256, checkpointing=True)
    assert plain["batch"] >= 256 and plain["batch"] & (plain["batch"] - 1) == 0     # a power of two
    assert plain["stopped_by"].startswith(f"batch {2 * plain['batch']}: ") or plain["batch"] == 2**16
    assert recomputed["batch"] >= plain["batch"]
