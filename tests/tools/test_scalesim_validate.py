"""scalesim_validate's export writes exactly the topologies the committed SCALE-Sim reports were
made from (tests/hw_models/data/scalesim), in SCALE-Sim's encoding."""

from pathlib import Path

import pytest

from hw_models.scalesim import read_topology
from scalesim_validate import MOBILENET, export

DATA = Path(__file__).resolve().parents[1] / "hw_models" / "data" / "scalesim"


@pytest.mark.parametrize("network, directory", [("alexnet1", "alexnet_conv1"), ("alexnet", "alexnet"), ("mobilenet", "mobilenet")])
def test_export_writes_the_committed_topology(tmp_path, network, directory):
    """The exported topology is byte for byte the one SCALE-Sim ran, and the exported config
    equals the committed OS CALC config but for run_name and InterfaceBandwidth."""
    export(tmp_path, network, "os", 224)
    assert (tmp_path / "topology.csv").read_text() == (DATA / directory / "topology.csv").read_text()
    committed = (DATA / directory / "configs" / "scalesim_32x32_os_calc.cfg").read_text().splitlines()
    exported = (tmp_path / "scale.cfg").read_text().splitlines()
    assert len(exported) == len(committed)
    assert [a for a, b in zip(exported, committed) if a != b] == ["run_name = scalesim_32x32_os", "InterfaceBandwidth = USER"]


def test_mobilenet_rows_follow_scalesims_encoding():
    """Every depthwise row is one channel's 3x3 conv (Channels 1, Num Filter 1); every other row
    is dense: the 3x3 stem, 13 pointwise 1x1 convs and the FC as a 1x1 conv on a 1x1 input."""
    depthwise = [layer for layer in MOBILENET if "_dw" in layer.name]
    dense = [layer for layer in MOBILENET if "_dw" not in layer.name]
    assert len(depthwise) == 13 and len(dense) == 15
    assert all((layer.filter_h, layer.filter_w, layer.channels, layer.filters) == (3, 3, 1, 1) for layer in depthwise)
    assert all((layer.filter_h, layer.filter_w) == (1, 1) for layer in dense[1:])
    assert (dense[-1].ifmap_h, dense[-1].channels, dense[-1].filters) == (1, 1024, 1000)
    assert read_topology(DATA / "mobilenet" / "topology.csv") == MOBILENET
