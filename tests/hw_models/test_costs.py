"""The cost table reproduces its published points and scales monotonically."""

import pytest

from aquant_sim.errors import ConfigError
from hw_models.costs import KIB, TechnologyCosts

COSTS = TechnologyCosts()


def test_published_points_are_reproduced():
    """The scaling laws pass exactly through Horowitz's 45 nm figures."""
    assert COSTS.add_pj(8) == pytest.approx(0.03, rel=1e-12) and COSTS.add_pj(32) == pytest.approx(0.1, rel=1e-12)
    assert COSTS.mul_pj(8, 8) == pytest.approx(0.2, rel=1e-12) and COSTS.mul_pj(32, 32) == pytest.approx(3.1, rel=1e-12)
    assert 64 * COSTS.sram_pj_per_bit(8 * KIB) == pytest.approx(10.0, rel=1e-12)
    assert 64 * COSTS.sram_pj_per_bit(32 * KIB) == pytest.approx(20.0, rel=1e-12)
    assert COSTS.add_um2(32) == pytest.approx(137.0) and COSTS.mul_um2(32, 32) == pytest.approx(3495.0)
    assert 1300 <= COSTS.dram_access64_pj <= 2600


def test_costs_grow_with_width_and_size():
    """Wider operands and bigger SRAMs never cost less."""
    for bits in range(1, 40):
        assert 0 < COSTS.add_pj(bits) <= COSTS.add_pj(bits + 1)
        assert 0 < COSTS.mul_pj(bits, 4) < COSTS.mul_pj(bits + 1, 4)
        assert 0 < COSTS.add_um2(bits) <= COSTS.add_um2(bits + 1)
    assert COSTS.sram_pj_per_bit(KIB) < COSTS.sram_pj_per_bit(1024 * KIB)


@pytest.mark.parametrize("field, value", [("add8_pj", 0.0), ("mul32_pj", float("nan")), ("sram_overhead", True),
                                          ("dram_access64_pj", "1950")])
def test_bad_cost_names_the_field(field, value):
    """A cost that is not a finite positive number raises ConfigError naming costs.<field>."""
    with pytest.raises(ConfigError, match=rf"costs\.{field}: must be a finite positive number"):
        TechnologyCosts(**{field: value})


def test_inverted_scaling_is_refused():
    """A 32-bit figure below its 8-bit one is refused, since the scaling laws would invert."""
    with pytest.raises(ConfigError, match="scaling laws invert"):
        TechnologyCosts(add32_pj=0.01)


def test_adder_and_multiplier_areas_against_their_derivation():
    """The quoted adder areas are n full adders (Nangate FA_X1) within 6%; the 8-bit multiplier's
    is its n (n - 1) full adders plus less than one FA_X1 per partial-product gate; the 32-bit
    one lies below an array's full adders (the docstring's Booth-recoding remark)."""
    c = TechnologyCosts()
    assert abs(8 * c.full_adder_um2 / c.add8_um2 - 1) < 0.06
    assert abs(32 * c.full_adder_um2 / c.add32_um2 - 1) < 0.01
    gates8 = c.mul8_um2 - 8 * 7 * c.full_adder_um2
    assert 0 < gates8 / 64 < c.full_adder_um2
    assert 0.5 * 32 * 31 * c.full_adder_um2 < c.mul32_um2 < 32 * 31 * c.full_adder_um2
