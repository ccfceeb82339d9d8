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
    """Block-wise AdaRound weights (float activations), then LSQ activation scales."""
    QDROP = "qdrop"
    """Block-wise weights and scales together, with QDrop's random dropping of quantization."""
    BORDERS = "borders"
    """QDrop's joint reconstruction without the drop, plus learned activation borders."""
    AQUANT = "aquant"
    """QDrop plus learned activation borders."""


@dataclass(frozen=True)
class MethodSpec:
    """What a method learns and how (``docs/calibration.md`` section 3)."""

    layerwise: bool = False
    """One unit per conv/linear (AdaRound) instead of blocks (BRECQ)."""
    learn_weights: bool = False
    """AdaRound's rounding variables."""
    learn_scales: bool = False
    """Activation scales (LSQ)."""
    drop: bool = False
    """QDrop: the unit's input mixes the float model's input with the quantized one, and the
    unit's quantizers keep values unquantized at random."""
    learn_borders: bool = False
    """AQuant's activation borders."""
    two_stage: bool = False
    """BRECQ: every unit's weights with float activations first, then activation scales with
    the weights fixed."""


SPECS = {
    Method.RTN: MethodSpec(),
    Method.ADAROUND: MethodSpec(layerwise=True, learn_weights=True),
    Method.BRECQ: MethodSpec(learn_weights=True, learn_scales=True, two_stage=True),
    Method.QDROP: MethodSpec(learn_weights=True, learn_scales=True, drop=True),
    Method.BORDERS: MethodSpec(learn_weights=True, learn_scales=True, learn_borders=True),
    Method.AQUANT: MethodSpec(learn_weights=True, learn_scales=True, drop=True, learn_borders=True),
}
