"""The model zoo by name: :class:`ModelName` and :func:`build_model`."""

from __future__ import annotations

import enum
import inspect

from torch import nn

from aquant_sim.errors import ConfigError
from aquant_sim.models.mobilenetv2 import MobileNetV2
from aquant_sim.models.resnet import resnet18, resnet20


class ModelName(str, enum.Enum):
    """Models of the zoo; the value is the name used on the command line and in weight files."""

    RESNET20 = "resnet20"
    RESNET18 = "resnet18"
    MOBILENETV2 = "mobilenetv2"


_BUILDERS = {ModelName.RESNET20: resnet20, ModelName.RESNET18: resnet18, ModelName.MOBILENETV2: MobileNetV2}

BUILD_ATTRIBUTE = "aquant_build"
"""Attribute of a built model holding its build arguments (name, channels, classes, options),
which :func:`aquant_sim.models.weights.save_weights` records so that a weight file can rebuild
its model."""


def model_name(name: ModelName | str) -> ModelName:
    """The :class:`ModelName` of a name, or a :class:`ConfigError` listing the known names."""
    try:
        return ModelName(name)
    except ValueError:
        known = ", ".join(member.value for member in ModelName)
        raise ConfigError(f"unknown model {name!r}; choose one of {known}") from None


def model_options(name: ModelName | str) -> dict[str, object]:
    """The options of a model and their defaults, e.g. ``{"width": 16}`` for ResNet-20."""
    parameters = inspect.signature(_BUILDERS[model_name(name)]).parameters
    return {key: p.default for key, p in parameters.items() if key not in ("in_channels", "num_classes")}


def build_model(name: ModelName | str, in_channels: int = 1, num_classes: int = 10, **options) -> nn.Module:
    """A freshly initialised model of the zoo (torch's default initialisation, seeded by the caller).

    Options per model: ``resnet20(width=16)``, ``resnet18(width=64)``, ``mobilenetv2(width_mult=1.0)``.
    """
    name = model_name(name)
    known = model_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"model {name.value}: unknown options {unknown}; it takes {sorted(known)}")
    if in_channels < 1 or num_classes < 1:
        raise ConfigError(f"model {name.value}: in_channels and num_classes must be positive, got {in_channels} and {num_classes}")
    for key, value in options.items():
        # An int option (a channel count) takes ints only; a float option (a multiplier) takes both.
        kind = int if isinstance(known[key], int) else (int, float)
        if not isinstance(value, kind) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"model {name.value}: option {key} must be a positive {type(known[key]).__name__}, got {value!r}")
    model = _BUILDERS[name](in_channels, num_classes, **options)
    setattr(model, BUILD_ATTRIBUTE, {"name": name.value, "in_channels": in_channels, "num_classes": num_classes, "options": {**known, **options}})
    return model
