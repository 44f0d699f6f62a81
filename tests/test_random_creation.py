"""Random draws and creation breadth (issue 16): normal (tensor/float forms), bernoulli,
multinomial, the in-place fills, rand/randn(size=), tril/triu_indices, logspace, randint_like,
scalar_tensor, new_empty, type_as, inference_mode. Random values are checked by what must hold
for every draw (ranges, dtypes, shapes, zero-probability categories never drawn, exact 0/1
probabilities), by sample statistics on large draws, and by ``generator=`` reproducibility;
deterministic ones against torch."""
import numpy as np
import pytest

import jitgrad

torch = pytest.importorskip("torch")


def _gen(seed=0):
    return jitgrad.Generator().manual_seed(seed)


def test_rand_randn_accept_size_keyword_and_generator():
    a = jitgrad.randn(size=(3, 4), generator=_gen(1))
    b = jitgrad.randn(3, 4, generator=_gen(1))
    assert a.shape == (3, 4) and np.array_equal(a.numpy(), b.numpy())
    assert jitgrad.rand(size=5).shape == (5,)
    with pytest.raises(TypeError, match="both"):
        jitgrad.rand(2, size=(2,))


def test_normal_forms_statistics_and_generator():
    g = _gen(3)
    x = jitgrad.normal(2.0, 3.0, size=(20000,), generator=g)
    assert x.dtype == jitgrad.float32 and x.shape == (20000,)
    assert abs(float(x.mean()) - 2.0) < 0.1 and abs(float(x.std()) - 3.0) < 0.1
    mean = jitgrad.tensor(np.array([[-5.0], [5.0]]))            # float64, broadcast with std
    std = jitgrad.tensor(np.full((1, 10000), 0.5))
    y = jitgrad.normal(mean, std, generator=_gen(4))
    assert y.shape == (2, 10000) and y.dtype == jitgrad.float64
    np.testing.assert_allclose(y.numpy().mean(1), [-5.0, 5.0], atol=0.05)
    np.testing.assert_allclose(y.numpy().std(1), [0.5, 0.5], atol=0.05)
    z = jitgrad.normal(jitgrad.zeros(4000), 2.0)                # tensor mean, float std
    assert z.shape == (4000,) and abs(float(z.std()) - 2.0) < 0.15
    w = jitgrad.normal(1.0, jitgrad.full((3,), 0.0))            # float mean, tensor std 0
    assert w.tolist() == [1.0, 1.0, 1.0]
    a = jitgrad.normal(mean, std, generator=_gen(9))
    b = jitgrad.normal(mean, std, generator=_gen(9))
    assert np.array_equal(a.numpy(), b.numpy())
    with pytest.raises(RuntimeError, match="std >= 0"):
        jitgrad.normal(jitgrad.zeros(2), jitgrad.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="size"):
        jitgrad.normal(0.0, 1.0)


def test_bernoulli_and_multinomial():
    p = jitgrad.tensor([0.0, 1.0, 0.0, 1.0], dtype=jitgrad.float64)
    assert jitgrad.bernoulli(p).tolist() == [0.0, 1.0, 0.0, 1.0]
    assert jitgrad.bernoulli(p).dtype == jitgrad.float64
    b = jitgrad.bernoulli(jitgrad.full((20000,), 0.3), generator=_gen(5))
    assert set(np.unique(b.numpy())) <= {0.0, 1.0} and abs(float(b.mean()) - 0.3) < 0.02
    assert abs(float(jitgrad.zeros(20000).bernoulli(0.7).mean()) - 0.7) < 0.02
    x = jitgrad.zeros(20000)
    assert x.bernoulli_(0.25, generator=_gen(6)) is x and abs(float(x.mean()) - 0.25) < 0.02
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        jitgrad.bernoulli(jitgrad.tensor([1.5]))
    w = jitgrad.tensor([[0.0, 1.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    s = jitgrad.multinomial(w, 2, generator=_gen(7))
    assert s.dtype == jitgrad.int64 and s.shape == (2, 2)
    assert sorted(s[0].tolist()) == [1, 2]                      # zero weights never drawn
    assert len(set(s[1].tolist())) == 2                         # without replacement
    r = w[0].multinomial(30000, replacement=True, generator=_gen(8)).numpy()
    assert set(np.unique(r)) <= {1, 2} and abs((r == 2).mean() - 0.75) < 0.02
    a = jitgrad.multinomial(w, 2, generator=_gen(1))
    assert a.tolist() == jitgrad.multinomial(w, 2, generator=_gen(1)).tolist()
    with pytest.raises(RuntimeError, match="without replacement"):
        jitgrad.multinomial(w, 5)
    with pytest.raises(RuntimeError, match="not enough"):
        jitgrad.multinomial(w[0], 3)


@pytest.mark.parametrize("name,args,check", [
    ("normal_", (1.0, 2.0), lambda a: abs(a.mean() - 1.0) < 0.1 and abs(a.std() - 2.0) < 0.1),
    ("uniform_", (-2.0, 3.0), lambda a: a.min() >= -2.0 and a.max() < 3.0
     and abs(a.mean() - 0.5) < 0.1),
    ("exponential_", (2.0,), lambda a: a.min() >= 0 and abs(a.mean() - 0.5) < 0.03),
    ("geometric_", (0.25,), lambda a: a.min() >= 1 and np.all(a == np.round(a))
     and abs(a.mean() - 4.0) < 0.2),
    ("cauchy_", (1.0, 0.5), lambda a: abs(np.median(a) - 1.0) < 0.05),
    ("log_normal_", (0.0, 0.5), lambda a: a.min() > 0 and abs(np.log(a).std() - 0.5) < 0.03),
])
def test_inplace_fills(name, args, check):
    x = jitgrad.zeros(20000, dtype=jitgrad.float64)
    assert getattr(x, name)(*args, generator=_gen(2)) is x and x.dtype == jitgrad.float64
    assert check(x.numpy())
    y = jitgrad.zeros(20000, dtype=jitgrad.float64)
    getattr(y, name)(*args, generator=_gen(2))
    assert np.array_equal(x.numpy(), y.numpy())                  # generator= honoured
    leaf = jitgrad.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        getattr(leaf, name)(*args)
    with jitgrad.no_grad():                                      # (how nn.init uses them)
        getattr(leaf, name)(*args)


def test_uniform_from_to_keywords():
    x = jitgrad.zeros(1000).uniform_(**{"from": 2.0, "to": 2.5})
    assert 2.0 <= float(x.min()) and float(x.max()) < 2.5


def test_deterministic_creation_vs_torch():
    for args in ((3, 4), (3, 4, 1), (4, 3, -1), (0, 3), (3, 3, 5)):
        for fn in ("tril_indices", "triu_indices"):
            got, want = getattr(jitgrad, fn)(*args), getattr(torch, fn)(*args)
            assert got.dtype == jitgrad.int64 and got.tolist() == want.tolist()
    for args, kw in (((0, 2, 3), {}), ((0.5, 2.7, 4), {"dtype": "int64"}),
                     ((-1, 2, 4), {"base": 2}), ((0, 3, 4), {"base": -2.0}),
                     ((1, 2, 5), {"dtype": "float64"})):
        kj = {k: getattr(jitgrad, v) if k == "dtype" else v for k, v in kw.items()}
        kt = {k: getattr(torch, v) if k == "dtype" else v for k, v in kw.items()}
        got, want = jitgrad.logspace(*args, **kj), torch.logspace(*args, **kt)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert jitgrad.scalar_tensor(3).dtype == jitgrad.float32
    assert jitgrad.scalar_tensor(3).shape == ()
    x = jitgrad.zeros(2, 3, dtype=jitgrad.int64)
    e = x.new_empty(4, 5)
    assert e.shape == (4, 5) and e.dtype == jitgrad.int64
    assert x.new_empty_strided((2, 2), (2, 1)).shape == (2, 2)
    r = jitgrad.randint_like(x, 3, 7)
    assert r.dtype == jitgrad.int64 and r.shape == (2, 3) and 3 <= int(r.min()) <= int(r.max()) < 7
    assert jitgrad.full_like(x, 2.7).tolist() == torch.full_like(torch.zeros(2, 3, dtype=torch.int64), 2.7).tolist()
    assert jitgrad.zeros(2).type_as(x).dtype == jitgrad.int64
    assert x.element_size() == 8 and jitgrad.zeros(1, dtype=jitgrad.int32).element_size() == 4


def test_inference_mode():
    w = jitgrad.ones(3, requires_grad=True)
    assert not jitgrad.is_inference_mode_enabled()
    with jitgrad.inference_mode():
        assert jitgrad.is_inference_mode_enabled() and not jitgrad.is_grad_enabled()
        assert not (w * 2).requires_grad
    assert jitgrad.is_grad_enabled() and not jitgrad.is_inference_mode_enabled()
    with jitgrad.inference_mode(False):
        assert (w * 2).requires_grad

    @jitgrad.inference_mode()
    def f(v):
        return v * 2

    @jitgrad.inference_mode
    def g(v):
        return v * 2
    assert not f(w).requires_grad and not g(w).requires_grad
    assert (w * 2).requires_grad
