"""numba settings shared by every kernel: the one place to change how kernels are compiled.

* ``cache=True``: compiled machine code is cached next to the sources (``__pycache__``), so only
  the first run on a machine pays for compilation.
* No ``fastmath``: kernels are integer code, and the float GEMM paths rely on IEEE-exact
  addition of integers (no reassociation assumptions, no flushed subnormals).
* ``jit`` compiles a serial kernel; ``parallel_jit`` one whose ``prange`` loops run on numba's
  thread pool. Every parallel kernel writes disjoint outputs per iteration and reduces counts
  afterwards in a fixed order, so results do not depend on the thread count.
"""

from __future__ import annotations

import numba

jit = numba.njit(cache=True, fastmath=False, nogil=True)
"""Decorator for serial kernels."""

parallel_jit = numba.njit(cache=True, fastmath=False, nogil=True, parallel=True)
"""Decorator for kernels with ``prange`` loops."""

prange = numba.prange
