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

from aquant_sim.program import BorderGranularity
from aquant_sim.rounding import integer_range

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

ZERO_POINT_WINDOW = 16
"""Zero-points the weight search tries per range on grids wider than 4 bits."""

WEIGHT_SEARCH_P = 2.4
"""Exponent of the weight error search's score ``mean |w_q - w|^p`` (BRECQ, QDrop)."""


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
        scale, zero_point = search(self.weight.reshape(self.weight.shape[0], -1))
        self.register_buffer("scale", scale.float())
        self.register_buffer("zero_point", zero_point.float())
        self.rounding = WeightRounding.NEAREST
        self.soft = False
        self.alpha: nn.Parameter | None = None

    def _shape(self) -> tuple[int, ...]:
        return (-1,) + (1,) * (self.weight.dim() - 1)

    def _score(self, flat: torch.Tensor, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per channel and candidate zero-point, ``mean |s (clamp(round(w / s) + z) - z) - w|^p``
        for scales ``s`` (C,) and zero-points ``z`` (C, Z); returns (C, Z)."""
        steps = round_half_up(flat / s[:, None])[:, None, :]
        z = z[:, :, None]
        err = torch.clamp(steps + z, self.qmin, self.qmax).sub_(z).mul_(s[:, None, None]).sub_(flat[:, None, :])
        return err.abs_().pow_(WEIGHT_SEARCH_P).mean(dim=2)

    def _search_asymmetric(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """QDrop's 2-D search per channel: ranges ``r = i (max - min) / 100`` (min, max taken with
        0) and zero-points; the grid is ``[min, max] = [-z s, (2^b - 1 - z) s]`` with
        ``s = r / (2^b - 1)``, here shifted to the signed range (``z_w = z - 2^(b-1)``). Every
        zero-point of a grid of up to 16 levels is tried (QDrop tries all); wider grids try the 16
        around the min/max one, ``round(-min / s)``, which keeps 8-bit searches affordable."""
        best_s, best_z = torch.empty(flat.shape[0], dtype=flat.dtype), torch.empty(flat.shape[0], dtype=flat.dtype)
        chunk = max(1, SEARCH_ELEMENTS * 16 // (ZERO_POINT_WINDOW * flat.shape[1]))
        for start in range(0, flat.shape[0], chunk):
            rows = slice(start, start + chunk)
            best_s[rows], best_z[rows] = self._search_rows(flat[rows])
        return best_s, best_z

    def _search_rows(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo = flat.amin(dim=1).clamp_max(0)
        span = (flat.amax(dim=1).clamp_min(0) - lo).clamp_min(1e-12)
        top = self.qmax - self.qmin
        offsets = torch.arange(ZERO_POINT_WINDOW, dtype=flat.dtype) - ZERO_POINT_WINDOW // 2
        best_err = torch.full_like(span, math.inf)
        best_s, best_z = torch.empty_like(span), torch.zeros_like(span)
        for i in range(1, WEIGHT_SEARCH_RANGES + 1):
            s = span * i / WEIGHT_SEARCH_RANGES / top
            if top < ZERO_POINT_WINDOW:
                zeros = torch.arange(self.qmin, self.qmax + 1, dtype=flat.dtype).expand(len(s), -1)
            else:
                centre = self.qmin + torch.clamp(round_half_up(-lo / s), 0, top)
                zeros = torch.clamp(centre[:, None] + offsets, self.qmin, self.qmax)
            err = self._score(flat, s, zeros)
            err_min, pick = err.min(dim=1)
            better = err_min < best_err
            best_err = torch.where(better, err_min, best_err)
            best_s = torch.where(better, s, best_s)
            best_z = torch.where(better, zeros.gather(1, pick[:, None])[:, 0], best_z)
        return best_s, best_z

    def _search_symmetric(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per channel, ``s = i max|w| / (100 * 2^(b-1))`` (QDrop's 1-D search), ``z_w = 0``."""
        peak = flat.abs().amax(dim=1).clamp_min(1e-12)
        zero = torch.zeros(len(peak), 1, dtype=flat.dtype)
        best_err = torch.full_like(peak, math.inf)
        best_s = torch.empty_like(peak)
        for i in range(1, WEIGHT_SEARCH_RANGES + 1):
            s = peak * i / WEIGHT_SEARCH_RANGES / (1 << (self.bits - 1))
            err = self._score(flat, s, zero)[:, 0]
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_s = torch.where(better, s, best_s)
        return best_s, torch.zeros_like(peak)

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
        """The hard integer weights ``w_int`` (what the program stores, ``z_w`` included)."""
        ratio = self._ratio()
        if self.rounding is WeightRounding.ADAROUND:
            q = torch.floor(ratio) + (self.alpha.detach() >= 0).float()
        else:
            q = round_half_up(ratio)
        return torch.clamp(q, self.qmin, self.qmax)

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


def encode_borders_torch(beta: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """``rounding.encode_borders`` in float64 torch: ``clamp(floor(beta * 2^F + 1/2), 1, 2^F)``."""
    one = float(1 << frac_bits)
    return torch.clamp(torch.floor(beta.detach().double() * one + 0.5), 1, one)


def table_index(table_shape: tuple[int, int], j: torch.Tensor) -> torch.Tensor | None:
    """Flat index ``g(c) * L + j`` into a (G, L) table for every element (channel on axis 1),
    or None for a 1x1 table."""
    groups, levels = table_shape
    if groups == 1 and levels == 1:
        return None
    index = j if levels > 1 else torch.zeros_like(j)
    if groups > 1:
        shape = [1] * j.dim()
        shape[1] = -1
        index = index + torch.arange(j.shape[1], device=j.device).reshape(shape) * levels
    return index


def lookup(table: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """``table[g(c), j]`` for every element, channel on axis 1 (``rounding.lookup_borders``)."""
    index = table_index(tuple(table.shape), j)
    return table[0, 0] if index is None else table.reshape(-1)[index]


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
            beta = table.reshape(-1)[index]
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
        one = float(1 << self.frac_bits)
        if self.mode is BorderMode.NEAREST:
            return torch.full_like(self.borders, 0.5)
        if self.mode is BorderMode.HARD:
            return (encode_borders_torch(self.borders, self.frac_bits) / one).to(self.borders.dtype)
        return self.borders.clamp(1.0 / one, 1.0)

    def border_integers(self) -> np.ndarray:
        """The table ``B`` (int64, (G, L)) the lowering writes: 1/2 or the learned borders."""
        if self.mode is BorderMode.NEAREST:
            return np.full(tuple(self.borders.shape), 1 << (self.frac_bits - 1), dtype=np.int64)
        return encode_borders_torch(self.borders, self.frac_bits).numpy().astype(np.int64)

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
