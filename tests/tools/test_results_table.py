"""The sweep tool: its plan, config overrides, what counts as done, and a sweep whose worker is
killed (Ray on 2 local CPUs, a narrow ResNet-20 and a few Fashion-MNIST images)."""

import argparse
import json
import os

import pytest
import ray
import torch

import results_table as rt
from aquant_sim.errors import ConfigError
from aquant_sim.models import build_model, save_weights
from aquant_sim.program import BorderGranularity
from run_store import RunStore


def test_default_order_puts_the_paired_question_first_and_covers_the_grid():
    """W2A2 qdrop/aquant seed by seed, then W3A3's, then the other methods there, then W4A4 and
    W2A4: every method, configuration and seed of the table once."""
    plan = rt.parse_order(rt.DEFAULT_ORDER)
    assert plan[:6] == [("W2A2", "qdrop", 0), ("W2A2", "aquant", 0), ("W2A2", "qdrop", 1), ("W2A2", "aquant", 1),
                        ("W2A2", "qdrop", 2), ("W2A2", "aquant", 2)]
    assert plan[6:12] == [("W3A3", m, s) for s in range(3) for m in ("qdrop", "aquant")]
    assert {c for c, _, _ in plan[12:30]} == {"W2A2", "W3A3"} and {c for c, _, _ in plan[30:]} == {"W4A4", "W2A4"}
    assert len(plan) == len(set(plan)) == 5 * 4 * 3
    assert rt.parse_order(["W2A2:qdrop:0", "W2A2,W3A3:qdrop:0"]) == [("W2A2", "qdrop", 0), ("W3A3", "qdrop", 0)]


@pytest.mark.parametrize("stage, message", [("W2A2:qdrop", "expected CONFIGS:METHODS:SEEDS"), ("W2:qdrop:0", "expected WxAy"),
                                            ("W2A2:nope:0", "unknown method 'nope'"), ("W2A2:qdrop:x", "seeds must be")])
def test_bad_order_is_one_clear_error(stage, message):
    with pytest.raises(ConfigError, match=message):
        rt.parse_order([stage])


def _spec(**changes):
    spec = {"model": "resnet20", "weights_sha256": "0" * 64, "dataset": "fashion-mnist", "calib_size": 8, "eval_size": 16,
            "config": "W3A2", "method": "aquant", "seed": 4, "ablation": "", "overrides": {}}
    return {**spec, **changes}


def test_overrides_reach_any_config_field_with_its_type():
    """``--set`` values are parsed as JSON and coerced to the field's declared type (Enum by value,
    tuple from a list, float from an int); the axes come from the spec."""
    overrides = rt.parse_overrides(["quant.granularity=tensor", "reconstruction.tau=[0.2,0.01]", "reconstruction.border_lr=1",
                                    "quant.frac_bits=4"])
    config = rt.calibration_config(_spec(overrides=overrides))
    assert config.quant.granularity is BorderGranularity.TENSOR and config.quant.frac_bits == 4
    assert config.reconstruction.tau == (0.2, 0.01) and type(config.reconstruction.border_lr) is float
    assert (config.quant.weight_bits, config.quant.act_bits, config.reconstruction.seed, config.method.value) == (3, 2, 4, "aquant")
    assert rt.to_json(config)["quant"]["granularity"] == "tensor"


@pytest.mark.parametrize("item, message", [
    ("quant.nope=1", "QuantConfig has no field 'nope'"), ("quant.granularity=bogus", "one of tensor, channel"),
    ("reconstruction.tau=[0.1]", r"tuple\[float, float\]"), ("reconstruction.iters=-1", "iters must be >= 0"),
    ("quant.weight_bits=3", "set by the sweep itself"), ("quant", "expected key=value"),
])
def test_bad_override_is_one_clear_error(item, message):
    """A wrong key, type or value fails when the configs are built, before any run."""
    with pytest.raises(ConfigError, match=message):
        rt.calibration_config(_spec(overrides=rt.parse_overrides([item])))


def test_a_record_counts_only_while_its_config_is_what_the_code_resolves():
    """A record whose stored config differs from the one resolved now (a default changed since)
    is not current and its run is made again; of two current records of a run the last counts."""
    spec = _spec(overrides={"reconstruction.iters": 3})
    record = {**spec, "calibration": rt.to_json(rt.calibration_config(spec)), "integer_accuracy": 0.5}
    stale = json.loads(json.dumps(record))
    stale["calibration"]["reconstruction"]["weight_lr"] *= 2
    later = {**record, "integer_accuracy": 0.6}
    assert rt.is_current(record) and not rt.is_current(stale)
    assert rt.current_runs([record, stale, later]) == [later]
    assert not rt.is_current({**record, "overrides": {"quant.gone": 1}})


def test_a_record_from_before_an_added_field_counts_as_having_its_old_value():
    """A record written before ``reconstruction.exact_share`` existed (its stored config lacks
    the key) counts as having run with 0.0 (``ADDED_FIELDS``): it stays current and is reported
    with the key, the record itself left as it was; a run with exact_share 0.1 is another run,
    which the old record does not stand for."""
    spec = _spec(overrides={"reconstruction.iters": 3})
    old = {**spec, "calibration": rt.to_json(rt.calibration_config(spec))}
    del old["calibration"]["reconstruction"]["exact_share"]
    assert rt.is_current(old)
    assert rt.current_runs([old])[0]["calibration"] == rt.to_json(rt.calibration_config(spec))
    assert "exact_share" not in old["calibration"]["reconstruction"]
    exact = _spec(overrides={"reconstruction.iters": 3, "reconstruction.exact_share": 0.1})
    new = {**exact, "calibration": rt.to_json(rt.calibration_config(exact))}
    assert rt.is_current(new) and rt.run_key(new) != rt.run_key(old)
    assert not rt.is_current({**old, "overrides": exact["overrides"]})
    assert len(rt.current_runs([old, new])) == 2


def test_a_sweep_must_match_the_runs_in_its_file():
    """Other weights or sizes for the same model, or other overrides for untagged runs, stop a
    sweep before it runs anything; tagged runs may differ."""
    done = [_spec(overrides={"reconstruction.iters": 3})]
    with pytest.raises(ConfigError, match="calib_size 8, this sweep has 16"):
        rt.check_compatible([_spec(calib_size=16, overrides={"reconstruction.iters": 3})], done)
    with pytest.raises(ConfigError, match="tag it with --ablation"):
        rt.check_compatible([_spec()], done)
    rt.check_compatible([_spec(ablation="f", overrides={"quant.frac_bits": 4})], done)
    rt.check_compatible([_spec(model="mobilenetv2", calib_size=16)], done)


def _killing_task(marks, kills):
    """A task that SIGKILLs its own worker the first ``kills[run]`` times a run starts (counted by
    marker files), and otherwise runs the real one; every start is logged."""
    def task(job):
        import os
        import signal

        from results_table import run_job

        name = f"{job['config']}-{job['method']}-{job['seed']}"
        with open(marks / "started", "a") as log:
            log.write(name + "\n")
        killed = len(list(marks.glob(f"killed-{name}-*")))
        if killed < kills.get(name, 0):
            (marks / f"killed-{name}-{killed}").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return run_job(job)
    return task


def test_a_killed_worker_loses_no_finished_run_and_only_unfinished_runs_are_made_again(tmp_path):
    """Four runs on 2 CPUs. Invocation 1 (no Ray retries): the third run's worker is killed; it is
    reported failed, the three others are in the file. Invocation 2 (one retry): only that run
    starts again, its worker is killed once more and Ray's retry finishes it. Invocation 3 starts
    nothing and leaves the file byte for byte as it was."""
    torch.manual_seed(0)
    weights = tmp_path / "r20.npz"
    save_weights(build_model("resnet20", 1, 10, width=4), weights)
    args = argparse.Namespace(weights=weights, model="resnet20", dataset="fashion-mnist", calib_size=8, eval_size=16, ablation="",
                              set=["reconstruction.iters=2", "reconstruction.batch_size=4"], threads=1, backend="reference")
    plan = [("W2A2", "rtn", 0), ("W2A2", "qdrop", 0), ("W2A2", "aquant", 0), ("W3A3", "rtn", 0)]
    jobs = rt.make_jobs(args, plan, "test")
    store, marks = RunStore(tmp_path / "runs.jsonl"), tmp_path / "marks"
    marks.mkdir()
    task = _killing_task(marks, {"W2A2-aquant-0": 2})

    def started():
        return (marks / "started").read_text().split() if (marks / "started").exists() else []

    def finished():
        return sorted((r["config"], r["method"], r["seed"]) for r in store.read()[0])

    ray.init(address="local", num_cpus=2, include_dashboard=False, runtime_env=rt.runtime_env(1, cluster=False))
    try:
        failed = rt.resume(jobs, store, lambda: None, task, retries=0)
        assert [job["method"] for job, _ in failed] == ["aquant"] and "WorkerCrashedError" in failed[0][1]
        assert finished() == sorted(set(plan) - {("W2A2", "aquant", 0)})
        assert sorted(started()) == sorted(f"{c}-{m}-{s}" for c, m, s in plan)

        assert rt.resume(jobs, store, lambda: None, task, retries=1) == []
        assert finished() == sorted(plan)
        assert started()[4:] == ["W2A2-aquant-0", "W2A2-aquant-0"]

        before = store.path.read_bytes()
        assert rt.resume(jobs, store, lambda: pytest.fail("Ray started with nothing to run"), task, retries=1) == []
        assert len(started()) == 6 and store.path.read_bytes() == before
    finally:
        ray.shutdown()
    records = store.read()[0]
    assert all(rt.is_current(r) and r["samples"] == 16 and os.path.samefile(r["weights"], weights) for r in records)


def test_a_sweep_on_this_machine_starts_its_own_ray_where_a_cluster_is_already_known(monkeypatch):
    """RAY_ADDRESS (as `ray start` or a user's shell leaves it) names a cluster: without an address
    of its own, ray.init would join it and refuse --cpus. The sweep's local instance holds exactly
    the CPUs it was given."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    rt.start_ray(None, cpus=1, threads=1)
    try:
        assert ray.cluster_resources()["CPU"] == 1
    finally:
        ray.shutdown()
