"""The memory model: compulsory traffic, spills, stalls."""

import dataclasses

import pytest
from hypothesis import assume, given, strategies as st

from aquant_sim.errors import UnsupportedError
from aquant_sim.program import OpKind
from hw_models.config import AcceleratorConfig, ArrayConfig, Dataflow, MemoryConfig, MemoryModel
from hw_models.layers import Engine, Gemm, LayerWork, program_layers
from hw_models.memory import layer_memory
from hw_models.systolic import compute_cycles


@st.composite
def conv_layers(draw):
    """A random conv layer's demand: GEMM dims, widths, and the unique input it reads."""
    p, k, n, g = draw(st.integers(1, 3000)), draw(st.integers(1, 2000)), draw(st.integers(1, 600)), draw(st.integers(1, 4))
    in_bits, w_bits, out_bits = draw(st.integers(2, 8)), draw(st.integers(2, 8)), draw(st.sampled_from([2, 4, 8, 32]))
    inputs = draw(st.integers(1, g * p * k))
    return LayerWork("conv", OpKind.CONV2D, Engine.ARRAY, Gemm(p, k, n, g), 0, inputs, in_bits, g * k * n, w_bits,
                     g * p * n, out_bits, g * p * n, None, 15)


@st.composite
def configs(draw):
    kib = st.floats(0.25, 2048)
    return AcceleratorConfig(
        array=ArrayConfig(draw(st.integers(1, 64)), draw(st.integers(1, 64)), draw(st.sampled_from(list(Dataflow)))),
        memory=MemoryConfig(draw(kib), draw(kib), draw(kib), draw(st.floats(0.5, 256)), draw(st.sampled_from(list(MemoryModel)))),
    )


def memory_or_none(layer, config, cycles, table_bytes=0):
    """The layer's memory figures; None when the tiling model finds no tile that fits (the
    error names the layer)."""
    try:
        return layer_memory(layer, config, cycles, table_bytes)
    except UnsupportedError as error:
        assert config.memory.model is MemoryModel.TILING and f"layer '{layer.name}': no tiling" in str(error)
        return None


@given(conv_layers(), configs(), st.integers(0, 10_000))
def test_traffic_never_below_compulsory(layer, config, table_bytes):
    """DRAM reads cover every weight, input and table byte at least once, writes every output byte."""
    memory = memory_or_none(layer, config, compute_cycles(layer.gemm, config.array), table_bytes)
    assume(memory is not None)
    assert memory.dram_read >= layer.input_bytes + layer.weight_bytes + table_bytes
    assert memory.dram_write >= layer.output_bytes
    assert memory.dram_total >= memory.compulsory
    assert memory.stall_cycles == max(0, memory.dram_cycles - compute_cycles(layer.gemm, config.array))


@given(conv_layers(), configs())
def test_bigger_buffers_and_bandwidth_never_hurt(layer, config):
    """Doubling every buffer never adds DRAM traffic; doubling the bandwidth never adds stalls."""
    cycles = compute_cycles(layer.gemm, config.array)
    base = memory_or_none(layer, config, cycles)
    assume(base is not None)
    m = config.memory
    bigger = dataclasses.replace(config, memory=MemoryConfig(2 * m.ifmap_sram_kib, 2 * m.filter_sram_kib, 2 * m.ofmap_sram_kib, m.dram_bytes_per_cycle, m.model))
    faster = dataclasses.replace(config, memory=MemoryConfig(m.ifmap_sram_kib, m.filter_sram_kib, m.ofmap_sram_kib, 2 * m.dram_bytes_per_cycle, m.model))
    assert layer_memory(layer, bigger, cycles).dram_total <= base.dram_total
    assert layer_memory(layer, faster, cycles).stall_cycles <= base.stall_cycles


def test_partial_sums_spill_only_when_they_do_not_fit():
    """Under WS with several row folds, partial sums spill to DRAM (write and read back, at the
    accumulator width) exactly when P x C accumulators exceed half the ofmap buffer; OS never spills."""
    layer = LayerWork("c", OpKind.CONV2D, Engine.ARRAY, Gemm(1024, 64, 32), 0, 4096, 8, 64 * 32, 8, 1024 * 32, 8, 1024 * 32, None, 255)
    ws = ArrayConfig(16, 32, Dataflow.WS)  # 4 row folds; live partial sums 1024 x 32 x 4 B = 128 KiB
    small = AcceleratorConfig(array=ws, memory=MemoryConfig(64, 64, 128, 8))
    large = AcceleratorConfig(array=ws, memory=MemoryConfig(64, 64, 256, 8))
    assert layer_memory(layer, small, 1).spill == 2 * 3 * 1024 * 32 * 4
    assert layer_memory(layer, large, 1).spill == 0
    assert layer_memory(layer, AcceleratorConfig(array=ArrayConfig(16, 32, Dataflow.OS), memory=small.memory), 1).spill == 0


def test_tiling_beats_fold_reuse():
    """The WS layer above under the tiling model keeps its partial sums on chip (k split inside
    the output tiles) and moves less than the fold model, which spills them."""
    layer = LayerWork("c", OpKind.CONV2D, Engine.ARRAY, Gemm(1024, 64, 32), 0, 4096, 8, 64 * 32, 8, 1024 * 32, 8, 1024 * 32, None, 255)
    ws = ArrayConfig(16, 32, Dataflow.WS)
    fold = layer_memory(layer, AcceleratorConfig(array=ws, memory=MemoryConfig(64, 64, 128, 8)), 1)
    tiled = layer_memory(layer, AcceleratorConfig(array=ws, memory=MemoryConfig(64, 64, 128, 8, "tiling")), 1)
    assert tiled.tiling is not None and fold.tiling is None
    assert tiled.spill == 0 and tiled.dram_total == tiled.compulsory < fold.dram_total


@pytest.mark.parametrize("model", list(MemoryModel))
def test_synthetic_network_never_below_compulsory(small_program, model):
    """On a whole program under every dataflow, each layer moves at least its compulsory bytes."""
    for dataflow in Dataflow:
        config = AcceleratorConfig(array=ArrayConfig(8, 8, dataflow), memory=MemoryConfig(1, 1, 1, 4, model))
        for layer in program_layers(small_program):
            cycles = compute_cycles(layer.gemm, config.array) if layer.gemm else 1
            memory = layer_memory(layer, config, cycles)
            assert memory.dram_total >= memory.compulsory
            if layer.engine is Engine.FUSED:
                assert memory.dram_total == 0
