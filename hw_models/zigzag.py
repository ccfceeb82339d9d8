"""The same accelerator and layers as inputs for ZigZag (``zigzag-dse`` 3.9), an established
loop-nest energy and latency model, to set its figures beside this project's (docs/hw_model.md).

ZigZag is not a dependency: this module writes plain data (its accelerator, mapping and workload,
``write_inputs``), ``RUNNER`` is the script ZigZag's own environment runs on them, and
``side_by_side`` pairs its results with an estimate's layers. What is described:

- the operational array: R x C MAC units of ``mul_pj(b, b) + add_pj(A)`` pJ each (costs.py);
  spatially unrolled as the dataflow's Sr x Sc of ``systolic.py`` (OS: pixels x filters; WS:
  window x filters; IS: window x pixels);
- per MAC unit one register per operand, at zero cost (this project does not cost register hops
  inside the array either);
- the three operand SRAMs at their sizes, a 64-bit access costing ``64 x sram_pj_per_bit(size)``
  (A3), read bandwidth up to one word per row or column of the array a cycle;
- DRAM: ``memory.dram_bytes_per_cycle`` bytes a cycle, an access of that width costing that
  many bits at ``dram_pj_per_bit`` (A4);
- every array layer as a GEMM ``O[b][k] += W[k][c] * I[b][c]`` per conv group (B pixels, C window
  elements, K filters), operands at the program's widths, partial sums at A bits.

ZigZag searches loop orders and tile sizes itself (its LOMA engine); the differences from this
project's fold or tiling model are discussed where the figures are (docs/hw_model.md section 4.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aquant_sim.atomic import atomic_write
from aquant_sim.program import Program
from hw_models.config import AcceleratorConfig, Dataflow
from hw_models.estimate import NetworkEstimate
from hw_models.layers import Engine, LayerWork, program_layers

WORD_BITS = 64
"""The SRAM access width of the cost figures (Horowitz's 64-bit reads)."""

_SPATIAL = {Dataflow.OS: ("B", "K"), Dataflow.WS: ("C", "K"), Dataflow.IS: ("C", "B")}
"""GEMM dimensions unrolled over the array's rows (D1) and columns (D2), as Sr and Sc of systolic.py."""

RUNNER = """import json, sys
from zigzag.api import get_hardware_performance_zigzag
folder = sys.argv[1]
results = {}
for layer in json.load(open(folder + "/workload.yaml")):
    energy, latency, cmes = get_hardware_performance_zigzag(
        [dict(layer, id=0)], folder + "/accelerator.yaml", folder + "/mapping.yaml", opt="energy",
        dump_folder=folder + "/out/" + layer["name"], lpf_limit=6, loma_show_progress_bar=False)
    cme = cmes[0][0]
    results[layer["name"]] = {"energy_pj": energy, "latency_cycles": latency,
                              "mac_energy_pj": cme.mac_energy, "memory_energy_pj": cme.mem_energy}
json.dump(results, open(folder + "/results.json", "w"), indent=1)
"""
"""Run as ``ZIGZAG_PYTHON runner.py FOLDER`` (``write_inputs`` puts it there); writes
``FOLDER/results.json``: per layer ZigZag's energy (pJ), latency (cycles) and their split."""

def _port(name: str, kind: str, bits_min: int, bits_max: int, allocation: list[str]) -> dict:
    return {"name": name, "type": kind, "bandwidth_min": bits_min, "bandwidth_max": bits_max, "allocation": allocation}


def _memory(size_bits: int, access_pj: float, operands: list[str], ports: list[dict], served: list[str]) -> dict:
    return {"size": size_bits, "r_cost": access_pj, "w_cost": access_pj, "area": 0, "latency": 1,
            "auto_cost_extraction": False, "operands": operands, "ports": ports, "served_dimensions": served}


def zigzag_accelerator(config: AcceleratorConfig) -> dict:
    """ZigZag's accelerator description of ``config`` (its YAML schema, as a dict)."""
    costs, array, mem = config.costs, config.array, config.memory
    ob, acc = array.operand_bits, array.accumulator_bits
    wide = WORD_BITS * max(array.rows, array.cols)
    memories = {
        "reg_W": _memory(ob, 0.0, ["I2"], [_port("r_port_1", "read", ob, ob, ["I2, tl"]), _port("w_port_1", "write", ob, ob, ["I2, fh"])], []),
        "reg_I": _memory(ob, 0.0, ["I1"], [_port("r_port_1", "read", ob, ob, ["I1, tl"]), _port("w_port_1", "write", ob, ob, ["I1, fh"])], []),
        "reg_O": _memory(acc, 0.0, ["O"], [_port("r_port_1", "read", acc, acc, ["O, tl"]), _port("r_port_2", "read", acc, acc, ["O, th"]),
                                           _port("w_port_1", "write", acc, acc, ["O, fh"]), _port("w_port_2", "write", acc, acc, ["O, fl"])], []),
    }
    for name, operand, size in (("sram_filter", "I2", mem.filter_bytes), ("sram_ifmap", "I1", mem.ifmap_bytes)):
        memories[name] = _memory(8 * size, WORD_BITS * costs.sram_pj_per_bit(size), [operand],
                                 [_port("r_port_1", "read", WORD_BITS, wide, [f"{operand}, tl"]),
                                  _port("w_port_1", "write", WORD_BITS, wide, [f"{operand}, fh"])], ["D1", "D2"])
    memories["sram_ofmap"] = _memory(8 * mem.ofmap_bytes, WORD_BITS * costs.sram_pj_per_bit(mem.ofmap_bytes), ["O"],
                                     [_port("r_port_1", "read", WORD_BITS, wide, ["O, tl", "O, th"]),
                                      _port("w_port_1", "write", WORD_BITS, wide, ["O, fh", "O, fl"])], ["D1", "D2"])
    dram_bits = int(8 * mem.dram_bytes_per_cycle)
    memories["dram"] = _memory(1 << 40, dram_bits * costs.dram_pj_per_bit, ["I1", "I2", "O"],
                               [_port("rw_port_1", "read_write", dram_bits, dram_bits,
                                      ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"])],
                               ["D1", "D2"])
    return {"name": f"aquant_{config.name}_{array.dataflow.value}", "memories": memories,
            "operational_array": {"input_precision": [ob, ob], "unit_energy": costs.mul_pj(ob, ob) + costs.add_pj(acc),
                                  "unit_area": 1, "dimensions": ["D1", "D2"], "sizes": [array.rows, array.cols]}}


def zigzag_mapping(config: AcceleratorConfig) -> list[dict]:
    """The spatial unrolling of the dataflow, for every layer."""
    rows, cols = _SPATIAL[config.array.dataflow]
    return [{"name": "default", "spatial_mapping": {"D1": [f"{rows}, {config.array.rows}"], "D2": [f"{cols}, {config.array.cols}"]},
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


def zigzag_workload(layers: list[LayerWork], accumulator_bits: int) -> list[dict]:
    """Every array layer as one GEMM per conv group (ZigZag's workload schema)."""
    workload = []
    for layer in layers:
        if layer.engine is not Engine.ARRAY:
            continue
        g = layer.gemm
        workload.append({
            "id": len(workload), "name": layer.name, "operator_type": "Gemm",
            "equation": "O[g][b][k]+=W[g][k][c]*I[g][b][c]", "loop_dims": ["G", "B", "K", "C"],
            "loop_sizes": [g.groups, g.pixels, g.filters, g.window],
            "operand_precision": {"I": layer.input_bits, "W": layer.weight_bits, "O": accumulator_bits,
                                  "O_final": layer.output_bits},
        })
    return workload


def write_inputs(program: Program, config: AcceleratorConfig, folder: str | Path) -> None:
    """Write ``accelerator.yaml``, ``mapping.yaml``, ``workload.yaml`` (JSON, which YAML reads) and
    ``runner.py`` into ``folder`` for ZigZag's environment to run."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"accelerator.yaml": json.dumps(zigzag_accelerator(config), indent=1),
             "mapping.yaml": json.dumps(zigzag_mapping(config), indent=1),
             "workload.yaml": json.dumps(zigzag_workload(program_layers(program), program.accumulator_bits), indent=1),
             "runner.py": RUNNER}
    for name, text in files.items():
        with atomic_write(folder / name) as handle:
            handle.write(text.encode("utf-8"))


@dataclass(frozen=True)
class SideBySide:
    """One array layer in both models: this project's MAC + SRAM + operand-DRAM energy (the parts
    ZigZag models) and compute + stall cycles, and ZigZag's energy and latency."""

    name: str
    energy_pj: float
    cycles: int
    zigzag_energy_pj: float
    zigzag_cycles: float

    @property
    def energy_ratio(self) -> float:
        return self.energy_pj / self.zigzag_energy_pj

    @property
    def cycles_ratio(self) -> float:
        return self.cycles / self.zigzag_cycles


def side_by_side(estimate: NetworkEstimate, results: dict) -> list[SideBySide]:
    """Pair ``estimate``'s array layers with ZigZag's ``results.json``; a layer missing from the
    results is an error naming it."""
    rows = []
    for e in estimate.layers:
        if e.layer.engine is not Engine.ARRAY:
            continue
        if e.layer.name not in results:
            raise KeyError(f"ZigZag results: no layer '{e.layer.name}'")
        z = results[e.layer.name]
        rows.append(SideBySide(e.layer.name, e.energy.mac + e.energy.sram + e.energy.dram,
                               e.compute_cycles + e.stall_cycles, z["energy_pj"], z["latency_cycles"]))
    return rows
