"""The library API (aquant_sim/quantize.py): prepare never changes the user's model, calibrate
streams any iterable, per-module weight widths, convert and evaluate; the worked example of the
README and docs/api.md runs as written."""

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aquant_sim.artifact import save_program
from aquant_sim.errors import ConfigError, InputError
from aquant_sim.frontend.qmodel import QuantConfig
from aquant_sim.quantize import QConfig, calibrate, convert, evaluate, prepare
from aquant_sim.simulator import Backend, Simulator

ROOT = Path(__file__).parents[1]
EXAMPLE = re.compile(r"<!-- example: begin -->\n(.*?)<!-- example: end -->", re.S)


def _example(path: Path) -> str:
    block = EXAMPLE.search(path.read_text()).group(1)
    return "\n".join(line[4:] for line in block.splitlines())


def test_readme_and_api_doc_show_the_same_example():
    """README.md and docs/api.md hold one and the same worked example."""
    assert _example(ROOT / "README.md") == _example(ROOT / "docs" / "api.md")


def test_worked_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """The worked example, executed as written, writes its program and prints the integer
    program's accuracy, which the simulator reproduces from the saved file."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "example"}
    exec(compile(_example(ROOT / "README.md"), "README example", "exec"), namespace)
    printed = capsys.readouterr().out
    assert re.search(r"integer program: \d+ ops, accuracy \d+\.\d\d%", printed)
    from aquant_sim.artifact import load_program

    program = load_program(tmp_path / "net.aqp")
    images, labels = namespace["images"], namespace["labels"]
    argmax = Simulator(program, Backend.REFERENCE).run(images.numpy()).dequantized.argmax(axis=1)
    assert f"accuracy {np.mean(argmax == labels.numpy()):.2%}" in printed
    linear = [op for op in program.ops if op.kind.value == "linear"]
    assert [op.weight_bits for op in linear] == [8]


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture
def small():
    torch.manual_seed(0)
    return Small().train()


@pytest.fixture
def images():
    return torch.randn(48, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def test_prepare_leaves_the_model_alone(small, images):
    """After prepare and calibrate, the user's model has the same weights, buffers and training
    mode (capture puts only its copy in eval mode)."""
    before = copy.deepcopy(small.state_dict())
    prepared = prepare(small, images[:1])
    calibrate(prepared, [images], method="rtn", iters=0, progress=False)
    assert small.training and all(m.training for m in small.modules())
    assert all(torch.equal(before[k], v) for k, v in small.state_dict().items())
    assert prepared.model is not small


def test_data_forms_give_the_same_program(small, images, tmp_path):
    """A DataLoader of (images, labels), a list of batches, single images from a generator and
    numpy arrays all give the same calibration set, hence the same RTN program."""
    labels = torch.zeros(len(images), dtype=torch.long)
    forms = [DataLoader(TensorDataset(images, labels), batch_size=10), [images[:20], images[20:]],
             (image for image in images), [(images.numpy(), labels.numpy())]]
    programs = []
    for data in forms:
        prepared = calibrate(prepare(small, images[:1]), data, method="rtn", iters=0, calib_size=40, progress=False)
        programs.append(convert(prepared))
    files = [save_program(program, tmp_path / f"{i}.aqp").read_bytes() for i, program in enumerate(programs)]
    assert all(f == files[0] for f in files[1:])


def test_data_is_read_only_as_far_as_needed(small, images):
    """A stream that fails after its second batch is never read that far when two batches hold
    calib_size images."""
    def stream():
        yield images[:16]
        yield images[16:32]
        raise AssertionError("read past calib_size")

    prepared = calibrate(prepare(small, images[:1]), stream(), method="rtn", iters=0, calib_size=32, progress=False)
    assert convert(prepared).ops


def test_module_weight_bits_by_name_and_type(small, images):
    """module_weight_bits sets the weight width by module path and by type; later entries win."""
    qconfig = QConfig(weight_bits=4, module_weight_bits={nn.Conv2d: 3, "conv2": 6})
    prepared = calibrate(prepare(small, images[:1], qconfig), [images], method="rtn", iters=0, progress=False)
    bits = {op.name: op.weight_bits for op in convert(prepared).ops if hasattr(op, "weight_bits")}
    assert list(bits.values()) == [3, 6, 8]  # conv1 by type, conv2 by name, fc first_last_bits


def test_qconfig_is_the_quant_config_plus_overrides():
    """Every number format is QuantConfig's own field (declared and checked once); quant_config()
    hands all of them, changed or not, to calibration and lowering."""
    qconfig = QConfig(weight_bits=3, act_bits=5, internal_bits=6, frac_bits=5, accumulator_bits=24,
                      module_weight_bits={"conv1": 8})
    assert isinstance(qconfig, QuantConfig)
    assert qconfig.quant_config() == QuantConfig(weight_bits=3, act_bits=5, internal_bits=6, frac_bits=5, accumulator_bits=24)


@pytest.mark.parametrize("qconfig, message", [
    (lambda: QConfig(module_weight_bits={"conv9": 4}), "'conv9' is not a conv or linear module"),
    (lambda: QConfig(module_weight_bits={nn.ConvTranspose2d: 4}), "no conv or linear layer of the model is a ConvTranspose2d"),
    (lambda: QConfig(module_weight_bits={"conv1": 1}), "bits must be in 2..16"),
    (lambda: QConfig(weight_bits=17), "weight_bits must be in"),
])
def test_bad_qconfig(small, images, qconfig, message):
    """Bad widths and overrides that match no layer are ConfigErrors naming them."""
    with pytest.raises(ConfigError, match=message):
        prepare(small, images[:1], qconfig())


def test_bad_data_and_order(small, images):
    """No images, a wrong item, a wrong shape, an unknown method and convert before calibrate
    each fail with a message naming what is wrong."""
    prepared = prepare(small, images[:1])
    with pytest.raises(InputError, match="yielded no images"):
        calibrate(prepared, [], progress=False)
    with pytest.raises(InputError, match="data item 1: expected a tensor"):
        calibrate(prepared, [images, "x"], calib_size=1000, progress=False)
    with pytest.raises(InputError, match=r"shape \(1, 5, 5\), the model was prepared for \(1, 6, 6\)"):
        calibrate(prepared, [torch.zeros(2, 1, 5, 5)], progress=False)
    with pytest.raises(ConfigError, match="unknown method 'gptq'"):
        calibrate(prepared, [images], method="gptq", progress=False)
    with pytest.raises(ConfigError, match="not calibrated yet"):
        convert(prepared)
    with pytest.raises(InputError, match="is not an"):
        evaluate(convert(calibrate(prepared, [images], method="rtn", iters=0, progress=False)), [images])
