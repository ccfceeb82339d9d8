"""Energy of one layer, from its operation counts and the memory model's accesses, with the
costs of ``costs.py`` (every constant there has its source or is marked as an assumption).

- MACs: one ``operand_bits x operand_bits`` multiply and one accumulator-wide add each; the PE
  multipliers are as wide as the hardware's operands, whatever narrower width the program uses.
  With zero gating and the simulator's counters, the multiply of a zero activation is skipped.
- Vector unit: max pooling compares at the input width; average pooling accumulates at the
  accumulator width; the residual add multiplies both inputs by 16-bit integer weights (D.9)
  and adds; the elementwise product (D.16) subtracts both zero-points and multiplies the two
  ``(b + 1)``-bit differences (both inputs taken at the first input's width); the concat (D.17)
  subtracts its input's zero-point, one ``(b + 1)``-bit add as each of the product's; a lookup
  table (D.15) forms its address with one add at the input width and reads one output-width
  entry of a table memory as large as the layer's table (A3 at that size: a dedicated table
  memory, not the filter buffer); a per-channel 1x1 conv (``layers.per_channel_affine``)
  multiplies each element by its channel's weight at the array's operand width and adds at the
  accumulator width (its weights come from the filter buffer, in the SRAM figure).
- Requantizer (both designs): per element, the circuit of the rule the op's requantizer records
  (``requant_variants.py``): for this project's (6)-(8) a multiply by the 31-bit ``m`` (A x 31
  bits), a shift-and-offset add at the accumulator width (6) and the rounding incrementer (8); an
  imported program's runtime rules (float32 multiplies, gemmlowp's high multiply, ...) their own.
  An add whose variant combines the inputs itself (FP32_ADD, TFLITE_ADD) does no D.9 multiplies.
- Border unit: its table load and lookups (``border_unit.py``), for AQuant layers only.
- Weight zero-points (docs/contract.md (5) with ``z_w != 0``): gemmlowp's row-sum trick, an
  accumulator-wide add per window element of each output position (``sum(x - z_x)``, shared by
  all output channels) and, per output element, a ``b_w x A`` multiply by ``z_w[c]`` and an
  A-bit subtraction; zero for symmetric weights.
- SRAM: every byte read or written, at the per-bit cost of its buffer's size (A3).
- DRAM: every operand byte moved (the table's bytes are in the border unit's figure).
"""

from __future__ import annotations

from dataclasses import dataclass

from aquant_sim.program import OpKind
from hw_models.border_unit import LayerBorderCost
from hw_models.config import AcceleratorConfig
from hw_models.layers import LayerWork
from hw_models.memory import LayerMemory
from hw_models.requant_variants import COMBINES_INPUTS, element_pj

ADD_WEIGHT_BITS = 16
"""Residual-add input weights are integers below 2^16 (D.9)."""


@dataclass(frozen=True)
class LayerEnergy:
    """pJ per inference."""

    mac: float
    vector: float
    requant: float
    border: float
    sram: float
    dram: float
    zero_point: float
    """Weight zero-points by the row-sum trick: the row sums and the per-output corrections."""

    @property
    def total(self) -> float:
        return self.mac + self.vector + self.requant + self.border + self.sram + self.dram + self.zero_point


def layer_energy(layer: LayerWork, memory: LayerMemory, border: LayerBorderCost, config: AcceleratorConfig,
                 zero_fraction: float = 0.0) -> LayerEnergy:
    """``zero_fraction`` is the share of zero activations entering the layer (0 when unknown)."""
    costs, array, mem = config.costs, config.array, config.memory
    acc = array.accumulator_bits
    gated = zero_fraction if array.zero_gating else 0.0
    mac = layer.macs * (costs.mul_pj(array.operand_bits, array.operand_bits) * (1.0 - gated) + costs.add_pj(acc))
    if layer.kind is OpKind.MAXPOOL2D:
        per_op = costs.add_pj(layer.input_bits)
    elif layer.kind is OpKind.ADD and layer.requant_variant in COMBINES_INPUTS:
        per_op = 0.0
    elif layer.kind is OpKind.ADD:
        per_op = 2 * costs.mul_pj(ADD_WEIGHT_BITS, layer.input_bits + 1) + costs.add_pj(acc)
    elif layer.kind is OpKind.MUL:
        per_op = costs.mul_pj(layer.input_bits + 1, layer.input_bits + 1) + 2 * costs.add_pj(layer.input_bits + 1)
    elif layer.kind is OpKind.LUT:
        per_op = costs.add_pj(layer.input_bits) + layer.output_bits * costs.sram_pj_per_bit(layer.weight_bytes)
    elif layer.kind is OpKind.CONCAT:
        per_op = costs.add_pj(layer.input_bits + 1)
    elif layer.kind is OpKind.CONV2D:  # a per-channel 1x1 conv on the vector unit
        per_op = costs.mul_pj(array.operand_bits, array.operand_bits) + costs.add_pj(acc)
    else:
        per_op = costs.add_pj(acc)
    vector = layer.vector_ops * per_op
    requant = layer.requantized * element_pj(layer.requant_variant, costs, acc, layer.output_bits) if layer.requantized else 0.0
    sram = 8 * (memory.ifmap_sram_read * costs.sram_pj_per_bit(mem.ifmap_bytes)
                + memory.filter_sram_read * costs.sram_pj_per_bit(mem.filter_bytes)
                + (memory.ofmap_sram_write + memory.ofmap_sram_read) * costs.sram_pj_per_bit(mem.ofmap_bytes))
    dram = 8 * (memory.dram_total - border.loaded_bytes) * costs.dram_pj_per_bit
    zero_point = (layer.row_sum_adds * costs.add_pj(acc)
                  + layer.zero_point_corrections * (costs.mul_pj(layer.weight_bits, acc) + costs.add_pj(acc)))
    return LayerEnergy(mac, vector, requant, border.energy_pj, sram, dram, zero_point)
