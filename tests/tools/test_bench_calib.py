"""bench_calib runs and prints every figure it promises, each ratio the quotient of the times it
printed (the figures themselves are measured, not tested: a benchmark, not a timed test)."""

import pytest
from bench_calib import main


def test_prints_every_figure_and_consistent_ratios(capsys):
    main(["--iters", "2", "--repeats", "1", "--samples", "8", "--image-size", "12", "--threads", "2", "--exact-share", "0.5"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    value = lambda name: float(lines[name])
    for name in ("qdrop_seconds_per_1000", "aquant_seconds_per_1000", "float_block_forward_backward_ms",
                 "qdrop_seconds_per_1000_one_thread", "float_forward_backward_ms", "exact_forward_backward_ms",
                 "qdrop_exact_seconds_per_1000", "aquant_exact_seconds_per_1000"):
        assert value(name) > 0, name
    # seconds per 1,000 iterations are milliseconds per iteration
    # (up to the printed rounding: 3 decimals for a ratio, so 1e-3 absolute for a small one)
    for ratio, num, den in (("qdrop_over_float", "qdrop_seconds_per_1000", "float_block_forward_backward_ms"),
                            ("aquant_over_qdrop", "aquant_seconds_per_1000", "qdrop_seconds_per_1000"),
                            ("two_threads_over_one", "qdrop_seconds_per_1000", "qdrop_seconds_per_1000_one_thread"),
                            ("exact_over_float", "exact_forward_backward_ms", "float_forward_backward_ms"),
                            ("qdrop_exact_over_float", "qdrop_exact_seconds_per_1000", "float_block_forward_backward_ms"),
                            ("aquant_exact_over_qdrop_exact", "aquant_exact_seconds_per_1000", "qdrop_exact_seconds_per_1000")):
        assert value(ratio) == pytest.approx(value(num) / value(den), rel=0.01, abs=1e-3), ratio
    # the blend: a unit's time per iteration with half as many exact iterations as main ones
    blend = {m: (value(f"{m}_seconds_per_1000") + 0.5 * value(f"{m}_exact_seconds_per_1000")) / 1.5 for m in ("qdrop", "aquant")}
    assert value("qdrop_blend_over_float") == pytest.approx(blend["qdrop"] / value("float_block_forward_backward_ms"), rel=0.01, abs=1e-3)
    assert value("aquant_blend_over_qdrop_blend") == pytest.approx(blend["aquant"] / blend["qdrop"], rel=0.01, abs=1e-3)
    for case in ("hard", "hard_kept", "soft"):
        assert value(f"quantizer_{case}_ms") > 0 and value(f"quantizer_{case}_torch_over_numba") > 0, case
    assert lines["block"] == "stages_0_0_conv1..add" and lines["threads"] == "2" and lines["exact_share"] == "0.5"


@pytest.mark.parametrize("share", ["0", "1.5", "0.2"])
def test_an_exact_share_without_exact_iterations_is_refused(share, capsys):
    """A share outside (0, 1], or one that rounds to no exact iteration of ``--iters 2``."""
    with pytest.raises(SystemExit):
        main(["--iters", "2", "--exact-share", share])
    assert "--exact-share must be in (0, 1]" in capsys.readouterr().err


def test_cpu_time_ratios(capsys):
    """``--cpu-time`` adds the two ratios of process CPU time, each the quotient of the CPU times
    it printed; with more than one thread it is refused (CPU time adds the threads up)."""
    main(["--iters", "2", "--repeats", "1", "--samples", "8", "--image-size", "12", "--threads", "1", "--cpu-time",
          "--exact-share", "0.5"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    value = lambda name: float(lines[name])
    for ratio, num, den in (("qdrop_over_float_cpu", "qdrop_cpu_seconds_per_1000", "float_block_forward_backward_cpu_ms"),
                            ("aquant_over_qdrop_cpu", "aquant_cpu_seconds_per_1000", "qdrop_cpu_seconds_per_1000"),
                            ("qdrop_exact_over_float_cpu", "qdrop_exact_cpu_seconds_per_1000", "float_block_forward_backward_cpu_ms"),
                            ("aquant_exact_over_qdrop_exact_cpu", "aquant_exact_cpu_seconds_per_1000", "qdrop_exact_cpu_seconds_per_1000")):
        assert value(num) > 0 and value(den) > 0, ratio
        assert value(ratio) == pytest.approx(value(num) / value(den), rel=0.01, abs=1e-3), ratio
    with pytest.raises(SystemExit):
        main(["--threads", "2", "--cpu-time"])
    assert "--cpu-time needs --threads 1" in capsys.readouterr().err
