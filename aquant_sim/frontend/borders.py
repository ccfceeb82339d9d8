"""Initial activation borders from the weight rounding errors, equation (9) of docs/contract.md.

For a tensor read by conv/linear weights ``w`` rounded to ``w~``, the border of input channel
``c`` between levels ``k`` and ``k + 1`` (``k`` counted from the zero-point) is

    beta[c, k] = 1/2 + (k + 1/2) * (1 / rho_c - 1),   rho_c = sum(w~ w) / sum(w~^2)   (C.8)

over every weight that reads channel ``c`` (all output channels, all taps, every reader). The
granularities without a channel use one ``rho`` over all weights; those without a level use the
channel's mean level ``k`` over the calibration data. Borders are clipped to ``[2^-F, 1]``.
A tensor read by no weight keeps 1/2.
"""

from __future__ import annotations

import torch

from aquant_sim.frontend.graph import NodeKind
from aquant_sim.frontend.qmodel import QuantModel
from aquant_sim.program import BorderGranularity


def _channel_sums(qm: QuantModel, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum(w~ w)`` and ``sum(w~^2)`` per channel of tensor ``name`` over its weighted readers."""
    channels = qm.graph[name].shape[0]
    num = torch.zeros(channels, dtype=torch.float64)
    den = torch.zeros(channels, dtype=torch.float64)
    for reader in qm.graph.weighted_readers(name):
        wq = qm.weights[reader.name]
        w = wq.weight.double()
        w_q = wq.dequantized().double()
        if reader.kind is NodeKind.CONV:
            groups = reader.groups
            out_per_group = w.shape[0] // groups
            # Input channel c = g * Cg + i is read by output channels of group g, in-group index i.
            prod = (w_q * w).reshape(groups, out_per_group, w.shape[1], -1).sum(dim=(1, 3)).reshape(-1)
            sq = (w_q * w_q).reshape(groups, out_per_group, w.shape[1], -1).sum(dim=(1, 3)).reshape(-1)
        else:
            # Feature i of a flattened (C, H, W) tensor comes from channel i // (H W).
            prod = (w_q * w).sum(dim=0).reshape(channels, -1).sum(dim=1)
            sq = (w_q * w_q).sum(dim=0).reshape(channels, -1).sum(dim=1)
        num += prod
        den += sq
    return num, den


def equation9_borders(qm: QuantModel, name: str) -> torch.Tensor:
    """The (G, L) border table of equation (9) at the quantizer's granularity (float32)."""
    act = qm.acts[name]
    num, den = _channel_sums(qm, name)
    granularity = act.granularity
    per_channel = granularity in (BorderGranularity.CHANNEL, BorderGranularity.CHANNEL_LEVEL)
    per_level = granularity in (BorderGranularity.LEVEL, BorderGranularity.CHANNEL_LEVEL)
    mean_level = act.mean_level.double()
    if not per_channel:
        num, den = num.sum(keepdim=True, dim=0), den.sum(keepdim=True, dim=0)
        mean_level = mean_level.mean(keepdim=True, dim=0)
    rho = torch.where(den > 0, num / den.clamp_min(1e-300), torch.ones_like(num))
    rho = torch.where(rho > 0, rho, torch.ones_like(rho))
    if per_level:
        k = torch.arange(act.qmin, act.qmax, dtype=torch.float64) - act.zero_point
        k = k.reshape(1, -1)
    else:
        k = mean_level.reshape(-1, 1)
    beta = 0.5 + (k + 0.5) * (1.0 / rho.reshape(-1, 1) - 1.0)
    floor = 1.0 / (1 << act.frac_bits)
    return beta.clamp(floor, 1.0).float().expand(granularity.table_shape(act.channels, act.bits)).clone()
