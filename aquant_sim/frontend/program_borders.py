"""Learned border tables for an integer program that no torch model produced (an imported int8
model): the front-end's border learning (``docs/calibration.md`` C.4-C.6: the fake quantizer of
:func:`~aquant_sim.frontend.border_round.border_round`, soft borders annealed by ``tau``, Adam,
clipping to ``[2^-F, 1]``, the reference's ``lp_loss``) driven by the network's output error.

An imported model has integer weights and no float ones, so the float teacher is the program
itself with its integer weights and **unrounded** activations: every requantizer computes
``t = acc * M`` (conv, linear: the program's own ``M = m * 2^-n``; adds and poolings: the ratio
of the tensor scales) and keeps ``clamp(t + z, qmin, qmax) - z`` (the clamp is the fused ReLU
and the calibrated range) without rounding; the teacher's input is ``clamp(x / s + z, qmin,
qmax) - z``. The student is the same forward with every requantizer rounding: the tuned ones
(BORDER, :mod:`aquant_sim.importers.border_requant`) through their learned borders (soft while
training, hard F-bit after), the others through border 1/2 with straight-through gradients; its
input is the program's exact input levels. Values are centred levels ``q - z`` in float32, the
output in real units (``s_y (q - z)``, or ``acc * scale`` for accumulators). The loss is
``lp_loss(student, teacher, 2)`` on the network output; only the tables train.

This forward is the training surrogate: its float sums are not the datapath's exact integers.
The program's exact torch forward is :func:`aquant_sim.frontend.program_exact.exact_tensors`.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aquant_sim.errors import ConfigError, UnsupportedError
from aquant_sim.frontend.border_round import border_round
from aquant_sim.frontend.emulation import max_pool, quantize_input
from aquant_sim.frontend.reconstruction import ReconstructionConfig, lp_loss
from aquant_sim.program import AccumulatorParams, BorderGranularity, OpKind, Program
from aquant_sim.rounding import dyadic_value, encode_borders

SURROGATE_KINDS = (OpKind.CONV2D, OpKind.LINEAR, OpKind.ADD, OpKind.AVGPOOL2D, OpKind.GLOBAL_AVGPOOL,
                   OpKind.MAXPOOL2D, OpKind.CLAMP, OpKind.FLATTEN)
"""Op kinds the surrogate forward has; a program with any other is refused."""


@dataclass(frozen=True)
class BorderTuningConfig:
    """Settings of :func:`learn_borders`; the learning rate and temperatures are the front-end's
    (``ReconstructionConfig``)."""

    iters: int = 500
    batch_size: int = 32
    border_lr: float = ReconstructionConfig.border_lr
    tau: tuple[float, float] = ReconstructionConfig.tau
    granularity: BorderGranularity = BorderGranularity.CHANNEL
    """One border per output channel (at 8 bits a per-level table has 255 entries a channel)."""
    seed: int = 0

    def __post_init__(self):
        if self.iters < 0 or self.batch_size < 1:
            raise ConfigError(f"border tuning: iters must be >= 0 and batch_size >= 1, got {self.iters} and {self.batch_size}")
        if not (self.border_lr > 0 and all(t > 0 for t in self.tau)):
            raise ConfigError(f"border tuning: border_lr and tau must be positive, got {self.border_lr} and {self.tau}")
        if not isinstance(self.granularity, BorderGranularity):
            raise ConfigError(f"border tuning: granularity must be a BorderGranularity, got {self.granularity!r}")


class Mode(enum.Enum):
    """How the surrogate's requantizers round."""

    TEACHER = "teacher"
    """Not at all: clipped to the tensor's range only."""
    SOFT = "soft"
    """Tuned ops through their soft borders (C.5), the others to nearest."""
    HARD = "hard"
    """Tuned ops through their F-bit borders, the others to nearest."""


def _channels(values, ndim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)
    return t.reshape((1, -1) + (1,) * (ndim - 2)) if t.numel() > 1 else t.reshape(())


class ProgramSurrogate(nn.Module):
    """The module docstring's teacher and student forward of ``program``; ``tables`` holds one
    (G, L) border parameter per tuned op (in ``(0, 1]``, starting at 1/2)."""

    def __init__(self, program: Program, tuned, granularity: BorderGranularity):
        super().__init__()
        for op in program.ops:
            if op.kind not in SURROGATE_KINDS:
                raise UnsupportedError(f"op '{op.name}' ({op.kind.value}): tune-borders has no float forward for this op kind")
        self.program = program
        self.index = {name: i for i, name in enumerate(tuned)}
        self.tables = nn.ParameterList()
        for name in tuned:
            op = next(o for o in program.ops if o.name == name)
            out = program.tensor(op.output)
            shape = granularity.table_shape(out.channels, out.quant.bits)
            self.tables.append(nn.Parameter(torch.full(shape, 0.5)))
        self.frac_bits = {name: next(o for o in program.ops if o.name == name).requant.frac_bits for name in tuned}

    def input_values(self, images: torch.Tensor, mode: Mode) -> torch.Tensor:
        """Centred input levels: exact (student) or unrounded and clipped (teacher)."""
        tensor = self.program.input_tensor
        q = tensor.quant
        if mode is Mode.TEACHER:
            u = images.double() / q.scale + q.zero_point
            return (u.clamp(q.qmin, q.qmax) - q.zero_point).float()
        return (quantize_input(images, q, self.program.input_borders) - q.zero_point).float()

    def hard_tables(self) -> dict[str, np.ndarray]:
        """The learned tables encoded to F-bit integers ``B`` (``rounding.encode_borders``)."""
        return {name: encode_borders(self.tables[i].detach().double().numpy(), self.frac_bits[name])
                for name, i in self.index.items()}

    def _round(self, op, t: torch.Tensor, mode: Mode, tau: float) -> torch.Tensor:
        quant = self.program.tensor(op.output).quant
        z = quant.zero_point
        if mode is Mode.TEACHER:
            return (t + z).clamp(quant.qmin, quant.qmax) - z
        t = t.contiguous()
        if op.name in self.index and mode is Mode.SOFT:
            table = self.tables[self.index[op.name]].clamp(1.0 / (1 << self.frac_bits[op.name]), 1.0)
            return border_round(t, torch.tensor(1.0), table, z, quant.qmin, quant.qmax, True, tau)
        if op.name in self.index:
            table = torch.as_tensor(encode_borders(self.tables[self.index[op.name]].detach().double().numpy(),
                                                   self.frac_bits[op.name]) / float(1 << self.frac_bits[op.name]),
                                    dtype=torch.float32)
        else:
            table = torch.full((1, 1), 0.5)
        return border_round(t, torch.tensor(1.0), table, z, quant.qmin, quant.qmax, False, tau)

    def _weighted(self, op, x: torch.Tensor) -> torch.Tensor:
        w = np.asarray(op.weight, dtype=np.float64) - op.weight_zero_point.reshape((-1,) + (1,) * (op.weight.ndim - 1))
        w = torch.as_tensor(w, dtype=torch.float32)
        bias = torch.as_tensor(op.bias, dtype=torch.float32)
        if op.kind is OpKind.LINEAR:
            return F.linear(x, w, bias)
        (top, left), (bottom, right) = op.padding, op.padding_end
        x = F.pad(x, (left, right, top, bottom))  # centred levels: padding with z is padding with 0
        return F.conv2d(x, w, bias, op.stride, 0, op.dilation, op.groups)

    def _scale(self, name: str) -> float:
        return self.program.tensor(name).quant.scale

    def forward(self, x: torch.Tensor, mode: Mode, tau: float = 1.0) -> torch.Tensor:
        """The program's output in real units from centred input levels ``x`` (:meth:`input_values`)."""
        program = self.program
        values = {program.input: x}
        for op in program.ops:
            ins = [values[name] for name in op.inputs]
            kind = op.kind
            if kind in (OpKind.CONV2D, OpKind.LINEAR):
                acc = self._weighted(op, ins[0])
                if op.requant is None:
                    values[op.output] = acc
                    continue
                t = acc * _channels(dyadic_value(op.requant.multiplier, op.requant.shift), acc.dim())
            elif kind is OpKind.ADD:
                s = self._scale(op.output)
                t = ins[0] * (self._scale(op.input_a) / s) + ins[1] * (self._scale(op.input_b) / s)
            elif kind is OpKind.AVGPOOL2D:
                t = F.avg_pool2d(ins[0], op.kernel_size, op.stride, op.padding, count_include_pad=True) \
                    * (self._scale(op.input) / self._scale(op.output))
            elif kind is OpKind.GLOBAL_AVGPOOL:
                t = ins[0].mean(dim=(2, 3), keepdim=True) * (self._scale(op.input) / self._scale(op.output))
            else:
                values[op.output] = self._pass_through(op, ins[0])
                continue
            values[op.output] = self._round(op, t, mode, tau)
        out = program.output_tensor
        y = values[program.output]
        if isinstance(out.quant, AccumulatorParams):
            return y * _channels(out.quant.scale, y.dim())
        return y * out.quant.scale

    def _pass_through(self, op, x: torch.Tensor) -> torch.Tensor:
        if op.kind is OpKind.MAXPOOL2D:
            return max_pool(op, x)
        if op.kind is OpKind.CLAMP:
            z = self.program.tensor(op.input).quant.zero_point
            return torch.maximum(torch.minimum(x, _channels(op.hi - z, x.dim())), _channels(op.lo - z, x.dim()))
        return x.reshape(x.shape[0], -1)


@dataclass(frozen=True)
class TuningResult:
    tables: dict[str, np.ndarray]
    """The learned F-bit tables ``B`` by op name."""
    loss_nearest: float
    """``lp_loss`` of the hard student with every border 1/2, on the calibration images."""
    loss_tuned: float
    """The same with the learned tables."""
    seconds: float


def _loss(model: ProgramSurrogate, inputs: torch.Tensor, target: torch.Tensor, chunk: int = 256) -> float:
    with torch.no_grad():
        total = sum(float(lp_loss(model(inputs[i:i + chunk], Mode.HARD), target[i:i + chunk], 2.0)) * len(target[i:i + chunk])
                    for i in range(0, len(target), chunk))
    return total / len(target)


def learn_borders(program: Program, tuned, images: torch.Tensor, config: BorderTuningConfig) -> TuningResult:
    """Learn the border tables of the ``tuned`` ops of ``program`` (BORDER requantizers) on
    calibration ``images`` (float, NCHW) against the teacher's output (module docstring)."""
    model = ProgramSurrogate(program, tuned, config.granularity)
    started = time.perf_counter()
    with torch.no_grad():
        inputs = model.input_values(images, Mode.SOFT)
        target = model(model.input_values(images, Mode.TEACHER), Mode.TEACHER)
    loss_nearest = _loss(model, inputs, target)
    if len(model.tables) and config.iters:
        optimizer = torch.optim.Adam(model.tables.parameters(), lr=config.border_lr)
        generator = torch.Generator().manual_seed(config.seed)
        (tau0, tau1) = config.tau
        for t in range(config.iters):
            idx = torch.randint(len(target), (config.batch_size,), generator=generator)
            tau = tau0 * (tau1 / tau0) ** (t / max(1, config.iters - 1))
            loss = lp_loss(model(inputs.index_select(0, idx), Mode.SOFT, tau), target.index_select(0, idx), 2.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for name, i in model.index.items():
                    model.tables[i].clamp_(1.0 / (1 << model.frac_bits[name]), 1.0)
    loss_tuned = _loss(model, inputs, target)
    return TuningResult(model.hard_tables(), loss_nearest, loss_tuned, time.perf_counter() - started)
