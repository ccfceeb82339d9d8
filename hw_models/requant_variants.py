"""What each requantizer variant (``rounding.RequantVariant``, docs/contract.md 2.1) costs per
element and per lane: the rule a program's requantizer records decides the circuit that runs it.

This project's BORDER requantizer (6)-(8) is an ``A x 31`` multiply by ``m``, a shift-and-offset
add at the accumulator width and the rounding incrementer at the output width (the incrementer's
area is counted with the border unit, shared by every design). An imported program records its
runtime's rule, which another circuit computes. Each variant below is written as the primitives of
``costs.py`` its equations use; the integer ones are read off the equations, the float ones use
Horowitz's float32 figures. Marked **estimate** where a primitive has no published cost and
stands in for another:

- GEMMLOWP (10)-(13): a ``32 x 31`` multiply (the saturating rounding doubling high multiply of an
  int32 by the Q31 ``m``), its nudge added to the 64-bit product (a 64-bit add, **estimate**: A1
  extrapolated past 32 bits), the rounding right shift's remainder compare and round add (two
  32-bit adds), the zero-point add at the output width.
- TFLITE_MEAN (28)-(30): one GEMMLOWP rule on the centred sum (the count folds into ``m``).
- TFLITE_ADD (21)-(24): three GEMMLOWP rules (each input, then the sum) and the 32-bit sum; it
  replaces the residual add's integer-weight multiplies (D.9), which the vector unit then skips.
- TFLITE_AVGPOOL (25)-(27): a division by the window size, costed as a multiply by its reciprocal
  (``32 x 32``) and a 32-bit rounding add (**estimate**: a divider by a layer constant built so).
- FP32 (14)-(16): the conversion of the int32 accumulator to float32 and of the product back to an
  integer, each costed as a 32-bit add (**estimate**: a leading-zero count and a normalising shift,
  or the round-to-even of the shifted-out bits), one float32 multiply (Horowitz), the zero-point
  add at the output width.
- FP32_ADD (17)-(20): two input conversions and one output conversion (32-bit adds, **estimate**),
  two fused multiply-adds, each costed as a float32 multiply and a float32 add (**estimate**: an
  unfused pair, an upper bound for one fused unit), the offset at the output width; like
  TFLITE_ADD it replaces the add's integer-weight multiplies.
- FLOAT64 (31)-(32): two conversions at 64 bits (**estimate**, 64-bit adds), a ``53 x 53``
  significand multiply (**estimate**: A2 extrapolated past 32 x 32; Horowitz gives no float64
  figure) and an 11-bit exponent add, the round-half-away add at 64 bits and the zero-point add.

The runtimes' integer rules work on int32 whatever the array's accumulator width, so they are
costed at 32 bits; BORDER at the program's ``A``.
"""

from __future__ import annotations

from aquant_sim.rounding import MULTIPLIER_BITS, RequantVariant
from hw_models.costs import TechnologyCosts

RUNTIME_BITS = 32
"""The runtimes' integer requantizers compute in int32 (and int64 for the high multiply)."""
FLOAT64_SIGNIFICAND_BITS = 53
FLOAT64_EXPONENT_BITS = 11

COMBINES_INPUTS = frozenset({RequantVariant.FP32_ADD, RequantVariant.TFLITE_ADD})
"""Variants that combine an add's two inputs themselves: the add's D.9 integer-weight multiplies
are not performed (the vector unit charges the add nothing but the requantizer)."""


def _gemmlowp_pj(costs: TechnologyCosts) -> float:
    """(10)-(12) without the zero-point: high multiply, its nudge, the rounding shift's compare and add."""
    return costs.mul_pj(RUNTIME_BITS, MULTIPLIER_BITS) + costs.add_pj(2 * RUNTIME_BITS) + 2 * costs.add_pj(RUNTIME_BITS)


def _gemmlowp_um2(costs: TechnologyCosts) -> float:
    return costs.mul_um2(RUNTIME_BITS, MULTIPLIER_BITS) + costs.add_um2(2 * RUNTIME_BITS) + 2 * costs.add_um2(RUNTIME_BITS)


def element_pj(variant: RequantVariant, costs: TechnologyCosts, accumulator_bits: int, output_bits: int) -> float:
    """Energy (pJ) of requantizing one element by ``variant`` (module docstring), the final
    zero-point or rounding add at ``output_bits`` included."""
    out = costs.add_pj(output_bits)
    if variant is RequantVariant.BORDER:
        return costs.mul_pj(accumulator_bits, MULTIPLIER_BITS) + costs.add_pj(accumulator_bits) + out
    if variant in (RequantVariant.GEMMLOWP, RequantVariant.TFLITE_MEAN):
        return _gemmlowp_pj(costs) + out
    if variant is RequantVariant.TFLITE_ADD:
        return 3 * _gemmlowp_pj(costs) + costs.add_pj(RUNTIME_BITS) + out
    if variant is RequantVariant.TFLITE_AVGPOOL:
        return costs.mul_pj(RUNTIME_BITS, RUNTIME_BITS) + costs.add_pj(RUNTIME_BITS) + out
    if variant is RequantVariant.FP32:
        return 2 * costs.add_pj(RUNTIME_BITS) + costs.fmul32_pj + out
    if variant is RequantVariant.FP32_ADD:
        return 3 * costs.add_pj(RUNTIME_BITS) + 2 * (costs.fmul32_pj + costs.fadd32_pj) + out
    if variant is RequantVariant.FLOAT64:
        return (3 * costs.add_pj(2 * RUNTIME_BITS) + costs.mul_pj(FLOAT64_SIGNIFICAND_BITS, FLOAT64_SIGNIFICAND_BITS)
                + costs.add_pj(FLOAT64_EXPONENT_BITS) + out)
    raise ValueError(f"no requantizer cost for variant {variant!r}")


def lane_um2(variant: RequantVariant, costs: TechnologyCosts, accumulator_bits: int) -> float:
    """Area (um^2) of one requantizer lane for ``variant``, without the output-width incrementer
    (``border_unit.BorderUnitArea.incrementers_um2`` counts it once per lane for every design)."""
    if variant is RequantVariant.BORDER:
        return costs.mul_um2(accumulator_bits, MULTIPLIER_BITS) + costs.add_um2(accumulator_bits)
    if variant in (RequantVariant.GEMMLOWP, RequantVariant.TFLITE_MEAN):
        return _gemmlowp_um2(costs)
    if variant is RequantVariant.TFLITE_ADD:
        return 3 * _gemmlowp_um2(costs) + costs.add_um2(RUNTIME_BITS)
    if variant is RequantVariant.TFLITE_AVGPOOL:
        return costs.mul_um2(RUNTIME_BITS, RUNTIME_BITS) + costs.add_um2(RUNTIME_BITS)
    if variant is RequantVariant.FP32:
        return 2 * costs.add_um2(RUNTIME_BITS) + costs.fmul32_um2
    if variant is RequantVariant.FP32_ADD:
        return 3 * costs.add_um2(RUNTIME_BITS) + 2 * (costs.fmul32_um2 + costs.fadd32_um2)
    if variant is RequantVariant.FLOAT64:
        return (3 * costs.add_um2(2 * RUNTIME_BITS) + costs.mul_um2(FLOAT64_SIGNIFICAND_BITS, FLOAT64_SIGNIFICAND_BITS)
                + costs.add_um2(FLOAT64_EXPONENT_BITS))
    raise ValueError(f"no requantizer area for variant {variant!r}")
