"""Runs an integer program on the modelled datapath and counts what each layer did.

``Simulator(program).run(x)`` quantizes a float input with the program's input quantizer
(real-valued border rounding, ``docs/contract.md`` (1)-(4)) or takes integer levels as they are, runs every
op with integer arithmetic only, and returns the output levels, their real values, per-layer
counters for the hardware models and, on request, every intermediate tensor.

Two backends compute the same integers and the same counters: ``REFERENCE`` (plain numpy, the
oracle) and ``NUMBA`` (the fast kernels, fused per op), two implementations of the
:class:`aquant_sim.datapath.Datapath` protocol chosen by :class:`Backend`. Both apply the accumulator width and
overflow policy to the exact sums (``rounding.apply_overflow``), so overflows are counted
identically whatever arithmetic computed the sums.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from aquant_sim.datapath import Datapath
from aquant_sim.errors import InputError
from aquant_sim.program import PASS_THROUGH_OPS, TABLE_OPS, OpKind, Program, QuantParams, Tensor


class Backend(enum.Enum):
    """Which implementation computes the ops; both must give identical integers and counters."""

    REFERENCE = "reference"
    """Plain numpy, one step at a time: :mod:`aquant_sim.reference_datapath`."""
    NUMBA = "numba"
    """Each op's sums, accumulator width, requantization and counters in fused parallel numba
    passes: :mod:`aquant_sim.kernels.datapath`."""

    def datapath(self) -> Datapath:
        """The implementation that executes each op. Imported here, on first use, so that
        choosing the reference backend does not load numba."""
        if self is Backend.REFERENCE:
            from aquant_sim.reference_datapath import ReferenceDatapath

            return ReferenceDatapath()
        from aquant_sim.kernels.datapath import NumbaDatapath

        return NumbaDatapath()


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
        if not np.isfinite(x).all():
            bad = ~np.isfinite(x)
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"input: {int(bad.sum())} values are NaN or Inf, the first at index {index}")
        return self._datapath.round_input(x, quant, self.program.input_borders.beta)

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
        elif op.kind in TABLE_OPS:
            result, zeros = self._datapath.run_table(op, inputs[0], in_quant[0], out.quant)
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
