"""Float training and evaluation of zoo models on a :class:`Dataset`, on the CPU.

Training is plain supervised learning, reproducible from its seed: SGD with Nesterov momentum,
weight decay, a cosine learning-rate schedule stepped per batch, cross-entropy loss, no data
augmentation; the image order of each epoch is a permutation drawn from a numpy generator
seeded with ``seed``, and torch's generator is seeded with ``seed`` too. On one machine with the
same thread count, the same call gives the same weights.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from aquant_sim.data import Dataset
from aquant_sim.errors import ConfigError


def limit_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads``, by default the cores this process may use (2 on
    the project's machines: more threads than cores only adds contention); return the number.

    On a machine shared with other busy processes, 1 thread can be several times faster, as
    OpenMP threads wait for each other whenever one of them is descheduled: measured by
    ``tools/bench_train_threads.py``, figures in ``docs/models.md``."""
    cores = len(os.sched_getaffinity(0))
    if threads is None:
        threads = cores
    if not 1 <= threads <= cores:
        raise ConfigError(f"threads must lie in [1, {cores}] (the cores this process may use), got {threads}")
    torch.set_num_threads(threads)
    return threads


def _check(epochs: int, batch_size: int, lr: float) -> None:
    # Batches of one image cannot be batch-normalised when the last maps are 1x1.
    if epochs < 1 or batch_size < 2:
        raise ConfigError(f"training: epochs must be at least 1 and batch_size at least 2, got {epochs} and {batch_size}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"training: learning rate must be a positive number, got {lr}")


def train(
    model: nn.Module,
    train_set: Dataset,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    progress: bool = True,
) -> dict:
    """Train ``model`` in place; return per-epoch ``loss``/``accuracy``/``seconds`` and totals.

    ``loss`` and ``accuracy`` of an epoch are averages over its batches as trained (the model
    changes during the epoch), not a separate evaluation. A tqdm bar per epoch shows them live.
    """
    _check(epochs, batch_size, lr)
    if len(train_set) < 2:
        raise ConfigError(f"training: need at least 2 images, dataset {train_set.name!r} has {len(train_set)}")
    torch.manual_seed(seed)
    order_rng = np.random.default_rng(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    steps_per_epoch = math.ceil(len(train_set) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        epoch_start = time.perf_counter()
        order = order_rng.permutation(len(train_set))
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=not progress, leave=True)
        for step in bar:
            batch = np.sort(order[step * batch_size : (step + 1) * batch_size])
            if len(batch) < 2:
                # Batch norm cannot normalise one image whose maps are 1x1; skip a lone remainder.
                schedule.step()
                continue
            images = torch.from_numpy(train_set.images[batch])
            labels = torch.from_numpy(train_set.labels[batch])
            optimizer.zero_grad(set_to_none=True)
            logits = model(images)
            loss = loss_fn(logits, labels)
            if not math.isfinite(loss.item()):
                raise ConfigError(f"training diverged in epoch {epoch + 1}, batch {step + 1} (loss {loss.item()}); lower the learning rate (now {lr})")
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(batch)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.2%}")
        bar.close()
        history.append({"epoch": epoch + 1, "loss": total_loss / seen, "accuracy": correct / seen, "seconds": time.perf_counter() - epoch_start})
    return {
        "epochs": history,
        "final_loss": history[-1]["loss"],
        "final_train_accuracy": history[-1]["accuracy"],
        "seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
        "images": len(train_set),
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "seed": seed,
    }


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """float32 logits ``(N, classes)`` of float32 NCHW images, in eval mode (batch-norm running
    statistics); the model's train/eval mode is restored afterwards."""
    if batch_size < 1:
        raise ConfigError(f"predict: batch_size must be at least 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        outputs = [model(torch.from_numpy(np.array(images[i : i + batch_size], dtype=np.float32))).numpy() for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``dataset`` (eval mode, see :func:`predict`)."""
    if len(dataset) == 0:
        raise ConfigError(f"evaluate: dataset {dataset.name!r} is empty")
    return float((predict(model, dataset.images, batch_size).argmax(1) == dataset.labels).mean())
