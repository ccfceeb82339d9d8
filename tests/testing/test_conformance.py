"""The conformance kit passes the project's requantizers and catches deliberately wrong ones."""

import numpy as np
import pytest

from aquant_sim import rounding
from aquant_sim.testing.conformance import IMPLEMENTATIONS, ConformanceError, check_requantizer, contract

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
