"""Random ResNet-shaped integer programs: the built-in example, the benchmark's network and the
tests' random programs.

Weights are uniform random b-bit integers, borders random in ``[1/4, 3/4]`` at the configured
granularity, and every output scale is chosen from the analytic spread of its accumulator (the
square root of the fan-in times the weight and input spreads) so that activations use the whole
grid instead of saturating or vanishing. The weights are not trained: these programs exercise
the datapath and the hardware models, not accuracy.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from aquant_sim import rounding
from aquant_sim.builder import ProgramBuilder
from aquant_sim.errors import ConfigError
from aquant_sim.program import BorderGranularity, BorderTable, Program, QuantParams


class Stem(enum.Enum):
    CIFAR = "cifar"
    """One 3x3 convolution, stride 1 (ResNet-20 style)."""
    IMAGENET = "imagenet"
    """A 7x7 convolution of stride 2 and a 3x3 max pool of stride 2 (ResNet-18 style)."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape and number formats of a random ResNet-shaped program (basic blocks)."""

    input_shape: tuple[int, int, int] = (3, 32, 32)
    stem: Stem = Stem.CIFAR
    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 1, 1)
    num_classes: int = 10
    weight_bits: int = 4
    act_bits: int = 4
    granularity: BorderGranularity = BorderGranularity.CHANNEL_LEVEL
    frac_bits: int = 8
    accumulator_bits: int = 32
    overflow: rounding.OverflowPolicy = rounding.OverflowPolicy.WRAP
    seed: int = 0

    def __post_init__(self):
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ConfigError(f"SyntheticConfig.widths, blocks: must be non-empty and of equal length, got {self.widths} and {self.blocks}")


def resnet18_config(weight_bits: int, act_bits: int, input_size: int = 224, **overrides) -> SyntheticConfig:
    """ImageNet ResNet-18's shape: four stages of two basic blocks, 1000 classes."""
    return SyntheticConfig(
        input_shape=(3, input_size, input_size), stem=Stem.IMAGENET, widths=(64, 128, 256, 512),
        blocks=(2, 2, 2, 2), num_classes=1000, weight_bits=weight_bits, act_bits=act_bits, **overrides,
    )


INPUT_QUANT = QuantParams(bits=8, signed=False, scale=1 / 32, zero_point=128)
"""The input: 8 bits around 128, covering [-4, 4) for standard-normal inputs."""


class _RandomResNet:
    def __init__(self, config: SyntheticConfig):
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.builder = ProgramBuilder("input", config.input_shape, INPUT_QUANT, self.borders(config.input_shape[0], 8))

    def borders(self, channels: int, bits: int) -> BorderTable:
        groups, levels = self.config.granularity.table_shape(channels, bits)
        beta = self.rng.uniform(0.25, 0.75, size=(groups, levels))
        return BorderTable(self.config.frac_bits, rounding.encode_borders(beta, self.config.frac_bits))

    def _rms_level(self, name: str) -> float:
        """Root-mean-square of ``q - z`` assumed for a tensor: half its grid."""
        q = self.builder.tensor(name).quant
        return max(1.0, (q.qmax - q.qmin) / 2)

    def act_quant(self, real_spread: float) -> QuantParams:
        bits = self.config.act_bits
        qmax = (1 << bits) - 1
        return QuantParams(bits, signed=False, scale=real_spread / qmax, zero_point=0)

    def conv(self, name, x, out_channels, kernel, stride, padding, relu=True) -> str:
        cfg, b = self.config, self.builder
        in_channels = b.tensor(x).channels
        w_lo, w_hi = rounding.integer_range(cfg.weight_bits, signed=True)
        weight = self.rng.integers(w_lo, w_hi + 1, size=(out_channels, in_channels, kernel, kernel))
        fan_in = in_channels * kernel * kernel
        acc_spread = math.sqrt(fan_in) * (w_hi / math.sqrt(3)) * self._rms_level(x)
        # Real weight scales that keep the real spread of every layer's output near 1.
        weight_scale = self.rng.uniform(0.5, 1.5, size=out_channels) / (b.tensor(x).quant.scale * acc_spread)
        # A positive bias of up to half a spread keeps ReLU outputs from being mostly zero.
        bias = self.rng.integers(0, int(acc_spread) // 2 + 1, size=out_channels)
        real_spread = 1.0
        out = b.conv2d(name, x, weight, cfg.weight_bits, weight_scale, bias, self.act_quant(real_spread),
                       self.borders(out_channels, cfg.act_bits), stride=stride, padding=padding)
        return b.relu(f"{name}.relu", out) if relu else out

    def basic_block(self, name, x, width, stride) -> str:
        b = self.builder
        y = self.conv(f"{name}.conv1", x, width, 3, stride, 1)
        y = self.conv(f"{name}.conv2", y, width, 3, 1, 1, relu=False)
        shortcut = x
        if stride != 1 or b.tensor(x).channels != width:
            shortcut = self.conv(f"{name}.downsample", x, width, 1, stride, 0, relu=False)
        spread = 1.5 * max(b.tensor(y).quant.scale, b.tensor(shortcut).quant.scale) * ((1 << self.config.act_bits) - 1) / 2
        out = b.add(f"{name}.add", y, shortcut, self.act_quant(spread), self.borders(width, self.config.act_bits))
        return b.relu(f"{name}.relu", out)

    def build(self) -> Program:
        cfg, b = self.config, self.builder
        if cfg.stem is Stem.IMAGENET:
            x = self.conv("stem", b.input, cfg.widths[0], 7, 2, 3)
            x = b.maxpool("stem.maxpool", x, 3, 2, 1)
        else:
            x = self.conv("stem", b.input, cfg.widths[0], 3, 1, 1)
        for stage, (width, count) in enumerate(zip(cfg.widths, cfg.blocks)):
            for block in range(count):
                stride = 2 if stage > 0 and block == 0 else 1
                x = self.basic_block(f"layer{stage + 1}.{block}", x, width, stride)
        pooled_quant = b.tensor(x).quant
        x = b.global_avgpool("avgpool", x, pooled_quant, self.borders(cfg.widths[-1], cfg.act_bits))
        x = b.flatten("flatten", x)
        w_lo, w_hi = rounding.integer_range(cfg.weight_bits, signed=True)
        weight = self.rng.integers(w_lo, w_hi + 1, size=(cfg.num_classes, cfg.widths[-1]))
        weight_scale = np.full(cfg.num_classes, 1.0 / (w_hi * cfg.widths[-1]))
        x = b.linear("fc", x, weight, cfg.weight_bits, weight_scale, np.zeros(cfg.num_classes, dtype=np.int64), None, None)
        return b.build(x, cfg.accumulator_bits, cfg.overflow)


def synthetic_resnet(config: SyntheticConfig = SyntheticConfig()) -> Program:
    """A random ResNet-shaped program; the same config and seed give the same program."""
    return _RandomResNet(config).build()
