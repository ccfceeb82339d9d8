"""One-off validation against SCALE-Sim 3.0 (not part of CI): export a topology and a config,
run SCALE-Sim in its own environment, then compare its reports with this project's model.

    PYTHONPATH=. python tools/scalesim_validate.py export DIR [--network resnet18|alexnet1] [--dataflow ws]
                                                   [--input-size 224]
    SCALESIM_PYTHON -c "from scalesim.scale_sim import scalesim; \\
        s = scalesim(save_disk_space=True, verbose=False, config='DIR/scale.cfg', \\
                     topology='DIR/topology.csv', layout='DIR/topology.csv'); s.run_scale(top_path='DIR/run')"
    PYTHONPATH=. python tools/scalesim_validate.py compare DIR

(SCALE-Sim 3.0 requires a layout file; its default layout reads the topology's numbers, so the
topology itself is passed.) ``compare`` prints one line per layer and ``name: value`` totals:
compute cycles (SCALE-Sim's Total Cycles minus Stall Cycles) and SRAM reads and writes
(elements), which should match exactly, and DRAM traffic (SCALE-Sim's one-byte words against
this model's bytes at 8-bit operands), which is a different model (see docs/hw_model.md).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from aquant_sim.program import OpKind
from aquant_sim.synthetic import resnet18_config, synthetic_resnet
from hw_models.config import Dataflow, shipped_config
from hw_models.layers import Engine, LayerWork, touched
from hw_models.memory import layer_memory, sram_accesses
from hw_models.scalesim import TopologyLayer, program_topology, read_scalesim_cfg, read_topology, write_scalesim_cfg, write_topology
from hw_models.systolic import compute_cycles, map_gemm

ALEXNET_CONV1 = TopologyLayer("Conv1", 224, 224, 11, 11, 3, 96, 4)


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


def _rows(path: Path) -> list[list[str]]:
    with path.open() as handle:
        return [[cell.strip() for cell in row if cell.strip()] for row in list(csv.reader(handle))[1:]]


def _byte_layer(layer: TopologyLayer) -> LayerWork:
    """The topology layer with one-byte operands and outputs, as SCALE-Sim counts words."""
    g = layer.gemm
    oh, ow = layer.ofmap
    inputs = layer.channels * touched(layer.ifmap_h, oh, layer.filter_h, layer.stride) * touched(layer.ifmap_w, ow, layer.filter_w, layer.stride)
    return LayerWork(layer.name, OpKind.CONV2D, Engine.ARRAY, g, 0, inputs, 8,
                     g.window * g.filters, 8, g.pixels * g.filters, 8, 0, None, 0)


def compare(directory: Path) -> None:
    config = read_scalesim_cfg(directory / "scale.cfg")
    array = config.array
    layers = read_topology(directory / "topology.csv")
    reports = directory / "run" / config.name
    compute = _rows(reports / "COMPUTE_REPORT.csv")
    access = _rows(reports / "DETAILED_ACCESS_REPORT.csv")
    equal = {"compute": 0, "ifmap": 0, "filter": 0, "ofmap": 0}
    ofmap_extra, dram_theirs, dram_ours = set(), 0, 0
    print(f"{'layer':<22} {'cycles ours':>12} {'SCALE-Sim':>12} {'ifmap rd':>10} {'filter rd':>10} {'ofmap wr ours/theirs':>22} {'DRAM ours/theirs':>20}")
    for layer, c, a in zip(layers, compute, access):
        cycles = compute_cycles(layer.gemm, array)
        theirs = int(c[2]) - int(c[3])
        counts = sram_accesses(layer.gemm, array)
        s_ifmap, s_filter, s_ofmap = int(float(a[3])), int(float(a[6])), int(float(a[9]))
        equal["compute"] += cycles == theirs
        equal["ifmap"] += counts.ifmap_reads == s_ifmap
        equal["filter"] += counts.filter_reads == s_filter
        equal["ofmap"] += counts.ofmap_writes == s_ofmap
        ofmap_extra.add((s_ofmap - counts.ofmap_writes) / map_gemm(layer.gemm, array.rows, array.cols, array.dataflow).folds)
        memory = layer_memory(_byte_layer(layer), config, cycles)
        dram = int(float(a[12])) + int(float(a[15])) + int(float(a[18]))
        dram_theirs += dram
        dram_ours += memory.dram_total
        print(f"{layer.name[:22]:<22} {cycles:>12,} {theirs:>12,} {counts.ifmap_reads - s_ifmap:>+10,} {counts.filter_reads - s_filter:>+10,} "
              f"{counts.ofmap_writes:>11,}/{s_ofmap:<10,} {memory.dram_total:>9,}/{dram:<10,}")
    n = len(layers)
    print(f"layers: {n}")
    for key, count in equal.items():
        print(f"{key}_equal_layers: {count}/{n}")
    print(f"scalesim_extra_ofmap_writes_per_fold: {sorted(ofmap_extra)}")
    print(f"dram_bytes_ours: {dram_ours}")
    print(f"dram_words_scalesim: {dram_theirs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export")
    e.add_argument("directory", type=Path)
    e.add_argument("--network", choices=("resnet18", "alexnet1"), default="resnet18")
    e.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="ws")
    e.add_argument("--input-size", type=int, default=224, help="the ResNet-18's input height and width")
    c = sub.add_parser("compare")
    c.add_argument("directory", type=Path)
    args = parser.parse_args()
    if args.command == "export":
        export(args.directory, args.network, args.dataflow, args.input_size)
    else:
        compare(args.directory)


if __name__ == "__main__":
    main()
