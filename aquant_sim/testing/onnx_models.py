"""Int8 ONNX models as a deployment has them: a torch model exported with ``torch.onnx`` (the
TorchScript exporter, opset 17, a dynamic batch axis) and quantized by onnxruntime's own
``quantize_static``. The test fixtures (``tests/onnx_fixtures.py``) and ``tools/deployed_model.py``
make theirs here. Needs ``onnx`` and ``onnxruntime``, and torch to export (imported there, so that
the module itself imports without torch, as the engine promises)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

if TYPE_CHECKING:
    import torch

CALIBRATION_BATCH = 32
"""Images per batch of the calibration reader."""


class ImageReader(CalibrationDataReader):
    """``quantize_static``'s calibration data: ``images`` (N, C, H, W float32) in batches of
    :data:`CALIBRATION_BATCH`, fed to the input ``x``."""

    def __init__(self, images: np.ndarray):
        self.batches = iter([{"x": images[i:i + CALIBRATION_BATCH]} for i in range(0, len(images), CALIBRATION_BATCH)])

    def get_next(self):
        return next(self.batches, None)


def export_float_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    """``module`` (put in eval mode) as a float ONNX model with input ``x`` and output ``y``."""
    import torch

    torch.onnx.export(module.eval(), example, str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False,
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return path


def float_model_path(path: Path) -> Path:
    """Where :func:`quantize_onnx` writes the float model of the int8 model at ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.float.onnx")


def quantize_onnx(module: torch.nn.Module, reader: CalibrationDataReader, example: torch.Tensor, path: Path,
                  per_channel: bool, quant_format: QuantFormat = QuantFormat.QDQ,
                  activation_type: QuantType = QuantType.QInt8) -> Path:
    """Export ``module`` beside ``path`` (:func:`float_model_path`) and write its int8 model to
    ``path`` with ``quantize_static`` (weights per output channel or per tensor, int8 weights,
    activations of ``activation_type``, calibrated on ``reader``); returns ``path``."""
    path = Path(path)
    float_path = export_float_onnx(module, example, float_model_path(path))
    quantize_static(str(float_path), str(path), reader, quant_format=quant_format, per_channel=per_channel,
                    activation_type=activation_type)
    return path
