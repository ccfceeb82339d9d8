"""The simulator: NUMBA and REFERENCE backends agree on every integer and every counter, and
bad input is rejected with an InputError that names the problem."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aquant_sim.errors import InputError
from aquant_sim.rounding import OverflowPolicy
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.synthetic import Stem, SyntheticConfig, synthetic_resnet
from aquant_sim.testing.programs import program_inputs, programs


def _assert_backends_agree(program, x):
    numba_result = Simulator(program, Backend.NUMBA).run(x, keep_tensors=True)
    reference_result = Simulator(program, Backend.REFERENCE).run(x, keep_tensors=True)
    assert numba_result.output.dtype == reference_result.output.dtype
    assert np.array_equal(numba_result.output, reference_result.output)
    assert np.array_equal(numba_result.dequantized, reference_result.dequantized)
    assert numba_result.tensors.keys() == reference_result.tensors.keys()
    for name, values in reference_result.tensors.items():
        assert numba_result.tensors[name].dtype == values.dtype, name
        assert np.array_equal(numba_result.tensors[name], values), name
    assert [c.as_dict() for c in numba_result.counters] == [c.as_dict() for c in reference_result.counters]
    return numba_result


@st.composite
def program_cases(draw):
    program = draw(programs())
    return program, draw(program_inputs(program))


@settings(max_examples=40)
@given(program_cases())
def test_random_programs_backends_agree(case):
    """Random programs give equal outputs, intermediate tensors and counters on both backends."""
    _assert_backends_agree(*case)


SMALL_RESNETS = [
    SyntheticConfig(input_shape=(3, 16, 16), widths=(8, 16), blocks=(1, 1), weight_bits=4, act_bits=4),
    SyntheticConfig(input_shape=(3, 32, 32), stem=Stem.IMAGENET, widths=(8, 16), blocks=(1, 1), weight_bits=8,
                    act_bits=8, accumulator_bits=20, overflow=OverflowPolicy.SATURATE, seed=1),
    SyntheticConfig(input_shape=(3, 16, 16), widths=(8, 16), blocks=(1, 1), weight_bits=2, act_bits=2,
                    accumulator_bits=10, overflow=OverflowPolicy.WRAP, seed=2),
]


@pytest.mark.parametrize("config", SMALL_RESNETS, ids=["w4a4", "w8a8_imagenet_stem_sat20", "w2a2_wrap10"])
def test_synthetic_resnet_backends_agree(config):
    """A synthetic ResNet gives identical results on both backends from a float input."""
    program = synthetic_resnet(config)
    x = np.random.default_rng(0).standard_normal((2, *config.input_shape))
    _assert_backends_agree(program, x)


@pytest.mark.parametrize("policy", list(OverflowPolicy))
def test_overflowing_program_counted_identically(policy):
    """A narrow accumulator overflows, and both backends wrap or saturate and count it alike."""
    config = SyntheticConfig(input_shape=(3, 16, 16), widths=(8,), blocks=(1,), weight_bits=4, act_bits=4,
                             accumulator_bits=14, overflow=policy)
    program = synthetic_resnet(config)
    result = _assert_backends_agree(program, np.random.default_rng(1).standard_normal((2, 3, 16, 16)))
    assert sum(c.overflows for c in result.counters) > 0


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has a single thread on this machine")
def test_results_do_not_depend_on_thread_count():
    """One and two numba threads give identical outputs, tensors and counters."""
    program = synthetic_resnet(SyntheticConfig(input_shape=(3, 16, 16), widths=(8, 16), blocks=(1, 1)))
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16))
    previous = numba.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            runs.append(Simulator(program, Backend.NUMBA).run(x, keep_tensors=True))
    finally:
        numba.set_num_threads(previous)
    one, two = runs
    assert all(np.array_equal(one.tensors[name], two.tensors[name]) for name in one.tensors)
    assert [c.as_dict() for c in one.counters] == [c.as_dict() for c in two.counters]


@pytest.fixture(scope="module")
def simulator():
    return Simulator(synthetic_resnet(SyntheticConfig(input_shape=(3, 8, 8), widths=(4,), blocks=(1,))), Backend.NUMBA)


@pytest.mark.parametrize("bad, message", [(np.nan, "NaN or Inf"), (np.inf, "NaN or Inf"), (-np.inf, "NaN or Inf")])
def test_non_finite_input_rejected(simulator, bad, message):
    """NaN and Inf inputs raise InputError naming the count and the first index."""
    x = np.zeros((2, 3, 8, 8))
    x[1, 2, 3, 4] = bad
    with pytest.raises(InputError, match=rf"{message}, the first at index \(1, 2, 3, 4\)"):
        simulator.run(x)


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 3, 8, 9), (2, 4, 8, 8), (2, 3, 8, 8, 1)])
def test_wrong_shape_rejected(simulator, shape):
    """A batch of the wrong rank or size raises InputError naming the expected shape."""
    with pytest.raises(InputError, match=r"expected shape \(N, 3, 8, 8\)"):
        simulator.run(np.zeros(shape))


@pytest.mark.parametrize("backend", list(Backend))
def test_empty_batch_rejected(backend):
    """An empty batch raises InputError on both backends instead of failing inside an op."""
    program = synthetic_resnet(SyntheticConfig(input_shape=(3, 8, 8), widths=(4,), blocks=(1,)))
    with pytest.raises(InputError, match="batch is empty"):
        Simulator(program, backend).run(np.zeros((0, 3, 8, 8)))


@pytest.mark.parametrize("level", [-1, 256])
def test_integer_levels_out_of_range_rejected(simulator, level):
    """Integer inputs outside the input's [qmin, qmax] raise InputError naming the range."""
    x = np.full((1, 3, 8, 8), 7, dtype=np.int64)
    x[0, 0, 0, 0] = level
    with pytest.raises(InputError, match=r"integer levels must lie in \[0, 255\]"):
        simulator.run(x)


def test_non_numeric_input_rejected(simulator):
    """A non-numeric array raises InputError naming its dtype."""
    with pytest.raises(InputError, match="dtype"):
        simulator.run(np.zeros((1, 3, 8, 8), dtype=bool))
