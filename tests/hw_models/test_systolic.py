"""The analytic cycle model: SCALE-Sim's golden figure and monotonicity."""

from hypothesis import given, strategies as st

from hw_models.config import ArrayConfig, Dataflow
from hw_models.layers import Gemm
from hw_models.scalesim import TopologyLayer
from hw_models.systolic import compute_cycles, map_gemm

ALEXNET_CONV1 = TopologyLayer("Conv1", 224, 224, 11, 11, 3, 96, 4)

dims = st.integers(1, 300)
arrays = st.integers(1, 64)
dataflows = st.sampled_from(list(Dataflow))


def test_alexnet_conv1_golden():
    """AlexNet conv1 on a 32x32 weight-stationary array takes SCALE-Sim's published 112,283 cycles."""
    assert ALEXNET_CONV1.ofmap == (55, 55)
    assert compute_cycles(ALEXNET_CONV1.gemm, ArrayConfig(32, 32, Dataflow.WS)) == 112_283


def test_formulas_per_dataflow():
    """Each dataflow maps (P, K, N) to its (Sr, Sc, T) and uses its own fold length."""
    gemm = Gemm(pixels=100, window=50, filters=40)
    array = dict(rows=8, cols=16)
    assert compute_cycles(gemm, ArrayConfig(**array, dataflow=Dataflow.OS)) == 13 * 3 * (8 + 16 + 50 - 2) - 1
    assert compute_cycles(gemm, ArrayConfig(**array, dataflow=Dataflow.WS)) == 7 * 3 * (16 + 16 + 100 - 2) - 1
    assert compute_cycles(gemm, ArrayConfig(**array, dataflow=Dataflow.IS)) == 7 * 7 * (16 + 16 + 40 - 2) - 1
    assert map_gemm(Gemm(10, 10, 10, groups=4), 4, 4, Dataflow.WS).folds == 4 * 3 * 3


@given(dims, dims, dims, st.integers(1, 4), arrays, arrays, dataflows, st.sampled_from(["pixels", "window", "filters", "groups"]))
def test_cycles_never_decrease_when_layer_grows(p, k, n, g, rows, cols, dataflow, grow):
    """Growing any GEMM dimension never reduces the compute cycles."""
    array = ArrayConfig(rows, cols, dataflow)
    small = Gemm(p, k, n, g)
    big = Gemm(**{**small.__dict__, grow: getattr(small, grow) + 1})
    assert compute_cycles(big, array) >= compute_cycles(small, array)


@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8), st.integers(1, 8), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 300), dataflows)
def test_cycles_never_increase_when_array_grows_and_stays_full(rows, cols, grow_r, grow_c, mult_r, mult_c, t, dataflow):
    """Growing the array to R' x C' never adds cycles while the layer still fills it (Sr and Sc
    multiples of R' and C'): fewer folds always pay for the longer pipeline."""
    big_rows, big_cols = rows + grow_r - 1, cols + grow_c - 1
    sr, sc = mult_r * big_rows, mult_c * big_cols
    gemm = {Dataflow.OS: Gemm(sr, t, sc), Dataflow.WS: Gemm(t, sr, sc), Dataflow.IS: Gemm(sc, sr, t)}[dataflow]
    assert compute_cycles(gemm, ArrayConfig(big_rows, big_cols, dataflow)) <= compute_cycles(gemm, ArrayConfig(rows, cols, dataflow))


def test_bigger_array_can_be_slower_on_a_small_layer():
    """The known limit of the formula (and of real arrays): a layer that already fits pays for the
    longer fill and drain of a bigger array, so growth alone does not guarantee fewer cycles."""
    gemm = Gemm(1, 1, 1)
    assert compute_cycles(gemm, ArrayConfig(1, 2, Dataflow.OS)) == compute_cycles(gemm, ArrayConfig(1, 1, Dataflow.OS)) + 1
