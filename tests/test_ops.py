"""Per-op tests generated from jitgrad.testing.opinfo: forward vs NumPy (float32/float64),
gradients vs central differences, second order, registry coverage, torch parity, non-contiguous
layouts and dtype promotion."""
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import autograd, lazy
from jitgrad.testing import GradcheckError, gradcheck, gradgradcheck
from jitgrad.testing.opinfo import ALL_INFOS, OPINFOS, VARIANTS, registry_names

# (test, row name or param id) -> "BUG: ...": jitgrad bugs this table finds that are not fixed
# yet; their tests stay in the suite as strict xfails (none open right now).
KNOWN_BUGS: dict = {}


@pytest.fixture(autouse=True, params=["default", "fuse_all"])
def fusion_mode(request):
    """Every test of the table runs twice: with the shipped settings (these small shapes are
    below FUSE_MIN, so ops run one kernel each) and with fusion on every op (FUSE_MIN = 0:
    the ops are recorded and realised as generated fused kernels, forward and backward)."""
    if request.param == "default":
        yield request.param
        return
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    lazy.set_fusion(True, 0)
    try:
        assert (jitgrad.ones(2) * 2)._arr is None, "fuse_all mode must record ops lazily"
        yield request.param
    finally:
        lazy.set_fusion(prev, prev_min)


def _params(test, cases):
    """cases: [(info, *args)] -> pytest params with readable ids and KNOWN_BUGS marks."""
    out = []
    for info, *args in cases:
        ident = "-".join([info.name] + [_fmt(a) for a in args])
        reason = KNOWN_BUGS.get((test, info.name)) or KNOWN_BUGS.get((test, ident))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(info, *args, id=ident, marks=marks))
    return out


def _fmt(a):
    if isinstance(a, tuple):
        return "_".join("x".join(map(str, s)) or "0d" for s in a)
    return str(a)


def _np_dtype(name):
    return {"float32": np.float32, "float64": np.float64}[name]


def _inputs(info, arrays, dtype, requires_grad=False):
    """jitgrad tensors (zero-copy) for one sample; float inputs cast to ``dtype``."""
    ts = []
    for a, kind, d in zip(arrays, info.kinds, info.diff):
        if kind == "bool":
            ts.append(jitgrad.from_numpy(a))
        else:
            t = jitgrad.from_numpy(np.array(a, dtype=dtype, order="C"))
            ts.append(t.requires_grad_(True) if requires_grad and d else t)
    return ts


def _ref_inputs(info, arrays, dtype):
    """What the reference sees: the same values (rounded to ``dtype``), in float64."""
    return [a if k == "bool" else a.astype(dtype).astype(np.float64)
            for a, k in zip(arrays, info.kinds)]


def _ref(info, *arrays):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "mean of empty slice"
        return info.ref(*arrays)


def _expected_dtype(info, dtype):
    return {"same": dtype, "bool": "bool", "int64": "int64"}[info.out_dtype]


def _check_values(got, want, rtol, atol):
    got = got.detach().numpy() if isinstance(got, jitgrad.Tensor) else np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}"
    if got.dtype.kind in "bi":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol,
                                   equal_nan=True)


# --- (a) forward vs the NumPy reference ---------------------------------------------------------
FORWARD = [(info, shapes, "float64") for info in ALL_INFOS for shapes in info.shapes] + \
          [(info, shapes, "float32") for info in ALL_INFOS
           for shapes in info.shapes[:info.f32_samples]]


@pytest.mark.parametrize("info,shapes,dtype", _params("forward", FORWARD))
def test_forward(info, shapes, dtype, rng):
    arrays = info.arrays(shapes, rng)
    out = info.op(*_inputs(info, arrays, _np_dtype(dtype)))
    assert out.dtype.name == _expected_dtype(info, dtype)
    want = _ref(info, *_ref_inputs(info, arrays, _np_dtype(dtype)))
    if dtype == "float32":
        _check_values(out, want, info.rtol32, info.atol32)
    else:
        _check_values(out, want, info.rtol, info.atol)


# --- (b) gradients vs float64 central differences ------------------------------------------------
GRAD = [(info, shapes) for info in ALL_INFOS if info.grad_order >= 1 and info.numeric_grad
        for shapes in info.shapes]


@pytest.mark.parametrize("info,shapes", _params("grad", GRAD))
def test_grad(info, shapes, rng):
    xs = _inputs(info, info.arrays(shapes, rng), np.float64, requires_grad=True)
    assert gradcheck(info.op, xs, atol=info.grad_atol, rtol=info.grad_rtol)
    # also for empty outputs (no Jacobian entries): gradients exist, shaped like their inputs
    out = info.op(*xs)
    diff = [x for x in xs if x.requires_grad]
    g = jitgrad.from_numpy(rng.standard_normal(tuple(out.shape)))
    grads = autograd.grad(out, diff, grad_outputs=g, allow_unused=True)
    for x, gx in zip(diff, grads):
        assert gx is not None and tuple(gx.shape) == tuple(x.shape)
        assert gx.dtype == x.dtype


# --- (c) second order -------------------------------------------------------------------------
# the first two samples (the main shape and 0-d or broadcasting): each further shape compiles
# more kernels for the Tensor-level backward
GRADGRAD = [(info, shapes) for info in ALL_INFOS if info.grad_order >= 2 and info.numeric_grad
            for shapes in info.shapes[:2]]


@pytest.mark.parametrize("info,shapes", _params("gradgrad", GRADGRAD))
def test_gradgrad(info, shapes, rng):
    xs = _inputs(info, info.arrays(shapes, rng), np.float64, requires_grad=True)
    assert gradgradcheck(info.op, xs, atol=info.grad_atol, rtol=info.grad_rtol)


FIRST_ORDER_ONLY = [(info,) for info in ALL_INFOS if info.grad_order == 1]


@pytest.mark.parametrize("info", _params("first_order_only", FIRST_ORDER_ONLY))
def test_first_order_only_rows_refuse_double_backward(info, rng):
    """grad_order == 1 must stay true: when double backward starts working, bump the row."""
    xs = _inputs(info, info.arrays(info.shapes[0], rng), np.float64, requires_grad=True)
    with pytest.raises(NotImplementedError):
        gradgradcheck(info.op, xs)


EMPTY_MEAN_LOSSES = [(OPINFOS[n],) for n in ("mse", "bce", "bce_with_logits")]


@pytest.mark.parametrize("info", _params("empty_mean_loss", EMPTY_MEAN_LOSSES))
def test_empty_mean_loss_is_nan_and_silent(info):
    """Like torch (and jitgrad.mean): the mean over no elements is NaN, without NumPy warnings."""
    xs = [jitgrad.from_numpy(np.zeros((0, 3))).requires_grad_(True) for _ in info.kinds]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = info.op(*xs)
        grads = autograd.grad(out, xs)
    assert out.shape == () and np.isnan(out.item())
    assert [tuple(g.shape) for g in grads] == [(0, 3)] * len(xs)


# --- the checkers themselves ----------------------------------------------------------------------
def _square_first_order_only(x):
    """x**2 whose gradient 2*x is right but is a constant to autograd (second derivative 0)."""
    return x * x.detach() * 2 - (x * x).detach()


def test_gradcheck_catches_a_wrong_gradient(rng):
    x = jitgrad.from_numpy(rng.uniform(0.5, 2.0, (3,))).requires_grad_(True)
    y = jitgrad.from_numpy(rng.uniform(0.5, 2.0, (3,))).requires_grad_(True)
    assert gradcheck(lambda a, b: a * b.detach(), (x, y.detach())) is True
    with pytest.raises(GradcheckError, match=r"input 1,\s+max abs difference"):
        gradcheck(lambda a, b: a * b * b.detach(), (x, y))
    assert gradcheck(lambda a, b: a * b * b.detach(), (x, y), raise_exception=False) is False


def test_gradgradcheck_catches_a_wrong_second_derivative(rng):
    x = jitgrad.from_numpy(rng.uniform(0.5, 2.0, (3,))).requires_grad_(True)
    assert gradcheck(_square_first_order_only, (x,))
    assert gradgradcheck(lambda a: a * a, (x,))
    with pytest.raises(GradcheckError, match="input 0"):
        gradgradcheck(_square_first_order_only, (x,))


# --- (d) the table covers the registry -----------------------------------------------------------
def test_registry_complete():
    names = registry_names()
    assert set(OPINFOS) == names, (f"registry rows without an OpInfo: {names - set(OPINFOS)}; "
                                   f"OpInfos without a registry row: {set(OPINFOS) - names}")
    assert len({v.name for v in ALL_INFOS}) == len(ALL_INFOS), "duplicate OpInfo names"
    for v in VARIANTS:
        assert v.variant_of in names, f"variant {v.name} exercises unknown row {v.variant_of}"
        assert v.name not in names


# --- (e) parity with torch ------------------------------------------------------------------------
TORCH = [(info, shapes, "float64") for info in ALL_INFOS if info.torch is not None
         for shapes in info.shapes] + \
        [(info, info.shapes[0], "float32") for info in ALL_INFOS if info.torch is not None]


def _to_torch(torch, xs):
    return [torch.from_numpy(np.array(x.detach().numpy())).requires_grad_(x.requires_grad)
            for x in xs]


def _torch_dtype_name(t):
    return str(t.dtype).replace("torch.", "")


@pytest.mark.parametrize("info,shapes,dtype", _params("torch", TORCH))
def test_vs_torch(info, shapes, dtype, rng, torch):
    grads_wanted = info.grad_order >= 1
    xs = _inputs(info, info.arrays(shapes, rng), _np_dtype(dtype), requires_grad=grads_wanted)
    txs = _to_torch(torch, xs)
    out = info.op(*xs)
    with warnings.catch_warnings():  # torch's var warns "degrees of freedom <= 0" on empty input
        warnings.simplefilter("ignore", UserWarning)
        tout = info.torch_op(torch)(*txs)
    rtol, atol = (info.rtol, info.atol) if dtype == "float64" else (info.rtol32, info.atol32)
    assert out.dtype.name == _torch_dtype_name(tout)
    _check_values(out, tout.detach().numpy(), rtol, atol)
    if not grads_wanted:
        return
    diff = [k for k, x in enumerate(xs) if x.requires_grad]
    g = rng.standard_normal(tuple(out.shape)).astype(_np_dtype(dtype))
    grads = autograd.grad(out, [xs[k] for k in diff], grad_outputs=jitgrad.from_numpy(g),
                          allow_unused=True)
    tgrads = torch.autograd.grad(tout, [txs[k] for k in diff], grad_outputs=torch.from_numpy(g),
                                 allow_unused=True)
    for k, gx, tg in zip(diff, grads, tgrads):
        if tg is None:
            tg = torch.zeros_like(txs[k])
        assert gx is not None, f"no gradient for input {k}"
        assert gx.dtype.name == _torch_dtype_name(tg)
        _check_values(gx, tg.numpy(), rtol, max(atol, 1e-12 if dtype == "float64" else 1e-5))


# --- non-contiguous inputs (elementwise rows) ----------------------------------------------------
def _layout(a, k):
    """The same (3, 4) values as a non-contiguous view: input 0 a transposed strided view, input 1
    a transposed (Fortran-order) view, input 2 a strided view."""
    if k == 1:
        v = np.empty(a.shape[::-1], a.dtype).T
    elif k == 0:
        v = np.zeros((a.shape[1], 2 * a.shape[0]), a.dtype)[:, ::2].T
    else:
        v = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)[..., ::2]
    v[...] = a
    assert not v.flags.c_contiguous and v.shape == a.shape
    return v


LAYOUT = [(info,) for info in OPINFOS.values() if info.elementwise]


@pytest.mark.parametrize("info", _params("layout", LAYOUT))
def test_noncontiguous(info, rng):
    shapes = info.shapes[0]
    assert all(s == (3, 4) for s in shapes)
    arrays = info.arrays(shapes, rng)
    xs = [jitgrad.from_numpy(_layout(a, k)) for k, a in enumerate(arrays)]
    for x, d in zip(xs, info.diff):
        if d:
            x.requires_grad_(True)
    out = info.op(*xs)
    _check_values(out, _ref(info, *arrays), info.rtol, info.atol)
    if any(info.diff):
        assert gradcheck(info.op, xs, atol=info.grad_atol, rtol=info.grad_rtol)


# --- mixed dtypes: torch's promotion ------------------------------------------------------------
def _promotion_operands(case, rng):
    a = rng.uniform(0.5, 2.0, (3, 4))
    if case == "f32+f64":
        return jitgrad.from_numpy(a.astype(np.float32)), jitgrad.from_numpy(rng.uniform(0.5, 2.0,
                                                                                        (3, 4)))
    if case == "f32+0d_f64":
        return jitgrad.from_numpy(a.astype(np.float32)), jitgrad.tensor(np.float64(1.25))
    if case == "i64+pyfloat":
        return jitgrad.from_numpy(rng.integers(1, 4, (3, 4))), 1.5
    if case == "bool+pyint":
        return jitgrad.from_numpy(rng.random((3, 4)) < 0.5), 2
    if case == "i64+i64":
        return jitgrad.from_numpy(rng.integers(1, 4, (3, 4))), jitgrad.from_numpy(
            rng.integers(1, 4, (3, 4)))
    raise AssertionError(case)


_CASE_DTYPE = {"f32+f64": "float64", "f32+0d_f64": "float32", "i64+pyfloat": "float32"}
# comparisons share one promotion path: "lt" stands for them; int64 (+) int64 only where the
# result kind differs (div -> float) or stays integer (add, lt)
PROMOTION = [(info, case) for info in OPINFOS.values()
             if info.binary and (info.out_dtype != "bool" or info.name == "lt")
             for case in ("f32+f64", "f32+0d_f64", "i64+pyfloat", "i64+i64", "bool+pyint")
             if (info.scalar_operand or case not in ("i64+pyfloat", "bool+pyint"))
             and (case != "i64+i64" or info.name in ("add", "div", "lt"))]


@pytest.mark.parametrize("info,case", _params("promotion", PROMOTION))
def test_dtype_promotion(info, case, rng, torch):
    x, y = _promotion_operands(case, rng)
    for t in (x, y):
        if isinstance(t, jitgrad.Tensor) and t.is_floating_point() and info.grad_order:
            t.requires_grad_(True)
    tx, ty = [torch.from_numpy(np.array(t.detach().numpy())).requires_grad_(t.requires_grad)
              if isinstance(t, jitgrad.Tensor) else t for t in (x, y)]
    try:
        tout = info.torch_op(torch)(tx, ty)
    except RuntimeError:  # e.g. torch refuses bool - int: so must jitgrad
        with pytest.raises((RuntimeError, TypeError)):
            info.op(x, y)
        return
    out = info.op(x, y)
    assert out.dtype.name == _torch_dtype_name(tout)
    if info.out_dtype == "same" and case in _CASE_DTYPE:
        assert out.dtype.name == _CASE_DTYPE[case]
    fp32 = out.dtype.name == "float32"
    _check_values(out, tout.detach().numpy(), 1e-5 if fp32 else 1e-10, 1e-6 if fp32 else 1e-12)
    diff = [(t, tt) for t, tt in ((x, tx), (y, ty)) if isinstance(t, jitgrad.Tensor)
            and t.requires_grad]
    if diff:
        g = np.ones(tuple(out.shape), out.detach().numpy().dtype)
        grads = autograd.grad(out, [t for t, _ in diff], grad_outputs=jitgrad.from_numpy(g))
        tgrads = torch.autograd.grad(tout, [tt for _, tt in diff],
                                     grad_outputs=torch.from_numpy(g))
        for (t, _), gx, tg in zip(diff, grads, tgrads):
            assert gx.dtype == t.dtype and gx.dtype.name == _torch_dtype_name(tg)
            _check_values(gx, tg.numpy(), 1e-5, 1e-6)


# --- special values (NaN, +-inf, +-0, tiny/huge, overflow) vs torch -------------------------------
_SPECIAL = [np.inf, -np.inf, 0.0, -0.0, 1e-170, 1e-30, 0.5, -0.5, 3.0, -3.0, 100.0, -100.0,
            800.0, -800.0, 1e30, 1e170, -1e170]
SPECIAL = [(info, values, dtype) for info in OPINFOS.values()
           if info.elementwise and len(info.kinds) <= 2 and "bool" not in info.kinds
           and info.out_dtype in ("same", "bool") and not info.op.__module__.endswith("functional")
           for values in ("special", "nan") for dtype in ("float64", "float32")]


def _special_inputs(info, values, dtype):
    v = _SPECIAL
    if len(info.kinds) == 1:
        cols = [[np.nan, -np.nan]] if values == "nan" else [v]
    else:
        pairs = [(a, b) for a in v + [np.nan] for b in v + [np.nan]
                 if (np.isnan(a) or np.isnan(b)) == (values == "nan")]
        cols = list(zip(*pairs))
    # 2-d like the main (3, 4) sample: the same compiled kernels serve (one per ndim)
    with np.errstate(over="ignore"):  # 1e170 is inf in float32, on purpose
        return [np.array(c, _np_dtype(dtype)).reshape(-1, 1) for c in cols]


@pytest.mark.parametrize("info,values,dtype", _params("special", SPECIAL))
def test_special_values_vs_torch(info, values, dtype, torch):
    """All (pairs of) special values through the row's op: values and gradients as torch."""
    arrays = _special_inputs(info, values, dtype)
    xs = [jitgrad.from_numpy(a).requires_grad_(info.grad_order >= 1) for a in arrays]
    txs = _to_torch(torch, xs)
    with np.errstate(all="ignore"):
        out, tout = info.op(*xs), info.torch_op(torch)(*txs)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    tiny = float(np.finfo(_np_dtype(dtype)).tiny)  # torch flushes some denormal results to 0
    _check_values(out, tout.detach().numpy(), rtol, tiny)
    if info.grad_order >= 1:
        g = np.ones(arrays[0].shape, _np_dtype(dtype))
        grads = autograd.grad(out, xs, grad_outputs=jitgrad.from_numpy(g))
        tgrads = torch.autograd.grad(tout, txs, grad_outputs=torch.from_numpy(g))
        for gx, tg in zip(grads, tgrads):
            _check_values(gx, tg.numpy(), rtol, tiny)
