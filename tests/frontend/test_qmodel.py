"""The quantized model's configuration."""

import pytest

from aquant_sim.errors import ConfigError
from aquant_sim.frontend.qmodel import QuantConfig


@pytest.mark.parametrize("kwargs, field", [
    ({"weight_bits": 1}, "weight_bits"), ({"act_bits": 17}, "act_bits"), ({"frac_bits": 0}, "frac_bits"),
    ({"granularity": "channel"}, "granularity"),
])
def test_bad_quant_config_is_a_config_error(kwargs, field):
    """An out-of-range width or a granularity that is not the Enum raises ConfigError naming the field."""
    with pytest.raises(ConfigError, match=f"quant config: {field}"):
        QuantConfig(**kwargs)
