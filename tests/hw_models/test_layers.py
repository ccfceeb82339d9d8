"""Op-to-hardware lowering: GEMM dimensions, vector work, fused ops."""

import numpy as np

from aquant_sim.builder import ProgramBuilder
from aquant_sim.program import BorderTable, OpKind, QuantParams
from hw_models.layers import Engine, Gemm, program_layers, touched


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


def test_strided_pointwise_conv_reads_a_quarter():
    """A 1x1 conv of stride 2 reads every other row and column of its input; a 3x3 conv of stride 2
    with padding 1 reads all of it."""
    quant = QuantParams(4, False, 0.1, 0)
    b = ProgramBuilder("x", (4, 8, 7), quant, BorderTable.nearest(8))
    y = b.conv2d("pw", "x", np.ones((2, 4, 1, 1), dtype=np.int64), 4, np.full(2, 0.01), np.zeros(2, dtype=np.int64),
                 quant, BorderTable.nearest(8), stride=2)
    z = b.conv2d("c3", "x", np.ones((2, 4, 3, 3), dtype=np.int64), 4, np.full(2, 0.01), np.zeros(2, dtype=np.int64),
                 quant, BorderTable.nearest(8), stride=2, padding=1)
    b.add("sum", y, z, quant, BorderTable.nearest(8))
    layers = {w.name: w for w in program_layers(b.build("sum"))}
    assert layers["pw"].input_elements == 4 * 4 * 4
    assert layers["c3"].input_elements == 4 * 8 * 7
    assert touched(10, 3, 2, 4) == 6 and touched(5, 5, 3, 1, padding=1) == 5


def test_lookup_tables_and_products_run_on_the_vector_unit(gate_program):
    """A lookup table is one vector op per output element whose weights are its table (rows x
    2^b entries at the output width); a product is one vector op per output element reading both
    inputs and ending in the requantizer."""
    layers = {w.name: w for w in program_layers(gate_program)}
    act, gate, scale = layers["act"], layers["gate"], layers["scale"]
    assert act.engine is Engine.VECTOR and act.vector_ops == 4 * 6 * 6 and act.requantized == 0 and act.borders is None
    assert (act.weight_elements, act.weight_bits, act.weight_bytes) == (256, 8, 256)
    assert (gate.vector_ops, gate.weight_elements, gate.weight_bits, gate.weight_bytes) == (4, 4 * 256, 4, 512)
    assert scale.engine is Engine.VECTOR and scale.vector_ops == 4 * 6 * 6 and scale.requantized == 4 * 6 * 6
    assert scale.input_elements == 4 * 6 * 6 + 4 and scale.weight_elements == 0


def _concat_program():
    quant = QuantParams(4, False, 0.1, 0)
    b = ProgramBuilder("x", (4, 6, 6), quant, BorderTable.nearest(8))
    y = b.conv2d("same", "x", np.ones((2, 4, 3, 3), dtype=np.int64), 4, np.full(2, 0.01), np.zeros(2, dtype=np.int64),
                 QuantParams(4, False, 0.2, 1), BorderTable.nearest(8), stride=2, padding=(0, 0), padding_end=(1, 1))
    pooled = b.maxpool("pool", "x", 3, 2, padding=0, padding_end=1)
    return b.build(b.concat("cat", [y, pooled], quant, BorderTable.nearest(8)))


def test_concat_is_vector_work_through_the_requantizer():
    """A concat reads both inputs and costs, per output element, one vector operation and one
    requantization; a TF-"SAME" stride-2 conv, and a TF-"SAME" 3x3/2 max pooling (0 before, 1
    after), read only the rows and columns their windows reach."""
    layers = {w.name: w for w in program_layers(_concat_program())}
    cat, same, pool = layers["cat"], layers["same"], layers["pool"]
    assert pool.input_elements == 4 * 6 * 6 and pool.output_elements == 4 * 3 * 3 and pool.vector_ops == 4 * 3 * 3 * 9
    assert cat.kind is OpKind.CONCAT and cat.engine is Engine.VECTOR and cat.gemm is None
    assert cat.input_elements == 2 * 3 * 3 + 4 * 3 * 3 and cat.output_elements == 6 * 3 * 3
    assert cat.vector_ops == cat.requantized == 6 * 3 * 3
    assert same.gemm == Gemm(pixels=9, window=36, filters=2)
    assert same.input_elements == 4 * 6 * 6 and touched(6, 3, 3, 2, 0) == 6 and touched(6, 3, 1, 2, 0) == 3


def test_per_channel_affine_conv_is_vector_work():
    """A depthwise 1x1 conv with one weight per channel (a batch norm that follows no conv) is one
    vector multiply-add per output element with its C weights, not C one-PE GEMMs; a depthwise
    3x3 conv stays on the array."""
    quant = QuantParams(4, False, 0.1, 0)
    b = ProgramBuilder("x", (6, 5, 5), quant, BorderTable.nearest(8))
    affine = b.conv2d("bn", "x", np.ones((6, 1, 1, 1), dtype=np.int64), 4, np.full(6, 0.01), np.zeros(6, dtype=np.int64),
                      quant, BorderTable.nearest(8), groups=6)
    y = b.conv2d("dw", affine, np.ones((6, 1, 3, 3), dtype=np.int64), 4, np.full(6, 0.01), np.zeros(6, dtype=np.int64),
                 quant, BorderTable.nearest(8), padding=1, groups=6)
    bn, dw = program_layers(b.build(y))
    assert bn.engine is Engine.VECTOR and bn.gemm is None and bn.macs == 0
    assert bn.vector_ops == bn.requantized == 6 * 5 * 5 and bn.weight_elements == 6 and bn.weight_bits == 4
    assert dw.engine is Engine.ARRAY and dw.gemm == Gemm(pixels=25, window=9, filters=1, groups=6)
