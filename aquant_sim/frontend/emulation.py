"""The integer program's semantics in torch, exact: the project's torch backend of the datapath.

The front-end's exact forward (:mod:`aquant_sim.frontend.exact`, ``docs/calibration.md`` C.9)
runs the ops that lowering writes through :func:`run_op`; :func:`emulate` runs a whole
:class:`~aquant_sim.program.Program` (the tests compare it with the simulator, every tensor, bit
for bit). The requantizer here is checked against ``rounding.requantize`` by the conformance
suite (``aquant_sim.testing.conformance``, implementation "torch").

Sums of products of a conv or linear run as ``F.conv2d``/``F.linear`` on integer-valued floats
(:func:`sum_dtype`): float32 while ``K * max|x - z_x| * max|w - z_w| < 2^24`` (every partial
sum, in any order, is then an integer that float32 holds exactly), else float64 (exact below
2^53, which b <= 16-bit operands never reach); the result converts to int64 without loss. The
float32 choice is made on CPU only, where torch's convolutions are direct or GEMM sums (no
Winograd or FFT transforms, no TF32). Everything after the sum is int64: the bias, the
accumulator width (wrap or saturate, as ``rounding.apply_overflow``), the requantizer (6)-(8)
with arithmetic shifts, clamps and the border table lookup. The input quantizer is real-valued
border rounding (1)-(4) in float64, the same IEEE operations as ``rounding.border_round``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from aquant_sim.errors import UnsupportedError
from aquant_sim.program import (
    AccumulatorParams, BorderTable, OpKind, Program, QuantParams, Requantizer,
)
from aquant_sim.rounding import OverflowPolicy, RequantVariant, accumulator_range

FLOAT32_EXACT = 1 << 24
"""Integers of magnitude up to 2^24 are exact in float32: the bound of :func:`sum_dtype`."""

WEIGHTED_KINDS = (OpKind.CONV2D, OpKind.LINEAR)
REQUANTIZING_KINDS = WEIGHTED_KINDS + (OpKind.ADD, OpKind.AVGPOOL2D, OpKind.GLOBAL_AVGPOOL, OpKind.MUL, OpKind.CONCAT)
"""Ops that accumulate and then requantize (or leave accumulators); the others map levels."""


def _channel_vector(values, ndim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values), dtype=torch.int64)
    shape = [1] * ndim
    shape[1] = t.shape[0]
    return t.reshape(shape)


def table_index(table_shape: tuple[int, int], j: torch.Tensor) -> torch.Tensor | None:
    """Flat index ``g(c) * L + j`` into a (G, L) table for every element (channel on axis 1),
    or None for a 1x1 table."""
    groups, levels = table_shape
    if groups == 1 and levels == 1:
        return None
    index = j if levels > 1 else torch.zeros_like(j)
    if groups > 1:
        shape = [1] * j.dim()
        shape[1] = -1
        index = index + torch.arange(j.shape[1], device=j.device).reshape(shape) * levels
    return index


def lookup(table: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """``table[g(c), j]`` for every element (channel on axis 1), as ``rounding.lookup_borders``."""
    index = table_index(tuple(table.shape), j)
    return table[0, 0] if index is None else torch.take(table, index)


def _border_step(k: torch.Tensor, up: torch.Tensor, quant: QuantParams) -> torch.Tensor:
    """(4)/(8): ``clamp(k + [f >= beta], qmin, qmax)`` with (3)'s index already used for ``up``."""
    return torch.clamp(k + up, quant.qmin, quant.qmax)


def _border_index(k: torch.Tensor, quant: QuantParams) -> torch.Tensor:
    """(3): ``clamp(k, qmin, qmax - 1) - qmin``."""
    j = torch.clamp(k, quant.qmin, quant.qmax - 1)
    return j - quant.qmin if quant.qmin else j


def quantize_input(x: torch.Tensor, quant: QuantParams, borders: BorderTable) -> torch.Tensor:
    """(1)-(4) in float64: ``u = x / s + z``, ``k = floor(u)``, ``f = u - k``; int64 levels."""
    u = x.double() / quant.scale + quant.zero_point
    k_float = torch.floor(u)
    f = u - k_float
    # Clip before the cast so that huge values cannot overflow int64; (4)'s clamp gives the same.
    k = torch.clamp(k_float, quant.qmin - 1, quant.qmax + 1).to(torch.int64)
    beta = torch.as_tensor(borders.beta, dtype=torch.float64, device=x.device)
    return _border_step(k, f >= lookup(beta, _border_index(k, quant)), quant)


def scale_to_fixed_point(acc: torch.Tensor, requant: Requantizer, zero_point: int) -> torch.Tensor:
    """(6): ``v = floor(acc m / 2^(n - F)) + z 2^F`` in int64 (a negative ``n - F`` shifts left)."""
    frac = requant.frac_bits
    m = _channel_vector(requant.multiplier, acc.dim()).to(acc.device)
    s = _channel_vector(requant.shift, acc.dim()).to(acc.device) - frac
    product = acc * m
    if requant.shift.min() >= frac:  # every shift is to the right (the common case): one pass
        shifted = product >> s
    else:
        shifted = torch.where(s >= 0, product >> s.clamp_min(0), product << (-s).clamp_min(0))
    return shifted + (zero_point << frac)


def round_fixed_point(v: torch.Tensor, borders: BorderTable, quant: QuantParams) -> torch.Tensor:
    """(7)-(8): ``k = v >> F``, ``f = v & (2^F - 1)``, ``q = clamp(k + [f >= B[g, j]], qmin, qmax)``."""
    frac = borders.frac_bits
    k = v >> frac
    f = v & ((1 << frac) - 1)
    table = torch.as_tensor(borders.values, dtype=torch.int64, device=v.device)
    return _border_step(k, f >= lookup(table, _border_index(k, quant)), quant)


def requantize(acc: torch.Tensor, requant: Requantizer, quant: QuantParams) -> torch.Tensor:
    """The requantizer (6)-(8): int64 accumulators in, levels out. Only the BORDER variant:
    calibration targets this project's requantizer, not a runtime's."""
    if requant.variant is not RequantVariant.BORDER:
        raise UnsupportedError(f"the front-end emulates the 'border' requantizer (6)-(8), not '{requant.variant.value}'")
    return round_fixed_point(scale_to_fixed_point(acc, requant, quant.zero_point), requant.borders, quant)


def apply_overflow(acc: torch.Tensor, bits: int, policy: OverflowPolicy) -> tuple[torch.Tensor, int]:
    """Fit exact int64 sums into an A-bit accumulator (``rounding.apply_overflow``): the result
    and the count of elements that did not fit."""
    lo, hi = accumulator_range(bits)
    smallest, largest = torch.aminmax(acc) if acc.numel() else (lo, hi)
    if lo <= smallest and largest <= hi:
        return acc, 0
    count = int(((acc < lo) | (acc > hi)).sum())
    if policy is OverflowPolicy.SATURATE:
        return torch.clamp(acc, lo, hi), count
    return ((acc - lo) & ((1 << bits) - 1)) + lo, count


def sum_dtype(terms: int, max_input: int, max_weight: int, device: torch.device) -> torch.dtype:
    """float32 when ``terms * max_input * max_weight < 2^24`` on CPU (every partial sum exact in
    float32), else float64."""
    if device.type == "cpu" and terms * max_input * max_weight < FLOAT32_EXACT:
        return torch.float32
    return torch.float64


def _exact_long(y: torch.Tensor) -> torch.Tensor:
    """Integer-valued float sums (exact, so the cast loses nothing) to int64."""
    return y.to(torch.int64)


def _accumulate_weighted(op, x: torch.Tensor, quant: QuantParams) -> torch.Tensor:
    """(5): ``bias[c] + sum (w[c, i] - z_w[c]) (x_i - z_x)``, exact, int64."""
    weight = np.asarray(op.weight, dtype=np.int64)
    weight = weight - op.weight_zero_point.reshape((-1,) + (1,) * (weight.ndim - 1))
    terms = int(np.prod(weight.shape[1:]))
    max_input = max(quant.zero_point - quant.qmin, quant.qmax - quant.zero_point)
    dtype = sum_dtype(terms, max_input, int(np.abs(weight).max(initial=0)), x.device)
    centred = (x - quant.zero_point).to(dtype)
    w = torch.as_tensor(weight, device=x.device).to(dtype)
    if op.kind is OpKind.CONV2D:
        (top, left), (bottom, right) = op.padding, op.padding_end
        # Padding with z is padding the centred levels with 0.
        centred = F.pad(centred, (left, right, top, bottom)) if (top, left) != (bottom, right) else centred
        padding = op.padding if (top, left) == (bottom, right) else 0
        acc = F.conv2d(centred, w, None, op.stride, padding, op.dilation, op.groups)
    else:
        acc = F.linear(centred, w)
    return _exact_long(acc) + _channel_vector(op.bias, acc.dim()).to(x.device)


def accumulate(op, ins: list[torch.Tensor], quants: list[QuantParams]) -> torch.Tensor:
    """The exact int64 sum of a requantizing op (before the accumulator width is applied):
    (5) for conv/linear, D.9 for the add, D.11/D.12 window sums for the pools, D.16's product
    (the second operand broadcast over positions when it has one value per channel), D.17's
    centred levels for the concat."""
    kind = op.kind
    if kind in WEIGHTED_KINDS:
        return _accumulate_weighted(op, ins[0], quants[0])
    if kind is OpKind.ADD:
        return op.weight_a * (ins[0] - quants[0].zero_point) + op.weight_b * (ins[1] - quants[1].zero_point)
    if kind is OpKind.MUL:
        return (ins[0] - quants[0].zero_point) * (ins[1] - quants[1].zero_point)
    if kind is OpKind.CONCAT:
        return torch.cat([ins[0] - quants[0].zero_point, ins[1] - quants[1].zero_point], dim=1)
    centred = ins[0] - quants[0].zero_point
    if kind is OpKind.AVGPOOL2D:
        # Window sums of b <= 16-bit levels over at most 2^16 taps: exact in float64.
        return _exact_long(F.avg_pool2d(centred.double(), op.kernel_size, op.stride, op.padding,
                                        count_include_pad=True, divisor_override=1))
    if kind is OpKind.GLOBAL_AVGPOOL:
        return centred.sum(dim=(2, 3), keepdim=True)
    raise ValueError(f"op '{op.name}' ({kind.value}) does not accumulate")


def lut(table: np.ndarray, x: torch.Tensor, qmin: int) -> torch.Tensor:
    """D.15: ``table[g(c), x - qmin]`` (channel on axis 1; one row serves every channel)."""
    table = torch.as_tensor(table, dtype=torch.int64, device=x.device)
    index = x - qmin
    if table.shape[0] > 1:
        shape = [1] * x.dim()
        shape[1] = -1
        index = index + torch.arange(table.shape[0], device=x.device).reshape(shape) * table.shape[1]
    return torch.take(table, index)


def max_pool(op, x: torch.Tensor) -> torch.Tensor:
    """D.10 on a float tensor: the maximum of each window of ``op`` (a ``MaxPool2d``), padded by
    ``padding`` before and ``padding_end`` after. Padding is -inf, which never wins, as the
    program's ``qmin`` padding never does; unequal sides are padded first, since torch's max
    pooling pads both sides alike."""
    (top, left), (bottom, right) = op.padding, op.padding_end
    if (top, left) == (bottom, right):
        return F.max_pool2d(x, op.kernel_size, op.stride, op.padding, op.dilation)
    padded = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(padded, op.kernel_size, op.stride, 0, op.dilation)


def map_levels(op, x: torch.Tensor, quant: QuantParams) -> torch.Tensor:
    """Ops that map levels without requantizing: max pooling (D.10), clamp (D.13), flatten,
    lookup table (D.15); ``quant`` is the input's format."""
    kind = op.kind
    if kind is OpKind.LUT:
        return lut(op.table, x, quant.qmin)
    if kind is OpKind.MAXPOOL2D:
        return _exact_long(max_pool(op, x.double()))
    if kind is OpKind.CLAMP:
        return torch.minimum(torch.maximum(x, _channel_vector(op.lo, x.dim()).to(x.device)), _channel_vector(op.hi, x.dim()).to(x.device))
    if kind is OpKind.FLATTEN:
        return x.reshape(x.shape[0], -1)
    raise ValueError(f"op '{op.name}' ({kind.value}) accumulates")


def run_op(op, ins: list[torch.Tensor], quants: list[QuantParams], out_quant, accumulator_bits: int,
           overflow: OverflowPolicy) -> tuple[torch.Tensor, int]:
    """One op on int64 input levels: its output (levels, or A-bit accumulators for an op without
    a requantizer) and the count of accumulator overflows."""
    if op.kind not in REQUANTIZING_KINDS:
        return map_levels(op, ins[0], quants[0]), 0
    acc, count = apply_overflow(accumulate(op, ins, quants), accumulator_bits, overflow)
    return (acc if op.requant is None else requantize(acc, op.requant, out_quant)), count


def dequantize(values: torch.Tensor, quant, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Real values ``s (q - z)`` or ``acc scale[c]`` as ``simulator.dequantize`` computes them in
    float64 (the same IEEE operations), then cast to ``dtype``. A float32 result with a scale that
    float32 holds is computed in float32: ``q - z`` is exact, and the one rounding of the product
    to float32 is the same as that of float64's exact product (24 + 17 bits) then cast."""
    if isinstance(quant, AccumulatorParams):
        scale = torch.as_tensor(quant.scale, dtype=torch.float64, device=values.device)
        shape = [1] * values.dim()
        shape[1] = -1
        return (values.double() * scale.reshape(shape)).to(dtype)
    if dtype == torch.float32 and float(np.float32(quant.scale)) == quant.scale:
        return (values - quant.zero_point).to(torch.float32) * quant.scale
    return (quant.scale * (values.double() - quant.zero_point)).to(dtype)


@torch.no_grad()
def emulate(program: Program, x: torch.Tensor, keep_tensors: bool = False):
    """Run ``program`` on a batch (float input, or integer levels); returns the output integers
    (int64: levels, or accumulators for an unrequantized output), or every tensor by name."""
    inp = program.input_tensor
    if x.dtype.is_floating_point:
        values = {program.input: quantize_input(x, inp.quant, program.input_borders)}
    else:
        values = {program.input: x.to(torch.int64)}
    for op in program.ops:
        quants = [program.tensor(name).quant for name in op.inputs]
        values[op.output], _ = run_op(op, [values[name] for name in op.inputs], quants, program.tensor(op.output).quant,
                                      program.accumulator_bits, program.overflow)
    return values if keep_tensors else values[program.output]
