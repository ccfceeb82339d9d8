"""SCALE-Sim interchange: its ``.cfg`` architecture files (read, and written in SCALE-Sim 3.0's
format) and its convolution topology CSVs.

Topology CSV (SCALE-Sim v2/v3, one header line, then one row per layer, a trailing comma
allowed)::

    Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,

Read as SCALE-Sim 3.0 reads it (``scalesim/topology_utils.py``, ``load_arrays_conv``): it drops
the last cell of every row, so a note after the stride (``#dw`` in its MobileNet files) is
ignored, and a row whose name contains ``DP`` is a depthwise layer that it runs as ``Channels``
layers of one channel each, named ``<name>Channel_<i>``; ``read_topology`` returns those rows.
(SCALE-Sim's own parser needs the trailing comma: without it the stride is the dropped cell and
it fails; this reader accepts both.)

SCALE-Sim has no padding: the IFMAP sizes are the padded sizes, and its output size is
``ceil((H - FH + S) / S)`` (that is what reproduces its published AlexNet conv1 count, 55x55
outputs from 224 with an 11x11 filter at stride 4). Export writes, for each conv of a program,
the extent of the padded input that its windows actually cover, ``(Ho - 1) * S + FH``, so that
SCALE-Sim's formula gives back the program's exact output size. Linear layers are exported as
1x1 convolutions on a 1x1 input. Grouped convolutions, pooling and adds have no row in SCALE-Sim's
format (it has no groups and no vector unit): export skips them and says which in its result.

Both readers treat the files as data (``csv``, ``configparser``); nothing in them is executed.
"""

from __future__ import annotations

import configparser
import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

from aquant_sim.errors import ConfigError
from aquant_sim.program import OpKind, Program
from hw_models.config import AcceleratorConfig, ArrayConfig, MemoryConfig, default_config
from hw_models.layers import Gemm

TOPOLOGY_HEADER = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                   "Channels", "Num Filter", "Strides")


@dataclass(frozen=True)
class TopologyLayer:
    """One convolution as SCALE-Sim describes it (padded input sizes, one stride for both axes)."""

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride: int

    def __post_init__(self):
        for field_name in TOPOLOGY_HEADER[1:]:
            attr = _ATTRS[field_name]
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"layer '{self.name}': {field_name} must be a positive integer, got {value!r}")
        if self.filter_h > self.ifmap_h or self.filter_w > self.ifmap_w:
            raise ConfigError(f"layer '{self.name}': the filter ({self.filter_h}x{self.filter_w}) is larger than the ifmap ({self.ifmap_h}x{self.ifmap_w})")

    @property
    def ofmap(self) -> tuple[int, int]:
        """SCALE-Sim's output size, ``ceil((H - FH + S) / S)`` on each axis."""
        return (math.ceil((self.ifmap_h - self.filter_h + self.stride) / self.stride),
                math.ceil((self.ifmap_w - self.filter_w + self.stride) / self.stride))

    @property
    def gemm(self) -> Gemm:
        oh, ow = self.ofmap
        return Gemm(pixels=oh * ow, window=self.filter_h * self.filter_w * self.channels, filters=self.filters)


DEPTHWISE_MARK = "DP"
"""A topology row whose name contains this is a depthwise layer to SCALE-Sim 3.0: one row per channel."""
_ATTRS = dict(zip(TOPOLOGY_HEADER[1:], ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "filters", "stride")))


def read_topology(path: str | Path) -> list[TopologyLayer]:
    """Parse a SCALE-Sim topology CSV; errors name the file, the line and the column."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    rows = [[cell.strip() for cell in row] for row in csv.reader(text.splitlines())]
    numbered = [(i + 1, row[:-1] if row and (row[-1] == "" or row[-1].startswith("#")) else row)
                for i, row in enumerate(rows) if any(row)]
    if not numbered:
        raise ConfigError(f"{path}: empty topology file")
    (_, header), body = numbered[0], numbered[1:]
    if len(header) != len(TOPOLOGY_HEADER) or header[0].lower() != "layer name":
        raise ConfigError(f"{path}: line 1: expected the header '{', '.join(TOPOLOGY_HEADER)}', got {', '.join(header)!r}")
    if not body:
        raise ConfigError(f"{path}: no layers after the header")
    layers = []
    for line, row in body:
        if len(row) != len(TOPOLOGY_HEADER):
            raise ConfigError(f"{path}: line {line}: expected {len(TOPOLOGY_HEADER)} columns, got {len(row)}")
        values = []
        for column, cell in zip(TOPOLOGY_HEADER[1:], row[1:]):
            try:
                values.append(int(cell))
            except ValueError:
                raise ConfigError(f"{path}: line {line}: {column} must be an integer, got {cell!r}") from None
        try:
            layer = TopologyLayer(row[0], *values)
            if DEPTHWISE_MARK in layer.name:
                layers.extend(replace(layer, name=f"{layer.name}Channel_{i}", channels=1) for i in range(layer.channels))
            else:
                layers.append(layer)
        except ConfigError as error:
            raise ConfigError(f"{path}: line {line}: {error}") from None
    return layers


def write_topology(layers: list[TopologyLayer], path: str | Path) -> None:
    with Path(path).open("w", newline="") as handle:
        handle.write(", ".join(TOPOLOGY_HEADER) + ",\n")
        for layer in layers:
            handle.write(", ".join(str(v) for v in (layer.name, *(getattr(layer, _ATTRS[c]) for c in TOPOLOGY_HEADER[1:]))) + ",\n")


def program_topology(program: Program) -> tuple[list[TopologyLayer], list[str]]:
    """SCALE-Sim rows for the program's ungrouped convolutions and linear layers, and the names
    of the ops that have no row (grouped convs, pooling, adds; clamps and flatten cost nothing)."""
    layers, skipped = [], []
    for op in program.ops:
        if op.kind is OpKind.CONV2D and op.groups == 1:
            c_out, c_in, kh, kw = op.weight.shape
            _, oh, ow = program.tensor(op.output).shape
            if op.dilation != (1, 1) or op.stride[0] != op.stride[1]:
                skipped.append(op.name)
                continue
            s = op.stride[0]
            layers.append(TopologyLayer(op.name, (oh - 1) * s + kh, (ow - 1) * s + kw, kh, kw, c_in, c_out, s))
        elif op.kind is OpKind.LINEAR:
            layers.append(TopologyLayer(op.name, 1, 1, 1, 1, op.weight.shape[1], op.weight.shape[0], 1))
        elif op.kind not in (OpKind.CLAMP, OpKind.FLATTEN):
            skipped.append(op.name)
    return layers, skipped


_CFG_KEYS = {
    "arrayheight": "rows", "arraywidth": "cols", "ifmapsramszkb": "ifmap_sram_kib",
    "filtersramszkb": "filter_sram_kib", "ofmapsramszkb": "ofmap_sram_kib", "dataflow": "dataflow",
}


def _bandwidth(parser, section, path: Path, fallback: float) -> float:
    """SCALE-Sim's Bandwidth: one number, or a comma-separated list of equal numbers. Under
    ``InterfaceBandwidth = CALC`` SCALE-Sim sizes the bandwidth itself and the key may be absent:
    then the base config's bandwidth is used."""
    if "bandwidth" not in section:
        if parser.get("run_presets", "InterfaceBandwidth", fallback="").strip().upper() == "CALC":
            return fallback
        raise ConfigError(f"{path}: [architecture_presets] lacks bandwidth")
    raw = section["bandwidth"]
    try:
        values = {float(v) for v in raw.split(",") if v.strip()}
    except ValueError:
        raise ConfigError(f"{path}: [architecture_presets] bandwidth must be a number, got {raw!r}") from None
    if len(values) != 1:
        raise ConfigError(f"{path}: [architecture_presets] bandwidth must be one value (or equal values), got {raw!r}")
    return values.pop()


def parse_cfg(path: Path) -> configparser.ConfigParser:
    """A SCALE-Sim ``.cfg`` parsed as data; unreadable or malformed files are a ConfigError
    naming the file."""
    parser = configparser.ConfigParser()
    try:
        with path.open() as handle:
            parser.read_file(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a valid SCALE-Sim config: {error}") from None
    except configparser.Error as error:
        # Some parser messages quote the offending lines below the first; one line is enough.
        raise ConfigError(f"{path}: not a valid SCALE-Sim config: {error.message.splitlines()[0]}") from None
    return parser


def read_scalesim_cfg(path: str | Path, base: AcceleratorConfig | None = None) -> AcceleratorConfig:
    """Import a SCALE-Sim ``.cfg``: ``[architecture_presets]`` ArrayHeight, ArrayWidth, the three
    SRAM sizes in kB (SCALE-Sim multiplies them by 1024), Dataflow and Bandwidth (words a cycle,
    one-byte words as in SCALE-Sim's default). Everything else (clock, widths, vector and border
    unit, costs) comes from ``base`` (the default config when None)."""
    path = Path(path)
    parser = parse_cfg(path)
    if "architecture_presets" not in parser:
        raise ConfigError(f"{path}: missing section [architecture_presets]")
    section = parser["architecture_presets"]
    base = base or default_config()
    values = {}
    for key, field_name in _CFG_KEYS.items():
        if key not in section:
            raise ConfigError(f"{path}: [architecture_presets] lacks {key}")
        raw = section[key].strip()
        if field_name == "dataflow":
            values[field_name] = raw.lower()
            continue
        try:
            values[field_name] = int(raw)
        except ValueError:
            raise ConfigError(f"{path}: [architecture_presets] {key} must be an integer, got {raw!r}") from None
    bandwidth = _bandwidth(parser, section, path, base.memory.dram_bytes_per_cycle)
    name = parser.get("general", "run_name", fallback=path.stem).strip() or path.stem
    try:
        array = ArrayConfig(rows=values["rows"], cols=values["cols"], dataflow=values["dataflow"],
                            clock_mhz=base.array.clock_mhz, operand_bits=base.array.operand_bits,
                            accumulator_bits=base.array.accumulator_bits)
        memory = MemoryConfig(values["ifmap_sram_kib"], values["filter_sram_kib"], values["ofmap_sram_kib"], bandwidth)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return AcceleratorConfig(name, array, memory, base.vector, base.border_unit, base.costs)



def write_scalesim_cfg(config: AcceleratorConfig, path: str | Path) -> None:
    """Write ``config`` as a SCALE-Sim 3.0 ``.cfg`` (the sections and keys its reader requires:
    user bandwidth, no Ramulator, default layouts, no sparsity). SCALE-Sim takes whole kB."""
    mem, array = config.memory, config.array
    sizes = (mem.ifmap_sram_kib, mem.filter_sram_kib, mem.ofmap_sram_kib)
    if any(size != int(size) for size in sizes):
        raise ConfigError(f"config '{config.name}': SCALE-Sim takes whole kB for the SRAM sizes, got {sizes}")
    bandwidth = mem.dram_bytes_per_cycle
    if bandwidth != int(bandwidth):
        raise ConfigError(f"config '{config.name}': SCALE-Sim takes whole words a cycle for the bandwidth, got {bandwidth}")
    text = f"""[general]
run_name = {config.name}_{array.dataflow.value}

[run_presets]
InterfaceBandwidth = USER
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {array.rows}
ArrayWidth = {array.cols}
IfmapSramSzkB = {int(sizes[0])}
FilterSramSzkB = {int(sizes[1])}
OfmapSramSzkB = {int(sizes[2])}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {array.dataflow.value}
Bandwidth = {int(bandwidth)}
ReadRequestBuffer = 32
WriteRequestBuffer = 32
MemoryBanks = 1

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
"""
    Path(path).write_text(text)
