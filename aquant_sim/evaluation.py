"""The evaluation layer: how well a quantized network classifies, measured on the integer program.

Data flows one way: the front-end calibrates a torch model and lowers it to a
:class:`~aquant_sim.program.Program`; the simulator runs the program; this module sits above both
and compares. :func:`program_logits` needs only the program (any source: the front-end, an
artifact); :func:`evaluate` also takes the calibrated torch model that produced the program, to
measure its float and fake-quant sides beside the integer one.

This module imports numpy and the simulator only, so the integer engine stays torch-free; the
torch side of :func:`evaluate` is imported when it is called, from the caller's front-end.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from aquant_sim.errors import InputError
from aquant_sim.program import Program
from aquant_sim.simulator import Backend, Simulator, dequantize

if TYPE_CHECKING:
    from aquant_sim.frontend.lowering import Lowered
    from aquant_sim.frontend.pipeline import Calibrated
    from aquant_sim.frontend.qmodel import QuantModel

BATCH = 250
"""Images per simulator call: bounds the memory of the largest intermediate tensor."""


def program_logits(program: Program, images, backend: Backend = Backend.NUMBA, batch: int = BATCH,
                   progress: bool = False) -> np.ndarray:
    """The program's dequantized outputs ``(N, outputs)`` for images ``(N, C, H, W)``.

    ``images`` is any array-like (a numpy array, a CPU tensor) of floats, quantized by the program's
    input border table, or of integer input levels. The whole set is checked and quantized before
    the first batch runs, so bad input fails at once (:meth:`Simulator.quantize_input`); batching
    does not change a single level (the integer program is exact per image).
    """
    sim = Simulator(program, backend)
    levels = sim.quantize_input(np.asarray(images))
    out = []
    for start in tqdm(range(0, len(levels), batch), desc="simulator", disable=not progress, leave=False):
        chunk = levels[start : start + batch]
        out.append(sim.run(chunk).dequantized.reshape(len(chunk), -1))
    return np.concatenate(out)


@dataclass(frozen=True)
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


def evaluate(calibrated: Calibrated, images, labels, backend: Backend = Backend.NUMBA,
             level_samples: int = 256, batch: int = BATCH, progress: bool = False) -> Evaluation:
    """Float, fake-quant and integer-program accuracy of a calibrated model on a labelled set
    (images ``(N, C, H, W)`` and ``N`` integer labels, numpy arrays or CPU tensors), their top-1
    agreement, and the per-tensor level differences on the first ``level_samples`` images.

    The integer side runs ``calibrated.program`` in the simulator; the float side runs the captured
    float graph; the fake-quant side runs the calibrated model's exact forward
    (``ForwardMode.EXACT`` in float64, ``docs/calibration.md`` C.9), whose values are the
    program's: its accuracy is the integer one, agreement is 1 and every level difference 0 unless
    the front-end and the simulator disagree (which these figures would show). Labels are checked
    before any work.
    """
    import torch

    from aquant_sim.frontend.graph import float_forward
    from aquant_sim.frontend.qmodel import ForwardMode

    images, y = np.asarray(images), np.asarray(labels)
    if images.dtype.kind != "f":
        raise InputError(f"evaluation data: expected float images (the torch models read floats), got dtype {images.dtype}")
    if y.shape != (len(images),) or y.dtype.kind not in "iu":
        raise InputError(f"evaluation data: expected {len(images)} integer labels (one per image), got {y.dtype} shape {y.shape}")
    program = calibrated.program
    int_pred = program_logits(program, images, backend, batch, progress).argmax(1)
    fake = copy.deepcopy(calibrated.qmodel).double().eval()
    fake.forward_mode = ForwardMode.EXACT
    float_pred, fake_pred = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.tensor(images[start : start + batch], dtype=torch.float32)
            float_pred.append(float_forward(calibrated.graph, x).argmax(1))
            fake_pred.append(fake(x.double()).argmax(1))
        float_pred, fake_pred = torch.cat(float_pred).numpy(), torch.cat(fake_pred).numpy()
        sample = images[:level_samples]
        tensors = Simulator(program, backend).run(sample, keep_tensors=True).tensors
        level_diff = level_differences(fake, calibrated.lowered, torch.tensor(sample, dtype=torch.float32), tensors)
    return Evaluation(
        samples=len(images),
        float_accuracy=float(np.mean(float_pred == y)),
        fake_quant_accuracy=float(np.mean(fake_pred == y)),
        integer_accuracy=float(np.mean(int_pred == y)),
        agreement=float(np.mean(fake_pred == int_pred)),
        level_diff=level_diff,
    )


def level_differences(fake: QuantModel, lowered: Lowered, sample, tensors: dict) -> dict:
    """Per program tensor, the share of levels where the fake-quant model (in its forward mode) and
    the program differ by exactly one and by more: ``op_*`` with each fake-quant op fed the program's own input levels
    (the op's own difference), ``end_to_end_*`` with the fake-quant network run on its own
    (differences propagate from earlier ops). ``sample`` is a float tensor of images, ``tensors``
    the simulator's tensors for it (``keep_tensors=True``)."""
    import torch

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
