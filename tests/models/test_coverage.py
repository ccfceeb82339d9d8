"""Coverage: the architectures of tests/models/architectures.py through prepare, RTN W8A8,
convert and the simulator. A supported one must give the integer program's exact values: top-1
agreement 1 and no level off anywhere; an unsupported one must be refused before calibration with
an error naming the operator and the source line. ``docs/models.md`` holds the table this pins."""

import pytest
import torch

from architectures import ARCHITECTURES
from aquant_sim.errors import UnsupportedError
from aquant_sim.evaluation import evaluate
from aquant_sim.quantize import QConfig, calibrate, prepare

REFUSED = {
    "ConvNeXt (convnext_tiny)": "unsupported op LayerNorm (module 'body.norm'): a per-position division",
}
"""Architecture -> the start of the error that refuses it (the operators issue 9 adds)."""


def _model(name):
    """The scaled-down model with batch-norm statistics from data (train-mode passes over random
    images), as a trained network has them: torch's defaults (mean 0, variance 1) shrink
    activations layer after layer until a bias no longer fits the accumulator."""
    torch.manual_seed(1)
    model = ARCHITECTURES[name]()
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(torch.randn(16, 3, 16, 16))
    return model.eval()


@pytest.mark.parametrize("name", [n for n in ARCHITECTURES if n not in REFUSED])
def test_supported_architecture_is_exact(name):
    images = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1))
    prepared = prepare(_model(name), images[:1], QConfig(weight_bits=8, act_bits=8))
    calibrate(prepared, [images], method="rtn", calib_size=16, progress=False)
    result = evaluate(prepared.calibrated, images.numpy(), labels.numpy(), level_samples=4)
    assert result.agreement == 1.0
    assert all(share == 0 for tensor in result.level_diff.values() for share in tensor.values()), result.level_diff


@pytest.mark.parametrize("name", list(REFUSED))
def test_unsupported_architecture_is_refused_naming_the_op(name):
    with pytest.raises(UnsupportedError) as error:
        prepare(_model(name), torch.randn(1, 3, 16, 16), QConfig(weight_bits=8, act_bits=8))
    message = str(error.value)
    assert REFUSED[name] in message and "architectures.py" in message and "line" in message


def test_every_architecture_is_in_one_list():
    assert set(REFUSED) < set(ARCHITECTURES)
