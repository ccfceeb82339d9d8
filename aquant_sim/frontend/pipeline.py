"""Calibrate a torch CNN end to end: capture, quantize, reconstruct, lower.

``calibrate(model, calib_images, CalibrationConfig(...))`` returns the fake-quant model, the
integer program and a per-unit report. The front-end produces programs and does not run them:
measuring a calibrated model against its program is :mod:`aquant_sim.evaluation`'s job.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from aquant_sim.errors import InputError
from aquant_sim.frontend.channels import ChannelFinding, check_requantizers, raise_findings, zero_dead_channels, zero_variance_channels
from aquant_sim.frontend.graph import Graph, capture
from aquant_sim.frontend.lowering import Lowered, lower
from aquant_sim.frontend.qmodel import QuantConfig, QuantModel
from aquant_sim.frontend.quantizers import WeightQuantizer
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.reconstruction import ReconstructionConfig, Reconstructor, UnitReport
from aquant_sim.program import Program


class DegenerateChannels(UserWarning):
    """Dead or zero-variance channels were found, and handled, before calibration."""


@dataclass(frozen=True)
class CalibrationConfig:
    method: Method = Method.AQUANT
    quant: QuantConfig = field(default_factory=QuantConfig)
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)


@dataclass
class Calibrated:
    graph: Graph
    qmodel: QuantModel
    lowered: Lowered
    units: list[UnitReport]
    seconds: float
    channels: list[ChannelFinding] = field(default_factory=list)
    """Degenerate channels found and handled before calibration (frontend/channels.py)."""

    @property
    def program(self) -> Program:
        return self.lowered.program


def check_images(images: torch.Tensor, where: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.dtype.is_floating_point:
        raise InputError(f"{where}: expected a float tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    if len(images) == 0:
        raise InputError(f"{where}: no images")
    bad = ~torch.isfinite(images)
    if bad.any():
        raise InputError(f"{where}: {int(bad.sum())} values are NaN or Inf")
    return images.float()


def prepare_graph(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[Graph, list[ChannelFinding]]:
    """Capture ``model`` for inputs ``(C, H, W)`` and handle its degenerate channels
    (frontend/channels.py): the graph and a :class:`DegenerateChannels` warning per finding."""
    graph = capture(model, tuple(input_shape))
    channels = zero_variance_channels(model, graph) + zero_dead_channels(graph)
    for finding in channels:
        warnings.warn(DegenerateChannels(finding.line()), stacklevel=3)
    return graph, channels


def calibrate_graph(graph: Graph, calib: torch.Tensor, config: CalibrationConfig, progress: bool = True,
                    weight_bits: dict[str, int] | None = None, channels: list[ChannelFinding] | None = None) -> Calibrated:
    """Quantize a prepared graph on ``calib`` (N, C, H, W) and lower it. ``weight_bits`` gives
    graph nodes (conv/linear) weight widths other than ``config.quant``'s."""
    started = time.perf_counter()
    calib = check_images(calib, "calibration data")
    qm = QuantModel(graph, config.quant, calib)
    for name, bits in (weight_bits or {}).items():
        node = graph[name]
        qm.weights[name] = WeightQuantizer(node.weight, node.bias, bits)
    raise_findings(check_requantizers(qm))  # before the long part, not at lowering
    units = Reconstructor(qm, config.method, config.reconstruction, calib, progress).run()
    lowered = lower(qm)
    return Calibrated(graph, qm, lowered, units, time.perf_counter() - started, channels or [])


def calibrate(model: nn.Module, calib: torch.Tensor, config: CalibrationConfig, progress: bool = True) -> Calibrated:
    """Quantize ``model`` with ``config.method`` on calibration images ``calib`` (N, C, H, W)."""
    calib = check_images(calib, "calibration data")
    graph, channels = prepare_graph(model, tuple(calib.shape[1:]))
    return calibrate_graph(graph, calib, config, progress, channels=channels)
