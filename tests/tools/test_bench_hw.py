"""bench_hw prints the whole estimate's time and, with a SCALE-Sim interpreter, SCALE-Sim's time on
the same topology as a ratio of the printed times."""

import stat

from bench_hw import main


def _lines(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def test_ratios_are_quotients_of_the_printed_times(tmp_path, capsys):
    """A stand-in for SCALE-Sim's interpreter (it only waits) makes the bench print its time,
    the compatibility mode's, and both speedups as quotients of the printed seconds."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nsleep 0.3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    main(["--repeat", "2", "--input-size", "32", "--layer", "stem", "--scalesim", "--scalesim-python", str(fake)])
    out = _lines(capsys.readouterr().out)
    assert out["network"].startswith("synthetic ResNet-18, 32x32")
    assert out["stepped_layer_matches_analytic"] == "True"
    assert out["scalesim_topology_layers"] == "21"
    analytic, scalesim, compat = (float(out[k]) for k in ("analytic_report_median_s", "scalesim_s", "scalesim_compat_mode_s"))
    assert scalesim >= 0.3
    assert out["speedup_analytic_vs_scalesim"] == f"{scalesim / analytic:.0f}"
    assert out["speedup_compat_mode_vs_scalesim"] == f"{scalesim / compat:.1f}"
    assert out["meets_1e4x_target"] == str(scalesim / analytic >= 1e4)


def test_without_scalesim_says_so(capsys):
    """Without --scalesim the bench says SCALE-Sim was not run and prints no ratio to it."""
    main(["--repeat", "1", "--input-size", "32", "--layer", "stem"])
    out = _lines(capsys.readouterr().out)
    assert out["scalesim"].startswith("not run") and "speedup_analytic_vs_scalesim" not in out
