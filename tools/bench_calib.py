"""Benchmark: reconstruction time of one ResNet-20 block, qdrop and aquant against a plain float
forward+backward of the same block, all in the same run (same block, data, batch size, threads).

    python tools/bench_calib.py [--iters 300] [--image-size 28] [--threads 2] [--granularity channel_level] [--exact-share 0.2]

Prints ``name: value`` lines:

* ``qdrop_over_float``: one qdrop iteration (the training loop's time per iteration: batch
  draw, QDrop's mixing, the calibrated forward in the mode reconstruction uses, the loss, the
  regulariser, backward and the optimiser steps) against one forward+backward of the float
  ``nn.Module`` block on the same batch (target: 1.5 or less);
* ``aquant_over_qdrop``: the same iteration with learned borders against qdrop's (target: 1.1);
* ``qdrop_exact_over_float`` and ``aquant_exact_over_qdrop_exact``: the same two ratios for an
  iteration of the unit's exact phase (``ReconstructionConfig.exact_share``: its scales in
  ``ForwardMode.EXACT``, hard quantizers, no QDrop), timed in the same runs as the main loop's
  (``round(exact_share * iters)`` iterations after it); ``qdrop_blend_over_float`` and
  ``aquant_blend_over_qdrop_blend``: the unit's training time per iteration at
  ``--exact-share`` ``e``, ``(main + e exact) / (1 + e)``, over the same denominators;
* ``exact_over_float``: one forward+backward of the block's fake-quant nodes in
  ``ForwardMode.EXACT`` (the integer program's values, straight-through gradients) against
  ``ForwardMode.FLOAT``, same inputs, batch and hard quantizers;
* ``quantizer_<case>_ms`` and ``quantizer_<case>_torch_over_numba``: one forward+backward of the
  training-time activation quantizer (``border_round``) on the block's activation shape (batch,
  16 channels), per case (``hard``, ``hard_kept``: with QDrop's kept elements, ``soft``: learned
  borders per channel and level), least process CPU time of ``--iters`` calls with a given
  incoming gradient (as the training loop calls it), its fused numba backend against its torch
  backend (the reference) in the same run;
* ``two_threads_over_one`` (with ``--threads 2``): qdrop's iteration at 2 threads against 1,
  alternated in the same run (target: 1.0 or less);
* with ``--cpu-time`` (and ``--threads 1``): ``qdrop_over_float_cpu`` and ``aquant_over_qdrop_cpu``
  (and the exact phase's, ``..._exact_..._cpu``), the same ratios of process CPU time (the loop's, and the float block's): other processes
  inflate CPU time far less than wall time, so these are the figures a shared, loaded machine
  can give (not at all is not guaranteed: shared caches, clock). With several threads CPU time
  adds the threads' time up and says nothing of the wall time, so they are refused.

The block is the first residual block of a ResNet-20 (16 channels) with random weights and
batch-norm statistics: timing does not depend on training. Each figure is the best of
``--repeats`` alternations, so that a load that changes during the run weighs on all alike.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout: import this tree's package, not an installed one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import os
import statistics
import time

import torch

from aquant_sim.frontend.border_round import Backend, border_round, draw_uniform16, keep_threshold
from aquant_sim.frontend.graph import capture
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.qmodel import ForwardMode, QuantConfig, QuantModel
from aquant_sim.frontend.quantizers import BorderMode
from aquant_sim.frontend.reconstruction import ReconstructionConfig, Reconstructor
from aquant_sim.frontend.threads import use_threads
from aquant_sim.models import build_model
from aquant_sim.program import BorderGranularity

BLOCK = 1
"""Unit index of the first residual block (unit 0 is the stem)."""


def time_per_1000(method: Method, graph, images: torch.Tensor, quant: QuantConfig, iters: int,
                  exact_share: float = 0.0) -> tuple[float, float, float, float]:
    """Wall and process CPU seconds per 1000 iterations of the block's main training loop, and
    the same of its exact phase (0 when ``exact_share`` gives none)."""
    qm = QuantModel(graph, quant, images)
    rec = Reconstructor(qm, method, ReconstructionConfig(iters=iters, exact_share=exact_share), images, progress=False)
    for index in range(BLOCK):
        # Earlier units only need their quantizers claimed; their iterations are not timed.
        rec.claim_scales(index)
        rec.claim_borders(index)
    report = rec.calibrate_unit(BLOCK)
    main, main_cpu = report.train_seconds - report.exact_seconds, report.train_cpu_seconds - report.exact_cpu_seconds
    per_exact = 1000 / report.exact_iters if report.exact_iters else 0.0
    return main / iters * 1000, main_cpu / iters * 1000, report.exact_seconds * per_exact, report.exact_cpu_seconds * per_exact


def float_block_ms(block: torch.nn.Module, x: torch.Tensor, iters: int) -> tuple[float, float]:
    """Median wall milliseconds of one forward+backward of the float block (its parameters take
    gradients) with the reconstruction's squared error summed over channels, and the mean
    process CPU milliseconds of the same steps."""
    target = block(x).detach() + 0.01

    def step() -> None:
        block.zero_grad(set_to_none=True)
        ((block(x) - target) ** 2).sum(1).mean().backward()

    step()  # warm-up, timed by neither clock
    spent, started_cpu = [], time.process_time()
    for _ in range(iters):
        started = time.perf_counter()
        step()
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent), (time.process_time() - started_cpu) / iters * 1000


def quantizer_ms(shape: tuple[int, ...], iters: int) -> dict[str, dict[Backend, float]]:
    """Least process CPU milliseconds of one forward+backward of ``border_round`` per case and
    backend (W2A2's levels 0..3, borders per channel and level), called as the training loop
    calls it: the incoming gradient is a given tensor (the next op's) and the parameters'
    gradients start unset (the optimisers' ``zero_grad(set_to_none=True)``). ``out.sum().backward()``
    into gradients kept from call to call, as this function did before, added a pass that
    expands the sum's gradient and one that accumulates ``x.grad`` (~0.6 ms in all, loaded machine)."""
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=generator).requires_grad_(True)
    scale = torch.tensor(0.3, requires_grad=True)
    table = torch.rand(shape[1], 3, generator=generator).clamp(0.05, 0.95).requires_grad_(True)
    grad = torch.randn(shape, generator=generator)
    draws = draw_uniform16(shape)
    cases = {"hard": (False, None), "hard_kept": (False, draws), "soft": (True, None)}
    times = {case: {backend: float("inf") for backend in Backend} for case in cases}
    for _ in range(iters):
        for case, (soft, kept) in cases.items():
            for backend in Backend:
                x.grad = scale.grad = table.grad = None
                started = time.process_time()
                out = border_round(x, scale, table, 0, 0, 3, soft, 0.5, kept, keep_threshold(0.5), backend)
                out.backward(grad)
                times[case][backend] = min(times[case][backend], (time.process_time() - started) * 1000)
    return times


def exact_and_float_ms(graph, images: torch.Tensor, quant: QuantConfig, iters: int, batch: int) -> dict:
    """Median milliseconds of one forward+backward of the block's nodes in each forward mode
    (nearest weights, hard borders, scale gradients on), the same on-grid inputs for both."""
    qm = QuantModel(graph, quant, images)
    for act in qm.acts.values():
        act.mode = BorderMode.HARD
        act.scale.requires_grad_(True)
    unit = Reconstructor(qm, Method.QDROP, ReconstructionConfig(), images[:8], False).units[BLOCK]
    nodes = [graph[n] for n in unit.nodes]
    with torch.no_grad(), qm.forward_mode_as(ForwardMode.EXACT):
        inputs = qm.collect(images[:batch], list(unit.inputs), quantized=True, after_quantizer=True)
    target = qm.collect(images[:batch], [unit.output], quantized=False)[unit.output]

    def step(mode: ForwardMode) -> None:
        with qm.forward_mode_as(mode):
            out = qm.run_nodes(nodes, dict(inputs), raw=frozenset({unit.output}))[unit.output]
        ((out - target) ** 2).flatten(1).sum(1).mean().backward()

    # The modes alternate step by step and each keeps its median, so that a load that changes
    # during the run weighs on both alike.
    times = {ForwardMode.FLOAT: [], ForwardMode.EXACT: []}
    for _ in range(iters + 1):
        for mode, spent in times.items():
            started = time.perf_counter()
            step(mode)
            spent.append((time.perf_counter() - started) * 1000)
    return {mode: statistics.median(spent[1:]) for mode, spent in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--granularity", choices=[g.value for g in BorderGranularity], default="channel_level")
    parser.add_argument("--repeats", type=int, default=2, help="alternate the methods this many times; report the best")
    parser.add_argument("--cpu-time", action="store_true", help="also the ratios of process CPU time (with --threads 1)")
    parser.add_argument("--exact-share", type=float, default=0.2, help="the exact phase's share of --iters (default 0.2)")
    args = parser.parse_args(argv)
    if not 0 < args.exact_share <= 1 or round(args.exact_share * args.iters) == 0:
        parser.error(f"--exact-share must be in (0, 1] and give at least one exact iteration of --iters {args.iters}")
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1 (CPU time adds up the threads' time)")
    load_before = os.getloadavg()[0]
    use_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("resnet20", 1, 10).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.normal_(0, 0.1)
    images = torch.randn(args.samples, 1, args.image_size, args.image_size, generator=torch.Generator().manual_seed(1))
    graph = capture(model, tuple(images.shape[1:]))
    quant = QuantConfig(weight_bits=2, act_bits=2, granularity=BorderGranularity(args.granularity))
    batch = ReconstructionConfig().batch_size
    block = model.stages[0][0]
    with torch.no_grad():
        block_input = model.stem(images[:batch])
    times = {Method.QDROP: [], Method.AQUANT: []}
    float_times, one_thread = [], []
    for _ in range(args.repeats):
        for method in times:
            times[method].append(time_per_1000(method, graph, images, quant, args.iters, args.exact_share))
        float_times.append(float_block_ms(block, block_input, args.iters))
        if args.threads == 2:
            use_threads(1)
            one_thread.append(time_per_1000(Method.QDROP, graph, images, quant, args.iters))
            use_threads(2)
    (qdrop, qdrop_cpu), (aquant, aquant_cpu), (float_block, float_cpu) = (
        [min(t[i] for t in runs) for i in (0, 1)] for runs in (times[Method.QDROP], times[Method.AQUANT], float_times))
    (qdrop_exact, qdrop_exact_cpu), (aquant_exact, aquant_exact_cpu) = (
        [min(t[i] for t in times[method]) for i in (2, 3)] for method in (Method.QDROP, Method.AQUANT))
    share = args.exact_share
    qdrop_blend, aquant_blend = ((main + share * exact) / (1 + share) for main, exact in ((qdrop, qdrop_exact), (aquant, aquant_exact)))
    modes = [exact_and_float_ms(graph, images, quant, args.iters, batch) for _ in range(args.repeats)]
    float_ms, exact_ms = (min(m[mode] for m in modes) for mode in (ForwardMode.FLOAT, ForwardMode.EXACT))
    print(f"block: {Reconstructor(QuantModel(graph, quant, images[:8]), Method.QDROP, ReconstructionConfig(), images[:8], False).units[BLOCK].name}")
    print(f"load_1min_before: {load_before:.2f}")
    print(f"load_1min_after: {os.getloadavg()[0]:.2f}")
    print(f"cores: {os.cpu_count()}")
    print(f"threads: {args.threads}")
    print(f"iters: {args.iters}")
    print(f"batch_size: {ReconstructionConfig().batch_size}")
    print(f"granularity: {args.granularity}")
    print(f"qdrop_seconds_per_1000: {qdrop:.2f}")
    print(f"aquant_seconds_per_1000: {aquant:.2f}")
    print(f"float_block_forward_backward_ms: {float_block:.2f}")
    print(f"qdrop_over_float: {qdrop / float_block:.3f}")
    print(f"aquant_over_qdrop: {aquant / qdrop:.3f}")
    print(f"exact_share: {share}")
    print(f"qdrop_exact_seconds_per_1000: {qdrop_exact:.2f}")
    print(f"aquant_exact_seconds_per_1000: {aquant_exact:.2f}")
    print(f"qdrop_exact_over_float: {qdrop_exact / float_block:.3f}")
    print(f"aquant_exact_over_qdrop_exact: {aquant_exact / qdrop_exact:.3f}")
    print(f"qdrop_blend_over_float: {qdrop_blend / float_block:.3f}")
    print(f"aquant_blend_over_qdrop_blend: {aquant_blend / qdrop_blend:.3f}")
    if args.cpu_time:
        print(f"qdrop_cpu_seconds_per_1000: {qdrop_cpu:.2f}")
        print(f"aquant_cpu_seconds_per_1000: {aquant_cpu:.2f}")
        print(f"float_block_forward_backward_cpu_ms: {float_cpu:.2f}")
        print(f"qdrop_over_float_cpu: {qdrop_cpu / float_cpu:.3f}")
        print(f"aquant_over_qdrop_cpu: {aquant_cpu / qdrop_cpu:.3f}")
        print(f"qdrop_exact_cpu_seconds_per_1000: {qdrop_exact_cpu:.2f}")
        print(f"aquant_exact_cpu_seconds_per_1000: {aquant_exact_cpu:.2f}")
        print(f"qdrop_exact_over_float_cpu: {qdrop_exact_cpu / float_cpu:.3f}")
        print(f"aquant_exact_over_qdrop_exact_cpu: {aquant_exact_cpu / qdrop_exact_cpu:.3f}")
    if one_thread:
        one = min(t[0] for t in one_thread)
        print(f"qdrop_seconds_per_1000_one_thread: {one:.2f}")
        print(f"two_threads_over_one: {qdrop / one:.3f}")
    quantizer_shape = (batch, *block_input.shape[1:])
    for case, by_backend in quantizer_ms(quantizer_shape, args.iters).items():
        print(f"quantizer_{case}_ms: {by_backend[Backend.NUMBA]:.3f}")
        print(f"quantizer_{case}_torch_over_numba: {by_backend[Backend.TORCH] / by_backend[Backend.NUMBA]:.2f}")
    print(f"float_forward_backward_ms: {float_ms:.2f}")
    print(f"exact_forward_backward_ms: {exact_ms:.2f}")
    print(f"exact_over_float: {exact_ms / float_ms:.3f}")


if __name__ == "__main__":
    main()
