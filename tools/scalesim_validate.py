"""Validation against SCALE-Sim 3.0 (not part of CI): run SCALE-Sim itself, in its own
environment, on a topology and configs, and compare its reports figure by figure with the
project's SCALE-Sim compatibility mode (``hw_models/scalesim_compat.py``).

    python tools/scalesim_validate.py export DIR [--network resnet18|alexnet1|alexnet|mobilenet] [--dataflow ws] [--input-size 224]
    python tools/scalesim_validate.py run TOPOLOGY.csv CONFIG.cfg [CONFIG.cfg ...] --out DIR [--scalesim-python PY]
    python tools/scalesim_validate.py compare TOPOLOGY.csv CONFIG.cfg REPORTS_DIR

``export`` writes a topology (the synthetic ResNet-18's ungrouped convs and linears; AlexNet
conv1; AlexNet's five convs and three linears; MobileNet v1 with its depthwise convs as SCALE-Sim
encodes them, ``MOBILENET``) and a SCALE-Sim config. ``run`` runs SCALE-Sim (``PY``: ``$SCALESIM_PYTHON``, else
``.venv-scalesim/bin/python`` in the repository root, which git ignores; SCALE-Sim 3.0 requires a layout file, and
its default layout reads the topology's numbers, so the topology itself is passed), copies its
``COMPUTE_REPORT.csv`` and ``DETAILED_ACCESS_REPORT.csv`` to ``DIR/<run_name>/`` (the config
and topology it ran stay where they were given), and compares. ``compare`` compares existing reports. Both print, per config,
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
ALEXNET = [
    # The five convs as SCALE-Sim's own topology writes them (topologies/conv_nets/alexnet.csv of
    # its GitHub repository; the PyPI wheel ships no topologies):
    # unpadded ifmap sizes, so conv2-5 give 23x23 and 11x11 outputs where AlexNet's padded ones
    # give 27x27 and 13x13.
    ALEXNET_CONV1,
    TopologyLayer("Conv2", 27, 27, 5, 5, 96, 256, 1),
    TopologyLayer("Conv3", 13, 13, 3, 3, 256, 384, 1),
    TopologyLayer("Conv4", 13, 13, 3, 3, 384, 384, 1),
    TopologyLayer("Conv5", 13, 13, 3, 3, 384, 256, 1),
    # SCALE-Sim's alexnet.csv stops at conv5; the three linears are written as its topologies
    # write a linear (the FC row of mobilnet_paper.csv): a 1x1 conv on a 1x1 input.
    TopologyLayer("FC6", 1, 1, 1, 1, 6 * 6 * 256, 4096, 1),
    TopologyLayer("FC7", 1, 1, 1, 1, 4096, 4096, 1),
    TopologyLayer("FC8", 1, 1, 1, 1, 4096, 1000, 1),
]


def _separable(dw: str, pw: str, size: int, stride: int, pw_size: int, c_in: int, c_out: int) -> list[TopologyLayer]:
    """A MobileNet depthwise-separable block as SCALE-Sim's ``mobilnet_paper.csv`` encodes it:
    the 3x3 depthwise conv as ONE channel's conv (Channels 1, Num Filter 1: 1/c_in of the
    layer's MACs and operands), then the dense 1x1 pointwise conv."""
    return [TopologyLayer(dw, size, size, 3, 3, 1, 1, stride), TopologyLayer(pw, pw_size, pw_size, 1, 1, c_in, c_out, 1)]


MOBILENET = [
    # MobileNet v1 (224x224, width 1.0) row by row as its paper's Table 1 and SCALE-Sim's
    # topologies/conv_nets/mobilnet_paper.csv list it: each row's input size is the table's
    # (no padding), and the last depthwise conv keeps the table's stride 2 on 7x7.
    TopologyLayer("Conv1", 224, 224, 3, 3, 3, 32, 2),
    *_separable("Conv2_dw", "Conv3", 112, 1, 112, 32, 64),
    *_separable("Conv4_dw", "Conv5", 112, 2, 56, 64, 128),
    *_separable("Conv6_dw", "Conv7", 56, 1, 56, 128, 128),
    *_separable("Conv8_dw", "Conv9", 56, 2, 28, 128, 256),
    *_separable("Conv10_dw", "Conv11", 28, 1, 28, 256, 256),
    *_separable("Conv12_dw", "Conv13", 28, 2, 14, 256, 512),
    *(layer for i in range(5) for layer in _separable(f"Conv14_dw_{i}", f"Conv15_{i}", 14, 1, 14, 512, 512)),
    *_separable("Conv16_dw", "Conv17", 14, 2, 7, 512, 1024),
    *_separable("Conv18_dw", "Conv19", 7, 2, 7, 1024, 1024),
    TopologyLayer("FC", 1, 1, 1, 1, 1024, 1000, 1),
]
NETWORKS = {"alexnet1": [ALEXNET_CONV1], "alexnet": ALEXNET, "mobilenet": MOBILENET}
"""The fixed topologies ``export`` writes (the ResNet-18 is exported from the synthetic program)."""
REPOSITORY = Path(__file__).resolve().parent.parent
RUNNER = """import sys
from scalesim.scale_sim import scalesim
config, topology, out = sys.argv[1:4]
scalesim(save_disk_space=True, verbose=False, config=config, topology=topology, layout=topology).run_scale(top_path=out)
"""


def export(directory: Path, network: str, dataflow: str, input_size: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if network in NETWORKS:
        layers = NETWORKS[network]
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
    path = Path(given or os.environ.get("SCALESIM_PYTHON") or REPOSITORY / ".venv-scalesim" / "bin" / "python")
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
    e.add_argument("--network", choices=("resnet18", *NETWORKS), default="resnet18")
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
