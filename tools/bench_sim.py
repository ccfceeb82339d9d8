"""Benchmark: the NUMBA simulator on a ResNet-18-shaped integer program against torch's float32
and x86 int8 eager forwards of the same network shape, timed in the same run.

Prints ``name: value`` lines:

* ``cores``, ``load_average_before`` / ``load_average_after`` (1, 5 and 15 minutes): the machine
  may be shared, and the load says how many other runnable processes competed for the cores;
* ``compile_seconds``: the first NUMBA run on a small input: numba compilation plus one small
  forward, or only loading the on-disk cache when an earlier run filled it (point
  ``NUMBA_CACHE_DIR`` at an empty folder to measure a cold start);
* ``sim_seconds_w4a4`` / ``sim_seconds_w8a8``: median wall time of the simulator (NUMBA) on the
  full batch (float input, so input quantization included);
* ``torch_fp32_seconds``: the torch float32 forward (``torch.no_grad``); ``torch_int8_seconds``:
  the same network quantized by ``torch.ao.quantization`` (FX post-training quantization,
  ``x86`` engine, calibrated on the batch) and run eagerly: the CPU's integer rate through
  oneDNN/FBGEMM. All four are timed in interleaved rounds;
* ``sim_over_torch_fp32`` (W4A4), ``sim_over_torch_fp32_w8a8``, ``sim_over_torch_int8`` (W8A8
  against int8): the ratios, printed only when the 1-minute load average, before and after
  the timing, is at most the number of cores; otherwise ``ratios_refused`` says why (a loaded
  machine slows the two sides unequally). ``--allow-load`` prints them anyway, each name ending
  in ``_loaded``, never to be quoted as an idle figure;
* with ``--cpu-time``: ``cpu_seconds_*``, the least process CPU time of each of the four over
  the rounds with numba and torch on one thread, and the same three ratios of CPU time
  (``*_cpu_1thread``, refused or ``_loaded`` by the same rule). CPU time counts only the cycles
  this process ran, so other processes inflate it far less than wall time, though not at all is
  not guaranteed (shared caches, clock). Beside them ``wall_seconds_1thread_*``, the median wall
  time of those one-thread rounds, and ``thread_speedup_*``, that over the wall time with the
  default threads above: how each side scales to the machine's threads (meaningful on an idle
  machine only);
* with ``--profile``: ``profile_FILE:FUNCTION``, the W4A4 run's CPU time per function on one
  thread (cProfile with a CPU-time clock, three runs), seconds per run and share of the run;
* ``int8_engine``: the instructions of the simulator's 8-bit dense kernels, AMX (``tdpbusd``)
  or VNNI (``vpdpbusd``), ``aquant_sim/kernels/int8.py``;
* ``images_per_second_resnet18_224`` and ``images_per_second_resnet20_28``: a whole evaluation's
  throughput, ``aquant_sim.evaluation.program_logits`` over ``--eval-images`` W4A4 images
  (ResNet-18 at 224x224, batches of ``--batch``; ResNet-20 on 28x28 grey images, batches of 250);
* ``sim_gmacs_per_s_w4a4``: multiply-accumulates of conv and linear per second;
* ``bit_exact_vs_reference``: NUMBA equals REFERENCE on every intermediate tensor and counter
  of both programs, checked on a smaller input (``--check-size``, batch 2).

The torch network has the program's convs (with bias), adds, ReLUs (for the clamps), pools and
the final linear layer, with random float weights: the same MACs and memory traffic. torch is a
dependency of this tool only; the simulator runs without it.

    python -m tools.bench_sim            # ResNet-18 shape, 224x224, batch 8 (from the repo root)
    python -m tools.bench_sim --quick    # 64x64, batch 2, one timed run: a smoke test
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings

import numba
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from aquant_sim.evaluation import program_logits
from aquant_sim.kernels import int8
from aquant_sim.program import OpKind, Program
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.synthetic import SyntheticConfig, Stem, resnet18_config, synthetic_resnet

RESNET20_28 = SyntheticConfig(input_shape=(1, 28, 28), stem=Stem.CIFAR, widths=(16, 32, 64), blocks=(3, 3, 3))
"""ResNet-20 on 28x28 grey images (Fashion-MNIST's shape), W4A4."""


class TorchPeer(torch.nn.Module):
    """A float32 torch network with the program's ops, in the program's order."""

    def __init__(self, program: Program, seed: int = 0):
        super().__init__()
        self.program = program
        generator = torch.Generator().manual_seed(seed)
        self.layers = torch.nn.ModuleDict()
        for op in program.ops:
            if op.kind is OpKind.CONV2D:
                out_c, in_c, kh, kw = op.weight.shape
                layer = torch.nn.Conv2d(in_c * op.groups, out_c, (kh, kw), op.stride, op.padding, op.dilation, op.groups)
            elif op.kind is OpKind.LINEAR:
                layer = torch.nn.Linear(op.weight.shape[1], op.weight.shape[0])
            else:
                continue
            for parameter in layer.parameters():
                parameter.data = torch.randn(parameter.shape, generator=generator) * 0.05
            self.layers[op.name.replace(".", "_")] = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.program.input: x}
        for op in self.program.ops:
            inputs = [values[name] for name in op.inputs]
            if op.kind in (OpKind.CONV2D, OpKind.LINEAR):
                y = self.layers[op.name.replace(".", "_")](inputs[0])
            elif op.kind is OpKind.ADD:
                y = inputs[0] + inputs[1]
            elif op.kind is OpKind.CLAMP:
                y = F.relu(inputs[0])
            elif op.kind is OpKind.MAXPOOL2D:
                y = F.max_pool2d(inputs[0], op.kernel_size, op.stride, op.padding, op.dilation)
            elif op.kind is OpKind.AVGPOOL2D:
                y = F.avg_pool2d(inputs[0], op.kernel_size, op.stride, op.padding)
            elif op.kind is OpKind.GLOBAL_AVGPOOL:
                y = F.adaptive_avg_pool2d(inputs[0], 1)
            else:
                y = torch.flatten(inputs[0], 1)
            values[op.output] = y
        return values[self.program.output]


def least_cpu_seconds(functions: dict, repeats: int) -> tuple[dict, dict]:
    """Least process CPU time and median wall time of each function over ``repeats``
    interleaved rounds, after one warm-up call each (run it with one thread: CPU time then
    equals the work done)."""
    for function in functions.values():
        function()
    best = {name: float("inf") for name in functions}
    walls = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start, wall = time.process_time(), time.perf_counter()
            function()
            walls[name].append(time.perf_counter() - wall)
            best[name] = min(best[name], time.process_time() - start)
    return best, {name: statistics.median(values) for name, values in walls.items()}


def print_ratios(seconds: dict, refusal: str | None, allow_load: bool, suffix: str = "") -> None:
    """The three ratios of ``seconds`` (keys w4a4, w8a8, torch_fp32, torch_int8), or the refusal."""
    if refusal is not None and not allow_load:
        print(f"ratios{suffix}_refused: {refusal}")
        return
    name = suffix + ("" if refusal is None else "_loaded")
    print(f"sim_over_torch_fp32{name}: {seconds['w4a4'] / seconds['torch_fp32']:.3f}")
    print(f"sim_over_torch_fp32_w8a8{name}: {seconds['w8a8'] / seconds['torch_fp32']:.3f}")
    print(f"sim_over_torch_int8{name}: {seconds['w8a8'] / seconds['torch_int8']:.3f}")
    if refusal is not None:
        print(f"ratios{suffix}_measured_under_load: {refusal}")


def interleaved_medians(functions: dict, repeats: int) -> dict:
    """Median wall time of each function over ``repeats`` rounds, after one warm-up call each.
    Each round calls every function once, so that a change in machine load (the benchmark may
    share its cores) affects all of them alike."""
    for function in functions.values():
        function()
    times = {name: [] for name in functions}
    for _ in tqdm(range(repeats), desc="timing rounds", leave=False):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bit_exact(program: Program, x: np.ndarray) -> bool:
    """NUMBA equals REFERENCE on every tensor (kept) and every counter."""
    fast = Simulator(program, Backend.NUMBA).run(x, keep_tensors=True)
    slow = Simulator(program, Backend.REFERENCE).run(x, keep_tensors=True)
    same_tensors = fast.tensors.keys() == slow.tensors.keys() and all(
        fast.tensors[name].dtype == slow.tensors[name].dtype and np.array_equal(fast.tensors[name], slow.tensors[name])
        for name in slow.tensors
    )
    return same_tensors and [c.as_dict() for c in fast.counters] == [c.as_dict() for c in slow.counters]


def torch_int8(peer: TorchPeer, x: torch.Tensor) -> torch.nn.Module:
    """``peer`` quantized to int8 by torch's FX post-training quantization for the ``x86``
    engine, calibrated on ``x``; the converted module runs torch's quantized CPU kernels."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao on every call; it still runs.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        prepared = prepare_fx(copy.deepcopy(peer).eval(), get_default_qconfig_mapping("x86"), (x,))
        with torch.no_grad():
            prepared(x)
        return convert_fx(prepared)


def load_refusal(before: float, after: float, cores: int) -> str | None:
    """Why ratios must not be printed, or None: a 1-minute load average above the core count
    before or after the timing means other processes took cores from one side or the other."""
    worst = max(before, after)
    if worst > cores:
        return f"1-minute load average {worst:.2f} (before {before:.2f}, after {after:.2f}) exceeds the {cores} cores"
    return None


def images_per_second(program: Program, images: np.ndarray, batch: int) -> float:
    """Throughput of a whole evaluation: ``program_logits`` over ``images``, after a warm-up."""
    program_logits(program, images[:1], batch=batch)
    start = time.perf_counter()
    program_logits(program, images, batch=batch)
    return len(images) / (time.perf_counter() - start)


def profile_lines(simulator: Simulator, x: np.ndarray, runs: int = 3, top: int = 10) -> list[str]:
    """Where one thread's CPU time goes: cProfile with a process-CPU-time clock over ``runs``
    runs (after one warm-up), the ``top`` functions by their own time, each as CPU seconds per
    run and share of the run (a numba kernel's own time is its whole compiled call)."""
    import cProfile
    import pstats

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        simulator.run(x)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for _ in range(runs):
            simulator.run(x)
        profiler.disable()
    finally:
        numba.set_num_threads(threads)
    stats = pstats.Stats(profiler).stats
    total = max(entry[3] for entry in stats.values()) / runs  # the cumulative time of Simulator.run
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    return [f"profile_{os.path.basename(file)}:{name}: {own / runs:.4f} s ({100 * own / runs / total:.1f}%)"
            for (file, _, name), (_, _, own, _, _) in rows]


def _load_line() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--check-size", type=int, default=64, help="input size of the bit-exactness check")
    parser.add_argument("--eval-images", type=int, default=32,
                        help="images of the ResNet-18 throughput run (ResNet-20 runs 50x as many)")
    parser.add_argument("--cpu-time", action="store_true", help="also time CPU seconds on one thread")
    parser.add_argument("--allow-load", action="store_true",
                        help="print the ratios on a loaded machine too, named *_loaded")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the W4A4 run's CPU time goes, one thread (cProfile)")
    parser.add_argument("--quick", action="store_true", help="64x64, batch 2, one timed run, 32x32 check")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.repeats, args.check_size, args.eval_images = 2, 64, 1, 32, 2

    cores = os.cpu_count()
    print(f"cores: {cores}")
    before = os.getloadavg()[0]
    print(f"load_average_before: {_load_line()}")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.size, args.size))
    programs = {bits: synthetic_resnet(resnet18_config(bits, bits, args.size)) for bits in (4, 8)}

    first = Simulator(synthetic_resnet(resnet18_config(4, 4, 32)), Backend.NUMBA)
    start = time.perf_counter()
    first.run(x[:1, :, :32, :32])
    print(f"compile_seconds: {time.perf_counter() - start:.3f}")

    print(f"int8_engine: {int8.ENGINES[-1].name if int8.ENGINES else 'none (general path)'}")
    print(f"numba_threads: {numba.get_num_threads()}")
    print(f"torch_threads: {torch.get_num_threads()}")
    simulators = {bits: Simulator(program, Backend.NUMBA) for bits, program in programs.items()}
    peer = TorchPeer(programs[4]).eval()
    x_torch = torch.from_numpy(x.astype(np.float32))
    quantized = torch_int8(peer, x_torch)

    def forward(module):
        with torch.no_grad():
            module(x_torch)

    functions = {"w4a4": lambda: simulators[4].run(x), "w8a8": lambda: simulators[8].run(x),
                 "torch_fp32": lambda: forward(peer), "torch_int8": lambda: forward(quantized)}
    seconds = interleaved_medians(functions, args.repeats)
    after = os.getloadavg()[0]
    print(f"load_average_after: {_load_line()}")
    print(f"sim_seconds_w4a4: {seconds['w4a4']:.4f}")
    print(f"sim_seconds_w8a8: {seconds['w8a8']:.4f}")
    print(f"torch_fp32_seconds: {seconds['torch_fp32']:.4f}")
    print(f"torch_int8_seconds: {seconds['torch_int8']:.4f}")
    print_ratios(seconds, load_refusal(before, after, cores), args.allow_load)
    if args.cpu_time:
        threads = numba.get_num_threads(), torch.get_num_threads()
        numba.set_num_threads(1)
        torch.set_num_threads(1)
        before = os.getloadavg()[0]
        cpu, wall = least_cpu_seconds(functions, args.repeats)
        after = os.getloadavg()[0]
        numba.set_num_threads(threads[0])
        torch.set_num_threads(threads[1])
        print(f"load_average_after_cpu_time: {_load_line()}")
        for name, value in cpu.items():
            print(f"cpu_seconds_{name}: {value:.4f}")
        print_ratios(cpu, load_refusal(before, after, cores), args.allow_load, "_cpu_1thread")
        for name, value in wall.items():
            # How much the threads of the timed rounds above gained over one thread, wall time.
            print(f"wall_seconds_1thread_{name}: {value:.4f}")
            print(f"thread_speedup_{name}: {value / seconds[name]:.3f}")
    if args.profile:
        for line in profile_lines(simulators[4], x):
            print(line)
    macs = sum(c.macs for c in Simulator(programs[4], Backend.NUMBA).run(x[:1]).counters) * args.batch
    print(f"gmacs: {macs / 1e9:.3f}")
    print(f"sim_gmacs_per_s_w4a4: {macs / seconds['w4a4'] / 1e9:.2f}")
    print(f"torch_gmacs_per_s: {macs / seconds['torch_fp32'] / 1e9:.2f}")

    images = rng.standard_normal((args.eval_images, 3, args.size, args.size))
    print(f"images_per_second_resnet18_{args.size}: {images_per_second(programs[4], images, args.batch):.2f}")
    grey = rng.standard_normal((50 * args.eval_images, *RESNET20_28.input_shape))
    print(f"images_per_second_resnet20_28: {images_per_second(synthetic_resnet(RESNET20_28), grey, 250):.1f}")
    print(f"load_average_end: {_load_line()}")

    small = rng.standard_normal((2, 3, args.check_size, args.check_size))
    exact = all(bit_exact(synthetic_resnet(resnet18_config(b, b, args.check_size)), small) for b in (4, 8))
    print(f"bit_exact_vs_reference: {exact}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
