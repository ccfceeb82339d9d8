"""The exact torch forward of a program with mixed requantizers equals the simulator on every
tensor: BORDER ops in the torch datapath, runtime rules on the reference datapath."""

import numpy as np
import pytest
import torch

from aquant_sim.frontend.program_exact import exact_tensors
from aquant_sim.importers.border_requant import to_border_requantizers
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.simulator import Backend, Simulator


@pytest.mark.parametrize("border", [False, True], ids=["imported", "border"])
def test_every_tensor_equals_the_simulator(fashion_model, border):
    """Imported (FP32 convs, FP32_ADD adds, FP32 pooling) and with BORDER convs: every tensor's
    integers equal the numba simulator's, element for element."""
    program = import_onnx(fashion_model[0]).program
    if border:
        program = to_border_requantizers(program, 8).program
    images = fashion_model[1][:8]
    simulated = Simulator(program, Backend.NUMBA).run(images, keep_tensors=True).tensors
    exact = exact_tensors(program, torch.from_numpy(images.copy()))
    assert set(exact) == set(simulated)
    for name, values in simulated.items():
        assert np.array_equal(exact[name].numpy(), values), name
