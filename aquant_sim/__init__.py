"""aquant-sim: a hardware-simulating integer inference engine for adaptive activation rounding.

The integer engine (every module but ``aquant_sim.frontend``, ``aquant_sim.models`` and the
``train`` command) imports numpy and numba, never torch: torch is needed to calibrate, not to
simulate (``tests/test_package.py`` imports the engine with torch blocked). The contract is
``docs/contract.md``.
"""

__version__ = "0.1.0"
