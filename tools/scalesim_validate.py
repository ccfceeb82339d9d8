"""Validation against SCALE-Sim 3.0 (not part of CI): run SCALE-Sim itself, in its own
environment, on a topology and configs, and compare its reports figure by figure with the
project's SCALE-Sim compatibility mode (``hw_models/scalesim_compat.py``).

    python tools/scalesim_validate.py export DIR [--network resnet18|alexnet1] [--dataflow ws] [--input-size 224]
    python tools/scalesim_validate.py run TOPOLOGY.csv CONFIG.cfg [CONFIG.cfg ...] --out DIR [--scalesim-python PY]
    python tools/scalesim_validate.py compare TOPOLOGY.csv CONFIG.cfg REPORTS_DIR

``export`` writes a topology (the synthetic ResNet-18's ungrouped convs and linears, or AlexNet
conv1) and a SCALE-Sim config. ``run`` runs SCALE-Sim (``PY``: ``$SCALESIM_PYTHON``, else
``../scalesim-venv/bin/python`` beside the repository; SCALE-Sim 3.0 requires a layout file, and
its default layout reads the topology's numbers, so the topology itself is passed), copies its
``COMPUTE_REPORT.csv`` and ``DETAILED_ACCESS_REPORT.csv`` to ``DIR/<run_name>/`` with the config
and topology, and compares. ``compare`` compares existing reports. Both print, per config,
``layers_equal: N/M`` for every figure, the seconds each side took, and every differing value.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from aquant_sim.synthetic import resnet18_config, synthetic_resnet
from hw_models.config import Dataflow, shipped_config
from hw_models.scalesim import TopologyLayer, program_topology, read_topology, write_scalesim_cfg, write_topology
from hw_models.scalesim_compat import FIGURES, read_config, read_reports, simulate_topology

ALEXNET_CONV1 = TopologyLayer("Conv1", 224, 224, 11, 11, 3, 96, 4)
REPOSITORY = Path(__file__).resolve().parent.parent
RUNNER = """import sys
from scalesim.scale_sim import scalesim
config, topology, out = sys.argv[1:4]
scalesim(save_disk_space=True, verbose=False, config=config, topology=topology, layout=topology).run_scale(top_path=out)
"""


def export(directory: Path, network: str, dataflow: str, input_size: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if network == "alexnet1":
        layers = [ALEXNET_CONV1]
    else:
        layers, skipped = program_topology(synthetic_resnet(resnet18_config(4, 4, input_size=input_size)))
        print(f"skipped (no SCALE-Sim row): {', '.join(skipped)}")
    write_topology(layers, directory / "topology.csv")
    write_scalesim_cfg(shipped_config("scalesim_32x32").with_dataflow(Dataflow(dataflow)), directory / "scale.cfg")
    print(f"wrote {directory / 'topology.csv'} ({len(layers)} layers) and {directory / 'scale.cfg'}")


def compare(topology: Path, config_path: Path, reports: Path, scalesim_s: float | None = None) -> bool:
    """Print the per-figure comparison; True when every figure of every layer is equal."""
    layers = read_topology(topology)
    config = read_config(config_path)
    start = time.perf_counter()
    ours = simulate_topology(layers, config)
    ours_s = time.perf_counter() - start
    theirs = read_reports(reports)
    if len(theirs) != len(layers):
        raise SystemExit(f"{reports}: {len(theirs)} layers reported, the topology has {len(layers)}")
    print(f"config: {config.name} ({config.rows}x{config.cols} {config.dataflow.name}, {config.mode.name} bandwidth mode)")
    print(f"layers: {len(layers)}")
    all_equal = True
    for figure in FIGURES:
        pairs = [(getattr(a, figure), getattr(b, figure)) for a, b in zip(ours, theirs)]
        equal = sum(a == b for a, b in pairs)
        print(f"{figure}: layers_equal: {equal}/{len(layers)}")
        for layer, (a, b) in zip(layers, pairs):
            if a != b:
                all_equal = False
                print(f"    {layer.name}: ours {a}, SCALE-Sim {b}")
    print(f"compat_mode_s: {ours_s:.3f}")
    if scalesim_s is not None:
        print(f"scalesim_s: {scalesim_s:.1f}")
    print(f"all_equal: {all_equal}")
    return all_equal


def scalesim_python(given: str | None) -> Path:
    path = Path(given or os.environ.get("SCALESIM_PYTHON") or REPOSITORY.parent / "scalesim-venv" / "bin" / "python")
    if not path.exists():
        raise SystemExit(f"no SCALE-Sim environment at {path}: install it with "
                         f"python3 -m venv VENV && VENV/bin/pip install scalesim==3.0.0 'numpy<2.4', "
                         f"then pass --scalesim-python VENV/bin/python")
    return path


def run(topology: Path, configs: list[Path], out: Path, python: Path) -> bool:
    """Run SCALE-Sim on each config, keep its reports under ``out/<run_name>``, compare."""
    all_equal = True
    for config_path in configs:
        name = read_config(config_path).name
        work = out / f".{name}.run"
        shutil.rmtree(work, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        subprocess.run([str(python), "-c", RUNNER, str(config_path), str(topology), str(work)], check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        for report in ("COMPUTE_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"):
            shutil.copyfile(work / name / report, target / report)
        shutil.rmtree(work)
        all_equal &= compare(topology, config_path, target, seconds)
    return all_equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export")
    e.add_argument("directory", type=Path)
    e.add_argument("--network", choices=("resnet18", "alexnet1"), default="resnet18")
    e.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="ws")
    e.add_argument("--input-size", type=int, default=224, help="the ResNet-18's input height and width")
    r = sub.add_parser("run")
    r.add_argument("topology", type=Path)
    r.add_argument("configs", type=Path, nargs="+")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--scalesim-python")
    c = sub.add_parser("compare")
    c.add_argument("topology", type=Path)
    c.add_argument("config", type=Path)
    c.add_argument("reports", type=Path)
    args = parser.parse_args()
    if args.command == "export":
        export(args.directory, args.network, args.dataflow, args.input_size)
    elif args.command == "run":
        sys.exit(0 if run(args.topology, args.configs, args.out, scalesim_python(args.scalesim_python)) else 1)
    else:
        sys.exit(0 if compare(args.topology, args.config, args.reports) else 1)


if __name__ == "__main__":
    main()
