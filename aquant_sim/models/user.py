"""A user's own model named on the command line: ``package.module:factory``.

``aquant calibrate --model mypackage.nets:build --weights W.safetensors`` imports
``mypackage.nets`` (from the current folder or the installed packages), calls ``build()`` with
no arguments and loads the state dict of ``--weights`` into what it returns, strictly
(aquant_sim/models/state_dict.py). Importing the module runs the user's own code, as any import
does; the weights are read without running any.
"""

from __future__ import annotations

import importlib
import sys

from torch import nn

from aquant_sim.errors import ConfigError


def is_factory_spec(name: str) -> bool:
    """Whether a --model value names a factory (``module:function``) rather than a zoo model."""
    return ":" in name


def build_user_model(spec: str) -> nn.Module:
    """Import ``module`` of ``module:factory`` and return ``factory()``, an ``nn.Module``."""
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise ConfigError(f"--model {spec}: expected package.module:factory")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current folder, as `python -m` would have it
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"--model {spec}: cannot import module {module_name!r} ({error})") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ConfigError(f"--model {spec}: module {module_name!r} has no function {factory_name!r}")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {spec}: {factory_name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model
