"""The integer program's semantics in torch, exact: a second implementation of the datapath
that the front-end uses to check lowering ("the simulator's output equals the emulation's, bit
for bit").

Sums of products run in float64 (``F.conv2d``/``F.linear`` on integer-valued tensors): every
partial sum of b <= 16-bit operands stays far below 2^53, so float64 addition is exact and the
result converts to int64 without loss. Everything after the sum is int64: the accumulator width
(wrap or saturate, as ``rounding.apply_overflow``), the requantizer (6)-(8) with arithmetic
shifts, clamps and the border table lookup. The input quantizer is real-valued border rounding
(1)-(4) in float64, the same IEEE operations as ``rounding.border_round``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aquant_sim.errors import UnsupportedError
from aquant_sim.program import BorderTable, OpKind, Program, QuantParams, Requantizer
from aquant_sim.rounding import OverflowPolicy, RequantVariant, accumulator_range


def _channel_vector(values, ndim: int) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.int64)
    shape = [1] * ndim
    shape[1] = t.shape[0]
    return t.reshape(shape)


def _lookup(table: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    groups, levels = table.shape
    shape = [1] * j.dim()
    shape[1] = -1
    channel = torch.arange(j.shape[1]).reshape(shape) if groups > 1 else torch.zeros_like(j[:1, :1])
    level = j if levels > 1 else torch.zeros_like(j)
    return table[channel, level]


def _border_step(k: torch.Tensor, up: torch.Tensor, quant: QuantParams) -> torch.Tensor:
    return torch.clamp(k + up.to(torch.int64), quant.qmin, quant.qmax)


def quantize_input(x: torch.Tensor, quant: QuantParams, borders: BorderTable) -> torch.Tensor:
    """(1)-(4) in float64: ``u = x / s + z``, ``k = floor(u)``, ``f = u - k``."""
    u = x.double() / quant.scale + quant.zero_point
    k_float = torch.floor(u)
    f = u - k_float
    k = torch.clamp(k_float, quant.qmin - 1, quant.qmax + 1).to(torch.int64)
    j = torch.clamp(k, quant.qmin, quant.qmax - 1) - quant.qmin
    beta = torch.as_tensor(borders.beta, dtype=torch.float64)
    return _border_step(k, f >= _lookup(beta, j), quant)


def requantize(acc: torch.Tensor, requant: Requantizer, quant: QuantParams) -> torch.Tensor:
    """(6)-(8): ``v = floor(acc m / 2^(n - F)) + z 2^F``, ``k = v >> F``,
    ``f = v & (2^F - 1)``, ``q = clamp(k + [f >= B[g, j]], qmin, qmax)``. Only the BORDER
    variant: calibration targets this project's requantizer, not a runtime's."""
    if requant.variant is not RequantVariant.BORDER:
        raise UnsupportedError(f"the front-end emulates the 'border' requantizer (6)-(8), not '{requant.variant.value}'")
    frac = requant.frac_bits
    m = _channel_vector(requant.multiplier, acc.dim())
    s = _channel_vector(requant.shift, acc.dim()) - frac
    product = acc * m
    v = torch.where(s >= 0, product >> s.clamp_min(0), product << (-s).clamp_min(0)) + (quant.zero_point << frac)
    k = v >> frac
    f = v & ((1 << frac) - 1)
    j = torch.clamp(k, quant.qmin, quant.qmax - 1) - quant.qmin
    table = torch.as_tensor(requant.borders.values, dtype=torch.int64)
    return _border_step(k, f >= _lookup(table, j), quant)


def apply_overflow(acc: torch.Tensor, bits: int, policy: OverflowPolicy) -> torch.Tensor:
    lo, hi = accumulator_range(bits)
    if policy is OverflowPolicy.SATURATE:
        return torch.clamp(acc, lo, hi)
    return ((acc - lo) & ((1 << bits) - 1)) + lo


def _exact_long(y: torch.Tensor) -> torch.Tensor:
    """Integer-valued float64 sums (exact, below 2^53) to int64."""
    return y.round().to(torch.int64)


def _accumulate(op, x: torch.Tensor, zero_point: int) -> torch.Tensor:
    centred = (x - zero_point).double()
    weight = torch.as_tensor(op.weight, dtype=torch.float64)
    if op.kind is OpKind.CONV2D:
        acc = F.conv2d(centred, weight, None, op.stride, op.padding, op.dilation, op.groups)
        bias = _channel_vector(op.bias, 4)
    else:
        acc = F.linear(centred, weight)
        bias = _channel_vector(op.bias, 2)
    return _exact_long(acc) + bias


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
        out = program.tensor(op.output)
        ins = [values[name] for name in op.inputs]
        qin = [program.tensor(name).quant for name in op.inputs]
        kind = op.kind
        if kind in (OpKind.CONV2D, OpKind.LINEAR):
            acc = _accumulate(op, ins[0], qin[0].zero_point)
        elif kind is OpKind.ADD:
            acc = op.weight_a * (ins[0] - qin[0].zero_point) + op.weight_b * (ins[1] - qin[1].zero_point)
        elif kind is OpKind.AVGPOOL2D:
            summed = F.avg_pool2d((ins[0] - qin[0].zero_point).double(), op.kernel_size, op.stride, op.padding,
                                  count_include_pad=True, divisor_override=1)
            acc = _exact_long(summed)
        elif kind is OpKind.GLOBAL_AVGPOOL:
            acc = (ins[0] - qin[0].zero_point).sum(dim=(2, 3), keepdim=True)
        else:
            if kind is OpKind.MAXPOOL2D:
                result = _exact_long(F.max_pool2d(ins[0].double(), op.kernel_size, op.stride, op.padding, op.dilation))
            elif kind is OpKind.CLAMP:
                result = torch.minimum(torch.maximum(ins[0], _channel_vector(op.lo, ins[0].dim())), _channel_vector(op.hi, ins[0].dim()))
            else:
                result = ins[0].reshape(ins[0].shape[0], -1)
            values[op.output] = result
            continue
        acc = apply_overflow(acc, program.accumulator_bits, program.overflow)
        values[op.output] = acc if op.requant is None else requantize(acc, op.requant, out.quant)
    return values if keep_tensors else values[program.output]
