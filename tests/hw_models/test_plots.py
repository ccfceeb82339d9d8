"""The report's PNG plots are written."""

from hw_models.config import AcceleratorConfig
from hw_models.plots import write_plots
from hw_models.report import build_report


def test_three_pngs(small_program, tmp_path):
    """Cycles, energy and border-overhead plots are written as PNG files."""
    paths = write_plots(build_report(small_program, AcceleratorConfig()), tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["border_overhead.png", "cycles.png", "energy.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
