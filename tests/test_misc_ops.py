"""ops_api.misc (issue 16): values and gradients against torch, and bad-input errors."""
import numpy as np
import pytest
import torch

import jitgrad as jg

R = np.random.default_rng(0)


def _pair(a, rg=False):
    return jg.tensor(a, requires_grad=rg), torch.tensor(a, requires_grad=rg)


def _close(j, t, tol=1e-10):
    np.testing.assert_allclose(j.detach().numpy() if hasattr(j, "numpy") else j,
                               t.detach().numpy(),
                               rtol=tol, atol=tol, equal_nan=True)


def _grad_check(jf, tf, *arrays):
    js = [jg.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    jo, to = jf(*js), tf(*ts)
    _close(jo, to)
    cot = R.standard_normal(tuple(to.shape))
    jgr = jg.autograd.grad([jo], js, [jg.tensor(cot)], allow_unused=True)
    tgr = torch.autograd.grad([to], ts, [torch.tensor(cot)], allow_unused=True)
    for a, b in zip(jgr, tgr):
        if a is None:  # jitgrad: None for an unused input; torch: zeros here
            assert b is None or not b.any()
            continue
        _close(a, b)


def test_elementwise_values_and_grads():
    a, b = R.standard_normal((3, 4)), R.standard_normal((3, 4))
    _grad_check(jg.logaddexp2, torch.logaddexp2, a, b)
    _close(jg.rsub(jg.tensor(a), jg.tensor(b), alpha=2), torch.rsub(torch.tensor(a),
                                                                    torch.tensor(b), alpha=2))
    _grad_check(lambda x: jg.mvlgamma(x, 3), lambda x: torch.mvlgamma(x, 3), np.abs(a) + 1.5)
    _grad_check(jg.special.ndtr, torch.special.ndtr, a * 3)
    v = np.array([-60., -5., -1.5, 0.3, 9.])  # no underflow far left
    _close(jg.special.log_ndtr(jg.tensor(v)), torch.special.log_ndtr(torch.tensor(v)))
    e = np.array([-3., 0., 2., 30., 1e4])
    _close(jg.special.erfcx(jg.tensor(e)), torch.special.erfcx(torch.tensor(e)))
    _grad_check(jg.special.entr, torch.special.entr, np.abs(a) + 0.1)
    q = np.array([0.01, 0.3, 0.5, 0.97])
    _close(jg.special.ndtri(jg.tensor(q)), torch.special.ndtri(torch.tensor(q)))
    x = np.array([-2.0, 0.0, 3.0, np.nan])
    _close(jg.angle(jg.tensor(x)), torch.angle(torch.tensor(x)))
    _close(jg.special.entr(jg.tensor([-1.0, 0.0])), torch.special.entr(torch.tensor([-1.0, 0.])))


def test_ldexp_frexp_nextafter():
    a = R.standard_normal(5) * 100
    e = np.array([-3, 0, 2, 5, 70])
    _close(jg.ldexp(jg.tensor(a), jg.tensor(e)), torch.ldexp(torch.tensor(a), torch.tensor(e)))
    jm, je = jg.frexp(jg.tensor(a))
    tm, te = torch.frexp(torch.tensor(a))
    _close(jm, tm)
    assert je.dtype == jg.int32 and np.array_equal(je.numpy(), te.numpy())
    sub = np.float32([1e-45, 3e38, -1e-40, 0.0, np.inf, np.nan])  # subnormal, huge, inf, nan
    jm, je = jg.frexp(jg.tensor(sub))
    tm, te = torch.frexp(torch.tensor(sub))
    _close(jm, tm, 0)
    assert np.array_equal(je.numpy(), te.numpy())
    x = jg.tensor(np.float32([1.0, -2.0, np.inf]))
    y = torch.tensor(np.float32([1.0, -2.0, np.inf]))
    _close(jg.nextafter(x, jg.tensor(np.float32(0))), torch.nextafter(y, torch.tensor(0.0)), 0)
    _grad_check(jg.nextafter, torch.nextafter, a, a + 1)


def test_isclose_isin_gcd_lcm():
    a = np.array([1.0, np.nan, np.inf, 1e-9])
    b = np.array([1.0 + 1e-7, np.nan, np.inf, 0.0])
    for eq_nan in (False, True):
        assert np.array_equal(jg.isclose(jg.tensor(a), jg.tensor(b), equal_nan=eq_nan).numpy(),
                              torch.isclose(torch.tensor(a), torch.tensor(b),
                                            equal_nan=eq_nan).numpy())
    with pytest.raises(RuntimeError, match="did not match"):
        jg.isclose(jg.tensor([1.0]), jg.tensor([1]))
    e, t = np.array([[1, 5], [3, 9]]), np.array([3, 4, 5])
    for inv in (False, True):
        assert np.array_equal(jg.isin(jg.tensor(e), jg.tensor(t), invert=inv).numpy(),
                              torch.isin(torch.tensor(e), torch.tensor(t), invert=inv).numpy())
    i, k = np.array([12, -18, 0, 7]), np.array([8, 12, 5, 0])
    for f in ("gcd", "lcm"):
        assert np.array_equal(getattr(jg, f)(jg.tensor(i), jg.tensor(k)).numpy(),
                              getattr(torch, f)(torch.tensor(i), torch.tensor(k)).numpy())
    x = jg.tensor(i)
    x.gcd_(jg.tensor(k))
    assert np.array_equal(x.numpy(), np.gcd(i, k))
    with pytest.raises(RuntimeError):
        jg.gcd(jg.tensor([1.0]), jg.tensor([2.0]))


def test_diff_trapezoid_gradient():
    y = R.standard_normal((4, 5))
    x = np.sort(R.standard_normal(5))
    _grad_check(lambda t: jg.diff(t, n=2, dim=1), lambda t: torch.diff(t, n=2, dim=1), y)
    _grad_check(lambda t, p: jg.diff(t, dim=0, prepend=p), lambda t, p: torch.diff(
        t, dim=0, prepend=p), y, y[:2])
    _grad_check(lambda t, c: jg.trapezoid(t, c), lambda t, c: torch.trapezoid(t, c), y, x)
    _grad_check(lambda t: jg.trapz(t, dx=0.5, dim=0), lambda t: torch.trapz(t, dx=0.5, dim=0), y)
    _grad_check(lambda t, c: jg.cumulative_trapezoid(t, c),
                lambda t, c: torch.cumulative_trapezoid(t, c), y, x)
    for kw in ({}, {"spacing": 2.0, "dim": 1, "edge_order": 2}):
        for j, t in zip(jg.gradient(jg.tensor(y), **kw), torch.gradient(torch.tensor(y), **kw)):
            _close(j, t)
    for order in (1, 2):
        j = jg.gradient(jg.tensor(y), spacing=(jg.tensor(x),), dim=1, edge_order=order)
        t = torch.gradient(torch.tensor(y), spacing=(torch.tensor(x),), dim=1, edge_order=order)
        _close(j[0], t[0])
    assert jg.diff(jg.tensor([True, False, False])).dtype == jg.bool


def test_cov_corrcoef_cdist():
    a = R.standard_normal((3, 6))
    fw, aw = np.array([1, 2, 0, 3, 1, 1]), np.abs(R.standard_normal(6))
    _grad_check(lambda t: jg.cov(t, correction=0, fweights=jg.tensor(fw), aweights=jg.tensor(aw)),
                lambda t: torch.cov(t, correction=0, fweights=torch.tensor(fw),
                                    aweights=torch.tensor(aw)), a)
    _close(jg.corrcoef(jg.tensor(a)), torch.corrcoef(torch.tensor(a)))
    _close(jg.cov(jg.tensor(a[0])), torch.cov(torch.tensor(a[0])))
    b = R.standard_normal((2, 4, 3))
    c = np.concatenate([b[:, :2], R.standard_normal((2, 3, 3))], 1)  # zero distances too
    for p in (0.0, 2.0):  # gradient 0 at the zero distances, as torch's
        _grad_check(lambda u, v: jg.cdist(u, v, p), lambda u, v: torch.cdist(u, v, p), b, c)
    for p in (1.0, 1.5, np.inf):
        _close(jg.cdist(jg.tensor(b), jg.tensor(c), p), torch.cdist(torch.tensor(b),
                                                                    torch.tensor(c), p))


def test_bincount_histc_put():
    i = np.array([0, 3, 3, 1, 7])
    w = R.standard_normal(5)
    assert np.array_equal(jg.bincount(jg.tensor(i), minlength=10).numpy(),
                          torch.bincount(torch.tensor(i), minlength=10).numpy())
    j, t = jg.tensor(i).bincount(jg.tensor(w)), torch.tensor(i).bincount(torch.tensor(w))
    assert j.dtype == jg.float64
    _close(j, t)
    with pytest.raises(RuntimeError, match="non-negative"):
        jg.bincount(jg.tensor([1, -1]))
    with pytest.raises(RuntimeError, match="1-d"):
        jg.bincount(jg.tensor([[1]]))
    h = R.standard_normal(50).astype(np.float32)
    for args in ((10,), (7, -1.0, 1.0)):
        _close(jg.histc(jg.tensor(h), *args), torch.histc(torch.tensor(h), *args), 0)
    base = R.standard_normal((3, 4))
    idx, src = np.array([0, -1, 5, 5]), R.standard_normal(4)
    for acc in (False, True):
        if not acc:
            idx = np.array([0, -1, 5, 6])
        _grad_check(lambda x, s: jg.put(x, jg.tensor(idx), s, acc),
                    lambda x, s: torch.put(x, torch.tensor(idx), s, acc), base, src)
    x = jg.tensor(base.copy())
    x.put_(jg.tensor([1]), jg.tensor([9.0], dtype=jg.float64))
    assert x.numpy().reshape(-1)[1] == 9.0
    with pytest.raises(IndexError, match="out of range"):
        jg.put(jg.tensor(base), jg.tensor([12]), jg.tensor([1.0], dtype=jg.float64))
