"""One thread count for every pool calibration runs on: torch's intra-op threads and numba's (the
fused quantizer kernels). Set apart, the two pools oversubscribe the cores: a numba parallel
region waits for its slowest thread, and that thread waits for a core torch holds."""

from __future__ import annotations

import numba
import torch

from aquant_sim.errors import ConfigError


def use_threads(threads: int) -> None:
    """Run torch and numba on ``threads`` threads (numba on at most the threads it started with)."""
    if threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
