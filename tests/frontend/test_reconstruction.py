"""Units, every calibration method end to end, and learned borders beating nearest rounding."""

import numpy as np
import pytest
import torch
from torch import nn

from aquant_sim.frontend.borders import equation9_borders
from aquant_sim.errors import ConfigError
from aquant_sim.frontend.emulation import emulate
from aquant_sim.frontend.graph import capture
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
from aquant_sim.frontend.qmodel import QuantConfig, QuantModel
from aquant_sim.frontend.quantizers import BorderMode, WeightScheme
from aquant_sim.frontend.reconstruction import (Phase, ReconstructionConfig, Reconstructor, block_units, float_activations,
                                                layer_units, training)
from aquant_sim.program import BorderGranularity
from aquant_sim.simulator import Backend, Simulator


def test_block_units_are_residual_blocks(tiny_resnet):
    """Units: the stem alone, each residual block whole (with the max pool before it), and
    global pooling with the last layer."""
    graph = capture(tiny_resnet, (1, 8, 8))
    units = block_units(graph)
    assert [(u.inputs, u.output) for u in units] == [
        (("x",), "stem_0"), (("stem_0",), "add"), (("add",), "add_1"), (("add_1",), "head_2")]
    assert units[1].nodes == ("pool", "block1_conv1", "block1_conv2", "add")
    layers = layer_units(graph)
    assert len(layers) == 7 and layers[1].nodes == ("pool", "block1_conv1") and layers[1].inputs == ("stem_0",)


@pytest.mark.parametrize("kwargs, field", [
    ({"iters": -1}, "iters"), ({"batch_size": 0}, "batch_size"), ({"tau": (0.1, 0.0)}, "tau"),
    ({"warmup": 1.5}, "warmup"), ({"drop_prob": -0.1}, "drop_prob"),
])
def test_bad_reconstruction_config_is_a_config_error(kwargs, field):
    """An out-of-range setting raises ConfigError naming the field."""
    with pytest.raises(ConfigError, match=field):
        ReconstructionConfig(**kwargs)


@pytest.mark.parametrize("method", list(Method))
def test_every_method_runs_end_to_end(method, tiny_resnet, images):
    """Each method calibrates a tiny ResNet in seconds, reports finite losses for every unit,
    writes learned border tables exactly when it learns borders, and lowers to a program whose
    simulator output equals the integer emulation."""
    config = CalibrationConfig(method, QuantConfig(weight_bits=3, act_bits=3), ReconstructionConfig(iters=8, batch_size=16))
    result = calibrate(tiny_resnet, images, config, progress=False)
    assert len(result.units) == {Method.ADAROUND: 7, Method.BRECQ: 8}.get(method, 4)
    assert all(np.isfinite(u.loss_before) and np.isfinite(u.loss_after) for u in result.units)
    sim = Simulator(result.program, Backend.REFERENCE).run(images[:8].numpy())
    assert np.array_equal(sim.output, emulate(result.program, images[:8]).numpy())
    learned = any(not op.requant.borders.is_nearest for op in result.program.ops if getattr(op, "requant", None) is not None)
    assert learned == (method in (Method.BORDERS, Method.AQUANT))


class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 6, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("granularity", [BorderGranularity.CHANNEL, BorderGranularity.CHANNEL_LEVEL])
def test_learned_borders_beat_nearest(granularity):
    """On a fixed 2-bit problem (conv, ReLU, conv; seed 0), borders learned through the soft
    relaxation get gradients and end, hard and F-bit encoded, with a lower output error of the
    second conv than nearest rounding of its input (weights fixed: symmetric, rounded to nearest;
    with asymmetric weights this problem's rounding errors leave borders 0.5% to gain, not 3%)."""
    torch.manual_seed(0)
    model = TwoConvs().eval()
    x = torch.randn(256, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    qm = QuantModel(capture(model, (1, 8, 8)), QuantConfig(2, 2, 2, granularity=granularity, weight_scheme=WeightScheme.SYMMETRIC), x)
    act, node = qm.acts["a"], qm.graph["b"]
    raw = qm.collect(x, ["a"], quantized=True)["a"]
    target = qm.collect(x, ["b"], quantized=False)["b"]

    def loss(inputs, out):
        return ((qm._compute(node, [act(inputs)], True) - out) ** 2).flatten(1).sum(1).mean()

    nearest = float(loss(raw, target))
    act.borders.data = equation9_borders(qm, "a")
    act.borders.requires_grad_(True)
    act.mode = BorderMode.SOFT
    optimizer = torch.optim.Adam([act.borders], lr=5e-3)
    generator = torch.Generator().manual_seed(2)
    for t in range(300):
        act.tau = 0.1 * 0.02 ** (t / 299)
        idx = torch.randint(len(x), (32,), generator=generator)
        optimizer.zero_grad()
        loss(raw[idx], target[idx]).backward()
        assert act.borders.grad.abs().sum() > 0
        optimizer.step()
    act.mode = BorderMode.HARD
    learned = float(loss(raw, target))
    assert learned < 0.97 * nearest


@pytest.mark.parametrize("method", [Method.QDROP, Method.AQUANT])
def test_inputs_quantized_once_per_phase_give_the_loops_values_and_gradients(method, tiny_resnet, images):
    """The training loop quantizes the cache once for an input whose quantizer the phase leaves
    unchanged (``_apply_frozen``): the unit's output and every trained parameter's gradient equal,
    bit for bit, those of quantizing each batch (same QDrop draws), and so do the loop's call with
    the batch's rows of the whole caches. QDrop's block input is such an
    input (its scale belongs to the unit before); AQuant learns its borders, so it is not."""
    qm = QuantModel(capture(tiny_resnet, (1, 8, 8)), QuantConfig(weight_bits=2, act_bits=2), images)
    rec = Reconstructor(qm, method, ReconstructionConfig(batch_size=16), images, progress=False)
    rec.claim_scales(0)
    rec.claim_borders(0)
    unit = rec.units[1]
    scales = tuple(qm.acts[n] for n in rec.claim_scales(1))
    borders = tuple(qm.acts[n] for n in rec.claim_borders(1)) if method is Method.AQUANT else ()
    weights = tuple(qm.weights[n] for n in unit.nodes if n in qm.weights)
    for wq in weights:
        wq.enable_adaround()
    phase = Phase("joint", 1, weights=weights, scales=scales, borders=borders, dropped=scales)
    quantized, floating, _ = rec._cache(unit)
    rows = torch.arange(3, 19)
    with training(qm, phase, 0.5) as params:
        applied_cache, applied = rec._apply_frozen(quantized, phase)
        assert applied == (frozenset(unit.inputs) if method is Method.QDROP else frozenset())
        runs = []
        for values, names in ((quantized, frozenset()), (applied_cache, applied)):
            torch.manual_seed(11)
            out = rec._forward(unit, {k: v.index_select(0, rows) for k, v in values.items()},
                               {k: v.index_select(0, rows) for k, v in floating.items()}, mix=True, applied=names)
            grads = torch.autograd.grad(out.square().sum(), params, allow_unused=True)
            runs.append((out.detach(), grads))
        # As the loop calls it: the whole caches and the batch's rows (an applied input gathered
        # and mixed in one pass).
        torch.manual_seed(11)
        out = rec._forward(unit, applied_cache, floating, mix=True, applied=applied, rows=rows)
        runs.append((out.detach(), torch.autograd.grad(out.square().sum(), params, allow_unused=True)))
    (out_a, grads_a), *others = runs
    for out_b, grads_b in others:
        assert torch.equal(out_a, out_b)
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert any(g is not None for g in grads_a)


@pytest.mark.parametrize("fails", [False, True])
def test_training_switches_modes_and_restores_them(tiny_resnet, images, fails):
    """Inside ``training`` the phase's parameters take gradients, its weights and borders are soft
    and its dropped quantizers drop; on exit, normal or by an exception, every switch is back to
    what it was on entry, including states other than the defaults (a weight already soft)."""
    qm = QuantModel(capture(tiny_resnet, (1, 8, 8)), QuantConfig(weight_bits=2, act_bits=2), images)
    weights = tuple(qm.weights.values())[:2]
    for wq in weights:
        wq.enable_adaround()
    weights[1].soft = False
    acts = tuple(qm.acts.values())[:2]
    acts[0].mode = BorderMode.HARD
    acts[1].drop_prob = 0.25
    phase = Phase("joint", 1, weights=weights, scales=acts, borders=acts[:1], dropped=acts)

    def state():
        return ([w.soft for w in weights], [a.drop_prob for a in acts], acts[0].mode, qm.training,
                [a.scale.requires_grad for a in acts])

    before = state()
    try:
        with training(qm, phase, 0.5) as params:
            assert state() == ([True, True], [0.5, 0.5], BorderMode.SOFT, True, [True, True])
            assert all(p.requires_grad for p in params)
            if fails:
                raise RuntimeError("inside the phase")
    except RuntimeError:
        assert fails
    assert state() == before


def test_float_activations_restores_each_quantizer(tiny_resnet, images):
    """BRECQ's weight stage turns every activation quantizer off and, on exit, back to its own
    state on entry (one that was off stays off)."""
    qm = QuantModel(capture(tiny_resnet, (1, 8, 8)), QuantConfig(weight_bits=2, act_bits=2), images)
    first = next(iter(qm.acts.values()))
    first.enabled = False
    before = {name: act.enabled for name, act in qm.acts.items()}
    with float_activations(qm):
        assert not any(act.enabled for act in qm.acts.values())
    assert {name: act.enabled for name, act in qm.acts.items()} == before
