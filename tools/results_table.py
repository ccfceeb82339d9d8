"""The results table: every (configuration, method, seed) calibrated and evaluated as a Ray task,
each finished run appended to a JSONL file, ``docs/results.md`` and its plot written from that file.

The sweep of issue 8 (start it, or resume it: runs already in the file are skipped):

    python tools/results_table.py --weights runs/resnet20_fmnist.npz \\
        --runs docs/results/runs.jsonl --out docs/results.md

The float models: ``docs/results/weights/`` (committed, with the commands that trained them and
why the bytes depend on the CPU: ``docs/models.md``).

Rewrite the document from the file alone, running nothing:

    python tools/results_table.py --runs docs/results/runs.jsonl --out docs/results.md --report-only

Ablations are tagged runs whose calibration config differs by ``--set`` overrides: any field of
``CalibrationConfig``, dotted (``quant.granularity=tensor``, ``quant.frac_bits=4``,
``reconstruction.border_lr=0.005``, ``reconstruction.tau=[0.1,0.002]``; values are JSON, else
text; Enums by value), so a new config field needs no change here. One value per invocation:

    for g in tensor channel level; do python tools/results_table.py --weights W.npz \\
        --runs docs/results/runs.jsonl --ablation granularity --set quant.granularity=$g \\
        --order W2A2,W3A3:aquant:0,1,2; done

The MobileNetV2-style section: ``--model mobilenetv2 --weights M.npz --order W4A4,W3A3:METHODS:0,1,2``.

What a run is (``SPEC`` below): model, weights (sha256), dataset, calibration and evaluation
sizes, bits, method, seed, ablation tag and overrides. A run is done when the file holds a record
of it whose calibration config is still what this code resolves for it; a record made before a
default changed no longer counts (it stays in the file, the run is made again); a field added to
the config since, listed in ``ADDED_FIELDS`` with the value old records ran with, does not make
them stale. Per model, one weights file, dataset and pair of sizes; the untagged runs (the main
table) share one set of overrides: a sweep that breaks this stops before running anything.

Ray: a new local instance on this machine (``--cpus``, default the cores this process may use;
never a cluster already running here) or
``--address`` to join a cluster, whose nodes need the dataset and the weights at the same paths
(checked by sha256 in each task). Each run is a task of ``--threads`` CPUs (torch, BLAS and numba
threads set to match; 1 by default: on the 2-core machines two 1-thread runs beat one 2-thread
run); runs are submitted in ``--order`` as CPUs free up. A worker killed mid-run is retried by Ray
(``--retries``); a run that fails is reported and left for the next invocation. Finished runs are
appended (and fsynced) as they arrive, so an interruption loses no finished run. Commit the JSONL
as runs land: a later session resumes from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout: import this tree's package, not an installed one.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse
import collections
import dataclasses
import datetime
import enum
import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import time
import types
import typing

import numpy as np

import results_report
from aquant_sim.errors import AquantError, ConfigError
from run_store import RunStore

DEFAULT_ORDER = (
    "W2A2:qdrop,aquant:0,1,2",
    "W3A3:qdrop,aquant:0,1,2",
    "W2A2,W3A3:rtn,adaround,brecq:0,1,2",
    "W4A4,W2A4:rtn,adaround,brecq,qdrop,aquant:0,1,2",
)
"""Run priority: where the AQuant-against-QDrop question lies first (both methods, seed by seed,
so the paired difference fills in early), then the other methods there, then the rest."""
SPEC = ("model", "weights_sha256", "dataset", "calib_size", "eval_size", "config", "method", "seed", "ablation", "overrides")
"""The fields that define a run (its key); every other field of a record is its result."""
AXES = ("method", "quant.weight_bits", "quant.act_bits", "reconstruction.seed")
"""Config fields set by the sweep's axes (method, ``WxAy``, seed), not by ``--set``."""
SECTION = ("weights_sha256", "dataset", "calib_size", "eval_size")
"""Per model, fields every run in one file shares."""


# --- the sweep's plan -------------------------------------------------------------------------

def parse_bits(config: str) -> tuple[int, int]:
    match = re.fullmatch(r"W(\d+)A(\d+)", config)
    if not match:
        raise ConfigError(f"configuration {config!r}: expected WxAy, e.g. W2A2")
    return int(match[1]), int(match[2])


def parse_order(stages) -> list[tuple[str, str, int]]:
    """``CONFIGS:METHODS:SEEDS`` stages (comma-separated lists) to (config, method, seed) in run
    order: stage by stage, within a stage seed by seed, configuration by configuration."""
    from aquant_sim.frontend.methods import Method

    plan = []
    for stage in stages:
        parts = stage.split(":")
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"--order stage {stage!r}: expected CONFIGS:METHODS:SEEDS, e.g. W2A2,W3A3:qdrop,aquant:0,1,2")
        configs, methods, seeds = (p.split(",") for p in parts)
        for config in configs:
            parse_bits(config)
        for method in methods:
            if method not in {m.value for m in Method}:
                raise ConfigError(f"--order stage {stage!r}: unknown method {method!r}; choose from {', '.join(m.value for m in Method)}")
        if not all(s.isdigit() for s in seeds):
            raise ConfigError(f"--order stage {stage!r}: seeds must be non-negative integers, got {parts[2]!r}")
        plan += [(c, m, int(s)) for s in seeds for c in configs for m in methods]
    return list(dict.fromkeys(plan))


# --- calibration configs from a run's spec -----------------------------------------------------

def parse_overrides(items) -> dict:
    """``key=value`` texts to ``{key: value}``; a value is JSON if it parses, else the text."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. quant.granularity=tensor")
        if key in AXES:
            raise ConfigError(f"--set {key}: set by the sweep itself (method, WxAy and seed come from --order)")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


def _coerce(value, hint, key: str):
    """``value`` (parsed JSON) as the declared type ``hint`` of a config field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            pass
    elif origin is tuple and isinstance(value, list):
        kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(kinds) == len(value):
            return tuple(_coerce(v, k, key) for v, k in zip(value, kinds))
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif hint in (int, str, bool) and type(value) is hint:
        return value
    kind = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        kind += f" (one of {', '.join(str(m.value) for m in hint)})"
    raise ConfigError(f"--set {key}: {json.dumps(value)} is not a value of type {kind}")


def apply_overrides(config, overrides: dict):
    """``config`` (a frozen dataclass) with each dotted field replaced; the dataclasses' own checks
    run on the result, so a bad value fails here, before any run starts."""
    for key, value in overrides.items():
        config = _replace(config, key.split("."), value, key)
    return config


def _replace(obj, path: list[str], value, key: str):
    names = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
    if path[0] not in names:
        where = type(obj).__name__
        raise ConfigError(f"--set {key}: {where} has no field {path[0]!r}" + (f" (fields: {', '.join(names)})" if names else ""))
    if len(path) > 1:
        new = _replace(getattr(obj, path[0]), path[1:], value, key)
    else:
        new = _coerce(value, typing.get_type_hints(type(obj))[path[0]], key)
    return dataclasses.replace(obj, **{path[0]: new})


def calibration_config(spec: dict):
    """The ``CalibrationConfig`` of a run: the front-end's defaults, the run's method, bits and
    seed, then its overrides."""
    from aquant_sim.frontend.methods import Method
    from aquant_sim.frontend.pipeline import CalibrationConfig

    w_bits, a_bits = parse_bits(spec["config"])
    base = CalibrationConfig()
    config = dataclasses.replace(base, method=Method(spec["method"]),
                                 quant=dataclasses.replace(base.quant, weight_bits=w_bits, act_bits=a_bits),
                                 reconstruction=dataclasses.replace(base.reconstruction, seed=spec["seed"]))
    return apply_overrides(config, spec["overrides"])


def to_json(value):
    """A config as plain JSON: dataclasses as objects, Enums by value, tuples as lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


ADDED_FIELDS = {"reconstruction.exact_share": 0.0}
"""Config fields added after records were written, each with the value those records ran with
(the code then had no such setting and behaved as this value does): a record whose stored
calibration config lacks the key counts as having that value. A new field whose default keeps
the old behaviour goes here, so that it leaves every finished run current."""


def completed(record: dict) -> dict:
    """The record with :data:`ADDED_FIELDS` it lacks filled into its calibration config."""
    calibration = json.loads(json.dumps(record["calibration"]))
    for key, value in ADDED_FIELDS.items():
        *path, field = key.split(".")
        section = calibration
        for part in path:
            section = section.setdefault(part, {})
        section.setdefault(field, value)
    return {**record, "calibration": calibration}


def run_key(record: dict) -> str:
    return json.dumps({k: record[k] for k in SPEC}, sort_keys=True)


def is_current(record: dict) -> bool:
    """Whether the record's calibration config (:func:`completed`) is what this code resolves
    for its spec."""
    try:
        return completed(record)["calibration"] == to_json(calibration_config(record))
    except (AquantError, KeyError, ValueError, TypeError):
        return False


def current_runs(records: list[dict]) -> list[dict]:
    """The records that still count, one per run (the last one written), :func:`completed`."""
    return list({run_key(r): completed(r) for r in records if is_current(r)}.values())


def check_compatible(jobs: list[dict], done: list[dict]) -> None:
    """Per model one weights file, dataset and pair of sizes; one set of overrides for the untagged
    runs (the main table). Raises before any run starts."""
    if not jobs:
        return
    job = jobs[0]  # the fields checked are the same in every job of a sweep
    for record in (r for r in done if r["model"] == job["model"]):
        for name in SECTION:
            if record[name] != job[name]:
                raise ConfigError(f"{job['model']}: the file holds runs with {name} {record[name]!r}, this sweep has {job[name]!r}; "
                                  f"use another --runs file")
        if not record["ablation"] and not job["ablation"] and record["overrides"] != job["overrides"]:
            raise ConfigError(f"untagged runs of {job['model']} in the file use overrides {record['overrides']}, this sweep "
                              f"{job['overrides']}: tag it with --ablation NAME or use another --runs file")


# --- one run (a Ray task) ----------------------------------------------------------------------

def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_job(job: dict) -> dict:
    """Calibrate and evaluate one run; returns its record (the job plus its results)."""
    import torch

    from aquant_sim.data import load_dataset
    from aquant_sim.evaluation import evaluate
    from aquant_sim.frontend.pipeline import calibrate
    from aquant_sim.frontend.threads import use_threads
    from aquant_sim.models import load_model
    from aquant_sim.simulator import Backend

    started = time.perf_counter()
    use_threads(job["threads"])
    torch.manual_seed(job["seed"])
    host = socket.gethostname()
    if file_sha256(job["weights"]) != job["weights_sha256"]:
        raise ConfigError(f"{host}:{job['weights']}: not the weights file the sweep was started with (sha256 differs)")
    config = calibration_config(job)
    calib_set = load_dataset(job["dataset"], "train", limit=job["calib_size"], seed=job["seed"])
    test_set = load_dataset(job["dataset"], "test", limit=job["eval_size"], seed=0)
    model, _ = load_model(job["weights"])
    calibrated = calibrate(model, torch.from_numpy(np.array(calib_set.images)), config, progress=False)
    report = evaluate(calibrated, test_set.images, test_set.labels, Backend(job["backend"])).as_dict()
    level_diff = report.pop("level_diff")
    return {
        **job, **report, "calibration": to_json(config),
        "level_diff_max": {k: max(d[k] for d in level_diff.values()) for k in next(iter(level_diff.values()), {})},
        "units": [u.as_dict() for u in calibrated.units], "calibration_seconds": calibrated.seconds,
        "wall_seconds": time.perf_counter() - started, "host": host,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def describe(record: dict) -> str:
    """One line: which run, and what it scored."""
    tag = f" [{record['ablation']}]" if record["ablation"] else ""
    return (f"{record['config']} {record['method']} seed {record['seed']}{tag}: integer {100 * record['integer_accuracy']:.2f} "
            f"fake-quant {100 * record['fake_quant_accuracy']:.2f} agreement {100 * record['top1_agreement']:.2f}% "
            f"({record['wall_seconds']:.0f} s)")


# --- the sweep ---------------------------------------------------------------------------------

def sweep(jobs: list[dict], store, task=run_job, retries: int = 1, on_record=None) -> list[tuple[dict, str]]:
    """Run ``jobs`` as Ray tasks (Ray initialised by the caller), in order as CPUs free up;
    append each record to ``store`` as it arrives and call ``on_record(record)``. Returns the
    failed runs with their one-line reasons."""
    import ray
    from tqdm import tqdm

    threads = max(job["threads"] for job in jobs) if jobs else 1
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    remote = ray.remote(num_cpus=threads, max_retries=retries)(task)
    queue, pending, failed = collections.deque(jobs), {}, []
    with tqdm(total=len(jobs), desc="runs", unit="run", dynamic_ncols=True) as bar:
        while queue or pending:
            while queue and len(pending) < slots:
                job = queue.popleft()
                pending[remote.remote(job)] = job
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except ray.exceptions.RayError as error:
                reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                failed.append((job, f"{type(error).__name__}: {reason}"))
                bar.write(f"failed: {job['config']} {job['method']} seed {job['seed']}: {failed[-1][1]}")
            else:
                store.append(record)
                bar.set_postfix_str(describe(record))
                if on_record is not None:
                    on_record(record)
            bar.update()
    return failed


def resume(jobs: list[dict], store, start, task=run_job, retries: int = 1, on_record=None, on_start=None) -> list[tuple[dict, str]]:
    """Run the jobs that ``store`` does not hold yet, holding its lock: check them against the
    file, call ``on_start()``, then (if any is left) ``start()`` (which initialises Ray) and
    :func:`sweep`. Returns the failed runs."""
    with store.lock():
        done = current_runs(store.read()[0])
        check_compatible(jobs, done)
        keys = {run_key(r) for r in done}
        todo = [job for job in jobs if run_key(job) not in keys]
        print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already in {store.path}; {len(todo)} to run")
        if on_start is not None:
            on_start()
        if not todo:
            return []
        start()
        return sweep(todo, store, task, retries, on_record)


def runtime_env(threads: int, cluster: bool) -> dict:
    """What Ray workers need: this checkout's code (on this machine, by path, so that they also
    share its numba cache; on a cluster, shipped as modules) and thread counts that match the
    CPUs a task holds (torch's is set in the task)."""
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    if cluster:
        return {"py_modules": [str(REPO / "aquant_sim"), str(REPO / "hw_models")], "env_vars": env}
    return {"env_vars": {**env, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tools")])}}


def start_ray(address: str | None, cpus: int, threads: int) -> None:
    import ray

    if address:
        ray.init(address=address, runtime_env=runtime_env(threads, cluster=True))
    else:
        # "local": a new instance of our own even where a cluster already runs on this machine
        # (with no address, ray.init would join that cluster and refuse num_cpus).
        ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                 runtime_env=runtime_env(threads, cluster=False))


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def make_jobs(args, plan, command: str) -> list[dict]:
    from aquant_sim.errors import InputError
    from aquant_sim.models import read_header

    if args.weights is None or not args.weights.is_file():
        raise InputError(f"--weights {args.weights}: no such file (train one with `aquant train`)")
    recorded = (read_header(args.weights).get("model") or {}).get("name")
    if recorded != args.model:
        raise ConfigError(f"--model {args.model}: the weights in {args.weights} are of model {recorded}")
    overrides = parse_overrides(args.set)
    common = {"model": args.model, "weights": str(args.weights.resolve()), "weights_sha256": file_sha256(args.weights),
              "dataset": args.dataset, "calib_size": args.calib_size, "eval_size": args.eval_size,
              "ablation": args.ablation, "overrides": overrides, "threads": args.threads, "backend": args.backend,
              "commit": git_commit(), "command": command}
    jobs = [{**common, "config": c, "method": m, "seed": s} for c, m, s in plan]
    for job in jobs:
        calibration_config(job)  # every config is checked before the first run starts
    return jobs


def main(argv=None) -> int:
    from aquant_sim.simulator import Backend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--weights", type=Path, help="float weights (.npz written by aquant train)")
    parser.add_argument("--model", default="resnet20", help="zoo model the weights are of (default resnet20)")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--calib-size", type=int, default=1024, help="calibration images from the train split (default 1024)")
    parser.add_argument("--eval-size", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--order", nargs="+", default=list(DEFAULT_ORDER), metavar="CONFIGS:METHODS:SEEDS",
                        help="runs in priority order, stage by stage (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a CalibrationConfig field (repeatable)")
    parser.add_argument("--ablation", default="", help="tag these runs as the ablation NAME (shown in its own table)")
    parser.add_argument("--threads", type=int, default=1, help="CPUs (torch/BLAS/numba threads) per run (default 1)")
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)), help="CPUs of the local Ray instance (default: this process's cores)")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead of starting one here")
    parser.add_argument("--retries", type=int, default=2, help="Ray retries of a run whose worker died (default 2)")
    parser.add_argument("--backend", choices=[b.value for b in Backend], default=Backend.NUMBA.value)
    parser.add_argument("--runs", type=Path, default=REPO / "docs" / "results" / "runs.jsonl", help="the JSONL file of runs")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results.md", help="the document (its plot beside it)")
    parser.add_argument("--notes", type=Path, default=None, help="markdown added to the document (what was tried, what it shows)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the document from --runs, run nothing")
    args = parser.parse_args(argv)
    command = "python tools/results_table.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        plan = parse_order(args.order)
        store = RunStore(args.runs)
        notes = args.notes.read_text() if args.notes else None

        def report():
            records = store.read()[0]
            results_report.write_report(records, current_runs(records), AXES, args.runs, args.out, command, notes)

        if args.report_only:
            report()
            return 0
        jobs = make_jobs(args, plan, command)
        failed = resume(jobs, store, lambda: start_ray(args.address, args.cpus, args.threads), retries=args.retries,
                        on_record=lambda record: report(), on_start=report)
    except (AquantError, OSError) as error:
        print(f"results_table: error: {error}", file=sys.stderr)
        return 2
    for job, reason in failed:
        print(f"not finished: {job['config']} {job['method']} seed {job['seed']}: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
