"""Random ResNet-shaped programs are reproducible, valid and exercise the whole grid."""

import numpy as np
import pytest

from aquant_sim.program import BorderGranularity, OpKind
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.synthetic import Stem, SyntheticConfig, resnet18_config, synthetic_resnet


def test_same_seed_same_program():
    """Two builds from one config hold identical integers."""
    a, b = synthetic_resnet(), synthetic_resnet()
    for op_a, op_b in zip(a.ops, b.ops):
        if op_a.kind is OpKind.CONV2D:
            assert np.array_equal(op_a.weight, op_b.weight)
            assert np.array_equal(op_a.requant.borders.values, op_b.requant.borders.values)


@pytest.mark.parametrize("granularity", list(BorderGranularity))
def test_border_granularity_is_applied(granularity):
    """Every requantizer's table has the configured granularity."""
    p = synthetic_resnet(SyntheticConfig(widths=(4, 8), blocks=(1, 1), granularity=granularity))
    tables = [op.requant.borders for op in p.ops if getattr(op, "requant", None) is not None]
    assert tables and all(t.granularity is granularity for t in tables)


def test_resnet18_shape():
    """The ResNet-18 config has 20 convs (17 + 3 downsamples) and 1.8 GMACs per 224x224 image."""
    p = synthetic_resnet(resnet18_config(4, 4))
    convs = [op for op in p.ops if op.kind is OpKind.CONV2D]
    assert len(convs) == 20
    macs = sum(np.prod(p.tensor(op.output).shape) * op.weight[0].size for op in convs)
    assert 1.80e9 < macs < 1.83e9


def test_activations_use_the_grid():
    """On a random batch no requantized layer is all zeros or all saturated."""
    p = synthetic_resnet(SyntheticConfig(stem=Stem.CIFAR, widths=(8, 16), blocks=(1, 1)))
    result = Simulator(p, Backend.REFERENCE).run(np.random.default_rng(0).standard_normal((2, 3, 32, 32)), keep_tensors=True)
    for op in p.ops:
        if op.kind in (OpKind.CONV2D, OpKind.ADD):
            levels = result.tensors[op.output]
            assert len(np.unique(levels)) > 4, op.name
