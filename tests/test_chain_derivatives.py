"""Chain derivatives (_tensor._chain_derivatives, _engine.ChainDerivative): a depth cut on a
unary elementwise chain computes the chain's derivative with its value, and the backward
multiplies by it instead of recomputing the segment. Every test compares with the recompute
path (lazy.CHAIN_DERIVATIVES = False, the ordinary VJPs) and, where it has one, a float64
closed form; the contraction must step aside whenever the chain is not private to the sweep."""
import numpy as np
import pytest

import jitgrad
from jitgrad import lazy
from jitgrad._tensor import ElementwiseNode

N = 3000  # (elements: small, but the chains are recorded lazily, see _fuse_all)
DEPTH = 8  # (segments of 8 rows: small kernels, quick to compile cold)


@pytest.fixture(autouse=True)
def _fuse_all(monkeypatch):
    """Every op recorded lazily whatever its size, as jitgrad.compile records a step, and
    short segments."""
    monkeypatch.setattr(lazy, "FUSE_MIN", 0)
    monkeypatch.setattr(lazy, "depth_limit", DEPTH)
    monkeypatch.setattr(lazy, "MAX_DEPTH_BACKWARD", 2 * DEPTH)
    yield


def _x(dtype=np.float32, rg=True):
    return jitgrad.tensor(np.linspace(-1.5, 1.5, N).astype(dtype), requires_grad=rg)


def _w5(y, k):
    ys = []
    for i in range(k):
        y = y * 1.01 if i % 2 == 0 else jitgrad.sin(y)
        ys.append(y)
    return y, ys


def _w5_ref(xv, k):
    """float64 value and derivative of the W5 chain."""
    y, d = xv.astype(np.float64), np.ones(xv.shape)
    for i in range(k):
        if i % 2 == 0:
            y, d = y * 1.01, d * 1.01
        else:
            y, d = np.sin(y), d * np.cos(y)
    return y, d


def _both(monkeypatch, fn):
    """fn() with chain derivatives, then without: (on, off)."""
    monkeypatch.setattr(lazy, "CHAIN_DERIVATIVES", True)
    on = fn()
    monkeypatch.setattr(lazy, "CHAIN_DERIVATIVES", False)
    return on, fn()


def _count_vjps(monkeypatch):
    calls = []
    orig = ElementwiseNode.apply
    monkeypatch.setattr(ElementwiseNode, "apply",
                        lambda self, g, cg: (calls.append(1), orig(self, g, cg))[1])
    return calls


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 3e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("k", [30, 61])
def test_long_chain_gradient_skips_the_segments(monkeypatch, dtype, rtol, k):
    calls = _count_vjps(monkeypatch)

    def run():
        del calls[:]
        x = _x(dtype)
        y, _ = _w5(x, k)
        y.sum().backward()
        return x.grad.numpy().copy(), len(calls)
    (g_on, n_on), (g_off, n_off) = _both(monkeypatch, run)
    _, want = _w5_ref(np.linspace(-1.5, 1.5, N).astype(dtype), k)
    np.testing.assert_allclose(g_on, want, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(g_on, g_off, rtol=rtol, atol=rtol)
    assert n_off == k and n_on < DEPTH, (n_on, n_off)  # (the last segment's VJPs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mixed_unary_ops(monkeypatch, dtype):
    """Eight functions whose VJPs read the input or the output, one row each (a period of
    DEPTH rows: every segment is the same kernel)."""
    fs = [jitgrad.tanh, jitgrad.sigmoid, jitgrad.sqrt, jitgrad.log1p, jitgrad.sin, jitgrad.exp,
          jitgrad.atan, jitgrad.cos]

    def run():
        x = _x(dtype)
        y = x
        for i in range(4 * DEPTH):
            y = fs[i % DEPTH](y)
        y.sum().backward()
        return x.grad.numpy().copy()
    on, off = _both(monkeypatch, run)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(on, off, rtol=tol, atol=tol * np.abs(off).max())
    assert np.abs(off).max() > 0


def test_intermediate_used_elsewhere(monkeypatch):
    """A value inside a segment read by a second branch of the loss: that segment's chain is
    not private, the sweep runs its nodes (the other segments still contract)."""
    def run():
        x = _x(np.float64)
        y, ys = _w5(x, 60)
        loss = y.sum() + (ys[30] * ys[30]).sum() * 0.5
        loss.backward()
        return x.grad.numpy().copy()
    on, off = _both(monkeypatch, run)
    np.testing.assert_allclose(on, off, rtol=1e-12, atol=1e-13)
    xv = np.linspace(-1.5, 1.5, N)
    y100, d100 = _w5_ref(xv, 31)
    _, d = _w5_ref(xv, 60)
    np.testing.assert_allclose(on, d + y100 * d100, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("how", ["retain_grad", "hook"])
def test_hooks_and_retain_grad_inside_a_chain(monkeypatch, how):
    seen = []

    def run():
        x = _x(np.float64)
        y, ys = _w5(x, 60)
        mid = ys[33]
        if how == "retain_grad":
            mid.retain_grad()
        else:
            mid.register_hook(lambda g: (seen.append(1), g * 3.0)[1])
        y.sum().backward()
        return x.grad.numpy().copy(), (mid.grad.numpy().copy() if how == "retain_grad" else
                                       None)
    (g_on, m_on), (g_off, m_off) = _both(monkeypatch, run)
    np.testing.assert_allclose(g_on, g_off, rtol=1e-12, atol=1e-13)
    if how == "retain_grad":
        np.testing.assert_allclose(m_on, m_off, rtol=1e-12, atol=1e-13)
    else:
        assert seen == [1, 1]
        _, d = _w5_ref(np.linspace(-1.5, 1.5, N), 60)
        np.testing.assert_allclose(g_on, 3.0 * d, rtol=1e-12, atol=1e-13)


def test_autograd_grad_and_create_graph(monkeypatch):
    """autograd.grad (a captured intermediate) and create_graph run the ordinary VJPs; the
    chain the forward computed changes nothing there."""
    def run():
        x = _x(np.float64)
        y, ys = _w5(x, 18)
        gx, gm = jitgrad.autograd.grad(y.sum(), [x, ys[9]])
        return gx.numpy().copy(), gm.numpy().copy()
    on, off = _both(monkeypatch, run)
    for a, b in zip(on, off):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    xs = np.linspace(-1.5, 1.5, N)
    np.testing.assert_allclose(on[0], _w5_ref(xs, 18)[1], rtol=1e-12, atol=1e-13)
    monkeypatch.setattr(lazy, "CHAIN_DERIVATIVES", True)
    x = _x(np.float64)
    y, _ = _w5(x, 18)
    (h,) = jitgrad.autograd.grad(y.sum(), [x], create_graph=True)
    (h2,) = jitgrad.autograd.grad(h.sum(), [x])
    np.testing.assert_allclose(h.detach().numpy(), _w5_ref(xs, 18)[1], rtol=1e-12, atol=1e-13)
    eps = 1e-5
    fd = (_w5_ref(xs + eps, 18)[1] - _w5_ref(xs - eps, 18)[1]) / (2 * eps)
    np.testing.assert_allclose(h2.numpy(), fd, rtol=1e-6, atol=1e-6)


def test_retain_graph_twice_then_freed(monkeypatch):
    def run():
        x = _x(np.float64)
        y, _ = _w5(x, 60)
        loss = y.sum()
        loss.backward(retain_graph=True)
        first = x.grad.numpy().copy()
        loss.backward()
        second = x.grad.numpy().copy()
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            loss.backward()
        return first, second
    (f_on, s_on), (f_off, s_off) = _both(monkeypatch, run)
    np.testing.assert_allclose(s_on, 2 * f_on, rtol=1e-14)
    np.testing.assert_allclose(f_on, f_off, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(s_on, s_off, rtol=1e-12, atol=1e-13)


def test_in_place_write_into_a_saved_value_still_raises(monkeypatch):
    def run():
        x = _x(np.float64)
        y, ys = _w5(x, 60)
        loss = y.sum()
        with jitgrad.no_grad():
            ys[20].mul_(2.0)  # (the input the sin of op 21, in the third segment, saved)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()
        return True
    assert _both(monkeypatch, run) == (True, True)


def test_not_a_chain_weight_tensor_and_broadcast(monkeypatch):
    """An op with a second differentiable operand (a 0-d weight) or a broadcast one is not a
    link of a chain: the gradients of every input are the ordinary ones."""
    def run():
        x = _x(np.float64)
        w = jitgrad.tensor(1.01, dtype=jitgrad.float64, requires_grad=True)
        b = jitgrad.tensor(np.full((1,), 0.01), requires_grad=True)
        y = x
        for i in range(16):
            y = jitgrad.sin(y) if i % 2 else (y * w if i % 4 else y + b)
        y.sum().backward()
        return x.grad.numpy().copy(), w.grad.item(), b.grad.numpy().copy()
    on, off = _both(monkeypatch, run)
    for a, b_ in zip(on, off):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-13)


def test_compiled_step_replays_the_contracted_backward(monkeypatch):
    monkeypatch.setattr(lazy, "CHAIN_DERIVATIVES", True)
    x = _x()

    def step():
        x.grad = None
        y, _ = _w5(x, 60)
        loss = y.sum()
        loss.backward()
        return loss
    eager = []
    for _ in range(2):
        eager.append((step().item(), x.grad.numpy().copy()))
    c = jitgrad.compile(step)
    for _ in range(3):
        loss = c()
        assert loss.item() == eager[0][0]
        np.testing.assert_array_equal(x.grad.numpy(), eager[0][1])
    assert c.stats["replayed"] >= 1 and jitgrad.explain(c).reason is None


def test_masking_ops_are_not_links(monkeypatch):
    """relu's VJP selects 0 where its output is 0: with an infinite incoming gradient (log of
    0) the ordinary backward gives 0 there, a product of factors inf * 0 = NaN. Such rules end
    a chain (_vjp_scales_g), so both paths give torch's 0."""
    def run():
        x = jitgrad.tensor(np.linspace(-1.5, 1.5, N), requires_grad=True)
        y = x
        for _ in range(DEPTH - 1):
            y = y * 1.01
        r = jitgrad.relu(y)  # (DEPTH deep: log(r) computes it first)
        with np.errstate(divide="ignore"):
            jitgrad.log(r).sum().backward()
        return x.grad.numpy().copy()
    on, off = _both(monkeypatch, run)
    np.testing.assert_array_equal(on, off)
    xs = np.linspace(-1.5, 1.5, N)
    assert (on[xs < 0] == 0).all() and np.isfinite(on).all()


def test_hook_on_a_chain_top_runs_on_every_call(monkeypatch):
    """A hook registered on a segment's end after the cut: eager runs it before multiplying;
    jitgrad.compile does not replay hooks, so the step runs eagerly (and says why)."""
    monkeypatch.setattr(lazy, "CHAIN_DERIVATIVES", True)
    calls = []
    x = _x(np.float64)

    def step():
        x.grad = None
        y, ys = _w5(x, 20)
        ys[2 * DEPTH - 1].register_hook(lambda g: (calls.append(1), g * 2.0)[1])
        loss = y.sum()
        loss.backward()
        return loss
    c = jitgrad.compile(step)
    _, d = _w5_ref(np.linspace(-1.5, 1.5, N), 20)
    for k in range(3):
        c()
        assert len(calls) == k + 1
        np.testing.assert_allclose(x.grad.numpy(), 2.0 * d, rtol=1e-12, atol=1e-13)
    assert "hook" in (jitgrad.explain(c).reason or "")


def test_several_roots_one_inside_a_chain(monkeypatch):
    def run():
        x = _x(np.float64)
        y, ys = _w5(x, 40)
        jitgrad.autograd.backward([y.sum(), ys[12].sum() * 3.0])
        return x.grad.numpy().copy()
    on, off = _both(monkeypatch, run)
    np.testing.assert_allclose(on, off, rtol=1e-12, atol=1e-13)
    xs = np.linspace(-1.5, 1.5, N)
    np.testing.assert_allclose(on, _w5_ref(xs, 40)[1] + 3.0 * _w5_ref(xs, 13)[1], rtol=1e-12,
                               atol=1e-13)
