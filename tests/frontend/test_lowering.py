"""Lowering a fake-quant model to the integer program."""

import numpy as np
import pytest
import torch

from aquant_sim.frontend.emulation import emulate
from aquant_sim.frontend.graph import Activation, capture
from aquant_sim.frontend.lowering import lower
from aquant_sim.frontend.qmodel import QuantConfig, QuantModel
from aquant_sim.frontend.quantizers import BorderMode
from aquant_sim.program import BorderGranularity, OpKind
from aquant_sim.simulator import Backend, Simulator, dequantize

from tiny_models import TinyMobile, TinyResNet, randomize_batchnorm


def _quantized(cls, granularity, images, bits=(3, 3)):
    torch.manual_seed(5)
    qm = QuantModel(capture(randomize_batchnorm(cls()), (1, 8, 8)), QuantConfig(*bits, granularity=granularity, frac_bits=6), images)
    g = torch.Generator().manual_seed(6)
    for act in qm.acts.values():
        act.borders.data = torch.rand(act.borders.shape, generator=g) * 0.8 + 0.1
        act.mode = BorderMode.HARD
    return qm


@pytest.mark.parametrize("cls", [TinyResNet, TinyMobile])
@pytest.mark.parametrize("granularity", list(BorderGranularity))
def test_simulator_equals_emulation_on_lowered_models(cls, granularity, images):
    """A lowered model's simulator output (every tensor) equals the integer emulation bit for bit."""
    lowered = lower(_quantized(cls, granularity, images))
    expected = Simulator(lowered.program, Backend.REFERENCE).run(images.numpy(), keep_tensors=True).tensors
    got = emulate(lowered.program, images, keep_tensors=True)
    for name in expected:
        assert np.array_equal(expected[name], got[name].numpy()), name


@pytest.mark.parametrize("cls", [TinyResNet, TinyMobile])
def test_fake_quant_ops_match_program_ops(cls, images):
    """Fed the program's own input levels, every float64 fake-quant op gives the program's levels
    except for rare one-level differences (at most 5% of a tensor, never more than one level:
    the 31-bit multipliers, the 14-bit add weights and float error; 3.1% on TinyMobile's add); end to end, the outputs
    agree to 5% of their range (differences propagate)."""
    qm = _quantized(cls, BorderGranularity.CHANNEL_LEVEL, images).double()
    lowered = lower(qm)
    program = lowered.program
    result = Simulator(program, Backend.REFERENCE).run(images.numpy(), keep_tensors=True)
    for node in qm.graph.nodes[1:]:
        if node.name == qm.graph.output:
            continue
        inputs = [torch.from_numpy(dequantize(result.tensors[lowered.tensors[i]], program.tensor(lowered.tensors[i]))) for i in node.inputs]
        diff = np.abs(qm.op_levels(node, inputs).numpy() - result.tensors[lowered.tensors[node.name]])
        assert diff.max() <= 1 and np.mean(diff) <= 0.05, node.name
    out = qm(images.double()).detach().numpy()
    assert np.abs(out - result.dequantized).max() <= 0.05 * np.abs(out).max()


def test_lowered_structure(images):
    """Fused ReLUs add no op, ReLU6 becomes a clamp, the last linear leaves accumulators, biases
    are round(b / (s_x s_w)), and the first/last layers are 8-bit."""
    qm = _quantized(TinyMobile, BorderGranularity.TENSOR, images, bits=(2, 2))
    program = lower(qm).program
    kinds = [op.kind for op in program.ops]
    assert kinds.count(OpKind.CLAMP) == 2
    assert not program.output_tensor.is_quantized
    convs = [op for op in program.ops if op.kind in (OpKind.CONV2D, OpKind.LINEAR)]
    assert [op.weight_bits for op in convs] == [8, 2, 2, 8]
    fc = convs[-1]
    s_x = float(qm.acts["mean_pool"].scale)
    expected = np.floor(qm.weights["fc"].bias.double().numpy() / (s_x * fc.weight_scale) + 0.5)
    assert np.array_equal(fc.bias, expected.astype(np.int64))
    assert program.tensor("dw_0").quant.bits == 2 and program.tensor("x").quant.bits == 8
    resnet = _quantized(TinyResNet, BorderGranularity.TENSOR, images, bits=(2, 2))
    assert sum(node.activation is Activation.RELU for node in resnet.graph.nodes) == 5
    assert len(lower(resnet).program.ops) == len(resnet.graph.nodes) - 1
