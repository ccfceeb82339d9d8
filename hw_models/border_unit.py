"""The border lookup unit: what AQuant's requantizer adds to a plain round-to-nearest one.

Round-to-nearest (RTN) requantization ends in ``q = clamp(k + [f >= 2^(F-1)], ...)``: the
rounding bit is the top bit of the fraction, and one incrementer adds it. AQuant's unit
(docs/contract.md (8)) instead compares the F fraction bits with a border ``B[g, j]`` from a table, so
over RTN it adds, per lane, one comparator of F + 1 bits (``B`` lies in ``[1, 2^F]``) and a
select of the level's entry, and, for the whole unit, the table storage. The incrementer is the
same in both designs: it is listed here but is not part of the overhead.

Hardware sizing (``border_unit.frac_bits`` is the hardware F, ``border_unit.lanes`` the lanes):

- Table storage: ``G x (2^b - 1)`` entries of ``F + 1`` bits, the largest table of any layer
  (G the layer's border groups, b its output width), or all of them when resident; flip-flop
  bits (costs A6).
- Per lane: one comparator (an adder of F + 1 bits, A7), a ``(2^b - 1)``-to-1 select of F + 1
  bits (A8): the lane serves one channel at a time, and each output channel's row of the table
  is what its lanes select from.
- Per layer that uses borders: its table (``G x L`` values as stored in the program, at the
  program's F + 1 bits, packed) is read from DRAM before the layer starts, which takes
  ``ceil(bytes / bandwidth)`` cycles and is not overlapped with compute (conservative), plus
  ``pipeline_stages`` cycles of latency for the compare stage. With ``border_unit.residency =
  "resident"`` (``TableResidency``) the unit stores every layer's table (the sum of their
  ``G x (2^b - 1)`` entries) and keeps them across inferences: no per-inference load, no load
  cycles, no table bytes from DRAM; only the compare stage's latency remains.
- Per lookup: a read of F + 1 table bits and one compare.

Layers whose table is all 1/2 (``BorderTable.is_nearest``) run as RTN: no load, no lookups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aquant_sim.errors import UnsupportedError
from hw_models.config import AcceleratorConfig, TableResidency
from hw_models.layers import LayerWork


@dataclass(frozen=True)
class LayerBorderCost:
    """What the border unit costs one layer; all zero for an RTN layer."""

    table_entries: int
    """Entries the unit holds for this layer: G x (2^b - 1)."""
    table_bytes: int
    """Bytes of the table as stored (G x L values at F + 1 bits, packed)."""
    loaded_bytes: int
    """Table bytes read from DRAM per inference: ``table_bytes``, or 0 when tables are resident."""
    load_cycles: int
    extra_cycles: int
    """Load plus the compare stage's latency."""
    lookups: int
    load_energy_pj: float
    lookup_energy_pj: float

    @property
    def energy_pj(self) -> float:
        return self.load_energy_pj + self.lookup_energy_pj


NO_BORDER_COST = LayerBorderCost(0, 0, 0, 0, 0, 0, 0.0, 0.0)


def check_fits(layer: LayerWork, config: AcceleratorConfig) -> None:
    """The layer's border table must fit the unit's comparators."""
    if layer.uses_borders and layer.borders.frac_bits > config.border_unit.frac_bits:
        raise UnsupportedError(
            f"layer '{layer.name}': its border table has F = {layer.borders.frac_bits} fraction bits; "
            f"the border unit compares F + 1 = {config.border_unit.frac_bits + 1} bits (border_unit.frac_bits)")


def layer_border_cost(layer: LayerWork, config: AcceleratorConfig) -> LayerBorderCost:
    if not layer.uses_borders:
        return NO_BORDER_COST
    check_fits(layer, config)
    costs, unit_f = config.costs, config.border_unit.frac_bits
    groups = layer.borders.values.shape[0]
    entries = groups * layer.output_levels
    table_bytes = math.ceil(layer.borders.values.size * (layer.borders.frac_bits + 1) / 8)
    loaded = 0 if config.border_unit.residency is TableResidency.RESIDENT else table_bytes
    load_cycles = math.ceil(loaded / config.memory.dram_bytes_per_cycle)
    # Loading reads the table from DRAM and writes every stored entry (A6: a write costs a read).
    load_energy = (loaded * 8 * costs.dram_pj_per_bit + entries * (unit_f + 1) * costs.register_read_pj_per_bit) if loaded else 0.0
    per_lookup = (unit_f + 1) * costs.register_read_pj_per_bit + costs.add_pj(unit_f + 1)
    return LayerBorderCost(
        table_entries=entries, table_bytes=table_bytes, loaded_bytes=loaded, load_cycles=load_cycles,
        extra_cycles=load_cycles + config.border_unit.pipeline_stages, lookups=layer.requantized,
        load_energy_pj=load_energy, lookup_energy_pj=layer.requantized * per_lookup,
    )


@dataclass(frozen=True)
class BorderUnitArea:
    """Area (um^2) of the border unit sized for a program; ``incrementers`` are shared with RTN."""

    storage_bits: int
    storage_um2: float
    comparators_um2: float
    selects_um2: float
    incrementers_um2: float

    @property
    def overhead_um2(self) -> float:
        """What the unit adds over an RTN requantizer (everything but the incrementers)."""
        return self.storage_um2 + self.comparators_um2 + self.selects_um2


def border_unit_area(layers: list[LayerWork], config: AcceleratorConfig) -> BorderUnitArea:
    """Size the unit for the layers that use borders; all zero overhead when none does."""
    costs, unit = config.costs, config.border_unit
    incrementers = unit.lanes * costs.add_um2(config.array.operand_bits)
    users = [layer for layer in layers if layer.uses_borders]
    if not users:
        return BorderUnitArea(0, 0.0, 0.0, 0.0, incrementers)
    for layer in users:
        check_fits(layer, config)
    entries = [layer.borders.values.shape[0] * layer.output_levels for layer in users]
    bits = (sum(entries) if unit.residency is TableResidency.RESIDENT else max(entries)) * (unit.frac_bits + 1)
    levels = max(layer.output_levels for layer in users)
    return BorderUnitArea(
        storage_bits=bits, storage_um2=bits * costs.flipflop_um2,
        comparators_um2=unit.lanes * costs.add_um2(unit.frac_bits + 1),
        selects_um2=unit.lanes * (levels - 1) * (unit.frac_bits + 1) * costs.mux2_um2,
        incrementers_um2=incrementers,
    )
