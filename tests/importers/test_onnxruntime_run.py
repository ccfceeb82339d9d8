"""The probe of onnxruntime's uint8 x int8 products: exact, or saturated pair sums and nothing else."""

from aquant_sim.importers.onnxruntime_run import PROBE_EXACT, pair_sums_saturate


def test_the_probe_is_exact_or_the_pair_saturated_value():
    """onnxruntime's MatMulInteger of four 255s by four 127s is 129540, or, where MLAS adds each
    pair of products in int16 with saturation, two saturated pairs: 2 * 32767."""
    assert PROBE_EXACT == 129540
    assert pair_sums_saturate() in (None, 2 * 32767)
