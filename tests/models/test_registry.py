"""The model registry, and that every model is capturable by torch.fx with only allowed layers."""

import operator

import pytest
import torch
from torch import fx, nn

from aquant_sim.errors import ConfigError
from aquant_sim.models import ModelName, build_model, model_options

ALLOWED_MODULES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)
ALLOWED_FUNCTIONS = (operator.add, torch.add, torch.flatten)

SMALL = {ModelName.RESNET20: {"width": 8}, ModelName.RESNET18: {"width": 8}, ModelName.MOBILENETV2: {"width_mult": 0.25}}


@pytest.mark.parametrize("name", list(ModelName))
def test_traceable_with_allowed_layers_only(name):
    """symbolic_trace captures the whole model, every node is an allowed layer or function, and the
    traced graph computes what the model computes."""
    model = build_model(name, in_channels=3, num_classes=10, **SMALL[name]).eval()
    graph_module = fx.symbolic_trace(model)
    modules = dict(graph_module.named_modules())
    for node in graph_module.graph.nodes:
        assert node.op in ("placeholder", "output", "call_module", "call_function"), node.format_node()
        if node.op == "call_module":
            module = modules[node.target]
            assert isinstance(module, ALLOWED_MODULES), f"{node.target}: {type(module).__name__}"
            if isinstance(module, nn.AdaptiveAvgPool2d):
                assert module.output_size in (1, (1, 1))
        if node.op == "call_function":
            assert node.target in ALLOWED_FUNCTIONS, node.format_node()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(graph_module(x), model(x))


@pytest.mark.parametrize("name", ["resnet20", ModelName.RESNET20])
def test_names_and_enum_both_build(name):
    """A model is built from its enum member or its string value, and records its build arguments."""
    model = build_model(name, in_channels=2, num_classes=4)
    assert model.aquant_build == {"name": "resnet20", "in_channels": 2, "num_classes": 4, "options": {"width": 16}}


def test_unknown_name_lists_the_known_ones():
    """An unknown model name is a ConfigError naming it and every known model."""
    with pytest.raises(ConfigError, match=r"'vgg16'.*resnet20, resnet18, mobilenetv2"):
        build_model("vgg16")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("resnet20", {"width_mult": 0.5}, "unknown options"),
        ("resnet20", {"width": 8.5}, "positive int"),
        ("resnet18", {"width": 0}, "positive int"),
        ("mobilenetv2", {"width_mult": -1.0}, "positive float"),
        ("mobilenetv2", {"width_mult": True}, "positive float"),
    ],
)
def test_bad_options(name, options, message):
    """Unknown options and non-positive or mistyped widths are ConfigErrors naming the option."""
    with pytest.raises(ConfigError, match=message):
        build_model(name, **options)


def test_bad_channel_counts():
    """Zero input channels or classes are a ConfigError."""
    with pytest.raises(ConfigError, match="in_channels and num_classes"):
        build_model("resnet20", in_channels=0)


def test_model_options_defaults():
    """Each model reports its options with their defaults."""
    assert {name: model_options(name) for name in ModelName} == {
        ModelName.RESNET20: {"width": 16},
        ModelName.RESNET18: {"width": 64},
        ModelName.MOBILENETV2: {"width_mult": 1.0},
    }
