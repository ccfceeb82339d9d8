"""The reference protocol, item by item (docs/calibration.md section 3), on tiny models."""

import pytest
import torch

from aquant_sim.frontend.graph import capture
from aquant_sim.frontend.lowering import lower
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.qmodel import QuantConfig, QuantModel
from aquant_sim.frontend.quantizers import BorderMode, WeightScheme
from aquant_sim.frontend.reconstruction import (
    BorderInit, BorderSchedule, ReconstructionConfig, Reconstructor, float_activations, lp_loss,
)


def _reconstructor(model, images, method, **config):
    qm = QuantModel(capture(model, (1, 8, 8)), QuantConfig(weight_bits=2, act_bits=2), images)
    return Reconstructor(qm, method, ReconstructionConfig(**{"batch_size": 16, **config}), images, progress=False)


def test_loss_sums_channels_and_averages_batch_and_positions():
    """lp_loss is the reference's (pred - tgt).abs().pow(p).sum(1).mean() (QDrop recon.py,
    BRECQ block_recon.py): channel sums, then the mean over batch and positions."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, 4, 2, generator=g), torch.randn(3, 5, 4, 2, generator=g)
    by_hand = sum(float(((a[n, :, i, j] - b[n, :, i, j]) ** 2).sum()) for n in range(3) for i in range(4) for j in range(2)) / 24
    assert float(lp_loss(a, b, 2.0)) == pytest.approx(by_hand, rel=1e-6)
    assert float(lp_loss(a[:, :, 0, 0], b[:, :, 0, 0], 2.4)) == pytest.approx(
        float((a[:, :, 0, 0] - b[:, :, 0, 0]).abs().pow(2.4).sum(1).mean()), rel=1e-6)


@pytest.mark.parametrize("shape", [(32, 16, 28, 28), (5, 3, 7, 7), (9, 10)])
def test_squared_loss_has_autographs_value_and_gradient(shape):
    """With a gradient, lp_loss at p = 2 is a fused function: its value and its gradient (for an
    incoming gradient of 1 and of 0.3, as under a sum with the regulariser) equal, bit for bit,
    those of autograd through the reference's ops."""
    g = torch.Generator().manual_seed(1)
    out, target = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g)
    for weight in (1.0, 0.3):
        grads = []
        for fused in (True, False):
            x = out.clone().requires_grad_(True)
            diff = x - target
            loss = lp_loss(x, target, 2.0) if fused else (diff * diff).sum(dim=1).mean()
            (loss * weight).backward()
            grads.append((loss.detach(), x.grad))
        assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_defaults_are_the_reference_values():
    """QDrop's exp/w2a4/r18/config.yaml and BRECQ's main_imagenet.py: 20,000 iterations of
    batch 32, Adam's default 1e-3 on V, scale lr 4e-5, lambda 0.01, b from 20 to 2 after a 20%
    warm-up, drop 0.5; BRECQ's activation stage 5,000 iterations at 4e-4 with p = 2.4; weights
    asymmetric per channel."""
    cfg = ReconstructionConfig()
    assert (cfg.iters, cfg.batch_size, cfg.weight_lr, cfg.scale_lr, cfg.reg_weight) == (20000, 32, 1e-3, 4e-5, 0.01)
    assert (cfg.reg_exponent, cfg.warmup, cfg.drop_prob) == ((20.0, 2.0), 0.2, 0.5)
    assert (cfg.activation_share * cfg.iters, cfg.activation_lr, cfg.activation_p) == (5000, 4e-4, 2.4)
    assert QuantConfig().weight_scheme is WeightScheme.ASYMMETRIC


def test_asymmetric_weights_reach_the_program(tiny_resnet, images):
    """Asymmetric weights lower to programs with non-zero weight zero-points."""
    qm = QuantModel(capture(tiny_resnet, (1, 8, 8)), QuantConfig(weight_bits=2, act_bits=2), images)
    zero_points = [op.weight_zero_point for op in lower(qm).program.ops if hasattr(op, "weight_zero_point")]
    assert any((z != 0).any() for z in zero_points)


def test_brecq_learns_weights_with_float_activations_then_scales(tiny_resnet, images):
    """BRECQ's two stages: every unit's weights with all activation quantizers off (scales
    untouched), then every unit's scales with the weights fixed."""
    rec = _reconstructor(tiny_resnet, images, Method.BRECQ, iters=8, activation_share=0.5)
    qm = rec.qm
    scales = {n: float(a.scale) for n, a in qm.acts.items()}
    with float_activations(qm):
        assert all(not a.enabled for a in qm.acts.values())
        weight_reports = rec._run_stage("weights")
    assert {n: float(a.scale) for n, a in qm.acts.items()} == scales
    hard = {n: w.integers().clone() for n, w in qm.weights.items()}
    rec._scale_owned.clear()
    act_reports = rec._run_stage("activations")
    assert all(torch.equal(w.integers(), hard[n]) for n, w in qm.weights.items())
    assert {n: float(a.scale) for n, a in qm.acts.items()} != scales
    assert [r.stage for r in weight_reports + act_reports] == ["weights"] * 4 + ["activations"] * 4


def test_qdrop_mixes_the_float_models_input(tiny_resnet, images):
    """QDrop's input (recon.py): element by element the float model's input with probability
    drop_prob, else the quantized one; drop_prob 1 gives the float input, 0 the quantized one."""
    for p in (1.0, 0.0, 0.5):
        rec = _reconstructor(tiny_resnet, images, Method.QDROP, drop_prob=p)
        unit = rec.units[1]
        name = unit.inputs[0]
        quantized, floating, _ = rec._cache(unit)
        seen, run_nodes = {}, rec.qm.run_nodes

        def spy(nodes, env, raw=frozenset()):
            seen.update(env)
            return run_nodes(nodes, env, raw)

        rec.qm.run_nodes = spy
        rec._forward(unit, quantized, floating, mix=True)
        x, fp, q = seen[name], floating[name], rec.qm.acts[name](quantized[name])
        differ = fp != q
        if p == 1.0:
            assert torch.equal(x, fp)
        elif p == 0.0:
            assert torch.equal(x, q)
        else:
            assert bool(((x == fp) | (x == q)).all())
            share = float((x[differ] == fp[differ]).double().mean())
            assert 0.4 < share < 0.6


def test_block_output_is_quantized_inside_the_unit(tiny_resnet, images):
    """QDrop puts a block's output quantizer inside the block: the unit's output lies on its
    output grid, and the unit learns that scale; the layer-wise method compares raw outputs."""
    rec = _reconstructor(tiny_resnet, images, Method.QDROP)
    unit = rec.units[1]
    assert unit.output in rec.claim_scales(1)
    quantized, floating, _ = rec._cache(unit)
    out = rec._forward(unit, quantized, floating, mix=False)
    act = rec.qm.acts[unit.output]
    levels = out / act.scale + act.zero_point
    assert torch.allclose(levels, torch.round(levels), atol=1e-4)
    layerwise = _reconstructor(tiny_resnet, images, Method.ADAROUND)
    unit = layerwise.units[1]
    quantized, floating, _ = layerwise._cache(unit)
    out = layerwise._forward(unit, quantized, floating, mix=False)
    levels = out / layerwise.qm.acts[unit.output].scale
    assert not torch.allclose(levels, torch.round(levels), atol=1e-4)


def test_scales_are_learned_and_the_lr_anneals_to_zero(tiny_resnet, images, monkeypatch):
    """QDrop learns scales with Adam at 4e-5, cosine-annealed to 0 over the unit."""
    seen = []
    original = torch.optim.lr_scheduler.CosineAnnealingLR.step

    def step(self, *args):
        original(self, *args)
        seen.append(self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(torch.optim.lr_scheduler.CosineAnnealingLR, "step", step)
    rec = _reconstructor(tiny_resnet, images, Method.QDROP, iters=10, scale_lr=4e-3)
    before = {n: float(a.scale) for n, a in rec.qm.acts.items()}
    rec.calibrate_unit(0)
    assert seen[0] == pytest.approx(4e-3) and seen[-1] == pytest.approx(0.0, abs=1e-12) and seen == sorted(seen, reverse=True)
    assert float(rec.qm.acts["stem_0"].scale) != before["stem_0"]


def test_convergence_is_reported(tiny_resnet, images):
    """Each unit reports the share of rounding variables still soft at hardening and its loss
    with soft and with hard weights; more iterations leave fewer soft. (At Adam's 1e-3 a V moves
    at most ~1e-3 a step and must travel ~2.3 from h = 1/2 to h < 0.01, so thousands of
    iterations are needed; this test takes 60 at 2e-2 against 4.)"""
    long = _reconstructor(tiny_resnet, images, Method.QDROP, iters=60, weight_lr=2e-2).run()
    short = _reconstructor(tiny_resnet, images, Method.QDROP, iters=4, weight_lr=2e-2).run()
    for a, b in zip(long, short):
        assert a.loss_soft is not None and 0 <= a.soft_share <= 1
        assert a.soft_share < b.soft_share, (a, b)
    assert max(r.soft_share for r in short) > 0.5


@pytest.mark.parametrize("schedule", list(BorderSchedule))
@pytest.mark.parametrize("init", list(BorderInit))
def test_border_schedules_and_inits(schedule, init, tiny_resnet, images):
    """Every schedule and initialisation learns borders that end hard and F-bit; HARDENED
    learns them after the weights are hard (its border phase starts from the hard weights)."""
    rec = _reconstructor(tiny_resnet, images, Method.AQUANT, iters=8, border_schedule=schedule, border_init=init,
                         border_phase=0.5)
    reports = rec.run()
    assert len(reports) == 4
    learned = [a for a in rec.qm.acts.values() if a.mode is BorderMode.HARD]
    assert learned and all(a.mode is not BorderMode.SOFT for a in rec.qm.acts.values())
    assert any(not torch.allclose(a.beta(), torch.full_like(a.borders, 0.5)) for a in learned)
