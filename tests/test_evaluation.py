"""The evaluation layer: integer program, fake-quant and float sides of a calibrated model."""

import numpy as np
import pytest
import torch

from aquant_sim.errors import InputError
from aquant_sim.evaluation import evaluate, program_logits
from aquant_sim.frontend.graph import float_forward
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
from aquant_sim.frontend.qmodel import ForwardMode, QuantConfig
from aquant_sim.frontend.reconstruction import ReconstructionConfig
from aquant_sim.models import build_model
from aquant_sim.simulator import Backend, Simulator

N = 24


@pytest.fixture(scope="module")
def calibrated():
    """A narrow ResNet-20 with random weights, rounded to nearest at W3A3 (no reconstruction)."""
    torch.manual_seed(0)
    model = build_model("resnet20", 1, 10, width=4).eval()
    calib = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    config = CalibrationConfig(Method.RTN, QuantConfig(weight_bits=3, act_bits=3), ReconstructionConfig(iters=0))
    return calibrate(model, calib, config, progress=False)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).standard_normal((N, 1, 8, 8)).astype(np.float32)


def test_program_logits_do_not_depend_on_the_batch(calibrated, images):
    """Batching the set (5 images a call) gives exactly the outputs of one simulator call on all."""
    whole = Simulator(calibrated.program, Backend.REFERENCE).run(images).dequantized.reshape(N, -1)
    assert np.array_equal(program_logits(calibrated.program, images, Backend.REFERENCE, batch=5), whole)


def test_evaluate_measures_each_side(calibrated, images):
    """With the float model's own predictions as labels, the float accuracy is 1; the integer and
    fake-quant accuracies and their agreement are those of the program's and the exact fake-quant
    model's predictions, computed here separately: agreement 1 and no level differences."""
    x = torch.from_numpy(images)
    with torch.no_grad(), calibrated.qmodel.forward_mode_as(ForwardMode.EXACT):
        labels = float_forward(calibrated.graph, x).argmax(1).numpy()
        fake_pred = calibrated.qmodel.double()(x.double()).argmax(1).numpy()
    calibrated.qmodel.float()
    int_pred = program_logits(calibrated.program, images, Backend.REFERENCE).argmax(1)
    report = evaluate(calibrated, images, labels, Backend.REFERENCE, level_samples=4)
    assert report.samples == N and report.float_accuracy == 1.0
    assert report.integer_accuracy == np.mean(int_pred == labels)
    assert report.fake_quant_accuracy == np.mean(fake_pred == labels)
    assert report.agreement == np.mean(fake_pred == int_pred)
    assert set(report.level_diff) <= {t.name for t in calibrated.program.tensors}
    assert report.agreement == 1.0 and report.level_diff
    assert all(v == 0 for shares in report.level_diff.values() for v in shares.values())


@pytest.mark.parametrize("labels, message", [
    (np.zeros(N - 1, dtype=np.int64), f"expected {N} integer labels"),
    (np.zeros(N, dtype=np.float32), f"expected {N} integer labels"),
])
def test_evaluate_rejects_labels_that_do_not_match(calibrated, images, labels, message):
    """Not exactly one integer label per image is an InputError, raised before any work."""
    with pytest.raises(InputError, match=message):
        evaluate(calibrated, images, labels, Backend.REFERENCE)


def test_bad_images_are_one_clear_line(calibrated, images):
    """Images of another shape fail in the simulator's input check, before the first batch;
    integer images cannot feed the torch side of evaluate."""
    with pytest.raises(InputError, match=r"input: expected shape \(N, 1, 8, 8\)"):
        program_logits(calibrated.program, images[:, :, :7], Backend.REFERENCE)
    with pytest.raises(InputError, match="expected float images"):
        evaluate(calibrated, np.zeros((N, 1, 8, 8), dtype=np.int32), np.zeros(N, dtype=np.int64), Backend.REFERENCE)
