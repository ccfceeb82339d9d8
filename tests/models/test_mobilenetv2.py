"""Forward shapes and structure of the MobileNetV2-style network."""

import pytest
import torch

from aquant_sim.models import build_model
from aquant_sim.models.mobilenetv2 import InvertedResidual, make_divisible


@pytest.mark.parametrize(("channels", "size", "width_mult"), [(1, 28, 0.25), (3, 32, 0.5), (3, 16, 0.35)])
def test_forward_shape(channels, size, width_mult):
    """MobileNetV2 maps any channel count, small image size and width to (batch, classes) logits."""
    model = build_model("mobilenetv2", in_channels=channels, num_classes=10, width_mult=width_mult).eval()
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 10)


def test_reference_parameter_count():
    """At width 1.0 with 3 channels and 1000 classes it has the original MobileNetV2's 3,504,872 parameters
    (only strides differ, which change no parameter)."""
    model = build_model("mobilenetv2", in_channels=3, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == 3_504_872


def test_blocks_use_depthwise_convs_and_relu6():
    """Every inverted residual has one depthwise 3x3 conv (groups == channels), only ReLU6 is used,
    and at width 1.0 the 10 blocks of stride 1 with equal widths are residual, as in the paper."""
    model = build_model("mobilenetv2")
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    for block in blocks:
        depthwise = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
        assert len(depthwise) == 1 and depthwise[0].groups == depthwise[0].in_channels == depthwise[0].out_channels
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert sum(block.residual for block in blocks) == 10


@pytest.mark.parametrize(("value", "expected"), [(32 * 0.25, 8), (16 * 0.35, 8), (24 * 0.5, 16), (1280, 1280), (96 * 0.75, 72), (20, 24)])
def test_make_divisible(value, expected):
    """Widths round to the nearest multiple of 8, at least 8, and never more than 10% down."""
    assert make_divisible(value) == expected
