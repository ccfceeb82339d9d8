"""The border lookup unit: what AQuant's requantizer adds to a plain round-to-nearest one, costed
as it would be built.

Round-to-nearest (RTN) requantization ends in ``q = clamp(k + [f >= 2^(F-1)], ...)``: the
rounding bit is the top bit of the fraction, and one incrementer adds it. AQuant's unit
(docs/contract.md (8)) instead compares the F fraction bits with a border ``B[g, j]`` from a
table. The incrementer is the same in both designs: it is listed here but is not overhead.

**The unit.** A table *row* is one border group's ``L = 2^b - 1`` entries of ``F + 1`` bits
(``F = border_unit.frac_bits``; ``B`` lies in ``[1, 2^F]``), ``row_bits = L (F + 1)`` with L the
largest of the program. The table (``rows`` rows: the largest G of any layer, or the sum of
all when ``residency = "resident"``) is stored in ``border_unit.storage`` (``TableStorage``):

- ``sram``: ``read_ports`` single-ported banks, row ``g`` in bank ``g mod read_ports``, each
  ``ceil(rows / read_ports)`` words of ``row_bits`` (area A9 of ``costs.py``, energy per bit A3
  at the bank's size);
- ``registers``: ``rows x row_bits`` flip-flops with one clock gate per row, and per read port a
  ``rows``-to-1 select of ``row_bits`` bits (A8); energy A6.

A row read goes out on a row bus to the requantizer lanes. Array column ``c`` feeds lane
``c mod lanes``, which keeps a *row register* per column it serves (``ceil(cols / lanes)`` slots),
double-buffered (the next fold's row loads while the current one is in use): ``2 x lanes x
slots x row_bits`` flip-flops. Per lane: one comparator of F + 1 bits (A10) and a select of an
entry out of its ``2 x slots x L`` registered ones (A8). Per lookup (every requantized element):
a read of F + 1 register bits (A6) and a compare (A7).

**Row traffic per layer** (exact for the fold schedule of ``cycle_stepped.py``: groups one after
the other; OS row folds outside column folds, WS/IS column folds outside row folds, the final
outputs of WS/IS in the last row fold). A register is written when its column's next output
belongs to another border group than the row it holds; ``table_row_reads`` counts the distinct
rows so written per fold (one read, broadcast on the bus). Under IS a column's outputs run
through every filter, skewed one cycle per column as the operands are, so the row registers form
a chain (each passes its row to the next column) and the table is read only where the chain
starts (column 0). With G the groups of a conv, N its filters per group, P its pixels, per-channel
tables (one row per output channel) give:

    OS  writes = G (rf (N - n1) + n1),  reads = writes   rf row folds, n1 = columns used once
    WS  writes = reads = G N
    IS  writes = G P N, reads = G cf N  (N > 1; cf column folds)  or  G min(C, P), G  (N = 1)

and one row for the tensor: writes = the columns used, reads = 1. Vector layers requantize in
channel-major order, ``lanes`` outputs a cycle: reads = one per channel (1 per tensor), writes =
``min(lanes, S)`` per channel with S outputs per channel (``min(lanes, outputs)`` per tensor).
Reads of later folds are hidden behind the current fold (at most C reads a fold, a fold lasts at
least C cycles, one read a port a cycle); the first fold's first outputs wait for their rows:
``ceil(rows needed / read_ports)`` cycles (``min(C, N)`` rows under OS and WS with per-channel
tables, else 1), charged as not overlapped (conservative).

**Per layer that uses borders**: with ``residency = "per_layer"`` its table (``G x L`` values as
the program stores them, F + 1 bits, packed) is read from DRAM before the layer, ``ceil(bytes /
bandwidth)`` cycles not overlapped with compute (conservative), and written into the storage
(``G x row_bits`` bits). ``resident`` keeps every table across inferences: no per-inference
load. Plus ``pipeline_stages`` cycles of compare latency per layer.

Layers whose table is all 1/2 (``BorderTable.is_nearest``) run as RTN: no load, no lookups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aquant_sim.errors import UnsupportedError
from hw_models.config import AcceleratorConfig, Dataflow, TableResidency, TableStorage
from hw_models.layers import Engine, LayerWork
from hw_models.systolic import map_gemm


@dataclass(frozen=True)
class BorderUnitSize:
    """What the unit stores: ``rows`` table rows of ``row_bits``, in ``config.border_unit``'s storage."""

    rows: int
    levels: int
    """L of a row: the largest ``2^b - 1`` of the layers that use borders."""
    entry_bits: int
    """F + 1 of the unit."""

    @property
    def row_bits(self) -> int:
        return self.levels * self.entry_bits

    @property
    def storage_bits(self) -> int:
        return self.rows * self.row_bits


@dataclass(frozen=True)
class RowTraffic:
    """Row movements of one layer: table reads (broadcast on the row bus), row-register writes,
    and the rows the first outputs wait for."""

    table_reads: int
    register_writes: int
    first_rows: int


NO_ROW_TRAFFIC = RowTraffic(0, 0, 0)


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
    row_cycles: int
    """Cycles the first outputs wait for their rows: ``ceil(first_rows / read_ports)``."""
    extra_cycles: int
    """Load, first rows and the compare stage's latency."""
    lookups: int
    rows: RowTraffic
    load_energy_pj: float
    """DRAM read of the table and its write into the storage."""
    row_energy_pj: float
    """Table row reads and row-register writes."""
    lookup_energy_pj: float

    @property
    def energy_pj(self) -> float:
        return self.load_energy_pj + self.row_energy_pj + self.lookup_energy_pj


NO_BORDER_COST = LayerBorderCost(0, 0, 0, 0, 0, 0, 0, NO_ROW_TRAFFIC, 0.0, 0.0, 0.0)


def check_fits(layer: LayerWork, config: AcceleratorConfig) -> None:
    """The layer's border table must fit the unit's comparators."""
    if layer.uses_borders and layer.borders.frac_bits > config.border_unit.frac_bits:
        raise UnsupportedError(
            f"layer '{layer.name}': its border table has F = {layer.borders.frac_bits} fraction bits; "
            f"the border unit is built for at most {config.border_unit.frac_bits} (border_unit.frac_bits)")


def unit_size(layers: list[LayerWork], config: AcceleratorConfig) -> BorderUnitSize | None:
    """The table the unit is built for, or None when no layer uses borders."""
    users = [layer for layer in layers if layer.uses_borders]
    if not users:
        return None
    for layer in users:
        check_fits(layer, config)
    groups = [layer.borders.values.shape[0] for layer in users]
    rows = sum(groups) if config.border_unit.residency is TableResidency.RESIDENT else max(groups)
    return BorderUnitSize(rows, max(layer.output_levels for layer in users), config.border_unit.frac_bits + 1)


def storage_read_pj_per_bit(size: BorderUnitSize, config: AcceleratorConfig) -> float:
    """Reading or writing one stored table bit: an SRAM bank's (A3) or a flip-flop's (A6)."""
    costs, unit = config.costs, config.border_unit
    if unit.storage is TableStorage.REGISTERS:
        return costs.register_read_pj_per_bit
    return costs.sram_pj_per_bit(math.ceil(math.ceil(size.rows / unit.read_ports) * size.row_bits / 8))


def _used_once(extent: int, cols: int) -> int:
    """Columns c < cols used by exactly one fold when ``extent`` indices are laid out c + j cols."""
    return max(0, min(extent, cols) - max(0, extent - cols))


def row_traffic(layer: LayerWork, config: AcceleratorConfig) -> RowTraffic:
    """The layer's row reads and row-register writes (closed forms of the module docstring)."""
    if not layer.uses_borders:
        return NO_ROW_TRAFFIC
    per_channel = layer.borders.values.shape[0] > 1
    if layer.engine is Engine.VECTOR:
        lanes = config.border_unit.lanes
        if not per_channel:
            return RowTraffic(1, min(lanes, layer.requantized), 1)
        channels = layer.borders.values.shape[0]
        return RowTraffic(channels, channels * min(lanes, layer.requantized // channels), 1)
    array = config.array
    gemm, cols = layer.gemm, array.cols
    groups, n, p = gemm.groups, gemm.filters, gemm.pixels
    if array.dataflow is Dataflow.IS:
        if not per_channel:
            return RowTraffic(1, min(cols, p), 1)
        if n == 1:
            return RowTraffic(groups, groups * min(cols, p), 1)
        return RowTraffic(groups * math.ceil(p / cols) * n, groups * p * n, 1)
    if not per_channel:
        return RowTraffic(1, min(cols, n), 1)
    if array.dataflow is Dataflow.WS:
        return RowTraffic(groups * n, groups * n, min(cols, n))
    row_folds = map_gemm(gemm, array.rows, cols, array.dataflow).row_folds
    once = _used_once(n, cols)
    writes = groups * (row_folds * (n - once) + once)
    return RowTraffic(writes, writes, min(cols, n))


def layer_border_cost(layer: LayerWork, config: AcceleratorConfig, size: BorderUnitSize | None) -> LayerBorderCost:
    """The layer's table load, row traffic and lookups on a unit of ``size`` (``unit_size``)."""
    if not layer.uses_borders:
        return NO_BORDER_COST
    check_fits(layer, config)
    costs, unit = config.costs, config.border_unit
    groups = layer.borders.values.shape[0]
    table_bytes = math.ceil(layer.borders.values.size * (layer.borders.frac_bits + 1) / 8)
    loaded = 0 if unit.residency is TableResidency.RESIDENT else table_bytes
    load_cycles = math.ceil(loaded / config.memory.dram_bytes_per_cycle)
    stored_bit = storage_read_pj_per_bit(size, config)
    load_energy = (loaded * 8 * costs.dram_pj_per_bit + groups * size.row_bits * stored_bit) if loaded else 0.0
    rows = row_traffic(layer, config)
    row_energy = size.row_bits * (rows.table_reads * stored_bit + rows.register_writes * costs.register_read_pj_per_bit)
    per_lookup = size.entry_bits * costs.register_read_pj_per_bit + costs.add_pj(size.entry_bits)
    row_cycles = math.ceil(rows.first_rows / unit.read_ports)
    return LayerBorderCost(
        table_entries=groups * layer.output_levels, table_bytes=table_bytes, loaded_bytes=loaded,
        load_cycles=load_cycles, row_cycles=row_cycles,
        extra_cycles=load_cycles + row_cycles + unit.pipeline_stages, lookups=layer.requantized, rows=rows,
        load_energy_pj=load_energy, row_energy_pj=row_energy, lookup_energy_pj=layer.requantized * per_lookup,
    )


@dataclass(frozen=True)
class BorderUnitArea:
    """Area (um^2) of the border unit sized for a program; ``incrementers`` are shared with RTN."""

    storage_bits: int
    storage_um2: float
    """SRAM banks with their periphery, or flip-flops with their clock gates."""
    read_ports_um2: float
    """The register table's row-wide read selects (0 for SRAM: its banks are its ports)."""
    row_registers_um2: float
    comparators_um2: float
    selects_um2: float
    incrementers_um2: float

    @property
    def overhead_um2(self) -> float:
        """What the unit adds over an RTN requantizer (everything but the incrementers)."""
        return self.storage_um2 + self.read_ports_um2 + self.row_registers_um2 + self.comparators_um2 + self.selects_um2


def table_area(size: BorderUnitSize, config: AcceleratorConfig) -> tuple[float, float]:
    """Storage and read-port area of the table in ``border_unit.storage``."""
    costs, unit = config.costs, config.border_unit
    if unit.storage is TableStorage.REGISTERS:
        storage = size.storage_bits * costs.flipflop_um2 + size.rows * costs.clock_gate_um2
        return storage, unit.read_ports * (size.rows - 1) * size.row_bits * costs.mux2_um2
    return unit.read_ports * costs.sram_bank_um2(math.ceil(size.rows / unit.read_ports), size.row_bits), 0.0


def border_unit_area(layers: list[LayerWork], config: AcceleratorConfig) -> BorderUnitArea:
    """Size the unit for the layers that use borders; all zero overhead when none does."""
    costs, unit = config.costs, config.border_unit
    incrementers = unit.lanes * costs.add_um2(config.array.operand_bits)
    size = unit_size(layers, config)
    if size is None:
        return BorderUnitArea(0, 0.0, 0.0, 0.0, 0.0, 0.0, incrementers)
    storage, ports = table_area(size, config)
    slots = math.ceil(config.array.cols / unit.lanes)
    return BorderUnitArea(
        storage_bits=size.storage_bits, storage_um2=storage, read_ports_um2=ports,
        row_registers_um2=2 * unit.lanes * slots * size.row_bits * costs.flipflop_um2,
        comparators_um2=unit.lanes * costs.comparator_um2(size.entry_bits),
        selects_um2=unit.lanes * (2 * slots * size.levels - 1) * size.entry_bits * costs.mux2_um2,
        incrementers_um2=incrementers,
    )
