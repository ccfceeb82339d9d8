"""The calibrate/evaluate pipeline's input checks."""

import pytest
import torch

from aquant_sim.errors import InputError
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate, evaluate
from aquant_sim.frontend.qmodel import QuantConfig
from aquant_sim.frontend.reconstruction import ReconstructionConfig
from aquant_sim.simulator import Backend


def test_evaluate_rejects_labels_that_do_not_match_the_images(tiny_resnet, images):
    """evaluate raises InputError, before any work, when there is not exactly one label per image."""
    config = CalibrationConfig(Method.RTN, QuantConfig(weight_bits=3, act_bits=3), ReconstructionConfig(iters=0))
    result = calibrate(tiny_resnet, images, config, progress=False)
    with pytest.raises(InputError, match="expected 64 labels"):
        evaluate(result, images, torch.zeros(63, dtype=torch.long), Backend.REFERENCE)
