"""Small random programs in which every real multiplier is exactly dyadic.

Every scale is a power of two (weight scales an odd number below 8 times a power of two), every
pooling divisor a power of two, and residual-add scales within 2^14 of each other, so that the
builder's ``(m, n)`` represent every ``M`` exactly and the add's integer weights are exact. On
these programs the claim of docs/contract.md "(8) equals (4)" holds for the whole network: the float model
(:mod:`aquant_sim.float_model`) and the datapath agree on every element. The programs use every
op kind: conv2d (with padding, asymmetric in one, stride and groups), ReLU and ReLU6 clamps,
residual add, concat (of inputs whose scales are powers of two apart), max and average pooling,
global average pooling, flatten and linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from aquant_sim import rounding
from aquant_sim.builder import ProgramBuilder
from aquant_sim.program import BorderGranularity, BorderTable, Program, QuantParams


@dataclass(frozen=True)
class DyadicConfig:
    """Number formats and sizes of a dyadic program; ``seed`` draws weights, biases, borders."""

    act_bits: int = 4
    weight_bits: int = 4
    signed: bool = False
    granularity: BorderGranularity = BorderGranularity.CHANNEL_LEVEL
    frac_bits: int = 8
    channels: int = 4
    groups: int = 2
    size: int = 8
    accumulator_output: bool = False
    """Leave the last linear layer's int32 accumulators instead of requantizing them."""
    seed: int = 0

    def __post_init__(self):
        if self.channels % self.groups or self.size % 4 or self.size & (self.size - 1):
            raise ValueError("channels must be a multiple of groups and size a power of two >= 4")


def _power_of_two(x: float) -> float:
    return 2.0 ** round(math.log2(x))


class _Dyadic:
    def __init__(self, config: DyadicConfig):
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        quant = QuantParams(8, False, 2.0**-5, int(self.rng.integers(96, 160)))
        self.builder = ProgramBuilder("input", (3, config.size, config.size), quant, self.borders(3, 8))

    def borders(self, channels: int, bits: int) -> BorderTable:
        cfg = self.config
        groups, levels = cfg.granularity.table_shape(channels, bits)
        one = 1 << cfg.frac_bits
        return BorderTable(cfg.frac_bits, self.rng.integers(1, one + 1, size=(groups, levels)))

    def out_quant(self, real_spread: float) -> QuantParams:
        """A power-of-two scale that spreads ``real_spread`` over the grid, zero-point near its middle."""
        cfg = self.config
        qmin, qmax = rounding.integer_range(cfg.act_bits, cfg.signed)
        zero = int(self.rng.integers(qmin, qmin + (qmax - qmin) // 2 + 1))
        return QuantParams(cfg.act_bits, cfg.signed, _power_of_two(2 * real_spread / (qmax - qmin)), zero)

    def conv(self, name, x, out_channels, kernel, stride, padding, groups, padding_end=None) -> str:
        cfg, b = self.config, self.builder
        t = b.tensor(x)
        w_lo, w_hi = rounding.integer_range(cfg.weight_bits, signed=True)
        weight = self.rng.integers(w_lo, w_hi + 1, size=(out_channels, t.channels // groups, kernel, kernel))
        weight_scale = self.rng.choice([1, 3, 5, 7], size=out_channels) * 2.0 ** -int(self.rng.integers(4, 9))
        fan_in = t.channels // groups * kernel * kernel
        acc_spread = math.sqrt(fan_in) * max(1, w_hi) * (t.quant.qmax - t.quant.qmin) / 4
        bias = self.rng.integers(-int(acc_spread) // 2, int(acc_spread) // 2 + 1, size=out_channels)
        real_spread = acc_spread * t.quant.scale * float(np.mean(weight_scale))
        return b.conv2d(name, x, weight, cfg.weight_bits, weight_scale, bias, self.out_quant(real_spread),
                        self.borders(out_channels, cfg.act_bits), stride=stride, padding=padding, groups=groups,
                        padding_end=padding_end)

    def build(self) -> Program:
        cfg, b = self.config, self.builder
        c = cfg.channels
        x = b.relu("conv1.relu", self.conv("conv1", b.input, c, 3, 1, 1, 1))
        y = self.conv("conv2", x, c, 3, 1, (0, 1), cfg.groups, padding_end=(2, 1))  # the same size, padded below
        s = max(b.tensor(x).quant.scale, b.tensor(y).quant.scale)
        levels = b.tensor(y).quant.qmax - b.tensor(y).quant.qmin
        x = b.add("add", y, x, QuantParams(cfg.act_bits, cfg.signed, s * 2, b.tensor(y).quant.zero_point),
                  self.borders(c, cfg.act_bits))
        x = b.relu6("add.relu6", x)
        joined = b.tensor(x).quant
        x = b.concat("concat", [x, "conv1.relu"], joined, self.borders(2 * c, cfg.act_bits))
        c *= 2
        x = b.maxpool("maxpool", x, 3, 2, 1)
        pooled = b.tensor(x).quant
        x = b.avgpool("avgpool", x, 2, 2, QuantParams(cfg.act_bits, cfg.signed, pooled.scale / 2, pooled.zero_point),
                      self.borders(c, cfg.act_bits))
        x = b.global_avgpool("gap", x, b.tensor(x).quant, self.borders(c, cfg.act_bits))
        x = b.flatten("flatten", x)
        w_lo, w_hi = rounding.integer_range(cfg.weight_bits, signed=True)
        classes = 5
        weight = self.rng.integers(w_lo, w_hi + 1, size=(classes, c))
        weight_scale = np.full(classes, 2.0 ** -int(self.rng.integers(0, 4)))
        spread = math.sqrt(c) * w_hi * levels / 4 * b.tensor(x).quant.scale * weight_scale[0]
        out_quant, borders = (None, None) if cfg.accumulator_output else (self.out_quant(spread), self.borders(classes, cfg.act_bits))
        x = b.linear("fc", x, weight, cfg.weight_bits, weight_scale, np.zeros(classes, dtype=np.int64), out_quant, borders)
        return b.build(x)


def dyadic_program(config: DyadicConfig = DyadicConfig()) -> Program:
    """A random program whose every multiplier is exactly dyadic; same config, same program."""
    return _Dyadic(config).build()


@st.composite
def dyadic_configs(draw) -> DyadicConfig:
    """Configs of every activation width 2..8, weight width 2..8, signedness, granularity and F."""
    groups = draw(st.sampled_from([1, 2]))
    return DyadicConfig(
        act_bits=draw(st.integers(2, 8)), weight_bits=draw(st.integers(2, 8)), signed=draw(st.booleans()),
        granularity=draw(st.sampled_from(list(BorderGranularity))), frac_bits=draw(st.integers(1, 16)),
        channels=groups * draw(st.integers(1, 3)), groups=groups, size=draw(st.sampled_from([4, 8])),
        accumulator_output=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
    )
