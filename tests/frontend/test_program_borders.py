"""Border learning for an imported program: the learned tables are F-bit tables of the chosen
granularity, the tuned program's torch exact forward equals the simulator, and the teacher is the
unrounded program."""

import numpy as np
import pytest
import torch

from aquant_sim.errors import ConfigError, UnsupportedError
from aquant_sim.frontend.program_borders import BorderTuningConfig, Mode, ProgramSurrogate, learn_borders
from aquant_sim.frontend.program_exact import exact_tensors
from aquant_sim.importers.border_requant import to_border_requantizers, with_border_tables
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.importers.tflite_model import import_tflite
from aquant_sim.program import BorderGranularity
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.testing.dyadic import DyadicConfig, dyadic_program
from aquant_sim.testing.tflite_models import small_cnn, zoo_cnn

F = 6


@pytest.fixture(scope="module")
def converted(fashion_model):
    return to_border_requantizers(import_onnx(fashion_model[0]).program, F)


@pytest.mark.parametrize("granularity", [BorderGranularity.CHANNEL, BorderGranularity.LEVEL])
def test_tuned_program_is_what_the_simulator_runs(converted, fashion_model, granularity):
    """After a few steps the tables have the granularity's shape and lie in [1, 2^F], some border
    moved off 1/2, and the tuned program's exact torch forward equals the simulator on every
    tensor (top-1 agreement 100% follows)."""
    images = torch.from_numpy(fashion_model[1][:32].copy())
    config = BorderTuningConfig(iters=30, batch_size=8, granularity=granularity, border_lr=0.02)
    result = learn_borders(converted.program, converted.tuned, images, config)
    assert set(result.tables) == set(converted.tuned)
    program = converted.program
    for name, table in result.tables.items():
        out = program.tensor(next(op.output for op in program.ops if op.name == name))
        assert table.shape == granularity.table_shape(out.channels, out.quant.bits)
        assert table.min() >= 1 and table.max() <= 1 << F
    assert any(np.any(t != 1 << (F - 1)) for t in result.tables.values())
    tuned = with_border_tables(program, result.tables)
    test = fashion_model[1][32:]
    simulated = Simulator(tuned, Backend.NUMBA).run(test, keep_tensors=True).tensors
    exact = exact_tensors(tuned, torch.from_numpy(test.copy()))
    for name, values in simulated.items():
        assert np.array_equal(exact[name].numpy(), values), name


def test_half_tables_are_the_nearest_program(converted, fashion_model):
    """With no steps the tables stay 1/2: the loss before and after is the same number."""
    images = torch.from_numpy(fashion_model[1][:16].copy())
    result = learn_borders(converted.program, converted.tuned, images, BorderTuningConfig(iters=0))
    assert all(np.all(t == 1 << (F - 1)) for t in result.tables.values())
    assert result.loss_nearest == result.loss_tuned > 0


def test_teacher_does_not_round(converted, fashion_model):
    """The teacher's output is not on the output grid (nothing rounds); the hard student's is, to
    float32 error of the scale's multiply and divide (1e-3 of a level)."""
    model = ProgramSurrogate(converted.program, converted.tuned, BorderGranularity.CHANNEL)
    images = torch.from_numpy(fashion_model[1][:4].copy())
    scale = converted.program.output_tensor.quant.scale
    with torch.no_grad():
        teacher = model(model.input_values(images, Mode.TEACHER), Mode.TEACHER) / scale
        student = model(model.input_values(images, Mode.HARD), Mode.HARD) / scale
    assert float((student - student.round()).abs().max()) < 1e-3
    assert float((teacher - teacher.round()).abs().max()) > 0.1


def test_bad_input():
    """An op kind without a float forward is named; a bad setting is a ConfigError."""
    program = dyadic_program(DyadicConfig())
    with pytest.raises(UnsupportedError, match=r"\((lut|mul|concat)\)"):
        ProgramSurrogate(program, (), BorderGranularity.CHANNEL)
    with pytest.raises(ConfigError, match="batch_size"):
        BorderTuningConfig(batch_size=0)
    with pytest.raises(ConfigError, match="granularity"):
        BorderTuningConfig(granularity="channel")


@pytest.mark.parametrize("build", [lambda: small_cnn(per_channel=True, batch=8),
                                   lambda: zoo_cnn("resnet18", per_channel=True, batch=4, size=32, width=8)],
                         ids=["small_cnn", "resnet18_32"])
def test_tflite_program(tmp_path, build):
    """A TFLite model (GEMMLOWP convs with separate clamps, a FLOAT64 fully connected, TFLite's add,
    average and mean kept; ResNet-18 at 32x32 has a SAME max pooling padded 0 before and 1 after):
    tuned for a few steps, its exact torch forward equals the simulator on every tensor."""
    data, x = build()
    path = tmp_path / "cnn.tflite"
    path.write_bytes(data)
    converted = to_border_requantizers(import_tflite(path).program, F)
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32))
    result = learn_borders(converted.program, converted.tuned, images, BorderTuningConfig(iters=20, batch_size=4, border_lr=0.02))
    tuned = with_border_tables(converted.program, result.tables)
    simulated = Simulator(tuned, Backend.NUMBA).run(images.numpy(), keep_tensors=True).tensors
    exact = exact_tensors(tuned, images)
    for name, values in simulated.items():
        assert np.array_equal(exact[name].numpy(), values), name
