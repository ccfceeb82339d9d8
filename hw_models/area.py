"""Area of the accelerator (um^2, 45 nm), from ``costs.py``'s figures and assumptions.

- PE array: R x C PEs, each an ``operand_bits`` multiplier, an accumulator-wide adder and its
  registers (two operands and one partial sum, flip-flops).
- SRAM: the three buffers' bits at the cell area times the periphery factor (A5).
- Vector unit: one accumulator-wide adder per lane.
- Requantizer: per lane, one circuit for each rule the program's requantizers use
  (``requant_variants.lane_um2``; this project's (6)-(8): an A x 31-bit multiplier and an A-bit
  adder; a program without requantizers, or no program, counts that one), and the rounding
  incrementer (listed under the border unit's figures, shared by both designs).
- Border unit: ``border_unit.border_unit_area``; only its overhead differs between designs.
"""

from __future__ import annotations

from dataclasses import dataclass

from aquant_sim.rounding import RequantVariant
from hw_models.border_unit import BorderUnitArea
from hw_models.config import AcceleratorConfig
from hw_models.requant_variants import lane_um2


@dataclass(frozen=True)
class AreaBreakdown:
    pe_array: float
    sram: float
    vector: float
    requantizer: float
    """Including the rounding incrementers that RTN and AQuant share."""
    border_overhead: float
    """Table storage, comparators and selects: zero for an RTN design."""

    @property
    def total(self) -> float:
        return self.pe_array + self.sram + self.vector + self.requantizer + self.border_overhead


def accelerator_area(config: AcceleratorConfig, border: BorderUnitArea,
                     variants=frozenset({RequantVariant.BORDER})) -> AreaBreakdown:
    """The area with a requantizer lane circuit for each rule in ``variants`` (empty: BORDER's)."""
    costs, array = config.costs, config.array
    ob, acc = array.operand_bits, array.accumulator_bits
    pe = costs.mul_um2(ob, ob) + costs.add_um2(acc) + (2 * ob + acc) * costs.flipflop_um2
    sram_bits = 8 * (config.memory.ifmap_bytes + config.memory.filter_bytes + config.memory.ofmap_bytes)
    lanes = config.border_unit.lanes
    rules = sorted(variants or {RequantVariant.BORDER}, key=lambda v: v.value)
    requant = lanes * sum(lane_um2(v, costs, acc) for v in rules) + border.incrementers_um2
    return AreaBreakdown(
        pe_array=array.rows * array.cols * pe, sram=sram_bits * costs.sram_um2_per_bit,
        vector=config.vector.lanes * costs.add_um2(acc), requantizer=requant, border_overhead=border.overhead_um2,
    )
