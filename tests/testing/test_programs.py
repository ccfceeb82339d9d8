"""The random-program strategies reach what the tests that draw from them claim to cover."""

from hypothesis import Phase, find, settings

from aquant_sim.program import OpKind
from aquant_sim.testing.programs import maxpool_cases, programs


def _padded_apart(op) -> bool:
    return op.kind is OpKind.MAXPOOL2D and op.padding != op.padding_end


def test_max_pooling_is_drawn_padded_apart_before_and_after():
    """maxpool_cases and programs (the backends-agree, artifact and ONNX round-trip tests) draw
    max poolings whose padding_end differs from their padding, and symmetric padded ones too
    (``find`` raises NoSuchExample when none of 500 draws has one)."""
    quick = settings(database=None, max_examples=500, phases=[Phase.generate])  # the first found: no shrinking
    find(maxpool_cases(), lambda case: _padded_apart(case.op), settings=quick)
    find(maxpool_cases(), lambda case: case.op.padding == case.op.padding_end != (0, 0), settings=quick)
    find(programs(), lambda program: any(_padded_apart(op) for op in program.ops), settings=quick)
