"""Lookup-table activations: the one definition of a :class:`~aquant_sim.program.Lut` op's table.

A unary function ``f`` (SiLU, Hardswish, sigmoid, a constant multiple, ...) on a ``b``-bit
tensor takes at most ``2^b`` distinct input levels, so the integer program holds it as a table
of ``2^b`` output levels (``docs/datapath.md`` D.15). :func:`lookup_table` builds it, and it is
the only place that does: lowering writes its table into the program and the front-end's exact
forward runs the same op, so the fake-quant model computes what the program computes.

For input level ``q`` (``qmin_x <= q <= qmax_x``) and output border row ``g``:

    (T)  table[g, q - qmin_x] = border_round(f(s_x (q - z_x)), s_y, z_y, qmin_y, qmax_y, beta[g])

that is: dequantize the level (one float64 product of an exact integer), apply ``f`` in float64,
and round to the output grid with the contract's real-valued border rounding (1)-(4) of the
output tensor's own border table (row ``g`` of a per-channel table; one row otherwise), clamped.
The table has one row per output border group: ``(1, 2^b)`` or ``(C, 2^b)``.

This module is numpy only (the integer engine never imports torch); the front-end's float path
spells the same functions in torch (``aquant_sim.frontend.graph``), and a test compares them.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from aquant_sim.errors import ProgramError
from aquant_sim.rounding import border_round

class UnaryFunction(enum.Enum):
    """The functions a lookup table can hold; ``parameters`` of :class:`Unary` per member."""

    SIGMOID = "sigmoid"
    """``1 / (1 + exp(-x))``; no parameters."""
    TANH = "tanh"
    """no parameters."""
    SILU = "silu"
    """``x * sigmoid(x)``; no parameters."""
    HARDSIGMOID = "hardsigmoid"
    """``clamp(x / 6 + 1/2, 0, 1)`` (torch's ``relu6(x + 3) / 6``); no parameters."""
    HARDSWISH = "hardswish"
    """``x * hardsigmoid(x)``; no parameters."""
    GELU = "gelu"
    """``x * (1 + erf(x / sqrt(2))) / 2``; no parameters."""
    GELU_TANH = "gelu_tanh"
    """``x * (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2`` (torch's ``approximate='tanh'``)."""
    LEAKY_RELU = "leaky_relu"
    """``x`` for ``x >= 0``, else ``slope * x``; parameters ``(slope,)``."""
    ELU = "elu"
    """``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``; parameters ``(alpha,)``."""
    HARDTANH = "hardtanh"
    """``clamp(x, low, high)``; parameters ``(low, high)``, ``low < high``."""
    SCALE = "scale"
    """``c * x``, multiplication by a constant; parameters ``(c,)``, ``c != 0``."""
    OFFSET = "offset"
    """``x + c``, addition of a constant (GhostNet's ``relu6(x + 3) / 6``); parameters ``(c,)``."""


_PARAMETERS = {UnaryFunction.LEAKY_RELU: 1, UnaryFunction.ELU: 1, UnaryFunction.HARDTANH: 2, UnaryFunction.SCALE: 1,
               UnaryFunction.OFFSET: 1}
"""How many parameters each function takes (0 when absent)."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of the non-positive side only: no overflow warning for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass(frozen=True)
class Unary:
    """A unary function with its parameters, applied in float64 by :meth:`apply`."""

    function: UnaryFunction
    parameters: tuple[float, ...] = ()

    def __post_init__(self):
        if not isinstance(self.function, UnaryFunction):
            raise ProgramError(f"unary function: expected a UnaryFunction, got {self.function!r:.60}")
        params = tuple(float(p) for p in self.parameters)
        if len(params) != _PARAMETERS.get(self.function, 0) or not all(math.isfinite(p) for p in params):
            raise ProgramError(f"unary function '{self.function.value}': expected {_PARAMETERS.get(self.function, 0)} "
                               f"finite parameters, got {self.parameters!r:.60}")
        if self.function is UnaryFunction.HARDTANH and not params[0] < params[1]:
            raise ProgramError(f"unary function 'hardtanh': low must be below high, got {params}")
        if self.function is UnaryFunction.SCALE and params[0] == 0:
            raise ProgramError("unary function 'scale': the constant must not be 0 (the result would be a constant tensor)")
        object.__setattr__(self, "parameters", params)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``f(x)`` in float64, elementwise."""
        x = np.asarray(x, dtype=np.float64)
        f, p = self.function, self.parameters
        if f is UnaryFunction.SIGMOID:
            return _sigmoid(x)
        if f is UnaryFunction.TANH:
            return np.tanh(x)
        if f is UnaryFunction.SILU:
            return x * _sigmoid(x)
        if f is UnaryFunction.HARDSIGMOID:
            return np.clip(x / 6.0 + 0.5, 0.0, 1.0)
        if f is UnaryFunction.HARDSWISH:
            return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)
        if f is UnaryFunction.GELU:
            return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
        if f is UnaryFunction.GELU_TANH:
            return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
        if f is UnaryFunction.LEAKY_RELU:
            return np.where(x >= 0, x, p[0] * x)
        if f is UnaryFunction.ELU:
            return np.where(x > 0, x, p[0] * np.expm1(np.minimum(x, 0.0)))
        if f is UnaryFunction.HARDTANH:
            return np.clip(x, p[0], p[1])
        if f is UnaryFunction.OFFSET:
            return x + p[0]
        return p[0] * x  # SCALE


def lookup_table(unary: Unary, in_quant, out_quant, beta: np.ndarray) -> np.ndarray:
    """(T): the int64 table ``(G, 2^b_x)`` of ``unary`` from tensor format ``in_quant`` to
    ``out_quant`` (``program.QuantParams``), with the output's real borders ``beta`` of shape
    ``(G, L)`` (``BorderTable.beta``): entry ``[g, i]`` is input level ``qmin_x + i`` mapped
    through ``f`` and border-rounded (1)-(4) with row ``g``."""
    levels = np.arange(in_quant.qmin, in_quant.qmax + 1, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is refused just below
        values = unary.apply(in_quant.scale * (levels - in_quant.zero_point).astype(np.float64))
    if not np.all(np.isfinite(values)):
        raise ProgramError(f"lookup table: '{unary.function.value}' is not finite on the input grid")
    groups = beta.shape[0]
    return border_round(np.broadcast_to(values, (groups, values.size)), out_quant.scale, out_quant.zero_point,
                        out_quant.qmin, out_quant.qmax, beta, channel_axis=0)
