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
