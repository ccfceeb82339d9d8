"""The cycle-stepped array model computes the right product in exactly the analytic cycle count."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from aquant_sim.builder import ProgramBuilder
from aquant_sim.program import BorderTable, QuantParams
from hw_models.config import ArrayConfig, Dataflow
from hw_models.cycle_stepped import simulate_gemm
from hw_models.layers import Gemm, program_layers
from hw_models.memory import sram_accesses
from hw_models.systolic import compute_cycles

small = st.integers(1, 12)


@st.composite
def problems(draw):
    groups, p, k, n = draw(st.integers(1, 2)), draw(small), draw(small), draw(small)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(-8, 8, size=(groups, p, k))
    b = rng.integers(-8, 8, size=(groups, k, n))
    return a, b, draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.sampled_from(list(Dataflow)))


@given(problems())
def test_stepped_equals_analytic(problem):
    """On random small layers and arrays, for all three dataflows, the PE-by-PE model takes exactly
    the analytic cycle count, computes a @ b exactly, and reads and writes SRAM as often as the
    memory model says."""
    a, b, rows, cols, dataflow = problem
    groups, p, k = a.shape
    gemm = Gemm(p, k, b.shape[2], groups)
    array = ArrayConfig(rows, cols, dataflow)
    stepped = simulate_gemm(a, b, rows, cols, dataflow)
    assert np.array_equal(stepped.output, a @ b)
    assert stepped.cycles == compute_cycles(gemm, array)
    assert stepped.busy_macs == gemm.macs
    counts = sram_accesses(gemm, array)
    assert (stepped.ifmap_reads, stepped.filter_reads, stepped.ofmap_writes, stepped.psum_reads) == (
        counts.ifmap_reads, counts.filter_reads, counts.ofmap_writes, counts.psum_reads)


def test_single_pe_single_mac():
    """A 1x1 GEMM on a 1x1 array: WS/IS load one cycle and compute in the next (index 1); OS computes at once (index 0)."""
    one = np.ones((1, 1, 1), dtype=np.int64)
    assert simulate_gemm(one, one, 1, 1, Dataflow.WS).cycles == 1
    assert simulate_gemm(one, one, 1, 1, Dataflow.IS).cycles == 1
    assert simulate_gemm(one, one, 1, 1, Dataflow.OS).cycles == 0


@pytest.mark.parametrize("dataflow", list(Dataflow))
@pytest.mark.parametrize("rows, cols", [(4, 4), (3, 2), (8, 1)])
def test_depthwise_conv_on_the_array(dataflow, rows, cols):
    """A depthwise 3x3 conv (stride 2, padding 1) lowered by ``program_layers`` to one GEMM per
    channel runs PE by PE in exactly the analytic cycles with exactly the memory model's SRAM
    accesses, and computes the convolution itself (checked against a direct loop)."""
    rng = np.random.default_rng(rows * 10 + cols)
    channels, size = 5, 7
    quant = QuantParams(4, False, 0.1, 0)
    weights = rng.integers(-8, 8, size=(channels, 1, 3, 3))
    builder = ProgramBuilder("x", (channels, size, size), quant, BorderTable.nearest(8))
    y = builder.conv2d("dw", "x", weights, 4, np.full(channels, 0.01), np.zeros(channels, dtype=np.int64),
                       quant, BorderTable.nearest(8), stride=2, padding=1, groups=channels)
    (layer,) = program_layers(builder.build(y))
    x = np.pad(rng.integers(0, 16, size=(channels, size, size)), ((0, 0), (1, 1), (1, 1)))
    out = (size + 2 - 3) // 2 + 1
    windows = np.stack([x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].reshape(channels, 9) for i in range(out) for j in range(out)], axis=1)
    filters = weights.reshape(channels, 9, 1)
    stepped = simulate_gemm(windows, filters, rows, cols, dataflow)
    direct = np.array([[sum(int(x[c, 2 * i + u, 2 * j + v]) * int(weights[c, 0, u, v]) for u in range(3) for v in range(3))
                        for i in range(out) for j in range(out)] for c in range(channels)])
    assert layer.gemm == Gemm(out * out, 9, 1, channels)
    assert np.array_equal(stepped.output[:, :, 0], direct)
    array = ArrayConfig(rows, cols, dataflow)
    assert stepped.cycles == compute_cycles(layer.gemm, array)
    counts = sram_accesses(layer.gemm, array)
    assert (stepped.ifmap_reads, stepped.filter_reads, stepped.ofmap_writes, stepped.psum_reads) == (
        counts.ifmap_reads, counts.filter_reads, counts.ofmap_writes, counts.psum_reads)
