"""The library API, in the style of ``torch.ao.quantization``: prepare, calibrate, convert.

    from aquant_sim.quantize import QConfig, prepare, calibrate, convert, evaluate

    prepared = prepare(model, example_input, QConfig(weight_bits=4, act_bits=4))
    calibrate(prepared, train_loader, method="aquant", iters=200)
    program = convert(prepared)                  # the integer program (aquant_sim.program)
    accuracy = evaluate(program, test_loader)    # run by the bit-exact simulator

- :func:`prepare` captures a *copy* of the model (``torch.fx``, batch norms folded, degenerate
  channels handled, frontend/channels.py): the user's model, its weights and its train/eval
  mode are never changed.
- :func:`calibrate` reads calibration images from any iterable: a ``DataLoader``, a list or a
  generator of tensors ``(N, C, H, W)`` or of ``(images, labels)`` pairs. It reads only until it
  has ``calib_size`` images (the reconstruction samples its batches from those) and stops.
- :func:`convert` lowers the calibrated model to the integer program; ``save_program`` writes
  it (``aquant simulate``/``verify``/``hw-report`` take the file).
- :func:`evaluate` streams ``(images, labels)`` batches through the simulator.

Per-module weight widths: ``QConfig(module_weight_bits={"features.0": 8, nn.Linear: 8})`` by
module path or by module type (later entries win); names that match no conv or linear layer
are a :class:`ConfigError`. Everything runs on :mod:`aquant_sim.frontend.pipeline`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import nn

from aquant_sim.errors import ConfigError, InputError
from aquant_sim.evaluation import program_logits
from aquant_sim.frontend.graph import Graph
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import Calibrated, CalibrationConfig, calibrate_graph, prepare_graph
from aquant_sim.frontend.qmodel import QuantConfig
from aquant_sim.frontend.quantizers import WeightScheme
from aquant_sim.frontend.reconstruction import ReconstructionConfig
from aquant_sim.program import MAX_BITS, MIN_BITS, BorderGranularity, Program
from aquant_sim.rounding import OverflowPolicy
from aquant_sim.simulator import Backend

__all__ = ["QConfig", "Prepared", "prepare", "calibrate", "convert", "evaluate"]


@dataclass(frozen=True)
class QConfig(QuantConfig):
    """The network's number formats (every field of :class:`QuantConfig`: inner layers at
    ``weight_bits``/``act_bits``, the first and last layers, weights and inputs, at
    ``first_last_bits`` as in the BRECQ protocol, ...) and per-module weight widths in
    ``module_weight_bits`` (module path or module type -> bits)."""

    module_weight_bits: Mapping[str | type, int] = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        for key, bits in self.module_weight_bits.items():
            if not (isinstance(key, str) or (isinstance(key, type) and issubclass(key, nn.Module))):
                raise ConfigError(f"QConfig.module_weight_bits: key {key!r} is neither a module path nor a module type")
            if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
                raise ConfigError(f"QConfig.module_weight_bits[{key!r}]: bits must be in {MIN_BITS}..{MAX_BITS}, got {bits!r}")

    def quant_config(self) -> QuantConfig:
        """The global formats alone (what calibration and lowering read)."""
        return QuantConfig(**{f.name: getattr(self, f.name) for f in fields(QuantConfig)})


@dataclass
class Prepared:
    """A captured copy of the user's model, ready to calibrate; ``calibrated`` is filled in by
    :func:`calibrate`."""

    model: nn.Module
    graph: Graph
    qconfig: QConfig
    input_shape: tuple[int, ...]
    weight_bits: dict[str, int]
    """Graph node -> weight bits, from ``QConfig.module_weight_bits``."""
    channels: list = field(default_factory=list)
    calibrated: Calibrated | None = None


def _weight_bits(model: nn.Module, graph: Graph, qconfig: QConfig) -> dict[str, int]:
    modules = dict(model.named_modules())
    layers = {node.module.split("+")[0]: node.name for node in graph.weighted}
    chosen = {}
    for key, bits in qconfig.module_weight_bits.items():
        if isinstance(key, str):
            if key not in layers:
                raise ConfigError(f"QConfig.module_weight_bits: {key!r} is not a conv or linear module of the model; "
                                  f"those are {sorted(layers)[:10]}{' ...' if len(layers) > 10 else ''}")
            chosen[layers[key]] = bits
        else:
            matched = [node for path, node in layers.items() if isinstance(modules.get(path), key)]
            if not matched:
                raise ConfigError(f"QConfig.module_weight_bits: no conv or linear layer of the model is a {key.__name__}")
            chosen.update(dict.fromkeys(matched, bits))
    return chosen


def prepare(model: nn.Module, example_input: torch.Tensor, qconfig: QConfig | None = None) -> Prepared:
    """Capture a copy of ``model`` for inputs shaped like ``example_input`` ((C, H, W) or a batch
    (N, C, H, W)); the model itself is not changed."""
    if not isinstance(model, nn.Module):
        raise InputError(f"prepare: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() not in (3, 4):
        raise InputError(f"prepare: example_input must be a tensor (C, H, W) or (N, C, H, W), got {getattr(example_input, 'shape', type(example_input))}")
    qconfig = qconfig or QConfig()
    shape = tuple(example_input.shape[-3:])
    copied = copy.deepcopy(model)
    graph, channels = prepare_graph(copied, shape)
    return Prepared(copied, graph, qconfig, shape, _weight_bits(copied, graph, qconfig), channels)


def _images(item, index: int) -> torch.Tensor:
    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(item)
    if not isinstance(item, torch.Tensor):
        raise InputError(f"data item {index}: expected a tensor (N, C, H, W) or an (images, labels) pair, got {type(item).__name__}")
    return item.detach().cpu()


def take_images(data: Iterable, limit: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Up to ``limit`` images ``shape`` from an iterable of batches or (images, labels) pairs,
    reading no further batch once there are enough."""
    if isinstance(data, torch.Tensor):
        data = [data]
    batches, count = [], 0
    for index, item in enumerate(data):
        images = _images(item, index)
        if images.dim() == len(shape):
            images = images.unsqueeze(0)
        if tuple(images.shape[1:]) != shape:
            raise InputError(f"data item {index}: images of shape {tuple(images.shape[1:])}, the model was prepared for {shape}")
        batches.append(images[: limit - count])
        count += len(batches[-1])
        if count >= limit:
            break
    if not count:
        raise InputError("calibrate: the data yielded no images")
    return torch.cat(batches).float()


def calibrate(prepared: Prepared, data: Iterable, method: Method | str = Method.AQUANT, iters: int = 20000,
              calib_size: int = 1024, seed: int = 0, progress: bool = True) -> Prepared:
    """Calibrate ``prepared`` with ``method`` on the first ``calib_size`` images of ``data``;
    ``iters`` reconstruction iterations per unit (the published 20,000 take hours on a CPU; a
    few hundred, minutes). Returns ``prepared``, now calibrated."""
    try:
        method = Method(method)
    except ValueError:
        raise ConfigError(f"calibrate: unknown method {method!r}; choose one of {', '.join(m.value for m in Method)}") from None
    if calib_size < 1:
        raise ConfigError(f"calibrate: calib_size must be at least 1, got {calib_size}")
    config = CalibrationConfig(method, prepared.qconfig.quant_config(), ReconstructionConfig(iters=iters, seed=seed))
    images = take_images(data, calib_size, prepared.input_shape)
    torch.manual_seed(seed)
    prepared.calibrated = calibrate_graph(prepared.graph, images, config, progress, prepared.weight_bits, prepared.channels)
    return prepared


def convert(prepared: Prepared) -> Program:
    """The integer program of a calibrated model."""
    if prepared.calibrated is None:
        raise ConfigError("convert: the model is not calibrated yet; call calibrate(prepared, data) first")
    return prepared.calibrated.program


def evaluate(program: Program, data: Iterable, backend: Backend = Backend.NUMBA) -> float:
    """Top-1 accuracy of the integer program (run by the simulator) over ``(images, labels)``
    batches, streamed."""
    correct = total = 0
    for index, item in enumerate(data):
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InputError(f"evaluate: data item {index} is not an (images, labels) pair")
        images, labels = _images(item, index), np.asarray(item[1])
        predicted = program_logits(program, images.numpy(), backend).argmax(axis=1)
        if predicted.shape != labels.shape:
            raise InputError(f"evaluate: data item {index} has {len(images)} images and labels of shape {labels.shape}")
        correct += int((predicted == labels).sum())
        total += len(labels)
    if not total:
        raise InputError("evaluate: the data yielded no images")
    return correct / total
