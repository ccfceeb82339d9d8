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
"""

from __future__ import annotations

import math
import struct

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
