"""The package's import promise (aquant_sim/__init__.py): the integer engine needs no torch."""

import os
import pkgutil
import subprocess
import sys

import aquant_sim
import hw_models

TORCH_USERS = ("aquant_sim.frontend", "aquant_sim.models", "aquant_sim.quantize", "aquant_sim.cli.train", "aquant_sim.cli.__main__")
"""Modules allowed to import torch (the front-end, the model zoo, the library API and the training command), and
``__main__``, which runs the command when imported."""

_BLOCK_TORCH = """
import importlib.abc, sys
class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"torch is blocked: {name}", name=name)  # as when torch is not installed
sys.meta_path.insert(0, BlockTorch())
"""


def test_engine_imports_without_torch():
    """Every other aquant_sim module (simulator, kernels, artifact, CLI, data, testing kit) and
    every hw_models module imports with torch blocked (a finder that raises on ``import
    torch``), as aquant_sim/__init__.py promises of the integer engine."""
    modules = [m.name for package, prefix in ((aquant_sim, "aquant_sim."), (hw_models, "hw_models."))
               for m in pkgutil.walk_packages(package.__path__, prefix) if not m.name.startswith(TORCH_USERS)]
    assert {"aquant_sim.kernels.conv", "aquant_sim.cli.verify", "aquant_sim.testing.conformance", "hw_models.report"} <= set(modules)
    code = _BLOCK_TORCH + "".join(f"import {m}\n" for m in modules)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torch_blocker_blocks():
    """The blocker of the test above really refuses torch (so that test can fail)."""
    run = subprocess.run([sys.executable, "-c", _BLOCK_TORCH + "import aquant_sim.frontend.emulation\n"], capture_output=True, text=True)
    assert run.returncode != 0 and "torch is blocked" in run.stderr


_ENGINE_COMMANDS = """
import sys
from aquant_sim.cli import main
out = sys.argv[1]
program, batch = out + "/program.aqp", out + "/input.npy"
codes = [main(["demo", "--synthetic", "--out", out]), main(["simulate", program, "--input", batch]),
         main(["verify", program, "--input", batch, "--expect", out + "/dumps.npz"]),
         main(["hw-report", program, "--input", batch]),
         main(["train", "--model", "resnet20", "--data", "mnist-digits", "--out", out + "/w.npz"])]
print("codes", codes, "torch" in sys.modules)
"""


def test_engine_commands_run_without_torch(tmp_path):
    """With torch blocked, demo --synthetic, simulate, verify and hw-report run to exit status 0
    (the engine install of pyproject.toml, no extra), and train, which needs torch, exits 2
    naming the extra to install."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", _BLOCK_TORCH + _ENGINE_COMMANDS, str(tmp_path)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "codes [0, 0, 0, 0, 2] False" in run.stdout
    assert "demo: PASS" in run.stdout and "verify: PASS" in run.stdout
    assert "aquant train: error: this command needs torch" in run.stderr and "aquant-sim[calibrate]" in run.stderr


def test_torch_is_an_extra():
    """pyproject.toml keeps torch out of the engine's dependencies, in the calibrate and test extras."""
    from pathlib import Path

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("torch") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert "torch==2.13.0" in extras["calibrate"] and "torch==2.13.0" in extras["test"]
