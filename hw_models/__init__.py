"""Hardware models of the integer program: systolic-array cycles, memory traffic and stalls,
energy and area, and the cost of AQuant's border lookup unit beside a plain round-to-nearest
requantizer. Imports numpy and the non-torch parts of ``aquant_sim`` only.

Data flows one way: program -> layer work (``layers``) -> compute demand (``systolic``) ->
memory (``memory``) -> energy and area (``energy``, ``border_unit``) -> ``estimate`` -> ``report``.
"""
