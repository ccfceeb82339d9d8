"""The accelerator configuration: a frozen dataclass per section, loadable from TOML.

A TOML file has the sections ``[array]``, ``[memory]``, ``[vector]``, ``[border_unit]`` and
``[costs]``; each key is a field of the matching dataclass below, every key is optional (the
dataclass defaults, which are also what the shipped ``configs/default.toml`` spells out) and an unknown key is an error, so that a typo
never silently falls back to a default. Every value is checked at construction; errors are
:class:`ConfigError` naming ``section.field``.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from aquant_sim.errors import ConfigError
from hw_models.costs import KIB, TechnologyCosts, check_positive


class Dataflow(enum.Enum):
    """Which operand stays in the processing elements while the others stream through."""

    OS = "os"
    """Output stationary: each PE accumulates one output; inputs and weights stream."""
    WS = "ws"
    """Weight stationary: each PE holds one weight; inputs stream right, partial sums down."""
    IS = "is"
    """Input stationary: each PE holds one input; weights stream right, partial sums down."""


class MemoryModel(enum.Enum):
    """How ``memory.py`` computes the DRAM traffic of an array layer."""

    FOLD = "fold"
    """Reuse per operand is all or nothing: fetched once when the whole operand fits half its
    buffer, else once per pass of the fold schedule."""
    TILING = "tiling"
    """The loop order and tile sizes with the least traffic (``tiling.py``)."""


def _check_enum(section_obj, section: str, name: str, kind: type[enum.Enum]) -> None:
    """Accept a member of ``kind`` or its value as a string (any case, as TOML gives it); store
    the member on the frozen dataclass, or raise ConfigError naming ``section.name``."""
    value = getattr(section_obj, name)
    if isinstance(value, str) and value.lower() in {m.value for m in kind}:
        value = kind(value.lower())
        object.__setattr__(section_obj, name, value)
    if not isinstance(value, kind):
        raise ConfigError(f"{section}.{name}: must be one of {', '.join(m.value for m in kind)}, got {value!r}")


def _check_int(section: str, name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{section}.{name}: must be an integer in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class ArrayConfig:
    """The R x C systolic array of multiply-accumulate PEs."""

    rows: int = 32
    cols: int = 32
    dataflow: Dataflow = Dataflow.OS
    clock_mhz: float = 1000.0
    operand_bits: int = 8
    """Width of the PE multipliers' operands; program weights and activations must fit."""
    accumulator_bits: int = 32
    """Width of the PE adders and partial sums (the program's A must fit)."""
    zero_gating: bool = True
    """A PE skips its multiply (operand isolation) when the activation is zero; it only changes
    the energy, and only when the simulator's counters say how many activations are zero."""

    def __post_init__(self):
        _check_int("array", "rows", self.rows, 1, 1 << 14)
        _check_int("array", "cols", self.cols, 1, 1 << 14)
        _check_enum(self, "array", "dataflow", Dataflow)
        check_positive("array", "clock_mhz", self.clock_mhz)
        _check_int("array", "operand_bits", self.operand_bits, 2, 16)
        _check_int("array", "accumulator_bits", self.accumulator_bits, 8, 64)
        if not isinstance(self.zero_gating, bool):
            raise ConfigError(f"array.zero_gating: must be true or false, got {self.zero_gating!r}")


@dataclass(frozen=True)
class MemoryConfig:
    """On-chip SRAM buffers (each double-buffered: half computes while half fills) and DRAM."""

    ifmap_sram_kib: float = 256.0
    filter_sram_kib: float = 256.0
    ofmap_sram_kib: float = 256.0
    dram_bytes_per_cycle: float = 16.0
    model: MemoryModel = MemoryModel.FOLD

    def __post_init__(self):
        for f in fields(self):
            if f.name != "model":
                check_positive("memory", f.name, getattr(self, f.name))
        _check_enum(self, "memory", "model", MemoryModel)

    @property
    def ifmap_bytes(self) -> int:
        return int(self.ifmap_sram_kib * KIB)

    @property
    def filter_bytes(self) -> int:
        return int(self.filter_sram_kib * KIB)

    @property
    def ofmap_bytes(self) -> int:
        return int(self.ofmap_sram_kib * KIB)


@dataclass(frozen=True)
class VectorConfig:
    """The vector unit that runs pooling and residual adds, ``lanes`` element operations a cycle."""

    lanes: int = 32

    def __post_init__(self):
        _check_int("vector", "lanes", self.lanes, 1, 1 << 14)


class TableResidency(enum.Enum):
    """Where the border tables live between uses."""

    PER_LAYER = "per_layer"
    """The unit holds one layer's table: each layer that uses borders loads its table from DRAM
    before it starts, on every inference."""
    RESIDENT = "resident"
    """The unit holds every layer's table and keeps it across inferences: loaded once, so an
    inference reads no table from DRAM and waits for no load (the storage is the sum of all tables)."""


class TableStorage(enum.Enum):
    """What the border tables are stored in (``border_unit.py`` costs both)."""

    SRAM = "sram"
    """Single-ported SRAM banks, one row (a border group's entries) per word, rows interleaved
    across ``read_ports`` banks."""
    REGISTERS = "registers"
    """Flip-flops, one clock gate per row, and ``read_ports`` row-wide read multiplexers."""


@dataclass(frozen=True)
class BorderUnitConfig:
    """The requantizer's output stage: ``lanes`` elements a cycle, each through one comparator
    of ``frac_bits + 1`` bits (F, docs/contract.md (8)) and one incrementer; ``pipeline_stages`` is the
    latency the border lookup adds over round-to-nearest, once per layer. The tables live in
    ``storage`` with ``read_ports`` row reads a cycle (SRAM banks or register read ports)."""

    frac_bits: int = 8
    lanes: int = 32
    pipeline_stages: int = 1
    residency: TableResidency = TableResidency.PER_LAYER
    storage: TableStorage = TableStorage.SRAM
    read_ports: int = 1

    def __post_init__(self):
        _check_int("border_unit", "frac_bits", self.frac_bits, 1, 30)
        _check_int("border_unit", "lanes", self.lanes, 1, 1 << 14)
        _check_int("border_unit", "pipeline_stages", self.pipeline_stages, 0, 64)
        _check_enum(self, "border_unit", "residency", TableResidency)
        _check_enum(self, "border_unit", "storage", TableStorage)
        _check_int("border_unit", "read_ports", self.read_ports, 1, 1 << 10)


@dataclass(frozen=True)
class AcceleratorConfig:
    """The whole accelerator; ``name`` labels reports."""

    name: str = "default"
    array: ArrayConfig = field(default_factory=ArrayConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    vector: VectorConfig = field(default_factory=VectorConfig)
    border_unit: BorderUnitConfig = field(default_factory=BorderUnitConfig)
    costs: TechnologyCosts = field(default_factory=TechnologyCosts)

    def __post_init__(self):
        for f in fields(self):
            if f.name != "name" and not isinstance(getattr(self, f.name), SECTIONS[f.name]):
                raise ConfigError(f"{f.name}: expected a {SECTIONS[f.name].__name__}, got {type(getattr(self, f.name)).__name__}")

    def with_dataflow(self, dataflow: Dataflow) -> "AcceleratorConfig":
        return AcceleratorConfig(self.name, ArrayConfig(**{**_as_dict(self.array), "dataflow": dataflow}),
                                 self.memory, self.vector, self.border_unit, self.costs)


SECTIONS = {"array": ArrayConfig, "memory": MemoryConfig, "vector": VectorConfig,
            "border_unit": BorderUnitConfig, "costs": TechnologyCosts}


def _as_dict(section) -> dict:
    return {f.name: getattr(section, f.name) for f in fields(section)}


def config_from_dict(data: dict, source: str = "config") -> AcceleratorConfig:
    """Build a config from parsed TOML; ``source`` names the file in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table at the top level")
    unknown = set(data) - set(SECTIONS) - {"name"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; expected {sorted(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        values = data.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        known = {f.name for f in fields(cls)}
        bad = set(values) - known
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {sorted(bad)} in [{name}]; expected some of {sorted(known)}")
        try:
            sections[name] = cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name must be a non-empty string")
    return AcceleratorConfig(name=name, **sections)


def load_config(path: str | Path) -> AcceleratorConfig:
    """Read a TOML accelerator config (parsed as data only: nothing in it is executed)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        # tomllib decodes the bytes itself; a file that is not UTF-8 fails there, not in TOML.
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return config_from_dict(data, str(path))


def shipped_config(name: str) -> AcceleratorConfig:
    """One of the configs shipped in ``hw_models/configs`` (``default``, ``scalesim_32x32``)."""
    resource = resources.files("hw_models") / "configs" / f"{name}.toml"
    if not resource.is_file():
        raise ConfigError(f"no shipped config named '{name}'")
    with resource.open("rb") as handle:
        return config_from_dict(tomllib.load(handle), f"{name}.toml")


def default_config() -> AcceleratorConfig:
    """The config used when none is given: ``configs/default.toml``."""
    return shipped_config("default")
