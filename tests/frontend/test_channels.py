"""Degenerate channels (aquant_sim/frontend/channels.py): dead filters and zero-variance batch
norms are found before calibration and handled as constants; biases and shifts the datapath
cannot hold are reported before reconstruction, naming the layer and the channels."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from aquant_sim.errors import InputError
from aquant_sim.frontend import channels, pipeline
from aquant_sim.frontend.channels import Problem, zero_dead_channels
from aquant_sim.frontend.graph import capture
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import CalibrationConfig, DegenerateChannels, calibrate
from aquant_sim.frontend.qmodel import QuantConfig
from aquant_sim.frontend.reconstruction import ReconstructionConfig
from aquant_sim.simulator import Backend, Simulator

W8A8_RTN = CalibrationConfig(method=Method.RTN, quant=QuantConfig(weight_bits=8, act_bits=8),
                             reconstruction=ReconstructionConfig(iters=0))
DEAD = 2
"""The degenerate channel of the second conv."""


def _net(case: str) -> nn.Module:
    """conv-bn-relu, conv-bn-relu, pooling, linear; the second conv's channel DEAD made degenerate
    as real pretrained weights hold it: ``dead`` a filter of ~1e-9 with running_var 0 (the
    pretrained mobile net of issue 9), ``gamma0`` a BatchNorm gamma of 0."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1, 1)
        if case == "dead":
            net[3].weight[DEAD] *= 1e-9
            net[4].running_var[DEAD] = 0
        elif case == "gamma0":
            net[4].weight[DEAD] = 0
    return net.eval()


@pytest.fixture
def images():
    return torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("case, problems", [("dead", {Problem.DEAD, Problem.ZERO_VARIANCE}), ("gamma0", {Problem.DEAD})])
def test_degenerate_channel_becomes_a_constant(case, problems, images):
    """The program lowers (it failed at lowering before: bias beyond the accumulator, or a shift
    beyond 62), the finding names layer '_3' and channel DEAD, the channel's integer weights are
    0, its output is one level for every input, and numba equals the reference."""
    net = _net(case)
    before = copy.deepcopy(net.state_dict())
    with pytest.warns(DegenerateChannels) as warned:
        calibrated = calibrate(net, images, W8A8_RTN, progress=False)
    assert [str(w.message) for w in warned] == [f.line() for f in calibrated.channels]
    assert f"layer '_3' (module '3+4'): dead channels [{DEAD}]: max|w| <=" in str(warned[-1].message)
    assert {f.problem for f in calibrated.channels} == problems
    assert all(f.channels == (DEAD,) and f.layer == "_3" for f in calibrated.channels)
    conv = next(op for op in calibrated.program.ops if op.name == "_3")
    assert not conv.weight[DEAD].any() and conv.weight[DEAD - 1].any()
    runs = [Simulator(calibrated.program, b).run(images.numpy(), keep_tensors=True).tensors for b in (Backend.NUMBA, Backend.REFERENCE)]
    assert all(np.array_equal(runs[0][name], runs[1][name]) for name in runs[1])
    dead_levels = runs[1][calibrated.lowered.tensors["_3"]][:, DEAD]
    assert np.unique(dead_levels).size == 1
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the user's model was changed"


def test_healthy_graph_is_untouched():
    """No finding, and the same weights, for a network without degenerate channels."""
    graph = capture(_net("none"), (1, 8, 8))
    weights = [node.weight.clone() for node in graph.weighted]
    assert zero_dead_channels(graph) == []
    assert all(torch.equal(w, node.weight) for w, node in zip(weights, graph.weighted))


def test_unhandled_dead_filter_is_reported_before_reconstruction(images, monkeypatch):
    """With the handling switched off (DEAD_RATIO 0), the ~1e-9 filter's bias overflow is an
    InputError naming the layer, the problem and the channel, raised before reconstruction
    starts (it used to come at lowering)."""
    monkeypatch.setattr(channels, "DEAD_RATIO", 0.0)

    def no_reconstruction(*args, **kwargs):
        raise AssertionError("reconstruction started")

    monkeypatch.setattr(pipeline, "Reconstructor", no_reconstruction)
    with pytest.warns(DegenerateChannels), pytest.raises(InputError, match=rf"layer '_3' \(module '3\+4'\): bias_overflow channels \[{DEAD}\]"):
        calibrate(_net("dead"), images, W8A8_RTN, progress=False)


def test_live_channel_with_a_huge_bias_is_reported(images):
    """A live (not dead) channel whose bias / (s_x s_w) exceeds 2^31 is reported, not silently
    clipped; the line says how large it got."""
    net = _net("none")
    with torch.no_grad():
        net[3].weight[5] *= 1e-5
        net[4].weight[5] = 1
        net[4].bias[5] = 1e4
    with pytest.raises(InputError, match=r"bias_overflow channels \[5\]: bias / \(s_x s_w\) reaches"):
        calibrate(net, images, W8A8_RTN, progress=False)


def test_shift_out_of_range_is_reported(images):
    """An output scale that makes M = s_x s_w / s_y too small for the 62-bit shift is reported
    per channel by check_requantizers (here forced on a healthy model's quantizer)."""
    from aquant_sim.frontend.qmodel import QuantModel

    qm = QuantModel(capture(_net("none"), (1, 8, 8)), W8A8_RTN.quant, images)
    with torch.no_grad():
        qm.acts["_3"].scale.fill_(1e12)
    findings = channels.check_requantizers(qm)
    shift = [f for f in findings if f.problem is Problem.SHIFT_RANGE]
    assert [f.layer for f in shift] == ["_3"] and shift[0].channels == tuple(range(8))
    assert "outside [0, 62]" in shift[0].line()
