"""Public API against torch (and NumPy): creation, dtypes and promotion, repr, indexing,
reductions, shape ops, matmul, in-place ops, nn.functional."""
import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as JF

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RNG = np.random.default_rng(1234)


# --- helpers ----------------------------------------------------------------------------------

def _np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    if isinstance(t, jitgrad.Tensor):
        return t.detach().numpy()
    return np.asarray(t)


def _flat(out):
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res += _flat(o)
        return res
    return [out]


def check(fn, *arrays, rtol=1e-10, atol=1e-12, grad=True, ints=()):
    """Run fn(M, *tensors) with M = jitgrad and M = torch on identical float64 inputs (integer
    arrays are passed as int64 tensors without grad); compare outputs and the gradients of
    sum(out_i * u_i) for random u_i."""
    res = {}
    for M in (jitgrad, torch):
        ins = []
        for k, a in enumerate(arrays):
            a = np.asarray(a)
            if a.dtype.kind in "iub":
                ins.append(M.tensor(a))
            else:
                ins.append(M.tensor(a.astype(np.float64), dtype=M.float64, requires_grad=grad))
        res[M] = (ins, fn(M, *ins))
    (jins, jout), (tins, tout) = res[jitgrad], res[torch]
    jo, to = _flat(jout), _flat(tout)
    assert len(jo) == len(to)
    for a, b in zip(jo, to):
        assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1], (a.dtype, b.dtype)
        np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, equal_nan=True)
    if not grad:
        return jout
    pairs = [(a, b) for a, b in zip(jo, to) if b.requires_grad]
    for a, b in zip(jo, to):
        assert bool(a.requires_grad) == bool(b.requires_grad)
    if not pairs:
        return jout
    jl, tl = 0, 0
    for a, b in pairs:
        u = RNG.standard_normal(tuple(b.shape))
        jl = jl + (a * jitgrad.tensor(u)).sum()
        tl = tl + (b * torch.tensor(u)).sum()
    jl.backward()
    tl.backward()
    for a, b in zip(jins, tins):
        if not b.requires_grad:
            continue
        if b.grad is None:
            assert a.grad is None or np.all(_np(a.grad) == 0)
            continue
        assert a.grad is not None
        assert tuple(a.grad.shape) == tuple(b.grad.shape)
        np.testing.assert_allclose(_np(a.grad), _np(b.grad), rtol=rtol, atol=atol,
                                   equal_nan=True)
    return jout


def rn(*shape):
    return RNG.standard_normal(shape)


# --- creation ---------------------------------------------------------------------------------

def test_tensor_creation_dtypes_like_torch():
    for data in ([1, 2], [1.5, 2], [True, False], 3, 2.5, True, [[1, 2], [3, 4]], []):
        j, t = jitgrad.tensor(data), torch.tensor(data)
        assert str(j.dtype) == str(t.dtype).replace("torch", "jitgrad"), data
        assert tuple(j.shape) == tuple(t.shape)
        np.testing.assert_array_equal(j.numpy(), t.numpy())
    assert jitgrad.tensor([1, 2], dtype=jitgrad.float64).dtype == jitgrad.float64
    assert jitgrad.tensor(np.arange(3.0)).dtype == jitgrad.float64
    assert jitgrad.tensor(np.arange(3, dtype=np.int32)).dtype == jitgrad.int32
    assert jitgrad.float is jitgrad.float32 and jitgrad.double is jitgrad.float64
    assert jitgrad.long is jitgrad.int64
    assert str(jitgrad.bool) == "jitgrad.bool" and str(jitgrad.int32) == "jitgrad.int32"
    assert jitgrad.get_default_dtype() == jitgrad.float32


def test_factories_match_torch():
    cases = [
        lambda M: M.zeros(2, 3), lambda M: M.zeros((2, 3), dtype=M.int64),
        lambda M: M.ones(4), lambda M: M.ones(2, 2, dtype=M.bool),
        lambda M: M.full((2, 2), 7), lambda M: M.full((2,), 2.5), lambda M: M.full((3,), True),
        lambda M: M.full((2, 1), 3, dtype=M.float64),
        lambda M: M.eye(3), lambda M: M.eye(2, 4), lambda M: M.eye(3, dtype=M.int32),
        lambda M: M.arange(5), lambda M: M.arange(1, 7, 2), lambda M: M.arange(0, 1, 0.25),
        lambda M: M.arange(5.0), lambda M: M.arange(3, dtype=M.float64),
        lambda M: M.linspace(0, 1, 5), lambda M: M.linspace(-2, 2, 9, dtype=M.float64),
        lambda M: M.zeros_like(M.ones(2, 3, dtype=M.int32)),
        lambda M: M.ones_like(M.zeros(3, dtype=M.float64)),
        lambda M: M.full_like(M.zeros(2), 4.0), lambda M: M.zeros(0), lambda M: M.ones(2, 0, 3),
    ]
    for f in cases:
        j, t = f(jitgrad), f(torch)
        assert str(j.dtype) == str(t.dtype).replace("torch", "jitgrad")
        assert tuple(j.shape) == tuple(t.shape)
        np.testing.assert_allclose(j.numpy(), t.numpy(), rtol=1e-7)


def test_empty_rand_randn_and_seed():
    e = jitgrad.empty(2, 3)
    assert e.shape == (2, 3) and e.dtype == jitgrad.float32
    assert jitgrad.empty_like(jitgrad.zeros(4, dtype=jitgrad.int64)).dtype == jitgrad.int64
    jitgrad.manual_seed(7)
    a, b = jitgrad.rand(1000), jitgrad.randn(1000, dtype=jitgrad.float64)
    jitgrad.manual_seed(7)
    a2, b2 = jitgrad.rand(1000), jitgrad.randn(1000, dtype=jitgrad.float64)
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    np.testing.assert_array_equal(b.numpy(), b2.numpy())
    assert a.dtype == jitgrad.float32 and b.dtype == jitgrad.float64
    assert 0 <= a.min().item() and a.max().item() < 1 and abs(a.mean().item() - 0.5) < 0.05
    assert abs(b.mean().item()) < 0.15 and abs(b.std().item() - 1) < 0.1
    r = jitgrad.randn_like(jitgrad.zeros(2, 3), requires_grad=True)
    assert r.shape == (2, 3) and r.requires_grad and r.is_leaf
    assert jitgrad.rand_like(jitgrad.zeros(5, dtype=jitgrad.float64)).dtype == jitgrad.float64
    x = jitgrad.randn(2, 3, requires_grad=True)
    assert x.requires_grad and x.shape == (2, 3)


def test_numpy_interop_zero_copy():
    a = np.arange(6.0).reshape(2, 3)
    t = jitgrad.from_numpy(a)
    assert t.dtype == jitgrad.float64 and t.shape == (2, 3)
    a[0, 0] = 100.0
    assert t[0, 0].item() == 100.0
    t.add_(1)
    assert a[1, 2] == 6.0
    n = t.numpy()
    assert np.shares_memory(n, a)
    assert np.shares_memory(np.asarray(t), a)
    c = jitgrad.tensor(a)  # copies
    a[0, 1] = -5
    assert c[0, 1].item() == 2.0
    assert jitgrad.from_numpy(np.array([1, 2], np.int32)).dtype == jitgrad.int32
    assert jitgrad.from_numpy(np.array([True])).dtype == jitgrad.bool
    with pytest.raises(RuntimeError, match="requires grad"):
        jitgrad.zeros(2, requires_grad=True).numpy()
    np.testing.assert_array_equal(np.asarray(jitgrad.tensor([[1, 2]])), [[1, 2]])


def test_device():
    t = jitgrad.zeros(2, device="cpu")
    assert str(t.device) == "cpu" and t.device == "cpu" and t.device.type == "cpu"
    assert jitgrad.tensor([1.0], device=jitgrad.device("cpu")).device.type == "cpu"
    assert t.to("cpu") is t and t.cpu() is t
    d = jitgrad.device("cuda:0")
    assert (d.type, d.index, str(d), repr(d)) == ("cuda", 0, "cuda:0",
                                                  "device(type='cuda', index=0)")
    assert str(jitgrad.device("cuda")) == "cuda" and jitgrad.device("cuda").index is None
    assert jitgrad.device(0) == jitgrad.device("cuda:0") != jitgrad.device("cpu")
    for bad in ("tpu", "cuda:x", "cuda:1"):
        with pytest.raises(RuntimeError, match="device"):
            jitgrad.device(bad)


def test_tensor_metadata():
    x = jitgrad.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert repr(x.shape) == "jitgrad.Size([2, 3, 4])"
    assert x.dim() == 3 and x.ndim == 3 and x.numel() == 24 and len(x) == 2
    assert not x.requires_grad and x.grad is None and x.grad_fn is None and x.is_leaf
    assert x.requires_grad_() is x and x.requires_grad
    s = jitgrad.tensor(3.5)
    assert s.dim() == 0 and s.shape == () and s.numel() == 1 and s.item() == 3.5
    assert jitgrad.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert jitgrad.tensor([1.5]).tolist() == [1.5]
    assert jitgrad.tensor(7).item() == 7 and isinstance(jitgrad.tensor(7).item(), int)
    assert isinstance(jitgrad.tensor(2.5).item(), float)
    assert jitgrad.tensor(True).item() is True
    assert float(jitgrad.tensor([2.0])) == 2.0 and int(jitgrad.tensor(3)) == 3
    with pytest.raises(TypeError):
        len(s)
    with pytest.raises((ValueError, RuntimeError)):
        jitgrad.zeros(2).item()
    e = jitgrad.zeros(0, 3)
    assert e.numel() == 0 and len(e) == 0 and e.sum().item() == 0.0


def test_type_conversions():
    x = jitgrad.tensor([1.7, -2.2])
    assert x.double().dtype == jitgrad.float64
    np.testing.assert_array_equal(x.long().numpy(), [1, -2])
    assert x.int().dtype == jitgrad.int32 and x.bool().dtype == jitgrad.bool
    assert x.to(jitgrad.float64).dtype == jitgrad.float64
    assert jitgrad.tensor([1, 2]).float().dtype == jitgrad.float32
    y = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    (y.double() * 3).sum().backward()
    assert y.grad.dtype == jitgrad.float32
    np.testing.assert_array_equal(y.grad.numpy(), [3.0, 3.0])


# --- promotion --------------------------------------------------------------------------------

DTS = ["bool", "int32", "int64", "float32", "float64"]
VALUES = {"bool": [True, False], "int32": [1, 2], "int64": [3, 4], "float32": [1.5, 2.5],
          "float64": [0.25, 0.5]}


def _mk(M, dt, zero_dim):
    """A 0-d tensor, or an *empty* 1-d one for dimensioned operands: the result dtype is decided
    before any kernel runs, and an empty result launches (so compiles) no kernel."""
    if zero_dim:
        return M.tensor(VALUES[dt][0], dtype=getattr(M, dt))
    return M.zeros(0, dtype=getattr(M, dt))


def _name(dt):
    return str(dt).split(".")[-1]


@pytest.mark.parametrize("kind", ["dim-dim", "dim-0d"])
def test_promotion_tensor_tensor(kind):
    zb = kind == "dim-0d"
    for da in DTS:
        for db in DTS:
            ta, tb = _mk(torch, da, False), _mk(torch, db, zb)
            ja, jb = _mk(jitgrad, da, False), _mk(jitgrad, db, zb)
            expected = _name(torch.result_type(ta, tb))
            for out in (ja * jb, jb * ja, ja + jb):
                assert _name(out.dtype) == expected, (kind, da, db)
                assert out.shape == (0,)
            if not zb:  # cat promotes too (no kernel: NumPy concatenate)
                ca = jitgrad.cat([jitgrad.tensor(VALUES[da], dtype=getattr(jitgrad, da)),
                                  jitgrad.tensor(VALUES[db], dtype=getattr(jitgrad, db))])
                tc = torch.cat([torch.tensor(VALUES[da], dtype=getattr(torch, da)),
                                torch.tensor(VALUES[db], dtype=getattr(torch, db))])
                assert _name(ca.dtype) == expected
                np.testing.assert_array_equal(ca.numpy(), tc.numpy())


def test_cat_with_empty_tensor_promotes():
    out = jitgrad.cat([jitgrad.zeros(0, dtype=jitgrad.float64), jitgrad.tensor([1, 2])])
    assert out.dtype == jitgrad.float64
    np.testing.assert_array_equal(out.numpy(), [1.0, 2.0])


def test_promotion_zero_dim_pairs_with_values():
    pairs = [("bool", "int32"), ("int32", "int64"), ("int64", "float32"), ("float32", "float64"),
             ("bool", "float64"), ("int32", "float32")]
    for da, db in pairs:
        ta, tb = _mk(torch, da, True), _mk(torch, db, True)
        ja, jb = _mk(jitgrad, da, True), _mk(jitgrad, db, True)
        out = ja * jb
        assert _name(out.dtype) == _name(torch.result_type(ta, tb)), (da, db)
        assert out.shape == () and out.item() == (ta * tb).item()


def test_promotion_tensor_scalar():
    for zero_dim in (False, True):
        for da in DTS:
            for sc in (True, 3, 2.5):
                ta = _mk(torch, da, zero_dim)
                ja = _mk(jitgrad, da, zero_dim)
                expected = _name(torch.result_type(ta, sc))
                assert _name((ja * sc).dtype) == expected, (zero_dim, da, sc)
                if zero_dim:  # (0-d operands launch a kernel: one op only)
                    assert (ja * sc).item() == (ta * sc).item()
                else:
                    assert _name((sc + ja).dtype) == expected, (zero_dim, da, sc)


def test_true_division_and_float_ops_promote_ints():
    a, b = jitgrad.tensor([1, 2]), jitgrad.tensor([2, 4])
    assert (a / b).dtype == jitgrad.float32
    np.testing.assert_allclose((a / b).numpy(), [0.5, 0.5])
    assert a.exp().dtype == jitgrad.float32
    assert (a / 2).dtype == jitgrad.float32
    assert (a + 1).dtype == jitgrad.int64 and (a * 2.0).dtype == jitgrad.float32
    assert (jitgrad.tensor([1, 2], dtype=jitgrad.int32) + 5).dtype == jitgrad.int32
    assert (a > 1).dtype == jitgrad.bool
    assert (a.sum()).dtype == jitgrad.int64
    assert jitgrad.tensor([True, True]).sum().item() == 2


# --- repr -------------------------------------------------------------------------------------

REPR_CASES = [
    lambda M: M.tensor([1.0, 2.0]),
    lambda M: M.tensor([0.1234, -5.5]),
    lambda M: M.tensor([1e-5, 1.0]),
    lambda M: M.tensor([123456.789, 1.0]),
    lambda M: M.tensor([1e10]),
    lambda M: M.tensor([[1.5, 2.0], [3.0, -4.25]]),
    lambda M: M.tensor([1, 2, 3]),
    lambda M: M.tensor([[1, -20], [300, 4]]),
    lambda M: M.tensor([True, False]),
    lambda M: M.tensor(3.5),
    lambda M: M.tensor(7),
    lambda M: M.tensor(True),
    lambda M: M.tensor([]),
    lambda M: M.zeros(2, 0),
    lambda M: M.zeros(0, dtype=M.float64),
    lambda M: M.tensor([1.0, 2.5], dtype=M.float64),
    lambda M: M.tensor(2.5, dtype=M.float64),
    lambda M: M.tensor([1, 2], dtype=M.int32),
    lambda M: M.tensor([1.0, 2.0], requires_grad=True),
    lambda M: M.tensor([1.0, 2.0], requires_grad=True) * 2,
    lambda M: M.tensor(2.0, requires_grad=True).exp(),
    lambda M: M.tensor([1.0, 2.0], dtype=M.float64, requires_grad=True).sum(),
    lambda M: M.arange(24.0).reshape(2, 3, 4) / 7,
    lambda M: M.linspace(0, 1, 30),
    lambda M: M.tensor([float("nan"), 1.5]),
    lambda M: M.tensor([[0.1234] * 10] * 3),
    lambda M: M.tensor([1e20, -1e-20]),
]


@pytest.mark.parametrize("k", range(len(REPR_CASES)))
def test_repr_matches_torch(k):
    f = REPR_CASES[k]
    assert repr(f(jitgrad)) == str(f(torch)).replace("torch.", "jitgrad.")


@pytest.mark.parametrize("f", [
    lambda M: M.tensor([float("nan"), 1.0, float("inf")]),
    lambda M: M.tensor([-0.0, 1.0]),
], ids=["nan-inf-int-mode", "negative-zero"])
def test_repr_nonfinite_width(f):
    assert repr(f(jitgrad)) == str(f(torch))


def test_repr_empty_int():
    assert repr(jitgrad.zeros(0, dtype=jitgrad.int64)) == "tensor([], dtype=jitgrad.int64)"


def test_repr_summarized():
    assert repr(jitgrad.arange(2000)) == str(torch.arange(2000))


# --- indexing ---------------------------------------------------------------------------------

def _idx(M, spec):
    """Build an index for module M from a spec (tensors become M tensors)."""
    if isinstance(spec, tuple):
        return tuple(_idx(M, s) for s in spec)
    if isinstance(spec, np.ndarray):
        return M.tensor(spec)
    return spec


INDEX_SPECS = [
    1, -1, slice(1, None), slice(None, None, 2), slice(3, 0, None), (1, 2), (-1, slice(None), 0),
    (Ellipsis, 1), (slice(None), None, 1), None, (Ellipsis, None), (0, Ellipsis, slice(1, 4, 2)),
    np.array([2, 0, 2]), [0, 2], np.array([[1, 0], [2, 2]]), np.array(1),
    (np.array([0, 2]), np.array([1, 3])), (slice(None), np.array([3, 0, 3])),
    (np.array([0, 1]), slice(None), np.array([4, 4])),
    np.array([True, False, True]), (slice(None), np.array([True, False, True, False])),
    np.array(RNG.standard_normal((3, 4)) > 0), (1, np.array([False, True, True, False])),
    (slice(None, None, 2), Ellipsis, slice(1, None, 3)),
]


@pytest.mark.parametrize("k", range(len(INDEX_SPECS)))
def test_getitem_vs_numpy_and_torch(k):
    spec = INDEX_SPECS[k]
    a = rn(3, 4, 5)
    npidx = spec if not isinstance(spec, list) else np.array(spec)
    out = check(lambda M, x: x[_idx(M, spec)], a)
    np.testing.assert_array_equal(out.detach().numpy(), a[npidx])


def test_vjp_kernel_cache_key_includes_rank():
    a = jitgrad.randn(2, 3, 4, dtype=jitgrad.float64, requires_grad=True)
    (a * 2.0).backward(jitgrad.ones(4, 3, 2, dtype=jitgrad.float64).permute(2, 1, 0))
    b = jitgrad.randn(4, dtype=jitgrad.float64, requires_grad=True)
    (b * 2.0).backward(jitgrad.ones(8, dtype=jitgrad.float64)[::2])
    np.testing.assert_array_equal(b.grad.numpy(), [2.0] * 4)


@pytest.mark.parametrize("k", range(len(INDEX_SPECS)))
def test_setitem_vs_numpy_and_torch(k):
    spec = INDEX_SPECS[k]
    a = rn(3, 4, 5)
    npidx = spec if not isinstance(spec, list) else np.array(spec)
    tshape = a[npidx].shape
    if k % 3 == 1:
        vshape = tshape[-1:]  # broadcast along leading dims
    else:
        vshape = tshape
    v = rn(*vshape)
    if isinstance(spec, np.ndarray) and spec.dtype.kind == "i" and spec.ndim and \
            len(set(spec.ravel().tolist())) < spec.size:
        v = np.broadcast_to(rn(*tshape[spec.ndim:]), tshape).copy()  # duplicates: same value

    def f(M, x, val):
        y = x * 1.0
        y[_idx(M, spec)] = val * 2.0
        return y

    out = check(f, a, v)
    expected = a.copy()
    expected[npidx] = v * 2.0
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-15)


def test_setitem_scalars_and_no_grad_forward():
    x = jitgrad.zeros(3, 4, dtype=jitgrad.int64)
    x[0] = 5
    x[:, 1] = 7
    x[x > 6] = -1
    x[jitgrad.tensor([2, 2]), jitgrad.tensor([0, 3])] = 9
    e = np.zeros((3, 4), np.int64)
    e[0] = 5
    e[:, 1] = 7
    e[e > 6] = -1
    e[[2, 2], [0, 3]] = 9
    np.testing.assert_array_equal(x.numpy(), e)
    y = jitgrad.zeros(2, 3)
    y[...] = jitgrad.tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(y.numpy(), [[1, 2, 3], [1, 2, 3]])


def test_getitem_empty_list():
    assert jitgrad.arange(3)[[]].shape == (0,)


def test_getitem_duplicate_indices_accumulate():
    x = jitgrad.tensor([1.0, 2.0, 3.0], dtype=jitgrad.float64, requires_grad=True)
    (x[jitgrad.tensor([0, 0, 2, 0])] * jitgrad.tensor([1.0, 2.0, 3.0, 4.0],
                                                        dtype=jitgrad.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 0.0, 3.0])


def test_basic_index_is_view():
    x = jitgrad.zeros(3, 4)
    v = x[1]
    v[2] = 5.0
    assert x[1, 2].item() == 5.0
    assert x[:, ::2].shape == (3, 2)
    w = x[jitgrad.tensor([0, 1])]  # advanced index copies
    w[0, 0] = 9.0
    assert x[0, 0].item() == 0.0


# --- reductions -------------------------------------------------------------------------------

RED_CASES = {
    "sum": lambda M, x: x.sum(),
    "sum_dim": lambda M, x: x.sum(dim=1),
    "sum_neg_keep": lambda M, x: x.sum(-1, keepdim=True),
    "sum_tuple": lambda M, x: x.sum(dim=(0, 2)),
    "mean": lambda M, x: x.mean(),
    "mean_dim": lambda M, x: x.mean(dim=-2),
    "mean_keep": lambda M, x: x.mean((1, 2), keepdim=True),
    "prod": lambda M, x: (x * 0.5 + 1.0).prod(),
    "prod_dim": lambda M, x: x.prod(dim=1),
    "max": lambda M, x: x.max(),
    "min": lambda M, x: x.min(),
    "max_dim": lambda M, x: x.max(dim=1),
    "max_dim_keep": lambda M, x: x.max(dim=-1, keepdim=True),
    "max_values": lambda M, x: x.max(dim=2).values * 2,
    "amax": lambda M, x: M.amax(x, dim=1),
    "argmax": lambda M, x: x.argmax(),
    "argmax_dim": lambda M, x: x.argmax(dim=1),
    "argmax_keep": lambda M, x: M.argmax(x, dim=-1, keepdim=True),
    "logsumexp": lambda M, x: x.logsumexp(dim=1),
    "logsumexp_keep": lambda M, x: M.logsumexp(x * 50, dim=(0, 2), keepdim=True),
    "var": lambda M, x: x.var(),
    "var_dim": lambda M, x: x.var(dim=1),
    "var_biased": lambda M, x: x.var(dim=0, correction=0),
    "std": lambda M, x: x.std(),
    "std_dim": lambda M, x: x.std(dim=(0, 1), keepdim=True),
}


@pytest.mark.parametrize("name", list(RED_CASES))
def test_reductions_vs_torch(name):
    check(RED_CASES[name], rn(3, 4, 5))


def test_max_named_fields_and_ties():
    x = jitgrad.tensor([[1.0, 5.0, 5.0], [7.0, 2.0, 0.0]], requires_grad=True)
    r = x.max(dim=1)
    np.testing.assert_array_equal(r.values.detach().numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(r.indices.numpy(), [1, 0])
    assert r.indices.dtype == jitgrad.int64
    v, i = x.min(1)
    np.testing.assert_array_equal(i.numpy(), [0, 2])
    np.testing.assert_array_equal(x.argmin(dim=1).numpy(), [0, 2])
    np.testing.assert_array_equal(jitgrad.argmin(x).numpy(), 5)
    np.testing.assert_array_equal(x.argmin(0, keepdim=True).numpy(), [[0, 1, 1]])
    check(lambda M, x: x.max(), np.array([[1.0, 5.0, 5.0], [5.0, 2.0, 0.0]]))
    check(lambda M, x: x.max(dim=1), np.array([[1.0, 5.0, 5.0], [5.0, 2.0, 0.0]]))


def test_amax_dim_ties_split_gradient():
    check(lambda M, x: M.amax(x, dim=1), np.array([[2.0, 2.0, 1.0], [0.0, 3.0, 3.0]]))


def test_var_single_element_backward():
    x = jitgrad.tensor([1.0], requires_grad=True)
    v = x.var()
    assert np.isnan(v.item())
    v.backward()
    assert np.isnan(x.grad.numpy()).all()


def test_max_nan_propagates_like_torch():
    a = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, -np.inf]])
    check(lambda M, x: (x.max(dim=1), x.min(dim=1), x.max(), x.argmax(dim=1)), a, grad=False)


def test_prod_with_zeros():
    check(lambda M, x: x.prod(dim=1), np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0],
                                               [1.0, 2.0, 3.0]]))
    check(lambda M, x: x.prod(), np.array([1.5, 0.0, -2.0]))


@pytest.mark.parametrize("fn", ["sum", "mean", "max", "prod", "logsumexp", "sum0"])
def test_reductions_0d_input(fn):
    f = {"sum": lambda M, x: x.sum(), "mean": lambda M, x: x.mean(),
         "max": lambda M, x: x.max(), "prod": lambda M, x: x.prod(),
         "logsumexp": lambda M, x: x.logsumexp(0), "sum0": lambda M, x: x.sum(0)}[fn]
    check(f, np.array(1.25))


@pytest.mark.parametrize("fn", ["mean", "mean_dim", "dot", "mse_loss"])
def test_zero_dim_results_are_arrays(fn):
    # regression: these wrapped a NumPy scalar, so any later op raised a numba TypingError
    x = jitgrad.tensor([1.0, 2.0, 3.0])
    r = {"mean": lambda: x.mean(), "mean_dim": lambda: x.mean(0), "dot": lambda: x @ x,
         "mse_loss": lambda: JF.mse_loss(x, x * 0)}[fn]()
    assert isinstance(r.numpy(), np.ndarray) and r.shape == ()
    np.testing.assert_allclose((r * jitgrad.tensor([1.0, 2.0])).numpy(),
                               np.array([1.0, 2.0], np.float32) * r.item())


def test_reductions_over_empty_dim_list_reduce_everything():
    # torch: dim=() / dim=[] means every dimension (not none)
    a = RNG.standard_normal((2, 3))
    check(lambda M, x: (x.sum(dim=()), x.mean(dim=[]), x.sum(dim=(), keepdim=True),
                        x.amax(dim=())), a)


def test_reductions_empty():
    check(lambda M, x: (x.sum(), x.sum(0), x.sum(1)), np.zeros((0, 3)))
    check(lambda M, x: (x * 2.0, x.exp(), x.reshape(3, 0), x.t()), np.zeros((0, 3)))
    assert np.isnan(jitgrad.zeros(0).mean().item())


def test_nan_inf_propagate():
    a = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    check(lambda M, x: (x * 2, x.exp(), x + 1.0, x.sum()), a, grad=False)
    x = jitgrad.tensor(a, dtype=jitgrad.float64)
    assert np.isnan(x.max().item()) and np.isnan(x.sum().item())
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal((x / 0.0).numpy(), a / 0.0)
        np.testing.assert_array_equal(jitgrad.tensor([-1.0, 0.0]).log().numpy(),
                                      np.log(np.array([-1.0, 0.0], np.float32)))


# --- shape ops --------------------------------------------------------------------------------

SHAPE_CASES = {
    "reshape": lambda M, x: x.reshape(4, 15),
    "reshape_neg": lambda M, x: x.reshape(-1, 5) * 2,
    "reshape_tuple": lambda M, x: M.reshape(x, (12, 5)),
    "view": lambda M, x: x.view(3, 20),
    "flatten": lambda M, x: x.flatten(),
    "flatten_1": lambda M, x: x.flatten(1),
    "flatten_mid": lambda M, x: M.flatten(x, 0, 1),
    "squeeze": lambda M, x: x[:, :1].squeeze(),
    "squeeze_dim": lambda M, x: x[:, :1].squeeze(1),
    "squeeze_noop": lambda M, x: x.squeeze(0),
    "unsqueeze": lambda M, x: x.unsqueeze(-1),
    "unsqueeze0": lambda M, x: M.unsqueeze(x, 0),
    "t": lambda M, x: x[0].t(),
    "T": lambda M, x: x[0].T,
    "transpose": lambda M, x: x.transpose(0, 2),
    "transpose_neg": lambda M, x: M.transpose(x, -1, -2),
    "permute": lambda M, x: x.permute(2, 0, 1),
    "permute_neg": lambda M, x: x.permute(-1, 0, -2),
    "expand": lambda M, x: x[:, :1].expand(3, 4, 5),
    "expand_lead": lambda M, x: x[0, 0].expand(2, 3, 5),
    "expand_neg": lambda M, x: x[:1].expand(2, -1, -1, -1),
    "contiguous": lambda M, x: x.transpose(0, 1).contiguous().view(-1),
    "cat0": lambda M, x: M.cat([x, x[:1] * 2], dim=0),
    "cat_neg": lambda M, x: M.cat([x[..., :2], x, x[..., 3:]], dim=-1),
    "stack": lambda M, x: M.stack([x[0], x[1] * 3]),
    "stack_neg": lambda M, x: M.stack([x[0], x[1], x[2]], dim=-1),
    "split": lambda M, x: x.split(2, dim=1),
    "split_list": lambda M, x: M.split(x, [1, 3, 1], dim=-1),
    "chunk": lambda M, x: x.chunk(2, dim=2),
    "chunk3": lambda M, x: M.chunk(x, 3),
}


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_shape_ops_vs_torch(name):
    check(SHAPE_CASES[name], rn(3, 4, 5))


@pytest.mark.parametrize("sa, sb", [((2, 1, 4), (3, 1)), ((), (2, 3))])
def test_broadcasting_binary_grads(sa, sb):
    check(lambda M, a, b: (a + b, a * b, a / (b * b + 1.0), M.where(a > b, a, b * 2)),
          rn(*sa), rn(*sb))


def test_view_shares_storage():
    x = jitgrad.zeros(2, 3)
    v = x.view(6)
    v[4] = 3.0
    assert x[1, 1].item() == 3.0
    x.t()[2, 0] = 1.0
    assert x[0, 2].item() == 1.0
    assert x.transpose(0, 1).is_contiguous() is False
    assert x.transpose(0, 1).contiguous().is_contiguous()


# --- elementwise ------------------------------------------------------------------------------

def test_elementwise_vs_torch():
    # (sin, cos, tanh, sigmoid, abs, neg, relu, reciprocal, scalar ops, maximum/minimum, where
    # and pow are also exercised by the random programs of test_torch_diff.py)
    a = RNG.uniform(0.2, 2.0, (3, 4))
    check(lambda M, x: (x.exp(), x.log(), x.sqrt(), x.rsqrt(), x.log1p(), x.expm1(),
                        x.tan() * 0.1, x ** 1.5, 2.0 ** x, x.pow(x), x.square(),
                        M.clamp(x, 0.5, 1.5), M.clamp(x, min=1.0), M.minimum(x, x * 0.9)), a)
    b = rn(3, 4)
    check(lambda M, x: (x.sign() * x, M.erf(x), x.clamp(max=0.3), x.sin(), x.sigmoid(),
                        x.relu(), x.abs()), b)


# --- matmul -----------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((1, 3, 4), (2, 1, 4, 2)),
]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES)
def test_matmul_vs_torch(sa, sb):
    check(lambda M, a, b: (a @ b, M.matmul(a, b)), rn(*sa), rn(*sb))


def test_mm_bmm_outer_vs_torch():
    check(lambda M, a, b: M.mm(a, b.t()), rn(3, 4), rn(5, 4))
    check(lambda M, a, b: M.bmm(a, b), rn(2, 3, 4), rn(2, 4, 2))
    check(lambda M, a, b: (M.outer(a, b), a.outer(b)), rn(3), rn(4))
    check(lambda M, a, b: a.mm(b), rn(2, 3), rn(3, 2))


def test_dot_vs_torch():
    check(lambda M, a, b: (M.dot(a, b), a.dot(b)), rn(4), rn(4))


GRAD_FN_CASES = {
    "add": lambda M, x, y: x + y, "add_s": lambda M, x, y: x + 1, "sub": lambda M, x, y: x - y,
    "rsub": lambda M, x, y: 1 - x, "mul": lambda M, x, y: x * y, "div": lambda M, x, y: x / y,
    "neg": lambda M, x, y: -x, "pow_s": lambda M, x, y: x ** 3, "pow_t": lambda M, x, y: x ** y,
    "rpow": lambda M, x, y: 2 ** x, "exp": lambda M, x, y: x.exp(),
    "log": lambda M, x, y: x.log(), "sigmoid": lambda M, x, y: x.sigmoid(),
    "tanh": lambda M, x, y: x.tanh(), "relu": lambda M, x, y: x.relu(),
    "abs": lambda M, x, y: x.abs(), "clamp": lambda M, x, y: x.clamp(0, 1),
    "maximum": lambda M, x, y: M.maximum(x, y), "where": lambda M, x, y: M.where(x > 0, x, y),
    "sum": lambda M, x, y: x.sum(), "sum_dim": lambda M, x, y: x.sum(0),
    "mean": lambda M, x, y: x.mean(), "mean_dim": lambda M, x, y: x.mean(1),
    "prod": lambda M, x, y: x.prod(), "max": lambda M, x, y: x.max(),
    "max_dim": lambda M, x, y: x.max(0).values, "logsumexp": lambda M, x, y: x.logsumexp(0),
    "var": lambda M, x, y: x.var(), "std": lambda M, x, y: x.std(),
    "reshape": lambda M, x, y: x.reshape(4), "view": lambda M, x, y: x.view(4),
    "squeeze": lambda M, x, y: x[:1].squeeze(), "unsqueeze": lambda M, x, y: x.unsqueeze(0),
    "t": lambda M, x, y: x.t(), "transpose": lambda M, x, y: x.transpose(0, 1),
    "permute": lambda M, x, y: x.permute(1, 0), "expand": lambda M, x, y: x[:1].expand(3, 2),
    "cat": lambda M, x, y: M.cat([x, y]), "stack": lambda M, x, y: M.stack([x, y]),
    "split": lambda M, x, y: x.split(1)[0], "clone": lambda M, x, y: x.clone(),
    "mm": lambda M, x, y: x @ y, "mv": lambda M, x, y: x @ y[0],
    "dot": lambda M, x, y: x[0] @ y[0], "idx_int": lambda M, x, y: x[0],
    "idx_slice": lambda M, x, y: x[1:], "idx_tensor": lambda M, x, y: x[M.tensor([0, 0])],
    "idx_mask": lambda M, x, y: x[x > 0], "softmax": lambda M, x, y: x.softmax(0),
    "log_softmax": lambda M, x, y: x.log_softmax(0), "to32": lambda M, x, y: x.float(),
    "bce_logits": lambda M, x, y: M.nn.functional.binary_cross_entropy_with_logits(
        x, y.detach()),
    "mse": lambda M, x, y: M.nn.functional.mse_loss(x, y),
    "nll": lambda M, x, y: M.nn.functional.nll_loss(x, M.tensor([0, 1])),
    "gelu": lambda M, x, y: M.nn.functional.gelu(x),
    "setitem": lambda M, x, y: (lambda z: (z.__setitem__(0, y[0]), z)[1])(x * 1),
    "add_": lambda M, x, y: (x * 1).add_(y),
}


@pytest.mark.parametrize("name", list(GRAD_FN_CASES))
def test_grad_fn_names_match_torch(name):
    names = []
    for M in (jitgrad, torch):
        # float64 like the other comparisons: the kernels compiled for them are reused
        x = M.tensor([[0.5, -1.0], [2.0, 0.3]], dtype=M.float64, requires_grad=True)
        y = M.tensor([[1.5, 0.2], [0.1, -0.7]], dtype=M.float64, requires_grad=True)
        out = GRAD_FN_CASES[name](M, x, y)
        names.append(type(out.grad_fn).__name__)
        assert repr(out).endswith(f"grad_fn=<{names[-1]}>)")
    assert names[0] == names[1]


# --- nn.functional ----------------------------------------------------------------------------

_Z = rn(4, 3)
_Y01 = (RNG.random((4, 3)) > 0.5).astype(np.float64)
LOSSES = {
    "bce_logits": (lambda M, z, y, r: M.nn.functional.binary_cross_entropy_with_logits(
        z, y, reduction=r), (_Z, _Y01)),
    "bce": (lambda M, p, y, r: M.nn.functional.binary_cross_entropy(p, y, reduction=r),
            (RNG.uniform(0.05, 0.95, (4, 3)), RNG.random((4, 3)))),
    "mse": (lambda M, a, b, r: M.nn.functional.mse_loss(a, b, reduction=r), (_Z, rn(4, 3))),
    "l1": (lambda M, a, b, r: M.nn.functional.l1_loss(a, b, reduction=r), (_Z, rn(4, 3))),
    "cross_entropy": (lambda M, x, t, r: M.nn.functional.cross_entropy(x, t, reduction=r),
                      (_Z, np.array([0, 2, 1, 2]))),
    "cross_entropy_nd": (lambda M, x, t, r: M.nn.functional.cross_entropy(x, t, reduction=r),
                         (rn(2, 3, 4), np.array([[0, 1, 2, 1], [2, 2, 0, 0]]))),
    "nll": (lambda M, x, t, r: M.nn.functional.nll_loss(M.nn.functional.log_softmax(x, dim=1),
                                                        t, reduction=r),
            (_Z, np.array([1, 1, 0, 2]))),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_losses_vs_torch(loss, reduction):
    f, arrays = LOSSES[loss]
    check(lambda M, a, b: f(M, a, b, reduction), *arrays)


def test_mean_loss_values_and_grad():
    for name in ("bce_logits", "bce", "mse", "l1"):
        f, (a, b) = LOSSES[name]
        j = f(jitgrad, jitgrad.tensor(a), jitgrad.tensor(b), "mean")
        t = f(torch, torch.tensor(a), torch.tensor(b), "mean")
        np.testing.assert_allclose(j.item(), t.item(), rtol=1e-12)
    z = jitgrad.tensor(_Z, requires_grad=True)
    JF.mse_loss(z, jitgrad.tensor(_Y01)).backward()
    np.testing.assert_allclose(z.grad.numpy(), 2 * (_Z - _Y01) / _Z.size, rtol=1e-12)


def test_loss_grad_fn_names():
    z = jitgrad.randn(3, requires_grad=True)
    y = jitgrad.zeros(3)
    assert type(JF.binary_cross_entropy_with_logits(z, y).grad_fn).__name__ == \
        "BinaryCrossEntropyWithLogitsBackward0"
    assert type(JF.mse_loss(z, y).grad_fn).__name__ == "MseLossBackward0"


def test_bce_with_logits_large_logits_stable():
    z = np.array([100.0, -100.0, 100.0, -100.0, 50.0, -800.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 1.0])
    for dt in ("float32", "float64"):
        for reduction in ("mean", "sum", "none"):
            jz = jitgrad.tensor(z, dtype=getattr(jitgrad, dt), requires_grad=True)
            tz = torch.tensor(z, dtype=getattr(torch, dt), requires_grad=True)
            jl = JF.binary_cross_entropy_with_logits(jz, jitgrad.tensor(y, dtype=jz.dtype),
                                                     reduction=reduction)
            tl = TF.binary_cross_entropy_with_logits(tz, torch.tensor(y, dtype=tz.dtype),
                                                     reduction=reduction)
            assert np.all(np.isfinite(jl.detach().numpy()))
            np.testing.assert_allclose(jl.detach().numpy(), tl.detach().numpy(), rtol=1e-6,
                                       atol=1e-40 if dt == "float64" else 1e-43)
            jl.sum().backward()
            tl.sum().backward()
            assert np.all(np.isfinite(jz.grad.numpy()))
            np.testing.assert_allclose(jz.grad.numpy(), tz.grad.numpy(), rtol=1e-6, atol=1e-40)
    # exact values: loss(100, 1) = log1p(exp(-100)) ~ 3.7e-44, loss(100, 0) = 100
    out = JF.binary_cross_entropy_with_logits(jitgrad.tensor([100.0, 100.0, -100.0]),
                                              jitgrad.tensor([1.0, 0.0, 0.0]), reduction="none")
    np.testing.assert_allclose(out.numpy(), [0.0, 100.0, 0.0], atol=1e-30)


def test_activations_vs_torch():
    a = rn(3, 5) * 3
    check(lambda M, x: (M.nn.functional.relu(x), M.nn.functional.gelu(x),
                        M.nn.functional.gelu(x, approximate="tanh"), M.nn.functional.silu(x),
                        M.nn.functional.tanh(x), M.nn.functional.sigmoid(x),
                        M.nn.functional.softmax(x, dim=1), M.nn.functional.softmax(x, dim=0),
                        M.nn.functional.log_softmax(x, dim=-1), M.softmax(x * 100, dim=-1),
                        M.log_softmax(x * 100, 1), x.softmax(0)), a, rtol=1e-9)


def test_linear_vs_torch():
    check(lambda M, x, w, b: M.nn.functional.linear(x, w, b), rn(4, 3), rn(2, 3), rn(2))
    check(lambda M, x, w: M.nn.functional.linear(x, w), rn(5, 4, 3), rn(2, 3))


def test_small_mlp_training_step_vs_torch():
    def f(M, x, w1, b1, w2, t):
        h = M.nn.functional.gelu(M.nn.functional.linear(x, w1, b1))
        logits = h @ w2
        return M.nn.functional.cross_entropy(logits, t) + 1e-3 * (w1 * w1).sum()
    check(f, rn(8, 4), rn(6, 4), rn(6), rn(6, 3), RNG.integers(0, 3, 8))


def test_clone_keeps_a_dense_layout_like_torch(torch):
    """torch's clone (preserve_format) keeps a transposed tensor transposed, so a later
    .t().contiguous() is the clone itself and sees its in-place writes (fuzz seed 3083)."""
    for M in (jitgrad, torch):
        x = M.tensor(np.arange(6.0).reshape(2, 3))
        y = x.t().clone()
        z = y.t().contiguous()
        y.add_(10.0)
        assert not y.is_contiguous()
        np.testing.assert_array_equal(np.asarray(z.numpy()), np.arange(6.0).reshape(2, 3) + 10)
        assert x.t().contiguous().is_contiguous()


def test_torch_keyword_names_on_functions():
    """torch's keyword names reach the functions whose own parameters are x/y or a/b
    (issue 16: jitgrad.matmul(input=..., other=...)); values vs the positional call."""
    import numpy as np
    a = jitgrad.tensor(np.arange(6.0).reshape(2, 3))
    b = jitgrad.tensor(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(jitgrad.matmul(input=a, other=b).numpy(),
                                  jitgrad.matmul(a, b).numpy())
    np.testing.assert_array_equal(jitgrad.mm(a, mat2=b).numpy(), (a @ b).numpy())
    np.testing.assert_array_equal(jitgrad.add(a, other=a, alpha=2).numpy(), (a * 3).numpy())
    np.testing.assert_array_equal(jitgrad.sum(input=a, dim=1).numpy(), [3.0, 12.0])
    np.testing.assert_array_equal(jitgrad.pow(a, exponent=2).numpy(), (a * a).numpy())
    import pytest
    with pytest.raises(TypeError, match="unexpected keyword"):
        jitgrad.matmul(a, bogus=b)
