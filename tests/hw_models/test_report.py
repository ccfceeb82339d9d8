"""The report: AQuant beside RTN, consistent totals, JSON and CSV that read back."""

import csv
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aquant_sim.rounding import MAX_FRAC_BITS
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.testing.programs import program_inputs, programs
from hw_models.config import AcceleratorConfig, BorderUnitConfig
from hw_models.report import CSV_COLUMNS, build_report, format_report, report_json, write_csv


@pytest.fixture(scope="module")
def report(small_program):
    return build_report(small_program, AcceleratorConfig())


def test_overhead_is_the_difference(report):
    """Per layer and in total, the border overhead is AQuant minus RTN, and its percentages are of RTN."""
    aq, rtn, extra = report.aquant, report.rtn, report.overhead
    assert extra.cycles == aq.cycles - rtn.cycles == sum(r.overhead.cycles for r in report.layers)
    assert extra.energy_pj == pytest.approx(sum(r.overhead.energy_pj for r in report.layers))
    assert extra.cycles_pct == pytest.approx(100 * extra.cycles / rtn.cycles)
    assert extra.area_pct == pytest.approx(100 * extra.area_um2 / rtn.area.total)
    assert aq.cycles == sum(r.aquant.cycles for r in report.layers)
    for row in report.layers:
        assert row.overhead.cycles == row.aquant.cycles - row.rtn.cycles
        assert row.overhead.rtn_dram_bytes == row.rtn.memory.dram_total


def test_table_lists_every_layer(report):
    """The terminal table has a line per non-fused layer, the config line and the totals and overhead lines."""
    text = format_report(report)
    lines = text.splitlines()
    for row in report.layers:
        assert any(line.startswith(row.name + " ") for line in lines), row.name
    assert lines[0].startswith("accelerator 'default': 32x32 OS")
    assert "border unit overhead" in text and "round-to-nearest" in text and "relu" not in text


def test_json_and_csv_read_back(report, tmp_path):
    """The JSON document holds the typed figures; the CSV has a header, one row per layer and a TOTAL row."""
    document = json.loads(json.dumps(report_json(report), allow_nan=False))
    assert [row["name"] for row in document["layers"]] == [row.name for row in report.layers]
    assert document["totals"]["aquant"]["cycles"] == report.aquant.cycles
    assert document["totals"]["border_overhead"]["storage_bits"] == report.overhead.storage_bits
    assert document["layers"][0]["border_overhead"]["energy_pct"] == report.layers[0].overhead.energy_pct
    write_csv(report, tmp_path / "r.csv")
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(report.layers) + 2
    column = {name: i for i, name in enumerate(CSV_COLUMNS)}
    assert rows[-1][0] == "TOTAL" and int(rows[-1][column["cycles"]]) == report.aquant.cycles
    assert int(rows[-1][column["border_extra_cycles"]]) == report.overhead.cycles
    assert int(rows[1][column["cycles"]]) == report.layers[0].aquant.cycles
    assert int(rows[1][column["rtn_dram_bytes"]]) == report.layers[0].rtn.memory.dram_total



@settings(max_examples=20)
@given(programs(), st.data())
def test_random_programs_cost_the_border_unit_only_where_borders_are_learned(program, data):
    """hw-report on a drawn program (every op kind and requantizer variant, with the simulator's
    counters): every layer is costed, a layer whose requantizer reads no borders (every variant
    but BORDER, or a table of 1/2 only) costs exactly what the round-to-nearest design costs,
    and the JSON document is strict JSON."""
    counters = Simulator(program, Backend.NUMBA).run(data.draw(program_inputs(program))).counters
    config = AcceleratorConfig(border_unit=BorderUnitConfig(frac_bits=MAX_FRAC_BITS))  # the drawn tables' F fits
    report = build_report(program, config, counters)
    tables = {op.name: op.requant.borders for op in program.ops if getattr(op, "requant", None) is not None}
    assert {row.name for row in report.layers} <= {op.name for op in program.ops}
    for row in report.layers:
        if row.name not in tables or tables[row.name].is_nearest:
            assert (row.overhead.cycles, row.overhead.energy_pj, row.overhead.dram_bytes) == (0, 0, 0), row.name
    json.dumps(report_json(report), allow_nan=False)
