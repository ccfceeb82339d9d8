"""Helpers shared by the subcommands: reading inputs, choosing a backend, writing JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aquant_sim.atomic import atomic_write
from aquant_sim.errors import InputError, UnsupportedError
from aquant_sim.program import Program
from aquant_sim.simulator import Backend, SimResult, Simulator

BACKENDS = {backend.name.lower(): backend for backend in Backend}


def load_array(path) -> np.ndarray:
    """Read one array from a ``.npy`` file without unpickling anything."""
    try:
        array = np.load(path, allow_pickle=False)
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error}") from None
    except (ValueError, EOFError) as error:  # EOFError: an empty or cut file
        raise InputError(f"{path}: not a plain .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise InputError(f"{path}: expected a .npy file holding one array, got an .npz archive")
    return array


def simulator(program: Program, backend: Backend) -> Simulator:
    """A simulator on ``backend``; a backend that cannot be imported is an UnsupportedError."""
    try:
        return Simulator(program, backend)
    except ImportError as error:
        raise UnsupportedError(f"backend {backend.name.lower()} is unavailable: {error}") from None


def result_json(program: Program, result: SimResult, **extra) -> dict:
    """A run as JSON: counters per layer, output integers, their real values, argmax per sample."""
    flat = result.dequantized.reshape(result.dequantized.shape[0], -1)
    return {
        **extra,
        "output_tensor": program.output,
        "output_kind": "levels" if program.output_tensor.is_quantized else "accumulators",
        "layers": [c.as_dict() for c in result.counters],
        "output": result.output.tolist(),
        "dequantized": result.dequantized.tolist(),
        "argmax": flat.argmax(axis=1).tolist(),
    }


def write_json(path, data) -> Path:
    """Write ``data`` as JSON atomically (temporary file in the same folder, then rename)."""
    text = json.dumps(data, indent=1, allow_nan=False).encode("utf-8")
    with atomic_write(path) as handle:
        handle.write(text)
    return Path(path)
