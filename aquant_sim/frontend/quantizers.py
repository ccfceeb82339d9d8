"""Fake quantizers that compute exactly what the integer program computes.

Weights: per output channel, symmetric, signed b_w bits (zero-point 0), scale from an error
search; rounding to nearest (half up) or learned AdaRound-style (``docs/calibration.md`` C.1-C.3).

Activations: per tensor, b_a bits, unsigned grid with an integer zero-point (0 for tensors that
are never negative), scale from an error search and then learned with a straight-through
estimator (LSQ-style, C.4). Rounding is border rounding, docs/contract.md (1)-(4), with a border table
at one of the four granularities: nearest (beta = 1/2), or learned borders relaxed by an
annealed sigmoid during reconstruction (C.5-C.6) and hard, F-bit borders afterwards
(``rounding.encode_borders``), exactly the table the lowering writes.
"""

from __future__ import annotations

import enum
import math

import numpy as np
import torch
from torch import nn

from aquant_sim.frontend.emulation import lookup, table_index
from aquant_sim.program import BorderGranularity, BorderTable
from aquant_sim.rounding import encode_borders, integer_range

SEARCH_STEPS = 64
"""Candidates of the clipping-range error search (fractions of the observed range)."""

SEARCH_ELEMENTS = 1 << 18
"""Elements of a tensor on which the activation error search scores its candidates."""

ZETA, GAMMA = 1.1, -0.1
"""AdaRound's rectified sigmoid stretch (C.1), the published values."""


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 1/2)``, the rounding the whole project uses (ties away from -inf)."""
    return torch.floor(x + 0.5)


class WeightRounding(enum.Enum):
    NEAREST = "nearest"
    ADAROUND = "adaround"


class WeightQuantizer(nn.Module):
    """Per-output-channel symmetric quantizer of one conv or linear weight (its float bias
    rides along; the model rounds it with the input scale).

    Integers ``w_int = clamp(floor(w / s) + h, -2^(b-1), 2^(b-1) - 1)`` with ``h`` the rounding
    decision: ``[frac >= 1/2]`` for nearest, ``h(V)`` (soft) or ``[V >= 0]`` (hard) for
    AdaRound. The fake-quant weight is ``s * w_int``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, bits: int):
        super().__init__()
        self.bits = bits
        self.qmin, self.qmax = integer_range(bits, signed=True)
        self.register_buffer("weight", weight.detach().clone().float())
        self.register_buffer("bias", bias.detach().clone().float())
        self.register_buffer("scale", self._search_scale(self.weight))
        self.rounding = WeightRounding.NEAREST
        self.soft = False
        self.alpha: nn.Parameter | None = None

    def _shape(self) -> tuple[int, ...]:
        return (-1,) + (1,) * (self.weight.dim() - 1)

    def _search_scale(self, w: torch.Tensor) -> torch.Tensor:
        """Per channel, the scale of least squared error with nearest rounding among
        ``s = a * max|w| / 2^(b-1)``, ``a`` in (0, 1.25]."""
        flat = w.reshape(w.shape[0], -1)
        peak = flat.abs().amax(dim=1)
        # An all-zero (dead) channel takes its layer's largest peak: its integers are 0 and its
        # scale, bias integer and multiplier stay in the layer's range (frontend/channels.py).
        peak = torch.where(peak > 0, peak, peak.max()).clamp_min(1e-12)
        best, best_err = None, None
        for a in torch.linspace(1.25 / SEARCH_STEPS, 1.25, SEARCH_STEPS):
            s = peak * a / (1 << (self.bits - 1))
            q = torch.clamp(round_half_up(flat / s[:, None]), self.qmin, self.qmax) * s[:, None]
            err = ((q - flat) ** 2).sum(dim=1)
            if best is None:
                best, best_err = s.clone(), err
            else:
                better = err < best_err
                best[better], best_err[better] = s[better], err[better]
        return best

    def enable_adaround(self) -> None:
        """Start learned rounding from the float weight itself: ``h(V) = frac(w / s)`` (C.1)."""
        ratio = self.weight / self.scale.reshape(self._shape())
        frac = ratio - torch.floor(ratio)
        p = ((frac - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1 - 1e-4)
        self.alpha = nn.Parameter(torch.log(p / (1 - p)), requires_grad=False)
        self.rounding = WeightRounding.ADAROUND
        self.soft = True

    def soft_h(self) -> torch.Tensor:
        return torch.clamp(torch.sigmoid(self.alpha) * (ZETA - GAMMA) + GAMMA, 0, 1)

    def regularizer(self, exponent: float) -> torch.Tensor:
        """C.3: ``sum(1 - |2h - 1|^exponent)``, which pushes every h to 0 or 1."""
        return (1 - (2 * self.soft_h() - 1).abs().pow(exponent)).sum()

    def integers(self) -> torch.Tensor:
        """The hard integer weights (what the program stores)."""
        ratio = self.weight / self.scale.reshape(self._shape())
        if self.rounding is WeightRounding.ADAROUND:
            q = torch.floor(ratio) + (self.alpha.detach() >= 0).float()
        else:
            q = round_half_up(ratio)
        return torch.clamp(q, self.qmin, self.qmax)

    def forward(self) -> torch.Tensor:
        s = self.scale.reshape(self._shape())
        if self.rounding is WeightRounding.ADAROUND and self.soft:
            q = torch.clamp(torch.floor(self.weight / s) + self.soft_h(), self.qmin, self.qmax)
        else:
            q = self.integers()
        return q * s


class BorderMode(enum.Enum):
    NEAREST = "nearest"
    """beta = 1/2 everywhere (round half up)."""
    SOFT = "soft"
    """Learned borders, sigmoid relaxation of temperature ``tau`` (C.5)."""
    HARD = "hard"
    """Learned borders encoded to F bits, applied exactly (C.6)."""


class _BorderRound(torch.autograd.Function):
    """Fake quantization (C.4)-(C.6) with hand-written gradients: one pass of elementwise
    work instead of autograd's graph of a dozen ops (the training loop's hot spot).

    Forward: ``u = x/s + z``, ``k = floor(u)``, ``f = u - k``, ``up`` hard ``[f >= beta]`` or
    soft ``sigmoid((f - beta)/tau)``, ``q = clamp(k + up)``, ``out = s (q - z)``; elements where
    ``keep`` is true pass ``x`` unchanged (QDrop). Backward, with ``m`` = inside the grid:
    ``dx = g (keep + (1 - keep) m)``, ``ds = sum g' ((q - z) - m x / s)``,
    ``dbeta[g, j] = sum g' m s (-up (1 - up) / tau)`` with ``g' = g (1 - keep)``.
    """

    @staticmethod
    def forward(ctx, x, scale, table, zero_point, qmin, qmax, soft, tau, keep):
        u = x / scale + zero_point
        k = torch.floor(u)
        f = u - k
        index = None
        if table.numel() == 1:
            beta = table.reshape(())
        else:
            j = (k.clamp(qmin, qmax - 1) - qmin).long()
            index = table_index(tuple(table.shape), j)
            beta = torch.take(table, index)
        up = torch.sigmoid((f - beta) / tau) if soft else (f >= beta).to(x.dtype)
        level = k + up
        q = level.clamp(qmin, qmax)
        out = (q - zero_point) * scale
        if keep is not None:
            out = torch.where(keep, x, out)
        ctx.save_for_backward(x, scale, q, level, up if soft else None, keep, index)
        ctx.constants = (zero_point, qmin, qmax, soft, tau, tuple(table.shape))
        return out

    @staticmethod
    def backward(ctx, grad):
        x, scale, q, level, up, keep, index = ctx.saved_tensors
        zero_point, qmin, qmax, soft, tau, table_shape = ctx.constants
        inside = ((level >= qmin) & (level <= qmax)).to(grad.dtype)
        g_q = grad if keep is None else grad * (~keep)
        grad_x = g_q * inside if keep is None else g_q * inside + grad * keep
        grad_scale = (g_q * ((q - zero_point) - inside * x / scale)).sum().reshape(scale.shape)
        grad_table = None
        if soft and ctx.needs_input_grad[2]:
            d = g_q * inside * scale * (-(up * (1 - up)) / tau)
            size = table_shape[0] * table_shape[1]
            if index is None:
                grad_table = d.sum().reshape(table_shape)
            else:
                grad_table = torch.zeros(size, dtype=d.dtype, device=d.device).index_add_(0, index.reshape(-1), d.reshape(-1)).reshape(table_shape)
        return grad_x, grad_scale, grad_table, None, None, None, None, None, None


class ActQuantizer(nn.Module):
    """Per-tensor activation quantizer: ``u = x / s + z``, ``k = floor(u)``, ``f = u - k``,
    ``q = clamp(k + [f >= beta[g, j]], qmin, qmax)`` (docs/contract.md (1)-(4)), output ``s (q - z)``.

    Gradients: ``dq/du = 1`` inside the grid and 0 outside (straight-through, which makes the
    scale's gradient LSQ's); ``dq/dbeta`` through the soft border (C.5). Parameters start
    frozen; reconstruction switches on what it trains. ``drop_prob`` > 0
    keeps each element's unquantized value with that probability (QDrop, training only).
    """

    def __init__(self, bits: int, scale: float, zero_point: int, channels: int,
                 granularity: BorderGranularity, frac_bits: int):
        super().__init__()
        self.bits = bits
        self.qmin, self.qmax = integer_range(bits, signed=False)
        self.zero_point = int(zero_point)
        self.scale = nn.Parameter(torch.tensor(float(scale)), requires_grad=False)
        self.frac_bits = frac_bits
        self.granularity = granularity
        self.channels = channels
        self.borders = nn.Parameter(torch.full(granularity.table_shape(channels, bits), 0.5), requires_grad=False)
        # Per channel, the mean level (from the zero-point) over the calibration data: where the
        # level-free granularities centre equation (9).
        self.register_buffer("mean_level", torch.zeros(channels))
        self.mode = BorderMode.NEAREST
        self.tau = 1.0
        self.drop_prob = 0.0

    @classmethod
    def from_data(cls, x: torch.Tensor, bits: int, granularity: BorderGranularity, frac_bits: int) -> "ActQuantizer":
        """Scale and zero-point of least squared error (nearest rounding) over clipping ranges
        ``a * [min(x, 0), max(x, 0)]``, ``a`` in (0, 1]; zero-point 0 when x is never negative."""
        channels = x.shape[1]
        v = x.detach().double().flatten()
        lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
        if v.numel() > SEARCH_ELEMENTS:
            # The error of each candidate is estimated on a fixed random subset (the range above
            # still comes from every element).
            pick = torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))[:SEARCH_ELEMENTS]
            v = v[pick]
        if hi - lo <= 0:
            hi = 1.0
        top = (1 << bits) - 1
        best = None
        for a in np.linspace(1.0 / SEARCH_STEPS, 1.0, SEARCH_STEPS):
            s = a * (hi - lo) / top
            z = int(min(max(math.floor(-a * lo / s + 0.5), 0), top))
            q = torch.clamp(torch.floor(v / s + z + 0.5), 0, top)
            err = float(((s * (q - z) - v) ** 2).sum())
            if best is None or err < best[0]:
                best = (err, s, z)
        return cls(bits, float(np.float32(best[1])), best[2], channels, granularity, frac_bits)

    def beta(self) -> torch.Tensor:
        """The borders the forward applies in the current mode, shape (G, L)."""
        if self.mode is BorderMode.NEAREST:
            return torch.full_like(self.borders, 0.5)
        if self.mode is BorderMode.HARD:
            return torch.as_tensor(self.border_table().beta, dtype=self.borders.dtype)
        return self.borders.clamp(1.0 / (1 << self.frac_bits), 1.0)

    def border_table(self) -> BorderTable:
        """The F-bit table the lowering writes: 1/2 for nearest rounding, else the learned borders
        encoded by ``rounding.encode_borders`` (soft borders as they would be hardened)."""
        if self.mode is BorderMode.NEAREST:
            return BorderTable.nearest(self.frac_bits)
        return BorderTable(self.frac_bits, encode_borders(self.borders.detach().double().cpu().numpy(), self.frac_bits))

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        """The hard integer levels of ``x`` (no gradient), as the datapath would produce them."""
        with torch.no_grad():
            u = x / self.scale + self.zero_point
            k = torch.floor(u)
            j = (k.clamp(self.qmin, self.qmax - 1) - self.qmin).long()
            up = ((u - k) >= lookup(self.beta().to(u.dtype), j)).to(u.dtype)
            return torch.clamp(k + up, self.qmin, self.qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = None
        if self.training and self.drop_prob > 0:
            keep = torch.rand_like(x) < self.drop_prob
        if self.mode is BorderMode.NEAREST:
            table = torch.full((1, 1), 0.5, dtype=x.dtype)
        else:
            table = self.beta().to(x.dtype)
        return _BorderRound.apply(x, self.scale.to(x.dtype), table, self.zero_point, self.qmin, self.qmax,
                                  self.mode is BorderMode.SOFT, self.tau, keep)
