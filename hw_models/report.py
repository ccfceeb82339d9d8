"""The hardware report: per-layer figures and network totals for the AQuant design, beside the
same accelerator with a plain round-to-nearest (RTN) requantizer, and the border unit's overhead
as absolute figures and as percentages of the RTN design.

``build_report(program, config, counters=None)`` returns a :class:`HardwareReport`: typed, frozen
dataclasses all the way down (the two :class:`~hw_models.estimate.NetworkEstimate` and the
overheads derived from them). The renderers read its fields: ``format_report`` (terminal, through
the project's one table formatter :func:`aquant_sim.table.format_table`), ``write_csv``, and
``report_json`` (the JSON document; writing it is the caller's, with the one atomic writer) and
``hw_models.plots``. Units: cycles, bytes, pJ, um^2.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from aquant_sim.atomic import atomic_write
from aquant_sim.program import Program
from aquant_sim.table import format_table
from hw_models.config import AcceleratorConfig
from hw_models.estimate import LayerEstimate, NetworkEstimate, estimate


def _pct(extra: float, base: float) -> float:
    return 100.0 * extra / base if base else 0.0


@dataclass(frozen=True)
class Overhead:
    """The AQuant design minus the RTN design, and the RTN figures the percentages are of."""

    cycles: int
    energy_pj: float
    dram_bytes: int
    rtn_cycles: int
    rtn_energy_pj: float
    rtn_dram_bytes: int

    @property
    def cycles_pct(self) -> float:
        return _pct(self.cycles, self.rtn_cycles)

    @property
    def energy_pct(self) -> float:
        return _pct(self.energy_pj, self.rtn_energy_pj)

    @property
    def dram_bytes_pct(self) -> float:
        return _pct(self.dram_bytes, self.rtn_dram_bytes)


@dataclass(frozen=True)
class NetworkOverhead(Overhead):
    """The network's overhead: the per-inference figures plus the area and the table storage."""

    area_um2: float
    rtn_area_um2: float
    storage_bits: int

    @property
    def area_pct(self) -> float:
        return _pct(self.area_um2, self.rtn_area_um2)


@dataclass(frozen=True)
class LayerComparison:
    """One costed layer in both designs."""

    aquant: LayerEstimate
    rtn: LayerEstimate

    @property
    def name(self) -> str:
        return self.aquant.layer.name

    @property
    def overhead(self) -> Overhead:
        a, r = self.aquant, self.rtn
        return Overhead(a.cycles - r.cycles, a.energy.total - r.energy.total, a.memory.dram_total - r.memory.dram_total,
                        r.cycles, r.energy.total, r.memory.dram_total)


@dataclass(frozen=True)
class HardwareReport:
    """One program on one accelerator, with AQuant's border unit and with an RTN requantizer."""

    config: AcceleratorConfig
    counters_used: bool
    aquant: NetworkEstimate
    rtn: NetworkEstimate

    @property
    def layers(self) -> tuple[LayerComparison, ...]:
        return tuple(LayerComparison(a, r) for a, r in zip(self.aquant.layers, self.rtn.layers))

    @property
    def overhead(self) -> NetworkOverhead:
        a, r = self.aquant, self.rtn
        return NetworkOverhead(a.cycles - r.cycles, a.energy_pj - r.energy_pj, a.dram_bytes - r.dram_bytes,
                               r.cycles, r.energy_pj, r.dram_bytes,
                               a.area.total - r.area.total, r.area.total, a.border_storage_bits)


def build_report(program: Program, config: AcceleratorConfig, counters=None) -> HardwareReport:
    """Estimate the program with AQuant's border unit and with an RTN requantizer."""
    return HardwareReport(config, counters is not None, estimate(program, config, counters, borders=True),
                          estimate(program, config, counters, borders=False))


def describe_config(config: AcceleratorConfig) -> str:
    """One line naming the accelerator a report is for."""
    a, m, b = config.array, config.memory, config.border_unit
    return (f"accelerator '{config.name}': {a.rows}x{a.cols} {a.dataflow.name}, {a.clock_mhz:g} MHz, "
            f"SRAM {m.ifmap_sram_kib:g}/{m.filter_sram_kib:g}/{m.ofmap_sram_kib:g} KiB, "
            f"DRAM {m.dram_bytes_per_cycle:g} B/cycle, memory model {m.model.value}, "
            f"border unit F={b.frac_bits} x{b.lanes} lanes, tables {b.residency.value} in {b.storage.value} "
            f"({b.read_ports} read port{'s' if b.read_ports > 1 else ''})")


def format_report(report: HardwareReport) -> str:
    """The terminal view: one line per layer, then the totals and the border unit's overhead."""
    header = ["layer", "kind", "compute", "stall", "border+", "util%", "DRAM KB", "energy uJ", "dE%"]
    if report.counters_used:
        header += ["zero%", "ovfl"]
    rows = []
    for row in report.layers:
        e = row.aquant
        cells = [row.name, e.layer.kind.value, f"{e.compute_cycles:,}", f"{e.stall_cycles:,}",
                 f"{e.border.extra_cycles:,}", f"{100 * e.utilization:.1f}", f"{e.memory.dram_total / 1e3:.1f}",
                 f"{e.energy.total / 1e6:.3f}", f"{row.overhead.energy_pct:.2f}"]
        if report.counters_used:
            cells += [f"{100 * e.zero_fraction:.1f}", "-" if e.overflows is None else e.overflows]
        rows.append(cells)
    t, r, o = report.aquant, report.rtn, report.overhead
    border_cycles = sum(e.border.extra_cycles for e in t.layers)
    return "\n".join([
        describe_config(report.config),
        format_table(header, rows),
        f"total: {t.cycles:,} cycles ({t.compute_cycles:,} compute, {t.stall_cycles:,} stall, "
        f"{border_cycles:,} border), {1e3 * t.seconds:.3f} ms, utilisation {100 * t.utilization:.1f} %",
        f"       energy {t.energy_pj / 1e6:,.2f} uJ, DRAM {t.dram_bytes / 1e6:,.2f} MB, "
        f"footprint {t.footprint_bytes / 1e6:,.2f} MB, area {t.area.total / 1e6:.3f} mm^2",
        f"round-to-nearest requantizer: {r.cycles:,} cycles, {r.energy_pj / 1e6:,.2f} uJ, "
        f"DRAM {r.dram_bytes / 1e6:,.2f} MB, area {r.area.total / 1e6:.3f} mm^2",
        f"border unit overhead: +{o.cycles:,} cycles ({o.cycles_pct:.3f} %), +{o.energy_pj / 1e6:,.3f} uJ "
        f"({o.energy_pct:.3f} %), +{o.dram_bytes:,} DRAM bytes ({o.dram_bytes_pct:.3f} %), "
        f"+{o.area_um2 / 1e6:.4f} mm^2 ({o.area_pct:.3f} %), table {o.storage_bits:,} bits",
        *_border_lines(report),
    ])


def _border_lines(report: HardwareReport) -> list[str]:
    """The border unit's area and, per layer that uses it, its table, row traffic and energy."""
    area = report.aquant.border_area
    if not area.storage_bits:
        return []
    header = ["layer", "entries", "DRAM B", "load+", "rows+", "row reads", "reg writes", "lookups",
              "load nJ", "rows nJ", "lookup nJ"]
    rows = []
    for row in report.layers:
        b = row.aquant.border
        if row.aquant.layer.uses_borders:
            rows.append([row.name, f"{b.table_entries:,}", f"{b.loaded_bytes:,}",
                         f"{b.load_cycles:,}", f"{b.row_cycles:,}", f"{b.rows.table_reads:,}",
                         f"{b.rows.register_writes:,}", f"{b.lookups:,}", f"{b.load_energy_pj / 1e3:.2f}",
                         f"{b.row_energy_pj / 1e3:.2f}", f"{b.lookup_energy_pj / 1e3:.2f}"])
    return [
        f"border unit area (um^2): storage {area.storage_um2:,.0f}, read ports {area.read_ports_um2:,.0f}, "
        f"row registers {area.row_registers_um2:,.0f}, comparators {area.comparators_um2:,.0f}, "
        f"selects {area.selects_um2:,.0f}",
        format_table(header, rows),
    ]


def _overhead_json(o: Overhead) -> dict:
    return {"cycles": o.cycles, "energy_pj": o.energy_pj, "dram_bytes": o.dram_bytes,
            "cycles_pct": o.cycles_pct, "energy_pct": o.energy_pct, "dram_bytes_pct": o.dram_bytes_pct}


def _layer_json(row: LayerComparison) -> dict:
    aq, rtn = row.aquant, row.rtn
    layer, mem, en = aq.layer, aq.memory, aq.energy
    gemm = layer.gemm
    return {
        "name": layer.name, "kind": layer.kind.value, "engine": layer.engine.value,
        "gemm": None if gemm is None else {"pixels": gemm.pixels, "window": gemm.window,
                                           "filters": gemm.filters, "groups": gemm.groups},
        "macs": layer.macs, "vector_ops": layer.vector_ops,
        "compute_cycles": aq.compute_cycles, "stall_cycles": aq.stall_cycles,
        "border_cycles": aq.border.extra_cycles, "cycles": aq.cycles, "utilization": aq.utilization,
        "footprint_bytes": mem.footprint, "compulsory_bytes": mem.compulsory,
        "sram_read_bytes": mem.ifmap_sram_read + mem.filter_sram_read + mem.ofmap_sram_read,
        "sram_write_bytes": mem.ofmap_sram_write,
        "dram_read_bytes": mem.dram_read, "dram_write_bytes": mem.dram_write, "spill_bytes": mem.spill,
        "energy_pj": {"mac": en.mac, "vector": en.vector, "requant": en.requant, "border": en.border,
                      "sram": en.sram, "dram": en.dram, "zero_point": en.zero_point, "total": en.total},
        "row_sum_adds": layer.row_sum_adds,
        "zero_fraction": aq.zero_fraction, "overflows": aq.overflows,
        "uses_borders": layer.uses_borders, "border_lookups": aq.border.lookups,
        "border_table_bytes": aq.border.table_bytes,
        "border": _border_json(aq.border),
        "tiling": None if mem.tiling is None else {"order": mem.tiling.order.value, "tile_p": mem.tiling.tile_p,
                                                   "tile_k": mem.tiling.tile_k, "tile_n": mem.tiling.tile_n},
        "rtn": {"cycles": rtn.cycles, "energy_pj": rtn.energy.total, "dram_bytes": rtn.memory.dram_total},
        "border_overhead": _overhead_json(row.overhead),
    }


def _border_json(b) -> dict:
    return {"table_entries": b.table_entries, "table_bytes": b.table_bytes, "loaded_bytes": b.loaded_bytes,
            "load_cycles": b.load_cycles, "row_cycles": b.row_cycles, "extra_cycles": b.extra_cycles,
            "table_row_reads": b.rows.table_reads, "row_register_writes": b.rows.register_writes,
            "first_rows": b.rows.first_rows, "lookups": b.lookups,
            "energy_pj": {"load": b.load_energy_pj, "rows": b.row_energy_pj, "lookups": b.lookup_energy_pj,
                          "total": b.energy_pj}}


def _totals_json(net: NetworkEstimate) -> dict:
    area = net.area
    unit = net.border_area
    return {
        "cycles": net.cycles, "compute_cycles": net.compute_cycles, "stall_cycles": net.stall_cycles,
        "border_cycles": sum(e.border.extra_cycles for e in net.layers),
        "seconds": net.seconds, "macs": net.macs, "utilization": net.utilization,
        "energy_pj": net.energy_pj, "dram_bytes": net.dram_bytes, "footprint_bytes": net.footprint_bytes,
        "border_storage_bits": net.border_storage_bits,
        "border_unit_area_um2": {"storage": unit.storage_um2, "read_ports": unit.read_ports_um2,
                                 "row_registers": unit.row_registers_um2, "comparators": unit.comparators_um2,
                                 "selects": unit.selects_um2, "incrementers": unit.incrementers_um2},
        "area_um2": {"pe_array": area.pe_array, "sram": area.sram, "vector": area.vector,
                     "requantizer": area.requantizer, "border_overhead": area.border_overhead, "total": area.total},
    }


def report_json(report: HardwareReport) -> dict:
    """The report as a JSON document (plain dicts and numbers): the config, a row per layer and
    the totals of both designs with the overhead."""
    c, o = report.config, report.overhead
    array = c.array
    return {
        "config": {"name": c.name, "rows": array.rows, "cols": array.cols, "dataflow": array.dataflow.value,
                   "clock_mhz": array.clock_mhz, "ifmap_sram_kib": c.memory.ifmap_sram_kib,
                   "filter_sram_kib": c.memory.filter_sram_kib, "ofmap_sram_kib": c.memory.ofmap_sram_kib,
                   "dram_bytes_per_cycle": c.memory.dram_bytes_per_cycle, "memory_model": c.memory.model.value,
                   "border_frac_bits": c.border_unit.frac_bits, "border_lanes": c.border_unit.lanes,
                   "border_tables": c.border_unit.residency.value, "border_storage": c.border_unit.storage.value,
                   "border_read_ports": c.border_unit.read_ports},
        "counters_used": report.counters_used,
        "layers": [_layer_json(row) for row in report.layers],
        "totals": {"aquant": _totals_json(report.aquant), "rtn": _totals_json(report.rtn),
                   "border_overhead": {**_overhead_json(o), "area_um2": o.area_um2, "area_pct": o.area_pct,
                                       "storage_bits": o.storage_bits}},
    }


CSV_COLUMNS = ("name", "kind", "engine", "macs", "compute_cycles", "stall_cycles", "border_cycles", "cycles",
               "utilization", "sram_read_bytes", "sram_write_bytes", "dram_read_bytes", "dram_write_bytes",
               "spill_bytes", "energy_mac_pj", "energy_vector_pj", "energy_requant_pj", "energy_border_pj",
               "energy_sram_pj", "energy_dram_pj", "energy_zero_point_pj", "energy_pj", "rtn_cycles", "rtn_energy_pj", "rtn_dram_bytes",
               "border_extra_cycles", "border_extra_energy_pj", "border_extra_dram_bytes", "border_cycles_pct",
               "border_energy_pct", "border_dram_bytes_pct", "border_table_row_reads", "border_row_register_writes",
               "border_load_energy_pj", "border_row_energy_pj", "border_lookup_energy_pj", "zero_fraction", "overflows")


def _overhead_cells(o: Overhead) -> list:
    return [o.rtn_cycles, o.rtn_energy_pj, o.rtn_dram_bytes, o.cycles, o.energy_pj, o.dram_bytes,
            o.cycles_pct, o.energy_pct, o.dram_bytes_pct]


def _csv_row(row: LayerComparison) -> list:
    e = row.aquant
    layer, mem, en = e.layer, e.memory, e.energy
    return [layer.name, layer.kind.value, layer.engine.value, layer.macs, e.compute_cycles, e.stall_cycles,
            e.border.extra_cycles, e.cycles, e.utilization, mem.ifmap_sram_read + mem.filter_sram_read + mem.ofmap_sram_read,
            mem.ofmap_sram_write, mem.dram_read, mem.dram_write, mem.spill, en.mac, en.vector, en.requant, en.border,
            en.sram, en.dram, en.zero_point, en.total, *_overhead_cells(row.overhead), e.border.rows.table_reads,
            e.border.rows.register_writes, e.border.load_energy_pj, e.border.row_energy_pj, e.border.lookup_energy_pj,
            e.zero_fraction,
            "" if e.overflows is None else e.overflows]


def write_csv(report: HardwareReport, path: str | Path) -> None:
    """One row per layer (``CSV_COLUMNS``), then a ``TOTAL`` row (network figures; per-layer-only
    columns empty), written atomically."""
    t = report.aquant
    total = dict(zip(CSV_COLUMNS, [""] * len(CSV_COLUMNS)))
    total.update(name="TOTAL", macs=t.macs, compute_cycles=t.compute_cycles, stall_cycles=t.stall_cycles,
                 border_cycles=sum(e.border.extra_cycles for e in t.layers), cycles=t.cycles,
                 utilization=t.utilization, energy_pj=t.energy_pj)
    first = CSV_COLUMNS.index("rtn_cycles")
    total.update(zip(CSV_COLUMNS[first:], _overhead_cells(report.overhead)))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(row) for row in report.layers)
    writer.writerow(total.values())
    with atomic_write(path) as handle:
        handle.write(text.getvalue().encode("utf-8"))
