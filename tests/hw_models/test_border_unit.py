"""The border lookup unit: sizing, storage (SRAM or registers) and ports, row traffic against a
replay of the fold schedule, table residency, and zero overhead without borders."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from aquant_sim.errors import UnsupportedError
from aquant_sim.program import BorderTable, OpKind
from hw_models.border_unit import (BorderUnitSize, border_unit_area, layer_border_cost, row_traffic, table_area,
                                   unit_size)
from hw_models.config import (AcceleratorConfig, ArrayConfig, BorderUnitConfig, Dataflow, MemoryConfig,
                              TableResidency, TableStorage)
from hw_models.layers import Engine, Gemm, LayerWork, program_layers
from hw_models.report import build_report, format_report, report_json


def _layer(engine, gemm, groups_rows, outputs, channels):
    """A requantizing layer with a learned table of ``groups_rows`` rows (1 or the channel count)."""
    return LayerWork(name="x", kind=OpKind.CONV2D if engine is Engine.ARRAY else OpKind.ADD, engine=engine, gemm=gemm,
                     vector_ops=0 if gemm else outputs, input_elements=outputs, input_bits=4, weight_elements=0,
                     weight_bits=4, output_elements=outputs, output_bits=4, requantized=outputs,
                     borders=BorderTable(8, np.full((groups_rows, 15), 100)), output_levels=15)


def replay_array(gemm, rows, cols, dataflow, per_channel):
    """Row traffic by walking cycle_stepped.py's fold order output by output: per fold, the rows
    each column's final outputs need; a register write whenever a column needs another row."""
    p, k, n, groups = gemm.pixels, gemm.window, gemm.filters, gemm.groups

    def row(g, f):
        return g * n + f if per_channel else 0

    def folds(g):
        if dataflow is Dataflow.OS:
            for _ in range(0, p, rows):
                for j0 in range(0, n, cols):
                    yield [[row(g, j0 + c)] if j0 + c < n else [] for c in range(cols)]
            return
        outer = n if dataflow is Dataflow.WS else p
        for j0 in range(0, outer, cols):
            for i0 in range(0, k, rows):
                final = i0 + rows >= k
                if dataflow is Dataflow.WS:
                    yield [[row(g, j0 + c)] if final and j0 + c < n else [] for c in range(cols)]
                else:
                    yield [[row(g, f) for f in range(n)] if final and j0 + c < p else [] for c in range(cols)]

    held = [None] * cols
    reads = writes = 0
    first = None
    for g in range(groups):
        for fold in folds(g):
            written = set()
            for c, needs in enumerate(fold):
                for r in needs:
                    if held[c] != r:
                        held[c] = r
                        writes += 1
                        written.add(r)
                        if dataflow is Dataflow.IS and c == 0:
                            reads += 1
            if dataflow is not Dataflow.IS:
                reads += len(written)
            if first is None and any(fold):
                first = 1 if dataflow is Dataflow.IS else len({needs[0] for needs in fold if needs})
    return reads, writes, first


def replay_vector(outputs, channels, lanes, per_channel):
    """Channel-major outputs, ``lanes`` a cycle, output i on lane i mod lanes; one read per row used."""
    per = outputs // channels
    held = [None] * lanes
    writes, used = 0, set()
    for i in range(outputs):
        r = i // per if per_channel else 0
        used.add(r)
        if held[i % lanes] != r:
            held[i % lanes] = r
            writes += 1
    return len(used), writes, 1


@settings(max_examples=300, deadline=None)
@given(p=st.integers(1, 30), k=st.integers(1, 20), n=st.integers(1, 30), groups=st.integers(1, 3),
       rows=st.integers(1, 7), cols=st.integers(1, 7), dataflow=st.sampled_from(list(Dataflow)), per_channel=st.booleans())
def test_array_row_traffic_equals_the_replay(p, k, n, groups, rows, cols, dataflow, per_channel):
    """The closed forms of row reads, register writes and first rows equal the output-by-output
    replay of the fold schedule, on every dataflow, per channel and per tensor."""
    gemm = Gemm(p, k, n, groups)
    layer = _layer(Engine.ARRAY, gemm, groups * n if per_channel else 1, groups * p * n, groups * n)
    config = AcceleratorConfig(array=ArrayConfig(rows, cols, dataflow))
    traffic = row_traffic(layer, config)
    assert (traffic.table_reads, traffic.register_writes, traffic.first_rows) == replay_array(gemm, rows, cols, dataflow, per_channel)


@settings(max_examples=100, deadline=None)
@given(channels=st.integers(1, 12), per=st.integers(1, 20), lanes=st.integers(1, 9), per_channel=st.booleans())
def test_vector_row_traffic_equals_the_replay(channels, per, lanes, per_channel):
    """The vector unit's row traffic equals the replay of its channel-major output order."""
    layer = _layer(Engine.VECTOR, None, channels if per_channel else 1, channels * per, channels)
    traffic = row_traffic(layer, AcceleratorConfig(border_unit=BorderUnitConfig(lanes=lanes)))
    assert (traffic.table_reads, traffic.register_writes, traffic.first_rows) == replay_vector(channels * per, channels, lanes, per_channel)


def test_table_sizing_load_rows_and_lookup_energy(small_program):
    """A per-channel, per-level table: G rows of (2^b - 1) (F + 1) bits, loaded in
    ceil(bytes / bandwidth) cycles, the first rows through the read ports, the compare stage;
    one lookup per output; every energy term from its counts."""
    unit = BorderUnitConfig(frac_bits=10, lanes=4, pipeline_stages=2, read_ports=2)
    config = AcceleratorConfig(array=ArrayConfig(8, 8), memory=MemoryConfig(dram_bytes_per_cycle=3), border_unit=unit)
    layers = program_layers(small_program)
    layer = next(w for w in layers if w.name == "layer2.0.conv1")
    groups, levels = layer.borders.values.shape
    assert (groups, levels, layer.output_levels, layer.borders.frac_bits) == (16, 15, 15, 8)
    size = unit_size(layers, config)
    assert size == BorderUnitSize(rows=16, levels=15, entry_bits=11) and size.storage_bits == 16 * 15 * 11
    cost = layer_border_cost(layer, config, size)
    table_bytes = math.ceil(16 * 15 * 9 / 8)
    assert cost.table_entries == 16 * 15 and cost.table_bytes == cost.loaded_bytes == table_bytes
    assert cost.rows.first_rows == 8 and cost.row_cycles == 4
    assert cost.extra_cycles == math.ceil(table_bytes / 3) + 4 + 2
    assert cost.lookups == layer.output_elements
    costs = config.costs
    bank_bit = costs.sram_pj_per_bit(math.ceil(8 * 165 / 8))
    assert cost.load_energy_pj == pytest.approx(table_bytes * 8 * costs.dram_pj_per_bit + 16 * 165 * bank_bit, rel=1e-12)
    assert cost.row_energy_pj == pytest.approx(
        165 * (cost.rows.table_reads * bank_bit + cost.rows.register_writes * costs.register_read_pj_per_bit), rel=1e-12)
    assert cost.lookup_energy_pj == pytest.approx(cost.lookups * (11 * costs.register_read_pj_per_bit + costs.add_pj(11)), rel=1e-12)
    area = border_unit_area(layers, config)
    assert area.storage_um2 == pytest.approx(2 * costs.sram_bank_um2(8, 165)) and area.read_ports_um2 == 0
    assert area.row_registers_um2 == pytest.approx(2 * 4 * 2 * 165 * costs.flipflop_um2)
    assert area.comparators_um2 == pytest.approx(4 * 11 * (costs.full_adder_um2 + costs.inverter_um2))
    assert area.selects_um2 == pytest.approx(4 * (2 * 2 * 15 - 1) * 11 * costs.mux2_um2)


@pytest.mark.parametrize("rows, levels, bits", [(512, 15, 69_120), (1280, 255, 2_937_600)])
def test_sram_is_smaller_than_registers_at_real_table_sizes(rows, levels, bits):
    """At the tables the issue names (ResNet-18: 512 channels x 15 levels x 9 bits; a mobile
    network's 1,280 channels x 255 levels x 9 bits) SRAM banks take less area than flip-flops
    with their read selects, for one port and for four."""
    size = BorderUnitSize(rows, levels, 9)
    assert size.storage_bits == bits
    for ports in (1, 4):
        sram, registers = (sum(table_area(size, AcceleratorConfig(border_unit=BorderUnitConfig(storage=s, read_ports=ports))))
                           for s in (TableStorage.SRAM, TableStorage.REGISTERS))
        assert sram < registers / 10


def test_registers_are_smaller_for_a_one_row_table():
    """A single row (one border set per tensor) is cheaper in flip-flops than in an SRAM bank,
    whose periphery then dominates: the ordering above is not built in."""
    size = BorderUnitSize(1, 15, 9)
    sram, registers = (sum(table_area(size, AcceleratorConfig(border_unit=BorderUnitConfig(storage=s))))
                       for s in (TableStorage.SRAM, TableStorage.REGISTERS))
    assert registers < sram


def test_read_ports(small_program):
    """More read ports: fewer cycles waiting for the first rows, more area (SRAM bank periphery,
    register read selects linear in the ports); the row traffic itself does not change."""
    one, four = (build_report(small_program, AcceleratorConfig(border_unit=BorderUnitConfig(read_ports=ports)))
                 for ports in (1, 4))
    for a, b in zip(one.layers, four.layers):
        if a.aquant.layer.uses_borders:
            assert a.aquant.border.rows == b.aquant.border.rows
            assert b.aquant.border.row_cycles == math.ceil(a.aquant.border.row_cycles / 4)
    assert four.overhead.cycles < one.overhead.cycles
    assert four.aquant.border_area.storage_um2 > one.aquant.border_area.storage_um2
    regs = [border_unit_area(program_layers(small_program), AcceleratorConfig(
        border_unit=BorderUnitConfig(storage="registers", read_ports=ports))) for ports in (1, 2, 4)]
    assert regs[0].read_ports_um2 > 0
    assert [r.read_ports_um2 for r in regs] == pytest.approx([regs[0].read_ports_um2 * m for m in (1, 2, 4)])
    assert len({r.storage_um2 for r in regs}) == 1


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
    """A single border per tensor costs one table entry in DRAM but still a full level row in
    the unit, and one row read per layer."""
    layers = program_layers(tensor_border_program)
    layer = next(w for w in layers if w.name == "stem")
    cost = layer_border_cost(layer, AcceleratorConfig(), unit_size(layers, AcceleratorConfig()))
    assert cost.table_bytes == math.ceil(9 / 8) and cost.table_entries == 15
    assert cost.rows.table_reads == 1


def test_program_fraction_bits_must_fit_the_unit(small_program):
    """A table with more fraction bits than the unit's comparators is rejected, naming the layer."""
    config = AcceleratorConfig(border_unit=BorderUnitConfig(frac_bits=6))
    with pytest.raises(UnsupportedError, match="layer 'stem'.*F = 8 fraction bits; the border unit is built for at most 6"):
        build_report(small_program, config)


@pytest.mark.parametrize("storage", list(TableStorage))
def test_resident_tables_remove_exactly_the_reload(small_program, storage):
    """Resident tables store every layer's table (more storage than the largest one) and an
    inference loads none: the AQuant design moves exactly the tables' bytes less through DRAM
    and waits exactly their load cycles less; lookups and row traffic are unchanged; with
    registers (whose bit cost does not depend on their size) the energy saved is exactly the
    load energy."""
    base = AcceleratorConfig(border_unit=BorderUnitConfig(storage=storage))
    per_layer = build_report(small_program, base)
    resident = build_report(small_program, dataclasses.replace(
        base, border_unit=dataclasses.replace(base.border_unit, residency=TableResidency.RESIDENT)))
    tables = [row.aquant.border for row in per_layer.layers if row.aquant.layer.uses_borders]
    assert resident.overhead.storage_bits == sum(t.table_entries for t in tables) * 9 > per_layer.overhead.storage_bits
    assert per_layer.aquant.dram_bytes - resident.aquant.dram_bytes == sum(t.table_bytes for t in tables)
    assert per_layer.aquant.cycles - resident.aquant.cycles == sum(t.load_cycles for t in tables)
    assert resident.overhead.dram_bytes == 0 < per_layer.overhead.dram_bytes
    assert resident.rtn.cycles == per_layer.rtn.cycles and resident.rtn.dram_bytes == per_layer.rtn.dram_bytes
    for row, base_row in zip(resident.layers, per_layer.layers):
        border, before = row.aquant.border, base_row.aquant.border
        assert border.loaded_bytes == border.load_cycles == border.load_energy_pj == 0
        assert border.table_bytes == before.table_bytes and border.rows == before.rows
        assert border.extra_cycles == before.extra_cycles - before.load_cycles
        assert border.lookup_energy_pj == before.lookup_energy_pj
    if storage is TableStorage.REGISTERS:
        saved = per_layer.aquant.energy_pj - resident.aquant.energy_pj
        assert saved == pytest.approx(sum(t.load_energy_pj for t in tables), rel=1e-12)
    assert "tables resident" in format_report(resident).splitlines()[0]


def test_report_per_layer(small_program):
    """The report names the storage, prints one border line per layer that uses the unit, and
    its JSON carries the same per-layer figures and the unit's area parts."""
    report = build_report(small_program, AcceleratorConfig(border_unit=BorderUnitConfig(storage="registers", read_ports=2)))
    text = format_report(report)
    assert "in registers (2 read ports)" in text.splitlines()[0]
    users = [row for row in report.layers if row.aquant.layer.uses_borders]
    names = [line.split(" ")[0] for line in text.splitlines()]
    assert all(names.count(row.name) == (2 if row in users else 1) for row in report.layers)
    doc = report_json(report)
    for row, entry in zip(report.layers, doc["layers"]):
        b = row.aquant.border
        assert entry["border"]["table_row_reads"] == b.rows.table_reads
        assert entry["border"]["energy_pj"]["total"] == b.energy_pj
    unit = doc["totals"]["aquant"]["border_unit_area_um2"]
    parts = unit["storage"] + unit["read_ports"] + unit["row_registers"] + unit["comparators"] + unit["selects"]
    assert parts == pytest.approx(doc["totals"]["aquant"]["area_um2"]["border_overhead"], rel=1e-12)
    assert doc["config"]["border_storage"] == "registers" and doc["config"]["border_read_ports"] == 2
