"""The quantized model's configuration."""

import pytest

from aquant_sim.errors import ConfigError
from aquant_sim.frontend.qmodel import QuantConfig


@pytest.mark.parametrize("kwargs, field", [
    ({"weight_bits": 1}, "weight_bits"), ({"act_bits": 17}, "act_bits"), ({"frac_bits": 0}, "frac_bits"),
    ({"granularity": "channel"}, "granularity"), ({"accumulator_bits": 33}, "accumulator_bits"),
    ({"overflow": "wrap"}, "overflow"),
])
def test_bad_quant_config_is_a_config_error(kwargs, field):
    """An out-of-range width, or a granularity or overflow policy that is not its Enum, raises
    ConfigError naming the field."""
    with pytest.raises(ConfigError, match=f"quant config: {field}"):
        QuantConfig(**kwargs)
