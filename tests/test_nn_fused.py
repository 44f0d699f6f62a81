"""The fused nn.functional nodes: ``linear`` (AddmmBackward0) and ``cross_entropy``
(NllLossBackward0 as one node).

Values and gradients against torch when installed and against float64 central differences;
float32 and float64; grad_fn names; double backward; saved-tensor and freed-graph semantics;
bad input raises naming shapes/dtypes."""
from __future__ import annotations

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad.testing import gradcheck, gradgradcheck

try:  # torch is optional: the central-difference checks run without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _leaf(a):
    return jitgrad.tensor(a, requires_grad=True)


def _central_diff(f, arrays, k, eps=1e-6):
    """d f(arrays) / d arrays[k] (f: float64 arrays -> scalar float) by central differences."""
    a = [np.array(x, np.float64) for x in arrays]
    g = np.zeros_like(a[k])
    it = np.nditer(a[k], flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = a[k][i]
        a[k][i] = old + eps
        hi = f(*a)
        a[k][i] = old - eps
        lo = f(*a)
        a[k][i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g


# ------------------------------------------------------------------------------------- linear

def _linear_inputs(rng, dtype, n=5, k=4, m=3):
    return (rng.standard_normal((n, k)).astype(dtype), rng.standard_normal((m, k)).astype(dtype),
            rng.standard_normal(m).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_values_and_grads_vs_central_differences(dtype):
    rng = np.random.default_rng(0)
    xv, wv, bv = _linear_inputs(rng, dtype)
    x, w, b = _leaf(xv), _leaf(wv), _leaf(bv)
    y = F.linear(x, w, b)
    assert type(y.grad_fn).__name__ == "AddmmBackward0"
    assert y.dtype == (jitgrad.float32 if dtype == np.float32 else jitgrad.float64)
    want = xv.astype(np.float64) @ wv.astype(np.float64).T + bv
    np.testing.assert_allclose(y.detach().numpy(), want, **TOL[dtype])
    cv = rng.standard_normal(want.shape)  # loss = sum(c * y)
    (y * jitgrad.tensor(cv.astype(dtype))).sum().backward()

    def loss(x_, w_, b_):
        return float(((x_ @ w_.T + b_) * cv).sum())
    for k, t in enumerate((x, w, b)):
        fd = _central_diff(loss, (xv, wv, bv), k)
        np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-4 if dtype == np.float32 else 1e-7,
                                   atol=1e-4 if dtype == np.float32 else 1e-8)
        assert t.grad.dtype == t.dtype


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed_weight", "bias_2d", "no_bias"])
def test_linear_matches_torch(dtype, layout):
    rng = np.random.default_rng(1)
    xv, wv, bv = _linear_inputs(rng, dtype, 6, 7, 4)
    if layout == "bias_2d":
        bv = bv[None, :].copy()

    def run(lib, linear):
        x = lib.tensor(xv, requires_grad=True)
        if layout == "transposed_weight":  # a (in, out) parameter used as weight.t()
            w0 = lib.tensor(np.ascontiguousarray(wv.T), requires_grad=True)
            w = w0.t()
        else:
            w0 = w = lib.tensor(wv, requires_grad=True)
        b = None if layout == "no_bias" else lib.tensor(bv, requires_grad=True)
        y = linear(x, w, b)
        (y * y).sum().backward()
        grads = [x.grad, w0.grad] + ([] if b is None else [b.grad])
        return y, type(y.grad_fn).__name__, [np.asarray(g.detach().numpy()) for g in grads]

    y, name, grads = run(jitgrad, F.linear)
    yt, namet, gradst = run(torch, torch.nn.functional.linear)
    assert name == namet
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), **TOL[dtype])
    for g, gt in zip(grads, gradst):
        assert g.shape == gt.shape
        np.testing.assert_allclose(g, gt, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)


@pytest.fixture
def transpose_calls(monkeypatch):
    """The ``with_bias`` argument of every cpu.transpose_add call (the transposed product's
    epilogue), which still runs."""
    from jitgrad.backends import cpu
    calls = []
    real = cpu.transpose_add
    monkeypatch.setattr(cpu, "transpose_add", lambda *a: calls.append(a[3]) or real(*a))
    return calls


@pytest.mark.parametrize("rows,k,m", [(3, 5, 70), (8, 16, 64), (13, 33, 130), (1, 1, 64),
                                      (2, 7, 200), (17, 9, 72), (32, 3, 64)])
@pytest.mark.parametrize("views", [False, True])
def test_linear_wide_float32_transposed_product(transpose_calls, rows, k, m, views):
    """A float32 layer with at least max(2 * rows, 64) outputs computes ``w @ x.T`` and
    transposes it in the bias epilogue (cpu.transpose_add: 8x8 shuffled tiles plus scalar
    edges): values and gradients against float64, a C-contiguous output, the path taken
    (also for a transposed-view weight and a strided input)."""
    calls = transpose_calls
    rng = np.random.default_rng(rows * 1000 + m)
    xv = rng.standard_normal((rows, 2 * k) if views else (rows, k)).astype(np.float32)
    wv = rng.standard_normal((k, m) if views else (m, k)).astype(np.float32)
    bv = rng.standard_normal(m).astype(np.float32)
    x0, w0, b = _leaf(xv), _leaf(wv), _leaf(bv)
    x, w = (x0[:, ::2], w0.t()) if views else (x0, w0)
    y = F.linear(x, w, b)
    assert calls == [True]  # (one epilogue, with the bias)
    xd = xv[:, ::2].astype(np.float64) if views else xv.astype(np.float64)
    wd = wv.T.astype(np.float64) if views else wv.astype(np.float64)
    want = xd @ wd.T + bv
    assert y.detach().numpy().flags.c_contiguous and y.shape == want.shape
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    cv = rng.standard_normal(want.shape)
    (y * jitgrad.tensor(cv.astype(np.float32))).sum().backward()
    gx, gw = cv @ wd, cv.T @ xd
    got_x = x0.grad.numpy()[:, ::2] if views else x0.grad.numpy()
    got_w = w0.grad.numpy().T if views else w0.grad.numpy()
    np.testing.assert_allclose(got_x, gx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_w, gw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.grad.numpy(), cv.sum(0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("form", ["operator", "matmul", "mm"])
@pytest.mark.parametrize("rows,k,m", [(3, 5, 70), (17, 9, 72), (1, 4, 64), (17, 9, 70)])
def test_matmul_by_transposed_weight_wide_float32(transpose_calls, form, rows, k, m):
    """``x @ w.T`` (w C-contiguous, float32, m >= max(2 * rows, 64)) takes the same transposed
    product as ``linear`` (cpu.product_t, transposed back without a bias): values and both
    gradients against float64, a C-contiguous result."""
    calls = transpose_calls
    rng = np.random.default_rng(rows + m)
    xv = rng.standard_normal((rows, k)).astype(np.float32)
    wv = rng.standard_normal((m, k)).astype(np.float32)
    x, w = _leaf(xv), _leaf(wv)
    y = {"operator": lambda: x @ w.T, "matmul": lambda: jitgrad.matmul(x, w.t()),
         "mm": lambda: x.mm(w.t())}[form]()
    assert calls == [False] and type(y.grad_fn).__name__ == "MmBackward0"  # (no bias)
    want = xv.astype(np.float64) @ wv.T.astype(np.float64)
    assert y.detach().numpy().flags.c_contiguous
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    cv = rng.standard_normal(want.shape)
    (y * jitgrad.tensor(cv.astype(np.float32))).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), cv @ wv.astype(np.float64), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w.grad.numpy(), cv.T @ xv.astype(np.float64), rtol=1e-4,
                               atol=1e-4)


def test_matmul_transposed_product_elsewhere_and_under_compile(transpose_calls):
    """The plain product for float64, a C-contiguous right operand or too few outputs; and a
    compiled step with ``x @ w.T`` whose first (recording) call has exact products (zeros: the
    transposed and the plain product agree bitwise there) keeps giving eager's bits later."""
    calls = transpose_calls
    rng = np.random.default_rng(9)
    x32 = rng.standard_normal((8, 16)).astype(np.float32)
    for a, b in ((x32.astype(np.float64), rng.standard_normal((64, 16)).T),
                 (x32, np.ascontiguousarray(rng.standard_normal((64, 16)).T.astype(np.float32))),
                 (x32, rng.standard_normal((15, 16)).astype(np.float32).T)):
        got = (jitgrad.tensor(a) @ jitgrad.tensor(b)).numpy()
        np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5,
                                   atol=1e-5)
    assert calls == []

    def step(x, w):  # (forward: x @ w.T transposed; backward: g @ w, plain)
        y = x @ w.T
        (y * y).sum().backward()
        return y

    def step_in_out(x, w):  # (w stored (in, out): forward plain; backward g @ w.T transposed)
        y = x @ w
        (y * y).sum().backward()
        return y
    for f, wv in ((step, rng.standard_normal((256, 784)).astype(np.float32)),
                  (step_in_out, rng.standard_normal((784, 256)).astype(np.float32))):
        xs = [np.zeros((8, 784), np.float32)] + [
            rng.standard_normal((8, 784)).astype(np.float32) for _ in range(2)]
        comp = jitgrad.compile(f)
        calls.clear()
        for xv in xs:
            outs = []
            for g in (f, comp):
                x, w = _leaf(xv), _leaf(wv)
                outs.append([g(x, w).detach().numpy(), x.grad.numpy(), w.grad.numpy()])
            for e, c in zip(*outs):
                np.testing.assert_array_equal(c, e)
        wd = wv.astype(np.float64)
        yd = xv.astype(np.float64) @ (wd.T if f is step else wd)
        np.testing.assert_allclose(outs[0][1], 2 * yd @ (wd if f is step else wd.T), rtol=1e-4,
                                   atol=1e-3)
        assert len(calls) >= 2 * len(xs) and not any(calls)  # (each call; no bias)
        assert comp.stats["replayed"] == 2


@pytest.mark.parametrize("dtype,rows,m", [(np.float64, 3, 70), (np.float32, 40, 64),
                                          (np.float32, 3, 63)])
def test_linear_plain_product_elsewhere(monkeypatch, dtype, rows, m):
    """float64, or fewer outputs than max(2 * rows, 64): ``x @ w.T`` and the row-wise bias."""
    from jitgrad.backends import cpu
    monkeypatch.setattr(cpu, "transpose_add", None)  # (would raise if called)
    rng = np.random.default_rng(5)
    xv, wv, bv = _linear_inputs(rng, dtype, rows, 9, m)
    y = F.linear(jitgrad.tensor(xv), jitgrad.tensor(wv), jitgrad.tensor(bv))
    np.testing.assert_allclose(y.numpy(), xv.astype(np.float64) @ wv.T.astype(np.float64) + bv,
                               **TOL[dtype])


def test_linear_grad_layout_follows_weight():
    """A transposed-view weight gets its gradient computed in its own layout, so the (in, out)
    parameter behind it ends up with a C-contiguous .grad, like torch's addmm backward."""
    rng = np.random.default_rng(2)
    xv, wv, bv = _linear_inputs(rng, np.float32, 8, 6, 5)
    p = _leaf(np.ascontiguousarray(wv.T))
    F.linear(_leaf(xv), p.t(), _leaf(bv)).sum().backward()
    assert p.grad.numpy().flags.c_contiguous
    np.testing.assert_allclose(p.grad.numpy(), xv.sum(0)[:, None] * np.ones((1, 5)), rtol=1e-5)


def test_linear_only_needed_grads_and_next_functions():
    rng = np.random.default_rng(3)
    xv, wv, bv = _linear_inputs(rng, np.float64)
    x = jitgrad.tensor(xv)  # no grad
    w, b = _leaf(wv), _leaf(bv)
    y = F.linear(x, w, b)
    edges = [type(e).__name__ if e is not None else None for e, _ in y.grad_fn.next_functions]
    assert edges == ["AccumulateGrad", None, "AccumulateGrad"]  # (bias, input, weight)
    y.sum().backward()
    assert x.grad is None
    np.testing.assert_allclose(b.grad.numpy(), np.full(3, 5.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_double_backward(dtype):
    rng = np.random.default_rng(4)
    xv, wv, bv = _linear_inputs(rng, np.float64, 3, 4, 2)
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), (_leaf(xv), _leaf(wv), _leaf(bv)))
    assert gradgradcheck(lambda x, w, b: F.linear(x, w, b).tanh(),
                         (_leaf(xv), _leaf(wv), _leaf(bv)))
    # float32 create_graph: second derivative of sum(tanh(linear)) w.r.t. x through the node
    x, w, b = (_leaf(a.astype(dtype)) for a in (xv, wv, bv))
    gx, = jitgrad.autograd.grad(F.linear(x, w, b).tanh().sum(), x, create_graph=True)
    assert gx.requires_grad
    gx.sum().backward()
    assert w.grad is not None and b.grad is not None


def test_linear_saved_tensors_version_checked_not_bias():
    rng = np.random.default_rng(5)
    xv, wv, bv = _linear_inputs(rng, np.float32)
    w, b = _leaf(wv), _leaf(bv)
    x = _leaf(xv)
    y = F.linear(x, w, b)
    with jitgrad.no_grad():
        b.add_(1.0)  # torch's addmm does not save the bias
    y.sum().backward(retain_graph=True)
    with jitgrad.no_grad():
        w.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*AddmmBackward0"):
        y.sum().backward()


def test_linear_freed_after_backward():
    rng = np.random.default_rng(6)
    y = F.linear(*(_leaf(a) for a in _linear_inputs(rng, np.float32)))
    y.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


def test_linear_composed_shapes_keep_torch_names():
    rng = np.random.default_rng(7)
    w, b = _leaf(rng.standard_normal((3, 4))), _leaf(rng.standard_normal(3))
    x3 = _leaf(rng.standard_normal((2, 5, 4)))
    y = F.linear(x3, w, b)
    assert tuple(y.shape) == (2, 5, 3)
    np.testing.assert_allclose(y.detach().numpy(),
                               x3.detach().numpy() @ w.detach().numpy().T + b.detach().numpy())
    assert type(F.linear(x3[0], w).grad_fn).__name__ == "MmBackward0"


def test_linear_bad_input():
    rng = np.random.default_rng(8)
    x = jitgrad.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w = jitgrad.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    b = jitgrad.tensor(rng.standard_normal(5).astype(np.float32))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x3 and 2x5\)"):
        F.linear(x, w[:, :2], b)
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype, but got Double and Float"):
        F.linear(x.double(), w, b)
    with pytest.raises(RuntimeError, match="self and mat2 must have the same dtype, but got Double and Float"):
        F.linear(x, w, b.double())
    with pytest.raises(RuntimeError, match=r"bias of shape \[3\].*output shape \[4, 5\]"):
        F.linear(x, w, b[:3])


# ------------------------------------------------------------------------------ cross_entropy

def _ce_ref(z, t, w=None, ignore_index=-100, reduction="mean"):
    """float64 reference of torch's cross_entropy with class indices."""
    z = z.astype(np.float64)
    m = z.max(1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(1, keepdims=True))
    valid = t != ignore_index
    tt = np.where(valid, t, 0)
    ww = np.ones(z.shape[1]) if w is None else w.astype(np.float64)
    wt = np.where(valid, ww[tt], 0.0)
    losses = -logp[np.arange(len(t)), tt] * wt
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / wt.sum()


CE_CASES = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(ignore_index=2),
            dict(weight=True), dict(weight=True, ignore_index=1, reduction="none"),
            dict(weight=True, reduction="sum")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CE_CASES)))
def test_cross_entropy_vs_reference_and_central_differences(dtype, case):
    kw = dict(CE_CASES[case])
    rng = np.random.default_rng(10 + case)
    zv = (3 * rng.standard_normal((6, 5))).astype(dtype)
    t = np.array([0, 2, 4, 1, 2, 3])
    wv = rng.uniform(0.5, 2.0, 5).astype(dtype) if kw.pop("weight", False) else None
    z = _leaf(zv)
    loss = F.cross_entropy(z, jitgrad.tensor(t), None if wv is None else jitgrad.tensor(wv), **kw)
    assert type(loss.grad_fn).__name__ == "NllLossBackward0"
    assert loss.dtype == z.dtype
    want = _ce_ref(zv, t, wv, **kw)
    np.testing.assert_allclose(loss.detach().numpy(), want,
                               rtol=1e-5 if dtype == np.float32 else 1e-12)
    cv = rng.standard_normal(want.shape)
    (loss * jitgrad.tensor(cv.astype(dtype))).sum().backward()
    fd = _central_diff(lambda a: float((_ce_ref(a, t, wv, **kw) * cv).sum()), (zv,), 0)
    np.testing.assert_allclose(z.grad.numpy(), fd, rtol=1e-4 if dtype == np.float32 else 1e-6,
                               atol=1e-5 if dtype == np.float32 else 1e-8)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CE_CASES)))
def test_cross_entropy_matches_torch(dtype, case):
    kw = dict(CE_CASES[case])
    rng = np.random.default_rng(20 + case)
    zv = (3 * rng.standard_normal((7, 4))).astype(dtype)
    t = np.array([0, 3, 1, 1, 2, 0, 3])
    wv = rng.uniform(0.5, 2.0, 4).astype(dtype) if kw.pop("weight", False) else None
    res = []
    for lib, ce in ((jitgrad, F.cross_entropy), (torch, torch.nn.functional.cross_entropy)):
        z = lib.tensor(zv, requires_grad=True)
        loss = ce(z, lib.tensor(t), None if wv is None else lib.tensor(wv), **kw)
        (loss.sum() if loss.dim() else loss).backward()
        res.append((type(loss.grad_fn).__name__, loss.detach().numpy(), z.grad.numpy()))
    (n, l, g), (nt, lt, gt) = res
    assert n == nt
    np.testing.assert_allclose(l, lt, **TOL[dtype])
    np.testing.assert_allclose(g, gt, **TOL[dtype])


def test_cross_entropy_all_ignored_is_nan_like_torch():
    z = _leaf(np.zeros((2, 3), np.float32))
    loss = F.cross_entropy(z, jitgrad.tensor(np.array([1, 1])), ignore_index=1)
    assert np.isnan(loss.item())
    if torch is not None:
        lt = torch.nn.functional.cross_entropy(torch.zeros(2, 3), torch.tensor([1, 1]),
                                               ignore_index=1)
        assert np.isnan(lt.item())


def test_cross_entropy_double_backward():
    rng = np.random.default_rng(30)
    t = jitgrad.tensor(np.array([2, 0, 1]))
    z = _leaf(rng.standard_normal((3, 4)))
    assert gradcheck(lambda a: F.cross_entropy(a, t), (z,))
    assert gradgradcheck(lambda a: F.cross_entropy(a, t), (z,))
    assert gradgradcheck(lambda a: F.cross_entropy(a, t, reduction="none"), (z,))
    w = jitgrad.tensor(rng.uniform(0.5, 2, 4))
    assert gradgradcheck(lambda a: F.cross_entropy(a, t, w, ignore_index=0), (z,))


def test_cross_entropy_inplace_on_logits_after_forward():
    """Like torch (log_softmax saves its output, not its input), a first-order backward does
    not need the logits: writing into them after the loss is allowed. A create_graph backward
    recomputes from the logits and refuses modified ones."""
    rng = np.random.default_rng(31)
    zv = rng.standard_normal((3, 4)).astype(np.float32)
    t = jitgrad.tensor(np.array([1, 0, 3]))
    leaf = _leaf(zv)
    z = leaf * 1.0
    loss = F.cross_entropy(z, t)
    with jitgrad.no_grad():
        z.add_(5.0)
    loss.backward()
    want = np.exp(zv) / np.exp(zv).sum(1, keepdims=True)
    want[np.arange(3), [1, 0, 3]] -= 1
    np.testing.assert_allclose(leaf.grad.numpy(), want / 3, rtol=1e-5, atol=1e-7)
    z = leaf * 1.0
    loss = F.cross_entropy(z, t)
    with jitgrad.no_grad():
        z.add_(5.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*NllLossBackward0"):
        jitgrad.autograd.grad(loss, leaf, create_graph=True)


def test_cross_entropy_freed_after_backward():
    z = _leaf(np.zeros((2, 3), np.float32))
    loss = F.cross_entropy(z, jitgrad.tensor(np.array([1, 2])))
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_cross_entropy_other_shapes_compose():
    rng = np.random.default_rng(32)
    zv = rng.standard_normal((2, 3, 4))
    t = np.array([[0, 1, 2, 0], [2, 2, 1, 0]])
    z = _leaf(zv)
    loss = F.cross_entropy(z, jitgrad.tensor(t))
    assert type(loss.grad_fn).__name__ == "NllLossBackward0"
    m = zv.max(1, keepdims=True)
    logp = zv - m - np.log(np.exp(zv - m).sum(1, keepdims=True))
    want = -np.take_along_axis(logp, t[:, None], 1).mean()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    z1 = _leaf(zv[0, :, 0])  # unbatched (C,)
    np.testing.assert_allclose(F.cross_entropy(z1, jitgrad.tensor(np.array(1))).item(),
                               -(zv[0, 1, 0] - np.log(np.exp(zv[0, :, 0]).sum())), rtol=1e-12)


def test_cross_entropy_no_grad_and_int_target_dtypes():
    zv = np.random.default_rng(33).standard_normal((4, 3)).astype(np.float32)
    with jitgrad.no_grad():
        loss = F.cross_entropy(_leaf(zv), jitgrad.tensor(np.array([0, 1, 2, 0], np.int32)))
    assert loss.grad_fn is None
    np.testing.assert_allclose(loss.item(), _ce_ref(zv, np.array([0, 1, 2, 0])), rtol=1e-5)


def test_cross_entropy_bad_input():
    z = jitgrad.tensor(np.zeros((3, 4), np.float32), requires_grad=True)
    with pytest.raises(IndexError, match="target 4 is out of bounds for 4 classes"):
        F.cross_entropy(z, jitgrad.tensor(np.array([0, 4, 1])))
    with pytest.raises(IndexError, match="target -3 is out of bounds"):
        F.cross_entropy(z, jitgrad.tensor(np.array([0, -3, 1])))
    with pytest.raises(ValueError, match=r"input \[3, 4\] and target \[2\]"):
        F.cross_entropy(z, jitgrad.tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\), got \[3\]"):
        F.cross_entropy(z, jitgrad.tensor(np.array([0, 1, 2])), jitgrad.ones(3))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(z, jitgrad.tensor(np.array([0, 1, 2])), reduction="avg")
    # class probabilities (issue 15: no longer NotImplementedError): uniform targets, log 4
    np.testing.assert_allclose(F.cross_entropy(z, jitgrad.full((3, 4), 0.25)).item(), np.log(4),
                               rtol=1e-6)
    # an ignored row may hold any value, even one out of range
    loss = F.cross_entropy(z, jitgrad.tensor(np.array([0, -100, 1])))
    np.testing.assert_allclose(loss.item(), np.log(4), rtol=1e-6)
