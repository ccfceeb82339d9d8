"""The conformance kit passes the project's requantizers and catches deliberately wrong ones."""

import math
from fractions import Fraction

import numpy as np
import pytest

from aquant_sim import rounding
from aquant_sim.rounding import RequantVariant
from aquant_sim.testing import runtime_oracles
from aquant_sim.testing.conformance import (
    ADD_IMPLEMENTATIONS, IMPLEMENTATIONS, TFLITE_ADD_IMPLEMENTATIONS, TFLITE_AVERAGE_IMPLEMENTATIONS, VARIANT_IMPLEMENTATIONS,
    ConformanceError, check_fp32_add, check_requantizer, check_requantizer_variant, check_tflite_add, check_tflite_average,
    contract,
)

EXAMPLES = 50


def _fixed_point(acc, m, n, frac, z):
    return rounding.scale_to_fixed_point(acc, [m], [n], frac, z, channel_axis=0)


def _border(borders, k, qmin, qmax):
    return borders[rounding.border_index(k, qmin, qmax)] if borders.size > 1 else borders[0]


def strict_greater(acc, m, n, frac, borders, z, qmin, qmax):
    """Wrong: rounds up only when f > B (a tie on the border stays down)."""
    v = _fixed_point(acc, m, n, frac, z)
    k, f = v >> frac, v & ((1 << frac) - 1)
    return np.clip(k + (f > _border(borders, k, qmin, qmax)), qmin, qmax)


def half_even(acc, m, n, frac, borders, z, qmin, qmax):
    """Wrong: a tie on the border rounds to the even level (banker's rounding)."""
    v = _fixed_point(acc, m, n, frac, z)
    k, f = v >> frac, v & ((1 << frac) - 1)
    b = _border(borders, k, qmin, qmax)
    return np.clip(k + ((f > b) | ((f == b) & (k % 2 == 1))), qmin, qmax)


def truncating_shift(acc, m, n, frac, borders, z, qmin, qmax):
    """Wrong: (6) truncates toward zero (C's division) instead of flooring negative products."""
    s, product = n - frac, acc * m
    v = (np.sign(product) * (np.abs(product) >> s) if s >= 0 else product << -s) + (z << frac)
    return rounding.round_fixed_point(v, frac, borders[None, :], qmin, qmax, channel_axis=0)


def no_clamp(acc, m, n, frac, borders, z, qmin, qmax):
    """Wrong: forgets the clamp of (8)."""
    v = _fixed_point(acc, m, n, frac, z)
    k, f = v >> frac, v & ((1 << frac) - 1)
    return k + (f >= _border(borders, k, qmin, qmax))


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_every_implementation_conforms(name):
    """Each of the project's requantizers (numpy contract, reference, numba kernels, the
    front-end's torch form) passes every property of the kit."""
    check_requantizer(IMPLEMENTATIONS[name](), max_examples=EXAMPLES, derandomize=True)


def test_every_implementation_is_listed():
    """The suite covers the numpy, reference, numba and torch forms (none silently dropped)."""
    assert set(IMPLEMENTATIONS) == {"numpy", "reference", "numba", "torch"}


@pytest.mark.parametrize("wrong", [strict_greater, half_even, truncating_shift, no_clamp])
def test_wrong_implementations_are_caught(wrong):
    """Each deliberately wrong requantizer fails with a counterexample naming inputs, expected and got."""
    with pytest.raises(ConformanceError) as caught:
        check_requantizer(wrong, max_examples=EXAMPLES, derandomize=True, shrink=False)
    message = str(caught.value)
    assert "inputs: acc=" in message
    assert ("expected:" in message and "got:" in message) or "outside [" in message


def test_wrong_shape_is_reported():
    """An implementation that returns the wrong shape fails with a ConformanceError saying so."""
    with pytest.raises(ConformanceError, match="1-D integer array"):
        check_requantizer(lambda acc, *rest: contract(acc, *rest)[:-1], max_examples=5, derandomize=True, shrink=False)


def test_counterexample_is_exact():
    """The reported counterexample reproduces: on it the wrong implementation returns ``got`` and
    the contract ``expected``, and they differ."""
    with pytest.raises(ConformanceError) as caught:
        check_requantizer(strict_greater, max_examples=EXAMPLES, derandomize=True)
    error = caught.value
    assert error.case.acc.shape == (1,)
    assert int(strict_greater(*error.case.args())[0]) == error.got
    assert int(contract(*error.case.args())[0]) == error.expected != error.got


# --- the runtimes' variants (docs/contract.md 2.1) ---------------------------------------------

RUNTIME_VARIANTS = [RequantVariant.GEMMLOWP, RequantVariant.FP32, RequantVariant.FLOAT64]


@pytest.mark.parametrize("variant", RUNTIME_VARIANTS, ids=lambda v: v.value)
@pytest.mark.parametrize("name", sorted(VARIANT_IMPLEMENTATIONS))
def test_every_implementation_of_each_variant_conforms(name, variant):
    """The numpy contract, the reference and the numba kernels of each runtime's variant equal the
    runtime's source transcribed element by element, stay within one level of the real value and
    are monotone and in range."""
    check_requantizer_variant(VARIANT_IMPLEMENTATIONS[name](variant), variant, max_examples=EXAMPLES, derandomize=True)


def gemmlowp_single_rounding(acc, m, n, z, qmin, qmax):
    """Wrong for the default TFLite build: one rounding of acc * m / 2^n, half up (what
    TFLITE_SINGLE_ROUNDING builds do, and what this project's (6)-(8) with B = 2^(F-1) does)."""
    exact = [(a * m + (1 << (n - 1))) >> n for a in np.asarray(acc).tolist()]
    return np.clip(np.array(exact) + z, qmin, qmax)


def gemmlowp_half_away_twice(acc, m, n, z, qmin, qmax):
    """Wrong: the high multiply rounds half away from zero (as an early draft of the contract said), not half up."""
    out = []
    for a in np.asarray(acc).tolist():
        product = (a << max(31 - n, 0)) * m
        high = (abs(product) + (1 << 30)) >> 31
        high = high if product >= 0 else -high
        out.append(runtime_oracles.rounding_divide_by_pot(high, max(n - 31, 0)))
    return np.clip(np.array(out) + z, qmin, qmax)


def fp32_half_up(acc, m, n, z, qmin, qmax):
    """Wrong: rounds the float32 product half up instead of half to even."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(acc).astype(np.float32) * np.float32(m * 2.0**-n)
        return np.clip(np.floor(v.astype(np.float64) + 0.5).astype(np.int64) + z, qmin, qmax)


def fp32_in_float64(acc, m, n, z, qmin, qmax):
    """Wrong: multiplies in float64 (no float32 rounding of acc or of the product)."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(acc).astype(np.float64) * (m * 2.0**-n)
        return np.clip(np.rint(v).astype(np.int64) + z, qmin, qmax)


@pytest.mark.parametrize("variant, wrong", [
    (RequantVariant.GEMMLOWP, gemmlowp_single_rounding),
    (RequantVariant.GEMMLOWP, gemmlowp_half_away_twice),
    (RequantVariant.FP32, fp32_half_up),
    (RequantVariant.FP32, fp32_in_float64),
], ids=["gemmlowp-single-rounding", "gemmlowp-half-away", "fp32-half-up", "fp32-in-float64"])
def test_wrong_variant_implementations_are_caught(variant, wrong):
    """Each deliberately wrong form of a runtime's requantizer fails with a counterexample."""
    with pytest.raises(ConformanceError) as caught:
        check_requantizer_variant(wrong, variant, max_examples=200, derandomize=True, shrink=False)
    assert f"variant={variant.value}" in str(caught.value)


def test_border_is_not_a_runtime_variant():
    """The variant kit refuses BORDER, whose properties check_requantizer runs."""
    with pytest.raises(ValueError, match="check_requantizer"):
        check_requantizer_variant(contract, RequantVariant.BORDER)


def add_half_up(a, b, ratio_a, ratio_b, zero_a, zero_b, zero_c, qmin, qmax, offset):
    """Wrong: (20) rounds a tie up instead of to even."""
    exact = (np.float64(ratio_a) * (np.asarray(a) - zero_a) + np.float64(ratio_b) * (np.asarray(b) - zero_b)) + zero_c
    return np.clip(np.floor(exact + 0.5).astype(np.int64), qmin, qmax)


@pytest.mark.parametrize("name", sorted(ADD_IMPLEMENTATIONS))
def test_every_add_implementation_conforms(name):
    """The FP32_ADD add (17)-(20) of numpy, the reference and the numba kernel passes the kit."""
    check_fp32_add(ADD_IMPLEMENTATIONS[name](), max_examples=EXAMPLES, derandomize=True)


def test_a_wrong_add_is_caught():
    """Round-half-up in (20) is caught on the kit's exact ties. (The fixed part rounded without
    onnxruntime's contraction changes few outputs: 14 of 240 models of all 65,536 input pairs, too
    rare for random cases; ``tests/test_rounding.py`` compares the rule with onnxruntime on every
    input pair.)"""
    with pytest.raises(ConformanceError, match="QLinearAdd source"):
        check_fp32_add(add_half_up, max_examples=EXAMPLES, derandomize=True)



# --- TFLite's fully-connected, add, average pooling and mean (docs/contract.md (21)-(32)) -------


def float64_half_even(acc, m, n, z, qmin, qmax):
    """Wrong: rounds the double product half to even (numpy's rint) instead of C's half away."""
    v = np.asarray(acc).astype(np.float64) * np.ldexp(float(m), -n)
    return np.clip(np.rint(v).astype(np.int64) + z, qmin, qmax)


def test_a_wrong_float64_is_caught():
    """FLOAT64 (31)-(32) rounded half to even is caught on the kit's ties."""
    with pytest.raises(ConformanceError, match="variant=float64"):
        check_requantizer_variant(float64_half_even, RequantVariant.FLOAT64, max_examples=200, derandomize=True, shrink=False)


@pytest.mark.parametrize("name", sorted(TFLITE_ADD_IMPLEMENTATIONS))
def test_every_tflite_add_implementation_conforms(name):
    """The TFLITE_ADD add (21)-(24) of numpy, the reference and the numba kernel passes the kit."""
    check_tflite_add(TFLITE_ADD_IMPLEMENTATIONS[name](), max_examples=EXAMPLES, derandomize=True)


def tflite_add_one_rounding(a, b, multiplier, shift, zero_a, zero_b, zero_c, qmin, qmax):
    """Wrong: scales each input and the sum exactly and rounds once (no per-input rounding (22))."""
    m = [Fraction(mi, 1 << ni) for mi, ni in zip(multiplier, shift)]
    out = []
    for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist()):
        exact = m[2] * (1 << 20) * (m[0] * (x - zero_a) + m[1] * (y - zero_b))
        out.append(math.floor(exact + Fraction(1, 2)) + zero_c)
    return np.clip(np.array(out), qmin, qmax)


def test_a_wrong_tflite_add_is_caught():
    """An add that rounds once, where TFLite rounds each input and then the sum, is caught."""
    with pytest.raises(ConformanceError, match="AddFunc source"):
        check_tflite_add(tflite_add_one_rounding, max_examples=200, derandomize=True, shrink=False)


@pytest.mark.parametrize("name", sorted(TFLITE_AVERAGE_IMPLEMENTATIONS))
def test_every_tflite_average_implementation_conforms(name):
    """TFLite's average pooling (25)-(27) and mean (28)-(30) of numpy, the reference and the numba
    kernel pass the kit."""
    check_tflite_average(TFLITE_AVERAGE_IMPLEMENTATIONS[name](), max_examples=EXAMPLES, derandomize=True)


def tflite_mean_divide_after(values, mean, multiplier, shift, zero_in, zero_out, qmin, qmax):
    """Wrong: the mean as TensorFlow's older ``reference_integer_ops::Mean`` computes it, (10)-(12)
    by ``M`` and then a rounded division by the count, instead of LiteRT's folded multiplier (29)."""
    values = np.asarray(values, dtype=np.int64)
    count = values.shape[1]
    if not mean:
        return rounding.tflite_avgpool((values - zero_in).sum(axis=1)[None, :], count, zero_in, qmin, qmax)[0]
    y = [runtime_oracles.tflite_requantize(int(acc), multiplier, shift, 0, -(1 << 40), 1 << 40)
         for acc in (values - zero_in).sum(axis=1).tolist()]
    return np.clip(rounding.rounding_divide(np.array(y), count) + zero_out, qmin, qmax)


def test_a_wrong_tflite_mean_is_caught():
    """The mean with the division after the multiplier (another TFLite build's kernel) is caught."""
    with pytest.raises(ConformanceError, match="mean source"):
        check_tflite_average(tflite_mean_divide_after, max_examples=200, derandomize=True, shrink=False)
