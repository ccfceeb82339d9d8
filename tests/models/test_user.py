"""A user's own model by ``package.module:factory`` (aquant_sim/models/user.py)."""

import pytest
from torch import nn

from aquant_sim.errors import ConfigError
from aquant_sim.models.user import build_user_model, is_factory_spec

SOURCE = '''
from torch import nn

def build():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

def not_a_model():
    return 42

VALUE = 1
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_nets"


def test_factory_builds_the_model(user_module):
    """module:factory imports the module and returns what the factory builds."""
    assert is_factory_spec(f"{user_module}:build") and not is_factory_spec("resnet20")
    assert isinstance(build_user_model(f"{user_module}:build"), nn.Sequential)


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:build", "cannot import module 'no_such_module_xyz'"),
    ("my_nets:missing", "has no function 'missing'"),
    ("my_nets:VALUE", "has no function 'VALUE'"),
    ("my_nets:not_a_model", "returned int, not a torch.nn.Module"),
    ("my_nets:", "expected package.module:factory"),
])
def test_bad_specs_are_named(user_module, spec, message):
    """Each way a spec can fail is a ConfigError naming --model and what went wrong."""
    with pytest.raises(ConfigError, match=message):
        build_user_model(spec)
