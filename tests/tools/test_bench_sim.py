"""bench_sim's load refusal and its torch int8 peer."""

import numpy as np
import torch
from bench_sim import TorchPeer, load_refusal, print_ratios, torch_int8

from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet


def test_ratios_refused_above_the_core_count():
    """A 1-minute load above the cores, before or after the timing, refuses and says why."""
    assert load_refusal(1.9, 2.0, 2) is None
    assert "2.10" in load_refusal(2.1, 0.5, 2) and "2 cores" in load_refusal(2.1, 0.5, 2)
    assert "3.00" in load_refusal(0.5, 3.0, 2)


def test_ratio_lines_follow_the_refusal(capsys):
    """Refused: one line saying why and no ratio; allowed under load: every ratio named
    *_loaded, with the reason; idle: the plain names."""
    seconds = {"w4a4": 1.0, "w8a8": 2.0, "torch_fp32": 4.0, "torch_int8": 0.5}
    print_ratios(seconds, "too busy", False)
    assert capsys.readouterr().out == "ratios_refused: too busy\n"
    print_ratios(seconds, "too busy", True, "_cpu_1thread")
    loaded = capsys.readouterr().out.splitlines()
    assert loaded[:3] == ["sim_over_torch_fp32_cpu_1thread_loaded: 0.250", "sim_over_torch_fp32_w8a8_cpu_1thread_loaded: 0.500",
                          "sim_over_torch_int8_cpu_1thread_loaded: 4.000"]
    assert "too busy" in loaded[3]
    print_ratios(seconds, None, False)
    assert capsys.readouterr().out.splitlines()[0] == "sim_over_torch_fp32: 0.250"


def test_torch_int8_peer_runs_quantized_kernels():
    """The int8 peer replaces every conv and the linear layer by torch's quantized modules and
    computes nearly what the float peer computes (8-bit rounding only)."""
    program = synthetic_resnet(SyntheticConfig(input_shape=(1, 8, 8), widths=(4, 8), blocks=(1, 1)))
    peer = TorchPeer(program).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32))
    quantized = torch_int8(peer, x)
    kinds = {type(m) for m in quantized.modules()}
    assert torch.ao.nn.quantized.Linear in kinds
    assert kinds & {torch.ao.nn.quantized.Conv2d, torch.ao.nn.intrinsic.quantized.ConvReLU2d}
    assert not any(type(m) is torch.nn.Conv2d for m in quantized.modules())
    with torch.no_grad():
        want, got = peer(x), quantized(x)
    assert got.shape == want.shape
    assert np.corrcoef(got.numpy().ravel(), want.numpy().ravel())[0, 1] > 0.9
