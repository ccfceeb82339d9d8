"""Equation (9): initial borders from the weight rounding errors."""

import torch
from torch import nn

from aquant_sim.frontend.borders import equation9_borders
from aquant_sim.frontend.graph import capture
from aquant_sim.frontend.qmodel import QuantConfig, QuantModel
from aquant_sim.program import BorderGranularity


class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 1, bias=False)
        self.b = nn.Conv2d(2, 3, 1, bias=False)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _model(granularity):
    model = TwoConvs().eval()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([1.0, 0.5]).reshape(2, 1, 1, 1))
        model.b.weight.copy_(torch.tensor([[1.0, 1.0], [0.5, 1.0], [0.25, -1.0]]).reshape(3, 2, 1, 1))
    images = torch.rand(16, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    qm = QuantModel(capture(model, (1, 4, 4)), QuantConfig(weight_bits=3, act_bits=3, first_last_bits=3, granularity=granularity), images)
    return qm


def _rho(qm, channel):
    wq = qm.weights["b"]
    w = wq.weight[:, channel].double().flatten()
    w_q = wq.dequantized()[:, channel].double().flatten()
    return float((w_q * w).sum() / (w_q * w_q).sum())


def test_channel_level_borders_follow_equation9():
    """Per channel and level, beta = 1/2 + (k + 1/2)(1/rho_c - 1), rho_c over the weights
    reading channel c, clipped to [2^-F, 1]."""
    qm = _model(BorderGranularity.CHANNEL_LEVEL)
    beta = equation9_borders(qm, "a").double()
    assert beta.shape == (2, 7)
    for c in range(2):
        rho = _rho(qm, c)
        expected = (0.5 + (torch.arange(7).double() + 0.5) * (1 / rho - 1)).clamp(1 / 256, 1)
        assert torch.allclose(beta[c], expected, atol=1e-6)
    assert not torch.allclose(beta, torch.full_like(beta, 0.5))


def test_exact_weights_give_half():
    """Weights that quantize exactly (rho = 1) give the nearest border 1/2 at every granularity."""
    for granularity in BorderGranularity:
        qm = _model(granularity)
        wq = qm.weights["b"]
        wq.weight.copy_(wq.dequantized())
        beta = equation9_borders(qm, "a")
        assert beta.shape == granularity.table_shape(2, 3)
        assert torch.allclose(beta, torch.full_like(beta, 0.5), atol=1e-6)
