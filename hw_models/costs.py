"""The technology cost table: every energy and area constant of the hardware models, in one file,
each with its source and units.

Published figures (M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, 45 nm, 0.9 V; the table as reproduced in W. Dally's and S. Han's talks):

    8-bit integer add        0.03 pJ     36 um^2
    32-bit integer add       0.1  pJ    137 um^2
    8-bit integer multiply   0.2  pJ    282 um^2
    32-bit integer multiply  3.1  pJ   3495 um^2
    32-bit float add         0.9  pJ   4184 um^2
    32-bit float multiply    3.7  pJ   7700 um^2
    64-bit read, 8 KB SRAM   10   pJ
    64-bit read, 32 KB SRAM  20   pJ
    64-bit DRAM access       1.3-2.6 nJ

Area figures for adders and multipliers (36, 137, 282, 3495 um^2; the float ones 4184 and 7700): the table as reproduced in
Dally's and Han's talks, attributed there to Horowitz; his paper's table is of energies, and the
areas were not checked against a primary source here: treat them as estimates. Their derivation
check, from the Nangate cells below (``tests/hw_models/test_costs.py`` computes it): an n-bit
ripple-carry adder is n full adders, 8 x FA_X1 = 34.0 um^2 against the quoted 36 (-5.4%) and
32 x FA_X1 = 136.2 against 137 (-0.6%); an n x n array multiplier has n (n - 1) full adders
besides its n^2 AND gates, 56 x FA_X1 = 238 um^2 for 8 bits (the quoted 282 leaves 44 um^2, 0.7
um^2 a partial-product gate) and 992 x FA_X1 = 4,222 for 32 bits, 21% above the quoted 3,495:
at 32 bits the quoted figure fits a Booth-recoded multiplier (about half the partial-product
rows), not an array, so the 32-bit multiplier area is the least certain constant here.

Standard cells, read from the Nangate 45 nm Open Cell Library's LEF (``SIZE`` width x the 1.4 um
row height; ``NangateOpenCellLibrary.macro.mod.lef``, the copy OpenROAD ships as
``test/Nangate45/Nangate45_stdcell.lef``): DFF_X1 3.23 x 1.4 = 4.522 um^2, MUX2_X1 1.33 x 1.4 =
1.862, FA_X1 3.04 x 1.4 = 4.256, INV_X1 0.38 x 1.4 = 0.532, BUF_X2 0.76 x 1.4 = 1.064, AND4_X1
1.14 x 1.4 = 1.596, DLH_X1 (latch) 1.9 x 1.4 = 2.66, CLKGATE_X1 2.47 x 1.4 = 3.458.

SRAM cell: 0.37 um^2, a 45 nm bulk 6T cell (K. Nii et al., "A cost-effective 45nm 6T-SRAM ...",
ISQED 2013, abstract).

**Assumptions** (no source; each is written where it is used, and here):

- A1. Adders scale linearly in width through the two published points (8 and 32 bits): ripple
  and prefix adders of one family grow about linearly in energy and area per bit.
- A2. Multipliers scale as a power of the product of the operand widths, fitted through the
  8x8 and 32x32 points (exponent ~0.99 for energy, ~0.91 for area): an array multiplier has
  ``bw * ba`` partial-product cells. Mixed widths (4x8) use the product.
- A3. SRAM read or write energy per bit scales as ``size^0.5`` through the 8 KB and 32 KB
  points (wire length grows with the side of the array); it over-estimates Horowitz's 1 MB
  figure (100 pJ) by 13 %. Writes cost what reads cost.
- A4. DRAM costs the midpoint of the published range, 1.95 nJ per 64 bits.
- A5. An operand-buffer SRAM bit costs the 6T cell times 1.5 for decoders, sense amplifiers and
  wiring (the border tables' small banks count their periphery instead, A9).
- A6. Reading or writing a flip-flop bit (border-table registers, row registers) costs what a
  bit of an 8 KB SRAM read costs (an upper bound for storage far smaller than 8 KB).
- A7. A comparator's energy is an adder's of its width (it is a subtractor's carry chain).
- A8. A multiplexer bit costs one MUX2_X1 per 2:1 stage (a K-entry select is K - 1 of them).
- A9. A small SRAM bank of ``words x width`` bits (``sram_bank_um2``) is its cells plus the
  periphery counted in Nangate cells: per word line a decoder gate and a driver (AND4_X1 +
  BUF_X2), per bit line a precharge, a sense amplifier and a write driver (INV_X1 + DLH_X1 +
  BUF_X2), per bank an address and control register (``ceil(log2 words) + 2`` DFF_X1). Wiring,
  predecoders and timing control are not counted (as for every area here): a lower bound.
- A10. A comparator of n bits is n full adders with one inverted input (n FA_X1 + n INV_X1: the
  carry chain of a subtractor, whose carry out is the comparison).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from aquant_sim.errors import ConfigError

KIB = 1024


def check_positive(section: str, name: str, value) -> None:
    """Raise :class:`ConfigError` naming ``section.name`` unless ``value`` is a finite positive
    number (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{section}.{name}: must be a finite positive number, got {value!r}")


@dataclass(frozen=True)
class TechnologyCosts:
    """Energy (pJ) and area (um^2) of the primitives, 45 nm; see the module docstring for sources
    (Horowitz ISSCC 2014 unless said otherwise) and the assumptions A1-A8."""

    add8_pj: float = 0.03
    """8-bit integer add, Horowitz 2014."""
    add32_pj: float = 0.1
    """32-bit integer add, Horowitz 2014."""
    mul8_pj: float = 0.2
    """8-bit integer multiply, Horowitz 2014."""
    mul32_pj: float = 3.1
    """32-bit integer multiply, Horowitz 2014."""
    fadd32_pj: float = 0.9
    """32-bit float add, Horowitz 2014 (the runtimes' float32 requantizers, ``requant_variants.py``)."""
    fmul32_pj: float = 3.7
    """32-bit float multiply, Horowitz 2014."""
    sram8k_read64_pj: float = 10.0
    """64-bit read of an 8 KB SRAM, Horowitz 2014."""
    sram32k_read64_pj: float = 20.0
    """64-bit read of a 32 KB SRAM, Horowitz 2014."""
    dram_access64_pj: float = 1950.0
    """64-bit DRAM access: midpoint of Horowitz's 1.3-2.6 nJ (assumption A4)."""
    add8_um2: float = 36.0
    """8-bit integer adder area, Horowitz 2014."""
    add32_um2: float = 137.0
    """32-bit integer adder area, Horowitz 2014."""
    mul8_um2: float = 282.0
    """8-bit integer multiplier area, Horowitz 2014."""
    mul32_um2: float = 3495.0
    """32-bit integer multiplier area, Horowitz 2014."""
    fadd32_um2: float = 4184.0
    """32-bit float adder area, Horowitz 2014 (as reproduced, like the integer areas)."""
    fmul32_um2: float = 7700.0
    """32-bit float multiplier area, Horowitz 2014 (as reproduced)."""
    sram_cell_um2: float = 0.37
    """6T SRAM cell, 45 nm bulk (Nii et al., ISQED 2013)."""
    sram_overhead: float = 1.5
    """Periphery factor on the cell area (assumption A5)."""
    flipflop_um2: float = 4.522
    """One flip-flop bit, Nangate 45 nm DFF_X1 (LEF 3.23 x 1.4)."""
    mux2_um2: float = 1.862
    """One 2:1 multiplexer bit, Nangate 45 nm MUX2_X1 (LEF 1.33 x 1.4)."""
    full_adder_um2: float = 4.256
    """Nangate 45 nm FA_X1 (LEF 3.04 x 1.4)."""
    inverter_um2: float = 0.532
    """Nangate 45 nm INV_X1 (LEF 0.38 x 1.4)."""
    buffer_um2: float = 1.064
    """Nangate 45 nm BUF_X2 (LEF 0.76 x 1.4)."""
    and4_um2: float = 1.596
    """Nangate 45 nm AND4_X1 (LEF 1.14 x 1.4)."""
    latch_um2: float = 2.66
    """Nangate 45 nm DLH_X1 (LEF 1.9 x 1.4)."""
    clock_gate_um2: float = 3.458
    """Nangate 45 nm CLKGATE_X1 (LEF 2.47 x 1.4)."""

    def __post_init__(self):
        for f in fields(self):
            check_positive("costs", f.name, getattr(self, f.name))
        if self.add32_pj <= self.add8_pj or self.mul32_pj <= self.mul8_pj or self.sram32k_read64_pj <= self.sram8k_read64_pj:
            raise ConfigError("costs: the 32-bit (32 KB) figures must exceed the 8-bit (8 KB) ones, or the scaling laws invert")
        if self.add32_um2 <= self.add8_um2 or self.mul32_um2 <= self.mul8_um2:
            raise ConfigError("costs: the 32-bit areas must exceed the 8-bit ones, or the scaling laws invert")

    # Energy, pJ -----------------------------------------------------------------------------

    def add_pj(self, bits: int) -> float:
        """A ``bits``-wide integer add (A1: linear through the 8- and 32-bit points)."""
        return _linear(bits, self.add8_pj, self.add32_pj)

    def mul_pj(self, bits_a: int, bits_b: int) -> float:
        """A ``bits_a x bits_b`` integer multiply (A2: power law in the width product)."""
        return _power(bits_a * bits_b, self.mul8_pj, self.mul32_pj)

    def sram_pj_per_bit(self, size_bytes: int) -> float:
        """Reading or writing one bit of an SRAM of ``size_bytes`` (A3: ``size^0.5`` law)."""
        exponent = math.log(self.sram32k_read64_pj / self.sram8k_read64_pj) / math.log(4)
        return self.sram8k_read64_pj * (size_bytes / (8 * KIB)) ** exponent / 64

    @property
    def dram_pj_per_bit(self) -> float:
        return self.dram_access64_pj / 64

    @property
    def register_read_pj_per_bit(self) -> float:
        """A6: a flip-flop bit read or written costs a bit of an 8 KB SRAM read (an upper bound)."""
        return self.sram8k_read64_pj / 64

    # Area, um^2 -----------------------------------------------------------------------------

    def add_um2(self, bits: int) -> float:
        """A1 for area."""
        return _linear(bits, self.add8_um2, self.add32_um2)

    def mul_um2(self, bits_a: int, bits_b: int) -> float:
        """A2 for area."""
        return _power(bits_a * bits_b, self.mul8_um2, self.mul32_um2)

    @property
    def sram_um2_per_bit(self) -> float:
        """A5 (the large operand buffers)."""
        return self.sram_cell_um2 * self.sram_overhead

    def sram_bank_um2(self, words: int, width: int) -> float:
        """A9: one single-ported bank of ``words`` words of ``width`` bits, cells and periphery."""
        control = (max(1, math.ceil(math.log2(words))) + 2) * self.flipflop_um2
        return (words * width * self.sram_cell_um2 + words * (self.and4_um2 + self.buffer_um2)
                + width * (self.inverter_um2 + self.latch_um2 + self.buffer_um2) + control)

    def comparator_um2(self, bits: int) -> float:
        """A10: a ``bits``-wide magnitude comparator."""
        return bits * (self.full_adder_um2 + self.inverter_um2)


def _linear(bits: int, at8: float, at32: float) -> float:
    """Linear through (8, at8) and (32, at32); never below an eighth of the 8-bit figure, so
    that very narrow units keep a positive cost."""
    return max(at8 / 8, at8 + (bits - 8) * (at32 - at8) / 24)


def _power(product: int, at64: float, at1024: float) -> float:
    """``at64 * (product / 64)^k`` with k fitted so that product 1024 (32 x 32) gives at1024."""
    exponent = math.log(at1024 / at64) / math.log(16)
    return at64 * (product / 64) ** exponent
