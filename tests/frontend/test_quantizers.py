"""Weight and activation fake quantizers against the rounding contract."""

import copy

import numpy as np
import pytest
import torch

from aquant_sim import rounding
from aquant_sim.frontend.emulation import lookup
from aquant_sim.frontend.quantizers import ActQuantizer, BorderMode, WeightQuantizer, WeightScheme
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


@pytest.mark.parametrize("scheme", list(WeightScheme))
def test_weight_quantizer_nearest_and_adaround_start(scheme):
    """Nearest weights are round-half-up of w/s + z_w clamped to b bits; AdaRound starts with soft
    weights equal to the float weights (where not clamped) and hard ones equal to nearest."""
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4, 3, 3, 3, generator=g)
    wq = WeightQuantizer(w, torch.zeros(4), bits=3, scheme=scheme)
    s = wq.scale.reshape(-1, 1, 1, 1)
    z = wq.zero_point.reshape(-1, 1, 1, 1)
    nearest = torch.clamp(torch.floor(w / s + z + 0.5), -4, 3)
    assert torch.equal(wq.integers(), nearest)
    assert torch.equal(wq.dequantized(), (nearest - z) * s)
    wq.enable_adaround()
    soft = wq()
    inside = (w / s + z > -4) & (w / s + z < 3)
    assert torch.allclose(soft[inside], w[inside], atol=1e-3 * float(s.max()))
    assert wq.soft_share() > 0.5
    wq.soft = False
    assert torch.equal(wq.integers(), nearest)
    assert float(wq.regularizer(2.0)) > 0


def _brute_force_search(w: torch.Tensor, bits: int) -> float:
    """The least squared error over QDrop's candidates, by plain loops (one channel)."""
    lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    top = (1 << bits) - 1
    best = float("inf")
    for i in range(1, 101):
        s = (hi - lo) * i / 100 / top
        for z in range(top + 1):
            q = torch.clamp(torch.floor(w / s + 0.5) + z, 0, top)
            best = min(best, float(((s * (q - z) - w) ** 2).sum()))
    return best


def test_asymmetric_search_finds_the_best_candidate():
    """Per channel, the asymmetric search's grid scores the least error among all QDrop
    candidates (range x zero-point), its z_w lies in the signed range, and on one-sided
    (skewed) weights it beats the symmetric grid; symmetric z_w are 0."""
    g = torch.Generator().manual_seed(2)
    w = torch.stack([torch.rand(18, generator=g) * 0.3 + 0.05, torch.randn(18, generator=g) * 0.1]).reshape(2, 2, 3, 3)
    asym = WeightQuantizer(w, torch.zeros(2), bits=2, scheme=WeightScheme.ASYMMETRIC)
    sym = WeightQuantizer(w, torch.zeros(2), bits=2, scheme=WeightScheme.SYMMETRIC)
    assert torch.equal(sym.zero_point, torch.zeros(2))
    assert bool(((asym.zero_point >= -2) & (asym.zero_point <= 1)).all())
    err = ((asym.dequantized().double() - w.double()) ** 2).reshape(2, -1).sum(dim=1)
    for c in range(2):
        assert float(err[c]) == pytest.approx(_brute_force_search(w[c].flatten().double(), 2), rel=1e-5)
    sym_err = ((sym.dequantized().double() - w.double()) ** 2).reshape(2, -1).sum(dim=1)
    assert float(err[0]) < 0.5 * float(sym_err[0])


def test_weight_integers_do_not_depend_on_the_model_dtype():
    """Regression: a batch norm's depthwise 1x1 conv has one weight per channel, at the edge of
    its channel's grid (``w / s`` an integer up to float error); hard AdaRound floors that ratio,
    and a float64 copy of the model (the exact forward of the evaluation) gave other integers
    than the float32 model that was lowered. The integers are now the same in both dtypes."""
    weight = torch.from_numpy(np.random.default_rng(4).uniform(0.2, 3.0, size=(256, 1, 1, 1)).astype(np.float32))
    quantizer = WeightQuantizer(weight, torch.zeros(256), 4, WeightScheme.SYMMETRIC)
    with torch.no_grad():
        quantizer.scale.copy_(weight.flatten() / 7)  # every weight at the top level, 7, as the search puts it
    quantizer.enable_adaround()
    quantizer.alpha.data.fill_(-1.0)  # hard rounding down: the floor of the ratio decides
    quantizer.soft = False
    floats = weight.flatten() / quantizer.scale, weight.flatten().double() / quantizer.scale.double()
    assert not torch.equal(torch.floor(floats[0]).double(), torch.floor(floats[1]))  # the hazard is in the data
    as_double = copy.deepcopy(quantizer).double()
    assert torch.equal(quantizer.integers().double(), as_double.integers())
