"""Accelerator area: the parts scale with what they count; RTN and AQuant differ only by the border unit."""

import pytest

from hw_models.area import accelerator_area
from hw_models.border_unit import border_unit_area
from hw_models.config import AcceleratorConfig, ArrayConfig
from hw_models.layers import program_layers


def test_area_parts(small_program):
    """The PE array scales with R x C, and the border overhead is the unit's storage, read ports,
    row registers, comparators and selects."""
    layers = program_layers(small_program)
    small, big = AcceleratorConfig(array=ArrayConfig(8, 8)), AcceleratorConfig(array=ArrayConfig(16, 16))
    unit = border_unit_area(layers, small)
    a, b = accelerator_area(small, unit), accelerator_area(big, border_unit_area(layers, big))
    assert b.pe_array == pytest.approx(4 * a.pe_array)
    assert a.sram == b.sram and a.border_overhead == b.border_overhead
    assert a.border_overhead == pytest.approx(unit.storage_um2 + unit.read_ports_um2 + unit.row_registers_um2
                                              + unit.comparators_um2 + unit.selects_um2)
    rtn = accelerator_area(small, border_unit_area([], small))
    assert rtn.border_overhead == 0
    assert a.total - rtn.total == pytest.approx(a.border_overhead)
