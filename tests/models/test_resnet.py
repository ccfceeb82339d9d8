"""Forward shapes and structure of the ResNets."""

import pytest
import torch

from aquant_sim.models import build_model


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 20)])
def test_resnet20_forward_shape(channels, size):
    """ResNet-20 maps any channel count and image size to (batch, classes) logits."""
    model = build_model("resnet20", in_channels=channels, num_classes=7, width=8).eval()
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 7)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 64)])
def test_resnet18_forward_shape(channels, size):
    """ResNet-18 (7x7 stem and max pool) maps small and larger images to (batch, classes) logits."""
    model = build_model("resnet18", in_channels=channels, num_classes=5, width=8).eval()
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 5)


def test_resnet18_matches_the_reference_parameter_count():
    """At width 64 with 3 channels and 1000 classes, ResNet-18 has the original's 11,689,512 parameters."""
    model = build_model("resnet18", in_channels=3, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == 11_689_512


def test_resnet20_has_nineteen_convs_in_blocks_and_one_linear():
    """ResNet-20 is 1 stem conv + 9 blocks of 2 convs + 1 linear (20 weight layers) + 2 shortcut convs."""
    model = build_model("resnet20")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    shortcut_convs = [m for m in convs if m.kernel_size == (1, 1)]
    assert (len(convs) - len(shortcut_convs), len(shortcut_convs), len(linears)) == (19, 2, 1)
    assert [c.out_channels for c in convs if c.kernel_size == (3, 3)][-1] == 64
