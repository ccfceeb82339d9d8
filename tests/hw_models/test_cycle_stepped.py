"""The cycle-stepped array model computes the right product in exactly the analytic cycle count."""

import numpy as np
from hypothesis import given, strategies as st

from hw_models.config import ArrayConfig, Dataflow
from hw_models.cycle_stepped import simulate_gemm
from hw_models.layers import Gemm
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
