"""Op-to-hardware lowering: GEMM dimensions, vector work, fused ops."""

import numpy as np

from aquant_sim.builder import ProgramBuilder
from aquant_sim.program import BorderTable, OpKind, QuantParams
from hw_models.layers import Engine, Gemm, program_layers


def test_program_lowering(small_program):
    """Conv is an im2col GEMM, linear a one-pixel GEMM, pooling and add vector work, clamps and
    flatten fused, and the MACs agree with the op shapes."""
    layers = {w.name: w for w in program_layers(small_program)}
    assert layers["stem"].gemm == Gemm(pixels=144, window=27, filters=8)
    assert layers["layer2.0.conv1"].gemm == Gemm(pixels=36, window=72, filters=16)
    assert layers["fc"].gemm == Gemm(pixels=1, window=16, filters=10)
    assert layers["layer1.0.add"].engine is Engine.VECTOR and layers["layer1.0.add"].vector_ops == 8 * 12 * 12
    assert layers["avgpool"].vector_ops == 16 * 6 * 6
    assert layers["stem.relu"].engine is Engine.FUSED and layers["flatten"].engine is Engine.FUSED
    assert layers["fc"].output_bits == 32 and layers["fc"].requantized == 0 and layers["fc"].borders is None
    assert layers["stem"].weight_bytes == 8 * 27 * 4 // 8


def test_depthwise_is_its_groups():
    """A depthwise conv is one small GEMM per channel."""
    quant = QuantParams(4, False, 0.1, 0)
    b = ProgramBuilder("x", (6, 5, 5), quant, BorderTable.nearest(8))
    y = b.conv2d("dw", "x", np.ones((6, 1, 3, 3), dtype=np.int64), 4, np.full(6, 0.01), np.zeros(6, dtype=np.int64),
                 quant, BorderTable.nearest(8), padding=1, groups=6)
    (layer,) = program_layers(b.build(y))
    assert layer.kind is OpKind.CONV2D and layer.gemm == Gemm(pixels=25, window=9, filters=1, groups=6)
    assert layer.macs == 6 * 25 * 9
