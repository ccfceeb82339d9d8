"""A large evaluation spread over a Ray cluster: the same logits as
:func:`aquant_sim.evaluation.program_logits`, images split by batch, one Ray task per batch.

The program travels as its artifact's path (``aquant_sim.artifact``; every node must see the
file, as on one machine or a shared filesystem), not as a serialized Python object; each task
loads it once per worker process, runs the simulator on its batch of integer levels with one
numba thread (a task holds one CPU), and returns the dequantized outputs. ``ray.get`` over the
task list returns the batches in submission order, and the integer program is exact per image,
so the result equals a single-process run element for element. The whole set is checked and
quantized before the first task starts, so bad input fails at once.

Ray is an optional dependency (the ``sweep`` extra), imported only here and only when called.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from aquant_sim.artifact import load_program
from aquant_sim.evaluation import BATCH
from aquant_sim.program import Program
from aquant_sim.simulator import Backend, Simulator


@functools.lru_cache(maxsize=4)
def _program(path: str, mtime_ns: int) -> Program:
    """The artifact's program, loaded once per worker process per version of the file."""
    return load_program(path)


def batch_logits(path: str, mtime_ns: int, levels: np.ndarray, backend: str) -> np.ndarray:
    """One task: the dequantized outputs ``(n, outputs)`` of the artifact's program for ``levels``."""
    import numba

    numba.set_num_threads(1)
    result = Simulator(_program(path, mtime_ns), Backend(backend)).run(levels)
    return result.dequantized.reshape(len(levels), -1)


def program_logits_on_ray(artifact, images, address: str, backend: Backend = Backend.NUMBA,
                          batch: int = BATCH) -> np.ndarray:
    """The program's dequantized outputs ``(N, outputs)`` for images ``(N, C, H, W)``, computed by
    Ray tasks on the cluster at ``address`` (``"auto"``, ``"host:port"``, or ``"local"`` for a
    new local instance; an already initialized Ray is used as it is)."""
    import ray

    path = Path(artifact).resolve()
    mtime_ns = path.stat().st_mtime_ns
    levels = Simulator(_program(str(path), mtime_ns), backend).quantize_input(np.asarray(images))
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False)
    task = ray.remote(num_cpus=1)(batch_logits)
    pending = [task.remote(str(path), mtime_ns, levels[start:start + batch], backend.value)
               for start in range(0, len(levels), batch)]
    return np.concatenate(ray.get(pending))
