"""The check every artifact fixture of an older format (tests/data/artifact_v*) shares: its
program simulates to the integers stored beside it."""

from pathlib import Path

import numpy as np

from aquant_sim.simulator import Simulator


def assert_stored_run(program, backend, folder: Path, inputs: Path | None = None) -> None:
    """``program`` run by ``backend`` on ``inputs`` (``folder/input.npy`` unless given) gives
    ``folder/output.npy`` and every tensor of ``folder/tensors.npz``, which names exactly the
    tensors the run keeps."""
    result = Simulator(program, backend).run(np.load(inputs or folder / "input.npy"), keep_tensors=True)
    np.testing.assert_array_equal(result.output, np.load(folder / "output.npy"))
    with np.load(folder / "tensors.npz") as stored:
        assert sorted(stored.files) == sorted(result.tensors)
        for name in stored.files:
            np.testing.assert_array_equal(result.tensors[name], stored[name], err_msg=name)
