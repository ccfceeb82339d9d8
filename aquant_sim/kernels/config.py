"""numba settings shared by every kernel: the one place to change how kernels are compiled.

* ``cache=True``: compiled machine code is cached next to the sources (``__pycache__``), so only
  the first run on a machine pays for compilation.
* No ``fastmath``: kernels are integer code, and the float GEMM paths rely on IEEE-exact
  addition of integers (no reassociation assumptions, no flushed subnormals).
* Threading layer ``workqueue`` unless the environment sets one (see below).
* ``parallel_jit`` compiles a kernel whose ``prange`` loops run on numba's thread pool; every
  such kernel writes disjoint outputs per iteration and reduces counts afterwards in a fixed
  order, so results do not depend on the thread count. ``inline_jit`` compiles a per-element
  helper that kernels call.
"""

from __future__ import annotations

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    # The conv GEMM runs on OpenBLAS's threads between our parallel kernels. With numba's default
    # OpenMP layer, idle OpenMP threads spin-wait and OpenBLAS's idle threads spin too, so each
    # side steals the cores from the other: ResNet-18, batch 8, 224x224 took 3.4 s with OpenMP
    # and 1.4 s with ``workqueue`` on 2 cores (tools/bench_sim.py). The workqueue layer does not
    # support nested parallelism or parallel kernels launched concurrently from several Python
    # threads; the simulator does neither. An explicit NUMBA_THREADING_LAYER wins.
    numba.config.THREADING_LAYER = "workqueue"

inline_jit = numba.njit(cache=True, fastmath=False, nogil=True, inline="always")
"""Decorator for per-element helpers called from kernels: inlined at the numba level, so that
the helper compiles into the kernel's loop instead of being a call per element."""

parallel_jit = numba.njit(cache=True, fastmath=False, nogil=True, parallel=True)
"""Decorator for kernels with ``prange`` loops."""

prange = numba.prange
