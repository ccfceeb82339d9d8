"""The exact forward: the fake-quant model's values are the integer program's, bit for bit."""

import dataclasses

import numpy as np
import pytest
import torch

from aquant_sim.errors import ConfigError, InputError
from aquant_sim.frontend.emulation import emulate
from aquant_sim.frontend.graph import capture
from aquant_sim.frontend.lowering import lower
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
from aquant_sim.frontend.qmodel import ForwardMode, QuantConfig, QuantModel
from aquant_sim.frontend.quantizers import BorderMode
from aquant_sim.frontend.reconstruction import ReconstructionConfig, block_units
from aquant_sim.program import BorderGranularity, Program
from aquant_sim.rounding import OverflowPolicy
from aquant_sim.simulator import Backend, Simulator

from tiny_models import TinyMobile, TinyResNet, TinySE, randomize_batchnorm

FAST = ReconstructionConfig(iters=2, batch_size=8)


def _calibrated(cls, method, quant, images):
    torch.manual_seed(3)
    return calibrate(randomize_batchnorm(cls()), images[:16], CalibrationConfig(method, quant, FAST), progress=False)


def _assert_exact(qm: QuantModel, lowered, images) -> None:
    """Every graph tensor's exact levels equal the simulator's; the exact float64 logits are the
    simulator's dequantized outputs, so top-1 agreement is 100%."""
    result = Simulator(lowered.program, Backend.REFERENCE).run(images.numpy(), keep_tensors=True)
    with qm.forward_mode_as(ForwardMode.EXACT):
        levels = qm.levels(images)
        for node in qm.graph.nodes:
            if node.name != qm.graph.output:
                assert np.array_equal(levels[node.name].numpy(), result.tensors[lowered.tensors[node.name]]), node.name
        with torch.no_grad():
            logits = qm.double()(images.double()).numpy()
        qm.float()
    assert np.array_equal(logits, result.dequantized)
    assert np.mean(logits.argmax(1) == result.dequantized.argmax(1)) == 1.0


@pytest.mark.parametrize("cls", [TinyResNet, TinyMobile])
@pytest.mark.parametrize("method", list(Method))
def test_exact_equals_program_after_every_method_at_w2a2(cls, method, images):
    """After calibration with each method at W2A2 (learned borders, scales and weights where the
    method learns them), the exact forward reproduces every tensor of the lowered program."""
    calibrated = _calibrated(cls, method, QuantConfig(2, 2), images)
    _assert_exact(calibrated.qmodel, calibrated.lowered, images)


@pytest.mark.parametrize("method, bits", [(Method.AQUANT, 4), (Method.BRECQ, 2), (Method.QDROP, 2)])
def test_exact_equals_program_with_tables_and_products(method, bits, images):
    """Lookup tables (SiLU, Hardswish, Hardsigmoid, x * 0.5, GELU on a vector) and the SE product
    after AQuant at W4A4 (learned per-channel-and-level borders on every table's output, scales
    and weights), BRECQ (float activations first) and QDrop (dropped quantization) at W2A2: the
    exact forward reproduces every tensor of the program."""
    calibrated = _calibrated(TinySE, method, QuantConfig(bits, bits), images)
    kinds = [op.kind.value for op in calibrated.lowered.program.ops]
    assert kinds.count("lut") == 5 and kinds.count("mul") == 1
    _assert_exact(calibrated.qmodel, calibrated.lowered, images)


def test_table_gradient_is_the_functions_derivative(images):
    """In the exact forward a table's input gets the function's derivative (straight through the
    output quantizer where its output lies on the grid) while the value is the table's; its value
    before the quantizer (what reconstruction reads) is the function of the exact input."""
    torch.manual_seed(3)
    qm = QuantModel(capture(randomize_batchnorm(TinySE()), (1, 8, 8)), QuantConfig(8, 8), images)
    node = qm.graph["conv_2"]
    source = qm.graph.nodes[qm.graph.nodes.index(node) - 1].name
    with qm.forward_mode_as(ForwardMode.EXACT):
        x = qm.collect(images, [source], quantized=True, after_quantizer=True)[source].requires_grad_(True)
        y = qm.run_nodes([node], {source: x})[node.name]
        y.sum().backward()
        act = qm.acts[node.name]
        expected = torch.autograd.grad(torch.nn.functional.silu(x).sum(), x)[0]
        u = torch.nn.functional.silu(x.detach()) / act.scale + act.zero_point
        inside = (u > act.qmin) & (u < act.qmax)
        assert torch.equal(y.detach(), qm.levels(images)[node.name].to(y.dtype).sub(act.zero_point).mul(act.scale))
        raw = qm.collect(images, [node.name], quantized=True)[node.name]
    assert inside.float().mean() > 0.9 and torch.allclose(x.grad[inside], expected[inside])
    assert torch.equal(raw, torch.nn.functional.silu(x.detach()))  # before its quantizer: the function's value


@pytest.mark.parametrize("bits", [(4, 4, 8), (8, 8, 8)])
def test_exact_equals_program_at_4_and_8_bits(bits, images):
    calibrated = _calibrated(TinyResNet, Method.AQUANT, QuantConfig(*bits, granularity=BorderGranularity.CHANNEL), images)
    _assert_exact(calibrated.qmodel, calibrated.lowered, images)


@pytest.mark.parametrize("overflow", list(OverflowPolicy))
def test_small_accumulator_overflows_as_the_program(overflow, images):
    """With a 10-bit accumulator some sums overflow (the residual add's); the exact forward wraps or saturates them
    as the program does and counts the same overflows per op."""
    torch.manual_seed(4)
    quant = QuantConfig(3, 3, first_last_bits=4, internal_bits=4, accumulator_bits=10, overflow=overflow)
    qm = QuantModel(capture(randomize_batchnorm(TinyMobile()), (1, 8, 8)), quant, images)
    lowered = lower(qm)
    _assert_exact(qm, lowered, images)
    with qm.forward_mode_as(ForwardMode.EXACT), torch.no_grad():
        qm(images)
    counters = Simulator(lowered.program, Backend.REFERENCE).run(images.numpy()).counters
    expected = {c.name: c.overflows for c in counters if c.overflows}
    assert expected and {k: v for k, v in qm.exact_overflows.items() if v} == expected


def test_emulation_applies_weight_zero_points(images):
    """A lowered program given non-zero per-channel weight zero-points runs in the emulation as in
    the simulator, every tensor (contract (5))."""
    torch.manual_seed(5)
    qm = QuantModel(capture(randomize_batchnorm(TinyResNet()), (1, 8, 8)), QuantConfig(2, 2), images)
    program = lower(qm).program
    rng = np.random.default_rng(0)
    ops = []
    for op in program.ops:
        if hasattr(op, "weight_zero_point"):
            lo, hi = -(1 << (op.weight_bits - 1)), (1 << (op.weight_bits - 1)) - 1
            op = dataclasses.replace(op, weight_zero_point=rng.integers(lo, hi + 1, op.weight.shape[0]))
        ops.append(op)
    shifted = Program(program.tensors, tuple(ops), program.input, program.output, program.input_borders,
                      program.accumulator_bits, program.overflow)
    assert any(np.any(op.weight_zero_point) for op in shifted.ops if hasattr(op, "weight_zero_point"))
    expected = Simulator(shifted, Backend.REFERENCE).run(images.numpy(), keep_tensors=True).tensors
    got = emulate(shifted, images, keep_tensors=True)
    for name in expected:
        assert np.array_equal(expected[name], got[name].numpy()), name


def _hard_model(images):
    torch.manual_seed(6)
    qm = QuantModel(capture(randomize_batchnorm(TinyResNet()), (1, 8, 8)), QuantConfig(2, 2, granularity=BorderGranularity.CHANNEL_LEVEL), images)
    g = torch.Generator().manual_seed(7)
    for act in qm.acts.values():
        act.borders.data = torch.rand(act.borders.shape, generator=g) * 0.8 + 0.1
        act.mode = BorderMode.HARD
    return qm


def test_gradients_are_straight_through(images):
    """With autograd on, the exact forward's values are unchanged, and every activation scale on
    the path gets the float path's (finite, non-zero) gradient."""
    qm = _hard_model(images)
    with qm.forward_mode_as(ForwardMode.EXACT):
        with torch.no_grad():
            plain = qm(images)
        for act in qm.acts.values():
            act.scale.requires_grad_(True)
        qm.train()
        out = qm(images)
        out.square().sum().backward()
    assert torch.equal(out.detach(), plain)
    grads = [act.scale.grad for act in qm.acts.values()]
    assert all(g is not None and torch.isfinite(g) and g != 0 for g in grads)


def test_a_unit_runs_exactly_from_its_quantized_inputs(images):
    """``run_nodes`` on a residual block, fed the block input as read (``collect`` after the
    quantizer), gives the levels of the whole network's exact forward; a value off the grid is an
    InputError."""
    qm = _hard_model(images)
    unit = block_units(qm.graph)[1]
    with qm.forward_mode_as(ForwardMode.EXACT), torch.no_grad():
        env = qm.collect(images, list(unit.inputs), quantized=True, after_quantizer=True)
        got = qm.run_nodes([qm.graph[n] for n in unit.nodes], dict(env))[unit.output]
        whole = qm.collect(images, [unit.output], quantized=True, after_quantizer=True)[unit.output]
        assert torch.equal(got, whole)
        name = unit.inputs[0]
        with pytest.raises(InputError, match=f"tensor '{name}'"):
            qm.run_nodes([qm.graph[n] for n in unit.nodes], {name: env[name] * 1.01 + 1e-3})


def test_soft_quantizers_are_a_config_error(images):
    """Soft AdaRound weights, soft borders and QDrop dropping in training have no program: the
    exact forward refuses them, naming the quantizer; the mode is restored after the block."""
    qm = _hard_model(images)
    conv = qm.graph.weighted[1].name
    qm.weights[conv].enable_adaround()
    with pytest.raises(ConfigError, match=f"weights of graph node '{conv}'"):
        with qm.forward_mode_as(ForwardMode.EXACT):
            qm(images)
    assert qm.forward_mode is ForwardMode.FLOAT
    qm.weights[conv].soft = False
    act = next(iter(qm.acts))
    qm.acts[act].mode = BorderMode.SOFT
    with pytest.raises(ConfigError, match="soft borders"), qm.forward_mode_as(ForwardMode.EXACT):
        qm(images)
    qm.acts[act].mode = BorderMode.HARD
    qm.acts[act].drop_prob = 0.5
    qm.train()
    with pytest.raises(ConfigError, match="drop"), qm.forward_mode_as(ForwardMode.EXACT):
        qm(images)
    with pytest.raises(ConfigError, match="ForwardMode"), qm.forward_mode_as("exact"):
        pass


def test_collect_after_the_quantizer_in_float_mode(images):
    """``after_quantizer`` gives what the tensor's quantizer makes of the value before it."""
    qm = _hard_model(images)
    name = block_units(qm.graph)[1].inputs[0]
    with torch.no_grad():
        before = qm.collect(images, [name], quantized=True)[name]
        after = qm.collect(images, [name], quantized=True, after_quantizer=True)[name]
        assert torch.equal(after, qm.acts[name](before)) and not torch.equal(after, before)
