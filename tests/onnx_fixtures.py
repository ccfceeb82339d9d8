"""Fixtures (a pytest plugin of tests/conftest.py) of small int8 ONNX models made in the tests: torch models exported with torch.onnx (the
TorchScript exporter), then quantized by onnxruntime's own quantize_static (int8 activations and
weights, its defaults, or uint8 activations where said) with a tiny calibration reader."""

import numpy as np
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType

from aquant_sim.importers.onnxruntime_run import PROBE_EXACT, pair_sums_saturate
from aquant_sim.models import build_model
from aquant_sim.testing.onnx_models import ImageReader, quantize_onnx

SHAPE = (3, 16, 16)

_SATURATED = pair_sums_saturate()
exact_onnxruntime = pytest.mark.skipif(
    _SATURATED is not None,
    reason=f"onnxruntime on this CPU adds uint8 x int8 products in pairs with int16 saturation (probe: {_SATURATED} "
           f"for {PROBE_EXACT}): its integer kernels are not exact here, no bit-exact comparison holds")
"""For tests that compare with onnxruntime's integer kernels bit for bit."""


class _Plain(torch.nn.Module):
    """Conv, ReLU, max pooling, a strided conv, a depthwise conv, global average pooling and a
    linear layer: every op the importer translates (a MobileNet-style body without residuals)."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.dw = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = torch.nn.Conv2d(16, 24, 1)
        self.fc = torch.nn.Linear(24, 5)

    def forward(self, x):
        y = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        y = torch.relu(self.pw(torch.relu(self.dw(torch.relu(self.c2(y))))))
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1))


class _Unsupported(torch.nn.Module):
    """A conv and an average pooling (a node the importer refuses)."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(self.c1(x), 2)


class _Reader(CalibrationDataReader):
    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.batches = iter([{"x": rng.standard_normal((2, *SHAPE)).astype(np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.batches, None)


def quantized_model(tmp_path, module: torch.nn.Module, per_channel: bool, quant_format=QuantFormat.QDQ, seed: int = 0,
                    activation_type=QuantType.QInt8):
    """Export ``module`` and quantize it with onnxruntime's quantize_static; return the path."""
    torch.manual_seed(seed)
    path = tmp_path / f"int8_{quant_format.name}_{'channel' if per_channel else 'tensor'}.onnx"
    return quantize_onnx(module, _Reader(seed), torch.randn(1, *SHAPE), path, per_channel, quant_format, activation_type)


def zoo_model(name: str, seed: int = 0, **options) -> torch.nn.Module:
    """A zoo model on 3-channel inputs with random batch-norm statistics and affine parameters
    (the default ones fold into all-zero conv biases, which the exporter shares through Identity
    nodes that quantize_static cannot quantize)."""
    torch.manual_seed(seed)
    model = build_model(name, SHAPE[0], 10, **options)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                module.weight.copy_(0.5 + torch.rand(c, generator=generator))
                module.bias.copy_(0.1 * torch.randn(c, generator=generator))
    return model


@pytest.fixture(params=[(QuantFormat.QDQ, False), (QuantFormat.QDQ, True), (QuantFormat.QOperator, False),
                        (QuantFormat.QOperator, True)],
                ids=["qdq-per-tensor", "qdq-per-channel", "qoperator-per-tensor", "qoperator-per-channel"])
def plain_model(request, tmp_path):
    torch.manual_seed(0)
    quant_format, per_channel = request.param
    return quantized_model(tmp_path, _Plain(), per_channel=per_channel, quant_format=quant_format)


@pytest.fixture(params=[(QuantFormat.QDQ, False), (QuantFormat.QDQ, True), (QuantFormat.QOperator, False),
                        (QuantFormat.QOperator, True)],
                ids=["qdq-per-tensor", "qdq-per-channel", "qoperator-per-tensor", "qoperator-per-channel"])
def resnet_model(request, tmp_path):
    """ResNet-20 (width 4) quantized with uint8 activations, the form onnxruntime runs on x86
    entirely in integer kernels (with its int8 default, see ``int8_resnet_model``, it does not)."""
    quant_format, per_channel = request.param
    return quantized_model(tmp_path, zoo_model("resnet20", width=4), per_channel=per_channel, quant_format=quant_format,
                           activation_type=QuantType.QUInt8)


@pytest.fixture(params=[(QuantFormat.QDQ, False), (QuantFormat.QDQ, True), (QuantFormat.QOperator, False),
                        (QuantFormat.QOperator, True)],
                ids=["qdq-per-tensor", "qdq-per-channel", "qoperator-per-tensor", "qoperator-per-channel"])
def resnet18_model(request, tmp_path):
    """The zoo's ResNet-18 (width 8: its 7x7/2 stem, its padded 3x3/2 max pooling, 8 basic blocks)
    on 16 x 16 inputs, quantized with uint8 activations."""
    quant_format, per_channel = request.param
    return quantized_model(tmp_path, zoo_model("resnet18", width=8), per_channel=per_channel, quant_format=quant_format,
                           activation_type=QuantType.QUInt8)


@pytest.fixture(params=[(QuantFormat.QDQ, False), (QuantFormat.QDQ, True), (QuantFormat.QOperator, False),
                        (QuantFormat.QOperator, True)],
                ids=["qdq-per-tensor", "qdq-per-channel", "qoperator-per-tensor", "qoperator-per-channel"])
def mobilenet_model(request, tmp_path):
    """The zoo's MobileNetV2-style model (width 0.25) quantized with uint8 activations."""
    quant_format, per_channel = request.param
    return quantized_model(tmp_path, zoo_model("mobilenetv2", width_mult=0.25), per_channel=per_channel,
                           quant_format=quant_format, activation_type=QuantType.QUInt8)


@pytest.fixture
def int8_resnet_model(tmp_path):
    """ResNet-20 (width 4) in QDQ form with quantize_static's defaults (int8 activations)."""
    return quantized_model(tmp_path, zoo_model("resnet20", width=4), per_channel=False)


@pytest.fixture
def unsupported_model(tmp_path):
    torch.manual_seed(0)
    return quantized_model(tmp_path, _Unsupported(), per_channel=False)


@pytest.fixture
def batch(tmp_path):
    """A float batch of 3 samples, wider than the calibration data (so that some saturate)."""
    x = (1.5 * np.random.default_rng(7).standard_normal((3, *SHAPE))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x


@pytest.fixture(scope="session")
def fashion_model(tmp_path_factory):
    """The zoo's ResNet-20 (width 4) on Fashion-MNIST: trained one epoch on 512 images (a few
    seconds), exported, and quantized by quantize_static (per channel, uint8 activations) with
    128 train images; returns (model path, 64 test images, their labels)."""
    from aquant_sim.data import load_dataset
    from aquant_sim.models.training import train

    tmp_path = tmp_path_factory.mktemp("fashion")
    train_set = load_dataset("fashion-mnist", "train", limit=512, seed=0)
    test_set = load_dataset("fashion-mnist", "test", limit=64, seed=0)
    torch.manual_seed(0)
    model = build_model("resnet20", 1, 10, width=4)
    train(model, train_set, epochs=1, batch_size=64, lr=0.05, seed=0, progress=False)
    model.eval()
    path = quantize_onnx(model, ImageReader(train_set.images[:128]), torch.from_numpy(train_set.images[:1].copy()),
                         tmp_path / "fashion_int8.onnx", per_channel=True, activation_type=QuantType.QUInt8)
    return path, test_set.images, test_set.labels
