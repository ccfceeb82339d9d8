"""The rounding and requantization contract, ``docs/contract.md``, as short numpy functions.

This module is the single source of truth: every contract rule (border rounding, the
requantizer, border encoding, the accumulator range and the D.6 shift bound) is defined here
once. The numba kernels (``aquant_sim.kernels``) and the front-end's torch forms are thin
kernels of the same rules, and one conformance suite (``aquant_sim.testing.conformance``) checks
every implementation against these functions bit for bit. Equation numbers (1)-(9) are those of
``docs/contract.md``; (D.n) are those of ``docs/datapath.md``.

Conventions shared by every function here:

* Integer tensors are int64 inside the contract; callers may store them narrower.
* A border table has shape ``(G, L)``: ``G`` is 1 (shared by every channel) or the channel count
  ``C``; ``L`` is 1 (shared by every level) or ``qmax - qmin`` (one border between each pair of
  adjacent levels, ``2^b - 1`` for b bits). These four shapes are the four granularities.
* ``channel_axis`` names the axis whose index selects the table row and the per-channel
  multiplier; it is 1 for NCHW activations and for (N, features) matrices.
"""

from __future__ import annotations

import enum

import numpy as np

from aquant_sim.errors import ProgramError

MULTIPLIER_BITS = 31
"""Fixed-point multipliers ``m`` lie in ``[2^30, 2^31)``: 31 significant bits, contract (6)."""

PRODUCT_BITS = 62
"""D.6: ``acc * m``, shifted left when ``n - F < 0``, stays below ``2^62`` in magnitude, so that
adding ``z * 2^F`` cannot overflow int64; a right shift by more than 62 bits changes nothing."""

MAX_FRAC_BITS = 16
"""Largest F: the border unit compares at most 16 fraction bits (beyond that, float error in
the calibration front-end is larger than a border step)."""


class OverflowPolicy(enum.Enum):
    """What an A-bit accumulator does with a sum that does not fit in A signed bits."""

    WRAP = "wrap"
    """Two's-complement wrap-around modulo 2^A, as plain adders do."""
    SATURATE = "saturate"
    """Clamp to [-2^(A-1), 2^(A-1) - 1], applied once to the exact sum (guard bits, then a
    saturating stage), so that the result does not depend on summation order."""


def integer_range(bits: int, signed: bool) -> tuple[int, int]:
    """Return ``(qmin, qmax)`` of a b-bit integer.

    >>> integer_range(4, signed=False)
    (0, 15)
    >>> integer_range(4, signed=True)
    (-8, 7)
    """
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def border_index(k: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """Equation (3): which border decides between level ``k`` and ``k + 1``.

    The index is ``clamp(k, qmin, qmax - 1) - qmin``, in ``[0, qmax - qmin - 1]``: values below
    the grid use the first border, values above it the last (the clamp in (4) then decides).

    >>> border_index(np.array([-3, 0, 1, 15, 99]), 0, 15).tolist()
    [0, 0, 1, 14, 14]
    """
    return np.clip(k, qmin, qmax - 1) - qmin


def lookup_borders(
    table: np.ndarray, j: np.ndarray, channel_axis: int = 1
) -> np.ndarray:
    """Read ``table[g(c), j]`` for every element, where ``c`` is the element's index on
    ``channel_axis`` and ``j`` its border index (same shape as the result).

    A table with one row serves every channel; a table with one column serves every level.

    >>> t = np.array([[1, 2, 3], [4, 5, 6]])
    >>> lookup_borders(t, np.array([[0, 2], [1, 1]]), channel_axis=1).tolist()
    [[1, 6], [2, 5]]
    """
    table = np.asarray(table)
    groups, levels = table.shape
    j = np.asarray(j)
    channel_shape = [1] * j.ndim
    channel_shape[channel_axis] = j.shape[channel_axis]
    g = np.arange(j.shape[channel_axis]).reshape(channel_shape) if groups > 1 else 0
    level = j if levels > 1 else 0
    return table[g, level]


def border_round(
    x: np.ndarray,
    scale: float,
    zero_point: int,
    qmin: int,
    qmax: int,
    beta: np.ndarray,
    channel_axis: int = 1,
) -> np.ndarray:
    """Real-valued border rounding, equations (1)-(4); float64 arithmetic, int64 result.

    ``u = x / s + z``, ``k = floor(u)``, ``f = u - k``, and
    ``q = clamp(k + [f >= beta[g, j]], qmin, qmax)`` with ``j`` from (3). ``beta`` is in
    ``(0, 1]``: 1/2 everywhere is round-half-up, 1 is floor.

    >>> half = np.array([[0.5]])
    >>> border_round(np.array([[0.5, 1.5, -0.5, 2.49, 99.0]]), 1.0, 0, -8, 7, half).tolist()
    [[1, 2, 0, 2, 7]]
    >>> border_round(np.array([[0.99, 1.0]]), 1.0, 0, 0, 15, np.array([[1.0]])).tolist()
    [[0, 1]]
    """
    u = np.asarray(x, dtype=np.float64) / scale + zero_point
    k_float = np.floor(u)
    f = u - k_float
    # Clip before the integer cast so that huge values cannot overflow int64; the clamp in (4)
    # makes the result the same as for the unclipped value.
    k = np.clip(k_float, qmin - 1, qmax + 1).astype(np.int64)
    up = f >= lookup_borders(beta, border_index(k, qmin, qmax), channel_axis)
    return np.clip(k + up, qmin, qmax)


def quantize_multiplier(real_multiplier) -> tuple[np.ndarray, np.ndarray]:
    """Represent positive reals ``M`` as ``m * 2^-n`` with integer ``m`` in ``[2^30, 2^31)``.

    ``m = round_half_up(mantissa(M) * 2^31)``, so the relative error ``|m*2^-n - M| / M`` is at
    most ``2^-31``; a mantissa that rounds up to ``2^31`` becomes ``2^30`` with ``n`` one less.
    ``n`` may be negative (``M >= 2``). Returns int64 arrays of the shape of the input.

    >>> m, n = quantize_multiplier([0.5, 0.75, 3.0])
    >>> m.tolist(), n.tolist()
    ([1073741824, 1610612736, 1610612736], [31, 31, 29])
    """
    real = np.asarray(real_multiplier, dtype=np.float64)
    if not np.all(np.isfinite(real)) or np.any(real <= 0):
        raise ProgramError(f"real multipliers must be finite and positive, got {real!r}")
    mantissa, exponent = np.frexp(real)  # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    m = np.floor(mantissa * 2.0**MULTIPLIER_BITS + 0.5).astype(np.int64)
    carry = m == (1 << MULTIPLIER_BITS)
    m = np.where(carry, 1 << (MULTIPLIER_BITS - 1), m)
    n = MULTIPLIER_BITS - exponent.astype(np.int64) - carry
    return m, n


def dyadic_value(multiplier, shift) -> np.ndarray:
    """The real number ``m * 2^-n`` that a (multiplier, shift) pair represents (exact in
    float64 for 31-bit ``m``)."""
    return np.ldexp(np.asarray(multiplier, dtype=np.float64), -np.asarray(shift, dtype=np.int64))


def encode_borders(beta, frac_bits: int) -> np.ndarray:
    """Encode real borders ``beta`` in ``(0, 1]`` as integers ``B = round_half_up(beta * 2^F)``
    clamped to ``[1, 2^F]``, so that ``B / 2^F`` is the F-bit border the datapath applies.

    >>> encode_borders([0.5, 0.0001, 1.0, 0.3], 4).tolist()
    [8, 1, 16, 5]
    """
    beta = np.asarray(beta, dtype=np.float64)
    if not np.all(np.isfinite(beta)):
        raise ProgramError("borders must be finite")
    one = 1 << frac_bits
    return np.clip(np.floor(beta * one + 0.5), 1, one).astype(np.int64)


def nearest_borders(frac_bits: int, groups: int = 1, levels: int = 1) -> np.ndarray:
    """The border table of plain round-half-up: ``B = 2^(F-1)`` everywhere."""
    return np.full((groups, levels), 1 << (frac_bits - 1), dtype=np.int64)


def _per_channel(values: np.ndarray, ndim: int, channel_axis: int) -> np.ndarray:
    """Reshape a per-channel vector of length C (or 1) to broadcast along ``channel_axis``."""
    values = np.asarray(values, dtype=np.int64)
    shape = [1] * ndim
    shape[channel_axis] = values.shape[0]
    return values.reshape(shape)


def scale_to_fixed_point(
    acc: np.ndarray, multiplier, shift, frac_bits: int, zero_point: int, channel_axis: int = 1
) -> np.ndarray:
    """Equation (6): ``v = floor(acc * m / 2^(n - F)) + z * 2^F`` in int64.

    A negative ``n - F`` shifts left. ``acc`` must be an A-bit value and ``n - F`` within
    :func:`scaled_shift_range` (the program validates this), so nothing overflows (D.6).
    The right shift is arithmetic, i.e. floor, also for negative products.
    """
    acc = np.asarray(acc, dtype=np.int64)
    m = _per_channel(multiplier, acc.ndim, channel_axis)
    s = _per_channel(shift, acc.ndim, channel_axis) - frac_bits
    product = acc * m
    shifted = np.where(s >= 0, product >> np.maximum(s, 0), product << np.maximum(-s, 0))
    return shifted + (np.int64(zero_point) << frac_bits)


def round_fixed_point(
    v: np.ndarray, frac_bits: int, borders: np.ndarray, qmin: int, qmax: int, channel_axis: int = 1
) -> np.ndarray:
    """Equations (7)-(8), the border lookup unit: ``k = v >> F``, ``f = v & (2^F - 1)``,
    ``q = clamp(k + [f >= B[g, j]], qmin, qmax)``.

    With F = 4 and B = 8 (round half up): 7/16 -> 0, 8/16 -> 1, -8/16 -> 0, -9/16 -> -1.

    >>> round_fixed_point(np.array([[7, 8, -1, -8, -9, 200]]), 4, np.array([[8]]), -8, 7).tolist()
    [[0, 1, 0, 0, -1, 7]]
    """
    v = np.asarray(v, dtype=np.int64)
    k = v >> frac_bits
    f = v & ((1 << frac_bits) - 1)
    up = f >= lookup_borders(borders, border_index(k, qmin, qmax), channel_axis)
    return np.clip(k + up, qmin, qmax)


def requantize(
    acc: np.ndarray,
    multiplier,
    shift,
    frac_bits: int,
    borders: np.ndarray,
    zero_point: int,
    qmin: int,
    qmax: int,
    channel_axis: int = 1,
) -> np.ndarray:
    """The integer requantizer, equations (6)-(8): int64 accumulators in, levels out.

    Equals :func:`border_round` of ``acc * M`` exactly when ``M = m * 2^-n`` and
    ``beta = B / 2^F`` (``docs/contract.md``, "Why (6)-(8) is exact").

    With M = 1/8: 3/8 -> 0, 4/8 -> 1 (a tie rounds up), 5/8 -> 1, -3/8 -> 0, -4/8 -> 0.

    >>> requantize(np.array([[3, 4, 5, -3, -4]]), [1 << 30], [33], 4, np.array([[8]]), 0, -8, 7)
    array([[0, 1, 1, 0, 0]])
    """
    v = scale_to_fixed_point(acc, multiplier, shift, frac_bits, zero_point, channel_axis)
    return round_fixed_point(v, frac_bits, borders, qmin, qmax, channel_axis)


def accumulator_range(bits: int) -> tuple[int, int]:
    """The range ``[-2^(A-1), 2^(A-1) - 1]`` of an A-bit signed accumulator."""
    return integer_range(bits, signed=True)


def scaled_shift_range(accumulator_bits: int) -> tuple[int, int]:
    """D.6: the allowed range of ``s = n - F`` for an A-bit accumulator, ``[A - 32, 62]``.

    ``|acc| <= 2^(A-1)`` and ``m < 2^31``, so ``|acc * m * 2^-s| < 2^(A + 30 - s)``, which is at
    most ``2^PRODUCT_BITS`` when ``s >= A + 30 - 62``; the upper end keeps every shift count
    below int64's width.

    >>> scaled_shift_range(32), scaled_shift_range(8)
    ((0, 62), (-24, 62))
    """
    return accumulator_bits + MULTIPLIER_BITS - 1 - PRODUCT_BITS, PRODUCT_BITS


def apply_overflow(
    acc: np.ndarray, bits: int, policy: OverflowPolicy
) -> tuple[np.ndarray, int]:
    """Fit exact int64 sums into an A-bit signed accumulator; return the result and the count
    of elements that did not fit.

    WRAP keeps the low A bits as a two's-complement number (the same whatever the summation
    order, since addition modulo 2^A is associative); SATURATE clamps the exact sum.

    >>> apply_overflow(np.array([127, 128, -129]), 8, OverflowPolicy.WRAP)
    (array([ 127, -128,  127]), 2)
    >>> apply_overflow(np.array([127, 128, -129]), 8, OverflowPolicy.SATURATE)
    (array([ 127,  127, -128]), 2)
    """
    acc = np.asarray(acc, dtype=np.int64)
    lo, hi = accumulator_range(bits)
    outside = (acc < lo) | (acc > hi)
    count = int(np.count_nonzero(outside))
    if count == 0:
        return acc, 0
    if policy is OverflowPolicy.SATURATE:
        return np.clip(acc, lo, hi), count
    wrapped = ((acc - lo) & ((1 << bits) - 1)) + lo
    return wrapped, count
