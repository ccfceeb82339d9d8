"""SCALE-Sim interchange: topology CSVs in and out, .cfg import, clear errors on malformed files."""

import pytest

from aquant_sim.errors import ConfigError
from aquant_sim.program import OpKind
from hw_models.config import AcceleratorConfig, ArrayConfig, Dataflow, MemoryConfig
from hw_models.layers import program_layers
from hw_models.scalesim import (
    TopologyLayer, program_topology, read_scalesim_cfg, read_topology, write_scalesim_cfg, write_topology,
)

ALEXNET = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 224, 224, 11, 11, 3, 96, 4,
Conv2, 31, 31, 5, 5, 96, 256, 1,
"""

SCALE_CFG = """[general]
run_name = scale_example

[architecture_presets]
ArrayHeight:    16
ArrayWidth:     8
IfmapSramSzkB:    64
FilterSramSzkB:   32
OfmapSramSzkB:    16
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : ws
Bandwidth : 10
MemoryBanks: 1
"""


def test_read_topology(tmp_path):
    """SCALE-Sim's CSV (trailing commas, spaces) parses into layers with its output-size rule."""
    path = tmp_path / "alexnet.csv"
    path.write_text(ALEXNET)
    layers = read_topology(path)
    assert layers[0] == TopologyLayer("Conv1", 224, 224, 11, 11, 3, 96, 4)
    assert layers[0].ofmap == (55, 55) and layers[1].ofmap == (27, 27)


def test_topology_reads_as_scalesim_does(tmp_path):
    """As SCALE-Sim 3.0 parses a row: a note after the stride (its MobileNet files' ``#dw``) is
    dropped, and a name containing DP is a depthwise layer of one row per channel."""
    path = tmp_path / "dw.csv"
    path.write_text(ALEXNET.splitlines()[0] + "\nConv2_dw, 112, 112, 3, 3, 1, 1, 1,#dw\nb_DP_x, 9, 9, 3, 3, 3, 1, 2,\n")
    assert read_topology(path) == [TopologyLayer("Conv2_dw", 112, 112, 3, 3, 1, 1, 1)] + [
        TopologyLayer(f"b_DP_xChannel_{i}", 9, 9, 3, 3, 1, 1, 2) for i in range(3)]


def test_topology_round_trip(tmp_path):
    """Writing and reading back a topology gives the same layers."""
    layers = [TopologyLayer("a", 10, 12, 3, 3, 4, 5, 1), TopologyLayer("b", 7, 7, 1, 1, 9, 2, 2)]
    write_topology(layers, tmp_path / "t.csv")
    assert read_topology(tmp_path / "t.csv") == layers


def test_program_export_keeps_every_gemm(small_program, tmp_path):
    """Exported convs and linears give back, under SCALE-Sim's rules, the program's own GEMMs;
    pooling and adds are listed as skipped."""
    layers, skipped = program_topology(small_program)
    write_topology(layers, tmp_path / "p.csv")
    by_name = {layer.name: layer for layer in read_topology(tmp_path / "p.csv")}
    work = {w.name: w for w in program_layers(small_program)}
    array_ops = [op for op in small_program.ops if op.kind in (OpKind.CONV2D, OpKind.LINEAR)]
    assert set(by_name) == {op.name for op in array_ops}
    for name, layer in by_name.items():
        assert layer.gemm == work[name].gemm
    assert "avgpool" in skipped and "layer1.0.add" in skipped


@pytest.mark.parametrize("text, message", [
    ("", "empty topology"),
    ("Layer, a, b\n", "line 1: expected the header"),
    (ALEXNET.splitlines()[0] + "\n", "no layers"),
    (ALEXNET + "Conv3, 13, 13, 3\n", "line 4: expected 8 columns"),
    (ALEXNET + "Conv3, 13, 13, 3, x, 256, 384, 1,\n", "line 4: Filter Width must be an integer"),
    (ALEXNET + "Conv3, 13, 13, 3, 3, 256, 0, 1,\n", "line 4: .*Num Filter must be a positive integer"),
    (ALEXNET + "Conv3, 2, 13, 3, 3, 256, 384, 1,\n", "line 4: .*larger than the ifmap"),
    (ALEXNET + "Conv3_DP, 13, 13, 3, 3, 0, 1, 1,\n", "line 4: .*Channels must be a positive integer"),
    (ALEXNET + "Conv3, 13, 13, 3, 3, 256, 384, 1, 2:4,\n", "line 4: expected 8 columns, got 9"),
])
def test_malformed_topology(tmp_path, text, message):
    """A malformed topology raises ConfigError naming the file, the line and the column."""
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_topology(path)


def test_read_scalesim_cfg(tmp_path):
    """A SCALE-Sim .cfg sets the array, the three buffers (kB x 1024), dataflow and bandwidth."""
    path = tmp_path / "scale.cfg"
    path.write_text(SCALE_CFG)
    config = read_scalesim_cfg(path)
    assert config.name == "scale_example"
    assert (config.array.rows, config.array.cols, config.array.dataflow) == (16, 8, Dataflow.WS)
    assert (config.memory.ifmap_bytes, config.memory.filter_bytes, config.memory.ofmap_bytes) == (65536, 32768, 16384)
    assert config.memory.dram_bytes_per_cycle == 10


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("[architecture_presets]", "[arch]"), "missing section"),
    (lambda t: t.replace("ArrayWidth:     8\n", ""), "lacks arraywidth"),
    (lambda t: t.replace("ArrayHeight:    16", "ArrayHeight: sixteen"), "arrayheight must be an integer"),
    (lambda t: t.replace("Dataflow : ws", "Dataflow : rs"), "array.dataflow"),
    (lambda t: t.replace("Bandwidth : 10", "Bandwidth : fast"), "bandwidth must be a number"),
    (lambda t: t.replace("ArrayHeight:    16", "ArrayHeight:    0"), "array.rows"),
    (lambda t: "no section header\n" + t, "not a valid SCALE-Sim config"),
])
def test_malformed_scalesim_cfg(tmp_path, edit, message):
    """A malformed .cfg raises ConfigError naming the file and the key."""
    path = tmp_path / "bad.cfg"
    path.write_text(edit(SCALE_CFG))
    with pytest.raises(ConfigError, match=message):
        read_scalesim_cfg(path)


def test_unreadable_scalesim_cfg_is_one_line(tmp_path):
    """A .cfg without section headers or not UTF-8 raises a one-line ConfigError naming the file."""
    for name, raw in (("plain.cfg", b"garbage\n"), ("bin.cfg", b"\xff\xfe[x]\n")):
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(ConfigError, match=f"{name}: not a valid SCALE-Sim config") as caught:
            read_scalesim_cfg(path)
        assert "\n" not in str(caught.value)


def test_cfg_round_trip_and_bandwidth_forms(tmp_path):
    """A config written as a SCALE-Sim 3.0 .cfg reads back to the same array and memory; a list of
    equal bandwidths is one bandwidth, a list of different ones is an error."""
    config = AcceleratorConfig(array=ArrayConfig(8, 16, Dataflow.IS), memory=MemoryConfig(32, 16, 8, 12))
    write_scalesim_cfg(config, tmp_path / "out.cfg")
    back = read_scalesim_cfg(tmp_path / "out.cfg")
    assert back.array == config.array and back.memory == config.memory
    (tmp_path / "list.cfg").write_text(SCALE_CFG.replace("Bandwidth : 10", "Bandwidth : 10,10"))
    assert read_scalesim_cfg(tmp_path / "list.cfg").memory.dram_bytes_per_cycle == 10
    (tmp_path / "mixed.cfg").write_text(SCALE_CFG.replace("Bandwidth : 10", "Bandwidth : 10,20"))
    with pytest.raises(ConfigError, match="one value"):
        read_scalesim_cfg(tmp_path / "mixed.cfg")
    with pytest.raises(ConfigError, match="whole kB"):
        write_scalesim_cfg(AcceleratorConfig(memory=MemoryConfig(0.5, 1, 1, 1)), tmp_path / "x.cfg")
