"""Fake quantizers that compute exactly what the integer program computes.

Weights: per output channel, signed b_w bits with an integer zero-point (asymmetric, the default)
or zero-point 0 (symmetric), scale and zero-point from an error search; rounding to nearest (half
up) or learned AdaRound-style (``docs/calibration.md`` C.1-C.3).

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

from aquant_sim.frontend.border_round import border_round, draw_uniform16, keep_threshold
from aquant_sim.frontend.emulation import lookup
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


class WeightScheme(enum.Enum):
    """The weight grid of every conv/linear (contract (5))."""

    ASYMMETRIC = "asymmetric"
    """Per output channel, a scale and an integer zero-point ``z_w`` in the signed range
    (BRECQ's and QDrop's weights: their ``[0, 2^b - 1]`` grid shifted by ``2^(b-1)``)."""
    SYMMETRIC = "symmetric"
    """Per output channel, a scale and ``z_w = 0``."""


WEIGHT_SEARCH_RANGES = 100
"""Clipping ranges of the weight error search (QDrop's MSEObserver: 100 candidates)."""


class WeightQuantizer(nn.Module):
    """Per-output-channel quantizer of one conv or linear weight (its float bias rides along; the
    model rounds it with the input scale).

    Integers ``w_int = clamp(floor(w / s) + h + z_w, -2^(b-1), 2^(b-1) - 1)`` with ``h`` the
    rounding decision: ``[frac >= 1/2]`` for nearest, ``h(V)`` (soft) or ``[V >= 0]`` (hard) for
    AdaRound (C.1-C.2). The fake-quant weight is ``s (w_int - z_w)``; ``zero_point`` holds
    ``z_w`` (float integers, shape (C_out,)), all 0 for the symmetric scheme.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, bits: int,
                 scheme: WeightScheme = WeightScheme.ASYMMETRIC):
        super().__init__()
        self.bits = bits
        self.scheme = scheme
        self.qmin, self.qmax = integer_range(bits, signed=True)
        self.register_buffer("weight", weight.detach().clone().float())
        self.register_buffer("bias", bias.detach().clone().float())
        search = self._search_asymmetric if scheme is WeightScheme.ASYMMETRIC else self._search_symmetric
        flat = self.weight.reshape(self.weight.shape[0], -1)
        scale, zero_point = search(flat)
        # An all-zero (dead) channel takes its layer's largest scale and z_w = 0: its integers are
        # 0 and its scale, bias integer and multiplier stay in the layer's range (frontend/channels.py).
        dead = (flat == 0).all(dim=1)
        if dead.any():
            scale = torch.where(dead, scale.max(), scale)
            zero_point = torch.where(dead, torch.zeros_like(zero_point), zero_point)
        self.register_buffer("scale", scale.float())
        self.register_buffer("zero_point", zero_point.float())
        self.rounding = WeightRounding.NEAREST
        self.soft = False
        self.alpha: nn.Parameter | None = None

    def _shape(self) -> tuple[int, ...]:
        return (-1,) + (1,) * (self.weight.dim() - 1)

    def _errors(self, flat: torch.Tensor, s: torch.Tensor, zero_points: torch.Tensor, sorted_rows: bool = False) -> torch.Tensor:
        """Per row of ``flat`` (C, K), the summed squared error ``sum (s (clamp(r + z) - z) - w)^2``
        with ``r = round_half_up(w / s)``, for scales ``s`` (C,) and every zero-point in
        ``zero_points`` (Z,); returns (C, Z), float64. ``sorted_rows``: each row of ``flat`` is
        already in ascending order.

        ``clamp(r + z) - z = clamp(r, qmin - z, qmax - z)``: an element's error depends on z only
        through which side of the grid it falls, so the sums ``n``, ``sum w``, ``sum w^2`` of the
        elements of each integer ``r`` (r clipped to one past the widest edge, ``2^b``) give every
        zero-point's error from cumulative sums. Those come from the sorted weights' prefix sums
        at the rounding boundaries ``(v + 1/2) s``: no pass over the elements per scale."""
        top = self.qmax - self.qmin
        w = flat if sorted_rows else flat.sort(dim=1).values
        w = w.double()
        zero = torch.zeros(len(w), 1, dtype=torch.float64)
        prefix_w, prefix_w2 = torch.cat([zero, w.cumsum(1)], 1), torch.cat([zero, (w * w).cumsum(1)], 1)
        levels = torch.arange(-top - 1, top + 2, dtype=torch.float64)
        s = s.double()[:, None]
        # Elements below (v + 1/2) s are those with r <= v; the edges bound each level's bin.
        inner = torch.searchsorted(w, (levels[:-1] + 0.5) * s, right=False)
        edges = torch.cat([torch.zeros_like(inner[:, :1]), inner, torch.full_like(inner[:, :1], w.shape[1])], 1)
        cum_n, cum_w, cum_w2 = edges.double(), prefix_w.gather(1, edges), prefix_w2.gather(1, edges)
        n_bin, w_bin = cum_n.diff(dim=1), cum_w.diff(dim=1)
        cum_rw = torch.cat([zero, (levels * w_bin).cumsum(1)], 1)
        cum_r2 = torch.cat([zero, (levels * levels * n_bin).cumsum(1)], 1)
        lo = (self.qmin - zero_points).double()[None, :].expand(len(w), -1)
        hi = (self.qmax - zero_points).double()[None, :].expand(len(w), -1)
        below, upto = (lo + top + 1).long(), (hi + top + 2).long()
        first, last = torch.zeros_like(below), torch.full_like(below, len(levels))

        def part(cum, start, stop):
            return cum.gather(1, stop) - cum.gather(1, start)

        n_lo, w_lo, w2_lo = (part(c, first, below) for c in (cum_n, cum_w, cum_w2))
        n_hi, w_hi, w2_hi = (part(c, upto, last) for c in (cum_n, cum_w, cum_w2))
        w2_in, rw_in, r2_in = (part(c, below, upto) for c in (cum_w2, cum_rw, cum_r2))
        clipped = s * s * (n_lo * lo * lo + n_hi * hi * hi) - 2 * s * (lo * w_lo + hi * w_hi) + w2_lo + w2_hi
        return clipped + s * s * r2_in - 2 * s * rw_in + w2_in

    def _best(self, flat: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor):
        """Per channel, the candidate of least squared error among scales ``scales`` (R, C) and
        zero-points ``zero_points`` (Z,): returns its scale and zero-point (C,) each. Ranges are
        searched at once (the rows of :meth:`_errors` are range x channel)."""
        ranges, channels = scales.shape
        rows = flat.sort(dim=1).values.repeat(ranges, 1)
        err = self._errors(rows, scales.reshape(-1), zero_points, sorted_rows=True).reshape(ranges, channels, -1)
        # The first of equal errors wins: the smallest range, then the lowest zero-point.
        pick = err.permute(1, 0, 2).reshape(channels, -1).argmin(dim=1)
        r, z = pick // len(zero_points), pick % len(zero_points)
        return scales[r, torch.arange(channels)], zero_points[z].to(scales.dtype)

    def _search_asymmetric(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """QDrop's 2-D search per channel: ranges ``r = i (max - min) / 100`` (min, max taken with
        0) and every zero-point of the grid, ``[min, max] = [-z s, (2^b - 1 - z) s]`` with
        ``s = r / (2^b - 1)``, here shifted to the signed range (``z_w = z - 2^(b-1)``); the
        least squared error wins."""
        lo = flat.amin(dim=1).clamp_max(0)
        span = (flat.amax(dim=1).clamp_min(0) - lo).clamp_min(1e-12)
        steps = torch.arange(1, WEIGHT_SEARCH_RANGES + 1, dtype=flat.dtype)[:, None] / WEIGHT_SEARCH_RANGES
        return self._best(flat, steps * span / (self.qmax - self.qmin), torch.arange(self.qmin, self.qmax + 1))

    def _search_symmetric(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per channel, ``s = i max|w| / (100 * 2^(b-1))`` (QDrop's 1-D search), ``z_w = 0``."""
        peak = flat.abs().amax(dim=1).clamp_min(1e-12)
        steps = torch.arange(1, WEIGHT_SEARCH_RANGES + 1, dtype=flat.dtype)[:, None] / WEIGHT_SEARCH_RANGES
        return self._best(flat, steps * peak / (1 << (self.bits - 1)), torch.zeros(1, dtype=torch.long))

    def _ratio(self) -> torch.Tensor:
        """``w / s + z_w``: the weight on the integer grid, before rounding."""
        return self.weight / self.scale.reshape(self._shape()) + self.zero_point.reshape(self._shape())

    def enable_adaround(self) -> None:
        """Start learned rounding from the float weight itself: ``h(V) = frac(w / s)`` (C.1)."""
        ratio = self._ratio()
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

    def soft_share(self, margin: float = 0.01) -> float:
        """The share of rounding variables still soft, ``h(V)`` in ``(margin, 1 - margin)``
        (0 for nearest rounding)."""
        if self.rounding is not WeightRounding.ADAROUND:
            return 0.0
        h = self.soft_h()
        return float(((h > margin) & (h < 1 - margin)).double().mean())

    def integers(self) -> torch.Tensor:
        """The hard integer weights ``w_int`` (what the program stores, ``z_w`` included), in the
        weight's dtype. The ratio ``w / s + z_w`` is computed in float64 whatever that dtype, so
        that a float32 model and its float64 copy (the exact forward of ``evaluation``) hold the
        same integers: a ratio at an integer, as the one weight per channel of a batch norm's
        depthwise conv always is, floors differently in float32 and float64."""
        shape = self._shape()
        ratio = self.weight.detach().double() / self.scale.detach().double().reshape(shape) + self.zero_point.reshape(shape)
        if self.rounding is WeightRounding.ADAROUND:
            q = torch.floor(ratio) + (self.alpha.detach() >= 0).double()
        else:
            q = round_half_up(ratio)
        return torch.clamp(q, self.qmin, self.qmax).to(self.weight.dtype)

    def dequantized(self) -> torch.Tensor:
        """The hard fake-quant weight ``s (w_int - z_w)`` (no gradient)."""
        return (self.integers() - self.zero_point.reshape(self._shape())) * self.scale.reshape(self._shape())

    def forward(self) -> torch.Tensor:
        shape = self._shape()
        if self.rounding is WeightRounding.ADAROUND and self.soft:
            q = torch.clamp(torch.floor(self._ratio()) + self.soft_h(), self.qmin, self.qmax)
        else:
            q = self.integers()
        return (q - self.zero_point.reshape(shape)) * self.scale.reshape(shape)


class BorderMode(enum.Enum):
    NEAREST = "nearest"
    """beta = 1/2 everywhere (round half up)."""
    SOFT = "soft"
    """Learned borders, sigmoid relaxation of temperature ``tau`` (C.5)."""
    HARD = "hard"
    """Learned borders encoded to F bits, applied exactly (C.6)."""


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
        self.enabled = True
        """False passes values through unquantized (BRECQ's first stage: float activations)."""

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
        if not self.enabled:
            return x
        draws = draw_uniform16(tuple(x.shape)) if self.training and self.drop_prob > 0 else None
        if self.mode is BorderMode.NEAREST:
            table = torch.full((1, 1), 0.5, dtype=x.dtype)
        else:
            table = self.beta().to(x.dtype)
        return border_round(x, self.scale.to(x.dtype), table, self.zero_point, self.qmin, self.qmax,
                            self.mode is BorderMode.SOFT, self.tau, draws, keep_threshold(self.drop_prob))
