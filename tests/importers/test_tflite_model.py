"""The TFLite importer: int8 models written with the flatbuffer builders are bit-exact against
LiteRT's reference kernels on both backends; LiteRT's other kernels differ where measured;
unsupported operators and damaged files fail with one clear line."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aquant_sim.errors import AquantError, ArtifactError, UnsupportedError
from aquant_sim.importers.litert_run import Kernels, quantize_input, run_tensors
from aquant_sim.importers.tflite_model import import_tflite
from aquant_sim.program import OpKind
from aquant_sim.rounding import RequantVariant
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.testing.tflite_models import TfliteWriter, logistic_model, small_cnn


@pytest.fixture(scope="module", params=[True, False], ids=["per-channel", "per-tensor"])
def model(request, tmp_path_factory):
    """The small CNN as a file, its calibration batch and its imported program."""
    data, x = small_cnn(per_channel=request.param)
    path = tmp_path_factory.mktemp("tflite") / "cnn.tflite"
    path.write_bytes(data)
    return path, x, import_tflite(path)


@pytest.fixture(scope="module")
def litert_runs(model):
    """LiteRT's levels of every shared tensor, for each kernel set."""
    _, x, imported = model
    levels = quantize_input(x, imported.program.input_tensor.quant)
    return {kernels: run_tensors(imported, levels, kernels) for kernels in Kernels}


def _differing(imported, a, b) -> dict[str, int]:
    return {name: int(np.count_nonzero(np.asarray(a[name]) != np.asarray(b[name]))) for name in imported.tensor_index}


def test_every_operator_is_translated(model):
    """Every TFLite operator becomes its program op with TFLite's own rule: GEMMLOWP convs, FLOAT64
    fully connected, TFLITE_ADD, TFLITE_AVGPOOL, TFLITE_MEAN, and a clamp for the RELU6 whose
    range is narrower than int8."""
    _, _, imported = model
    kinds = [(op.kind, None if getattr(op, "requant", None) is None else op.requant.variant) for op in imported.program.ops]
    assert kinds == [
        (OpKind.CONV2D, RequantVariant.GEMMLOWP), (OpKind.CONV2D, RequantVariant.GEMMLOWP), (OpKind.CLAMP, None),
        (OpKind.CONV2D, RequantVariant.GEMMLOWP), (OpKind.ADD, RequantVariant.TFLITE_ADD), (OpKind.MAXPOOL2D, None),
        (OpKind.CONV2D, RequantVariant.GEMMLOWP), (OpKind.AVGPOOL2D, RequantVariant.TFLITE_AVGPOOL),
        (OpKind.GLOBAL_AVGPOOL, RequantVariant.TFLITE_MEAN), (OpKind.FLATTEN, None), (OpKind.LINEAR, RequantVariant.FLOAT64),
    ]
    assert imported.internal == {"dw/before_activation"}
    assert imported.program.ops[1].groups == 8 and imported.program.ops[1].padding_end == (1, 1)


@pytest.mark.parametrize("backend", [Backend.NUMBA, Backend.REFERENCE], ids=["numba", "reference"])
def test_bit_exact_against_litert_reference_kernels(model, litert_runs, backend):
    """0 differing elements on every tensor LiteRT has (11 of them), per-tensor and per-channel."""
    _, _, imported = model
    reference = litert_runs[Kernels.REFERENCE]
    result = Simulator(imported.program, backend).run(reference[imported.program.input].astype(np.int32), keep_tensors=True)
    differing = _differing(imported, reference, result.tensors)
    assert len(differing) == 11 and sum(differing.values()) == 0, differing


def test_litert_other_kernels_differ_where_measured(model, litert_runs):
    """Pinned: LiteRT's optimized builtin kernels agree with its reference kernels on the 3x3 conv
    and the depthwise conv and first differ at the 1x1 conv; its default kernels (XNNPACK) already
    differ at the first conv. Neither is what the importer models."""
    _, _, imported = model
    reference = litert_runs[Kernels.REFERENCE]
    optimized = _differing(imported, reference, litert_runs[Kernels.OPTIMIZED])
    default = _differing(imported, reference, litert_runs[Kernels.DEFAULT])
    assert optimized["input"] == optimized["conv1"] == optimized["dw"] == 0 and optimized["conv2"] > 0, optimized
    assert default["input"] == 0 and default["conv1"] > 0, default


def test_unsupported_operator_is_named(tmp_path):
    """An operator outside the supported set is refused with its index and op type."""
    path = tmp_path / "logistic.tflite"
    path.write_bytes(logistic_model())
    with pytest.raises(UnsupportedError, match=r"operator 0 \(LOGISTIC\): op type LOGISTIC is not supported"):
        import_tflite(path)


def test_zero_stride_is_refused(tmp_path):
    """A pooling stride of 0 (found by fuzzing: it divided by zero computing SAME padding) is
    refused with the operator named."""
    import tflite

    writer = TfliteWriter()
    x = writer.tensor("x", (1, 4, 4, 2), scale=0.05, zero_point=0)
    y = writer.tensor("y", (1, 2, 2, 2), scale=0.05, zero_point=0)
    writer.operator(tflite.BuiltinOperator.MAX_POOL_2D, (x,), (y,), tflite.BuiltinOptions.Pool2DOptions,
                    Padding=tflite.Padding.SAME, StrideW=2, StrideH=0, FilterWidth=2, FilterHeight=2)
    path = tmp_path / "stride0.tflite"
    path.write_bytes(writer.serialize([x], [y]))
    with pytest.raises(UnsupportedError, match=r"operator 0 \(MAX_POOL_2D\): stride \(0, 2\) must be in \[1, 65536\]"):
        import_tflite(path)


def test_buffer_smaller_than_its_shape_is_refused(model, tmp_path):
    """A weights buffer that does not hold its declared shape is an ArtifactError naming the tensor,
    raised before anything of that size is allocated."""
    path, _, _ = model
    data = bytearray(path.read_bytes())
    import tflite

    m = tflite.Model.GetRootAs(bytes(data), 0)
    tensor = m.Subgraphs(0).Tensors(1)  # conv1/weights, (8, 3, 3, 3)
    shape_vector = tensor._tab.Vector(tensor._tab.Offset(4))
    data[shape_vector : shape_vector + 4] = (1 << 20).to_bytes(4, "little")  # declare 2^20 output channels
    bad = tmp_path / "big.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"tensor 1 'conv1/weights' declares shape \(1048576, 3, 3, 3\)"):
        import_tflite(bad)


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "x.tflite"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError, match="not a TFLite model"):
        import_tflite(path)


@pytest.fixture(scope="module")
def valid_bytes():
    return small_cnn(per_channel=True, batch=1)[0]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_damaged_files_fail_cleanly(valid_bytes, tmp_path_factory, data):
    """Fuzz: a valid model with bytes flipped or cut short either imports or fails with one
    AquantError of one line, within a second; a model that imports simulates one sample without
    error."""
    raw = bytearray(valid_bytes)
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            i = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[i] = data.draw(st.integers(0, 255), label="byte")
    path = tmp_path_factory.mktemp("fuzz") / "m.tflite"
    path.write_bytes(bytes(raw))
    start = time.perf_counter()
    try:
        imported = import_tflite(path)
    except AquantError as error:
        assert "\n" not in str(error) and str(error), repr(error)
        imported = None
    assert time.perf_counter() - start < 1.0
    if imported is not None:
        quant = imported.program.input_tensor.quant
        x = np.full((1, *imported.program.input_tensor.shape), quant.zero_point, dtype=np.int32)
        Simulator(imported.program, Backend.NUMBA).run(x)
