"""The calibration methods of the results table, as one Enum (torch-free, so that the CLI can
list them without importing torch)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Method(enum.Enum):
    RTN = "rtn"
    """Round to nearest everywhere, scales from the error search, no learning."""
    ADAROUND = "adaround"
    """Layer-wise reconstruction of AdaRound weight rounding; activations nearest, fixed."""
    BRECQ = "brecq"
    """Block-wise AdaRound weights and LSQ activation scales."""
    QDROP = "qdrop"
    """BRECQ with QDrop's random dropping of activation quantization."""
    BORDERS = "borders"
    """BRECQ plus learned activation borders (no drop)."""
    AQUANT = "aquant"
    """QDrop plus learned activation borders."""


@dataclass(frozen=True)
class MethodSpec:
    layerwise: bool
    learn_weights: bool
    learn_scales: bool
    drop: bool
    learn_borders: bool


SPECS = {
    Method.RTN: MethodSpec(False, False, False, False, False),
    Method.ADAROUND: MethodSpec(True, True, False, False, False),
    Method.BRECQ: MethodSpec(False, True, True, False, False),
    Method.QDROP: MethodSpec(False, True, True, True, False),
    Method.BORDERS: MethodSpec(False, True, True, False, True),
    Method.AQUANT: MethodSpec(False, True, True, True, True),
}
