"""numba kernels: the same functions, signatures and integers as :mod:`aquant_sim.reference`.

One module per op family (``conv``, ``pool``, ``elementwise``, ``requant``); numba settings in
``config``; ``datapath`` is the simulator's fused per-op pass. Conv2d and linear have two exact
paths: ``int8`` (8-bit operands: a direct convolution on AVX-512 VNNI, and a depthwise kernel),
which the simulator takes where the operands fit, and ``conv`` (any operands up to 16 bits:
im2col plus a GEMM that uses float BLAS only where a bound proves it exact), whose functions
are the ones exported here.
"""

from aquant_sim.kernels.conv import conv2d_acc, linear_acc
from aquant_sim.kernels.elementwise import add_acc, add_fp32, clamp
from aquant_sim.kernels.pool import avgpool_acc, global_avgpool_acc, maxpool
from aquant_sim.kernels.requant import add_tflite, average_tflite, requantize

__all__ = [
    "conv2d_acc", "linear_acc", "add_acc", "add_fp32", "avgpool_acc", "global_avgpool_acc", "maxpool", "clamp",
    "requantize", "add_tflite", "average_tflite",
]
