"""One thread count for torch and numba."""

import numba
import pytest
import torch

from aquant_sim.errors import ConfigError
from aquant_sim.frontend.threads import use_threads


def test_use_threads_sets_both_pools_and_refuses_zero():
    torch_before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    try:
        use_threads(1)
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
        use_threads(10_000)
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
        with pytest.raises(ConfigError, match="threads must be at least 1, got 0"):
            use_threads(0)
    finally:
        torch.set_num_threads(torch_before)
        numba.set_num_threads(numba_before)
