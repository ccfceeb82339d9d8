"""numba kernels: the same functions, signatures and integers as :mod:`aquant_sim.reference`.

One module per op family (``conv``, ``pool``, ``elementwise``, ``requant``); numba settings in
``config``; ``datapath`` is the simulator's fused per-op pass. Every kernel is exact integer
arithmetic (the conv GEMM uses float BLAS only where a bound proves it exact, see ``conv``).
"""

from aquant_sim.kernels.conv import conv2d_acc, linear_acc
from aquant_sim.kernels.elementwise import add_acc, clamp
from aquant_sim.kernels.pool import avgpool_acc, global_avgpool_acc, maxpool
from aquant_sim.kernels.requant import requantize

__all__ = [
    "conv2d_acc", "linear_acc", "add_acc", "avgpool_acc", "global_avgpool_acc", "maxpool", "clamp",
    "requantize",
]
