"""Issue 16's elementwise breadth beyond the OpInfo rows: in-place variants (values and the
gradient through the rebased node; torch has no asinh_/acosh_/atanh_ derivative), integer/bool
dtype rules and round(decimals=), vs torch."""
import numpy as np
import pytest

import jitgrad

torch = pytest.importorskip("torch")

X = np.array([-2.5, -0.5, 0.3, 0.5, 1.5, 0.75], dtype=np.float64)

UNARY_INPLACE = ["floor", "ceil", "round", "trunc", "frac", "atan", "sinh", "exp2",
                 "erfc", "deg2rad"]


@pytest.mark.parametrize("name", UNARY_INPLACE)
def test_inplace_unary_matches_torch(name):
    x = jitgrad.tensor(X, requires_grad=True)
    tx = torch.tensor(X, requires_grad=True)
    y, ty = x * 2, tx * 2
    getattr(y, name + "_")()
    getattr(ty, name + "_")()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["atan2", "hypot"])  # torch has no logaddexp_
def test_inplace_binary_matches_torch(name):
    o = np.linspace(0.25, 2.0, X.size)
    x, w = jitgrad.tensor(X, requires_grad=True), jitgrad.tensor(o, requires_grad=True)
    tx, tw = torch.tensor(X, requires_grad=True), torch.tensor(o, requires_grad=True)
    y, ty = x * 1, tx * 1
    getattr(y, name + "_")(w)
    getattr(ty, name + "_")(tw)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12)


def test_integer_and_bool_dtype_rules():
    i = np.array([-3, 0, 7], dtype=np.int64)
    for name in ("floor", "ceil", "round", "trunc"):
        r = getattr(jitgrad, name)(jitgrad.tensor(i))
        assert r.dtype == jitgrad.int64
        np.testing.assert_array_equal(r.numpy(), i)
        with pytest.raises(RuntimeError, match="Bool"):
            getattr(jitgrad, name)(jitgrad.tensor([True, False]))
    with pytest.raises(RuntimeError, match="floating point"):
        jitgrad.frac(jitgrad.tensor(i))
    r = jitgrad.log2(jitgrad.tensor(np.array([1, 8], dtype=np.int64)))
    assert r.dtype == jitgrad.float32          # ints promote to the default float, like torch
    np.testing.assert_array_equal(r.numpy(), [0.0, 3.0])


@pytest.mark.parametrize("decimals", [2, -1])
def test_round_decimals_matches_torch(decimals):
    v = np.array([1.2345, -15.5, 25.0, 0.125], dtype=np.float32)
    r = jitgrad.round(jitgrad.tensor(v), decimals=decimals)
    t = torch.round(torch.tensor(v), decimals=decimals)
    np.testing.assert_array_equal(r.numpy(), t.numpy())
