"""Degenerate channels, found before any long work: dead filters, zero batch-norm variances,
biases that cannot fit the accumulator and multipliers whose shift leaves the datapath's range.

Real pretrained weights hold them: filters whose weights are all ~0 (pruned or collapsed in
training), batch norms with ``gamma = 0`` or ``running_var = 0``. Folded, such a channel's bias
divided by a tiny weight scale overflows the 32-bit accumulator, and its multiplier
``M = s_x s_w[c] / s_y`` needs a shift beyond 62; the program builder would refuse it only at
lowering, after the whole reconstruction. So:

* :func:`zero_dead_channels` runs on the captured graph. A channel whose folded ``max|w[c]|`` is
  at most :data:`DEAD_RATIO` of its layer's largest is **dead**: its output is its bias, a
  constant, up to terms that 8-bit weights could not represent anyway. Its weights are set to
  exactly 0; the weight quantizer gives an all-zero channel the scale of its layer's largest
  channel, so its integers are 0 (nearest rounding keeps them there; learned rounding may move
  a weight by one level, as for any channel), its bias integer and its multiplier are those of
  an ordinary channel of the layer, and the program stays valid. Each layer with dead or
  zero-variance channels gets one :class:`ChannelFinding` naming the channels.
* :func:`check_requantizers` runs on the quantized model with its initial scales, before
  reconstruction: a bias integer that does not fit the accumulator, or a shift ``n - F``
  outside :func:`aquant_sim.rounding.scaled_shift_range`, is a :class:`ChannelFinding`, and
  :func:`raise_findings` turns them into one :class:`InputError` naming every layer and channel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aquant_sim import rounding
from aquant_sim.errors import InputError
from aquant_sim.frontend.graph import WEIGHTED, Graph, Node

DEAD_RATIO = 1e-6
"""A channel whose largest folded weight is at most this share of its layer's largest is dead.
Far below any weight grid's step: 16-bit weights resolve 2^-15 ~ 3e-5 of the largest."""

SHOWN = 8
"""Channels listed by index in one finding's line; the rest are counted."""


class Problem(enum.Enum):
    DEAD = "dead"
    """All weights ~0: the channel outputs its bias. Handled (weights set to 0)."""
    ZERO_VARIANCE = "zero_variance"
    """BatchNorm running_var = 0: the channel was constant on the training data. Reported."""
    BIAS_OVERFLOW = "bias_overflow"
    """round(b / (s_x s_w[c])) does not fit the accumulator. An error."""
    SHIFT_RANGE = "shift_range"
    """n[c] - F outside the datapath's shift range (D.6). An error."""


@dataclass(frozen=True)
class ChannelFinding:
    """Channels of one layer that share one problem; ``detail`` says what was measured or done."""

    layer: str
    module: str
    problem: Problem
    channels: tuple[int, ...]
    detail: str

    def line(self) -> str:
        shown = ", ".join(str(c) for c in self.channels[:SHOWN])
        more = f" and {len(self.channels) - SHOWN} more" if len(self.channels) > SHOWN else ""
        return f"layer '{self.layer}' (module '{self.module}'): {self.problem.value} channels [{shown}{more}]: {self.detail}"


def _channels(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(c) for c in torch.nonzero(mask).flatten())


def _peaks(node: Node) -> torch.Tensor:
    return node.weight.reshape(node.weight.shape[0], -1).abs().amax(dim=1)


@torch.no_grad()
def zero_dead_channels(graph: Graph) -> list[ChannelFinding]:
    """Set the weights of dead channels (module docstring) to exactly 0, in place; one finding
    per layer that had any. A layer whose weights are all ~0 is left alone (no channel to compare
    with) and reported when its requantizers are checked."""
    findings = []
    for node in graph.weighted:
        peaks = _peaks(node)
        largest = float(peaks.max())
        dead = peaks <= DEAD_RATIO * largest
        if largest == 0 or not dead.any():
            continue
        node.weight[dead] = 0
        findings.append(ChannelFinding(node.name, node.module, Problem.DEAD, _channels(dead),
                                       f"max|w| <= {DEAD_RATIO:g} x the layer's largest ({largest:.3g}); "
                                       f"handled as constants: weights set to 0, output = bias"))
    return findings


def zero_variance_channels(model: nn.Module, graph: Graph) -> list[ChannelFinding]:
    """Channels whose folded BatchNorm had ``running_var == 0`` (informational: the folding
    divides by ``sqrt(eps)``; with near-zero weights these channels are also dead)."""
    modules = dict(model.named_modules())
    findings = []
    for node in graph.weighted:
        for part in node.module.split("+")[1:]:
            bn = modules.get(part)
            if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.running_var is not None:
                zero = bn.running_var == 0
                if zero.any():
                    findings.append(ChannelFinding(node.name, node.module, Problem.ZERO_VARIANCE, _channels(zero),
                                                   f"BatchNorm '{part}' running_var = 0 (folded with 1/sqrt(eps))"))
    return findings


@torch.no_grad()
def check_requantizers(qm) -> list[ChannelFinding]:
    """With the quantized model's current scales, the channels whose bias integer does not fit
    ``config.accumulator_bits`` or whose shift ``n - F`` leaves the datapath's range (what the
    program builder would refuse at lowering)."""
    bits = qm.config.accumulator_bits
    lo_acc, hi_acc = rounding.integer_range(bits, signed=True)
    lo_shift, hi_shift = rounding.scaled_shift_range(bits)
    findings = []
    for node in qm.graph.nodes:
        if node.kind not in WEIGHTED:
            continue
        bias = qm.bias_integers(node).numpy()
        over = torch.from_numpy((bias < lo_acc) | (bias > hi_acc))
        if over.any():
            worst = float(np.abs(bias).max())
            findings.append(ChannelFinding(node.name, node.module, Problem.BIAS_OVERFLOW, _channels(over),
                                           f"bias / (s_x s_w) reaches {worst:.3g}, beyond the {bits}-bit accumulator"))
        if node.name not in qm.acts:
            continue  # the network output left as accumulators: no requantizer
        out = qm.acts[node.name]
        s_x = float(qm.source_scale(node.inputs[0]))
        real = s_x * qm.weights[node.name].scale.double().numpy() / float(out.scale)
        _, shift = rounding.quantize_multiplier(real)
        scaled = shift - out.frac_bits
        bad = torch.from_numpy((scaled < lo_shift) | (scaled > hi_shift))
        if bad.any():
            findings.append(ChannelFinding(node.name, node.module, Problem.SHIFT_RANGE, _channels(bad),
                                           f"n - F reaches [{scaled.min()}, {scaled.max()}], outside [{lo_shift}, {hi_shift}] "
                                           f"(M = s_x s_w / s_y from {real.min():.3g} to {real.max():.3g})"))
    return findings


def raise_findings(findings: list[ChannelFinding]) -> None:
    """One :class:`InputError`, one line listing every finding; nothing when empty."""
    if findings:
        raise InputError("degenerate channels that the integer program cannot hold (found before calibration): "
                         + "; ".join(f.line() for f in findings))
