"""Model tests run torch on one thread: their tensors are tiny, and on a busy shared machine two
threads waiting for each other made them several times slower (tools/bench_train_threads.py)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
