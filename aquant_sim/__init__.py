"""aquant-sim: a hardware-simulating integer inference engine for adaptive activation rounding.

The integer engine (everything outside ``aquant_sim.frontend``) imports numpy, numba and scipy
only; torch is needed to calibrate, not to simulate.
"""

__version__ = "0.1.0"
