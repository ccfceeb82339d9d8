"""SCALE-Sim compatibility mode: every figure of every layer equals SCALE-Sim 3.0's own reports
(tests/hw_models/data/scalesim, see its README), both bandwidth modes honoured, bad configs
refused with the file and key named."""

from dataclasses import astuple, replace
from pathlib import Path

import pytest

from aquant_sim.errors import ConfigError, InputError, UnsupportedError
from hw_models.config import ArrayConfig
from hw_models.layers import Gemm
from hw_models.memory import sram_accesses
from hw_models.scalesim import DEPTHWISE_MARK, read_topology
from hw_models.scalesim_compat import (
    FIGURES, BandwidthMode, read_config, read_reports, simulate_layer, simulate_topology,
)
from hw_models.systolic import compute_cycles

DATA = Path(__file__).parent / "data" / "scalesim"
CONFIGS = sorted((DATA / "configs").glob("*.cfg"))


@pytest.fixture(scope="module")
def layers():
    return read_topology(DATA / "small.csv")


def test_every_config_has_reports():
    """The golden set covers both modes, all three dataflows and two array shapes."""
    configs = [read_config(path) for path in CONFIGS]
    assert {(c.mode, c.dataflow, (c.rows, c.cols)) for c in configs} == {
        (m, d, shape) for m in BandwidthMode for d in {c.dataflow for c in configs} for shape in ((4, 8), (8, 4))}
    assert len({c.dataflow for c in configs}) == 3
    assert all((DATA / "reports" / c.name / "DETAILED_ACCESS_REPORT.csv").is_file() for c in configs)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_equals_scalesim(path, layers):
    """Cycles (with and without prefetch), stalls, and the first/last cycle and count of every
    operand's SRAM and DRAM accesses equal SCALE-Sim's, per layer and per figure."""
    config = read_config(path)
    theirs = read_reports(DATA / "reports" / config.name)
    ours = simulate_topology(layers, config)
    differing = [(layer.name, figure, getattr(a, figure), getattr(b, figure))
                 for layer, a, b in zip(layers, ours, theirs) for figure in FIGURES if getattr(a, figure) != getattr(b, figure)]
    assert len(ours) == len(theirs) == len(layers) and differing == []


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("calc")], ids=lambda p: p.stem)
def test_calc_mode_cycles_are_the_stall_free_formula(path, layers):
    """With no stalls (CALC reads never stall; these layers' ofmap drains keep up), SCALE-Sim's
    Total Cycles is the analytic formula of systolic.py, and its SRAM reads are memory.py's."""
    config = read_config(path)
    array = ArrayConfig(rows=config.rows, cols=config.cols, dataflow=config.dataflow)
    for layer, figures in zip(layers, read_reports(DATA / "reports" / config.name)):
        assert figures.stall_cycles == 0
        assert figures.cycles == compute_cycles(layer.gemm, array)
        counts = sram_accesses(layer.gemm, array)
        assert (figures.ifmap_sram_reads, figures.filter_sram_reads) == (counts.ifmap_reads, counts.filter_reads)


def _edit(path: Path, tmp_path: Path, **changes) -> Path:
    lines = []
    for line in path.read_text().splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {changes.pop(key)}" if key in changes else line)
    assert not changes, changes
    out = tmp_path / path.name
    out.write_text("\n".join(lines) + "\n")
    return out


def test_calc_mode_ignores_the_bandwidths(tmp_path, layers):
    """CALC sizes the bandwidth itself: Bandwidth and the SRAM bank bandwidths change nothing."""
    path = DATA / "configs" / "calc_8x4_ws.cfg"
    edited = read_config(_edit(path, tmp_path, Bandwidth=1, IfmapSRAMBankBandwidth=1, IfmapSRAMBankNum=1,
                               FilterSRAMBankBandwidth=1, FilterSRAMBankNum=1))
    assert edited.mode is BandwidthMode.CALC
    assert simulate_layer(layers[4], edited) == simulate_layer(layers[4], read_config(path))


def test_user_mode_has_three_interfaces(layers):
    """In USER mode the ifmap, filter and ofmap interfaces are separate: slowing one changes its
    own DRAM cycles and the stalls, and leaves the other operands' DRAM read counts alone."""
    base = read_config(DATA / "configs" / "user_4x8_os.cfg")
    reference = simulate_layer(layers[4], base)
    slow_filter = simulate_layer(layers[4], replace(base, filter_bandwidth=1))
    assert slow_filter.stall_cycles > reference.stall_cycles
    assert slow_filter.filter_dram_stop > reference.filter_dram_stop
    slow_ofmap = simulate_layer(layers[4], replace(base, bandwidth=1))
    assert slow_ofmap.ofmap_dram_stop > reference.ofmap_dram_stop
    assert slow_ofmap.filter_dram_reads == reference.filter_dram_reads


@pytest.mark.parametrize("changes, error, message", [
    ({"InterfaceBandwidth": "FAST"}, ConfigError, r"InterfaceBandwidth must be USER or CALC, got 'FAST'"),
    ({"Dataflow": "rs"}, ConfigError, r"\[architecture_presets\] Dataflow must be os, ws or is"),
    ({"ArrayHeight": "x"}, ConfigError, r"ArrayHeight must be an integer, got 'x'"),
    ({"ArrayHeight": "0"}, ConfigError, r"rows must be a positive integer"),
    ({"IfmapSRAMBankNum": "2"}, ConfigError, r"IfmapSRAMBankBandwidth = 3 must be a multiple of IfmapSRAMBankNum = 2"),
    ({"IfmapCustomLayout": "True"}, UnsupportedError, r"\[layout\] IfmapCustomLayout = true"),
    ({"SparsitySupport": "true"}, UnsupportedError, r"sparse filters"),
])
def test_bad_config(tmp_path, changes, error, message):
    """A bad or unsupported .cfg raises an error naming the file, section and key."""
    path = _edit(DATA / "configs" / "user_4x8_os.cfg", tmp_path, **changes)
    with pytest.raises(error, match=message) as caught:
        read_config(path)
    assert str(path) in str(caught.value)


def test_missing_key(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text("[general]\nrun_name = x\n[run_presets]\nInterfaceBandwidth = CALC\n")
    with pytest.raises(ConfigError, match=r"bad.cfg: \[architecture_presets\] lacks Dataflow"):
        read_config(path)


def test_bad_report(tmp_path):
    """A truncated or non-integer report is an InputError naming the file and line."""
    for name in ("COMPUTE_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"):
        (tmp_path / name).write_text((DATA / "reports" / "user_4x8_os" / name).read_text())
    assert len(read_reports(tmp_path)) == 5
    compute = tmp_path / "COMPUTE_REPORT.csv"
    compute.write_text(compute.read_text().replace("4008,", "4008.5,"))
    with pytest.raises(InputError, match=r"COMPUTE_REPORT.csv: line 2: expected a whole number"):
        read_reports(tmp_path)
    compute.write_text("LayerID\n0, 1,\n")
    with pytest.raises(InputError, match=r"line 2: expected 7 columns, got 2"):
        read_reports(tmp_path)


def test_figures_are_integers(layers):
    figures = simulate_layer(layers[0], read_config(CONFIGS[0]))
    assert all(type(v) is int for v in astuple(figures)) and len(astuple(figures)) == len(FIGURES) == 21


ALEXNET = DATA / "alexnet_conv1"


@pytest.mark.parametrize("path", sorted((ALEXNET / "configs").glob("*.cfg")), ids=lambda p: p.stem)
def test_alexnet_conv1_equals_scalesim(path):
    """AlexNet conv1 (224x224x3, 11x11, 96 filters, stride 4) on SCALE-Sim's 32x32 / 64 kB
    config, OS, WS and IS, USER and CALC: every figure equals SCALE-Sim 3.0's report."""
    layers = read_topology(ALEXNET / "topology.csv")
    config = read_config(path)
    ours, theirs = simulate_topology(layers, config), read_reports(ALEXNET / "reports" / config.name)
    assert len(ours) == len(theirs) == 1
    assert [figure for figure in FIGURES if getattr(ours[0], figure) != getattr(theirs[0], figure)] == []


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_depthwise_rows_equal_scalesim(path):
    """SCALE-Sim's two depthwise encodings on the 12 small configs: a row named ..DP.. that it runs
    as one layer per channel, and a one-channel row with a ``#dw`` note; every figure of every
    resulting layer equals its report."""
    directory = DATA / "depthwise"
    layers = read_topology(directory / "topology.csv")
    assert [layer.name for layer in layers][:4] == [f"Conv_DPChannel_{i}" for i in range(4)]
    assert _differing(directory, path, {layer.name for layer in layers}) == []


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("calc")], ids=lambda p: p.stem)
def test_depthwise_mapping_is_scalesims_per_channel_encoding(path):
    """The project's depthwise mapping (C one-filter GEMMs run back to back, docs/hw_model.md
    section 2) is SCALE-Sim's DP encoding: its C layers' stall-free cycles add up to the grouped
    GEMM's, less the trailing cycle that each of the C - 1 layer boundaries drops."""
    config = read_config(path)
    array = ArrayConfig(rows=config.rows, cols=config.cols, dataflow=config.dataflow)
    rows = [(layer, figures) for layer, figures in zip(read_topology(DATA / "depthwise" / "topology.csv"),
                                                       read_reports(DATA / "depthwise" / "reports" / config.name))
            if DEPTHWISE_MARK in layer.name]
    one = rows[0][0].gemm
    grouped = Gemm(pixels=one.pixels, window=one.window, filters=1, groups=len(rows))
    assert all(figures.stall_cycles == 0 for _, figures in rows)
    assert sum(figures.cycles for _, figures in rows) == compute_cycles(grouped, array) - (len(rows) - 1)


def _differing(directory: Path, config_path: Path, names: set[str]) -> list[tuple]:
    """(layer, figure, ours, SCALE-Sim's) for every differing figure of the named layers."""
    layers = read_topology(directory / "topology.csv")
    config = read_config(config_path)
    theirs = read_reports(directory / "reports" / config.name)
    assert len(theirs) == len(layers) and names <= {layer.name for layer in layers}
    return [(layer.name, figure, getattr(ours, figure), getattr(golden, figure))
            for layer, golden in zip(layers, theirs) if layer.name in names
            for ours in [simulate_layer(layer, config)] for figure in FIGURES if getattr(ours, figure) != getattr(golden, figure)]


def test_mobilenet_os_calc_equals_scalesim_on_every_layer():
    """The one whole network cheap enough for the suite (about 7 s): every figure of all 28 rows
    of MobileNet, OS CALC, equals SCALE-Sim 3.0's report."""
    directory = DATA / "mobilenet"
    names = {layer.name for layer in read_topology(directory / "topology.csv")}
    assert len(names) == 28 and _differing(directory, directory / "configs" / "scalesim_32x32_os_calc.cfg", names) == []


NETWORK_LAYERS = {
    # The whole networks take the compatibility mode 7 s (MobileNet) and 35-90 s (AlexNet, most
    # of it FC6) a config: `tools/scalesim_validate.py compare` checks every layer (the README
    # there gives the counts); the suite checks these rows, about a second or less each, that
    # cover every kind of row.
    "alexnet": {"Conv3", "Conv5", "FC8"},
    "mobilenet": {"Conv4_dw", "Conv12_dw", "Conv14_dw_0", "Conv16_dw", "Conv18_dw", "Conv13", "Conv17", "FC"},
}


@pytest.mark.parametrize("path", [p for network in NETWORK_LAYERS for p in sorted((DATA / network / "configs").glob("*.cfg"))],
                         ids=lambda p: f"{p.parent.parent.name}-{p.stem}")
def test_network_layers_equal_scalesim(path):
    """AlexNet (SCALE-Sim's unpadded convs, FC as 1x1 rows) and MobileNet (depthwise rows as one
    channel's conv) on SCALE-Sim's 32x32 / 64 kB config: every figure of the checked rows equals
    SCALE-Sim 3.0's report of the whole network."""
    directory = path.parent.parent
    assert _differing(directory, path, NETWORK_LAYERS[directory.name]) == []
