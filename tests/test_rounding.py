"""Properties of the rounding contract, docs/contract.md, equations (1)-(8)."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aquant_sim import rounding
from aquant_sim.errors import ProgramError
from aquant_sim.testing import strategies as ts


def exact_border_round(u: Fraction, qmin: int, qmax: int, beta_row) -> int:
    """Equations (2)-(4) on an exact rational grid position ``u``; ``beta_row[j]`` is a Fraction
    (a row of one entry serves every level)."""
    k = u.numerator // u.denominator
    f = u - k
    j = min(max(k, qmin), qmax - 1) - qmin
    beta = beta_row[j] if len(beta_row) > 1 else beta_row[0]
    return min(max(k + (f >= beta), qmin), qmax)


@st.composite
def dyadic_reals(draw):
    """Reals ``a / 2^k`` (exact in float64) and a grid to round them on."""
    grid = draw(ts.integer_grids(bits=draw(ts.bit_widths(2, 8))))
    k = draw(st.integers(0, 12))
    span = (grid.qmax - grid.qmin + 4) << k
    numerators = draw(st.lists(st.integers(-span, span), min_size=1, max_size=32))
    return grid, np.array([[a / (1 << k) for a in numerators]])


@given(dyadic_reals())
def test_half_border_is_round_half_up(case):
    """(4) with beta = 1/2 everywhere is round-half-up: clamp(floor(x/s + z + 1/2))."""
    grid, x = case
    q = rounding.border_round(x, 1.0, grid.zero_point, grid.qmin, grid.qmax, np.array([[0.5]]))
    expected = np.clip(np.floor(x + grid.zero_point + 0.5), grid.qmin, grid.qmax)
    assert np.array_equal(q, expected)


@given(dyadic_reals())
def test_unit_border_is_floor(case):
    """(4) with beta = 1 everywhere is floor: clamp(floor(x/s + z))."""
    grid, x = case
    q = rounding.border_round(x, 1.0, grid.zero_point, grid.qmin, grid.qmax, np.array([[1.0]]))
    assert np.array_equal(q, np.clip(np.floor(x + grid.zero_point), grid.qmin, grid.qmax))


@st.composite
def per_channel_requantizers(draw, max_acc_bits: int = 32):
    """Per-channel (m, n), a border table of any granularity and (N, C) accumulators."""
    grid = draw(ts.integer_grids())
    accumulator_bits = draw(ts.accumulator_widths().filter(lambda a: a <= max_acc_bits))
    frac = draw(ts.frac_bits())
    channels = draw(st.integers(1, 3))
    m = draw(st.lists(ts.multipliers(), min_size=channels, max_size=channels))
    n = draw(st.lists(ts.shifts(frac, accumulator_bits), min_size=channels, max_size=channels))
    table = draw(ts.border_tables(frac, channels, grid.bits))
    rows = draw(st.integers(1, 8))
    acc = draw(st.lists(ts.accumulators(accumulator_bits), min_size=rows * channels, max_size=rows * channels))
    return grid, frac, np.array(m), np.array(n), table, np.array(acc, dtype=np.int64).reshape(rows, channels)


@given(per_channel_requantizers())
def test_integer_requantizer_equals_exact_border_rounding(case):
    """(8) equals (4) for every accumulator when M = m * 2^-n and beta = B / 2^F, in exact
    rational arithmetic, for per-channel multipliers and every table granularity."""
    grid, frac, m, n, table, acc = case
    q = rounding.requantize(acc, m, n, frac, table, grid.zero_point, grid.qmin, grid.qmax, channel_axis=1)
    for (row, c), value in np.ndenumerate(acc):
        u = Fraction(int(value) * int(m[c]), 1) / (Fraction(2) ** int(n[c])) + grid.zero_point
        betas = [Fraction(int(b), 1 << frac) for b in table[c if table.shape[0] > 1 else 0]]
        assert q[row, c] == exact_border_round(u, grid.qmin, grid.qmax, betas), (row, c)


@given(per_channel_requantizers(max_acc_bits=21))
def test_integer_requantizer_equals_float_border_round(case):
    """(8) equals rounding.border_round (float64 (1)-(4)) when acc * m fits float64 exactly."""
    grid, frac, m, n, table, acc = case
    q = rounding.requantize(acc, m, n, frac, table, grid.zero_point, grid.qmin, grid.qmax, channel_axis=1)
    real = acc * rounding.dyadic_value(m, n)[None, :]
    beta = table / float(1 << frac)
    assert np.array_equal(q, rounding.border_round(real, 1.0, grid.zero_point, grid.qmin, grid.qmax, beta))


@given(per_channel_requantizers())
def test_requantizer_monotone_and_in_range(case):
    """q is non-decreasing in acc (per channel) and always within [qmin, qmax]."""
    grid, frac, m, n, table, acc = case
    acc = np.sort(acc, axis=0)
    q = rounding.requantize(acc, m, n, frac, table, grid.zero_point, grid.qmin, grid.qmax, channel_axis=1)
    assert q.min() >= grid.qmin and q.max() <= grid.qmax
    assert np.all(np.diff(q, axis=0) >= 0)


@given(st.integers(1, 3).flatmap(lambda c: st.tuples(
    ts.integer_grids(bits=6), st.just(c),
    st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40),
    st.floats(1e-3, 1e3))), st.data())
def test_border_round_monotone_and_in_range(case, data):
    """(4) is non-decreasing in x for any border table (borders in (0, 1]) and within [qmin, qmax]."""
    grid, channels, values, scale = case
    table = data.draw(ts.border_tables(8, channels, grid.bits)) / 256.0
    x = np.sort(np.array(values))[:, None].repeat(channels, axis=1)
    q = rounding.border_round(x, scale, grid.zero_point, grid.qmin, grid.qmax, table)
    assert q.min() >= grid.qmin and q.max() <= grid.qmax
    assert np.all(np.diff(q, axis=0) >= 0)


@given(ts.quant_params(), st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=16))
def test_border_round_is_nearest_level_with_half_borders(quant, values):
    """With beta = 1/2, (1)-(4) picks a level within half a step of x/s + z unless it clamps."""
    x = np.array([values])
    q = rounding.border_round(x, quant.scale, quant.zero_point, quant.qmin, quant.qmax, np.array([[0.5]]))
    u = x / quant.scale + quant.zero_point
    inside = (u >= quant.qmin) & (u <= quant.qmax)
    assert np.all(np.abs(q - u)[inside] <= 0.5 + 1e-9)
    assert np.all(q[u < quant.qmin] == quant.qmin) and np.all(q[u > quant.qmax + 0.5] == quant.qmax)


@given(st.floats(min_value=1e-200, max_value=1e200, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_relative_error(real):
    """quantize_multiplier gives m in [2^30, 2^31) with |m 2^-n - M| / M <= 2^-31 (exact check)."""
    m, n = rounding.quantize_multiplier([real])
    m, n = int(m[0]), int(n[0])
    assert (1 << 30) <= m < (1 << 31)
    represented = Fraction(m) / Fraction(2) ** n
    assert abs(represented - Fraction(real)) / Fraction(real) <= Fraction(1, 1 << 31)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_quantize_multiplier_rejects_non_positive(bad):
    """quantize_multiplier refuses multipliers that are not finite and positive."""
    with pytest.raises(ProgramError):
        rounding.quantize_multiplier([bad])


@given(ts.frac_bits().flatmap(lambda f: st.tuples(st.just(f), st.lists(ts.border_values(f), min_size=1, max_size=20))))
def test_encode_borders_round_trip(case):
    """encode_borders(B / 2^F, F) == B for every integer border B in [1, 2^F]."""
    frac, values = case
    values = np.array(values)
    assert np.array_equal(rounding.encode_borders(values / float(1 << frac), frac), values)


@given(ts.frac_bits(), st.floats(0.0, 1.0))
def test_encode_borders_nearest(frac, beta):
    """encode_borders picks the nearest F-bit border (half a step at most) within [1, 2^F]."""
    b = int(rounding.encode_borders([beta], frac)[0])
    assert 1 <= b <= 1 << frac
    if beta >= 1.0 / (1 << frac):
        assert abs(b / (1 << frac) - beta) <= 0.5 / (1 << frac)


@given(ts.accumulator_widths(), st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=32))
def test_apply_overflow_wrap(bits, values):
    """WRAP keeps the value modulo 2^A in [-2^(A-1), 2^(A-1)) and counts the values outside."""
    acc = np.array(values, dtype=np.int64)
    lo, hi = rounding.accumulator_range(bits)
    wrapped, count = rounding.apply_overflow(acc, bits, rounding.OverflowPolicy.WRAP)
    assert np.all((wrapped >= lo) & (wrapped <= hi))
    assert np.all((wrapped - acc) % (1 << bits) == 0)
    assert count == int(np.sum((acc < lo) | (acc > hi)))


@given(ts.accumulator_widths(), st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=32))
def test_apply_overflow_saturate(bits, values):
    """SATURATE clamps to the A-bit range and counts the values outside."""
    acc = np.array(values, dtype=np.int64)
    lo, hi = rounding.accumulator_range(bits)
    saturated, count = rounding.apply_overflow(acc, bits, rounding.OverflowPolicy.SATURATE)
    assert np.array_equal(saturated, np.clip(acc, lo, hi))
    assert count == int(np.sum((acc < lo) | (acc > hi)))


M_EIGHTH = (1 << 30, 33)  # M = 2^30 * 2^-33 = 1/8
M_QUARTER = (1 << 30, 32)  # M = 1/4

# (acc, (m, n), F, borders row(s), z, qmin, qmax, expected q): computed by hand.
GOLDEN = [
    (3, M_EIGHTH, 4, [8], 0, -8, 7, 0),       # 3/8 = 0.375: v = 6/16, f = 6 < 8 -> 0
    (4, M_EIGHTH, 4, [8], 0, -8, 7, 1),       # 4/8 = 0.5: f = 8 >= 8, a tie rounds up -> 1
    (-4, M_EIGHTH, 4, [8], 0, -8, 7, 0),      # -0.5: v = -8, k = -1, f = 8 >= 8 -> 0 (half up)
    (-5, M_EIGHTH, 4, [8], 0, -8, 7, -1),     # -0.625: v = -10, k = -1, f = 6 -> -1
    (7, M_EIGHTH, 4, [16], 0, -8, 7, 0),      # beta = 1 is floor: 0.875 -> 0
    (-1, M_EIGHTH, 4, [16], 0, -8, 7, -1),    # beta = 1: -0.125 -> floor -1
    (1, M_EIGHTH, 4, [1], 0, 0, 15, 1),       # beta = 1/16: 0.125 = 2/16 >= 1/16 -> 1
    (4, M_EIGHTH, 4, [8], 3, 0, 15, 4),       # zero-point 3: v = 8 + 3*16 = 56, k = 3, f = 8 -> 4
    (100, M_EIGHTH, 4, [8], 0, -8, 7, 7),     # 12.5 -> 13, clamped to qmax 7
    (-100, M_EIGHTH, 4, [8], 0, -8, 7, -8),   # -12.5 -> -12, clamped to qmin -8
    (1, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 1),   # 0.25: k = 0, f = 4 >= B[0] = 4 -> 1
    (5, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 1),   # 1.25: k = 1, f = 4 < B[1] = 8 -> 1
    (10, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 2),  # 2.5: k = 2, f = 8 < B[2] = 12 -> 2
    (11, M_QUARTER, 4, [4, 8, 12], 0, 0, 3, 3),  # 2.75: k = 2, f = 12 >= 12 -> 3
    (1, (1 << 30, 15), 16, [1 << 15], 0, 0, 65535, 32768),  # M = 2^15, n - F = -1 shifts left
    (-1, (1 << 30, 15), 16, [1 << 15], 0, -32768, 32767, -32768),  # -2^15 on a signed 16-bit grid
    (3, (3 << 29, 32), 2, [2], 0, 0, 3, 1),   # M = 3/8: 9/8 = 1.125, F = 2: v = 4, k = 1, f = 0 -> 1
    (-3, (3 << 29, 32), 2, [2], 0, -2, 1, -1),  # -9/8: v = floor(-4.5) = -5, k = -2, f = 3 -> -1
]


@pytest.mark.parametrize("acc, mn, frac, borders, z, qmin, qmax, expected", GOLDEN)
def test_golden_vectors(acc, mn, frac, borders, z, qmin, qmax, expected):
    """The requantizer (6)-(8) gives the hand-computed level for each golden case."""
    table = np.array([borders], dtype=np.int64)
    q = rounding.requantize(np.array([[acc]]), [mn[0]], [mn[1]], frac, table, z, qmin, qmax)
    assert int(q[0, 0]) == expected


# ---------------------------------------------------------------------------------------------
# The FP32_ADD variant (17)-(20): onnxruntime's QLinearAdd


def _exact_fma(x, y, z) -> np.ndarray:
    """Each ``x * y + z`` in exact rationals, rounded once to float32 (the runtime oracle's rounding)."""
    from aquant_sim.testing.runtime_oracles import _round_float32

    return np.array([_round_float32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))
                     for a, b, c in zip(x, y, z)], dtype=np.float32)


def test_float32_fma_is_exact_where_float64_rounds_twice():
    """The emulated fused multiply-add equals exact rounding on 20,000 hard cases (tiny and huge
    addends, exact cancellations, zeros), where ``float32(float64(x * y) + z)`` is wrong once."""
    rng = np.random.default_rng(4)
    n = 20_000
    x = rng.integers(-255, 256, n).astype(np.float32)
    y = (rng.standard_normal(n) * 2.0 ** rng.integers(-40, 10, n)).astype(np.float32)
    z = (rng.standard_normal(n) * 2.0 ** rng.integers(-40, 10, n)).astype(np.float32)
    y[:50], z[50:100] = 0, 0
    z[100:200] = -(x[100:200].astype(np.float64) * y[100:200]).astype(np.float32)
    exact = _exact_fma(x, y, z)
    assert np.array_equal(rounding.float32_fma(x, y, z), exact)
    assert np.count_nonzero((x.astype(np.float64) * y + z).astype(np.float32) != exact) == 1


@st.composite
def fp32_add_cases(draw):
    """Levels of two uint8 or int8 inputs, float32 ratios in [2^-8, 2^8), zero-points, an offset."""
    signed = draw(st.booleans())
    lo, hi = (-128, 127) if signed else (0, 255)
    ratios = [np.float32(draw(st.floats(2.0**-8, 2.0**8 - 1, width=32))) for _ in range(2)]
    zeros = [draw(st.integers(lo, hi)) for _ in range(3)]
    seed = draw(st.integers(0, 2**32 - 1))
    a, b = np.random.default_rng(seed).integers(lo, hi + 1, size=(2, 64))
    return a, b, ratios, zeros, lo, hi, draw(st.sampled_from([0, 128]))


@given(fp32_add_cases())
def test_fp32_add_equals_the_mlas_transcription(case):
    """(17)-(20) equal the per-element transcription of MLAS's AVX2 QLinearAdd in exact rationals."""
    from aquant_sim.testing.runtime_oracles import mlas_qlinear_add

    a, b, (r_a, r_b), (z_a, z_b, z_c), lo, hi, o = case
    got = rounding.fp32_add(a, b, r_a, r_b, z_a, z_b, z_c, lo, hi, o)
    want = [mlas_qlinear_add(int(x) + o, int(y) + o, float(r_a), float(r_b), z_a + o, z_b + o, z_c + o, lo + o, hi + o) - o
            for x, y in zip(a, b)]
    assert got.tolist() == want


def _onnxruntime_add(form: str, signed: bool, scales, zeros, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """onnxruntime's output levels for one add of levels ``a``, ``b``: a QLinearAdd node
    (``"qoperator"``) or a QDQ group ``DQ, DQ -> Add -> Q`` fed by Q nodes of exactly
    representable floats and ending, as a quantized model does, in a DQ to a float output
    (``"qdq"``, which onnxruntime fuses into QLinearAdd, int8 as uint8; with the Q output as
    the graph output it does not fuse); levels read back as ``rint(y / s_c) + z_c``."""
    import onnx
    import onnxruntime as ort

    h, t = onnx.helper, onnx.TensorProto
    level_type, dtype = (t.INT8, np.int8) if signed else (t.UINT8, np.uint8)
    names = ("a", "b", "c")
    inits = [h.make_tensor(f"s{n}", t.FLOAT, [], [float(s)]) for n, s in zip(names, scales)]
    inits += [h.make_tensor(f"z{n}", level_type, [], [int(z)]) for n, z in zip(names, zeros)]
    shape = [1, 1, 256, 256]
    if form == "qoperator":
        node = h.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"], domain="com.microsoft")
        graph = h.make_graph([node], "add", [h.make_tensor_value_info(n, level_type, shape) for n in "ab"],
                             [h.make_tensor_value_info("c", level_type, shape)], inits)
        feeds = {"a": a.astype(dtype).reshape(shape), "b": b.astype(dtype).reshape(shape)}
    else:
        nodes = [node for n in "ab" for node in (h.make_node("QuantizeLinear", [f"x{n}", f"s{n}", f"z{n}"], [f"q{n}"]),
                                                 h.make_node("DequantizeLinear", [f"q{n}", f"s{n}", f"z{n}"], [f"d{n}"]))]
        nodes += [h.make_node("Add", ["da", "db"], ["sum"]), h.make_node("QuantizeLinear", ["sum", "sc", "zc"], ["qc"]),
                  h.make_node("DequantizeLinear", ["qc", "sc", "zc"], ["c"])]
        graph = h.make_graph(nodes, "add", [h.make_tensor_value_info(f"x{n}", t.FLOAT, shape) for n in "ab"],
                             [h.make_tensor_value_info("c", t.FLOAT, shape)], inits)
        feeds = {f"x{n}": ((v.astype(np.float64) - z) * np.float32(s)).astype(np.float32).reshape(shape)
                 for n, v, s, z in zip("ab", (a, b), scales, zeros)}
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out = session.run(None, feeds)[0].reshape(-1)
    if form == "qoperator":
        return out.astype(np.int64)
    return (np.rint(out.astype(np.float64) / np.float64(scales[2])) + zeros[2]).astype(np.int64)


@pytest.mark.parametrize("form, signed", [("qoperator", False), ("qoperator", True), ("qdq", False), ("qdq", True)],
                         ids=["qlinearadd-uint8", "qlinearadd-int8", "qdq-uint8", "qdq-int8"])
def test_fp32_add_equals_onnxruntime_on_every_input_pair(form, signed):
    """For 12 random scale and zero-point triples, all 256 x 256 input pairs: (17)-(20) with the
    importer's offset (128 for an int8 QDQ add, which onnxruntime runs as uint8; else 0) equal
    onnxruntime, 0 differing levels; without the offset an int8 QDQ add differs somewhere."""
    lo, hi = (-128, 127) if signed else (0, 255)
    a, b = np.repeat(np.arange(lo, hi + 1), 256), np.tile(np.arange(lo, hi + 1), 256)
    offset = 128 if form == "qdq" and signed else 0
    rng = np.random.default_rng(11 + 2 * signed + (form == "qdq"))
    without_offset = 0
    for _ in range(12):
        scales = np.exp(rng.uniform(-6, 0.5, 3)).astype(np.float32)
        zeros = [int(z) for z in rng.integers(lo, hi + 1, 3)]
        runtime = _onnxruntime_add(form, signed, scales, zeros, a, b)
        r_a, r_b = scales[0] / scales[2], scales[1] / scales[2]  # float32 division, as MLAS
        assert np.array_equal(rounding.fp32_add(a, b, r_a, r_b, *zeros, lo, hi, offset), runtime)
        without_offset += np.count_nonzero(rounding.fp32_add(a, b, r_a, r_b, *zeros, lo, hi, 0) != runtime)
    assert (without_offset > 0) == (offset > 0)
