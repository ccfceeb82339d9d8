"""The hardware models stay free of torch."""

import subprocess
import sys


def test_no_torch_import():
    """Importing every hw_models module and the hw-report command never imports torch."""
    modules = ["area", "border_unit", "config", "costs", "cycle_stepped", "energy", "estimate", "layers", "memory",
               "plots", "report", "scalesim", "scalesim_buffers", "scalesim_compat", "scalesim_streams", "systolic",
               "tiling", "zigzag"]
    code = ("import sys\n" + "".join(f"import hw_models.{m}\n" for m in modules)
            + "import aquant_sim.cli.hw_report\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
