"""Evaluation over Ray: the same logits as one process, in order, and bad input refused first."""

import numpy as np
import pytest
import ray

from aquant_sim.artifact import save_program
from aquant_sim.errors import InputError
from aquant_sim.evaluation import program_logits
from aquant_sim.ray_evaluation import program_logits_on_ray
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet


@pytest.fixture(scope="module")
def local_ray():
    # "local": our own instance even where a cluster already runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture
def artifact(tmp_path):
    program = synthetic_resnet(SyntheticConfig(input_shape=(1, 8, 8), widths=(4, 8), blocks=(1, 1)))
    return program, save_program(program, tmp_path / "net.aqp")


def test_ray_logits_equal_a_single_process_run(local_ray, artifact):
    """7 images in batches of 3 (3 + 3 + 1 tasks): every logit equals program_logits', in order."""
    program, path = artifact
    images = np.random.default_rng(0).standard_normal((7, 1, 8, 8))
    got = program_logits_on_ray(path, images, "local", batch=3)
    want = program_logits(program, images)
    assert got.shape == want.shape == (7, 10)
    assert np.array_equal(got, want)
    assert not np.array_equal(got[0], got[1])  # the images differ, so order is checked


def test_bad_images_fail_before_any_task(local_ray, artifact):
    """A NaN is refused by the input check, with its index, before tasks are submitted."""
    _, path = artifact
    images = np.zeros((4, 1, 8, 8))
    images[2, 0, 1, 1] = np.nan
    with pytest.raises(InputError, match=r"index \(2, 0, 1, 1\)"):
        program_logits_on_ray(path, images, "local", batch=2)
