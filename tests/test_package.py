"""The package's import promise (aquant_sim/__init__.py): the integer engine needs no torch."""

import pkgutil
import subprocess
import sys

import aquant_sim
import hw_models

TORCH_USERS = ("aquant_sim.frontend", "aquant_sim.models", "aquant_sim.cli.train", "aquant_sim.cli.__main__")
"""Modules allowed to import torch (the front-end, the model zoo and its training command), and
``__main__``, which runs the command when imported."""

_BLOCK_TORCH = """
import importlib.abc, sys
class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked: {name}")
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
