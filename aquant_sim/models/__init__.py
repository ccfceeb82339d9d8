"""The model zoo (torch): ResNet-20, ResNet-18 and MobileNetV2-style networks written here.

Every model uses only layers that the calibration front-end can capture with ``torch.fx`` and
lower to the integer program: Conv2d, BatchNorm2d, ReLU, ReLU6, residual add, MaxPool2d,
AvgPool2d, AdaptiveAvgPool2d(1), flatten and Linear.
"""

from aquant_sim.models.registry import ModelName, build_model, model_options
from aquant_sim.models.weights import load_model, load_weights, read_header, save_weights

__all__ = ["ModelName", "build_model", "load_model", "load_weights", "model_options", "read_header", "save_weights"]
