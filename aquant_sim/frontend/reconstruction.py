"""Block output reconstruction (BRECQ protocol) with the methods of the results table.

Units: residual blocks are units, the first and last layers are on their own (BRECQ). They are
found from the graph: a unit ends at every requantized tensor that is, at that point of the
execution order, the only tensor still to be read (a residual block's input stays live until
its add, so the whole block is one unit); a unit without a conv/linear joins the next one (at
the end of the graph, the one before).
The layer-wise methods (``adaround``) make one unit of each conv/linear.

A unit owns the quantizers of its input tensor(s) and of the tensors it produces inside, not of
its output tensor (the next unit owns that one), so that borders are learned where the
weights that read them are: equation (9)'s point is that a border compensates the rounding
of the weights that multiply it. Each unit minimises ``mean_n ||f_q(x_q) - f(x)||^2`` where
``x_q`` is the unit's input in the network quantized so far (all earlier units calibrated),
``x`` and ``f`` are float, plus AdaRound's regulariser (``docs/calibration.md`` C.3).

Caching: a unit's inputs (quantized path) and its float output are computed for the whole
calibration set before the unit is trained, and kept in memory (float32). For ResNet-18 at
224x224 with 1024 samples the largest unit (the first stage, 64x56x56) holds 2 x 0.82 GB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from aquant_sim.errors import ConfigError
from aquant_sim.frontend.borders import equation9_borders
from aquant_sim.frontend.graph import REQUANTIZED, WEIGHTED, Graph
from aquant_sim.frontend.methods import SPECS, Method
from aquant_sim.frontend.qmodel import QuantModel
from aquant_sim.frontend.quantizers import BorderMode, WeightRounding


@dataclass(frozen=True)
class ReconstructionConfig:
    """Optimisation settings; defaults follow the published protocol (BRECQ/QDrop)."""

    iters: int = 20000
    """Iterations per unit."""
    batch_size: int = 32
    weight_lr: float = 3e-3
    """Adam on AdaRound's V (BRECQ's value)."""
    scale_lr: float = 1e-3
    """Adam's step on each activation scale, relative to the scale's starting value (QDrop's
    absolute 4e-5 is this for scales near 0.04; tensors here have scales from 1e-3 to 1)."""
    border_lr: float = 1e-3
    """Adam on borders (in (0, 1]). Chosen from {5e-3, 1e-3} by the lower total reconstruction
    loss on the calibration data (ResNet-20, W2A2, 200 iterations; docs/results.md)."""
    reg_weight: float = 0.01
    """lambda of AdaRound's regulariser."""
    warmup: float = 0.2
    """Share of iterations without the rounding regulariser (AdaRound)."""
    reg_exponent: tuple[float, float] = (20.0, 2.0)
    """AdaRound's annealed exponent, from the end of warm-up to the last iteration."""
    tau: tuple[float, float] = (0.1, 0.002)
    """Border temperature, annealed geometrically over the iterations (C.5)."""
    drop_prob: float = 0.5
    """QDrop's probability of keeping an activation unquantized."""
    seed: int = 0

    def __post_init__(self):
        if self.iters < 0 or self.batch_size < 1:
            raise ConfigError(f"reconstruction: iters must be >= 0 and batch_size >= 1, got {self.iters}, {self.batch_size}")
        # Ranges the training loop relies on: tau is a geometric schedule (a power of tau1 / tau0)
        # and the divisor of the soft border; the others are shares or probabilities.
        if not all(t > 0 for t in self.tau):
            raise ConfigError(f"reconstruction: tau must be two positive temperatures, got {self.tau}")
        for name in ("warmup", "drop_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"reconstruction: {name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Unit:
    name: str
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    output: str


@dataclass
class UnitReport:
    """A unit's loss (mean over calibration samples of the summed squared output error) with its
    starting and its final quantizers, its wall time, and the time of its training loop alone."""

    name: str
    loss_before: float
    loss_after: float
    seconds: float
    train_seconds: float

    def as_dict(self) -> dict:
        return {"unit": self.name, "loss_before": self.loss_before, "loss_after": self.loss_after,
                "seconds": self.seconds, "train_seconds": self.train_seconds}


def block_units(graph: Graph) -> list[Unit]:
    """Units cut at every requantized tensor that is then the only live tensor."""
    nodes = graph.nodes
    last_read = {}
    for i, node in enumerate(nodes):
        for name in node.inputs:
            last_read[name] = i
    last_read[graph.output] = len(nodes)
    segments, start = [], 1
    for i in range(1, len(nodes)):
        live = {n.name for n in nodes[: i + 1] if last_read.get(n.name, -1) > i}
        if i == len(nodes) - 1 or (live == {nodes[i].name} and nodes[i].kind in REQUANTIZED):
            segments.append(nodes[start : i + 1])
            start = i + 1
    merged, pending = [], []
    for segment in segments:
        pending = pending + list(segment)
        if any(n.kind in WEIGHTED for n in segment):
            merged.append(pending)
            pending = []
    if pending:
        merged[-1] = merged[-1] + pending
    units, source = [], graph.input
    for segment in merged:
        output = segment[-1].name
        units.append(Unit(f"{segment[0].name}..{output}", tuple(n.name for n in segment), (source,), output))
        source = output
    return units


def layer_units(graph: Graph) -> list[Unit]:
    """One unit per conv/linear, with the pass-through ops between it and its quantized input."""
    units = []
    for node in graph.weighted:
        chain = [node.name]
        source = graph[node.inputs[0]]
        while source.kind not in REQUANTIZED:
            chain.insert(0, source.name)
            source = graph[source.inputs[0]]
        units.append(Unit(node.name, tuple(chain), (source.name,), node.name))
    return units


class Reconstructor:
    """Calibrates a :class:`QuantModel` unit by unit with one method."""

    def __init__(self, qm: QuantModel, method: Method, config: ReconstructionConfig, calib: torch.Tensor,
                 progress: bool = True):
        self.qm, self.method, self.config, self.calib = qm, method, config, calib
        self.spec = SPECS[method]
        self.progress = progress
        self.owned: set[str] = set()
        self.units = layer_units(qm.graph) if self.spec.layerwise else block_units(qm.graph)

    def claim_quantizers(self, index: int) -> list[str]:
        """The activation quantizers unit ``index`` owns (its inputs' and its internal tensors',
        not yet owned by an earlier unit); marks them owned."""
        unit = self.units[index]
        names = [n for n in (*unit.inputs, *unit.nodes) if n in self.qm.acts and n != unit.output and n not in self.owned]
        self.owned.update(names)
        return list(dict.fromkeys(names))

    @torch.no_grad()
    def _cache(self, unit: Unit, chunk: int = 128):
        inputs = {name: [] for name in unit.inputs}
        target = []
        for start in range(0, len(self.calib), chunk):
            x = self.calib[start : start + chunk]
            got = self.qm.collect(x, unit.inputs, quantized=True)
            for name in unit.inputs:
                inputs[name].append(got[name])
            target.append(self.qm.collect(x, [unit.output], quantized=False)[unit.output])
        return {k: torch.cat(v) for k, v in inputs.items()}, torch.cat(target)

    def _forward(self, unit: Unit, inputs: dict) -> torch.Tensor:
        qm = self.qm
        env = {name: qm.acts[name](value) for name, value in inputs.items()}
        nodes = [qm.graph[n] for n in unit.nodes]
        return qm.run_nodes(nodes, env, raw=frozenset({unit.output}))[unit.output]

    @torch.no_grad()
    def _loss(self, unit: Unit, inputs: dict, target: torch.Tensor, chunk: int = 256) -> float:
        self.qm.eval()
        total = 0.0
        for start in range(0, len(target), chunk):
            batch = {k: v[start : start + chunk] for k, v in inputs.items()}
            out = self._forward(unit, batch)
            total += float(((out - target[start : start + chunk]) ** 2).flatten(1).sum(1).sum())
        return total / len(target)

    def run(self) -> list[UnitReport]:
        """Calibrate every unit in order."""
        reports = []
        bar = tqdm(self.units, desc=f"{self.method.value} units", disable=not self.progress, leave=False)
        for index, unit in enumerate(bar):
            bar.set_postfix_str(unit.name)
            reports.append(self.calibrate_unit(index))
        return reports

    def calibrate_unit(self, index: int) -> UnitReport:
        """Calibrate one unit (earlier units must be calibrated already)."""
        unit = self.units[index]
        started = time.perf_counter()
        qm, spec, cfg = self.qm, self.spec, self.config
        owned = self.claim_quantizers(index)
        acts = [qm.acts[n] for n in owned]
        weights = [qm.weights[n] for n in unit.nodes if n in qm.weights]
        if spec.learn_borders:
            for name, act in zip(owned, acts):
                act.borders.data = equation9_borders(qm, name)
                act.mode = BorderMode.HARD
        if spec.learn_weights:
            for wq in weights:
                if wq.rounding is not WeightRounding.ADAROUND:
                    wq.enable_adaround()
                wq.soft = False
        inputs, target = self._cache(unit)
        before = self._loss(unit, inputs, target)
        train_started = time.perf_counter()
        if self.method is not Method.RTN and cfg.iters > 0:
            self._optimise(index, unit, inputs, target, weights, acts)
        train_seconds = time.perf_counter() - train_started
        after = self._loss(unit, inputs, target)
        return UnitReport(unit.name, before, after, time.perf_counter() - started, train_seconds)

    def _optimise(self, index, unit, inputs, target, weights, acts) -> None:
        qm, spec, cfg = self.qm, self.spec, self.config
        groups = []
        if spec.learn_weights:
            groups.append({"params": [w.alpha for w in weights], "lr": cfg.weight_lr})
        if spec.learn_scales:
            groups += [{"params": [a.scale], "lr": cfg.scale_lr * float(a.scale)} for a in acts]
        if spec.learn_borders:
            groups.append({"params": [a.borders for a in acts], "lr": cfg.border_lr})
        params = [p for g in groups for p in g["params"]]
        for p in params:
            p.requires_grad_(True)
        for w in weights:
            w.soft = True
        for a in acts:
            a.drop_prob = cfg.drop_prob if spec.drop else 0.0
            if spec.learn_borders:
                a.mode = BorderMode.SOFT
        optimizer = torch.optim.Adam([g for g in groups if g["params"]])
        generator = torch.Generator().manual_seed(cfg.seed * 100003 + index)
        torch.manual_seed(cfg.seed * 100003 + index)  # QDrop's masks
        warm = int(cfg.warmup * cfg.iters)
        (tau0, tau1), (b0, b1) = cfg.tau, cfg.reg_exponent
        qm.train()
        bar = tqdm(range(cfg.iters), desc=unit.name, disable=not self.progress, leave=False, mininterval=1.0)
        for t in bar:
            idx = torch.randint(len(target), (cfg.batch_size,), generator=generator)
            for a in acts:
                a.tau = tau0 * (tau1 / tau0) ** (t / max(1, cfg.iters - 1))
            out = self._forward(unit, {k: v[idx] for k, v in inputs.items()})
            loss = ((out - target[idx]) ** 2).flatten(1).sum(1).mean()
            rec = float(loss.detach())
            if spec.learn_weights and t >= warm:
                exponent = b0 + (b1 - b0) * (t - warm) / max(1, cfg.iters - warm)
                loss = loss + cfg.reg_weight * sum(w.regularizer(exponent) for w in weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if spec.learn_borders:
                # Keep borders where they act: outside (0, 1] the clipped border has no gradient
                # and Adam's momentum would strand it there.
                with torch.no_grad():
                    for a in acts:
                        a.borders.clamp_(1.0 / (1 << a.frac_bits), 1.0)
            if t % 50 == 0:
                bar.set_postfix(rec=f"{rec:.4g}")
        qm.eval()
        for p in params:
            p.requires_grad_(False)
        for w in weights:
            w.soft = False
        for a in acts:
            a.drop_prob = 0.0
            if spec.learn_borders:
                a.mode = BorderMode.HARD
