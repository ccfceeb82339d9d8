"""ZigZag's inputs describe the same accelerator and layers; its results pair with an estimate's layers."""

import json
from pathlib import Path

import pytest

from aquant_sim.synthetic import resnet18_config, synthetic_resnet
from hw_models.config import AcceleratorConfig, ArrayConfig, Dataflow, MemoryConfig, shipped_config
from hw_models.estimate import estimate
from hw_models.layers import Engine, program_layers
from hw_models.zigzag import side_by_side, write_inputs, zigzag_accelerator, zigzag_mapping, zigzag_workload


def test_accelerator_carries_the_project_costs():
    """The MAC unit, the SRAM words and the DRAM port cost what costs.py says, at the config's sizes."""
    config = AcceleratorConfig(array=ArrayConfig(8, 16), memory=MemoryConfig(ifmap_sram_kib=64, dram_bytes_per_cycle=10))
    acc = zigzag_accelerator(config)
    costs = config.costs
    array = acc["operational_array"]
    assert array["sizes"] == [8, 16] and array["unit_energy"] == costs.mul_pj(8, 8) + costs.add_pj(32)
    mem = acc["memories"]
    assert mem["sram_ifmap"]["size"] == 8 * 64 * 1024 and mem["sram_ifmap"]["r_cost"] == 64 * costs.sram_pj_per_bit(64 * 1024)
    assert mem["sram_filter"]["r_cost"] == 64 * costs.sram_pj_per_bit(256 * 1024)
    assert mem["dram"]["ports"][0]["bandwidth_max"] == 80 and mem["dram"]["r_cost"] == 80 * costs.dram_pj_per_bit
    assert all(m["r_cost"] == 0 for name, m in mem.items() if name.startswith("reg_"))


@pytest.mark.parametrize("dataflow, unrolled", [(Dataflow.OS, ("B, 4", "K, 8")), (Dataflow.WS, ("C, 4", "K, 8")),
                                                (Dataflow.IS, ("C, 4", "B, 8"))])
def test_mapping_unrolls_the_dataflow(dataflow, unrolled):
    """Rows and columns unroll Sr and Sc of systolic.py: OS pixels x filters, WS window x filters, IS window x pixels."""
    spatial = zigzag_mapping(AcceleratorConfig(array=ArrayConfig(4, 8, dataflow)))[0]["spatial_mapping"]
    assert (spatial["D1"][0], spatial["D2"][0]) == unrolled


def test_workload_is_every_array_layer_as_gemms(small_program):
    """One GEMM per array layer, with the layer's dimensions, widths and MACs."""
    layers = program_layers(small_program)
    workload = zigzag_workload(layers, small_program.accumulator_bits)
    array = [w for w in layers if w.engine is Engine.ARRAY]
    assert [entry["name"] for entry in workload] == [w.name for w in array]
    for entry, layer in zip(workload, array):
        groups, pixels, filters, window = entry["loop_sizes"]
        assert groups * pixels * filters * window == layer.macs
        assert (entry["operand_precision"]["W"], entry["operand_precision"]["O_final"]) == (layer.weight_bits, layer.output_bits)


def test_inputs_and_side_by_side(small_program, tmp_path):
    """write_inputs writes what ZigZag reads (JSON is YAML); side_by_side pairs results by layer
    name, takes the parts ZigZag models, and names a missing layer."""
    config = AcceleratorConfig()
    write_inputs(small_program, config, tmp_path)
    assert json.loads((tmp_path / "accelerator.yaml").read_text()) == zigzag_accelerator(config)
    assert (tmp_path / "runner.py").read_text().startswith("import json")
    net = estimate(small_program, config)
    names = [e.layer.name for e in net.layers if e.layer.engine is Engine.ARRAY]
    results = {name: {"energy_pj": 2.0, "latency_cycles": 4.0} for name in names}
    rows = side_by_side(net, results)
    first = next(e for e in net.layers if e.layer.name == names[0])
    assert rows[0].energy_pj == first.energy.mac + first.energy.sram + first.energy.dram
    assert rows[0].cycles_ratio == (first.compute_cycles + first.stall_cycles) / 4.0
    del results[names[-1]]
    with pytest.raises(KeyError, match=names[-1]):
        side_by_side(net, results)


def test_recorded_zigzag_run_costs_the_same_macs():
    """The recorded ZigZag run (tests/hw_models/data/zigzag) covers every array layer of the
    synthetic ResNet-18 and charges exactly this project's MAC energy per layer: the same
    constants and the same MAC counts reached it."""
    results = json.loads((Path(__file__).parent / "data" / "zigzag" / "resnet18_224_default_os.json").read_text())
    net = estimate(synthetic_resnet(resnet18_config(4, 4)), shipped_config("default"), borders=False)
    assert len(side_by_side(net, results)) == len(results) == 21
    for e in net.layers:
        if e.layer.engine is Engine.ARRAY:
            assert results[e.layer.name]["mac_energy_pj"] == pytest.approx(e.energy.mac, rel=1e-9)
