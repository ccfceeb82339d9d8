"""Builds integer programs op by op from real scales.

The builder derives what the datapath needs from the real quantization parameters: the
requantizer's ``(m, n)`` from ``M = s_x * s_w[c] / s_y`` (docs/contract.md (6)), the residual add's
integer input weights (D.9), the average pool's divisor, ReLU6's upper level, the product's
multiplier (D.16) and a lookup table's entries (D.15, ``aquant_sim.lut.lookup_table``). It tracks each
tensor's shape and border table so that callers (the synthetic networks, the calibration
front-end's lowering and its exact forward) only say what the network is.
"""

from __future__ import annotations

import numpy as np

from aquant_sim import rounding
from aquant_sim.errors import ProgramError
from aquant_sim.lut import Unary, lookup_table
from aquant_sim.program import (
    Add, AccumulatorParams, AvgPool2d, BorderTable, Clamp, Concat, Conv2d, Flatten, GlobalAvgPool,
    Linear, Lut, MaxPool2d, Mul, Program, QuantParams, Requantizer, Tensor,
)

ADD_WEIGHT_BITS = 14
"""The larger residual-add input weight is 2^14; the smaller one keeps 14 bits of the ratio of
the input scales (D.9)."""


class ProgramBuilder:
    """Accumulates tensors and ops; every method returns the name of the tensor it produced."""

    def __init__(self, input_name: str, shape: tuple[int, ...], quant: QuantParams, borders: BorderTable):
        self._tensors: dict[str, Tensor] = {}
        self._borders: dict[str, BorderTable] = {}
        self._ops: list = []
        self.input = input_name
        self.input_borders = borders
        self._declare(input_name, shape, quant, borders)

    def _declare(self, name: str, shape, quant, borders) -> str:
        if name in self._tensors:
            raise ProgramError(f"tensor '{name}' is declared twice")
        self._tensors[name] = Tensor(name, tuple(shape), quant)
        self._borders[name] = borders
        return name

    def declare(self, name: str, shape: tuple[int, ...], quant: QuantParams, borders: BorderTable) -> str:
        """Declare a tensor computed elsewhere (besides the program input): the front-end's
        exact forward builds the ops of a part of a network whose inputs it already holds."""
        return self._declare(name, shape, quant, borders)

    def tensor(self, name: str) -> Tensor:
        return self._tensors[name]

    @property
    def ops(self) -> tuple:
        """The ops emitted so far, in order."""
        return tuple(self._ops)

    def _emit(self, op, quant, borders) -> str:
        shape = op.output_shape([self._tensors[name].shape for name in op.inputs])
        name = self._declare(op.output, shape, quant, borders)
        self._ops.append(op)
        return name

    @staticmethod
    def requantizer(real_multiplier, borders: BorderTable) -> Requantizer:
        """A requantizer for real multipliers ``M`` (scalar or per channel)."""
        m, n = rounding.quantize_multiplier(np.atleast_1d(np.asarray(real_multiplier, dtype=np.float64)))
        return Requantizer(m, n, borders)

    def _weighted(self, kind, name, x, weight, weight_bits, weight_scale, bias, out_quant, borders, weight_zero_point, **geometry):
        s_x = self._tensors[x].quant.scale
        weight_scale = np.asarray(weight_scale, dtype=np.float64)
        if out_quant is None:
            requant, quant = None, AccumulatorParams(s_x * weight_scale)
        else:
            requant, quant = self.requantizer(s_x * weight_scale / out_quant.scale, borders), out_quant
        op = kind(name=name, input=x, output=name, weight=weight, weight_bits=weight_bits,
                  weight_scale=weight_scale, bias=bias, requant=requant, weight_zero_point=weight_zero_point, **geometry)
        return self._emit(op, quant, borders)

    def conv2d(self, name, x, weight, weight_bits, weight_scale, bias, out_quant, borders,
               stride=1, padding=0, dilation=1, groups=1, weight_zero_point=None, padding_end=None) -> str:
        """Conv2d (D.1). ``out_quant`` None leaves accumulators (program output only);
        ``weight_zero_point`` None is the symmetric grid; ``padding`` is (top, left), ``padding_end``
        (bottom, right), None for symmetric."""
        return self._weighted(Conv2d, name, x, weight, weight_bits, weight_scale, bias, out_quant, borders,
                              weight_zero_point, stride=stride, padding=padding, dilation=dilation, groups=groups,
                              padding_end=padding_end)

    def linear(self, name, x, weight, weight_bits, weight_scale, bias, out_quant, borders, weight_zero_point=None) -> str:
        """Linear (D.2). ``out_quant`` None leaves accumulators (program output only)."""
        return self._weighted(Linear, name, x, weight, weight_bits, weight_scale, bias, out_quant, borders, weight_zero_point)

    def add(self, name, a, b, out_quant: QuantParams, borders: BorderTable) -> str:
        """Residual add (D.9): the larger input scale gets weight 2^14, the other the rounded
        ratio; ``M = s_max / (2^14 * s_y)``."""
        s_a, s_b = self._tensors[a].quant.scale, self._tensors[b].quant.scale
        s_max = max(s_a, s_b)
        one = 1 << ADD_WEIGHT_BITS
        w_a, w_b = (max(1, int(np.floor(one * s / s_max + 0.5))) for s in (s_a, s_b))
        requant = self.requantizer(s_max / (one * out_quant.scale), borders)
        return self._emit(Add(name, a, b, name, w_a, w_b, requant), out_quant, borders)

    def mul(self, name, a, b, out_quant: QuantParams, borders: BorderTable) -> str:
        """Elementwise product (D.16): ``M = s_a s_b / s_y``."""
        real = self._tensors[a].quant.scale * self._tensors[b].quant.scale / out_quant.scale
        return self._emit(Mul(name, a, b, name, self.requantizer(real, borders)), out_quant, borders)

    def lut(self, name, x, unary: Unary, out_quant: QuantParams, borders: BorderTable) -> str:
        """A lookup table of ``unary`` (D.15) onto ``out_quant`` with the output's border table."""
        table = lookup_table(unary, self._tensors[x].quant, out_quant, borders.beta)
        return self._emit(Lut(name, x, name, table), out_quant, borders)

    def concat(self, name, inputs, out_quant: QuantParams, borders: BorderTable) -> str:
        """Concat along channels (D.17) of two or more tensors, each requantized to ``out_quant``
        with ``M = s_x / s_y`` per output channel (1, a copy, where an input's scale is the
        output's). More than two inputs chain binary concats: every partial result already has
        the output's quantization (and its rows of a per-channel table), so each later concat
        copies it; the last op is named ``name``."""
        if len(inputs) < 2:
            raise ProgramError(f"concat '{name}' needs at least two inputs, got {len(inputs)}")
        first = inputs[0]
        for i, x in enumerate(inputs[1:], start=1):
            channels = sum(self._tensors[t].shape[0] for t in inputs[: i + 1])
            out = name if i == len(inputs) - 1 else f"{name}_part{i}"
            table = borders if borders.values.shape[0] == 1 else BorderTable(borders.frac_bits, borders.values[:channels])
            real = np.concatenate([np.full(self._tensors[t].shape[0], self._tensors[t].quant.scale / out_quant.scale)
                                   for t in (first, x)])
            first = self._emit(Concat(out, first, x, out, self.requantizer(real, table)), out_quant, table)
        return first

    def clamp(self, name, x, lo, hi) -> str:
        t = self._tensors[x]
        return self._emit(Clamp(name, x, name, np.atleast_1d(lo), np.atleast_1d(hi)), t.quant, self._borders[x])

    def relu(self, name, x) -> str:
        """ReLU: the clamp at the zero-point (D.13)."""
        q = self._tensors[x].quant
        return self.clamp(name, x, q.zero_point, q.qmax)

    def relu6(self, name, x) -> str:
        """ReLU6: clamp to ``[z, q(6)]`` where ``q(6)`` is 6.0 border-rounded with the tensor's
        own table, per channel when the table is (D.13)."""
        t, borders = self._tensors[x], self._borders[x]
        q = t.quant
        six = np.full((1, borders.values.shape[0]), 6.0)
        hi = rounding.border_round(six, q.scale, q.zero_point, q.qmin, q.qmax, borders.beta)[0]
        lo = np.full_like(hi, q.zero_point)
        return self.clamp(name, x, lo, hi)

    def maxpool(self, name, x, kernel_size, stride, padding=0, dilation=1, padding_end=None) -> str:
        """Max pooling (D.10): ``padding`` (top, left) before, ``padding_end`` (None: ``padding``) after."""
        t = self._tensors[x]
        return self._emit(MaxPool2d(name, x, name, kernel_size, stride, padding, dilation, padding_end), t.quant, self._borders[x])

    def avgpool(self, name, x, kernel_size, stride, out_quant, borders, padding=0) -> str:
        """Average pooling (D.11): ``M = s_x / (KH * KW * s_y)``."""
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        real = self._tensors[x].quant.scale / (kh * kw * out_quant.scale)
        op = AvgPool2d(name, x, name, (kh, kw), stride, self.requantizer(real, borders), padding)
        return self._emit(op, out_quant, borders)

    def global_avgpool(self, name, x, out_quant, borders) -> str:
        """Global average pooling (D.12): ``M = s_x / (H * W * s_y)``."""
        t = self._tensors[x]
        real = t.quant.scale / (t.shape[1] * t.shape[2] * out_quant.scale)
        return self._emit(GlobalAvgPool(name, x, name, self.requantizer(real, borders)), out_quant, borders)

    def flatten(self, name, x) -> str:
        t = self._tensors[x]
        return self._emit(Flatten(name, x, name), t.quant, self._borders[x])

    def build(self, output: str, accumulator_bits: int = 32,
              overflow: rounding.OverflowPolicy = rounding.OverflowPolicy.WRAP) -> Program:
        return Program(tuple(self._tensors.values()), tuple(self._ops), self.input, output,
                       self.input_borders, accumulator_bits, overflow)
