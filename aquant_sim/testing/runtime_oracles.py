"""The runtimes' requantizers transcribed element by element in plain Python integers and
IEEE float32 (through ``struct``), as their C sources write them: the oracles that the
conformance kit holds every implementation of the variants (10)-(16) to.

They are deliberately not vectorised and share no code with :mod:`aquant_sim.rounding`, so that
an error in the numpy form (an int64 shift, a rounding mode) cannot hide in both.

* :func:`tflite_requantize`: ``tensorflow/lite/kernels/internal/common.h``,
  ``MultiplyByQuantizedMultiplier`` (the default double-rounding build), which calls gemmlowp's
  ``fixedpoint/fixedpoint.h`` ``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT``;
  then the output offset and the activation clamp of the integer conv kernels
  (``tensorflow/lite/kernels/internal/reference/integer_ops/conv.h``).
* :func:`mlas_requantize`: ONNX Runtime's ``onnxruntime/core/mlas/lib/quantize.cpp``,
  ``MlasRequantizeOutput``: ``_mm_cvtepi32_ps``, ``_mm_mul_ps``, clamp, ``_mm_cvtps_epi32``
  (round to nearest even), plus the zero-point.
* :func:`mlas_qlinear_add`: ONNX Runtime's
  ``onnxruntime/core/mlas/lib/intrinsics/avx2/qladd_avx2.cpp``, ``MlasQLinearAddKernelAvx2Helper``
  (two inputs of the same length): the fixed part, ``_mm256_fmadd_ps`` twice,
  ``_mm256_cvtps_epi32`` and the saturating packs. Each fused multiply-add is computed in exact
  rational arithmetic (``fractions.Fraction``) and rounded once to float32.
* :func:`tflite_fully_connected`: LiteRT's
  ``tflite/kernels/internal/reference/integer_ops/fully_connected.h``, the float-scale
  ``FullyConnected`` / ``FullyConnectedPerChannel`` output stage: ``round(double(acc) * scale)``.
* :func:`tflite_add`: TFLite's ``tensorflow/lite/kernels/internal/reference/integer_ops/add.h``,
  ``AddFunc`` (int8), with ``MultiplyByQuantizedMultiplierSmallerThanOneExp`` of ``common.h``.
* :func:`tflite_average_pool`: ``tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h``,
  ``AveragePool`` (int8) on one unpadded window.
* :func:`tflite_mean`: LiteRT's ``tflite/kernels/internal/reference/reduce.h``,
  ``QuantizedMeanOrSum`` (int8, the mean) on one channel's values.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _c_divide(a: int, b: int) -> int:
    """C's integer division: truncation toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _int32(x: int) -> int:
    """Two's-complement wrap to int32 (what the compiled int32 multiply does)."""
    return (x - INT32_MIN) % (1 << 32) + INT32_MIN


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul(int32 a, int32 b)``."""
    overflow = a == b == INT32_MIN
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    high = _c_divide(ab + nudge, 1 << 31)
    return INT32_MAX if overflow else high


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp ``RoundingDivideByPOT(int32 x, int exponent)``, exponent in [0, 31]."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def tflite_requantize(acc: int, multiplier: int, shift: int, zero_point: int, qmin: int, qmax: int) -> int:
    """TFLite's output stage for an accumulator: ``MultiplyByQuantizedMultiplier(acc, m, e)`` with
    TFLite's exponent ``e = 31 - n`` (this project's ``M = m * 2^-n``), plus the output offset,
    clamped to the activation range."""
    e = 31 - shift
    left, right = max(e, 0), max(-e, 0)
    x = _int32(acc * (1 << left))
    y = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)
    return min(max(y + zero_point, qmin), qmax)


def _float32(x: float) -> float:
    """Round a Python float (float64) to the nearest float32, ties to even; beyond the float32
    range, an infinity (IEEE overflow)."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def mlas_requantize(acc: int, multiplier: int, shift: int, zero_point: int, qmin: int, qmax: int) -> int:
    """MLAS's output stage: ``float(acc)`` and the product rounded to float32 (the product of two
    float32 values is exact in float64, so rounding it once is the float32 multiply), clamped to
    ``[qmin - z, qmax - z]``, rounded to nearest even, plus the zero-point."""
    scale = _float32(multiplier * 2.0**-shift)
    value = _float32(_float32(float(acc)) * scale)
    value = min(max(value, float(qmin - zero_point)), float(qmax - zero_point))
    return round(value) + zero_point


def _float32_neighbours(x: float) -> list[float]:
    """A finite float32 and the float32 values just below and above it: its bits as an ordinal
    (negative values mirrored, so that consecutive ordinals are consecutive floats), plus or minus 1."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    ordinal = -(bits & 0x7FFFFFFF) if bits >> 31 else bits
    neighbours = []
    for o in (ordinal - 1, ordinal, ordinal + 1):
        neighbours.append(struct.unpack("<f", struct.pack("<I", o if o >= 0 else 0x80000000 | -o))[0])
    return neighbours


def _round_float32(value: Fraction) -> float:
    """The float32 nearest to an exact rational, ties to the even significand (IEEE round to
    nearest), for values inside the float32 range: ``float(value)`` rounds once to float64, its
    float32 rounding is at most one float32 step away (a double rounding), so the answer is one
    of that value and its two float32 neighbours, compared exactly."""
    def key(c: float):
        return abs(Fraction(c) - value), struct.unpack("<I", struct.pack("<f", c))[0] & 1

    return min(_float32_neighbours(_float32(float(value))), key=key)


def _fmadd(x: float, y: float, z: float) -> float:
    """``_mm256_fmadd_ps`` on one lane: ``x * y + z`` exactly, rounded once to float32."""
    return _round_float32(Fraction(x) * Fraction(y) + Fraction(z))


def mlas_qlinear_add(a: int, b: int, ratio_a: float, ratio_b: float, zero_a: int, zero_b: int, zero_c: int,
                     qmin: int, qmax: int) -> int:
    """One output of MLAS's AVX2 ``QLinearAdd`` on the runtime's own levels and zero-points (the
    caller adds onnxruntime's offset): ``ScaleRatio_AC``, ``ScaleRatio_BC`` are the float32
    ratios; ``VectorFixedPart = (float)ZeroPointC - (ScaleRatio_AC * ZeroPointA + ScaleRatio_BC *
    ZeroPointB)``, whose inner sum the compiler contracts to ``fma(ScaleRatio_AC, ZeroPointA,
    ScaleRatio_BC * ZeroPointB)``; then ``fmadd(b, ratio_b, fixed)`` and ``fmadd(a, ratio_a, .)``,
    ``_mm256_cvtps_epi32`` (nearest even) and saturation to ``[qmin, qmax]`` by the packs."""
    product_b = _float32(ratio_b * float(zero_b))
    fixed = _float32(float(zero_c) - _fmadd(ratio_a, float(zero_a), product_b))
    value = _fmadd(float(a), ratio_a, _fmadd(float(b), ratio_b, fixed))
    return min(max(round(value), qmin), qmax)


def _multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLite's ``MultiplyByQuantizedMultiplier(x, m, e)`` with ``e = 31 - n``: the left shift in
    int32 (wrapping as the compiled multiply does), the high multiply, the rounding shift."""
    e = 31 - shift
    x = _int32(x * (1 << max(e, 0)))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), max(-e, 0))


def _average(total: int, count: int) -> int:
    """TFLite's ``acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count``."""
    return _c_divide(total + count // 2, count) if total > 0 else _c_divide(total - count // 2, count)


def tflite_add(a: int, b: int, multipliers, shifts, zero_a: int, zero_b: int, zero_c: int, qmin: int, qmax: int) -> int:
    """TFLite's int8 ``AddFunc``: ``input_offset = -z``, ``left_shift = 20``, each shifted input
    through ``MultiplyByQuantizedMultiplierSmallerThanOneExp`` with its own multiplier, the int32
    sum through the output's, plus the output offset, clamped to the activation range."""
    scaled = [_multiply_by_quantized_multiplier(_int32((v - z) * (1 << 20)), m, n)
              for v, z, m, n in ((a, zero_a, multipliers[0], shifts[0]), (b, zero_b, multipliers[1], shifts[1]))]
    raw = _multiply_by_quantized_multiplier(_int32(scaled[0] + scaled[1]), multipliers[2], shifts[2]) + zero_c
    return min(max(raw, qmin), qmax)


def tflite_average_pool(window, qmin: int, qmax: int) -> int:
    """TFLite's int8 ``AveragePool`` on one window of levels (every position in bounds): the sum
    of the levels, rounded division by their count, clamped to the activation range."""
    return min(max(_average(sum(window), len(window)), qmin), qmax)


def tflite_mean(values, zero_in: int, multiplier: int, shift: int, zero_out: int, qmin: int, qmax: int) -> int:
    """LiteRT's reference int8 ``QuantizedMeanOrSum`` (``compute_sum`` false) on one channel's
    values: the count folded into the multiplier (``shift = 63 - clz(count)``, at most 32 and
    ``31 + e``; ``m' = (int64(m) << shift) / count``, ``e' = e - shift``), then
    ``MultiplyByQuantizedMultiplier`` of ``sum - z_in * count``, plus ``z_out``, clamped."""
    count = len(values)
    e = 31 - shift
    k = min(count.bit_length() - 1, 32, 31 + e)
    m = _int32(_c_divide(multiplier << k, count))
    acc = sum(values) - zero_in * count
    return min(max(_multiply_by_quantized_multiplier(acc, m, 31 - (e - k)) + zero_out, qmin), qmax)


def tflite_fully_connected(acc: int, multiplier: int, shift: int, zero_point: int, qmin: int, qmax: int) -> int:
    """TFLite's reference int8 fully-connected output stage: ``static_cast<int32_t>(round(
    static_cast<double>(acc) * effective_output_scale))`` (C ``round``: half away from zero), plus
    the output offset, clamped; ``effective_output_scale = m * 2^-n`` exactly (a double)."""
    value = float(acc) * math.ldexp(float(multiplier), -shift)
    whole = math.trunc(value)
    rest = Fraction(value) - whole
    rounded = whole + (1 if rest >= Fraction(1, 2) else -1 if rest <= Fraction(-1, 2) else 0)
    return min(max(rounded + zero_point, qmin), qmax)
