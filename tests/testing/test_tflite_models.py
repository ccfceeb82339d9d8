"""The zoo's architectures as int8 ``.tflite`` models: they keep the zoo's layer structure, and
``aquant verify MODEL.tflite --against litert`` finds every tensor equal to LiteRT's reference
kernels on both backends, per-tensor and per-channel; where LiteRT's other kernels differ from its
reference kernels on them is pinned."""

import json
from collections import Counter

import numpy as np
import pytest

from aquant_sim.cli import main
from aquant_sim.importers.tflite_model import import_tflite
from aquant_sim.program import OpKind
from aquant_sim.testing.tflite_models import zoo_cnn

ZOO = (("resnet20", 32), ("resnet18", 30), ("resnet18", 32), ("mobilenetv2", 32))
"""Each architecture at the zoo's default width (ResNet-20 16, ResNet-18 64, MobileNetV2 1.0) and
an input size: 32 x 32 x 3, and ResNet-18 also on 30 x 30 x 3. Its 3x3/2 SAME max pooling of the
stem output (15 x 15 or 16 x 16) pads 1 before and 1 after on 30 x 30, 0 before and 1 after on
32 x 32 (the program's ``padding_end``)."""

MAX_POOL_PADDING = {30: ((1, 1), (1, 1)), 32: ((0, 0), (1, 1))}
"""ResNet-18's max pooling as imported, by input size: (``padding``, ``padding_end``)."""

STRUCTURE = {
    "resnet20": {OpKind.CONV2D: 21, OpKind.ADD: 9, OpKind.GLOBAL_AVGPOOL: 1, OpKind.FLATTEN: 1, OpKind.LINEAR: 1},
    "resnet18": {OpKind.CONV2D: 20, OpKind.MAXPOOL2D: 1, OpKind.ADD: 8, OpKind.GLOBAL_AVGPOOL: 1, OpKind.FLATTEN: 1,
                 OpKind.LINEAR: 1},
    "mobilenetv2": {OpKind.CONV2D: 52, OpKind.ADD: 10, OpKind.GLOBAL_AVGPOOL: 1, OpKind.FLATTEN: 1, OpKind.LINEAR: 1},
}
"""The program ops each model imports as: the zoo's convs (3 and 2 shortcut convs in the
ResNets; 17 of MobileNetV2's are depthwise), residual adds and head, as its ONNX export has."""


@pytest.fixture(scope="module", params=[(name, size, per_channel) for name, size in ZOO for per_channel in (False, True)],
                ids=[f"{name}-{size}-{'per-channel' if per_channel else 'per-tensor'}" for name, size in ZOO
                     for per_channel in (False, True)])
def verified(request, tmp_path_factory):
    """(architecture, input size, per_channel, model path, exit code, JSON report) of one
    ``verify --against litert`` run over 3 calibration samples and the same 3 scaled by 1.5 (so
    that some levels saturate)."""
    name, size, per_channel = request.param
    data, x = zoo_cnn(name, per_channel, batch=3, size=size)
    folder = tmp_path_factory.mktemp(name)
    (folder / "model.tflite").write_bytes(data)
    np.save(folder / "x.npy", np.concatenate([x, 1.5 * x]))
    code = main(["verify", str(folder / "model.tflite"), "--against", "litert", "--input", str(folder / "x.npy"),
                 "--json", str(folder / "report.json")])
    return name, size, per_channel, folder / "model.tflite", code, json.loads((folder / "report.json").read_text())


def test_zoo_structure_is_kept(verified):
    """The model imports as the zoo's layers: conv, add, pooling and head counts; MobileNetV2's 17
    depthwise convs have groups equal to their channels; every conv and the FC are quantized per
    channel exactly when asked; ResNet-18's max pooling is padded as TFLite's SAME pads it."""
    name, size, per_channel, path, _, _ = verified
    program = import_tflite(path).program
    assert Counter(op.kind for op in program.ops) == STRUCTURE[name]
    if name == "resnet18":
        assert [(op.padding, op.padding_end) for op in program.ops if op.kind is OpKind.MAXPOOL2D] == [MAX_POOL_PADDING[size]]
    convs = [op for op in program.ops if op.kind is OpKind.CONV2D]
    assert sum(op.groups > 1 for op in convs) == (17 if name == "mobilenetv2" else 0)
    scales = [len(set(op.weight_scale.tolist())) for op in program.ops if op.kind in (OpKind.CONV2D, OpKind.LINEAR)]
    assert (min(scales) > 1) if per_channel else (max(scales) == 1), scales


def test_zoo_verifies_bit_exact_against_litert_reference_kernels(verified):
    """Exit 0 and 0 differing elements on every tensor LiteRT has (34 in ResNet-20, 33 in
    ResNet-18 at both sizes, 66 in MobileNetV2), on both backends; the output is not a constant."""
    name, _, _, _, code, report = verified
    assert code == 0 and report["equal"]
    tensors = {"resnet20": 34, "resnet18": 33, "mobilenetv2": 66}[name]
    assert {backend: len(checks) for backend, checks in report["checks"].items()} == {"numba": tensors, "reference": tensors}
    assert [c["differing"] for checks in report["checks"].values() for c in checks] == [0] * 2 * tensors


def _differences(comparisons) -> tuple[str, int, int]:
    differing = [c for c in comparisons if c["differing"]]
    return differing[0]["layer"], len(differing), sum(c["differing"] for c in differing)


OTHER_KERNELS = {
    ("resnet20", 32, False): {"optimized": ("stages.0.0.conv2", 31, 196789), "default": ("stem.0", 33, 371659)},
    ("resnet20", 32, True): {"optimized": ("stages.0.0.conv2", 31, 175937), "default": ("stem.0", 33, 349788)},
    ("resnet18", 30, False): {"optimized": ("stages.0.0.conv2", 29, 31373), "default": ("stem.0", 32, 55220)},
    ("resnet18", 30, True): {"optimized": ("stages.0.0.conv2", 29, 28384), "default": ("stem.0", 32, 48395)},
    ("resnet18", 32, False): {"optimized": ("stages.0.0.conv2", 29, 37333), "default": ("stem.0", 32, 58342)},
    ("resnet18", 32, True): {"optimized": ("stages.0.0.conv2", 29, 30532), "default": ("stem.0", 32, 55864)},
    ("mobilenetv2", 32, False): {"optimized": ("features.3.body.3", 63, 2650594), "default": ("features.0", 65, 3151407)},
    ("mobilenetv2", 32, True): {"optimized": ("features.3.body.3", 63, 2522695), "default": ("features.0", 65, 2973811)},
}
"""Measured with ai-edge-litert 2.3.0 on this project's x86-64 machine, per model, input size and
weight granularity (per channel: True): the first tensor where LiteRT's optimized builtin kernels and its
default kernels (XNNPACK) differ from its reference kernels, how many of the model's tensors
differ, and how many elements in all. The optimized kernels first differ at the first conv
without a fused RELU/RELU6 (ResNet's second 3x3 conv, MobileNetV2's first 1x1 projection); the
default kernels at the first conv, and on every tensor after the input."""


def test_litert_other_kernels_differ_where_measured(verified):
    """Pinned: where LiteRT's optimized and default kernels first differ from its reference
    kernels on the zoo models, on how many tensors, and by how many elements."""
    name, size, per_channel, _, _, report = verified
    others = report["litert_kernels_vs_reference"]
    assert {kernels: _differences(others[kernels]) for kernels in ("optimized", "default")} == \
        OTHER_KERNELS[name, size, per_channel]

