"""ops_api.reductions against torch: sort/argsort/msort/topk/kthvalue, any/all/count_nonzero,
cumprod/cummax/cummin/logcumsumexp, median/nanmedian/mode, nansum/nanmean, aminmax,
var_mean/std_mean, quantile/nanquantile, unique/unique_consecutive: values, dtypes, return
types, gradients (float64, a fixed random cotangent), out= and in-place forms, errors."""
import numpy as np
import pytest

import jitgrad

torch = pytest.importorskip("torch")

NAN = float("nan")


def _np(t):
    return t.detach().numpy()


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def check(fn, arr, grad=True, rtol=1e-10, atol=1e-12):
    """fn(M, x) for M = jitgrad and torch on the same float64 (or int/bool) array: outputs
    equal (values, dtypes, shapes; NaN == NaN) and the gradient of sum(out_i * u_i)."""
    arr = np.asarray(arr)
    floating = arr.dtype.kind == "f"
    res = {}
    for M in (jitgrad, torch):
        x = M.tensor(arr, requires_grad=grad and floating) if floating else M.tensor(arr)
        res[M] = (x, fn(M, x))
    (jx, jo), (tx, to) = res[jitgrad], res[torch]
    jf, tf = _flat(jo), _flat(to)
    assert len(jf) == len(tf)
    for a, b in zip(jf, tf):
        assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1], (a.dtype, b.dtype)
        np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, equal_nan=True)
    if not (grad and floating):
        return jo
    pairs = [(a, b) for a, b in zip(jf, tf) if b.requires_grad]
    if not pairs:
        return jo
    assert all(a.requires_grad for a, _ in pairs)
    rng = np.random.default_rng(0)
    us = [rng.standard_normal(tuple(b.shape)) for _, b in pairs]
    jl = sum((a * jitgrad.tensor(u)).sum() for (a, _), u in zip(pairs, us))
    tl = sum((b * torch.tensor(u)).sum() for (_, b), u in zip(pairs, us))
    jl.backward()
    tl.backward()
    np.testing.assert_allclose(_np(jx.grad), _np(tx.grad), rtol=1e-9, atol=1e-12)
    return jo


RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 5))
TIES = np.array([[1., 3., 1., 2., 3.], [2., 2., 2., 0., 1.], [5., -1., 5., -1., 0.]])
WITH_NAN = np.array([[3., NAN, 1., NAN, 2.], [NAN, NAN, NAN, NAN, NAN], [5., 4., 3., 2., 1.]])
INTS = RNG.integers(-3, 4, (4, 6))


# --- sort family ------------------------------------------------------------------------------

@pytest.mark.parametrize("arr", [X, TIES, WITH_NAN, INTS, INTS > 0, np.float64(1.5)],
                         ids=["float", "ties", "nan", "int", "bool", "0d"])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort_like_torch(arr, descending):
    """Stable: ties keep their order both ways; NaN is the largest value."""
    for dim in ((0, -1) if np.ndim(arr) else (0,)):
        r = check(lambda M, x: M.sort(x, dim=dim, descending=descending, stable=True), arr)
        assert type(r).__name__ == "sort" and r.indices.dtype == jitgrad.int64
        check(lambda M, x: M.argsort(x, dim=dim, descending=descending, stable=True), arr)
        check(lambda M, x: x.sort(dim, descending), arr)
    check(lambda M, x: M.msort(x), arr if np.ndim(arr) else X)


@pytest.mark.parametrize("largest", [True, False])
def test_topk_like_torch(largest):
    for k, dim in ((2, 1), (3, 0), (0, 1), (X.shape[1], -1)):
        r = check(lambda M, x: M.topk(x, k, dim, largest=largest), X)
        assert type(r).__name__ == "topk"
    check(lambda M, x: x.topk(1, largest=largest, sorted=True), np.float64(2.0))


@pytest.mark.parametrize("arr", [TIES, INTS], ids=["ties", "int"])
def test_topk_and_kthvalue_with_ties(arr):
    """torch's CPU topk/kthvalue (partial sort, quickselect) may order tied elements either
    way; jitgrad's stable choice: the same values, and indices that point at them."""
    x = jitgrad.tensor(arr)
    for largest in (True, False):
        r = jitgrad.topk(x, 3, 1, largest=largest)
        t = torch.topk(torch.tensor(arr), 3, 1, largest=largest)
        np.testing.assert_array_equal(_np(r.values), t.values.numpy())
        np.testing.assert_array_equal(np.take_along_axis(arr, _np(r.indices), 1), t.values)
    r, t = jitgrad.kthvalue(x, 2, 1), torch.kthvalue(torch.tensor(arr), 2, 1)
    np.testing.assert_array_equal(_np(r.values), t.values.numpy())
    np.testing.assert_array_equal(arr[np.arange(len(arr)), _np(r.indices)], t.values)


def test_kthvalue_like_torch():
    for k, dim, keep in ((1, 1, False), (3, 0, True), (5, -1, False)):
        r = check(lambda M, x: M.kthvalue(x, k, dim, keep), X)
        assert type(r).__name__ == "kthvalue"
    check(lambda M, x: x.kthvalue(1, 0), np.float64(3.0))


# --- median, nanmedian, mode ------------------------------------------------------------------

@pytest.mark.parametrize("arr", [X, TIES, WITH_NAN, INTS, X[:, :4]],
                         ids=["float", "ties", "nan", "int", "even"])
def test_median_nanmedian_like_torch(arr):
    """Lower middle value; a NaN row gives NaN at its first NaN (median) or is skipped
    (nanmedian); the all-elements form shares the gradient among tied elements."""
    for name in ("median", "nanmedian"):
        check(lambda M, x: getattr(M, name)(x), arr)
        for dim, keep in ((1, False), (0, True)):
            r = check(lambda M, x: getattr(x, name)(dim, keepdim=keep), arr)
            assert type(r).__name__ == name
    check(lambda M, x: M.median(x, 0), np.float64(2.0))


@pytest.mark.parametrize("arr", [TIES, INTS, X], ids=["ties", "int", "float"])
def test_mode_like_torch(arr):
    """Most frequent value (smallest of equals), index of its last occurrence (torch's CPU
    for short rows; with NaNs torch's sort order is unspecified, so none here)."""
    for dim, keep in ((1, False), (0, True)):
        r = check(lambda M, x: M.mode(x, dim, keep), arr)
        assert type(r).__name__ == "mode"


# --- scans ------------------------------------------------------------------------------------

@pytest.mark.parametrize("arr", [X, TIES, WITH_NAN, INTS, INTS > 0],
                         ids=["float", "ties", "nan", "int", "bool"])
def test_cummax_cummin_like_torch(arr):
    """The latest of tied extremes; after a NaN the value is NaN at the latest NaN; the
    gradient adds into each source element (repeats accumulate)."""
    for name in ("cummax", "cummin"):
        for dim in (0, 1):
            r = check(lambda M, x: getattr(M, name)(x, dim), arr)
            assert type(r).__name__ == name and r.indices.dtype == jitgrad.int64


ZEROS = np.array([[1.5, 0., 2., 0., 3.], [1.5, 0., 2., -1., 3.], [0., 0., 0.5, 2., 0.],
                  [0.5, -2., 1.5, 3., 0.25]])


@pytest.mark.parametrize("arr", [X, ZEROS, INTS, INTS > 0], ids=["float", "zeros", "int", "bool"])
def test_cumprod_like_torch(arr):
    """ints and bool accumulate in int64; the gradient is exact with zeros."""
    for dim in (0, 1):
        check(lambda M, x: M.cumprod(x, dim), arr)
    check(lambda M, x: x.cumprod(1, dtype=M.float64), arr)


def test_cumprod_double_backward_exact_at_zeros():
    """Rows with one and with several zeros: second derivatives match torch's."""
    for arr in (ZEROS, X):
        grads = []
        for M in (jitgrad, torch):
            x = M.tensor(arr, requires_grad=True)
            u = M.tensor(np.linspace(-1, 1, arr.size).reshape(arr.shape))
            g, = M.autograd.grad((M.cumprod(x, 1) * u).sum(), x, create_graph=True)
            gg, = M.autograd.grad((g * g).sum(), x)
            grads.append((_np(g), _np(gg)))
        np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-12)


def test_cumprod_inplace_and_out():
    for M in (jitgrad, torch):
        a = M.tensor([[1, 2, 3], [0, 4, 5]])
        assert a.cumprod_(1) is a
        assert a.tolist() == [[1, 2, 6], [0, 0, 0]]
        out = M.empty(2, 3, dtype=M.int64)
        r = M.cumprod(M.tensor([[1, 2, 3], [2, 2, 2]]), 1, out=out)
        assert r is out and out.tolist() == [[1, 2, 6], [2, 4, 8]]
    x = jitgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    y.cumprod_(0)
    y.sum().backward()
    np.testing.assert_allclose(_np(x.grad), [1 + 2 + 2 * 3, 1 + 3, 1 * 2])


def test_logcumsumexp_like_torch_and_stable():
    check(lambda M, x: M.logcumsumexp(x, 1), X)
    check(lambda M, x: x.logcumsumexp(0), X)
    big = np.array([[-1000.0, 1000.0, 0.0, 1000.0], [1e4, -1e4, 3.0, -2.0]])
    check(lambda M, x: M.logcumsumexp(x, 1), big)
    check(lambda M, x: M.logcumsumexp(x, 0), np.float64(0.5))
    with pytest.raises(RuntimeError, match="floating point"):
        jitgrad.logcumsumexp(jitgrad.tensor([1, 2]), 0)


# --- any, all, count_nonzero, nansum, nanmean ------------------------------------------------

@pytest.mark.parametrize("arr", [X, INTS, INTS > 0, np.zeros((0, 3)), np.array([NAN, 0.0])],
                         ids=["float", "int", "bool", "empty", "nan"])
def test_any_all_count_nonzero_like_torch(arr):
    for dim in (None, 0, -1, (0, -1)):
        if dim is not None and isinstance(dim, tuple) and np.ndim(arr) < 2:
            continue
        kw = {} if dim is None else {"dim": dim}
        for keep in (False, True):
            r = check(lambda M, x: M.any(x, keepdim=keep, **kw), arr)
            assert r.dtype == jitgrad.bool
            check(lambda M, x: x.all(keepdim=keep, **kw), arr)
        r = check(lambda M, x: M.count_nonzero(x, **kw), arr)
        assert r.dtype == jitgrad.int64


def test_nansum_nanmean_like_torch():
    """An all-NaN row: nanmean is NaN; its gradient is 0 here where torch's is NaN (g / 0
    times a 0 mask), so that row is checked forward only."""
    arr = np.array([[1.0, NAN, 2.0], [NAN, 3.0, NAN], [0.5, -1.0, 4.0]])
    all_nan = np.array([[1.0, NAN, 2.0], [NAN, NAN, NAN]])
    for dim in (None, 0, 1, (0, 1)):
        check(lambda M, x: M.nansum(x, dim), arr)
        check(lambda M, x: M.nansum(x, dim), all_nan)
        check(lambda M, x: x.nanmean(dim, keepdim=True), arr)
        check(lambda M, x: x.nanmean(dim), all_nan, grad=False)
    check(lambda M, x: M.nansum(x, 1), INTS)
    check(lambda M, x: M.nansum(x), INTS > 0)
    with pytest.raises(RuntimeError, match="floating point"):
        jitgrad.nanmean(jitgrad.tensor([1, 2]))


# --- aminmax, var_mean, std_mean -------------------------------------------------------------

def test_aminmax_var_mean_std_mean_like_torch():
    for kw in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"keepdim": True}):
        r = check(lambda M, x: M.aminmax(x, **kw), TIES)
        assert type(r).__name__ == "aminmax" and r.min is r[0]
        check(lambda M, x: x.aminmax(**kw), INTS)
    for args, kw in (((), {}), ((1,), {}), ((True,), {}), ((0, False, True), {}),
                     ((), {"dim": 1, "correction": 2})):
        check(lambda M, x: M.var_mean(x, *args, **kw), X)
        check(lambda M, x: M.std_mean(x, *args, **kw), X)
    with pytest.raises(IndexError, match="empty dimension"):
        jitgrad.aminmax(jitgrad.zeros(2, 0), dim=1)


# --- quantile ---------------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile_like_torch(interpolation):
    q = np.array([0.0, 0.3, 0.5, 0.75, 1.0])
    for name, arr in (("quantile", X), ("nanquantile", WITH_NAN), ("quantile", WITH_NAN)):
        for dim, keep in ((None, False), (1, False), (0, True), (None, True)):
            check(lambda M, x: getattr(M, name)(x, 0.4, dim, keep,
                                                interpolation=interpolation), arr)
            check(lambda M, x: getattr(x, name)(M.tensor(q), dim=dim, keepdim=keep,
                                                interpolation=interpolation), arr)


def test_quantile_gradient_in_q_and_errors():
    """torch's weight q * (n - 1) - below is differentiable in q."""
    qa = np.array([0.1, 0.6])
    res = []
    for M in (jitgrad, torch):
        x = M.tensor(X, requires_grad=True)
        q = M.tensor(qa, requires_grad=True)
        M.quantile(x, q, dim=1).sum().backward()
        res.append((_np(x.grad), _np(q.grad)))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-10)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-10)
    x = jitgrad.tensor(X)
    with pytest.raises(RuntimeError, match=r"range \[0, 1\]"):
        jitgrad.quantile(x, 1.5)
    with pytest.raises(RuntimeError, match="interpolation"):
        jitgrad.quantile(x, 0.5, interpolation="cubic")
    with pytest.raises(RuntimeError, match="float or double"):
        jitgrad.quantile(jitgrad.tensor([1, 2]), 0.5)
    with pytest.raises(RuntimeError, match="same dtype"):
        jitgrad.quantile(x, jitgrad.tensor([0.5], dtype=jitgrad.float32))


# --- unique -----------------------------------------------------------------------------------

@pytest.mark.parametrize("arr", [np.array([[3, 1, 2], [1, 3, 3]]), np.array([2.0, NAN, 1.0, NAN]),
                                 np.array([True, False, True]), np.array([[1, 2], [1, 2], [0, 5]])],
                         ids=["int", "nan", "bool", "rows"])
def test_unique_like_torch(arr):
    for inv in (False, True):
        for cnt in (False, True):
            for dim in (None, 0):
                check(lambda M, x: M.unique(x, sorted=True, return_inverse=inv,
                                            return_counts=cnt, dim=dim), arr, grad=False)
                check(lambda M, x: x.unique_consecutive(return_inverse=inv, return_counts=cnt,
                                                        dim=dim), arr, grad=False)


# --- out=, errors -----------------------------------------------------------------------------

def test_out_forms_and_errors():
    x = jitgrad.tensor(X)
    v, i = jitgrad.empty(3, 2, dtype=jitgrad.float64), jitgrad.empty(3, 2, dtype=jitgrad.int64)
    r = jitgrad.topk(x, 2, out=(v, i))
    assert r.values is v and r.indices is i
    np.testing.assert_array_equal(_np(v), np.sort(X, 1)[:, ::-1][:, :2])
    b = jitgrad.empty(3, dtype=jitgrad.bool)
    assert jitgrad.any(x > 1, 1, out=b) is b
    with pytest.raises(RuntimeError, match="dtype"):
        jitgrad.any(x, out=jitgrad.empty((), dtype=jitgrad.float32))
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        jitgrad.cumprod(jitgrad.tensor(X, requires_grad=True), 1, out=jitgrad.empty(3, 5))
    with pytest.raises(RuntimeError, match="out of range"):
        jitgrad.topk(x, 6)
    with pytest.raises(RuntimeError, match="out of range"):
        jitgrad.kthvalue(x, 0)
    with pytest.raises(IndexError, match="Dimension out of range"):
        jitgrad.sort(x, 2)
    with pytest.raises(IndexError, match="non-zero size"):
        jitgrad.median(jitgrad.zeros(2, 0), 1)


def test_partition_selections_equal_the_stable_sort():
    """topk/kthvalue/median rows of 64+ elements use a partition (O(n)), not a sort: the
    positions must be exactly the stable sort's (ties in index order), for ints, bool and
    floats, on any axis."""
    from jitgrad.ops_api.reductions import _argsort_np, _kth_position, _topk_positions
    rng = np.random.default_rng(1)
    for trial in range(60):
        shape = [int(s) for s in rng.integers(1, 4, size=rng.integers(1, 4))]
        ax = int(rng.integers(0, len(shape)))
        shape[ax] = int(rng.integers(64, 150))
        a = (rng.integers(-3, 4, shape), rng.random(shape) < 0.5,
             rng.standard_normal(shape).astype(np.float32))[trial % 3]
        n = shape[ax]
        k = int(rng.integers(1, n // 4 + 1))
        for largest in (True, False):
            ref = np.take(_argsort_np(a, ax, largest), np.arange(k), axis=ax)
            np.testing.assert_array_equal(_topk_positions(a, ax, k, largest), ref)
        for kk in (0, (n - 1) // 2, n - 1):
            ref = np.take(_argsort_np(a, ax, False), [kk], axis=ax)
            np.testing.assert_array_equal(_kth_position(a, ax, kk), ref)
    x = RNG.integers(-3, 4, (3, 100))           # and through the public ops, vs torch
    check(lambda M, t: M.median(t, 1), x)
    r = jitgrad.topk(jitgrad.tensor(x), 5, 1)
    np.testing.assert_array_equal(_np(r.values), torch.topk(torch.tensor(x), 5, 1).values)


@pytest.mark.skipif(not jitgrad.cuda.is_available(), reason="no GPU and no CUDA simulator")
def test_cuda_tensors_match_cpu():
    """On CUDA tensors (the simulator without a GPU): the selections gather on the device and
    return CUDA values, indices and gradients equal to the CPU's; the scans say they are not
    on the GPU yet."""
    fns = [lambda M, x: M.sort(x, 1, descending=True), lambda M, x: M.topk(x, 2, 0),
           lambda M, x: M.median(x), lambda M, x: M.nanmedian(x, 1),
           lambda M, x: M.cummax(x, 1), lambda M, x: M.quantile(x, 0.3, dim=1),
           lambda M, x: M.nansum(x, 0), lambda M, x: M.aminmax(x, dim=1)]
    for fn in fns:
        outs = []
        for dev in ("cpu", "cuda"):
            x = jitgrad.tensor(TIES, device=dev, requires_grad=True)
            out = _flat(fn(jitgrad, x))
            assert all(o.device.type == dev for o in out)
            g, = jitgrad.autograd.grad(out[0].sum(), x)
            assert g.device.type == dev
            outs.append([_np(o.cpu()) for o in out] + [_np(g.cpu())])
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(NotImplementedError, match="cuda"):
        jitgrad.cumprod(jitgrad.tensor(X, device="cuda"), 1)
