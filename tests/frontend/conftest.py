"""Fixtures of the front-end tests: tiny models and random images."""

import pytest
import torch

from tiny_models import TinyMobile, TinyResNet, randomize_batchnorm

torch.set_num_threads(2)


@pytest.fixture
def tiny_resnet():
    torch.manual_seed(0)
    return randomize_batchnorm(TinyResNet())


@pytest.fixture
def tiny_mobile():
    torch.manual_seed(1)
    return randomize_batchnorm(TinyMobile())


@pytest.fixture
def images():
    """64 random 1x8x8 images, fixed seed."""
    return torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
