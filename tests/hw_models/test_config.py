"""Accelerator configs: TOML loading, validation naming the field, shipped configs."""

import pytest

from aquant_sim.errors import ConfigError
from hw_models.config import AcceleratorConfig, ArrayConfig, Dataflow, MemoryConfig, MemoryModel, config_from_dict, default_config, load_config, shipped_config
from hw_models.costs import TechnologyCosts


def test_default_toml_spells_out_the_dataclass_defaults():
    """The shipped default.toml and the dataclass defaults describe the same accelerator."""
    assert default_config() == AcceleratorConfig(name="default")


def test_scalesim_example_config():
    """The SCALE-Sim-like example is a 32x32 array with 64 KiB buffers and 10 bytes a cycle."""
    config = shipped_config("scalesim_32x32")
    assert (config.array.rows, config.array.cols, config.memory.ifmap_bytes, config.memory.dram_bytes_per_cycle) == (32, 32, 65536, 10)


def test_toml_round_trip(tmp_path):
    """A TOML file sets the fields it names and leaves the others at their defaults."""
    path = tmp_path / "hw.toml"
    path.write_text('name = "tiny"\n[array]\nrows = 4\ncols = 8\ndataflow = "IS"\n[memory]\nofmap_sram_kib = 2\nmodel = "tiling"\n[costs]\ndram_access64_pj = 1300\n')
    config = load_config(path)
    assert config.name == "tiny"
    assert (config.array.rows, config.array.cols, config.array.dataflow) == (4, 8, Dataflow.IS)
    assert config.memory.ofmap_bytes == 2048 and config.memory.ifmap_bytes == MemoryConfig().ifmap_bytes
    assert config.memory.model is MemoryModel.TILING and MemoryConfig().model is MemoryModel.FOLD
    assert config.costs.dram_access64_pj == 1300 and config.costs.mul8_pj == TechnologyCosts().mul8_pj
    assert config.with_dataflow(Dataflow.WS).array.dataflow is Dataflow.WS


@pytest.mark.parametrize("text, where", [
    ("[array]\nrows = 0\n", "array.rows"),
    ("[array]\nrows = \"32\"\n", "array.rows"),
    ("[array]\ndataflow = \"xs\"\n", "array.dataflow"),
    ("[memory]\nmodel = \"lru\"\n", "memory.model: must be one of fold, tiling"),
    ("[border_unit]\nresidency = \"rom\"\n", "border_unit.residency: must be one of per_layer, resident"),
    ("[border_unit]\nstorage = \"dram\"\n", "border_unit.storage: must be one of sram, registers"),
    ("[border_unit]\nread_ports = 0\n", "border_unit.read_ports"),
    ("[array]\nzero_gating = 1\n", "array.zero_gating"),
    ("[memory]\ndram_bytes_per_cycle = -1\n", "memory.dram_bytes_per_cycle"),
    ("[memory]\nifmap_sram_kib = nan\n", "memory.ifmap_sram_kib"),
    ("[border_unit]\nfrac_bits = 0\n", "border_unit.frac_bits"),
    ("[costs]\nmul8_pj = 0\n", "costs.mul8_pj"),
    ("[costs]\nadd32_pj = 0.01\n", "costs"),
    ("[array]\nrowz = 4\n", "rowz"),
    ("[arrays]\nrows = 4\n", "arrays"),
    ("[array\nrows = 4\n", "not valid TOML"),
    ("array = 3\n", "[array] must be a table"),
])
def test_malformed_config_names_the_field(tmp_path, text, where):
    """Every malformed config raises ConfigError naming the file and the offending field."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="bad.toml") as error:
        load_config(path)
    assert where in str(error.value)


def test_non_utf8_config(tmp_path):
    """A config file that is not UTF-8 raises ConfigError naming the file, not UnicodeDecodeError."""
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe[array]\n")
    with pytest.raises(ConfigError, match="bin.toml: not valid TOML"):
        load_config(path)


def test_missing_file_and_construction_errors(tmp_path):
    """A missing file and a bad value given in Python are ConfigErrors too."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="array.cols"):
        ArrayConfig(cols=-3)
    with pytest.raises(ConfigError, match="expected a table"):
        config_from_dict([1, 2])
    with pytest.raises(ConfigError, match="no shipped config"):
        shipped_config("nonexistent")
