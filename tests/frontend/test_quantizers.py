"""Weight and activation fake quantizers against the rounding contract."""

import numpy as np
import pytest
import torch

from aquant_sim import rounding
from aquant_sim.frontend.emulation import lookup
from aquant_sim.frontend.quantizers import ActQuantizer, BorderMode, WeightQuantizer, _BorderRound
from aquant_sim.program import BorderGranularity


def _act(granularity, bits=3, channels=3, seed=0):
    act = ActQuantizer(bits, 0.37, 2, channels, granularity, frac_bits=6)
    g = torch.Generator().manual_seed(seed)
    act.borders.data = torch.rand(act.borders.shape, generator=g) * 0.9 + 0.05
    act.mode = BorderMode.HARD
    return act


@pytest.mark.parametrize("granularity", list(BorderGranularity))
def test_hard_act_quantizer_is_border_rounding(granularity):
    """In hard mode the activation quantizer's levels equal rounding.border_round with the
    encoded F-bit table, element for element (float64 input)."""
    act = _act(granularity).double()
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.5
    table = act.border_table().beta
    expected = rounding.border_round(x.numpy(), float(act.scale.detach()), act.zero_point, act.qmin, act.qmax, table)
    assert np.array_equal(act.levels(x).numpy().astype(np.int64), expected)
    fake = act(x).detach()
    assert torch.equal(fake, (torch.from_numpy(expected).double() - act.zero_point) * act.scale.detach())


@pytest.mark.parametrize("granularity", list(BorderGranularity))
def test_soft_borders_get_gradients(granularity):
    """In soft mode every border that some element's level uses gets a non-zero gradient, and the
    input gets the straight-through gradient 1 inside the grid."""
    act = _act(granularity, bits=2, channels=2)
    act.mode = BorderMode.SOFT
    act.tau = 0.2
    act.borders.requires_grad_(True)
    x = (torch.rand(64, 2, 4, 4, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8).requires_grad_(True)
    act(x).sum().backward()
    assert torch.all(act.borders.grad != 0)
    inside = (x / 0.37 + 2 > 0) & (x / 0.37 + 2 < 3)
    assert torch.allclose(x.grad[inside], torch.full_like(x.grad[inside], 1.0))


def test_act_scale_search_picks_a_range_inside_the_data():
    """The error search gives zero-point 0 for non-negative data, a positive one otherwise."""
    g = torch.Generator().manual_seed(4)
    relu = torch.relu(torch.randn(8, 2, 4, 4, generator=g))
    act = ActQuantizer.from_data(relu, 4, BorderGranularity.TENSOR, 8)
    assert act.zero_point == 0 and 0 < float(act.scale) * 15 <= float(relu.max())
    signed = ActQuantizer.from_data(torch.randn(8, 2, 4, 4, generator=g), 4, BorderGranularity.TENSOR, 8)
    assert 0 < signed.zero_point < 15


def test_weight_quantizer_nearest_and_adaround_start():
    """Nearest weights are round-half-up of w/s clamped to b bits; AdaRound starts with soft
    weights equal to the float weights (where not clamped) and hard ones equal to nearest."""
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4, 3, 3, 3, generator=g)
    wq = WeightQuantizer(w, torch.zeros(4), bits=3)
    s = wq.scale.reshape(-1, 1, 1, 1)
    nearest = torch.clamp(torch.floor(w / s + 0.5), -4, 3)
    assert torch.equal(wq.integers(), nearest)
    wq.enable_adaround()
    soft = wq()
    inside = (w / s > -4) & (w / s < 3)
    assert torch.allclose(soft[inside], w[inside], atol=1e-3 * float(s.max()))
    wq.soft = False
    assert torch.equal(wq.integers(), nearest)
    assert float(wq.regularizer(2.0)) > 0


def _autograd_reference(act, x, keep):
    """The quantizer written with plain autograd ops (straight-through estimator, C.4-C.5)."""
    s = act.scale
    u = x / s + act.zero_point
    k = torch.floor(u).detach()
    f = (u - k).detach()
    j = (k.clamp(act.qmin, act.qmax - 1) - act.qmin).long()
    beta = lookup(act.beta(), j)
    up = torch.sigmoid((f - beta) / act.tau)
    q = torch.clamp(k + up + (u - u.detach()), act.qmin, act.qmax)
    return torch.where(keep, x, (q - act.zero_point) * s)


@pytest.mark.parametrize("granularity", list(BorderGranularity))
def test_hand_written_gradients_match_autograd(granularity):
    """The custom backward pass gives the same gradients for input, scale and borders as the
    same function written with autograd ops, with and without QDrop's mask (float64, 1e-9)."""
    act = _act(granularity, bits=2, channels=3).double()
    act.mode = BorderMode.SOFT
    act.tau = 0.3
    act.scale.requires_grad_(True)
    act.borders.requires_grad_(True)
    g = torch.Generator().manual_seed(9)
    x = (torch.rand(16, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 0.9).requires_grad_(True)
    weight = torch.randn(16, 3, 4, 4, generator=g, dtype=torch.float64)
    for keep in (torch.zeros_like(x, dtype=torch.bool), torch.rand(x.shape, generator=g) < 0.5):
        grads = []
        ours = lambda: _BorderRound.apply(x, act.scale, act.beta(), act.zero_point, act.qmin, act.qmax, True, act.tau, keep)
        for fn in (lambda: _autograd_reference(act, x, keep), ours):
            for p in (x, act.scale, act.borders):
                p.grad = None
            (fn() * weight).sum().backward()
            grads.append([p.grad.clone() for p in (x, act.scale, act.borders)])
        for ref, got in zip(*grads):
            assert torch.allclose(ref, got, atol=1e-9), granularity
