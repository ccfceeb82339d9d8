"""Calibrate a torch CNN end to end: capture, quantize, reconstruct, lower.

``calibrate(model, calib_images, CalibrationConfig(...))`` returns the fake-quant model, the
integer program and a per-unit report. ``evaluate`` measures what the front-end reports for a
quantized model: the accuracy of the integer program run by the simulator, the fake-quant
model's accuracy, their top-1 agreement, and per tensor the share of levels that differ between
the two (by one level, and by more).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from aquant_sim.errors import InputError
from aquant_sim.frontend.graph import Graph, capture, float_forward
from aquant_sim.frontend.lowering import Lowered, lower
from aquant_sim.frontend.qmodel import QuantConfig, QuantModel
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.reconstruction import ReconstructionConfig, Reconstructor, UnitReport
from aquant_sim.program import Program
from aquant_sim.simulator import Backend, Simulator, dequantize


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


def calibrate(model: nn.Module, calib: torch.Tensor, config: CalibrationConfig, progress: bool = True) -> Calibrated:
    """Quantize ``model`` with ``config.method`` on calibration images ``calib`` (N, C, H, W)."""
    started = time.perf_counter()
    calib = check_images(calib, "calibration data")
    graph = capture(model, tuple(calib.shape[1:]))
    qm = QuantModel(graph, config.quant, calib)
    units = Reconstructor(qm, config.method, config.reconstruction, calib, progress).run()
    lowered = lower(qm)
    return Calibrated(graph, qm, lowered, units, time.perf_counter() - started)


def program_logits(program: Program, images: torch.Tensor, backend: Backend = Backend.NUMBA, batch: int = 250,
                   progress: bool = False) -> np.ndarray:
    """The program's real-valued outputs for a set of images, run by the simulator."""
    sim = Simulator(program, backend)
    out = []
    for start in tqdm(range(0, len(images), batch), desc="simulator", disable=not progress, leave=False):
        out.append(sim.run(images[start : start + batch].numpy()).dequantized.reshape(min(batch, len(images) - start), -1))
    return np.concatenate(out)


@dataclass
class Evaluation:
    samples: int
    float_accuracy: float
    fake_quant_accuracy: float
    integer_accuracy: float
    agreement: float
    """Share of samples where the fake-quant and integer top-1 classes agree."""
    level_diff: dict[str, dict[str, float]]
    """Per program tensor: shares of levels off by one and by more, per op and end to end
    (:func:`level_differences`)."""

    def as_dict(self) -> dict:
        return {
            "samples": self.samples, "float_accuracy": self.float_accuracy,
            "fake_quant_accuracy": self.fake_quant_accuracy, "integer_accuracy": self.integer_accuracy,
            "top1_agreement": self.agreement, "level_diff": self.level_diff,
        }


@torch.no_grad()
def evaluate(calibrated: Calibrated, images: torch.Tensor, labels: torch.Tensor, backend: Backend = Backend.NUMBA,
             level_samples: int = 256, batch: int = 250, progress: bool = False) -> Evaluation:
    """Float, fake-quant (float64) and integer-program accuracy on a labelled set, and the
    per-tensor level differences on its first ``level_samples`` images."""
    images = check_images(images, "evaluation data")
    labels = torch.as_tensor(labels).long()
    if labels.shape != (len(images),):
        raise InputError(f"evaluation data: expected {len(images)} labels (one per image), got shape {tuple(labels.shape)}")
    graph, program = calibrated.graph, calibrated.program
    fake = copy.deepcopy(calibrated.qmodel).double().eval()
    float_pred, fake_pred = [], []
    for start in range(0, len(images), batch):
        x = images[start : start + batch]
        float_pred.append(float_forward(graph, x).argmax(1))
        fake_pred.append(fake(x.double()).argmax(1))
    float_pred, fake_pred = torch.cat(float_pred).numpy(), torch.cat(fake_pred).numpy()
    int_pred = program_logits(program, images, backend, batch, progress).argmax(1)
    y = labels.numpy()
    sample = images[:level_samples]
    sim = Simulator(program, backend).run(sample.numpy(), keep_tensors=True)
    return Evaluation(
        samples=len(images),
        float_accuracy=float(np.mean(float_pred == y)),
        fake_quant_accuracy=float(np.mean(fake_pred == y)),
        integer_accuracy=float(np.mean(int_pred == y)),
        agreement=float(np.mean(fake_pred == int_pred)),
        level_diff=level_differences(fake, calibrated.lowered, sample, sim.tensors),
    )


def level_differences(fake: QuantModel, lowered: Lowered, sample: torch.Tensor, tensors: dict) -> dict:
    """Per program tensor, the share of levels where the fake-quant model and the program differ
    by exactly one and by more: ``op_*`` with each fake-quant op fed the program's own input levels
    (the op's own difference), ``end_to_end_*`` with the fake-quant network run on its own
    (differences propagate from earlier ops)."""
    program, graph = lowered.program, fake.graph
    own = fake.levels(sample.to(next(iter(fake.acts.values())).scale.dtype))
    result = {}
    for node in graph.nodes[1:]:
        name = lowered.tensors[node.name]
        if not program.tensor(name).is_quantized:
            continue
        inputs = [torch.from_numpy(dequantize(tensors[lowered.tensors[i]], program.tensor(lowered.tensors[i]))) for i in node.inputs]
        expected = tensors[name].astype(np.int64)
        op_diff = np.abs(fake.op_levels(node, inputs).numpy().astype(np.int64) - expected)
        e2e_diff = np.abs(own[node.name].numpy().astype(np.int64) - expected)
        result[name] = {
            "op_off_by_one": float(np.mean(op_diff == 1)), "op_off_by_more": float(np.mean(op_diff > 1)),
            "end_to_end_off_by_one": float(np.mean(e2e_diff == 1)), "end_to_end_off_by_more": float(np.mean(e2e_diff > 1)),
        }
    return result
