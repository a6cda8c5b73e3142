"""An oracle for the drop schedule as training applies it: every registered arch, every schedule
kind (the all-zero ones too), built and driven through the real path (repro.loop.assemble, ModelStep.begin)
and read back at every step from every dropout and DropPath module of the model, against rates
worked out here from the paper's formulas (docs/paper.md section 2), not from repro.schedules."""
import json
import math
import re

import pytest
import torch
from conftest import FAST, TINY, make_cfg
from timm.layers import DropPath
from timm.models.swin_transformer import SwinTransformer
from torch.nn.modules.dropout import _DropoutNd

from repro.loop.assemble import build_trainer, prepare
from repro.loop.run import run
from repro.loop.validate import validate
from repro.models import ARCHS, DROP_KINDS, build_model
from repro.schedules import DropSchedule

P, HEAD = 0.25, 0.3        # the scheduled rate; the classifier head's, which no schedule touches
RGB32 = ["data.img_size=32", "data.in_chans=3", f"model.head_dropout={HEAD}"]
ARCH = {"vit": ["model=vit_micro", "model.embed_dim=16", "model.depth=3", "model.num_heads=2",
                f"model.head_dropout={HEAD}"],
        "mixer": ["model=mixer_micro", "model.embed_dim=16", "model.depth=3", f"model.head_dropout={HEAD}"],
        "swin": ["model=swin_femto", "model.patch_size=2", "model.window_size=2", "model.embed_dim=8",
                 "model.depths=[1,1,2,1]", "model.stage_heads=[1,1,2,2]", "model.mlp_ratio=2.0", *RGB32],
        "convnext": ["model=convnext_femto", "model.depths=[1,1,2,1]", "model.dims=[8,8,16,16]", *RGB32],
        "mlp": ["model=mlp", "model.hidden=[16,16]"]}
# 2 epochs of 16 steps; cutoffs in epochs (null: cutoff_fraction of the epochs)
SCHEDULES = {"standard": dict(mode="standard"),
             "early_constant": dict(mode="early", schedule="constant", cutoff_epoch=0.6),
             "early_linear": dict(mode="early", schedule="linear", cutoff_fraction=0.1667),
             "early_linear_1_step": dict(mode="early", schedule="linear", cutoff_epoch=0.0625),
             "early_cosine": dict(mode="early", schedule="cosine", cutoff_epoch=1),
             "early_increasing": dict(mode="early", schedule="increasing", cutoff_epoch=1.5),
             "late": dict(mode="late", cutoff_epoch=0.5),
             "early_cutoff_0": dict(mode="early", schedule="linear", cutoff_epoch=0),
             "early_cutoff_rounds_to_0": dict(mode="early", cutoff_epoch=0.01),
             "late_cutoff_at_end": dict(mode="late", cutoff_epoch=2),
             "rate_0": dict(mode="standard", rate=0.0)}
CASES = [(arch, "none", "none") for arch in ARCH] + [
    (arch, kind, name) for arch in ARCH for kind in DROP_KINDS[arch] if kind != "none" for name in SCHEDULES]
# A dropout schedule of rate 0 drives nothing (DropSchedule.from_config), so the MLP's dropouts keep
# their model.hidden_dropout (0.2, 0.5) instead of the scheduled 0: left as found, reported.
PARAMS = [pytest.param(*c, id="-".join(c)) for c in CASES]
BLOCK = re.compile(r"((layers|stages)\.\d+\.)?blocks\.\d+")


def oracle(drop, epochs: int, n: int) -> list[float]:
    """The rate of each of the epochs * n steps: the paper's formulas, written out."""
    cutoff = drop.cutoff_epoch if drop.cutoff_epoch is not None else drop.cutoff_fraction * epochs
    c, p = round(cutoff * n), drop.rate

    def at(s):
        if drop.mode == "standard":
            return p
        if drop.mode == "late":
            return 0.0 if s < c else p
        if s >= c:
            return 0.0
        t = s / (c - 1) if c > 1 else 0.0          # linspace over C steps: t = 0 .. 1
        return {"constant": p, "linear": p * (1 - t), "cosine": p * (1 + math.cos(math.pi * t)) / 2,
                "increasing": p * t}[drop.schedule]
    return [at(s) for s in range(epochs * n)]


def config(arch: str, kind: str, name: str):
    drop = {} if kind == "none" else {"kind": kind, "rate": P, **SCHEDULES[name]}
    return make_cfg(*FAST, *ARCH[arch], "drop=none" if kind == "none" else "drop=dropout",
                    *[f"drop.{k}={v}" for k, v in drop.items()])


def expected_sites(model, cfg, rate: float) -> dict[str, float]:
    """Every dropout / DropPath module of `model` (by name) -> the rate it should hold at `rate`."""
    kind = cfg.drop.kind
    blocks = [name for name, _ in model.named_modules() if BLOCK.fullmatch(name)]   # depth order
    nominal = iter(cfg.model.hidden_dropout if cfg.model.arch == "mlp" else [])
    want, with_path = {}, set()
    for name, m in model.named_modules():
        if isinstance(m, _DropoutNd) and name.endswith(("head_drop", "head.drop")):
            want[name] = HEAD
        elif isinstance(m, _DropoutNd):
            want[name] = rate if kind == "dropout" else next(nominal, 0.0)
        elif isinstance(m, DropPath):
            owner = [i for i, b in enumerate(blocks) if name.startswith(b + ".")]
            assert len(owner) == 1, f"DropPath {name} is not in one residual block"
            with_path.add(owner[0])
            want[name] = rate * owner[0] / (len(blocks) - 1) if kind == "drop_path" else 0.0
    if kind == "drop_path" and cfg.drop.rate > 0:   # built at the maximum: every block but the first
        assert with_path >= set(range(1, len(blocks))), "a residual block has no DropPath"
    return want


def actual_sites(model) -> dict[str, float]:
    return {name: m.p if isinstance(m, _DropoutNd) else m.drop_prob for name, m in model.named_modules()
            if isinstance(m, (_DropoutNd, DropPath))}


def test_every_arch_is_covered():
    assert set(ARCH) == set(ARCHS)


@pytest.mark.parametrize("arch, kind, name", PARAMS)
def test_every_site_holds_the_papers_rate_at_every_step(arch, kind, name):
    cfg = config(arch, kind, name)
    validate(cfg)
    model, data, device = prepare(cfg, torch.device("cpu"))
    trainer = build_trainer(cfg, model, data, device)
    rates = oracle(cfg.drop, cfg.train.epochs, trainer.steps_per_epoch)
    assert len(rates) == trainer.total_steps == 32
    wrong = []
    for step, rate in enumerate(rates):
        trainer.model_step.begin(step, trainer.schedule.rate(step))    # what training does before each step
        want, got = expected_sites(model, cfg, rate), actual_sites(model)
        assert want.keys() == got.keys()
        wrong += [(step, site, got[site], w) for site, w in want.items()
                  if not math.isclose(got[site], w, rel_tol=1e-9, abs_tol=1e-12)]
    assert not wrong, f"{len(wrong)} (step, site, rate, expected), first: {wrong[:5]}"
    driven = [n for n in actual_sites(model) if not n.endswith(("head_drop", "head.drop"))]
    assert driven or kind == "none" or cfg.drop.rate == 0


def fingerprint(run_dir) -> tuple[list[dict], list]:
    """metrics.jsonl without its timings, and the final weights."""
    events = [{k: v for k, v in json.loads(line).items() if k != "img_per_s"}
              for line in open(run_dir / "metrics.jsonl")]
    weights = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    return events, [t.numpy().tobytes() for t in weights.values()]


@pytest.fixture(scope="module")
def no_drop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("none")
    run(make_cfg(*TINY, "drop=none"), folder)
    return fingerprint(folder)


@pytest.mark.parametrize("drop", [["drop=early_dropout", "drop.cutoff_epoch=0"],
                                  ["drop=early_drop_path", "drop.cutoff_epoch=0"],
                                  ["drop=late_dropout", "drop.cutoff_epoch=2"]], ids=lambda d: d[0][5:])
def test_a_zero_schedule_trains_bitwise_as_no_drop(drop, no_drop, tmp_path):
    """Sites built at the nominal rate but scheduled 0 throughout: the run is drop=none's."""
    run(make_cfg(*TINY, *drop), tmp_path)
    events, weights = fingerprint(tmp_path)
    assert {e["drop_rate"] for e in events if "drop_rate" in e} == {0.0}
    assert events == no_drop[0]
    assert weights == no_drop[1]


def test_swin_f_has_the_official_49_dropout_sites():
    """Swin-F (depths 2-2-6-2): dropout after the patch embedding plus 4 per block, all driven."""
    cfg = make_cfg(*FAST, "model=swin_femto", "data.img_size=224", "data.in_chans=3", "drop=dropout")
    validate(cfg)
    rates = DropSchedule.max_rates(cfg.drop)
    model = build_model(cfg.model, num_classes=10, in_chans=3, img_size=224, **rates)
    controller = DropSchedule.from_config(cfg.drop, 2, 16).controller(model)
    assert len(controller.sites) == 1 + 4 * sum(cfg.model.depths) == 49
    controller.apply(0.07)
    assert model.pos_drop.p == 0.07 and {m.p for m, _ in controller.sites} == {0.07}


def test_swin_drops_between_patch_embedding_and_first_stage_else_is_timms():
    cfg = config("swin", "dropout", "standard")
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=5, in_chans=3, img_size=32, dropout=0.5)
    order = []
    for name in ("patch_embed", "pos_drop", "layers.0", "layers.1"):
        model.get_submodule(name).register_forward_hook(lambda *_, name=name: order.append(name))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        timms = SwinTransformer.forward_features(model.eval(), x)      # timm's forward, no pos_drop
        assert torch.equal(model.forward_features(x), timms)          # eval: the site is the identity
        assert order[-4:] == ["patch_embed", "pos_drop", "layers.0", "layers.1"]
        model.train()                                                 # only pos_drop drops
        DropSchedule.from_config(cfg.drop, 2, 16).controller(model).apply(0.0)
        timms = SwinTransformer.forward_features(model, x)
        assert torch.equal(model.forward_features(x), timms)
        model.pos_drop.p = 0.5
        assert not torch.equal(model.forward_features(x), timms)
