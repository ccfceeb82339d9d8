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

import hashlib
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


def cache_depends_on(kernel, *modules) -> None:
    """Make the on-disk cache of ``kernel`` (a ``parallel_jit`` dispatcher) stale when the source
    of any of ``modules`` changes, as it is when the kernel's own file changes. numba stamps a
    cache index with its kernel's file alone (numba 0.68: the SHA-256 of its bytes), so a
    kernel that inlines a helper of another file (the AMX kernel's epilogue calls
    :func:`aquant_sim.kernels.requant.requantize_row`) would otherwise keep running the
    helper's old code. This appends the SHA-256 of each module's file to that stamp, through
    numba's cache internals (``_cache._cache_file._source_stamp``); it raises where they are
    missing."""
    cache_file = getattr(getattr(kernel, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_source_stamp"):
        raise RuntimeError(f"kernels.config: numba {numba.__version__} has no cache stamp to extend for {kernel!r}")
    cache_file._source_stamp = (cache_file._source_stamp, *(source_digest(module) for module in modules))


def source_digest(module) -> bytes:
    """The SHA-256 of a module's source file."""
    with open(module.__file__, "rb") as source:
        return hashlib.sha256(source.read()).digest()
