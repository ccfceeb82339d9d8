"""The hardware report: per-layer figures and network totals for the AQuant design, beside the
same accelerator with a plain round-to-nearest (RTN) requantizer, and the border unit's overhead
as absolute figures and as percentages of the RTN design.

``build_report(program, config, counters=None)`` returns a plain dict (JSON-ready);
``format_table``, ``write_json`` and ``write_csv`` render it. Units: cycles, bytes, pJ, um^2.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from aquant_sim.program import Program
from hw_models.config import AcceleratorConfig
from hw_models.estimate import LayerEstimate, NetworkEstimate, estimate


def _pct(extra: float, base: float) -> float:
    return 100.0 * extra / base if base else 0.0


def _layer_row(aq: LayerEstimate, rtn: LayerEstimate) -> dict:
    layer, mem, en = aq.layer, aq.memory, aq.energy
    extra = {"cycles": aq.cycles - rtn.cycles, "energy_pj": en.total - rtn.energy.total,
             "dram_bytes": mem.dram_total - rtn.memory.dram_total}
    return {
        "name": layer.name, "kind": layer.kind.value, "engine": layer.engine.value,
        "gemm": None if layer.gemm is None else {"pixels": layer.gemm.pixels, "window": layer.gemm.window,
                                                 "filters": layer.gemm.filters, "groups": layer.gemm.groups},
        "macs": layer.macs, "vector_ops": layer.vector_ops,
        "compute_cycles": aq.compute_cycles, "stall_cycles": aq.stall_cycles,
        "border_cycles": aq.border.extra_cycles, "cycles": aq.cycles, "utilization": aq.utilization,
        "footprint_bytes": mem.footprint, "compulsory_bytes": mem.compulsory,
        "sram_read_bytes": mem.ifmap_sram_read + mem.filter_sram_read + mem.ofmap_sram_read,
        "sram_write_bytes": mem.ofmap_sram_write,
        "dram_read_bytes": mem.dram_read, "dram_write_bytes": mem.dram_write, "spill_bytes": mem.spill,
        "energy_pj": {"mac": en.mac, "vector": en.vector, "requant": en.requant, "border": en.border,
                      "sram": en.sram, "dram": en.dram, "total": en.total},
        "zero_fraction": aq.zero_fraction, "overflows": aq.overflows,
        "uses_borders": layer.uses_borders, "border_lookups": aq.border.lookups,
        "border_table_bytes": aq.border.table_bytes,
        "rtn": {"cycles": rtn.cycles, "energy_pj": rtn.energy.total, "dram_bytes": rtn.memory.dram_total},
        "border_overhead": {**extra, "cycles_pct": _pct(extra["cycles"], rtn.cycles),
                            "energy_pct": _pct(extra["energy_pj"], rtn.energy.total),
                            "dram_bytes_pct": _pct(extra["dram_bytes"], rtn.memory.dram_total)},
    }


def _totals(net: NetworkEstimate) -> dict:
    area = net.area
    return {
        "cycles": net.cycles, "compute_cycles": net.compute_cycles, "stall_cycles": net.stall_cycles,
        "border_cycles": sum(e.border.extra_cycles for e in net.layers),
        "seconds": net.seconds, "macs": net.macs, "utilization": net.utilization,
        "energy_pj": net.energy_pj, "dram_bytes": net.dram_bytes, "footprint_bytes": net.footprint_bytes,
        "border_storage_bits": net.border_storage_bits,
        "area_um2": {"pe_array": area.pe_array, "sram": area.sram, "vector": area.vector,
                     "requantizer": area.requantizer, "border_overhead": area.border_overhead, "total": area.total},
    }


def build_report(program: Program, config: AcceleratorConfig, counters=None) -> dict:
    """Estimate the program with AQuant's border unit and with an RTN requantizer, and compare."""
    aq = estimate(program, config, counters, borders=True)
    rtn = estimate(program, config, counters, borders=False)
    totals_aq, totals_rtn = _totals(aq), _totals(rtn)
    overhead = {
        "cycles": aq.cycles - rtn.cycles, "energy_pj": aq.energy_pj - rtn.energy_pj,
        "dram_bytes": aq.dram_bytes - rtn.dram_bytes, "area_um2": aq.area.total - rtn.area.total,
        "storage_bits": aq.border_storage_bits,
    }
    overhead.update({
        "cycles_pct": _pct(overhead["cycles"], rtn.cycles), "energy_pct": _pct(overhead["energy_pj"], rtn.energy_pj),
        "dram_bytes_pct": _pct(overhead["dram_bytes"], rtn.dram_bytes), "area_pct": _pct(overhead["area_um2"], rtn.area.total),
    })
    array = config.array
    return {
        "config": {"name": config.name, "rows": array.rows, "cols": array.cols, "dataflow": array.dataflow.value,
                   "clock_mhz": array.clock_mhz, "ifmap_sram_kib": config.memory.ifmap_sram_kib,
                   "filter_sram_kib": config.memory.filter_sram_kib, "ofmap_sram_kib": config.memory.ofmap_sram_kib,
                   "dram_bytes_per_cycle": config.memory.dram_bytes_per_cycle,
                   "border_frac_bits": config.border_unit.frac_bits, "border_lanes": config.border_unit.lanes},
        "counters_used": counters is not None,
        "layers": [_layer_row(a, r) for a, r in zip(aq.layers, rtn.layers)],
        "totals": {"aquant": totals_aq, "rtn": totals_rtn, "border_overhead": overhead},
    }


def format_table(report: dict) -> str:
    """The terminal view: one line per layer, then the totals and the border unit's overhead."""
    c = report["config"]
    lines = [f"accelerator '{c['name']}': {c['rows']}x{c['cols']} {c['dataflow'].upper()}, {c['clock_mhz']:g} MHz, "
             f"SRAM {c['ifmap_sram_kib']:g}/{c['filter_sram_kib']:g}/{c['ofmap_sram_kib']:g} KiB, "
             f"DRAM {c['dram_bytes_per_cycle']:g} B/cycle, border unit F={c['border_frac_bits']} x{c['border_lanes']} lanes"]
    header = f"{'layer':<22} {'kind':<14} {'compute':>10} {'stall':>10} {'border+':>8} {'util%':>6} {'DRAM KB':>9} {'energy uJ':>10} {'dE%':>6}"
    if report["counters_used"]:
        header += f" {'zero%':>6} {'ovfl':>6}"
    lines += [header, "-" * len(header)]
    for row in report["layers"]:
        line = (f"{row['name'][:22]:<22} {row['kind']:<14} {row['compute_cycles']:>10,} {row['stall_cycles']:>10,} "
                f"{row['border_cycles']:>8,} {100 * row['utilization']:>6.1f} "
                f"{(row['dram_read_bytes'] + row['dram_write_bytes']) / 1e3:>9.1f} {row['energy_pj']['total'] / 1e6:>10.3f} "
                f"{row['border_overhead']['energy_pct']:>6.2f}")
        if report["counters_used"]:
            line += f" {100 * row['zero_fraction']:>6.1f} {row['overflows'] if row['overflows'] is not None else '-':>6}"
        lines.append(line)
    t, r, o = report["totals"]["aquant"], report["totals"]["rtn"], report["totals"]["border_overhead"]
    lines += [
        "-" * len(header),
        f"total: {t['cycles']:,} cycles ({t['compute_cycles']:,} compute, {t['stall_cycles']:,} stall, "
        f"{t['border_cycles']:,} border), {1e3 * t['seconds']:.3f} ms, utilisation {100 * t['utilization']:.1f} %",
        f"       energy {t['energy_pj'] / 1e6:,.2f} uJ, DRAM {t['dram_bytes'] / 1e6:,.2f} MB, "
        f"footprint {t['footprint_bytes'] / 1e6:,.2f} MB, area {t['area_um2']['total'] / 1e6:.3f} mm^2",
        f"round-to-nearest requantizer: {r['cycles']:,} cycles, {r['energy_pj'] / 1e6:,.2f} uJ, "
        f"DRAM {r['dram_bytes'] / 1e6:,.2f} MB, area {r['area_um2']['total'] / 1e6:.3f} mm^2",
        f"border unit overhead: +{o['cycles']:,} cycles ({o['cycles_pct']:.3f} %), +{o['energy_pj'] / 1e6:,.3f} uJ "
        f"({o['energy_pct']:.3f} %), +{o['dram_bytes']:,} DRAM bytes ({o['dram_bytes_pct']:.3f} %), "
        f"+{o['area_um2'] / 1e6:.4f} mm^2 ({o['area_pct']:.3f} %), table {o['storage_bits']:,} bits",
    ]
    return "\n".join(lines)


def write_json(report: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


CSV_COLUMNS = ("name", "kind", "engine", "macs", "compute_cycles", "stall_cycles", "border_cycles", "cycles",
               "utilization", "sram_read_bytes", "sram_write_bytes", "dram_read_bytes", "dram_write_bytes",
               "spill_bytes", "energy_mac_pj", "energy_vector_pj", "energy_requant_pj", "energy_border_pj",
               "energy_sram_pj", "energy_dram_pj", "energy_pj", "rtn_cycles", "rtn_energy_pj", "rtn_dram_bytes",
               "border_extra_cycles", "border_extra_energy_pj", "border_extra_dram_bytes", "border_cycles_pct",
               "border_energy_pct", "border_dram_bytes_pct", "zero_fraction", "overflows")


def _csv_row(row: dict) -> list:
    e, rtn, o = row["energy_pj"], row["rtn"], row["border_overhead"]
    flat = {**row, **{f"energy_{k}_pj": v for k, v in e.items() if k != "total"}, "energy_pj": e["total"],
            "rtn_cycles": rtn["cycles"], "rtn_energy_pj": rtn["energy_pj"], "rtn_dram_bytes": rtn["dram_bytes"],
            "border_extra_cycles": o["cycles"], "border_extra_energy_pj": o["energy_pj"],
            "border_extra_dram_bytes": o["dram_bytes"], "border_cycles_pct": o["cycles_pct"],
            "border_energy_pct": o["energy_pct"], "border_dram_bytes_pct": o["dram_bytes_pct"]}
    return ["" if flat[c] is None else flat[c] for c in CSV_COLUMNS]


def write_csv(report: dict, path: str | Path) -> None:
    """One row per layer, then a ``TOTAL`` row (network figures; per-layer-only columns empty)."""
    t, r, o = report["totals"]["aquant"], report["totals"]["rtn"], report["totals"]["border_overhead"]
    total = {"name": "TOTAL", "macs": t["macs"], "compute_cycles": t["compute_cycles"], "stall_cycles": t["stall_cycles"],
             "border_cycles": t["border_cycles"], "cycles": t["cycles"], "utilization": t["utilization"],
             "energy_pj": t["energy_pj"], "rtn_cycles": r["cycles"], "rtn_energy_pj": r["energy_pj"],
             "rtn_dram_bytes": r["dram_bytes"], "border_extra_cycles": o["cycles"], "border_extra_energy_pj": o["energy_pj"],
             "border_extra_dram_bytes": o["dram_bytes"], "border_cycles_pct": o["cycles_pct"],
             "border_energy_pct": o["energy_pct"], "border_dram_bytes_pct": o["dram_bytes_pct"]}
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_csv_row(row) for row in report["layers"])
        writer.writerow([total.get(c, "") for c in CSV_COLUMNS])
