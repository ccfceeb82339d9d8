"""The report: AQuant beside RTN, consistent totals, JSON and CSV that read back."""

import csv
import json

import pytest

from hw_models.config import AcceleratorConfig
from hw_models.report import CSV_COLUMNS, build_report, format_table, write_csv, write_json


@pytest.fixture(scope="module")
def report(small_program):
    return build_report(small_program, AcceleratorConfig())


def test_overhead_is_the_difference(report):
    """Per layer and in total, the border overhead is AQuant minus RTN, and its percentages are of RTN."""
    totals = report["totals"]
    aq, rtn, extra = totals["aquant"], totals["rtn"], totals["border_overhead"]
    assert extra["cycles"] == aq["cycles"] - rtn["cycles"] == sum(r["border_overhead"]["cycles"] for r in report["layers"])
    assert extra["energy_pj"] == pytest.approx(sum(r["border_overhead"]["energy_pj"] for r in report["layers"]))
    assert extra["cycles_pct"] == pytest.approx(100 * extra["cycles"] / rtn["cycles"])
    assert extra["area_pct"] == pytest.approx(100 * extra["area_um2"] / rtn["area_um2"]["total"])
    assert aq["cycles"] == sum(r["cycles"] for r in report["layers"])


def test_table_lists_every_layer(report):
    """The terminal table has a line per non-fused layer and the totals and overhead lines."""
    text = format_table(report)
    for row in report["layers"]:
        assert row["name"] in text
    assert "border unit overhead" in text and "round-to-nearest" in text and "relu" not in text


def test_json_and_csv_read_back(report, tmp_path):
    """The JSON file holds the report; the CSV has a header, one row per layer and a TOTAL row."""
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(report))
    write_csv(report, tmp_path / "r.csv")
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(report["layers"]) + 2
    assert rows[-1][0] == "TOTAL" and int(rows[-1][CSV_COLUMNS.index("cycles")]) == report["totals"]["aquant"]["cycles"]
    assert int(rows[1][CSV_COLUMNS.index("cycles")]) == report["layers"][0]["cycles"]
