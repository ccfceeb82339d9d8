"""Time ResNet-20 training steps with 1 torch thread and with every available core, same run.

Prints ``name: value`` lines (seconds per step, median of the timed steps) and the load average,
since on a shared machine the better thread count depends on what else is running.

    python tools/bench_train_threads.py [--steps 6] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from aquant_sim.models import build_model
from aquant_sim.models.training import limit_threads


def seconds_per_step(threads: int, steps: int, batch_size: int) -> float:
    """Median wall time of ``steps`` SGD steps on random 28x28 images, after 2 warm-up steps."""
    limit_threads(threads)
    torch.manual_seed(0)
    model = build_model("resnet20")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images, labels = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"load_average_1min: {os.getloadavg()[0]:.2f}")
    for threads in sorted({1, cores}):
        print(f"resnet20_step_s_threads_{threads}: {seconds_per_step(threads, args.steps, args.batch_size):.3f}")
    print(f"load_average_1min_after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
