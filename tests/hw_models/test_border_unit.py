"""The border lookup unit: its sizing, load cycles, energy, and zero overhead without borders."""

import math

import pytest

from aquant_sim.errors import UnsupportedError
from hw_models.border_unit import border_unit_area, layer_border_cost
from hw_models.config import AcceleratorConfig, BorderUnitConfig, MemoryConfig
from hw_models.layers import program_layers
from hw_models.report import build_report, format_report


def test_table_sizing_load_and_lookup_energy(small_program):
    """A per-channel, per-level table: G x (2^b - 1) entries of F + 1 bits, loaded in
    ceil(bytes / bandwidth) cycles plus the compare stage, one lookup per output element."""
    config = AcceleratorConfig(memory=MemoryConfig(dram_bytes_per_cycle=3), border_unit=BorderUnitConfig(frac_bits=10, lanes=4, pipeline_stages=2))
    layer = next(w for w in program_layers(small_program) if w.name == "layer2.0.conv1")
    groups, levels = layer.borders.values.shape
    assert (groups, levels, layer.output_levels, layer.borders.frac_bits) == (16, 15, 15, 8)
    cost = layer_border_cost(layer, config)
    table_bytes = math.ceil(16 * 15 * 9 / 8)
    assert cost.table_entries == 16 * 15 and cost.table_bytes == table_bytes
    assert cost.extra_cycles == math.ceil(table_bytes / 3) + 2
    assert cost.lookups == layer.output_elements
    costs = config.costs
    assert cost.lookup_energy_pj == pytest.approx(cost.lookups * (11 * costs.register_read_pj_per_bit + costs.add_pj(11)), rel=1e-12)
    area = border_unit_area(program_layers(small_program), config)
    assert area.storage_bits == 16 * 15 * 11
    assert area.comparators_um2 == pytest.approx(4 * costs.add_um2(11))
    assert area.selects_um2 == pytest.approx(4 * 14 * 11 * costs.mux2_um2)


def test_no_overhead_without_borders(nearest_program):
    """When every table is round-to-nearest (BorderTable.is_nearest) the AQuant design costs
    exactly what the RTN design costs: zero extra cycles, energy, bytes and area, per layer and in total."""
    report = build_report(nearest_program, AcceleratorConfig())
    o = report.overhead
    assert (o.cycles, o.energy_pj, o.dram_bytes, o.area_um2, o.storage_bits) == (0, 0, 0, 0, 0)
    for row in report.layers:
        assert not row.aquant.layer.uses_borders and row.aquant.border.lookups == 0
        assert (row.overhead.cycles, row.overhead.energy_pj, row.overhead.dram_bytes) == (0, 0, 0)


def test_overhead_positive_with_borders(small_program):
    """With learned borders the unit adds cycles, energy, bytes and area on every requantizing layer."""
    report = build_report(small_program, AcceleratorConfig())
    o = report.overhead
    assert o.cycles > 0 and o.energy_pj > 0 and o.dram_bytes > 0 and o.area_um2 > 0
    requantizing = {op.name for op in small_program.ops if getattr(op, "requant", None) is not None}
    for row in report.layers:
        uses = row.aquant.layer.uses_borders
        assert uses == (row.name in requantizing)
        extra = row.overhead
        assert (extra.cycles > 0, extra.energy_pj > 0, extra.dram_bytes > 0) == (uses, uses, uses), row.name


def test_tensor_granularity_table_is_small(tensor_border_program):
    """A single border per tensor costs one table entry in DRAM but still a full level row in the unit."""
    layer = next(w for w in program_layers(tensor_border_program) if w.name == "stem")
    cost = layer_border_cost(layer, AcceleratorConfig())
    assert cost.table_bytes == math.ceil(9 / 8) and cost.table_entries == 15


def test_program_fraction_bits_must_fit_the_unit(small_program):
    """A table with more fraction bits than the unit's comparators is rejected, naming the layer."""
    config = AcceleratorConfig(border_unit=BorderUnitConfig(frac_bits=6))
    with pytest.raises(UnsupportedError, match="layer 'stem'.*F = 8"):
        build_report(small_program, config)


def test_resident_tables_load_once(small_program):
    """With resident tables the unit stores every layer's table (more storage than the largest
    one), and an inference loads none: no load cycles, no table bytes from DRAM (the overhead
    moves no DRAM byte), only the compare stage's latency; lookups cost the same."""
    per_layer = build_report(small_program, AcceleratorConfig())
    resident = build_report(small_program, AcceleratorConfig(border_unit=BorderUnitConfig(residency="resident")))
    tables = [row.aquant.border for row in per_layer.layers if row.aquant.layer.uses_borders]
    assert resident.overhead.storage_bits == sum(t.table_entries for t in tables) * 9 > per_layer.overhead.storage_bits
    assert resident.overhead.dram_bytes == 0 < per_layer.overhead.dram_bytes
    for row, base in zip(resident.layers, per_layer.layers):
        border = row.aquant.border
        assert border.loaded_bytes == border.load_cycles == border.load_energy_pj == 0
        assert border.table_bytes == base.aquant.border.table_bytes
        assert border.extra_cycles == (1 if row.aquant.layer.uses_borders else 0)
        assert border.lookup_energy_pj == base.aquant.border.lookup_energy_pj
    assert "tables resident" in format_report(resident).splitlines()[0]
