"""``aquant evaluate``: the same accuracy on one process and over Ray (``--address``)."""

import ray

from aquant_sim.artifact import save_program
from aquant_sim.cli import main
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet


def test_ray_evaluation_prints_the_single_process_accuracy(tmp_path, capsys):
    """40 bundled MNIST digits on a random 28x28 program: identical output lines either way."""
    program = synthetic_resnet(SyntheticConfig(input_shape=(1, 28, 28), widths=(4,), blocks=(1,)))
    artifact = save_program(program, tmp_path / "net.aqp")
    args = ["evaluate", str(artifact), "--data", "mnist-digits", "--limit", "40"]
    assert main(args) == 0
    single = capsys.readouterr().out
    try:
        assert main([*args, "--address", "local"]) == 0
    finally:
        ray.shutdown()
    assert capsys.readouterr().out == single
    assert "images: 40" in single
