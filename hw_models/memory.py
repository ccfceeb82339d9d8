"""The memory model: SRAM accesses, DRAM traffic and stall cycles of one layer, joined to the
cycle model by data (the layer's compute cycles in, stall cycles out).

**SRAM accesses** (elements; checked against the cycle-stepped model, which counts them as the
operands move). With G groups, a GEMM ``(P x K) @ (K x N)`` and the fold counts of its mapping:

    OS: ifmap P*K*col_folds, filter K*N*row_folds, ofmap writes P*N
    WS: ifmap P*K*col_folds, filter K*N,           ofmap writes P*N*row_folds
    IS: ifmap P*K,           filter K*N*col_folds, ofmap writes P*N*row_folds

(all times G). Under WS and IS every row fold writes its partial sums (as SCALE-Sim does) and
every row fold after the first reads the previous ones back: ``psum_reads = P*N*(row_folds-1)``.
Partial sums are stored at the accumulator width, final outputs at the output width (the
requantizer sits between the array and the ofmap SRAM). SCALE-Sim counts ``R + C`` extra ofmap
writes per OS fold (writes of the empty skew slots); this model does not.

**DRAM traffic** (bytes; each SRAM is double-buffered: half holds the working data while the
other half fills) of an array layer follows ``memory.model`` (``config.MemoryModel``): under
``tiling`` each group's GEMM runs at the loop order and tiles of ``tiling.best_tiling`` (its
equations are in ``tiling.py``; |in| is the layer's unique input elements). Under
``fold`` (the default) an operand whose whole layer-sized data fits in half its buffer is fetched
once and reused from SRAM; otherwise it is fetched once per pass the dataflow makes over it:

    passes:  OS ifmap col_folds, filter row_folds;  WS ifmap col_folds, filter 1;
             IS ifmap 1, filter col_folds

Partial sums that outlive a row fold (WS, IS with row_folds > 1) stay in the ofmap buffer when
their working set (``P x min(N, C)`` under WS, ``min(P, C) x N`` under IS, at the accumulator
width) fits in its half; otherwise every intermediate row fold is written to DRAM and read back.
Each layer reads its inputs from DRAM and writes its outputs back (no fusion across layers);
border tables are read once per layer (``table_bytes``, from ``border_unit``), and so are a
vector layer's weights (a lookup table's table, a per-channel 1x1 conv's weights). A vector
layer's SRAM traffic is its inputs read once per element operation, its outputs written once
and a per-channel conv's weights read once from the filter buffer; a lookup table's reads of its
own table memory are in the energy model's vector figure.

**Stalls**: DRAM transfers overlap compute (double buffering); a layer stalls for
``max(0, dram_cycles - compute_cycles)`` with ``dram_cycles = ceil(operand bytes / bandwidth)``.
The first fill before a layer's first fold is not counted (SCALE-Sim's "Total Cycles" does not
count it either; its "incl. prefetch" column does). The border table load is charged by the
border unit model, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aquant_sim.errors import UnsupportedError
from aquant_sim.program import OpKind
from hw_models.config import AcceleratorConfig, ArrayConfig, Dataflow, MemoryModel
from hw_models.layers import Engine, Gemm, LayerWork
from hw_models.systolic import map_gemm
from hw_models.tiling import Tiling, Widths, best_tiling, units


@dataclass(frozen=True)
class SramAccesses:
    """Element accesses of the three buffers by the array (see the module docstring)."""

    ifmap_reads: int
    filter_reads: int
    ofmap_writes: int
    psum_reads: int


def sram_accesses(gemm: Gemm, array: ArrayConfig) -> SramAccesses:
    m = map_gemm(gemm, array.rows, array.cols, array.dataflow)
    g, p, k, n = gemm.groups, gemm.pixels, gemm.window, gemm.filters
    if array.dataflow is Dataflow.OS:
        return SramAccesses(g * p * k * m.col_folds, g * k * n * m.row_folds, g * p * n, 0)
    ifmap = g * p * k * (m.col_folds if array.dataflow is Dataflow.WS else 1)
    filters = g * k * n * (1 if array.dataflow is Dataflow.WS else m.col_folds)
    return SramAccesses(ifmap, filters, g * p * n * m.row_folds, g * p * n * (m.row_folds - 1))


@dataclass(frozen=True)
class LayerMemory:
    """One layer's memory figures; bytes unless said otherwise."""

    footprint: int
    """Weights (packed at b bits), unique inputs, outputs and the border table."""
    compulsory: int
    """The least DRAM traffic: every weight, input, output and table byte moved once."""
    ifmap_sram_read: int
    filter_sram_read: int
    ofmap_sram_write: int
    ofmap_sram_read: int
    dram_read: int
    dram_write: int
    spill: int
    """Of the DRAM traffic, partial sums written out and read back."""
    dram_cycles: int
    stall_cycles: int
    tiling: Tiling | None = None
    """The loop order and tiles of the ``tiling`` memory model (None otherwise)."""

    @property
    def dram_total(self) -> int:
        return self.dram_read + self.dram_write


def _bytes(elements: int, bits: int) -> int:
    return math.ceil(elements * bits / 8)


def layer_memory(layer: LayerWork, config: AcceleratorConfig, compute_cycles: int, table_bytes: int = 0) -> LayerMemory:
    """The memory figures of ``layer`` that runs for ``compute_cycles`` stall-free cycles."""
    mem, array = config.memory, config.array
    inputs, weights, outputs = layer.input_bytes, layer.weight_bytes, layer.output_bytes
    footprint = inputs + weights + outputs + table_bytes
    if layer.engine is Engine.FUSED:
        return LayerMemory(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    if layer.engine is Engine.VECTOR:
        # Weights (a lookup table's table, a per-channel 1x1 conv's weights) are read from DRAM once;
        # the conv's are then read once from the filter buffer, the table lives in its own memory.
        reads, writes, spill = inputs + weights, outputs, 0
        sram = (_bytes(layer.vector_ops, layer.input_bits), 0 if layer.kind is OpKind.LUT else weights, outputs, 0)
    else:
        acc_bits = array.accumulator_bits
        counts = sram_accesses(layer.gemm, array)
        final = layer.output_elements
        sram = (_bytes(counts.ifmap_reads, layer.input_bits), _bytes(counts.filter_reads, layer.weight_bits),
                outputs + _bytes(counts.ofmap_writes - final, acc_bits), _bytes(counts.psum_reads, acc_bits))
        if mem.model is MemoryModel.TILING:
            return _tiled(layer, config, compute_cycles, table_bytes, footprint, sram)
        m = map_gemm(layer.gemm, array.rows, array.cols, array.dataflow)
        ifmap_passes, filter_passes = {
            Dataflow.OS: (m.col_folds, m.row_folds), Dataflow.WS: (m.col_folds, 1), Dataflow.IS: (1, m.col_folds),
        }[array.dataflow]
        reads = (inputs if inputs <= mem.ifmap_bytes // 2 else inputs * ifmap_passes)
        reads += weights if weights <= mem.filter_bytes // 2 else weights * filter_passes
        spill = 0
        if array.dataflow is not Dataflow.OS and m.row_folds > 1:
            g, p, n = layer.gemm.groups, layer.gemm.pixels, layer.gemm.filters
            live = p * min(n, array.cols) if array.dataflow is Dataflow.WS else min(p, array.cols) * n
            if _bytes(live, acc_bits) > mem.ofmap_bytes // 2:
                spill = 2 * _bytes(g * p * n * (m.row_folds - 1), acc_bits)
        writes = outputs + spill // 2
        reads += spill // 2
    dram_cycles = math.ceil((reads + writes) / mem.dram_bytes_per_cycle)
    return LayerMemory(
        footprint=footprint, compulsory=inputs + weights + outputs + table_bytes,
        ifmap_sram_read=sram[0], filter_sram_read=sram[1], ofmap_sram_write=sram[2], ofmap_sram_read=sram[3],
        dram_read=reads + table_bytes, dram_write=writes, spill=spill,
        dram_cycles=dram_cycles, stall_cycles=max(0, dram_cycles - compute_cycles),
    )


def _tiled(layer: LayerWork, config: AcceleratorConfig, compute_cycles: int, table_bytes: int, footprint: int,
           sram: tuple[int, int, int, int]) -> LayerMemory:
    """An array layer under the ``tiling`` model: its groups' GEMMs at their best tiling, with
    the layer's unique input elements as |in|."""
    mem, array, g = config.memory, config.array, layer.gemm
    widths = Widths(layer.input_bits, layer.weight_bits, layer.output_bits, array.accumulator_bits)
    try:
        t = best_tiling(g.pixels, g.window, g.filters, units(array.rows, array.cols, array.dataflow), widths,
                        (mem.ifmap_bytes, mem.filter_bytes, mem.ofmap_bytes), layer.input_elements, g.groups)
    except UnsupportedError as error:
        raise UnsupportedError(f"layer '{layer.name}': {error}") from None
    reads, writes = t.input_reads + t.weight_reads + t.psum_reads, t.output_writes
    dram_cycles = math.ceil((reads + writes) / mem.dram_bytes_per_cycle)
    return LayerMemory(
        footprint=footprint, compulsory=footprint,
        ifmap_sram_read=sram[0], filter_sram_read=sram[1], ofmap_sram_write=sram[2], ofmap_sram_read=sram[3],
        dram_read=reads + table_bytes, dram_write=writes, spill=2 * t.psum_reads,
        dram_cycles=dram_cycles, stall_cycles=max(0, dram_cycles - compute_cycles), tiling=t.tiling,
    )
