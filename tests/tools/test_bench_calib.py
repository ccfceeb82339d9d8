"""bench_calib runs and prints every figure it promises, each ratio the quotient of the times it
printed (the figures themselves are measured, not tested: a benchmark, not a timed test)."""

import pytest
from bench_calib import main


def test_prints_every_figure_and_consistent_ratios(capsys):
    main(["--iters", "2", "--repeats", "1", "--samples", "8", "--image-size", "12", "--threads", "2"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    value = lambda name: float(lines[name])
    for name in ("qdrop_seconds_per_1000", "aquant_seconds_per_1000", "float_block_forward_backward_ms",
                 "qdrop_seconds_per_1000_one_thread", "float_forward_backward_ms", "exact_forward_backward_ms"):
        assert value(name) > 0, name
    # seconds per 1,000 iterations are milliseconds per iteration
    # (up to the printed rounding)
    for ratio, num, den in (("qdrop_over_float", "qdrop_seconds_per_1000", "float_block_forward_backward_ms"),
                            ("aquant_over_qdrop", "aquant_seconds_per_1000", "qdrop_seconds_per_1000"),
                            ("two_threads_over_one", "qdrop_seconds_per_1000", "qdrop_seconds_per_1000_one_thread"),
                            ("exact_over_float", "exact_forward_backward_ms", "float_forward_backward_ms")):
        assert value(ratio) == pytest.approx(value(num) / value(den), rel=0.01), ratio
    for case in ("hard", "hard_kept", "soft"):
        assert value(f"quantizer_{case}_ms") > 0 and value(f"quantizer_{case}_torch_over_numba") > 0, case
    assert lines["block"] == "stages_0_0_conv1..add" and lines["threads"] == "2"


def test_cpu_time_ratios(capsys):
    """``--cpu-time`` adds the two ratios of process CPU time, each the quotient of the CPU times
    it printed; with more than one thread it is refused (CPU time adds the threads up)."""
    main(["--iters", "2", "--repeats", "1", "--samples", "8", "--image-size", "12", "--threads", "1", "--cpu-time"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    value = lambda name: float(lines[name])
    for ratio, num, den in (("qdrop_over_float_cpu", "qdrop_cpu_seconds_per_1000", "float_block_forward_backward_cpu_ms"),
                            ("aquant_over_qdrop_cpu", "aquant_cpu_seconds_per_1000", "qdrop_cpu_seconds_per_1000")):
        assert value(num) > 0 and value(den) > 0, ratio
        assert value(ratio) == pytest.approx(value(num) / value(den), rel=0.01), ratio
    with pytest.raises(SystemExit):
        main(["--threads", "2", "--cpu-time"])
    assert "--cpu-time needs --threads 1" in capsys.readouterr().err
