"""SCALE-Sim compatibility mode: SCALE-Sim 3.0's per-layer figures for a topology CSV and a
``.cfg``, computed by this project (``scalesim_streams`` builds its address streams,
``scalesim_buffers`` replays them through its buffers) without running SCALE-Sim.

The figures are those of SCALE-Sim's ``COMPUTE_REPORT.csv`` (cycles including prefetch, cycles,
stalls) and ``DETAILED_ACCESS_REPORT.csv`` (first and last cycle and count of the SRAM and DRAM
accesses of each operand), in SCALE-Sim's units: one-byte words. The two bandwidth modes
(``[run_presets] InterfaceBandwidth``) are a :class:`BandwidthMode`:

- ``USER``: the ifmap buffer fetches ``IfmapSRAMBankBandwidth`` words a cycle, the filter buffer
  ``FilterSRAMBankBandwidth`` and the ofmap buffer drains ``Bandwidth`` (its first value);
  fetches that come late stall the array.
- ``CALC``: SCALE-Sim computes the bandwidth the layer needs, so reads never stall (the ofmap
  buffer drains ``ArrayWidth`` words a cycle and may still stall); ``Bandwidth`` is ignored.

``tests/hw_models/test_scalesim_compat.py`` checks every figure of every layer against reports
of SCALE-Sim runs (``tests/hw_models/data/scalesim``); ``tools/scalesim_validate.py`` runs
SCALE-Sim itself to compare more topologies. Custom layouts, sparsity and Ramulator traces
are not reproduced: a config that enables them is refused.
"""

from __future__ import annotations

import configparser
import csv
import enum
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from aquant_sim.errors import ConfigError, InputError, UnsupportedError
from hw_models import scalesim_buffers as buffers
from hw_models.config import Dataflow
from hw_models.scalesim import TopologyLayer, parse_cfg
from hw_models.scalesim_streams import Offsets, layer_streams


class BandwidthMode(enum.Enum):
    """SCALE-Sim's ``InterfaceBandwidth``: who sets the DRAM bandwidth of the buffers."""

    USER = "USER"
    """The config's bandwidths; late fetches stall."""
    CALC = "CALC"
    """SCALE-Sim sizes the read bandwidth itself: no read stalls."""


@dataclass(frozen=True)
class ScaleSimConfig:
    """The parts of a SCALE-Sim 3.0 ``.cfg`` that its figures depend on."""

    name: str
    rows: int
    cols: int
    ifmap_kb: int
    filter_kb: int
    ofmap_kb: int
    dataflow: Dataflow
    mode: BandwidthMode
    bandwidth: int
    """``Bandwidth`` (its first value): the ofmap drain in USER mode; unused in CALC mode."""
    ifmap_bandwidth: int
    """``IfmapSRAMBankBandwidth``: the ifmap fetch in USER mode."""
    filter_bandwidth: int
    """``FilterSRAMBankBandwidth``: the filter fetch in USER mode."""
    offsets: Offsets = Offsets()

    def __post_init__(self):
        for f in ("rows", "cols", "ifmap_kb", "filter_kb", "ofmap_kb", "bandwidth", "ifmap_bandwidth", "filter_bandwidth"):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"scalesim config '{self.name}': {f} must be a positive integer, got {value!r}")
        if not isinstance(self.dataflow, Dataflow) or not isinstance(self.mode, BandwidthMode):
            raise ConfigError(f"scalesim config '{self.name}': dataflow and mode must be a Dataflow and a BandwidthMode")

    @property
    def read_bandwidths(self) -> tuple[int, int]:
        """Words a cycle of the ifmap and filter fetches (0: sized by SCALE-Sim, CALC)."""
        return (self.ifmap_bandwidth, self.filter_bandwidth) if self.mode is BandwidthMode.USER else (0, 0)

    @property
    def ofmap_bandwidth(self) -> int:
        return self.bandwidth if self.mode is BandwidthMode.USER else self.cols


def _get(parser, section: str, key: str, path: Path) -> str:
    try:
        return parser.get(section, key).strip()
    except (configparser.NoSectionError, configparser.NoOptionError):
        raise ConfigError(f"{path}: [{section}] lacks {key}") from None


def _int(parser, section: str, key: str, path: Path) -> int:
    raw = _get(parser, section, key, path)
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{path}: [{section}] {key} must be an integer, got {raw!r}") from None


def _false(parser, section: str, key: str, path: Path, what: str) -> None:
    if parser.has_option(section, key) and parser.get(section, key).strip().lower() == "true":
        raise UnsupportedError(f"{path}: [{section}] {key} = true ({what}) is not reproduced by the compatibility mode")


def read_config(path: str | Path) -> ScaleSimConfig:
    """Read a SCALE-Sim 3.0 ``.cfg`` (as data, ``configparser``); errors name the file, the
    section and the key."""
    path = Path(path)
    parser = parse_cfg(path)
    arch = "architecture_presets"
    raw_mode = _get(parser, "run_presets", "InterfaceBandwidth", path)
    try:
        mode = BandwidthMode(raw_mode)
    except ValueError:
        raise ConfigError(f"{path}: [run_presets] InterfaceBandwidth must be USER or CALC, got {raw_mode!r}") from None
    raw_df = _get(parser, arch, "Dataflow", path)
    try:
        dataflow = Dataflow(raw_df.lower())
    except ValueError:
        raise ConfigError(f"{path}: [{arch}] Dataflow must be os, ws or is, got {raw_df!r}") from None
    _false(parser, "run_presets", "UseRamulatorTrace", path, "Ramulator DRAM latencies")
    _false(parser, "layout", "IfmapCustomLayout", path, "custom ifmap layout")
    _false(parser, "layout", "FilterCustomLayout", path, "custom filter layout")
    _false(parser, "sparsity", "SparsitySupport", path, "sparse filters")
    bandwidth = 1
    if mode is BandwidthMode.USER:
        raw = _get(parser, arch, "Bandwidth", path)
        try:
            bandwidth = int(raw.split(",")[0])
        except ValueError:
            raise ConfigError(f"{path}: [{arch}] Bandwidth must be an integer (or a list of them), got {raw!r}") from None
    read_bw = []
    for operand in ("Ifmap", "Filter"):
        bw = _int(parser, "layout", f"{operand}SRAMBankBandwidth", path)
        banks = _int(parser, "layout", f"{operand}SRAMBankNum", path)
        if mode is BandwidthMode.USER and (banks < 1 or bw % banks):
            raise ConfigError(f"{path}: [layout] {operand}SRAMBankBandwidth = {bw} must be a multiple of {operand}SRAMBankNum = {banks}")
        read_bw.append(bw)
    offsets = Offsets(_int(parser, arch, "IfmapOffset", path), _int(parser, arch, "FilterOffset", path),
                      _int(parser, arch, "OfmapOffset", path))
    try:
        return ScaleSimConfig(_get(parser, "general", "run_name", path), _int(parser, arch, "ArrayHeight", path),
                              _int(parser, arch, "ArrayWidth", path), _int(parser, arch, "IfmapSramSzkB", path),
                              _int(parser, arch, "FilterSramSzkB", path), _int(parser, arch, "OfmapSramSzkB", path),
                              dataflow, mode, bandwidth, read_bw[0], read_bw[1], offsets)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


@dataclass(frozen=True)
class LayerFigures:
    """One layer's row of SCALE-Sim's compute and detailed access reports (words, cycles)."""

    cycles_incl_prefetch: int
    cycles: int
    stall_cycles: int
    ifmap_sram_start: int
    ifmap_sram_stop: int
    ifmap_sram_reads: int
    filter_sram_start: int
    filter_sram_stop: int
    filter_sram_reads: int
    ofmap_sram_start: int
    ofmap_sram_stop: int
    ofmap_sram_writes: int
    ifmap_dram_start: int
    ifmap_dram_stop: int
    ifmap_dram_reads: int
    filter_dram_start: int
    filter_dram_stop: int
    filter_dram_reads: int
    ofmap_dram_start: int
    ofmap_dram_stop: int
    ofmap_dram_writes: int


FIGURES = tuple(f.name for f in fields(LayerFigures))
"""The figures in the order of SCALE-Sim's reports."""
SIMULATED = tuple(name for name in FIGURES if not name.endswith(("sram_reads", "sram_writes")))
"""The figures ``scalesim_buffers.simulate`` returns (the SRAM counts come from the streams)."""


def simulate_layer(layer: TopologyLayer, config: ScaleSimConfig) -> LayerFigures:
    """SCALE-Sim 3.0's figures for ``layer`` under ``config``."""
    streams = layer_streams(layer, config.rows, config.cols, config.dataflow, config.offsets)
    bw_i, bw_f = config.read_bandwidths
    operands = []
    for demand, prefetch, kb, bw in ((streams.ifmap_demand, streams.ifmap_prefetch, config.ifmap_kb, bw_i),
                                     (streams.filter_demand, streams.filter_prefetch, config.filter_kb, bw_f)):
        ids, words = buffers.dense_ids(demand, prefetch)
        words_in_buffer = kb * 1024
        if bw:
            indptr, lines, num_lines = buffers.line_index(prefetch, words, -(-words_in_buffer // 100))
        else:
            indptr, lines, num_lines = np.zeros(len(words) + 1, np.int64), np.zeros(0, np.int64), 0
        operands.append((ids, buffers.read_params(prefetch, num_lines, words_in_buffer, bw), indptr, lines))
    (ids_i, pa_i, indptr_i, lines_i), (ids_f, pa_f, indptr_f, lines_f) = operands
    ofmap_words = config.ofmap_kb * 1024
    wp = np.array([config.ofmap_bandwidth, ofmap_words, ofmap_words - -(-ofmap_words // 2)], dtype=np.int64)
    try:
        values = buffers.simulate(ids_i, ids_f, streams.ofmap_demand, config.mode is BandwidthMode.USER,
                                  pa_i, pa_f, indptr_i, lines_i, indptr_f, lines_f, wp)
    except ValueError as error:
        raise InputError(f"layer '{layer.name}': {error}") from None
    simulated = dict(zip(SIMULATED, (int(v) for v in values)))
    return LayerFigures(**simulated, ifmap_sram_reads=streams.ifmap_sram_reads,
                        filter_sram_reads=streams.filter_sram_reads, ofmap_sram_writes=streams.ofmap_sram_writes)


def simulate_topology(layers: list[TopologyLayer], config: ScaleSimConfig) -> list[LayerFigures]:
    return [simulate_layer(layer, config) for layer in layers]


def _report_rows(path: Path, columns: int) -> list[list[str]]:
    try:
        with path.open() as handle:
            rows = [[cell.strip() for cell in row if cell.strip()] for row in csv.reader(handle)][1:]
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    for line, row in enumerate(rows, start=2):
        if len(row) != columns:
            raise InputError(f"{path}: line {line}: expected {columns} columns, got {len(row)}")
    return rows


def _whole(path: Path, line: int, cell: str) -> int:
    try:
        value = float(cell)
    except ValueError:
        raise InputError(f"{path}: line {line}: expected a number, got {cell!r}") from None
    if value != int(value):
        raise InputError(f"{path}: line {line}: expected a whole number, got {cell!r}")
    return int(value)


def read_reports(directory: str | Path) -> list[LayerFigures]:
    """The figures of a SCALE-Sim run from its ``COMPUTE_REPORT.csv`` and
    ``DETAILED_ACCESS_REPORT.csv`` in ``directory``."""
    directory = Path(directory)
    compute_path, detail_path = directory / "COMPUTE_REPORT.csv", directory / "DETAILED_ACCESS_REPORT.csv"
    compute, detail = _report_rows(compute_path, 7), _report_rows(detail_path, 19)
    if len(compute) != len(detail):
        raise InputError(f"{directory}: the compute and detailed reports list {len(compute)} and {len(detail)} layers")
    figures = []
    for line, (c, d) in enumerate(zip(compute, detail), start=2):
        values = [_whole(compute_path, line, cell) for cell in c[1:4]] + [_whole(detail_path, line, cell) for cell in d[1:]]
        figures.append(LayerFigures(*values))
    return figures
