"""Float training and evaluation."""

import os

import numpy as np
import pytest
import torch

from aquant_sim.data import Dataset, load_dataset
from aquant_sim.errors import ConfigError
from aquant_sim.models import build_model
from aquant_sim.models.training import evaluate, limit_threads, predict, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-digits", "train", limit=128, seed=1)


def _fresh(seed=0):
    torch.manual_seed(seed)
    return build_model("resnet20", width=4)


def test_same_seed_same_weights(digits):
    """Two runs with the same seed (initialisation and data order) give bit-identical weights."""
    first, second = _fresh(), _fresh()
    train(first, digits, epochs=1, batch_size=32, lr=0.05, seed=3, progress=False)
    train(second, digits, epochs=1, batch_size=32, lr=0.05, seed=3, progress=False)
    for key, tensor in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], tensor), key


def test_other_seed_other_order(digits):
    """Another data-order seed from the same initial weights gives different weights."""
    first, second = _fresh(), _fresh()
    train(first, digits, epochs=1, batch_size=32, lr=0.05, seed=3, progress=False)
    train(second, digits, epochs=1, batch_size=32, lr=0.05, seed=4, progress=False)
    assert not torch.equal(first.fc.weight, second.fc.weight)


def test_loss_falls_and_result_is_reported(digits):
    """Over three epochs on real digits the training loss falls, and the result reports every epoch."""
    result = train(_fresh(), digits, epochs=3, batch_size=32, lr=0.05, seed=0, progress=False)
    losses = [epoch["loss"] for epoch in result["epochs"]]
    assert losses[2] < losses[0]
    assert [epoch["epoch"] for epoch in result["epochs"]] == [1, 2, 3]
    assert result["images"] == 128 and result["final_loss"] == losses[2]
    assert all(0.0 <= epoch["accuracy"] <= 1.0 and epoch["seconds"] > 0 for epoch in result["epochs"])


def _linear_picker():
    """Flatten + Linear that returns the first 10 pixels as logits: predicts the argmax pixel."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(10, 16))
    return model


def test_evaluate_counts_top1_hits():
    """evaluate is the fraction of images whose largest logit is their label (3 of 4 here)."""
    images = np.zeros((4, 1, 4, 4), dtype=np.float32)
    flat = images.reshape(4, 16)
    flat[[0, 1, 2, 3], [2, 7, 0, 9]] = 1.0
    dataset = Dataset("toy", images, np.array([2, 7, 0, 5]), tuple("abcdefghij"), (0.0,), (1.0,))
    assert evaluate(_linear_picker(), dataset, batch_size=3) == 0.75


def test_predict_restores_training_mode():
    """predict evaluates in eval mode and leaves the model in the mode it found."""
    model = _fresh().train()
    logits = predict(model, np.zeros((5, 1, 28, 28), dtype=np.float32), batch_size=2)
    assert logits.shape == (5, 10) and model.training


@pytest.mark.parametrize(("epochs", "batch_size", "lr"), [(0, 32, 0.1), (1, 1, 0.1), (1, 32, 0.0), (1, 32, float("nan"))])
def test_bad_settings(digits, epochs, batch_size, lr):
    """Zero epochs, batches of one and non-positive or NaN learning rates are ConfigErrors."""
    with pytest.raises(ConfigError):
        train(_fresh(), digits, epochs=epochs, batch_size=batch_size, lr=lr, seed=0, progress=False)


def test_divergence_is_reported(digits):
    """A learning rate that makes the loss overflow is a ConfigError, not silent NaN weights."""
    with pytest.raises(ConfigError, match="diverged"):
        train(_fresh(), digits, epochs=1, batch_size=32, lr=1e30, seed=0, progress=False)


def test_limit_threads():
    """limit_threads sets torch's thread count within [1, available cores] and refuses anything else."""
    before = torch.get_num_threads()
    try:
        assert limit_threads(1) == 1 and torch.get_num_threads() == 1
        assert limit_threads() == len(os.sched_getaffinity(0)) == torch.get_num_threads()
        with pytest.raises(ConfigError, match="threads must lie in"):
            limit_threads(0)
        with pytest.raises(ConfigError, match="threads must lie in"):
            limit_threads(len(os.sched_getaffinity(0)) + 1)
    finally:
        torch.set_num_threads(before)
