"""Requantizer cost by variant: BORDER is the model's original formula, every variant has a
cost, an imported program is costed by its own rules, and inputs-combining adds skip D.9."""

import pytest
from onnxruntime.quantization import QuantFormat

from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.program import OpKind
from aquant_sim.rounding import MULTIPLIER_BITS, RequantVariant
from hw_models.config import AcceleratorConfig
from hw_models.estimate import estimate
from hw_models.layers import program_layers
from hw_models.requant_variants import element_pj, lane_um2

CONFIG = AcceleratorConfig()
COSTS = CONFIG.costs


def test_border_is_the_projects_requantizer():
    """BORDER: an A x 31 multiply, an A-bit add and the output-width incrementer (energy); the
    multiplier and adder (area)."""
    assert element_pj(RequantVariant.BORDER, COSTS, 24, 4) == COSTS.mul_pj(24, MULTIPLIER_BITS) + COSTS.add_pj(24) + COSTS.add_pj(4)
    assert lane_um2(RequantVariant.BORDER, COSTS, 24) == COSTS.mul_um2(24, MULTIPLIER_BITS) + COSTS.add_um2(24)


def test_every_variant_is_costed():
    """Each variant has a positive energy and area; the float32 multiply (Horowitz 3.7 pJ) makes
    FP32 dearer than the 32-bit integer rules, and the two fused multiply-adds FP32_ADD dearer still."""
    energy = {v: element_pj(v, COSTS, 32, 8) for v in RequantVariant}
    assert all(e > 0 for e in energy.values()) and all(lane_um2(v, COSTS, 32) > 0 for v in RequantVariant)
    assert energy[RequantVariant.BORDER] < energy[RequantVariant.GEMMLOWP] < energy[RequantVariant.FP32] < energy[RequantVariant.FP32_ADD]
    assert energy[RequantVariant.FP32] == 2 * COSTS.add_pj(32) + COSTS.fmul32_pj + COSTS.add_pj(8)


@pytest.mark.parametrize("resnet_model", [(QuantFormat.QDQ, True)], indirect=True)
def test_imported_program_is_costed_by_its_rules(resnet_model):
    """onnxruntime's ResNet-20: each layer's requantizer energy is its variant's per element, the
    FP32_ADD adds do no D.9 multiplies (vector energy 0), and the requantizer area holds one lane
    circuit per rule used (FP32 and FP32_ADD), not BORDER's."""
    program = import_onnx(resnet_model).program
    net = estimate(program, CONFIG)
    acc = CONFIG.array.accumulator_bits
    variants = set()
    for e in net.layers:
        layer = e.layer
        if layer.requant_variant is None:
            continue
        variants.add(layer.requant_variant)
        assert e.energy.requant == pytest.approx(layer.requantized * element_pj(layer.requant_variant, COSTS, acc, layer.output_bits), rel=1e-12)
        if layer.kind is OpKind.ADD:
            assert layer.requant_variant is RequantVariant.FP32_ADD and e.energy.vector == 0
    assert variants == {RequantVariant.FP32, RequantVariant.FP32_ADD}
    lanes = CONFIG.border_unit.lanes
    expected = lanes * (lane_um2(RequantVariant.FP32, COSTS, acc) + lane_um2(RequantVariant.FP32_ADD, COSTS, acc))
    assert net.area.requantizer == pytest.approx(expected + net.border_area.incrementers_um2, rel=1e-12)


def test_border_add_keeps_its_multiplies(small_program):
    """A BORDER add (the project's own programs) still charges D.9's two integer-weight multiplies."""
    layers = {layer.name: layer for layer in program_layers(small_program)}
    net = estimate(small_program, CONFIG)
    adds = [e for e in net.layers if e.layer.kind is OpKind.ADD]
    assert adds and all(e.energy.vector > 0 and layers[e.layer.name].requant_variant is RequantVariant.BORDER for e in adds)
