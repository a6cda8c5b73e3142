"""The buffer-rate drop layers behave as torch's / timm's, and a compiled model does not
recompile when the scheduled rate changes every step (checked with dynamo's counters)."""
import pytest
import torch
from test_schedules import vit
from timm.layers import DropPath
from torch._dynamo.utils import counters

from repro.layers import ScheduledDropout, ScheduledDropPath, make_compilable
from repro.models import residual_blocks
from repro.schedules import DropController, drop_schedule


@pytest.mark.parametrize("layer", [ScheduledDropout(0.3), ScheduledDropPath(0.3)],
                         ids=["dropout", "droppath"])
def test_inverted_expectation_and_identity_in_eval(layer):
    torch.manual_seed(0)
    x = torch.ones(200_000, 4)
    y = layer.train()(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert (~kept).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert torch.equal(layer.eval()(x), x)


def test_swap_keeps_rates_and_sites():
    model = make_compilable(vit(dropout=0.2, drop_path=0.4), "dropout")
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert model.blocks[1].attn.attn_drop.p == pytest.approx(0.2) and not model.blocks[1].attn.fused_attn
    make_compilable(model, "drop_path")
    assert not any(type(m) is DropPath for m in model.modules())
    assert model.blocks[3].drop_path1.drop_prob == pytest.approx(0.4)
    ctl = DropController(model, "drop_path", residual_blocks(model))
    ctl.apply(0.3)
    assert model.blocks[3].drop_path2.rate.item() == pytest.approx(0.3)


@pytest.mark.parametrize("kind", ["drop_path", "none"])
def test_unscheduled_dropout_keeps_torch_layers_and_fused_attention(kind):
    model = vit(dropout=0.0, drop_path=0.4)
    before = {name: type(m) for name, m in model.named_modules()}
    make_compilable(model, kind)
    swapped = {name for name, m in model.named_modules() if type(m) is not before[name]}
    assert swapped == ({f"blocks.{i}.drop_path{j}" for i in range(1, 4) for j in (1, 2)}
                       if kind == "drop_path" else set())     # block 0 has r = 0: no DropPath
    assert all(block.attn.fused_attn for block in model.blocks)


def test_swapped_layers_keep_their_rate_on_the_models_device():
    # A CPU rate in a CUDA model made inductor's CUDA-graph backward crash (seen on an H100).
    model = vit(dropout=0.2, drop_path=0.4).to("meta")
    make_compilable(make_compilable(model, "dropout"), "drop_path")
    rates = [m.rate for m in model.modules() if isinstance(m, (ScheduledDropout, ScheduledDropPath))]
    assert len(rates) > 10 and all(r.device.type == "meta" for r in rates)


# CPU: a cheap backend. GPU: inductor with CUDA graphs, whose replays must read the buffer anew.
COMPILERS = [("cpu", "aot_eager", None)] + (
    [("cuda", "inductor", "reduce-overhead")] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device,backend,mode", COMPILERS, ids=[c[0] for c in COMPILERS])
def test_compiled_model_does_not_recompile_when_the_rate_changes(device, backend, mode):
    torch._dynamo.reset()
    counters.clear()
    model = make_compilable(vit(dropout=0.1), "dropout").train().to(device)
    model.head_drop.p = 0.0                  # the helper's head dropout would hide the schedule
    ctl = DropController(model, "dropout")
    compiled = torch.compile(model, backend=backend, mode=mode)
    x = torch.randn(4, 1, 28, 28, device=device)
    rates = drop_schedule(0.1, 2, 5, 1, "late", "constant")       # 0 ... 0, then 0.1
    outputs = []
    for rate in rates:
        ctl.apply(float(rate))
        model.zero_grad(set_to_none=True)        # as the trainer does: a replay's gradients are new
        out = compiled(x)
        out.sum().backward()
        outputs.append(out.detach().clone())     # a CUDA graph's next replay overwrites `out`
    assert counters["stats"]["unique_graphs"] == 1
    assert torch.equal(outputs[3], outputs[4]) and not torch.equal(outputs[-1], outputs[-2])


@pytest.mark.parametrize("drop", ["early_dropout", "early_drop_path"])
def test_training_with_compile_changes_rate_every_step_without_recompiling(tiny_cfg, tmp_path, drop):
    from test_run import events

    from repro.loop.run import run
    torch._dynamo.reset()
    counters.clear()
    summary = run(tiny_cfg(f"drop={drop}", "drop.cutoff_epoch=1", "train.epochs=1",
                           "train.compile=aot_eager"), tmp_path)
    rates = {e["drop_rate"] for e in events(tmp_path, "train")}
    assert len(rates) > 5 and summary["steps"] == 16            # a new rate at every step
    assert counters["stats"]["unique_graphs"] == 1
