"""The training-time fake quantizer and QDrop's selection: both backends against a plain-autograd
reference and against each other."""

import numpy as np
import pytest
import torch

import numba

from aquant_sim.errors import InputError
from aquant_sim.frontend.border_round import (
    Backend, border_round, draw_uniform16, gather_select, keep_threshold, random_select,
)
from aquant_sim.frontend.emulation import lookup
from aquant_sim.frontend.quantizers import ActQuantizer, BorderMode
from aquant_sim.program import BorderGranularity

ZERO_POINT, QMIN, QMAX = 1, 0, 3


def _table(granularity, channels, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = granularity.table_shape(channels, 2)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 0.8 + 0.1).to(dtype)


def _autograd_reference(x, scale, table, soft, tau, keep):
    """The quantizer written with plain autograd ops (straight-through estimator, C.4-C.5)."""
    u = x / scale + ZERO_POINT
    k = torch.floor(u).detach()
    f = (u - k).detach()
    j = (k.clamp(QMIN, QMAX - 1) - QMIN).long()
    beta = lookup(table, j)
    up = torch.sigmoid((f - beta) / tau) if soft else (f >= beta).to(x.dtype)
    q = torch.clamp(k + up + (u - u.detach()), QMIN, QMAX)
    out = (q - ZERO_POINT) * scale
    return out if keep is None else torch.where(keep, x, out)


def _same(a, b):
    """Equal values, element for element (-0 equals +0: a gradient's sign of zero is no value)."""
    return a.shape == b.shape and bool((a == b).all())


def _run(fn, x, scale, table, weight):
    for p in (x, scale, table):
        p.grad = None
    out = fn()
    (out * weight).sum().backward()
    return out.detach(), x.grad.clone(), scale.grad.clone(), None if table.grad is None else table.grad.clone()


def _inputs(dtype, channels=3, seed=9):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(16, channels, 5, 4, generator=g, dtype=torch.float64) * 3 - 1.1).to(dtype).requires_grad_(True)
    weight = torch.randn(16, channels, 5, 4, generator=g, dtype=torch.float64).to(dtype)
    return x, torch.tensor(0.61, dtype=dtype, requires_grad=True), weight


@pytest.mark.parametrize("backend", list(Backend))
@pytest.mark.parametrize("granularity", list(BorderGranularity))
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("drop", [None, 0.5])
def test_gradients_match_autograd(backend, granularity, soft, drop):
    """Values and gradients for input, scale and borders equal those of the same function written
    with autograd ops (float64: values of hard rounding equal, the rest within 1e-12; autograd's dx
    is g (1/s) s, one rounding away from the g both backends give)."""
    x, scale, weight = _inputs(torch.float64)
    table = _table(granularity, 3, torch.float64).requires_grad_(soft)
    torch.manual_seed(3)
    draws = draw_uniform16(tuple(x.shape)) if drop else None
    threshold = keep_threshold(drop or 0.0)
    keep = None if draws is None else draws.to(torch.int32) < threshold
    ref = _run(lambda: _autograd_reference(x, scale, table, soft, 0.3, keep), x, scale, table, weight)
    got = _run(lambda: border_round(x, scale, table, ZERO_POINT, QMIN, QMAX, soft, 0.3, draws, threshold, backend),
               x, scale, table, weight)
    if not soft:
        assert _same(ref[0], got[0])
        assert got[3] is None
    for a, b in zip(ref, got):
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("granularity", list(BorderGranularity))
@pytest.mark.parametrize("soft", [False, True])
def test_backends_agree_in_float32(granularity, soft):
    """In float32 (the training dtype) values and dx are equal between the backends, hard and soft
    (both take torch's sigmoid of the same argument); the sums within float32 accumulation error."""
    x, scale, weight = _inputs(torch.float32, channels=4)
    table = _table(granularity, 4, torch.float32).requires_grad_(soft)
    torch.manual_seed(4)
    draws = draw_uniform16(tuple(x.shape))
    runs = [_run(lambda: border_round(x, scale, table, ZERO_POINT, QMIN, QMAX, soft, 0.3, draws, keep_threshold(0.5), b),
                 x, scale, table, weight) for b in Backend]
    (ref, got) = runs
    assert _same(ref[0], got[0]) and _same(ref[1], got[1])
    for a, b in zip(ref[2:], got[2:]):
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_act_quantizer_backends_agree_on_a_linear_layer_output():
    """Two-dimensional activations (a linear layer's, channels on axis 1) take the same path."""
    act = ActQuantizer(2, 0.4, 1, 6, BorderGranularity.CHANNEL_LEVEL, frac_bits=6)
    act.mode = BorderMode.HARD
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(2))
    outs = [border_round(x, act.scale, act.beta(), 1, act.qmin, act.qmax, False, 1.0, backend=b) for b in Backend]
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[1], act(x))


def test_draws_are_uniform_and_keep_at_the_rate_asked():
    """Each of the four 16-bit lanes of a 64-bit draw is uniform; the share kept is p to within
    sampling error (400,000 draws: 5 standard deviations) and exact at p = 0 and 1."""
    torch.manual_seed(0)
    draws = draw_uniform16((100_000, 4))
    for lane in range(4):
        column = draws[:, lane].to(torch.int32)
        assert abs(float((column < 0).double().mean()) - 0.5) < 5 * 0.5 / np.sqrt(100_000)
    flat = draws.flatten().to(torch.int32)
    for p in (0.1, 0.5, 0.9):
        share = float((flat < keep_threshold(p)).double().mean())
        assert abs(share - p) < 5 * np.sqrt(p * (1 - p) / flat.numel())
    assert bool((flat < keep_threshold(1.0)).all()) and not bool((flat < keep_threshold(0.0)).any())


def _splitmix64(state: int, count: int) -> list[int]:
    """SplitMix64's first ``count`` outputs from ``state``, in Python integers (the reference of
    the draws' kernel)."""
    mask, words = (1 << 64) - 1, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        words.append(z ^ (z >> 31))
    return words


def test_draws_are_splitmix64_from_one_draw_of_torchs_generator():
    """The draws are SplitMix64's words (four int16 each, low half first) from a state that is one
    64-bit draw of torch's global generator, whatever numba's thread count."""
    torch.manual_seed(9)
    key = int(torch.empty(1, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1)) & ((1 << 64) - 1)
    expected = np.array(_splitmix64(key, 26), dtype=np.uint64).view(np.int16)[:101].reshape(1, 101)
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            torch.manual_seed(9)
            draws = draw_uniform16((1, 101))
        finally:
            numba.set_num_threads(before)
        assert draws.dtype == torch.int16
        assert np.array_equal(draws.numpy(), expected)


@pytest.mark.parametrize("backend", list(Backend))
def test_gather_select_is_random_select_of_the_gathered_rows(backend):
    """One pass over the batch's rows gives exactly ``random_select(a[rows], b[rows])``; inputs
    that take a gradient are refused."""
    g = torch.Generator().manual_seed(13)
    a, b = torch.randn(10, 3, 5, generator=g), torch.randn(10, 3, 5, generator=g)
    rows = torch.tensor([7, 0, 7, 3, 9])
    torch.manual_seed(14)
    draws = draw_uniform16((5, 3, 5))
    out = gather_select(a, b, rows, draws, keep_threshold(0.4), backend)
    assert torch.equal(out, random_select(a[rows], b[rows], draws, keep_threshold(0.4), Backend.TORCH))
    with pytest.raises(InputError, match="gather_select"):
        gather_select(a.requires_grad_(True), b, rows, draws, 0, backend)


@pytest.mark.parametrize("backend", list(Backend))
def test_random_select_selects_and_routes_gradients(backend):
    """``b`` exactly where the draw is below the threshold, ``a`` elsewhere; each operand's
    gradient is the incoming gradient where it was selected, 0 elsewhere."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(8, 3, 6, generator=g).requires_grad_(True)
    b = torch.randn(8, 3, 6, generator=g).requires_grad_(True)
    torch.manual_seed(6)
    draws = draw_uniform16(tuple(a.shape))
    chosen = draws.to(torch.int32) < keep_threshold(0.3)
    out = random_select(a, b, draws, keep_threshold(0.3), backend)
    assert torch.equal(out, torch.where(chosen, b, a))
    weight = torch.randn(8, 3, 6, generator=g)
    (out * weight).sum().backward()
    assert torch.equal(a.grad, torch.where(chosen, torch.zeros_like(weight), weight))
    assert torch.equal(b.grad, torch.where(chosen, weight, torch.zeros_like(weight)))


def test_many_borders_per_row_and_no_input_gradient():
    """An 8-bit tensor with borders per channel and level (255 entries per row, rows of 37
    elements: whole blocks of partial sums and a tail): the fused backend's border and scale
    gradients equal the torch backend's in float64 within 1e-12. Without a gradient for x it
    gives the same scale and border gradients, bit for bit."""
    g = torch.Generator().manual_seed(12)
    x = (torch.rand(6, 4, 37, generator=g, dtype=torch.float64) * 90 - 5).requires_grad_(True)
    scale = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    table = (torch.rand(4, 255, generator=g, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    weight = torch.randn(6, 4, 37, generator=g, dtype=torch.float64)
    runs = {}
    for backend in Backend:
        runs[backend] = _run(lambda: border_round(x, scale, table, 3, 0, 255, True, 0.2, None, 0, backend), x, scale, table, weight)
    for a, b in zip(runs[Backend.TORCH], runs[Backend.NUMBA]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert int((runs[Backend.TORCH][3] != 0).sum(dim=1).min()) > 16  # rows spread over many entries
    frozen = x.detach()
    for p in (scale, table):
        p.grad = None
    (border_round(frozen, scale, table, 3, 0, 255, True, 0.2, None, 0, Backend.NUMBA) * weight).sum().backward()
    assert torch.equal(scale.grad, runs[Backend.NUMBA][2]) and torch.equal(table.grad, runs[Backend.NUMBA][3])
