"""The int8 kernels (direct conv on the VNNI tile, depthwise, linear): equal to the reference
whenever they accept the operands, refusing exactly the operands outside their bounds, and
compiled to the instructions their docstring names; with the requantizer in the AMX kernel's
epilogue, the same levels and counts as the separate pass and the reference."""

import dataclasses
import re

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim import reference
from aquant_sim.kernels import amx, int8
from aquant_sim.kernels.datapath import NumbaDatapath
from aquant_sim.kernels.requant import FINISH_KERNELS, border_epilogue
from aquant_sim.program import BorderTable, Conv2d, Linear, QuantParams, Requantizer
from aquant_sim.reference_datapath import ReferenceDatapath
from aquant_sim.rounding import OverflowPolicy, RequantVariant, accumulator_range
from aquant_sim.testing.programs import OVERFLOW, OpCase, conv_cases, linear_cases, requantizers

needs_vnni = pytest.mark.skipif(not int8.AVAILABLE, reason="the CPU numba compiles for has no AVX-512 VNNI")
engines = pytest.mark.parametrize("engine", int8.ENGINES or (None,), ids=lambda e: "default" if e is None else e.name)
"""Every dense engine this CPU runs (VNNI, and AMX where granted)."""


def _accepted(op, x, zero_point, depthwise=False) -> bool:
    """Whether the int8 kernels must take these operands (the rule of the module text, restated)."""
    w = op.weight.astype(np.int64)
    lo, hi = min(int(x.min()), zero_point), max(int(x.max()), zero_point)
    if w.min() < -128 or w.max() > 127 or hi - lo > 255:
        return False
    if depthwise:
        return True
    rows = np.abs(w.reshape(w.shape[0], -1))
    taps = rows.shape[1]
    return (int8.AVAILABLE and int(rows.sum(axis=1).max()) * (hi - lo) < 1 << 31
            and not (np.any(op.weight_zero_point) and taps * (hi - lo) >= 1 << 31))


def _dtype(op, x, zero_point):
    """int32 exactly when max_c sum_i |w - z_w| * max |x - z| < 2^31 (the module text's rule)."""
    w = op.weight.astype(np.int64).reshape(op.weight.shape[0], -1) - op.weight_zero_point[:, None]
    bound = int(np.abs(w).sum(axis=1).max()) * max(int(x.max()) - zero_point, zero_point - int(x.min()))
    return np.int32 if bound < 1 << 31 else np.int64


@engines
@given(conv_cases())
def test_conv2d_matches_reference_when_accepted(engine, case):
    """Any stride, padding, dilation, groups (depthwise included), zero-points: the int8 sums
    equal the reference's accumulators without the bias, or the kernel declines as it must."""
    (x,), (q,) = case.inputs, case.in_quants
    op = case.op
    depthwise = op.weight.shape[1] == 1 and op.groups == x.shape[1]
    got = int8.conv2d_sums(x, op, q.zero_point, engine=engine)
    assert (got is not None) == _accepted(op, x, q.zero_point, depthwise)
    if got is not None:
        want = reference.conv2d_acc(x, op, q.zero_point) - op.bias[None, :, None, None]
        assert got.dtype == _dtype(op, x, q.zero_point) and np.array_equal(got, want.reshape(got.shape))


@engines
@given(linear_cases())
def test_linear_matches_reference_when_accepted(engine, case):
    """Linear sums equal the reference's (channel-major, without the bias) when accepted."""
    (x,), (q,) = case.inputs, case.in_quants
    got = int8.linear_sums(x, case.op, q.zero_point, engine=engine)
    assert (got is not None) == _accepted(case.op, x, q.zero_point)
    if got is not None:
        want = reference.linear_acc(x, case.op, q.zero_point) - case.op.bias[None, :]
        assert got.dtype == _dtype(case.op, x, q.zero_point) and np.array_equal(got[:, :, 0].T, want)


def _extreme_linear(features: int) -> tuple[Linear, np.ndarray]:
    """Weights all -128 against inputs all 255 (zero-point 0): the largest |sum| per feature."""
    op = Linear("fc", "x", "y", np.full((3, features), -128), 8, np.ones(3), np.zeros(3, dtype=np.int64), None)
    return op, np.full((2, features), 255, dtype=np.int32)


@needs_vnni
@engines
def test_int32_bound_edge_is_exact(engine):
    """65,793 features: bound 65793 * 128 * 255 = 2^31 - 128, accepted, and the sum (128 above
    int32's minimum) is exact."""
    op, x = _extreme_linear(65793)
    assert 65793 * 128 * 255 == (1 << 31) - 128
    got = int8.linear_sums(x, op, 0, engine=engine)
    assert got is not None and np.all(got == -65793 * 128 * 255)
    assert np.array_equal(got[:, :, 0].T, reference.linear_acc(x, op, 0))


@needs_vnni
@engines
def test_sums_past_int32_come_back_int64(engine):
    """w = -128 with z_w = 127 against x = 255 with z = 0: the tile's bound (128 * 255 * K) holds
    but each sum (5) is -255 * 255 * K < -2^31, so the sums come back int64, exact."""
    features = 33100
    op = Linear("fc", "x", "y", np.full((2, features), -128), 8, np.ones(2), np.zeros(2, dtype=np.int64), None,
                weight_zero_point=np.array([127, 127]))
    x = np.full((1, features), 255, dtype=np.int32)
    got = int8.linear_sums(x, op, 0, engine=engine)
    assert got.dtype == np.int64 and np.all(got == -255 * 255 * features) and -255 * 255 * features < -(1 << 31)
    assert np.array_equal(got[:, :, 0].T, reference.linear_acc(x, op, 0))


def test_past_the_int32_bound_declines():
    """One feature more breaks the bound: the kernel declines (an int32 sum would wrap)."""
    op, x = _extreme_linear(65794)
    assert 65794 * 128 * 255 >= 1 << 31
    assert int8.linear_sums(x, op, 0) is None


@pytest.mark.parametrize("what", ["weight", "input", "zero-point"])
def test_operands_wider_than_8_bits_decline(what):
    """A 9-bit weight, an input spanning 257 levels, or a zero-point 256 levels away: None."""
    rng = np.random.default_rng(1)
    weight = rng.integers(-8, 8, size=(4, 3, 3, 3))
    x = rng.integers(0, 256, size=(1, 3, 5, 5), dtype=np.int32)
    zero_point = 0
    if what == "weight":
        weight[0, 0, 0, 0] = 128
    elif what == "input":
        x[0, 0, 0, 0] = 256
    else:
        zero_point = -1
    op = Conv2d("c", "x", "y", weight, 9, np.ones(4), np.zeros(4, dtype=np.int64), None, padding=1)
    assert int8.conv2d_sums(x, op, zero_point) is None


def test_sixteen_bit_operands_take_the_general_path_in_the_datapath():
    """12-bit activations with 12-bit weights (the contract allows 16) through NumbaDatapath: the
    int8 kernels decline and the general exact path gives the reference's levels and counts."""
    rng = np.random.default_rng(2)
    in_q, out_q = QuantParams(12, False, 1.0, 2000), QuantParams(8, False, 1.0, 3)
    weight = rng.integers(-2048, 2048, size=(5, 4, 3, 3))
    requant = Requantizer(np.full(5, 1 << 30), np.full(5, 40), BorderTable.nearest(8))
    op = Conv2d("c", "x", "y", weight, 12, np.ones(5), rng.integers(-99, 99, 5), requant, padding=1,
                weight_zero_point=rng.integers(-2048, 2048, 5))
    x = rng.integers(0, 4096, size=(2, 4, 6, 6), dtype=np.int32)
    assert int8.conv2d_sums(x, op, in_q.zero_point) is None
    args = (op, [x], [in_q], out_q, (5, 6, 6), 32, OverflowPolicy.WRAP)
    (got, *got_counts), (want, *want_counts) = NumbaDatapath().run_accumulating(*args), ReferenceDatapath().run_accumulating(*args)
    assert got.dtype == want.dtype and np.array_equal(got, want) and got_counts == want_counts


@needs_vnni
@engines
@pytest.mark.parametrize("groups, dilation", [(1, 1), (1, 2), (2, 1)], ids=["dense", "dilated", "grouped"])
def test_extreme_products_with_zero_points(engine, groups, dilation):
    """Every product at its extreme (-128 * 255 and 127 * 255, padding at z = 200), non-zero z_w:
    the row-sum correction and the padded taps are exact on each segment layout."""
    weight = np.where(np.arange(8 * (16 // groups) * 9).reshape(8, 16 // groups, 3, 3) % 2 == 0, -128, 127)
    op = Conv2d("c", "x", "y", weight, 8, np.ones(8), np.zeros(8, dtype=np.int64), None, padding=2, dilation=dilation,
                groups=groups, weight_zero_point=np.array([-128, 127, 0, 5, -5, 1, -1, 100]))
    x = np.full((2, 16, 5, 7), 255, dtype=np.int32)
    x[:, :, ::2] = 0
    got = int8.conv2d_sums(x, op, 200, engine=engine)
    assert got is not None
    assert np.array_equal(got, reference.conv2d_acc(x, op, 200).reshape(got.shape))


@numba.njit
def _tile(u, w, u_rows, w_rows, outer, u_outer, w_outer, inner, u_inner, w_inner, length, out):
    """dot_tile from a (not cached, so inspectable) numba function, offsets from arrays."""
    int8.dot_tile(u, w, u_rows[0], u_rows[1], u_rows[2], u_rows[3], w_rows[0], w_rows[1], w_rows[2], w_rows[3],
                  outer, u_outer, w_outer, inner, u_inner, w_inner, length, out)


def _tile_by_numpy(u, w, u_rows, w_rows, outer, u_outer, w_outer, inner, u_inner, w_inner, length):
    taps = [a * u_outer + b * u_inner + k for a in range(outer) for b in range(inner) for k in range(length)]
    weights = [a * w_outer + b * w_inner + k for a in range(outer) for b in range(inner) for k in range(length)]
    return np.array([int(u[r + np.array(taps)].astype(np.int64) @ w[c + np.array(weights)].astype(np.int64))
                     for c in w_rows for r in u_rows])


@needs_vnni
@pytest.mark.parametrize("length", [1, 63, 64, 65, 200])
def test_dot_tile_sums_every_segment(length):
    """The tile's 16 sums over (outer, inner, length) segments at arbitrary offsets, for
    segment lengths around the 64-byte step, equal int64 numpy sums; extreme bytes included."""
    rng = np.random.default_rng(length)
    u = rng.integers(0, 256, size=5000).astype(np.uint8)
    w = rng.integers(-128, 128, size=5000).astype(np.int8)
    u[:300], w[:300] = 255, -128
    shape = dict(outer=3, u_outer=length + 500, w_outer=length + 7, inner=2, u_inner=length + 3, w_inner=length)
    u_rows = np.array([0, 11, 1, 777], dtype=np.int64)
    w_rows = np.array([0, 5, 1300, 2], dtype=np.int64)
    out = np.empty(16, dtype=np.int32)
    _tile(u, w, u_rows, w_rows, *shape.values(), length, out)
    assert np.array_equal(out, _tile_by_numpy(u, w, u_rows, w_rows, *shape.values(), length))


@needs_vnni
def test_dot_tile_runs_vpdpbusd():
    """The tile's machine code multiplies with vpdpbusd on 512-bit registers and loads with
    byte-masked vmovdqu8 (the instructions the module text names)."""
    assembly = "\n".join(_tile.inspect_asm().values())
    assert len(re.findall(r"\bvpdpbusd\s+%zmm", assembly)) >= 16
    assert re.search(r"\bvmovdqu8\s+\(.*\),\s*%zmm\d+\s*\{%k\d\}\s*\{z\}", assembly)


@st.composite
def _border_cases(draw, cases):
    """A drawn conv or linear case whose requantizer is (6)-(8) (BORDER), per-channel or shared
    multipliers and any border table, and an overflow policy."""
    case = draw(cases)
    channels = case.op.weight.shape[0]
    requant = draw(requantizers(channels, case.out_quant, case.accumulator_bits, variants=st.just(RequantVariant.BORDER)))
    return dataclasses.replace(case, op=dataclasses.replace(case.op, requant=requant)), draw(OVERFLOW)


def _epilogue(case: OpCase, policy: OverflowPolicy):
    lo, hi = accumulator_range(case.accumulator_bits)
    return border_epilogue(case.op.bias, case.op.requant, case.out_quant, lo, hi, policy is OverflowPolicy.SATURATE)


def _separate_pass(case: OpCase, policy: OverflowPolicy, sums: np.ndarray, channel_major: bool):
    """The unfused path: the kernels' sums through the simulator's separate requantizing pass."""
    lo, hi = accumulator_range(case.accumulator_bits)
    r, q = case.op.requant, case.out_quant
    batch = case.inputs[0].shape[0]
    out = np.empty((batch, case.op.weight.shape[0], sums.shape[2]), dtype=np.int32)
    stats = np.empty((out.shape[0] * out.shape[1], 3), dtype=np.int64)
    FINISH_KERNELS[channel_major][0](sums, case.op.bias, lo, hi, policy is OverflowPolicy.SATURATE, r.multiplier,
                                     r.shift, r.frac_bits, r.borders.values, q.zero_point, q.qmin, q.qmax, out, stats)
    return out, stats


def _assert_fused_equals(case: OpCase, policy: OverflowPolicy, levels, stats, separate):
    """Levels and the three counts equal the separate pass's and the REFERENCE backend's."""
    counts = [int(stats[:, 0].max()), int(stats[:, 1].sum()), int(stats[:, 2].sum())]
    out, separate_stats = separate
    assert levels.dtype == np.int32 and np.array_equal(levels.reshape(out.shape), out)
    assert counts == [int(separate_stats[:, 0].max()), int(separate_stats[:, 1].sum()), int(separate_stats[:, 2].sum())]
    want = ReferenceDatapath().run_accumulating(case.op, list(case.inputs), list(case.in_quants), case.out_quant, None,
                                                case.accumulator_bits, policy)
    assert np.array_equal(levels.reshape(want.values.shape), want.values)
    assert counts == [want.max_abs_acc, want.overflows, want.zeros]


def _on_tiles(engine, sums, op=None, in_channels=None) -> bool:
    """Whether the AMX kernel takes these operands (the rule of its module text, restated): the
    int8 kernels accept them, AMX is the engine, the sums fit int32, and a conv is dense with one
    group and no horizontal dilation."""
    if sums is None or sums.dtype != np.int32 or (engine or (int8.ENGINES or (None,))[-1]) is not int8.Engine.AMX:
        return False
    if op is None:
        return True
    depthwise = op.weight.shape[1] == 1 and op.groups == in_channels
    return not depthwise and op.groups == 1 and op.dilation[1] == 1


@engines
@given(_border_cases(conv_cases()))
def test_conv2d_epilogue_matches_separate_pass_and_reference(engine, drawn):
    """Any stride, padding, dilation, groups (depthwise included), zero-points, per-channel or
    shared multipliers, border tables, accumulator widths and overflow policies: where the AMX
    kernel takes the conv, the levels its epilogue writes and its counts (max |acc|, overflows,
    zeros) equal the separate pass over the same kernel's sums and the reference; elsewhere it
    declines (the separate pass runs)."""
    case, policy = drawn
    (x,), (q,) = case.inputs, case.in_quants
    fused = int8.conv2d_levels(x, case.op, q.zero_point, _epilogue(case, policy), engine=engine)
    sums = int8.conv2d_sums(x, case.op, q.zero_point, engine=engine)
    assert (fused is not None) == _on_tiles(engine, sums, case.op, x.shape[1])
    if fused is not None:
        _assert_fused_equals(case, policy, *fused, _separate_pass(case, policy, sums, channel_major=False))


@engines
@given(_border_cases(linear_cases()))
def test_linear_epilogue_matches_separate_pass_and_reference(engine, drawn):
    """Linear layers: where the AMX kernel takes them, the epilogue's (N, O) levels and counts
    equal the separate pass's over the channel-major sums and the reference's; elsewhere it
    declines."""
    case, policy = drawn
    (x,), (q,) = case.inputs, case.in_quants
    fused = int8.linear_levels(x, case.op, q.zero_point, _epilogue(case, policy), engine=engine)
    sums = int8.linear_sums(x, case.op, q.zero_point, engine=engine)
    assert (fused is not None) == _on_tiles(engine, sums)
    if fused is not None:
        levels, stats = fused
        out, separate_stats = _separate_pass(case, policy, sums, channel_major=True)
        _assert_fused_equals(case, policy, levels, stats, (out[:, :, 0], separate_stats))


@pytest.mark.skipif(not amx.AVAILABLE, reason="this CPU or kernel grants no AMX-INT8 tiles")
@pytest.mark.parametrize("policy", list(OverflowPolicy))
@pytest.mark.parametrize("kind", ["dense", "linear"])
def test_epilogue_counts_overflows_and_zeros(policy, kind):
    """A 12-bit accumulator that overflows (|acc| up to 127 * 255 * K plus a bias of 3000), 40
    channels (a second block of 8), 12 x 31 positions (runs of a full and a partial tile),
    per-level borders per channel and the output zero-point at qmin (every negative sum lands
    on it): levels, max |acc|, overflow and zero counts of the AMX epilogue equal the
    reference, for a conv and a linear layer."""
    rng = np.random.default_rng(7)
    channels = 40
    in_q, out_q = QuantParams(8, False, 1.0, 3), QuantParams(4, False, 1.0, 0)
    requant = Requantizer(rng.integers(1 << 30, 1 << 31, channels), rng.integers(37, 40, channels),
                          BorderTable(6, rng.integers(1, 65, size=(channels, 15))))
    bias, w_zero = rng.integers(-3000, 3000, channels), rng.integers(-5, 5, channels)
    if kind == "linear":
        op = Linear("fc", "x", "y", rng.integers(-128, 128, size=(channels, 70)), 8, np.ones(channels), bias, requant,
                    weight_zero_point=w_zero)
        x = rng.integers(0, 256, size=(17, 70)).astype(np.int32)
    else:
        op = Conv2d("c", "x", "y", rng.integers(-128, 128, size=(channels, 3, 3, 3)), 8, np.ones(channels),
                    bias, requant, stride=(1, 2), padding=1, weight_zero_point=w_zero)
        x = rng.integers(0, 256, size=(2, 3, 12, 62)).astype(np.int32)
    case = OpCase(op, (x,), (in_q,), out_q, 12)
    run = int8.linear_levels if kind == "linear" else int8.conv2d_levels
    levels, stats = run(x, op, in_q.zero_point, _epilogue(case, policy), engine=int8.Engine.AMX)
    want = ReferenceDatapath().run_accumulating(op, [x], [in_q], out_q, None, 12, policy)
    assert np.array_equal(levels.reshape(want.values.shape), want.values)
    assert [int(stats[:, 0].max()), int(stats[:, 1].sum()), int(stats[:, 2].sum())] == \
        [want.max_abs_acc, want.overflows, want.zeros]
    assert want.overflows > 0 and want.zeros > 0  # both counts had something to count
