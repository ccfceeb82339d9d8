"""Layer energy: each part follows its counts and costs; zero gating only removes multiplies."""

import dataclasses

import numpy as np
import pytest

from aquant_sim.builder import ProgramBuilder
from aquant_sim.program import BorderTable, Program, QuantParams
from aquant_sim.rounding import MULTIPLIER_BITS
from hw_models.border_unit import NO_BORDER_COST, layer_border_cost, unit_size
from hw_models.config import AcceleratorConfig, ArrayConfig
from hw_models.energy import layer_energy
from hw_models.layers import program_layers
from hw_models.memory import layer_memory
from hw_models.systolic import compute_cycles

CONFIG = AcceleratorConfig()


def _conv(program, name="layer1.0.conv1"):
    layer = next(w for w in program_layers(program) if w.name == name)
    return layer, layer_memory(layer, CONFIG, compute_cycles(layer.gemm, CONFIG.array))


def test_parts_follow_counts_and_costs(small_program):
    """MAC, requantizer, SRAM and DRAM energy are the counts times the cost table's figures."""
    layer, memory = _conv(small_program)
    costs, mem = CONFIG.costs, CONFIG.memory
    energy = layer_energy(layer, memory, NO_BORDER_COST, CONFIG)
    assert energy.mac == pytest.approx(layer.macs * (costs.mul_pj(8, 8) + costs.add_pj(32)), rel=1e-12)
    assert energy.requant == pytest.approx(layer.requantized * (costs.mul_pj(32, MULTIPLIER_BITS) + costs.add_pj(32) + costs.add_pj(4)), rel=1e-12)
    assert energy.dram == pytest.approx(8 * memory.dram_total * costs.dram_pj_per_bit, rel=1e-12)
    expected_sram = 8 * (memory.ifmap_sram_read * costs.sram_pj_per_bit(mem.ifmap_bytes) + memory.filter_sram_read * costs.sram_pj_per_bit(mem.filter_bytes)
                         + (memory.ofmap_sram_write + memory.ofmap_sram_read) * costs.sram_pj_per_bit(mem.ofmap_bytes))
    assert energy.sram == pytest.approx(expected_sram, rel=1e-12)
    assert energy.border == 0 and energy.vector == 0
    assert energy.total == pytest.approx(energy.mac + energy.requant + energy.sram + energy.dram, rel=1e-12)


def test_border_energy_excludes_table_dram_from_operand_dram(small_program):
    """The table's DRAM bytes are charged once, to the border unit, not again as operand traffic."""
    layer, _ = _conv(small_program)
    border = layer_border_cost(layer, CONFIG, unit_size(program_layers(small_program), CONFIG))
    memory = layer_memory(layer, CONFIG, compute_cycles(layer.gemm, CONFIG.array), border.table_bytes)
    with_table = layer_energy(layer, memory, border, CONFIG)
    without = layer_energy(layer, layer_memory(layer, CONFIG, compute_cycles(layer.gemm, CONFIG.array)), NO_BORDER_COST, CONFIG)
    assert with_table.dram == pytest.approx(without.dram, rel=1e-12)
    assert with_table.total - without.total == pytest.approx(border.energy_pj, rel=1e-9)


def test_zero_gating(small_program):
    """Zero activations remove exactly their share of the multiply energy, and only with gating on."""
    layer, memory = _conv(small_program)
    full = layer_energy(layer, memory, NO_BORDER_COST, CONFIG)
    gated = layer_energy(layer, memory, NO_BORDER_COST, CONFIG, zero_fraction=0.25)
    assert full.mac - gated.mac == pytest.approx(0.25 * layer.macs * CONFIG.costs.mul_pj(8, 8), rel=1e-9)
    ungated = AcceleratorConfig(array=ArrayConfig(zero_gating=False))
    assert layer_energy(layer, memory, NO_BORDER_COST, ungated, zero_fraction=0.25).mac == full.mac


def test_weight_zero_points_cost_the_row_sums(small_program):
    """Symmetric weights cost no zero-point energy; a conv with a non-zero z_w pays one
    accumulator-wide add per window element of each output position (shared by its channels)
    plus a b_w x A multiply and an add per output element, and nothing else changes."""
    name = "layer1.0.conv1"
    layer, memory = _conv(small_program, name)
    assert layer.row_sum_adds == 0 and layer_energy(layer, memory, NO_BORDER_COST, CONFIG).zero_point == 0
    ops = [dataclasses.replace(op, weight_zero_point=np.arange(op.weight.shape[0]) % 3 - 1) if op.name == name else op
           for op in small_program.ops]
    asymmetric = Program(small_program.tensors, ops, small_program.input, small_program.output,
                         small_program.input_borders, small_program.accumulator_bits, small_program.overflow)
    zw_layer, zw_memory = _conv(asymmetric, name)
    g, costs = zw_layer.gemm, CONFIG.costs
    assert zw_layer.row_sum_adds == g.groups * g.pixels * g.window and zw_layer.zero_point_corrections == zw_layer.output_elements
    before, after = layer_energy(layer, memory, NO_BORDER_COST, CONFIG), layer_energy(zw_layer, zw_memory, NO_BORDER_COST, CONFIG)
    expected = (zw_layer.row_sum_adds * costs.add_pj(32)
                + zw_layer.output_elements * (costs.mul_pj(zw_layer.weight_bits, 32) + costs.add_pj(32)))
    assert after.zero_point == pytest.approx(expected, rel=1e-12)
    assert after.total - before.total == pytest.approx(expected, rel=1e-9)


def test_lookup_table_and_product_energy(gate_program):
    """A table lookup costs an input-width address add and an output-width read of a table memory
    of the table's size; a product two (b + 1)-bit zero-point subtractions and their multiply; the
    table is read from DRAM once, beside the layer's inputs and outputs."""
    costs = CONFIG.costs
    layers = {w.name: w for w in program_layers(gate_program)}
    for name in ("gate", "scale"):
        layer = layers[name]
        memory = layer_memory(layer, CONFIG, 1)
        energy = layer_energy(layer, memory, NO_BORDER_COST, CONFIG)
        if name == "gate":
            per_op = costs.add_pj(8) + 4 * costs.sram_pj_per_bit(512)
            assert memory.dram_read == 4 + 512 and memory.filter_sram_read == 0
        else:
            per_op = costs.mul_pj(9, 9) + 2 * costs.add_pj(9)
            assert memory.dram_read == 4 * 6 * 6 + 4
        assert energy.vector == pytest.approx(layer.vector_ops * per_op, rel=1e-12)
        assert memory.dram_write == layer.output_bytes


def test_concat_costs_a_subtraction_and_a_requantization_per_element():
    """The concat's vector energy is one (b + 1)-bit add per output element (the zero-point
    subtraction, D.17, priced as each of the product's), and its requantizer energy that of every
    other requantizer."""
    quant = QuantParams(4, False, 0.1, 0)
    b = ProgramBuilder("x", (2, 4, 4), quant, BorderTable.nearest(8))
    pooled = b.maxpool("pool", "x", 2, 2)
    avg = b.avgpool("avg", "x", 2, 2, QuantParams(4, False, 0.3, 2), BorderTable.nearest(8))
    layer = next(w for w in program_layers(b.build(b.concat("cat", [pooled, avg], quant, BorderTable.nearest(8)))) if w.name == "cat")
    energy = layer_energy(layer, layer_memory(layer, CONFIG, 0), NO_BORDER_COST, CONFIG)
    costs = CONFIG.costs
    assert energy.vector == pytest.approx(4 * 2 * 2 * costs.add_pj(5), rel=1e-12)
    assert energy.requant == pytest.approx(4 * 2 * 2 * (costs.mul_pj(32, MULTIPLIER_BITS) + costs.add_pj(32) + costs.add_pj(4)), rel=1e-12)
    assert energy.mac == 0


def test_per_channel_affine_conv_costs_a_multiply_add_per_element():
    """On the vector unit a per-channel 1x1 conv costs, per output element, an operand-width
    multiply and an accumulator-wide add, no MACs, and its weights are read from DRAM once and
    from the filter buffer once (a lookup table's table, by contrast, is not a filter-buffer read)."""
    quant = QuantParams(4, False, 0.1, 0)
    b = ProgramBuilder("x", (8, 4, 4), quant, BorderTable.nearest(8))
    y = b.conv2d("bn", "x", np.full((8, 1, 1, 1), 3), 4, np.full(8, 0.01), np.zeros(8, dtype=np.int64), quant,
                 BorderTable.nearest(8), groups=8)
    (layer,) = program_layers(b.build(y))
    memory = layer_memory(layer, CONFIG, 0)
    energy = layer_energy(layer, memory, NO_BORDER_COST, CONFIG)
    costs, operand = CONFIG.costs, CONFIG.array.operand_bits
    assert energy.mac == 0 and energy.vector == pytest.approx(8 * 4 * 4 * (costs.mul_pj(operand, operand) + costs.add_pj(32)), rel=1e-12)
    assert memory.dram_read == layer.input_bytes + layer.weight_bytes == 8 * 4 * 4 * 4 // 8 + 8 * 4 // 8
    assert memory.filter_sram_read == layer.weight_bytes
