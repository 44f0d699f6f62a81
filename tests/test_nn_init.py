"""nn.init against torch.nn.init: gains, fans and errors exactly; the distributions by their
bounds and moments (the numbers come from jitgrad's generator, not torch's); in place, under
no_grad, seeded by jitgrad.manual_seed or generator=."""
from __future__ import annotations

import math

import numpy as np
import pytest

import jitgrad
import jitgrad.nn as nn
from jitgrad.nn import init

torch = pytest.importorskip("torch")
TI = torch.nn.init


@pytest.mark.parametrize("nl,param", [("linear", None), ("conv2d", None), ("sigmoid", None),
                                      ("tanh", None), ("relu", None), ("leaky_relu", None),
                                      ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu", None)])
def test_calculate_gain_matches_torch(nl, param):
    assert init.calculate_gain(nl, param) == TI.calculate_gain(nl, param)


def test_calculate_gain_errors():
    for args in [("foo",), ("leaky_relu", True), ("leaky_relu", "x")]:
        with pytest.raises(ValueError) as ej:
            init.calculate_gain(*args)
        with pytest.raises(ValueError) as et:
            TI.calculate_gain(*args)
        assert str(ej.value) == str(et.value)


@pytest.mark.parametrize("shape", [(3, 5), (4, 2, 3, 3), (2, 7, 5)])
def test_fans_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(jitgrad.empty(shape)) == \
        TI._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_fan_and_mode_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(jitgrad.empty(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(jitgrad.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(jitgrad.empty(3))


def _check_uniform(v, bound):
    assert np.abs(v).max() <= bound and np.abs(v).max() > 0.97 * bound
    assert abs(v.mean()) < 0.05 * bound
    np.testing.assert_allclose(v.std(), bound / math.sqrt(3), rtol=0.04)


def test_uniform_family_bounds_and_moments():
    jitgrad.manual_seed(0)
    w = jitgrad.empty(200, 100)
    fan_in, fan_out = 100, 200
    assert init.uniform_(w, -2.0, 3.0) is w
    v = w.numpy()
    assert v.min() >= -2 and v.max() < 3 and abs(v.mean() - 0.5) < 0.05
    init.xavier_uniform_(w, gain=2.0)
    _check_uniform(w.numpy(), 2.0 * math.sqrt(6.0 / (fan_in + fan_out)))
    init.kaiming_uniform_(w, a=math.sqrt(5))  # Linear's default: U(+-1/sqrt(fan_in))
    _check_uniform(w.numpy(), 1 / math.sqrt(fan_in))
    init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")
    _check_uniform(w.numpy(), math.sqrt(2) * math.sqrt(3 / fan_out))


def test_normal_family_moments():
    jitgrad.manual_seed(1)
    w = jitgrad.empty(300, 100, dtype=jitgrad.float64)
    init.normal_(w, 1.5, 0.5)
    v = w.numpy()
    assert abs(v.mean() - 1.5) < 0.01 and abs(v.std() - 0.5) < 0.01
    init.xavier_normal_(w)
    np.testing.assert_allclose(w.numpy().std(), math.sqrt(2 / 400), rtol=0.03)
    init.kaiming_normal_(w, a=0.1, mode="fan_out", nonlinearity="leaky_relu")
    np.testing.assert_allclose(w.numpy().std(),
                               TI.calculate_gain("leaky_relu", 0.1) / math.sqrt(300), rtol=0.03)
    init.trunc_normal_(w, mean=0.5, std=1.0, a=-0.5, b=1.0)
    v = w.numpy()
    assert v.min() >= -0.5 and v.max() <= 1.0
    ref = TI.trunc_normal_(torch.empty(300, 100, dtype=torch.float64), 0.5, 1.0, -0.5, 1.0)
    np.testing.assert_allclose(v.mean(), ref.mean().item(), atol=0.01)
    np.testing.assert_allclose(v.std(), ref.std().item(), atol=0.01)


def test_constants_eye_orthogonal_sparse():
    w = jitgrad.empty(3, 4)
    assert init.constant_(w, 0.25) is w and (w.numpy() == 0.25).all()
    assert (init.zeros_(w).numpy() == 0).all() and (init.ones_(w).numpy() == 1).all()
    np.testing.assert_array_equal(init.eye_(w).numpy(), np.eye(3, 4))
    jitgrad.manual_seed(2)
    for shape in [(4, 6), (6, 4), (3, 2, 2)]:
        q = init.orthogonal_(jitgrad.empty(*shape, dtype=jitgrad.float64), gain=2.0).numpy()
        q = q.reshape(shape[0], -1)
        gram = q @ q.T if q.shape[0] <= q.shape[1] else q.T @ q
        np.testing.assert_allclose(gram, 4 * np.eye(min(q.shape)), atol=1e-12)
    s = init.sparse_(jitgrad.empty(10, 5), sparsity=0.3).numpy()
    assert ((s == 0).sum(0) >= 3).all()


def test_init_in_place_without_grad_and_seeded():
    p = nn.Parameter(jitgrad.empty(4, 4))
    v0 = p._version
    init.kaiming_uniform_(p)  # a leaf that requires grad: allowed, not recorded
    assert p.grad_fn is None and p.requires_grad and p._version > v0
    jitgrad.manual_seed(5)
    a = init.normal_(jitgrad.empty(5)).numpy().copy()
    jitgrad.manual_seed(5)
    b = init.normal_(jitgrad.empty(5)).numpy()
    np.testing.assert_array_equal(a, b)
    g = jitgrad.Generator().manual_seed(7)
    c = init.uniform_(jitgrad.empty(5), generator=g).numpy().copy()
    g.manual_seed(7)
    np.testing.assert_array_equal(c, init.uniform_(jitgrad.empty(5), generator=g).numpy())
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(jitgrad.empty(0, 3))
    jitgrad.manual_seed(0)
    m1 = nn.Linear(3, 3)
    jitgrad.manual_seed(0)
    m2 = nn.Linear(3, 3)
    np.testing.assert_array_equal(m1.weight.detach().numpy(), m2.weight.detach().numpy())
