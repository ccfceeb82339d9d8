"""Runs an integer program on the modelled datapath and counts what each layer did.

``Simulator(program).run(x)`` quantizes a float input with the program's input quantizer
(real-valued border rounding, DESIGN.md (1)-(4)) or takes integer levels as they are, runs every
op with integer arithmetic only, and returns the output levels, their real values, per-layer
counters for the hardware models and, on request, every intermediate tensor.

Two backends compute the same integers and the same counters: ``REFERENCE`` (plain numpy, the
oracle) and ``NUMBA`` (the fast kernels, fused per op). Both apply the accumulator width and
overflow policy to the exact sums (``rounding.apply_overflow``), so overflows are counted
identically whatever arithmetic computed the sums.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass, field

import numpy as np

from aquant_sim import reference, rounding
from aquant_sim.errors import InputError
from aquant_sim.program import PASS_THROUGH_OPS, OpKind, Program, QuantParams, Tensor


class Backend(enum.Enum):
    """Which implementation computes the ops; both must give identical integers and counters."""

    REFERENCE = "reference"
    """Plain numpy: :mod:`aquant_sim.reference` and :mod:`aquant_sim.rounding`, one step at a time."""
    NUMBA = "numba"
    """:mod:`aquant_sim.kernels`: each op's sums, accumulator width, requantization and counters
    in fused parallel passes."""

    def datapath(self):
        """The object whose ``run_accumulating`` and ``run_pass_through`` execute one op."""
        if self is Backend.REFERENCE:
            return _ReferenceDatapath
        return importlib.import_module("aquant_sim.kernels.datapath")


@dataclass
class LayerCounters:
    """What one op did over the whole batch. ``macs`` counts multiply-accumulates of conv2d and
    linear only; ``requantized`` the elements through a requantizer, of which ``border_lookups``
    used a table that is not plain round-to-nearest; ``max_abs_acc`` is the largest exact |sum|
    before the accumulator width was applied; ``zero_fraction`` the share of outputs whose real
    value is 0 (level equal to the zero-point, or a zero accumulator)."""

    name: str
    kind: OpKind
    output_shape: tuple[int, ...]
    output_elements: int = 0
    macs: int = 0
    requantized: int = 0
    border_lookups: int = 0
    overflows: int = 0
    max_abs_acc: int = 0
    zero_fraction: float = 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind.value, "output_shape": list(self.output_shape),
            "output_elements": self.output_elements, "macs": self.macs,
            "requantized": self.requantized, "border_lookups": self.border_lookups,
            "overflows": self.overflows, "max_abs_acc": self.max_abs_acc,
            "zero_fraction": self.zero_fraction,
        }


@dataclass
class SimResult:
    """The output levels (or accumulators), their real values, per-op counters in program
    order, and every tensor by name when the run kept them (the input included)."""

    output: np.ndarray
    dequantized: np.ndarray
    counters: list[LayerCounters]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def dequantize(values: np.ndarray, tensor: Tensor) -> np.ndarray:
    """Real values of a tensor's integers: ``s * (q - z)``, or ``acc * scale[c]``."""
    if isinstance(tensor.quant, QuantParams):
        return tensor.quant.scale * (values.astype(np.float64) - tensor.quant.zero_point)
    shape = [1] * values.ndim
    shape[1] = tensor.channels
    return values.astype(np.float64) * tensor.quant.scale.reshape(shape)


class Simulator:
    """Executes a validated :class:`Program` batch by batch."""

    def __init__(self, program: Program, backend: Backend = Backend.NUMBA):
        self.program = program
        self.backend = backend
        self._datapath = backend.datapath()
        # Index of the last op that reads each tensor, to free intermediates as soon as possible.
        self._last_read = {name: i for i, op in enumerate(program.ops) for name in op.inputs}

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Check a batch against the program input and return its integer levels (int32).

        Floats are rounded with the input border table (1)-(4); integers must already be levels
        within ``[qmin, qmax]``.
        """
        x = np.asarray(x)
        tensor = self.program.input_tensor
        quant = tensor.quant
        if x.ndim != len(tensor.shape) + 1 or tuple(x.shape[1:]) != tensor.shape:
            raise InputError(f"input: expected shape (N, {', '.join(map(str, tensor.shape))}), got {x.shape}")
        if x.shape[0] == 0:
            raise InputError("input: the batch is empty (N = 0)")
        if x.dtype.kind in "iu":
            if x.size and (x.min() < quant.qmin or x.max() > quant.qmax):
                raise InputError(f"input: integer levels must lie in [{quant.qmin}, {quant.qmax}], got [{x.min()}, {x.max()}]")
            return x.astype(np.int32)
        if x.dtype.kind != "f":
            raise InputError(f"input: expected a float or integer array, got dtype {x.dtype}")
        bad = ~np.isfinite(x)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"input: {int(bad.sum())} values are NaN or Inf, the first at index {index}")
        levels = rounding.border_round(
            x, quant.scale, quant.zero_point, quant.qmin, quant.qmax,
            self.program.input_borders.beta, channel_axis=1,
        )
        return levels.astype(np.int32)

    def run(self, x: np.ndarray, keep_tensors: bool = False) -> SimResult:
        """Run a batch; integer outputs are exact, whatever the backend or thread count."""
        program = self.program
        values = {program.input: self.quantize_input(x)}
        counters = []
        for i, op in enumerate(program.ops):
            out_tensor = program.tensor(op.output)
            result, layer = self._run_op(op, [values[name] for name in op.inputs], out_tensor)
            values[op.output] = result
            counters.append(layer)
            if not keep_tensors:
                for name in op.inputs:
                    if self._last_read[name] == i and name != program.output:
                        values.pop(name, None)
        output = values[program.output]
        return SimResult(
            output=output,
            dequantized=dequantize(output, program.output_tensor),
            counters=counters,
            tensors=values if keep_tensors else {},
        )

    def _run_op(self, op, inputs: list[np.ndarray], out: Tensor):
        program = self.program
        in_quant = [program.tensor(name).quant for name in op.inputs]
        layer = LayerCounters(op.name, op.kind, out.shape)
        if op.kind in PASS_THROUGH_OPS:
            result, zeros = self._datapath.run_pass_through(op, inputs[0], in_quant[0])
        else:
            result, layer.max_abs_acc, layer.overflows, zeros = self._datapath.run_accumulating(
                op, inputs, in_quant, out.quant, out.shape, program.accumulator_bits, program.overflow)
            if op.kind is OpKind.CONV2D:
                layer.macs = result.size * op.weight[0].size
            elif op.kind is OpKind.LINEAR:
                layer.macs = result.size * op.weight.shape[1]
            if op.requant is not None:
                layer.requantized = result.size
                layer.border_lookups = 0 if op.requant.borders.is_nearest else result.size
        layer.output_elements = result.size
        layer.zero_fraction = zeros / result.size
        return result, layer


class _ReferenceDatapath:
    """The REFERENCE backend's per-op steps: plain numpy, one pass at a time, from
    :mod:`aquant_sim.reference` and :mod:`aquant_sim.rounding`. The NUMBA backend's
    :mod:`aquant_sim.kernels.datapath` has the same two functions and must agree exactly."""

    @staticmethod
    def run_accumulating(op, inputs, in_quants, out_quant, out_shape, accumulator_bits, overflow):
        """Exact sums, ``max |acc|``, the A-bit accumulator (counted), requantization (6)-(8).
        Returns ``(values, max_abs_acc, overflows, zeros)``."""
        x, z = inputs[0], in_quants[0].zero_point
        if op.kind is OpKind.CONV2D:
            acc = reference.conv2d_acc(x, op, z)
        elif op.kind is OpKind.LINEAR:
            acc = reference.linear_acc(x, op, z)
        elif op.kind is OpKind.ADD:
            acc = reference.add_acc(x, inputs[1], op.weight_a, op.weight_b, z, in_quants[1].zero_point)
        elif op.kind is OpKind.AVGPOOL2D:
            acc = reference.avgpool_acc(x, op, z)
        else:
            acc = reference.global_avgpool_acc(x, z)
        max_abs = int(np.abs(acc).max())
        acc, overflows = rounding.apply_overflow(acc, accumulator_bits, overflow)
        if op.requant is None:
            return acc, max_abs, overflows, int(np.count_nonzero(acc == 0))
        result = reference.requantize(acc, op.requant, out_quant).astype(np.int32)
        return result, max_abs, overflows, int(np.count_nonzero(result == out_quant.zero_point))

    @staticmethod
    def run_pass_through(op, x, quant):
        """Max pooling, clamp or flatten. Returns ``(int32 values, zeros)``."""
        if op.kind is OpKind.MAXPOOL2D:
            result = reference.maxpool(x, op, quant.qmin)
        elif op.kind is OpKind.CLAMP:
            result = reference.clamp(x, op.lo, op.hi)
        else:
            result = x.reshape(x.shape[0], -1)
        result = result.astype(np.int32, copy=False)
        return result, int(np.count_nonzero(result == quant.zero_point))
