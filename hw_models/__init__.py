"""Hardware models of the integer program: systolic-array cycles, memory traffic and stalls,
energy and area, and the cost of AQuant's border lookup unit beside a plain round-to-nearest
requantizer. Imports numpy, numba (the SCALE-Sim compatibility mode's buffer replay) and the
non-torch parts of ``aquant_sim`` only.

Data flows one way: program -> layer work (``layers``) -> compute demand (``systolic``) ->
memory (``memory``) -> energy and area (``energy``, ``border_unit``) -> ``estimate`` -> ``report``.
Beside it, ``scalesim_compat`` reproduces SCALE-Sim 3.0's per-layer figures for its topology
and ``.cfg`` files (``scalesim_streams`` -> ``scalesim_buffers``), and ``zigzag`` writes the same
accelerator and layers as inputs for ZigZag and pairs its results with an estimate.
"""
