"""The rounding and requantization contract, ``docs/contract.md``, as short numpy functions.

This module is the single source of truth: every contract rule (border rounding, the
requantizer, border encoding, the accumulator range and the D.6 shift bound) is defined here
once. The numba kernels (``aquant_sim.kernels``) and the front-end's torch forms are thin
kernels of the same rules, and one conformance suite (``aquant_sim.testing.conformance``) checks
every implementation against these functions bit for bit. Equation numbers (1)-(20) are those of
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


# ---------------------------------------------------------------------------------------------
# Requantizers of real integer runtimes (docs/contract.md 2.1, equations (10)-(20))


class RequantVariant(enum.Enum):
    """Which rule a requantizer applies to its accumulators (``docs/contract.md`` 2.1). Every
    variant reads the same ``(m, n)`` pair, ``M = m * 2^-n`` with ``m`` in ``[2^30, 2^31)``."""

    BORDER = "border"
    """This project's (6)-(8): floor to F fraction bits, then the border lookup unit."""
    GEMMLOWP = "gemmlowp"
    """gemmlowp / TFLite / tflite-micro / CMSIS-NN, (10)-(13): a saturating rounding doubling high
    multiply, then a rounding right shift, both round half away from zero. No fraction: no borders."""
    FP32 = "fp32"
    """ONNX Runtime (MLAS) and XNNPACK fp32, (14)-(16): ``float32(acc) * float32(M)``, round half to
    even. ``M`` must be exactly a float32. No fraction: no borders."""
    FP32_ADD = "fp32_add"
    """ONNX Runtime's ``QLinearAdd`` (MLAS, AVX2), (17)-(20), residual adds only: two float32 fused
    multiply-adds of the inputs by the float32 ratios ``s_a / s_c`` and ``s_b / s_c`` (the
    requantizer's two ``(m, n)`` entries), round half to even. No accumulator, no fraction: no
    borders."""
    FLOAT64 = "float64"
    """TFLite's reference int8 ``FULLY_CONNECTED``, (31)-(32): ``float64(acc) * E`` in IEEE double,
    rounded half away from zero, plus ``z``, clamp. ``E`` is a double: ``m`` holds its 53-bit
    significand, in ``[2^52, 2^53)``. No fraction: no borders."""
    TFLITE_ADD = "tflite_add"
    """TFLite's int8 ``ADD``, (21)-(24), residual adds only: each input's centred level shifted left
    by 20 and multiplied by its own Q31 multiplier (the requantizer's first two entries, rounded as
    (11)-(12)), summed, then (10)-(13) by the third entry. No fraction: no borders."""
    TFLITE_AVGPOOL = "tflite_avgpool"
    """TFLite's int8 ``AVERAGE_POOL_2D``, (25)-(27), average pooling without padding only: the sum of
    the window's levels divided by the window size, rounded half away from zero. No multiplier (its
    entry must be 1) and no fraction: no borders."""
    TFLITE_MEAN = "tflite_mean"
    """TFLite's int8 ``MEAN`` over height and width, (28)-(30), global average pooling only: the
    multiplier of ``s_x / s_y`` divided by ``H * W`` in integers, then (10)-(13) of the centred
    sum. No fraction: no borders."""

    @property
    def has_fraction(self) -> bool:
        """True when the variant leaves a fraction that a border table can decide (only BORDER)."""
        return self is RequantVariant.BORDER


FLOAT32_MANTISSA_BITS = 24
"""Significant bits of a float32: the FP32 variant's ``m`` has its low 31 - 24 = 7 bits zero."""

FLOAT32_SHIFT_RANGE = (-97, 156)
"""Shifts ``n`` whose ``m * 2^-n`` (``m`` in [2^30, 2^31)) is a normal float32: ``2^(30 - n) >=
2^-126`` and ``2^(31 - n) <= 2^128``."""

FP32_ADD_SHIFT_RANGE = (19, FLOAT32_SHIFT_RANGE[1])
"""Shifts ``n`` of the FP32_ADD ratios: ``r = m * 2^-n < 2^(31 - n) <= 2^12``. With 16-bit
levels, ``|a - z_a|, |b - z_b| < 2^16`` and ``|z_c| < 2^17`` (offset included), so the exact
``r_a (a - z_a) + r_b (b - z_b) + z_c`` that (17)-(19) compute is below ``2^29 + 2^17``, and the
float32 ``v`` (three roundings, each of relative error at most 2^-24 of terms below 2^31) stays
far inside int32: MLAS's ``_mm256_cvtps_epi32`` never meets a value outside int32 (where it
would return INT32_MIN) and (20) is a plain clamp."""

MAX_ZERO_OFFSET = 1 << 8
"""The largest offset (20) that a runtime adds to an add's levels before its kernel (onnxruntime
adds 128 when it turns an int8 QDQ add into a uint8 ``QLinearAdd``)."""


def gemmlowp_shift_range(accumulator_bits: int) -> tuple[int, int]:
    """The allowed ``n`` of the GEMMLOWP variant for A-bit accumulators.

    TFLite's exponent is ``e = 31 - n``. The rounding shift (12) takes ``r = -e`` in [0, 31], so
    ``n <= 62``; the left shift (10) of an A-bit accumulator by ``l = e`` must stay within int32
    (TFLite multiplies in int32, where overflow is undefined), so ``l <= 32 - A``, ``n >= A - 1``.

    >>> gemmlowp_shift_range(32), gemmlowp_shift_range(16)
    ((31, 62), (15, 62))
    """
    return accumulator_bits - 1, 62


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Equation (11), gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 values held in
    int64: ``(a * b + nudge) / 2^31`` truncated toward zero, ``nudge = 2^30`` when ``a * b >= 0``
    else ``1 - 2^30``, which is ``floor(a * b / 2^31 + 1/2)``: round half *up* (toward +infinity;
    -1.5 becomes -1), not away from zero. The one overflow, ``a = b = -2^31``, saturates to
    ``2^31 - 1``.

    >>> saturating_rounding_doubling_high_mul(np.array([3, -3, -5, 1 << 30]), np.array([1 << 30] * 4)).tolist()
    [2, -1, -2, 536870912]
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    product = a * b
    total = product + np.where(product >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    quotient = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C division: toward zero
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return np.where(overflow, np.int64((1 << 31) - 1), quotient)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """Equation (12), gemmlowp's ``RoundingDivideByPOT``: ``x / 2^r`` rounded half away from zero,
    ``r`` in [0, 31]: ``(x >> r) + [x & mask > (mask >> 1) + [x < 0]]``, ``mask = 2^r - 1``.

    >>> rounding_divide_by_pot(np.array([5, 6, 7, -5, -6, -7]), np.array([2] * 6)).tolist()
    [1, 2, 2, -1, -2, -2]
    """
    x = np.asarray(x, dtype=np.int64)
    r = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << r) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> r) + ((x & mask) > threshold)


def _wrap_int32(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 31)) & ((1 << 32) - 1)) - (1 << 31)


def gemmlowp_requantize(acc, multiplier, shift, zero_point: int, qmin: int, qmax: int, channel_axis: int = 1) -> np.ndarray:
    """The GEMMLOWP variant, equations (10)-(13), TFLite's ``MultiplyByQuantizedMultiplier`` plus
    the output offset and the activation clamp. With ``e = 31 - n``, ``l = max(e, 0)``,
    ``r = max(-e, 0)``:

    (10) ``x = acc * 2^l`` (int32; the program keeps it in range, :func:`gemmlowp_shift_range`),
    (11) ``h = SRDHM(x, m)``, (12) ``y = RDBPOT(h, r)``, (13) ``q = clamp(y + z, qmin, qmax)``.

    It rounds twice: with M = 1/8 (m = 2^30, n = 33, so r = 2), 3/8 -> 1 (SRDHM takes 3/2 up to
    2, then 2/4 is a tie away from zero), 4/8 -> 1, -3/8 -> 0, -4/8 -> -1.

    >>> gemmlowp_requantize(np.array([[3, 4, 5, -3, -4]]), [1 << 30], [33], 0, -8, 7)
    array([[ 1,  1,  1,  0, -1]])
    """
    acc = np.asarray(acc, dtype=np.int64)
    m = _per_channel(multiplier, acc.ndim, channel_axis)
    e = 31 - _per_channel(shift, acc.ndim, channel_axis)
    x = _wrap_int32(acc << np.maximum(e, 0))
    y = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m), np.maximum(-e, 0))
    return np.clip(y + zero_point, qmin, qmax)


def float32_scale(multiplier, shift) -> np.ndarray:
    """The float32 ``M = m * 2^-n`` of the FP32 variant (exact: the program checks that ``m`` has
    at most 24 significant bits and that ``M`` is a normal float32)."""
    return dyadic_value(multiplier, shift).astype(np.float32)


def float32_multiplier(scale) -> tuple[np.ndarray, np.ndarray]:
    """Encode float32 scales exactly as ``(m, n)`` with ``m`` in ``[2^30, 2^31)``, the inverse of
    :func:`float32_scale`: the 24-bit significand shifted left by 7. Scales must be normal
    positive float32 values.

    >>> m, n = float32_multiplier(np.float32(0.75))
    >>> int(m), int(n)
    (1610612736, 31)
    """
    scale = np.asarray(scale, dtype=np.float32)
    if not np.all(np.isfinite(scale)) or np.any(scale < np.finfo(np.float32).tiny):
        raise ProgramError(f"float32 scales must be normal and positive, got {scale!r}")
    mantissa, exponent = np.frexp(scale.astype(np.float64))
    m = (mantissa * 2.0**MULTIPLIER_BITS).astype(np.int64)  # exact: 24 bits shifted left
    return m, MULTIPLIER_BITS - exponent.astype(np.int64)


def fp32_requantize(acc, multiplier, shift, zero_point: int, qmin: int, qmax: int, channel_axis: int = 1) -> np.ndarray:
    """The FP32 variant, equations (14)-(16), ONNX Runtime's ``MlasRequantizeOutput``:

    (14) ``a = float32(acc)`` (round to nearest even above 2^24), ``v = float32(a * float32(M))``
    (one IEEE float32 product, round to nearest even);
    (15) ``v`` clamped to ``[qmin - z, qmax - z]``, then ``k = round_half_even(v)``;
    (16) ``q = k + z``.

    With M = 1/8: 4/8 -> 0 and 12/8 -> 2 (ties to even), 5/8 -> 1, -12/8 -> -2.

    >>> fp32_requantize(np.array([[4, 12, 5, -12]]), [1 << 30], [33], 0, -8, 7)
    array([[ 0,  2,  1, -2]])
    """
    acc = np.asarray(acc, dtype=np.int64)
    scale = _per_channel_float(float32_scale(multiplier, shift), acc.ndim, channel_axis)
    with np.errstate(over="ignore"):  # IEEE: an overflowing product is an infinity, then clamped
        v = acc.astype(np.float32) * scale
    v = np.clip(v, np.float32(qmin - zero_point), np.float32(qmax - zero_point))
    return np.rint(v).astype(np.int64) + zero_point


def _per_channel_float(values: np.ndarray, ndim: int, channel_axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[channel_axis] = values.shape[0]
    return values.reshape(shape)


def float32_fma(x, y, z) -> np.ndarray:
    """``fma(x, y, z)`` of float32 values: ``x * y + z`` rounded once to float32 (nearest, ties to
    even), as ``_mm256_fmadd_ps`` computes it, emulated exactly in float64.

    Proof. ``p = x * y`` is exact in float64 (24 + 24 significant bits <= 53). ``s = fl64(p + z)``
    and ``e = (p + z) - s`` is exact by Knuth's TwoSum (six float64 operations, exact whenever
    nothing overflows: ``|x|, |y|, |z|`` are float32 values, far from the float64 range).
    Rounding ``s`` to *odd* (when ``e != 0`` and ``s``'s last significand bit is 0, replace ``s``
    by its float64 neighbour on ``e``'s side) gives the float64 round-to-odd of the exact
    ``p + z``; rounding that to float32 equals rounding ``p + z`` to float32 directly, since
    float64 has at least 24 + 2 significant bits (Boldo and Melquiond, "Emulation of FMA and
    correctly rounded sums: proved algorithms using rounding to odd", IEEE Trans. Computers
    57(4), 2008, Theorem 1). A plain ``float32(float64(x * y) + z)`` rounds twice and differs
    (1 in 20,000 random cases measured, ``tests/test_rounding.py``).

    >>> float(float32_fma(np.float32(1 + 2**-23), np.float32(1 - 2**-23), np.float32(-1.0)))
    -1.4210854715202004e-14
    """
    x, y, z = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in (x, y, z))
    p = x * y
    s = p + z
    virtual = s - p
    error = (p - (s - virtual)) + (z - virtual)
    even = (s.view(np.int64) & 1) == 0
    toward = np.where(error > 0, np.inf, -np.inf)
    return np.where((error != 0) & even, np.nextafter(s, toward), s).astype(np.float32)


def fp32_add_fixed(ratio_a, ratio_b, zero_a: int, zero_b: int, zero_c: int, offset: int = 0) -> np.float32:
    """Equation (17), the FP32_ADD variant's fixed part, a float32:
    ``F = float32(float32(Z_c) - fma(r_a, Z_a, float32(r_b * Z_b)))`` with ``Z = z + offset``
    (exact in float32: zero-points are at most 17-bit integers)."""
    r_a, r_b = np.float32(ratio_a), np.float32(ratio_b)
    z_a, z_b, z_c = (np.float32(z + offset) for z in (zero_a, zero_b, zero_c))
    return np.float32(z_c - float32_fma(r_a, z_a, np.float32(r_b * z_b)))


def fp32_add(a, b, ratio_a, ratio_b, zero_a: int, zero_b: int, zero_c: int, qmin: int, qmax: int,
             offset: int = 0) -> np.ndarray:
    """The FP32_ADD variant, equations (17)-(20), ONNX Runtime's ``QLinearAdd`` on AVX2
    (``MlasQLinearAddKernelAvx2Helper``): levels ``a``, ``b`` (int64 arrays, the same shape) of
    formats with zero-points ``z_a``, ``z_b`` in, levels of the output format ``(z_c, qmin, qmax)``
    out. ``ratio_a``, ``ratio_b`` are the float32 ``float32(s_a) / float32(s_c)`` and
    ``float32(s_b) / float32(s_c)``. The runtime holds every level and zero-point plus ``offset``
    (``o``; 128 where onnxruntime runs an int8 add as uint8). With ``A = a + o``, ``B = b + o``,
    ``Z = z + o``:

    (17) ``F = float32(float32(Z_c) - fma(r_a, Z_a, float32(r_b * Z_b)))``, the fixed part;
    (18) ``t = fma(B, r_b, F)``;
    (19) ``v = fma(A, r_a, t)``, each ``fma`` rounded once to float32 (:func:`float32_fma`);
    (20) ``q = clamp(round_half_even(v), qmin + o, qmax + o) - o``.

    The fixed part's ``fma`` is the compiler's contraction of the C++ ``r_a * Z_a + r_b * Z_b``
    in onnxruntime's build (measured: the other two readings each differ from onnxruntime on
    some of 240 scale triples, this one on none).

    >>> fp32_add(np.array([10, 0, 255]), np.array([3, 0, 255]), np.float32(0.5), np.float32(0.25), 0, 0, 0, 0, 255).tolist()
    [6, 0, 191]
    """
    r_a, r_b = np.float32(ratio_a), np.float32(ratio_b)
    fixed = fp32_add_fixed(r_a, r_b, zero_a, zero_b, zero_c, offset)
    big_a = (np.asarray(a, dtype=np.int64) + offset).astype(np.float32)  # exact: |A| < 2^24
    big_b = (np.asarray(b, dtype=np.int64) + offset).astype(np.float32)
    v = float32_fma(big_a, r_a, float32_fma(big_b, r_b, fixed))
    return np.clip(np.rint(v).astype(np.int64), qmin + offset, qmax + offset) - offset


FLOAT64_MULTIPLIER_RANGE = (1 << 52, 1 << 53)
"""The FLOAT64 variant's ``m``: a double's 53-bit significand (every other variant's is 31-bit)."""

FLOAT64_SHIFT_RANGE = (53, 1074)
"""Shifts ``n`` of the FLOAT64 variant: ``E = m * 2^-n < 2^(53 - n) <= 1``, so that ``acc * E`` of
an int32 accumulator stays inside int32 (TFLite casts it to int32), and ``E`` is a normal double
(``2^(52 - n) >= 2^-1022``)."""


def float64_multiplier(scale) -> tuple[np.ndarray, np.ndarray]:
    """Encode positive normal doubles exactly as ``(m, n)`` with ``m`` in ``[2^52, 2^53)``.

    >>> m, n = float64_multiplier(0.1)
    >>> int(m), int(n), float(np.ldexp(float(m), -int(n))) == 0.1
    (7205759403792794, 56, True)
    """
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(scale)) or np.any(scale < np.finfo(np.float64).tiny):
        raise ProgramError(f"float64 scales must be normal and positive, got {scale!r}")
    mantissa, exponent = np.frexp(scale)
    return np.ldexp(mantissa, 53).astype(np.int64), 53 - exponent.astype(np.int64)


def round_half_away(v) -> np.ndarray:
    """C's ``round`` of doubles: to nearest, ties away from zero, exactly (``v - trunc(v)`` is
    exact; ``floor(|v| + 0.5)`` is not: it takes 0.49999999999999994 to 1)."""
    v = np.asarray(v, dtype=np.float64)
    whole = np.trunc(v)
    fraction = v - whole
    return (whole + (fraction >= 0.5) - (fraction <= -0.5)).astype(np.int64)


def float64_requantize(acc, multiplier, shift, zero_point: int, qmin: int, qmax: int, channel_axis: int = 1) -> np.ndarray:
    """The FLOAT64 variant, equations (31)-(32), TFLite's reference int8 ``FULLY_CONNECTED``
    (``tflite/kernels/internal/reference/integer_ops/fully_connected.h``, the ``FullyConnected`` and
    ``FullyConnectedPerChannel`` overloads that take the float scales, which
    ``FullyConnectedInt8<kReference>`` and ``FullyConnectedPerChannelInt8<kReference>`` of
    ``tflite/kernels/fully_connected.cc`` call):

    (31) ``v = float64(float64(acc) * E)``, ``E = m * 2^-n`` the double
    ``double(s_x) * double(s_w[c]) / double(s_y)``, one IEEE product;
    (32) ``q = clamp(round_half_away(v) + z, qmin, qmax)``.

    It rounds once, where GEMMLOWP (10)-(13) rounds twice: ``acc = 10272`` by
    ``M = 2113959146 * 2^-39`` is 39.4986, 39 here, but (11) gives ``h = 10112`` and (12) takes
    ``10112 / 2^8 = 39.5`` away from zero to 40 (measured on LiteRT's reference kernel). Ties
    (here ``E = 2^-8``) go away from zero.

    >>> float64_requantize(np.array([[128, -128, 127, 10112]]), [1 << 52], [60], 0, -128, 127).tolist()
    [[1, -1, 0, 40]]
    """
    acc = np.asarray(acc, dtype=np.int64)
    scale = _per_channel_float(dyadic_value(multiplier, shift), acc.ndim, channel_axis)
    return np.clip(round_half_away(acc.astype(np.float64) * scale) + zero_point, qmin, qmax)


TFLITE_ADD_LEFT_SHIFT = 20
"""The left shift (21) of TFLite's int8 ``ADD`` (``data->left_shift = 20`` in
``tensorflow/lite/kernels/add.cc``; 15 for int16, which is not modelled)."""

TFLITE_ADD_SHIFT_RANGE = (31, 62)
"""Shifts ``n`` of TFLite's ``ADD`` multipliers: ``QuantizeMultiplierSmallerThanOneExp`` gives
exponents ``e = 31 - n <= 0`` only (every multiplier is below 1), and (12) needs ``r <= 31``."""

TFLITE_AVGPOOL_MULTIPLIER = (1 << 30, 30)
"""The one requantizer entry a TFLITE_AVGPOOL average carries and does not read: ``M = 1``."""


def rounding_divide(t, count: int) -> np.ndarray:
    """Equation (26), TFLite's integer average: ``t / count`` rounded half away from zero, as the
    C ``t > 0 ? (t + count / 2) / count : (t - count / 2) / count`` with truncating division
    (``count`` >= 1; an odd ``count`` has no ties).

    >>> rounding_divide(np.array([5, 6, 7, -5, -6, -7, 0]), 4).tolist()
    [1, 2, 2, -1, -2, -2, 0]
    """
    t = np.asarray(t, dtype=np.int64)
    half = np.int64(count // 2)
    magnitude = (np.abs(t) + half) // np.int64(count)
    return np.where(t > 0, magnitude, -magnitude)


def _multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """(10)-(12) without offset or clamp: TFLite's ``MultiplyByQuantizedMultiplier(x, m, 31 - n)``
    of int32 values (the caller keeps ``x * 2^l`` within int32)."""
    e = 31 - np.asarray(shift, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64) << np.maximum(e, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), np.maximum(-e, 0))


def tflite_add(a, b, multiplier, shift, zero_a: int, zero_b: int, zero_c: int, qmin: int, qmax: int) -> np.ndarray:
    """The TFLITE_ADD variant, equations (21)-(24), TFLite's int8 ``ADD``
    (``tensorflow/lite/kernels/internal/reference/integer_ops/add.h``, ``AddFunc``): levels ``a``,
    ``b`` (int64 arrays of one shape) in, output levels out. ``multiplier`` and ``shift`` hold the
    three pairs ``(m_a, n_a)``, ``(m_b, n_b)``, ``(m_c, n_c)``, each ``n`` in
    :data:`TFLITE_ADD_SHIFT_RANGE`. With ``L = 20``:

    (21) ``x_a = (a - z_a) * 2^L``, ``x_b = (b - z_b) * 2^L``;
    (22) ``y_a = RDBPOT(SRDHM(x_a, m_a), n_a - 31)``, ``y_b`` the same with ``m_b, n_b``;
    (23) ``t = y_a + y_b``;
    (24) ``q = clamp(RDBPOT(SRDHM(t, m_c), n_c - 31) + z_c, qmin, qmax)``.

    For 8-bit levels ``|x| < 2^28`` and ``|t| < 2^29``: nothing leaves int32.

    >>> tflite_add(np.array([10, -3]), np.array([4, 4]), [1 << 30] * 3, [31, 32, 51], 0, 0, 0, -128, 127).tolist()
    [3, 0]
    """
    m = np.asarray(multiplier, dtype=np.int64)
    n = np.asarray(shift, dtype=np.int64)
    y_a = _multiply_by_quantized_multiplier((np.asarray(a, dtype=np.int64) - zero_a) << TFLITE_ADD_LEFT_SHIFT, m[0], n[0])
    y_b = _multiply_by_quantized_multiplier((np.asarray(b, dtype=np.int64) - zero_b) << TFLITE_ADD_LEFT_SHIFT, m[1], n[1])
    return np.clip(_multiply_by_quantized_multiplier(y_a + y_b, m[2], n[2]) + zero_c, qmin, qmax)


def tflite_avgpool(acc, count: int, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """The TFLITE_AVGPOOL variant, equations (25)-(27), TFLite's int8 ``AVERAGE_POOL_2D``
    (``tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h``, ``AveragePool``) on a
    window of ``count`` levels without padding, whose input and output share the zero-point ``z``
    (TFLite requires it). From the program's centred sum ``acc = sum (x - z)`` (D.11):

    (25) ``S = acc + count * z``, the sum of the window's levels;
    (26) ``d = rounding_divide(S, count)``, half away from zero;
    (27) ``q = clamp(d, qmin, qmax)``.

    The zero-point is inside the rounding: with ``z = 1``, ``acc = -2`` gives ``S / count = 1/2``,
    hence 1, where ``-2 / 4`` rounded, plus ``z``, would be 0.

    >>> tflite_avgpool(np.array([-2, 2, -6]), 4, 1, -128, 127).tolist()
    [1, 2, -1]
    """
    total = np.asarray(acc, dtype=np.int64) + np.int64(count) * zero_point
    return np.clip(rounding_divide(total, count), qmin, qmax)


def tflite_mean_multiplier(count: int, multiplier, shift) -> tuple[np.ndarray, np.ndarray]:
    """Equations (28)-(29): the multiplier of ``M / count`` that TFLite's int8 ``MEAN`` derives at
    run time from the pair ``(m, n)`` of ``M = s_x / s_y`` and the count of levels averaged.
    With TFLite's exponent ``e = 31 - n``:

    (28) ``k = min(floor(log2(count)), 32, 31 + e)``;
    (29) ``m' = floor(m * 2^k / count)``, ``n' = n + k`` (``m'`` in ``[2^29, 2^31)``: not normalised).

    >>> [v.tolist() for v in tflite_mean_multiplier(3, [1 << 30], [31])]
    [[715827882], [32]]
    """
    m = np.asarray(multiplier, dtype=np.int64)
    n = np.asarray(shift, dtype=np.int64)
    k = np.minimum(min(int(count).bit_length() - 1, 32), 62 - n)  # 31 + e = 62 - n
    return (m << k) // np.int64(count), n + k


def tflite_mean_left_shift(count: int, shift: int) -> int:
    """The left shift ``max(31 - n', 0)`` of (30): the program keeps ``|acc| * 2^l`` within int32."""
    _, n = tflite_mean_multiplier(count, [1 << 30], [shift])
    return max(31 - int(n[0]), 0)


def tflite_mean(acc, count: int, multiplier, shift, zero_point: int, qmin: int, qmax: int, channel_axis: int = 1) -> np.ndarray:
    """The TFLITE_MEAN variant, equations (28)-(30), TFLite's int8 ``MEAN`` in LiteRT's reference
    kernel (``tflite/kernels/internal/reference/reduce.h``, ``QuantizedMeanOrSum``, reached from
    ``EvalQuantizedMean`` in ``tflite/kernels/reduce.cc``; ``M = s_x / s_y`` from
    ``PrepareMeanOrSum``). From the program's centred sum ``acc = sum (x - z_x)`` over
    ``count = H * W`` levels (D.12), with ``(m', n')`` of :func:`tflite_mean_multiplier`:

    (30) ``q = clamp(MultiplyByQuantizedMultiplier(acc, m', 31 - n') + z_y, qmin, qmax)``, that is
    (10)-(13) with ``m'``.

    The count is folded into the multiplier by an integer division, so ``m' * 2^-n'`` is
    ``M / count`` only to about ``2^-29`` relative.

    >>> tflite_mean(np.array([[6, -6, 7]]), 4, [1 << 30], [31], 0, -128, 127).tolist()
    [[1, -1, 1]]
    """
    acc = np.asarray(acc, dtype=np.int64)
    m, n = tflite_mean_multiplier(count, multiplier, shift)
    return gemmlowp_requantize(acc, m, n, zero_point, qmin, qmax, channel_axis)


def requantize_variant(variant: RequantVariant, acc, multiplier, shift, frac_bits: int, borders, zero_point: int,
                       qmin: int, qmax: int, channel_axis: int = 1) -> np.ndarray:
    """The requantizer of ``variant``: (6)-(8) for BORDER (with ``frac_bits`` and ``borders``),
    (10)-(13) for GEMMLOWP, (14)-(16) for FP32, (31)-(32) for FLOAT64 (which ignore the border
    table). FP32_ADD reads the
    two inputs, not an accumulator: :func:`fp32_add`."""
    if variant is RequantVariant.FP32_ADD:
        raise ProgramError("variant 'fp32_add' requantizes no accumulator: call rounding.fp32_add with the add's two inputs")
    if variant is RequantVariant.TFLITE_ADD:
        raise ProgramError("variant 'tflite_add' requantizes no accumulator: call rounding.tflite_add with the add's two inputs")
    if variant in (RequantVariant.TFLITE_AVGPOOL, RequantVariant.TFLITE_MEAN):
        raise ProgramError(f"variant '{variant.value}' divides by the window size: call rounding.tflite_avgpool or rounding.tflite_mean")
    if variant is RequantVariant.BORDER:
        return requantize(acc, multiplier, shift, frac_bits, borders, zero_point, qmin, qmax, channel_axis)
    if variant is RequantVariant.GEMMLOWP:
        return gemmlowp_requantize(acc, multiplier, shift, zero_point, qmin, qmax, channel_axis)
    if variant is RequantVariant.FLOAT64:
        return float64_requantize(acc, multiplier, shift, zero_point, qmin, qmax, channel_axis)
    return fp32_requantize(acc, multiplier, shift, zero_point, qmin, qmax, channel_axis)
