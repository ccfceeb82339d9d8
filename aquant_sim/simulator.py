"""Runs an integer program on the modelled datapath and counts what each layer did.

``Simulator(program).run(x)`` quantizes a float input with the program's input quantizer
(real-valued border rounding, DESIGN.md (1)-(4)) or takes integer levels as they are, runs every
op with integer arithmetic only, and returns the output levels, their real values, per-layer
counters for the hardware models and, on request, every intermediate tensor.

Two backends compute the same integers: ``REFERENCE`` (plain numpy, the oracle) and ``NUMBA``
(the fast kernels). The accumulator width and overflow policy are applied here, once, to the
exact sums that either backend returns, so that both count overflows identically.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass, field

import numpy as np

from aquant_sim import rounding
from aquant_sim.errors import InputError
from aquant_sim.program import OpKind, Program, QuantParams, Tensor


class Backend(enum.Enum):
    """Which implementation computes the ops; both must give identical integers."""

    REFERENCE = "aquant_sim.reference"
    NUMBA = "aquant_sim.kernels"

    def module(self):
        return importlib.import_module(self.value)


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
        self._ops = backend.module()
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
        program, k = self.program, self._ops
        in_quant = [program.tensor(name).quant for name in op.inputs]
        layer = LayerCounters(op.name, op.kind, out.shape)
        batch = inputs[0].shape[0]
        if op.kind is OpKind.CONV2D:
            acc = k.conv2d_acc(inputs[0], op, in_quant[0].zero_point)
            layer.macs = acc.size * op.weight[0].size
        elif op.kind is OpKind.LINEAR:
            acc = k.linear_acc(inputs[0], op, in_quant[0].zero_point)
            layer.macs = acc.size * op.weight.shape[1]
        elif op.kind is OpKind.ADD:
            acc = k.add_acc(inputs[0], inputs[1], op.weight_a, op.weight_b, in_quant[0].zero_point, in_quant[1].zero_point)
        elif op.kind is OpKind.AVGPOOL2D:
            acc = k.avgpool_acc(inputs[0], op, in_quant[0].zero_point)
        elif op.kind is OpKind.GLOBAL_AVGPOOL:
            acc = k.global_avgpool_acc(inputs[0], in_quant[0].zero_point)
        else:
            if op.kind is OpKind.MAXPOOL2D:
                result = k.maxpool(inputs[0], op, in_quant[0].qmin)
            elif op.kind is OpKind.CLAMP:
                result = k.clamp(inputs[0], op.lo, op.hi)
            else:  # FLATTEN
                result = inputs[0].reshape(batch, -1)
            result = result.astype(np.int32, copy=False)
            layer.output_elements = result.size
            layer.zero_fraction = float(np.mean(result == out.quant.zero_point))
            return result, layer

        layer.max_abs_acc = int(np.abs(acc).max()) if acc.size else 0
        acc, layer.overflows = rounding.apply_overflow(acc, program.accumulator_bits, program.overflow)
        layer.output_elements = acc.size
        if op.requant is None:
            layer.zero_fraction = float(np.mean(acc == 0))
            return acc, layer
        result = k.requantize(acc, op.requant, out.quant).astype(np.int32, copy=False)
        layer.requantized = result.size
        layer.border_lookups = 0 if op.requant.borders.is_nearest else result.size
        layer.zero_fraction = float(np.mean(result == out.quant.zero_point))
        return result, layer
