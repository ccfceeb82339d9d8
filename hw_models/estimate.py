"""Joins the models: per layer, compute cycles (``systolic``) -> memory and stalls (``memory``)
-> border unit (``border_unit``) -> energy (``energy``); for the network, the totals and the area.

``estimate(program, config, counters, borders=True)`` is the AQuant design; ``borders=False``
is the same accelerator with a plain round-to-nearest requantizer (every table treated as 1/2):
the report sets the two side by side.

The simulator's per-layer counters (optional) change the answer in two places: the share of zero
activations entering each array layer (zero gating of the multipliers, energy only) and the
accumulator overflows, which are reported per layer. They are per batch; figures here are per
inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aquant_sim.errors import InputError, UnsupportedError
from aquant_sim.program import Program
from hw_models import border_unit
from hw_models.area import AreaBreakdown, accelerator_area
from hw_models.border_unit import NO_BORDER_COST, BorderUnitArea, LayerBorderCost
from hw_models.config import AcceleratorConfig
from hw_models.energy import LayerEnergy, layer_energy
from hw_models.layers import Engine, LayerWork, program_layers
from hw_models.memory import LayerMemory, layer_memory
from hw_models.systolic import compute_cycles, vector_cycles


@dataclass(frozen=True)
class LayerEstimate:
    layer: LayerWork
    compute_cycles: int
    memory: LayerMemory
    border: LayerBorderCost
    energy: LayerEnergy
    zero_fraction: float
    """Share of zero activations entering the layer, from the counters (0 without them)."""
    overflows: int | None
    """Accumulator overflows per inference, from the counters (None without them)."""
    array_pes: int
    """R x C of the array, for the utilisation."""

    @property
    def stall_cycles(self) -> int:
        return self.memory.stall_cycles

    @property
    def cycles(self) -> int:
        return self.compute_cycles + self.memory.stall_cycles + self.border.extra_cycles

    @property
    def utilization(self) -> float:
        """Useful MACs over the PE-cycles the layer occupies the array (0 off the array)."""
        return 0.0 if not self.layer.macs else self.layer.macs / (self.array_pes * self.cycles)


@dataclass(frozen=True)
class NetworkEstimate:
    config: AcceleratorConfig
    borders: bool
    layers: list[LayerEstimate]
    area: AreaBreakdown
    border_area: BorderUnitArea

    @property
    def border_storage_bits(self) -> int:
        return self.border_area.storage_bits

    @property
    def cycles(self) -> int:
        return sum(e.cycles for e in self.layers)

    @property
    def compute_cycles(self) -> int:
        return sum(e.compute_cycles for e in self.layers)

    @property
    def stall_cycles(self) -> int:
        return sum(e.stall_cycles for e in self.layers)

    @property
    def energy_pj(self) -> float:
        return sum(e.energy.total for e in self.layers)

    @property
    def dram_bytes(self) -> int:
        return sum(e.memory.dram_total for e in self.layers)

    @property
    def macs(self) -> int:
        return sum(e.layer.macs for e in self.layers)

    @property
    def utilization(self) -> float:
        array = self.config.array
        return self.macs / (array.rows * array.cols * self.cycles) if self.cycles else 0.0

    @property
    def seconds(self) -> float:
        return self.cycles / (self.config.array.clock_mhz * 1e6)

    @property
    def footprint_bytes(self) -> int:
        """Weights and tables of every layer, plus the largest activation working set."""
        static = sum(e.layer.weight_bytes + e.border.table_bytes for e in self.layers)
        return static + max((e.layer.input_bytes + e.layer.output_bytes for e in self.layers), default=0)


def check_program_fits(layers: list[LayerWork], program: Program, config: AcceleratorConfig) -> None:
    array = config.array
    if program.accumulator_bits > array.accumulator_bits:
        raise UnsupportedError(f"program: A = {program.accumulator_bits} accumulator bits exceed the array's {array.accumulator_bits} (array.accumulator_bits)")
    for layer in layers:
        if layer.engine is Engine.ARRAY and max(layer.input_bits, layer.weight_bits) > array.operand_bits:
            raise UnsupportedError(
                f"layer '{layer.name}': {layer.weight_bits}-bit weights and {layer.input_bits}-bit activations do not fit "
                f"the array's {array.operand_bits}-bit operands (array.operand_bits)")


def _per_inference(program: Program, counters) -> tuple[dict[str, float], dict[str, int]]:
    """Zero fractions by tensor name and overflows per inference by op name, from the counters."""
    if len(counters) != len(program.ops) or any(c.name != op.name for c, op in zip(counters, program.ops)):
        raise InputError("counters: they do not belong to this program (op names or count differ)")
    first = counters[0]
    batch = first.output_elements // math.prod(first.output_shape)
    zeros = {op.output: c.zero_fraction for op, c in zip(program.ops, counters)}
    overflows = {c.name: c.overflows // max(batch, 1) for c in counters}
    return zeros, overflows


def estimate(program: Program, config: AcceleratorConfig, counters=None, borders: bool = True) -> NetworkEstimate:
    """The cycle, memory, energy and area estimate of one inference of ``program``."""
    layers = program_layers(program)
    check_program_fits(layers, program, config)
    zeros, overflows = _per_inference(program, counters) if counters is not None else ({}, {})
    array = config.array
    size = border_unit.unit_size(layers, config) if borders else None
    results = []
    for op, layer in zip(program.ops, layers):
        if layer.engine is Engine.FUSED:
            continue
        if layer.engine is Engine.ARRAY:
            cycles = compute_cycles(layer.gemm, array)
        else:
            cycles = vector_cycles(layer.vector_ops, config.vector.lanes)
        border = border_unit.layer_border_cost(layer, config, size) if borders else NO_BORDER_COST
        memory = layer_memory(layer, config, cycles, border.loaded_bytes)
        zero = zeros.get(op.inputs[0], 0.0) if layer.engine is Engine.ARRAY else 0.0
        energy = layer_energy(layer, memory, border, config, zero)
        pes = array.rows * array.cols
        results.append(LayerEstimate(layer, cycles, memory, border, energy, zero, overflows.get(op.name), pes))
    unit = border_unit.border_unit_area(layers if borders else [], config)
    variants = frozenset(layer.requant_variant for layer in layers if layer.requant_variant is not None)
    return NetworkEstimate(config, borders, results, accelerator_area(config, unit, variants), unit)
