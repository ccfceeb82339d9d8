"""Block output reconstruction with the methods of the results table, after the reference codes
(BRECQ ``quant/block_recon.py``, ``main_imagenet.py``; QDrop ``qdrop/solver/recon.py``); each
item of the protocol and where it comes from is listed in ``docs/calibration.md`` section 3.

Units: residual blocks are units, the first and last layers are on their own (BRECQ). They are
found from the graph: a unit ends at every requantized tensor that is, at that point of the
execution order, the only tensor still to be read (a residual block's input stays live until
its add, so the whole block is one unit); a unit without a conv/linear joins the next one (at
the end of the graph, the one before). The layer-wise method (``adaround``) makes one unit of
each conv/linear and compares its unquantized output.

What a unit learns: the rounding of its weights, the scales of the tensors it produces, its
output's included (QDrop puts a block's output quantizer inside the block, so the loss sees the
quantized output), and the borders of the tensors its weights read: its input's and its internal
tensors' (equation (9): a border compensates the rounding of the weights that multiply it). The
network input's scale belongs to the first unit. Each unit minimises
``mean over batch and positions of sum over channels |f_q(x) - f(x)|^p`` (the reference's
``lp_loss``), ``p = 2`` (BRECQ's activation stage: 2.4), plus AdaRound's regulariser (C.3).
``x`` is the unit's input in the network quantized so far, or under QDrop, element by element,
the float model's input with probability ``drop_prob``.

Forward modes: the phases above run in ``ForwardMode.FLOAT`` (soft weights, soft borders and
QDrop's mixing have no integer program). With ``exact_share > 0`` a unit that learns scales ends
with an exact phase: its scales alone, trained in ``ForwardMode.EXACT`` (the integer program's
values, straight-through gradients) from the program's levels of its inputs, every quantizer
hard (``docs/calibration.md`` section 6).

Caching: a unit's inputs (quantized path, before their quantizer; and the float model's) and its
float output are computed for the whole calibration set before the unit is trained and kept in
memory (float32). For ResNet-18 at 224x224 with 1024 samples the largest unit (the first stage,
64x56x56) holds 3 x 0.82 GB. While a unit trains, an input whose quantizer the phase leaves
unchanged is held a second time, quantized (``Reconstructor._apply_frozen``); the exact phase
holds its inputs' levels once more (``Reconstructor._exact_cache``).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from aquant_sim.errors import ConfigError
from aquant_sim.frontend import exact
from aquant_sim.frontend.border_round import draw_uniform16, gather_select, keep_threshold, random_select
from aquant_sim.frontend.borders import equation9_borders
from aquant_sim.frontend.graph import REQUANTIZED, WEIGHTED, Graph
from aquant_sim.frontend.methods import SPECS, Method
from aquant_sim.frontend.qmodel import ForwardMode, QuantModel
from aquant_sim.frontend.quantizers import ActQuantizer, BorderMode, WeightQuantizer, WeightRounding


class BorderSchedule(enum.Enum):
    """When a unit learns its borders (``docs/calibration.md`` C.10)."""

    JOINT = "joint"
    """In the unit's one phase, beside its soft weights and its scales."""
    HARDENED = "hardened"
    """After the unit's weights and scales are learned and its weights hardened: a phase of
    ``border_phase * iters`` iterations on the borders alone, starting from the initial borders
    computed from the hard weights, so the borders are learned against the weights they meet."""


class BorderInit(enum.Enum):
    EQUATION9 = "equation9"
    """Equation (9) from the rounding errors of the weights that read the tensor."""
    HALF = "half"
    """1/2 everywhere: nearest rounding."""


@dataclass(frozen=True)
class ReconstructionConfig:
    """Optimisation settings; the defaults are the reference protocol (BRECQ, QDrop)."""

    iters: int = 20000
    """Iterations per unit (QDrop ``iters``, BRECQ ``iters_w``)."""
    batch_size: int = 32
    weight_lr: float = 1e-3
    """Adam on AdaRound's V (the reference codes use Adam's default)."""
    scale_lr: float = 4e-5
    """Adam on the activation scales, cosine-annealed to 0 over the unit (QDrop ``scale_lr``)."""
    activation_share: float = 0.25
    """BRECQ's second stage: iterations per unit on activation scales, as a share of ``iters``
    (``iters_a`` 5,000 against ``iters_w`` 20,000), so that ``--iters`` scales both stages."""
    activation_lr: float = 4e-4
    """BRECQ's second stage: Adam on the scales, cosine-annealed (``lr``)."""
    activation_p: float = 2.4
    """BRECQ's second stage: the loss exponent (``p``)."""
    border_lr: float = 1e-3
    """Adam on borders (in (0, 1])."""
    border_schedule: BorderSchedule = BorderSchedule.JOINT
    border_init: BorderInit = BorderInit.EQUATION9
    border_phase: float = 0.25
    """Iterations of the HARDENED schedule's border phase, as a share of ``iters``."""
    reg_weight: float = 0.01
    """lambda of AdaRound's regulariser."""
    warmup: float = 0.2
    """Share of iterations without the rounding regulariser (AdaRound)."""
    reg_exponent: tuple[float, float] = (20.0, 2.0)
    """AdaRound's annealed exponent, from the end of warm-up to the last iteration."""
    tau: tuple[float, float] = (0.1, 0.002)
    """Border temperature, annealed geometrically over a border phase (C.5)."""
    drop_prob: float = 0.5
    """QDrop's probability of leaving an element unquantized (the float input, at a unit's input)."""
    exact_share: float = 0.0
    """Iterations of each unit's exact phase (its scales in ``ForwardMode.EXACT`` after its
    other phases), as a share of ``iters``; 0 (the default) runs none: the protocol as it was
    before the phase existed."""
    seed: int = 0

    def __post_init__(self):
        if self.iters < 0:
            raise ConfigError(f"reconstruction: iters must be >= 0, got {self.iters}")
        if self.batch_size < 1:
            raise ConfigError(f"reconstruction: batch_size must be >= 1, got {self.batch_size}")
        # Ranges the training loop relies on: tau is a geometric schedule (a power of tau1 / tau0)
        # and the divisor of the soft border; the others are shares or probabilities.
        if not all(t > 0 for t in self.tau):
            raise ConfigError(f"reconstruction: tau must be two positive temperatures, got {self.tau}")
        for name in ("warmup", "drop_prob", "border_phase", "activation_share", "exact_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"reconstruction: {name} must be in [0, 1], got {getattr(self, name)}")
        for name, kind in (("border_schedule", BorderSchedule), ("border_init", BorderInit)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"reconstruction: {name} must be a {kind.__name__}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Unit:
    name: str
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    output: str


@dataclass
class UnitReport:
    """One unit's stage: its loss (the training loss without regulariser, over the whole
    calibration set) with its starting quantizers, with the soft weights and borders it ended
    with (None when nothing was soft), and hardened; the share of its rounding variables still
    soft at hardening (``h(V)`` in (0.01, 0.99)); wall time and the training loops' time (every
    phase's). The exact phase, when the unit has one (``exact_iters`` > 0): its loss (the same
    loss, of the integer program's output, over the whole calibration set) before and after it,
    and its loop's share of ``train_seconds`` and ``train_cpu_seconds``."""

    name: str
    stage: str
    loss_before: float
    loss_soft: float | None
    loss_after: float
    soft_share: float
    seconds: float
    train_seconds: float
    train_cpu_seconds: float
    """The training loop's process CPU time (all threads): what a shared, loaded machine inflates
    far less than ``train_seconds``, its wall time."""
    exact_iters: int = 0
    exact_loss_before: float | None = None
    exact_loss_after: float | None = None
    exact_seconds: float = 0.0
    exact_cpu_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"unit": self.name, "stage": self.stage, "loss_before": self.loss_before, "loss_soft": self.loss_soft,
                "loss_after": self.loss_after, "soft_share": self.soft_share, "seconds": self.seconds,
                "train_seconds": self.train_seconds, "train_cpu_seconds": self.train_cpu_seconds,
                "exact_iters": self.exact_iters, "exact_loss_before": self.exact_loss_before,
                "exact_loss_after": self.exact_loss_after, "exact_seconds": self.exact_seconds,
                "exact_cpu_seconds": self.exact_cpu_seconds}


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


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a unit: what it trains, for how long, with which loss."""

    name: str
    iters: int
    weights: tuple[WeightQuantizer, ...] = ()
    scales: tuple[ActQuantizer, ...] = ()
    borders: tuple[ActQuantizer, ...] = ()
    dropped: tuple[ActQuantizer, ...] = ()
    """Quantizers that leave elements unquantized at random while training (QDrop)."""
    scale_lr: float = 0.0
    loss_p: float = 2.0
    exact: bool = False
    """Runs in ``ForwardMode.EXACT`` from the exact cache (:meth:`Reconstructor._exact_cache`)."""

    @property
    def trains(self) -> bool:
        return bool(self.weights or self.scales or self.borders)


PHASE_SEEDS = {"joint": 0, "weights": 1, "scales": 2, "borders": 3, "exact": 1 << 32}
"""Each phase of a unit draws its batches and masks from its own seed,
``seed * 100003 + unit * 4 + PHASE_SEEDS[phase]``. The exact phase came after runs were recorded
with the first four: its entry lies beyond every seed of theirs (for seeds below 42,000), whose
draws stay as they were."""


@contextlib.contextmanager
def training(qm: QuantModel, phase: Phase, drop_prob: float):
    """The quantizers' training state for ``phase``: its parameters take gradients, its weights
    are soft, its borders soft, its ``dropped`` quantizers drop; on exit (normal or not) each of
    those switches and the model's train/eval mode are restored to what they were on entry."""
    params = [*(w.alpha for w in phase.weights), *(a.scale for a in phase.scales), *(a.borders for a in phase.borders)]
    saved = ([p.requires_grad for p in params], [w.soft for w in phase.weights], [a.drop_prob for a in phase.dropped],
             [a.mode for a in phase.borders], qm.training)
    for p in params:
        p.requires_grad_(True)
    for w in phase.weights:
        w.soft = True
    for a in phase.dropped:
        a.drop_prob = drop_prob
    for a in phase.borders:
        a.mode = BorderMode.SOFT
    qm.train()
    try:
        yield params
    finally:
        grads, softs, drops, modes, was_training = saved
        qm.train(was_training)
        for p, g in zip(params, grads):
            p.requires_grad_(g)
        for w, soft in zip(phase.weights, softs):
            w.soft = soft
        for a, drop in zip(phase.dropped, drops):
            a.drop_prob = drop
        for a, mode in zip(phase.borders, modes):
            a.mode = mode


@contextlib.contextmanager
def float_activations(qm: QuantModel):
    """Every activation quantizer passes values through (BRECQ's weight stage); on exit each one
    is enabled or not as it was on entry."""
    saved = {name: act.enabled for name, act in qm.acts.items()}
    for act in qm.acts.values():
        act.enabled = False
    try:
        yield
    finally:
        for name, act in qm.acts.items():
            act.enabled = saved[name]


class _SquaredError(torch.autograd.Function):
    """``((out - target)^2).sum(1).mean()`` with one saved difference and a two-pass backward.
    The gradient is autograd's for those ops, bit for bit: the mean's ``g / n`` (``n`` the
    elements per channel), times the difference once per factor of the square, the two added."""

    @staticmethod
    def forward(ctx, out, target):
        diff = out - target
        ctx.save_for_backward(diff)
        return (diff * diff).sum(dim=1).mean()

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        half = diff * (grad / (diff.numel() // diff.shape[1]))
        return half + half, None


def lp_loss(out: torch.Tensor, target: torch.Tensor, p: float) -> torch.Tensor:
    """The reference's ``(out - target).abs().pow(p).sum(1).mean()``: summed over channels,
    averaged over the batch and the positions. For ``p = 2`` with ``out`` taking a gradient,
    and ``target`` taking none, :class:`_SquaredError` (the same value and gradient, ~0.1 ms
    sooner per 32x16x28x28 batch than autograd's ops, ``docs/benchmarks.md``)."""
    if p == 2.0 and out.requires_grad and not target.requires_grad and torch.is_grad_enabled():
        return _SquaredError.apply(out, target)
    diff = out - target
    err = diff * diff if p == 2.0 else diff.abs().pow(p)
    return err.sum(dim=1).mean()


def _soft_share(weights) -> float:
    learned = [w for w in weights if w.rounding is WeightRounding.ADAROUND]
    total = sum(w.weight.numel() for w in learned)
    return sum(w.soft_share() * w.weight.numel() for w in learned) / total if total else 0.0


class Reconstructor:
    """Calibrates a :class:`QuantModel` unit by unit with one method."""

    def __init__(self, qm: QuantModel, method: Method, config: ReconstructionConfig, calib: torch.Tensor,
                 progress: bool = True):
        self.qm, self.method, self.config, self.calib = qm, method, config, calib
        self.spec = SPECS[method]
        self.progress = progress
        self.units = layer_units(qm.graph) if self.spec.layerwise else block_units(qm.graph)
        self._scale_owned: set[str] = set()
        self._border_owned: set[str] = set()

    def claim_scales(self, index: int) -> list[str]:
        """The quantizers whose scales unit ``index`` learns (its internal tensors and its
        output; the network input's for the first unit), not claimed by an earlier unit."""
        unit = self.units[index]
        names = list(unit.nodes) + ([self.qm.graph.input] if index == 0 else [])
        return self._claim(names, self._scale_owned)

    def claim_borders(self, index: int) -> list[str]:
        """The quantizers whose borders unit ``index`` learns: the tensors its weights read
        (its inputs and internal tensors, not its output), not claimed by an earlier unit."""
        unit = self.units[index]
        return self._claim([n for n in (*unit.inputs, *unit.nodes) if n != unit.output], self._border_owned)

    def _claim(self, names, owned: set[str]) -> list[str]:
        names = [n for n in dict.fromkeys(names) if n in self.qm.acts and n not in owned]
        owned.update(names)
        return names

    @torch.no_grad()
    def _cache(self, unit: Unit, chunk: int = 128):
        """Per input, the quantized network's value (before its quantizer) and the float
        network's; the float output."""
        quantized = {name: [] for name in unit.inputs}
        floating = {name: [] for name in unit.inputs}
        target = []
        for start in range(0, len(self.calib), chunk):
            x = self.calib[start : start + chunk]
            got = self.qm.collect(x, unit.inputs, quantized=True)
            ref = self.qm.collect(x, [*unit.inputs, unit.output], quantized=False)
            for name in unit.inputs:
                quantized[name].append(got[name])
                floating[name].append(ref[name])
            target.append(ref[unit.output])
        cat = lambda d: {k: torch.cat(v) for k, v in d.items()}
        return cat(quantized), cat(floating), torch.cat(target)

    def _forward(self, unit: Unit, quantized: dict, floating: dict, mix: bool,
                 applied: frozenset = frozenset(), rows: torch.Tensor | None = None) -> torch.Tensor:
        """The unit's output from its inputs ``quantized`` (before their quantizer, except those
        in ``applied``: already after it, see :meth:`_apply_frozen`), mixed with ``floating``
        under QDrop (``mix``). With ``rows``, the inputs are the whole caches and the batch is
        those rows of them (an applied input under QDrop is gathered and mixed in one pass,
        ``gather_select``: the same values and draws as gathering first)."""
        qm = self.qm
        env = {}
        threshold = keep_threshold(self.config.drop_prob)
        for name, value in quantized.items():
            other = floating.get(name)
            if rows is not None and mix and name in applied:
                env[name] = gather_select(value, other, rows, draw_uniform16((len(rows), *value.shape[1:])), threshold)
                continue
            if rows is not None:
                # index_select: the same rows as v[rows], in 2/3 of the time.
                value = value.index_select(0, rows)
                other = other.index_select(0, rows) if mix else None
            x = qm.acts[name](value) if name in qm.acts and name not in applied else value
            if mix:
                x = random_select(x, other, draw_uniform16(tuple(x.shape)), threshold)
            env[name] = x
        nodes = [qm.graph[n] for n in unit.nodes]
        raw = frozenset({unit.output}) if self.spec.layerwise else frozenset()
        return qm.run_nodes(nodes, env, raw=raw)[unit.output]

    @torch.no_grad()
    def _apply_frozen(self, quantized: dict, phase: Phase, chunk: int = 256) -> tuple[dict, frozenset]:
        """The cached inputs with the quantizer of every input that ``phase`` leaves unchanged (no
        scale or border learned, no dropping) applied once to the whole cache, and those names:
        the training loop then gathers its batches from quantized values instead of quantizing
        each batch. The quantizer is elementwise and deterministic there (no draws), so the values
        are the same as the loop's own, bit for bit; the phase holds one more copy of such inputs."""
        trained = {id(a) for a in (*phase.scales, *phase.borders, *phase.dropped)}
        frozen = frozenset(name for name in quantized if name in self.qm.acts and id(self.qm.acts[name]) not in trained)
        out = {}
        for name, value in quantized.items():
            act = self.qm.acts[name] if name in frozen else None
            out[name] = value if act is None else torch.cat([act(value[i : i + chunk]) for i in range(0, len(value), chunk)])
        return out, frozen

    @torch.no_grad()
    def _exact_cache(self, unit: Unit, chunk: int = 128) -> dict:
        """Per input, the integer program's values as the unit reads them, ``s (q - z)``
        (``collect`` after the quantizer, in EXACT), computed once: earlier units are calibrated
        and the exact phase changes no quantizer of these. The network input stays the images,
        quantized by each forward (:meth:`_forward_exact`): the first unit learns its scale."""
        qm = self.qm
        names = [name for name in unit.inputs if name != qm.graph.input]
        with qm.forward_mode_as(ForwardMode.EXACT):
            chunks = [qm.collect(self.calib[start : start + chunk], names, quantized=True, after_quantizer=True)
                      for start in range(0, len(self.calib), chunk)] if names else []
        return {name: self.calib if name == qm.graph.input else torch.cat([c[name] for c in chunks]) for name in unit.inputs}

    def _forward_exact(self, unit: Unit, inputs: dict, rows) -> torch.Tensor:
        """The unit's output in ``ForwardMode.EXACT`` (the integer program's values, its output
        quantizer applied) from ``rows`` of the exact cache; the network input is quantized as
        the program quantizes it ((1)-(4) in float64, :func:`exact.input_source`)."""
        qm = self.qm
        env = {name: value[rows] for name, value in inputs.items()}
        if qm.graph.input in env:
            env[qm.graph.input] = exact.input_source(qm, env[qm.graph.input])[1]
        with qm.forward_mode_as(ForwardMode.EXACT):
            return qm.run_nodes([qm.graph[n] for n in unit.nodes], env)[unit.output]

    @torch.no_grad()
    def _loss(self, unit: Unit, cache, p: float, chunk: int = 256, exact_phase: bool = False) -> float:
        """The loss over the whole calibration set, in FLOAT or (``exact_phase``, from the exact
        cache) in EXACT."""
        quantized, _, target = cache
        total = 0.0
        for start in range(0, len(target), chunk):
            rows = slice(start, start + chunk)
            if exact_phase:
                out = self._forward_exact(unit, quantized, rows)
            else:
                out = self._forward(unit, {k: v[rows] for k, v in quantized.items()}, {}, mix=False)
            total += float(lp_loss(out, target[rows], p)) * len(target[rows])
        return total / len(target)

    def run(self) -> list[UnitReport]:
        """Calibrate every unit in order (BRECQ: every unit's weights, then every unit's scales)."""
        if self.spec.two_stage:
            with float_activations(self.qm):
                reports = self._run_stage("weights")
            self._scale_owned.clear()
            return reports + self._run_stage("activations")
        return self._run_stage("joint")

    def _run_stage(self, stage: str) -> list[UnitReport]:
        reports = []
        bar = tqdm(range(len(self.units)), desc=f"{self.method.value} units", disable=not self.progress, leave=False)
        for index in bar:
            bar.set_postfix_str(self.units[index].name)
            reports.append(self.calibrate_unit(index, stage))
        return reports

    def calibrate_unit(self, index: int, stage: str = "joint") -> UnitReport:
        """Calibrate one unit (earlier units must be calibrated already). ``stage`` is
        ``joint`` (one pass: every method but BRECQ), or BRECQ's ``weights`` then
        ``activations``."""
        unit = self.units[index]
        started = time.perf_counter()
        qm, spec, cfg = self.qm, self.spec, self.config
        weights = tuple(qm.weights[n] for n in unit.nodes if n in qm.weights)
        scales = tuple(qm.acts[n] for n in self.claim_scales(index))
        border_names = self.claim_borders(index) if spec.learn_borders else []
        borders = tuple(qm.acts[n] for n in border_names)
        dropped = scales if spec.drop else ()
        if stage == "activations":
            phase = Phase("scales", round(cfg.activation_share * cfg.iters), scales=scales if spec.learn_scales else (), dropped=dropped,
                          scale_lr=cfg.activation_lr, loss_p=cfg.activation_p)
        else:
            if spec.learn_weights:
                for wq in weights:
                    wq.enable_adaround()
                    wq.soft = False
            joint = cfg.border_schedule is BorderSchedule.JOINT
            if joint:
                self._init_borders(border_names)
            phase = Phase(stage, cfg.iters, weights=weights if spec.learn_weights else (),
                          scales=scales if spec.learn_scales and stage == "joint" else (),
                          borders=borders if joint else (), dropped=dropped, scale_lr=cfg.scale_lr)
        cache = self._cache(unit)
        before = self._loss(unit, cache, phase.loss_p)
        loss_soft, soft_share, train_seconds, train_cpu_seconds = None, 0.0, 0.0, 0.0
        if phase.trains and phase.iters > 0:
            loss_soft, soft_share, train_seconds, train_cpu_seconds = self._optimise(index, unit, cache, phase)
        if borders and cfg.border_schedule is BorderSchedule.HARDENED:
            self._init_borders(border_names)
            border_phase = Phase("borders", round(cfg.border_phase * cfg.iters), borders=borders, dropped=dropped)
            if border_phase.iters > 0:
                loss_soft, _, border_seconds, border_cpu_seconds = self._optimise(index, unit, cache, border_phase)
                train_seconds += border_seconds
                train_cpu_seconds += border_cpu_seconds
        exact_report = self._exact_phase(index, unit, cache[2], phase)
        train_seconds += exact_report.get("exact_seconds", 0.0)
        train_cpu_seconds += exact_report.get("exact_cpu_seconds", 0.0)
        after = self._loss(unit, cache, phase.loss_p)
        return UnitReport(unit.name, stage, before, loss_soft, after, soft_share, time.perf_counter() - started, train_seconds,
                          train_cpu_seconds, **exact_report)

    def _exact_phase(self, index: int, unit: Unit, target: torch.Tensor, main: Phase) -> dict:
        """After the unit's other phases (weights hardened, borders hard), ``round(exact_share *
        iters)`` iterations on the scales ``main`` trained, in EXACT from the exact cache, with
        ``main``'s loss and scale lr; no dropping. Returns the report's ``exact_*`` fields
        (empty when there is no such phase: no scales learned, or no iterations)."""
        iters = round(self.config.exact_share * self.config.iters)
        if not main.scales or iters == 0:
            return {}
        phase = Phase("exact", iters, scales=main.scales, scale_lr=main.scale_lr, loss_p=main.loss_p, exact=True)
        cache = (self._exact_cache(unit), {}, target)
        before = self._loss(unit, cache, phase.loss_p, exact_phase=True)
        _, _, seconds, cpu_seconds = self._optimise(index, unit, cache, phase)
        return {"exact_iters": iters, "exact_loss_before": before,
                "exact_loss_after": self._loss(unit, cache, phase.loss_p, exact_phase=True),
                "exact_seconds": seconds, "exact_cpu_seconds": cpu_seconds}

    def _init_borders(self, names) -> None:
        """Initial borders (``border_init``) from the weights as they are now, applied hard."""
        for name in names:
            act = self.qm.acts[name]
            if self.config.border_init is BorderInit.EQUATION9:
                act.borders.data = equation9_borders(self.qm, name)
            else:
                act.borders.data = torch.full_like(act.borders, 0.5)
            act.mode = BorderMode.HARD

    def _optimise(self, index: int, unit: Unit, cache, phase: Phase) -> tuple[float | None, float, float, float]:
        """Train ``phase``; returns the loss with its soft weights and borders (None if nothing
        was soft), the share of rounding variables still soft at the end, and the loop's wall and
        process CPU seconds."""
        qm, spec, cfg = self.qm, self.spec, self.config
        quantized, floating, target = cache
        optimizers, schedulers = [], []
        if phase.weights:
            optimizers.append(torch.optim.Adam([w.alpha for w in phase.weights], lr=cfg.weight_lr))
        if phase.scales:
            scale_opt = torch.optim.Adam([a.scale for a in phase.scales], lr=phase.scale_lr)
            optimizers.append(scale_opt)
            schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(scale_opt, T_max=max(1, phase.iters), eta_min=0.0))
        if phase.borders:
            optimizers.append(torch.optim.Adam([a.borders for a in phase.borders], lr=cfg.border_lr))
        seed = cfg.seed * 100003 + index * 4 + PHASE_SEEDS[phase.name]
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # QDrop's masks
        warm = int(cfg.warmup * phase.iters)
        (tau0, tau1), (b0, b1) = cfg.tau, cfg.reg_exponent
        started, started_cpu = time.perf_counter(), time.process_time()
        with training(qm, phase, cfg.drop_prob):
            if phase.exact:
                forward = functools.partial(self._forward_exact, unit, quantized)
            else:
                quantized, applied = self._apply_frozen(quantized, phase)
                forward = functools.partial(self._forward, unit, quantized, floating, spec.drop, applied)
            bar = tqdm(range(phase.iters), desc=f"{unit.name} {phase.name}", disable=not self.progress, leave=False,
                       mininterval=1.0)
            for t in bar:
                idx = torch.randint(len(target), (cfg.batch_size,), generator=generator)
                for a in phase.borders:
                    a.tau = tau0 * (tau1 / tau0) ** (t / max(1, phase.iters - 1))
                out = forward(rows=idx)
                loss = lp_loss(out, target.index_select(0, idx), phase.loss_p)
                rec = float(loss.detach())
                if phase.weights and t >= warm:
                    exponent = b0 + (b1 - b0) * (t - warm) / max(1, phase.iters - warm)
                    loss = loss + cfg.reg_weight * sum(w.regularizer(exponent) for w in phase.weights)
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in optimizers:
                    opt.step()
                for scheduler in schedulers:
                    scheduler.step()
                with torch.no_grad():
                    for a in phase.scales:
                        a.scale.clamp_(min=1e-8)
                    # Keep borders where they act: outside (0, 1] the clipped border has no
                    # gradient and Adam's momentum would strand it there.
                    for a in phase.borders:
                        a.borders.clamp_(1.0 / (1 << a.frac_bits), 1.0)
                if t % 50 == 0:
                    bar.set_postfix(rec=f"{rec:.4g}", soft=f"{_soft_share(phase.weights):.1%}")
            train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
            qm.eval()
            soft = self._loss(unit, cache, phase.loss_p) if phase.weights or phase.borders else None
            share = _soft_share(phase.weights)
        return soft, share, train_seconds, train_cpu_seconds
