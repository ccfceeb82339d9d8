"""The exact phase of reconstruction (``ReconstructionConfig.exact_share``): each unit's scales
trained in ``ForwardMode.EXACT``, so that the last phase optimises the integer program itself."""

import numpy as np
import pytest
import torch

from aquant_sim.errors import ConfigError
from aquant_sim.evaluation import evaluate
from aquant_sim.frontend import reconstruction
from aquant_sim.frontend.emulation import dequantize
from aquant_sim.frontend.graph import capture
from aquant_sim.frontend.lowering import lower
from aquant_sim.frontend.methods import SPECS, Method
from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
from aquant_sim.frontend.qmodel import ForwardMode, QuantConfig, QuantModel
from aquant_sim.frontend.reconstruction import PHASE_SEEDS, ReconstructionConfig, Reconstructor
from aquant_sim.simulator import Backend, Simulator

from tiny_models import TinyMobile, TinyResNet, randomize_batchnorm

W2A2 = QuantConfig(weight_bits=2, act_bits=2)
EXACT = ReconstructionConfig(iters=6, batch_size=8, exact_share=0.5)


def _reconstructor(model, images, method, config=EXACT) -> Reconstructor:
    qm = QuantModel(capture(model, tuple(images.shape[1:])), W2A2, images)
    return Reconstructor(qm, method, config, images, progress=False)


def _program_output(qm: QuantModel, unit, images: torch.Tensor) -> torch.Tensor:
    """The unit output's values in the integer program lowered from ``qm`` as it is now, run by
    the reference simulator: its levels dequantized as the exact forward dequantizes them."""
    lowered = lower(qm)
    name = lowered.tensors[unit.output]
    levels = Simulator(lowered.program, Backend.REFERENCE).run(images.numpy(), keep_tensors=True).tensors[name]
    return dequantize(torch.from_numpy(levels.astype(np.int64)), lowered.program.tensor(name).quant, torch.float32)


@pytest.mark.parametrize("method", [Method.QDROP, Method.AQUANT, Method.BRECQ])
def test_the_exact_phase_optimises_the_integer_programs_loss(method, tiny_resnet, images, monkeypatch):
    """Every forward of the exact phase (each training step's batch and the whole-set losses it
    reports) is the lowered program's output on those images, bit for bit, at the scales of that
    moment; and the loss each step optimises is the loss of the program's output."""
    rec = _reconstructor(tiny_resnet, images, method)
    forward_exact, lp_loss = rec._forward_exact, reconstruction.lp_loss
    outputs, losses, checked = {}, [], []

    def checked_forward(unit, inputs, rows):
        out = forward_exact(unit, inputs, rows)
        program = _program_output(rec.qm, unit, images[rows])
        assert torch.equal(out.detach(), program), unit.name
        if torch.is_grad_enabled():  # a training step: its loss comes next
            outputs[id(out)] = (out, program)
        checked.append(torch.is_grad_enabled())
        return out

    def recorded_loss(out, target, p):
        loss = lp_loss(out, target, p)
        step = outputs.pop(id(out), None)
        if step is not None:
            losses.append((float(loss.detach()), float(lp_loss(step[1], target, p))))
        return loss

    monkeypatch.setattr(rec, "_forward_exact", checked_forward)
    monkeypatch.setattr(reconstruction, "lp_loss", recorded_loss)
    reports = rec.run()
    learned = [r for r in reports if r.stage != "weights"]
    assert all(r.exact_iters == 3 for r in learned) and all(r.exact_iters == 0 for r in reports if r.stage == "weights")
    assert checked.count(True) == len(losses) == 3 * len(learned)
    assert all(ours == program for ours, program in losses)
    assert all(np.isfinite([r.exact_loss_before, r.exact_loss_after]).all() for r in learned)


def _state(qm: QuantModel) -> dict:
    return {k: v.clone() for k, v in qm.state_dict().items()}


@pytest.mark.parametrize("method", [Method.QDROP, Method.AQUANT])
def test_the_exact_phase_moves_only_the_units_scales_and_keeps_them_valid(method, tiny_resnet, images):
    """The first unit calibrated with and without the exact phase: the same hardened weights
    and borders (the phase comes after, with its own draws); the scales it owns differ, positive
    and finite; nothing else moves; the whole calibration then lowers to a program whose every
    tensor the exact forward reproduces."""
    states = []
    for share in (0.0, 0.5):
        torch.manual_seed(0)
        rec = _reconstructor(tiny_resnet, images, method, ReconstructionConfig(iters=6, batch_size=8, exact_share=share))
        rec.calibrate_unit(0)
        states.append((_state(rec.qm), rec))
    (plain, _), (with_exact, rec) = states
    owned = {f"acts.{name}.scale" for name in rec._scale_owned}
    moved = {k for k in plain if not torch.equal(plain[k], with_exact[k])}
    assert moved and moved <= owned
    assert all(bool(torch.isfinite(with_exact[k]).all() and (with_exact[k] > 0).all()) for k in owned)
    for index in range(1, len(rec.units)):
        rec.calibrate_unit(index)
    lowered = lower(rec.qm)
    result = Simulator(lowered.program, Backend.REFERENCE).run(images.numpy(), keep_tensors=True)
    with rec.qm.forward_mode_as(ForwardMode.EXACT):
        levels = rec.qm.levels(images)
    for node in (n for n in rec.qm.graph.nodes if n.name != rec.qm.graph.output):
        assert np.array_equal(levels[node.name].numpy(), result.tensors[lowered.tensors[node.name]]), node.name


@pytest.mark.parametrize("cls", [TinyResNet, TinyMobile])
@pytest.mark.parametrize("method", [Method.QDROP, Method.AQUANT])
def test_w2a2_with_the_exact_phase_agrees_with_its_program(cls, method, images):
    """QDrop and AQuant at W2A2 with an exact phase, on a residual and a depthwise network:
    every unit ran the phase, top-1 agreement is 100% and the fake-quant accuracy is the
    integer program's."""
    torch.manual_seed(3)
    labels = torch.randint(0, 4, (len(images),), generator=torch.Generator().manual_seed(4))
    calibrated = calibrate(randomize_batchnorm(cls()), images, CalibrationConfig(method, W2A2, EXACT), progress=False)
    assert all(u.exact_iters == 3 and u.exact_loss_after is not None for u in calibrated.units)
    result = evaluate(calibrated, images.numpy(), labels.numpy(), Backend.REFERENCE)
    assert result.agreement == 1.0 and result.fake_quant_accuracy == result.integer_accuracy


@pytest.mark.parametrize("method", list(Method))
def test_without_exact_share_no_exact_phase_runs_and_the_seeds_are_the_recorded_ones(method, tiny_resnet, images, monkeypatch):
    """``exact_share = 0`` (the default) never enters the exact phase, and with or without it
    every other phase is seeded ``seed * 100003 + unit * 4 + (0..3)``, as runs were recorded; a
    method that learns no scales has no exact phase whatever the share."""
    assert ReconstructionConfig().exact_share == 0.0
    for share in (0.0, 0.5):
        seeds = []
        monkeypatch.setattr(reconstruction.torch, "manual_seed", lambda seed: seeds.append(seed))
        rec = _reconstructor(tiny_resnet, images, method, ReconstructionConfig(iters=4, batch_size=8, seed=7, exact_share=share))
        if share == 0.0 or not SPECS[method].learn_scales:
            monkeypatch.setattr(rec, "_exact_cache", lambda unit: pytest.fail("the exact phase ran"))
        reports = rec.run()
        monkeypatch.undo()
        base, units = 7 * 100003, range(len(rec.units))
        recorded = {Method.RTN: [], Method.BRECQ: [base + 4 * i + 1 for i in units] + [base + 4 * i + 2 for i in units]}
        assert [s for s in seeds if s < PHASE_SEEDS["exact"]] == recorded.get(method, [base + 4 * i for i in units])
        exact = [base + 4 * i + PHASE_SEEDS["exact"] for i in units] if share > 0 and SPECS[method].learn_scales else []
        assert [s for s in seeds if s >= PHASE_SEEDS["exact"]] == exact
        assert [r.exact_iters for r in reports if r.exact_iters] == [2] * len(exact)


def test_exact_share_out_of_range_is_a_config_error():
    for share in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="exact_share"):
            ReconstructionConfig(exact_share=share)
