"""Issue 16's elementwise division family, bitwise ops and special functions vs torch: integer
semantics of the rounding divisions and remainders (signs, exactness past 2**53, division by
zero), the operators (% // & | ^ ~ << >> and their reflected/in-place forms), the compositions
without a registry row of their own (addcmul, addcdiv, nan_to_num, fmax/fmin, heaviside,
signbit, isinf, clamp_min, ...), int ** negative int, and the special functions against SciPy
at float64 precision."""
import numpy as np
import pytest

import jitgrad

torch = pytest.importorskip("torch")
sp = pytest.importorskip("scipy.special")


def _same(got, want):
    assert str(got.dtype).replace("jitgrad.", "") == str(want.dtype).replace("torch.", ""), \
        (got.dtype, want.dtype)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=0, equal_nan=True)


A = [7, -7, 9, -9, 0, 5, -1, 2 ** 62 + 1, -(2 ** 62) - 3]
B = [2, 2, -4, -4, 3, -5, 7, 3, 7]


@pytest.mark.parametrize("name", ["fmod", "remainder", "floor_divide", "trunc"])
@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_integer_division_family_is_exact(name, dtype):
    a = np.array(A, np.int64)
    if dtype == "int32":
        a = (a % 1000).astype(np.int32) - 500
    b = np.array(B, a.dtype)
    j, t = jitgrad.from_numpy(a), torch.from_numpy(a)
    jb, tb = jitgrad.from_numpy(b), torch.from_numpy(b)
    if name == "trunc":
        got, want = jitgrad.div(j, jb, rounding_mode="trunc"), torch.div(t, tb,
                                                                           rounding_mode="trunc")
    else:
        got, want = getattr(jitgrad, name)(j, jb), getattr(torch, name)(t, tb)
    assert got.dtype == getattr(jitgrad, dtype)
    assert got.tolist() == want.tolist()  # exact, also past 2**53


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_integer_min_over_minus_one_wraps_like_numpy(dtype):
    """The one overflowing integer quotient, min // -1: NumPy wraps to min (torch's CPU kernel
    dies of SIGFPE, so it is not asked); floor, trunc, the operator and its in-place form agree,
    the remainders are 0. (Numba's // had given 0: silently wrong.)"""
    mn = np.iinfo(dtype).min
    a = np.array([mn, mn, mn + 1, 7, -7, 0, mn], dtype)
    b = np.array([-1, 1, -1, -1, 2, -1, 3], dtype)
    j, jb = jitgrad.from_numpy(a.copy()), jitgrad.from_numpy(b)
    with np.errstate(over="ignore"):
        floor = np.floor_divide(a, b)
    bits = 8 * np.dtype(dtype).itemsize
    trunc = [(((-1 if (x < 0) != (y < 0) else 1) * (abs(x) // abs(y)) - mn) % 2 ** bits) + mn
             for x, y in zip(a.tolist(), b.tolist())]  # (exact, then wrapped to the dtype)
    assert jitgrad.floor_divide(j, jb).tolist() == floor.tolist()
    assert (j // jb).tolist() == floor.tolist()
    assert jitgrad.div(j, jb, rounding_mode="trunc").tolist() == trunc
    assert jitgrad.remainder(j, jb).tolist() == np.remainder(a, b).tolist()
    assert jitgrad.fmod(j, jb).tolist() == np.fmod(a, b).tolist()
    j //= jb
    assert j.tolist() == floor.tolist()


def test_integer_division_by_zero_raises_and_bool_is_refused():
    x = jitgrad.tensor([4, 5])
    for f in (lambda: x % 0, lambda: x // jitgrad.tensor([1, 0]), lambda: jitgrad.fmod(x, 0),
              lambda: jitgrad.div(x, 0, rounding_mode="trunc"), lambda: x.remainder_(0)):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            f()
    b = jitgrad.tensor([True, False])
    with pytest.raises(NotImplementedError, match="Bool"):
        jitgrad.remainder(b, b)
    assert (b % 2).tolist() == [1, 0]                 # bool with an int scalar: int64
    with pytest.raises(ValueError, match="rounding_mode"):
        jitgrad.div(x, 2, rounding_mode="round")


def test_float_division_family_edges_like_torch():
    # (no pair whose quotient overflows: torch's fmod is NaN there in its vectorised loop and
    # exact in its scalar tail, so its answer depends on the element's position; jitgrad: NaN)
    v = [5.0, -5.0, 0.0, -0.0, 7.5, -7.5, np.inf, -np.inf, np.nan, 1e200]
    w = [0.0, -0.0, 2.0, -2.0, np.inf, -np.inf, 3.0, -0.5, 1.0, 1e-10]
    x, y = np.array(v)[:, None], np.array(w)[None, :]
    for f in ("fmod", "remainder", "floor_divide"):
        _same(getattr(jitgrad, f)(jitgrad.from_numpy(x), jitgrad.from_numpy(y)),
              getattr(torch, f)(torch.from_numpy(x), torch.from_numpy(y)))
    _same(jitgrad.div(jitgrad.from_numpy(x), jitgrad.from_numpy(y), rounding_mode="trunc"),
          torch.div(torch.from_numpy(x), torch.from_numpy(y), rounding_mode="trunc"))


def test_operators_reflected_and_inplace():
    a = np.array([5, -7, 12, -3])
    j, t = jitgrad.from_numpy(a.copy()), torch.from_numpy(a.copy())
    cases = [lambda m: m % 3, lambda m: 17 % m, lambda m: m // -2, lambda m: 9 // m,
             lambda m: m & 6, lambda m: 6 & m, lambda m: m | 1, lambda m: m ^ m, lambda m: ~m,
             lambda m: m << 2, lambda m: 1 << m.abs(), lambda m: m >> 1, lambda m: m % 2.5]
    for f in cases:
        _same(f(j), f(t))
    for op in ("__imod__", "__ifloordiv__", "__iand__", "__ior__", "__ixor__", "__ilshift__",
               "__irshift__"):
        jj, tt = jitgrad.from_numpy(a.copy()), torch.from_numpy(a.copy())
        assert getattr(jj, op)(3) is jj
        getattr(tt, op)(3)
        assert jj.tolist() == tt.tolist(), op
    big = np.array([1, 3, -5, 7])
    cnt = np.array([63, 63, 62, 64])
    for f in (lambda p, q: p << q, lambda p, q: p >> q):  # int64 wrap-around, counts >= 64
        _same(f(jitgrad.from_numpy(big), jitgrad.from_numpy(cnt)),
              f(torch.from_numpy(big), torch.from_numpy(cnt)))
    m = jitgrad.tensor([True, False, True])
    assert (~m).tolist() == [False, True, False] and (m ^ True).tolist() == [False, True, False]
    with pytest.raises(TypeError, match="invert"):
        ~jitgrad.tensor([1.0])
    with pytest.raises(RuntimeError, match="not implemented for 'Float'"):
        jitgrad.tensor([1.0]) & jitgrad.tensor([1.0])


def test_int_pow_with_negative_tensor_exponent_like_torch():
    b = np.array([2, -1, 1, 0, 3, -1])
    e = np.array([-1, -3, -2, -1, 2, -2])
    _same(jitgrad.from_numpy(b) ** jitgrad.from_numpy(e), torch.from_numpy(b) ** torch.from_numpy(e))
    _same(6 ** jitgrad.from_numpy(e), 6 ** torch.from_numpy(e))
    _same((-1) ** jitgrad.from_numpy(e), (-1) ** torch.from_numpy(e))
    with pytest.raises(RuntimeError, match="negative integer powers"):
        jitgrad.tensor([2]) ** -1


def _pair(*arrays):
    js = [jitgrad.from_numpy(a.copy()).requires_grad_(a.dtype.kind == "f") for a in arrays]
    ts = [torch.from_numpy(a.copy()).requires_grad_(a.dtype.kind == "f") for a in arrays]
    return js, ts


COMPOSITES = {
    "addcmul": lambda L, x, y, z: L.addcmul(x, y, z, value=0.5),
    "addcdiv": lambda L, x, y, z: L.addcdiv(x, y, z, value=-2.0),
    "fmax": lambda L, x, y, z: L.fmax(x, y),
    "fmin": lambda L, x, y, z: L.fmin(x, y),
    "clamp_min": lambda L, x, y, z: L.clamp_min(x, y),
    "clamp_max": lambda L, x, y, z: x.clamp_max(0.25),
    "lerp_tensor": lambda L, x, y, z: L.lerp(x, y, z),
    "float_power": lambda L, x, y, z: L.float_power(x * x + 0.5, y),
    "nan_to_num": lambda L, x, y, z: L.nan_to_num(x / y, nan=1.5, posinf=7.0),
    "logit_eps": lambda L, x, y, z: L.logit(z, eps=0.3),
    "xlogy_scalar": lambda L, x, y, z: L.xlogy(2.0, z),
    "copysign": lambda L, x, y, z: L.copysign(x, y),
    "true_divide": lambda L, x, y, z: L.true_divide(x, y),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_compositions_values_and_gradients_like_torch(name):
    rng = np.random.default_rng(16)
    x = rng.uniform(-2, 2, (3, 4))
    y = rng.uniform(-2, 2, (1, 4))
    z = rng.uniform(0.05, 0.95, (3, 1))
    x[0, 0], y[0, 1] = np.nan, np.nan                      # NaN paths (fmax/fmin, nan_to_num)
    y[0, 2] = 0.0
    (jx, jy, jz), (tx, ty, tz) = _pair(x, y, z)
    got, want = COMPOSITES[name](jitgrad, jx, jy, jz), COMPOSITES[name](torch, tx, ty, tz)
    _same(got.detach(), want.detach())
    g = rng.standard_normal(tuple(want.shape))
    got_g = jitgrad.autograd.grad(got, [jx, jy, jz], jitgrad.from_numpy(g), allow_unused=True)
    want_g = torch.autograd.grad(want, [tx, ty, tz], torch.from_numpy(g), allow_unused=True)
    for a, b, t in zip(got_g, want_g, (tx, ty, tz)):
        b = torch.zeros_like(t) if b is None else b
        a = np.zeros(tuple(t.shape)) if a is None else a.numpy()
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-12, atol=1e-14, equal_nan=True)


def test_predicates_and_heaviside_like_torch():
    v = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, -2.0, 3.0, -np.nan])
    j, t = jitgrad.from_numpy(v), torch.from_numpy(v)
    for f in ("isinf", "isposinf", "isneginf", "isreal", "signbit", "sgn", "isnan"):
        assert getattr(jitgrad, f)(j).tolist() == getattr(torch, f)(t).tolist(), f
    i = jitgrad.tensor([-3, 0, 4])
    ti = torch.tensor([-3, 0, 4])
    for f in ("isinf", "isposinf", "isneginf", "signbit"):
        assert getattr(jitgrad, f)(i).tolist() == getattr(torch, f)(ti).tolist(), f
    vals = np.array([0.5])
    _same(jitgrad.heaviside(j, jitgrad.from_numpy(vals)), torch.heaviside(t, torch.from_numpy(vals)))
    assert jitgrad.nan_to_num(i).tolist() == [-3, 0, 4]


def test_special_functions_match_scipy_in_float64():
    x = np.array([-8.32, -4.83, -2.5, -1.7, -0.3, 1e-3, 0.5, 1.4616321449683622, 2.0, 7.38,
                  15.0, 1e5])
    j = jitgrad.from_numpy(x)
    np.testing.assert_allclose(jitgrad.digamma(j).numpy(), sp.digamma(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(jitgrad.lgamma(j).numpy(), sp.gammaln(x), rtol=1e-13)
    for n in (1, 2, 3, 5):
        np.testing.assert_allclose(jitgrad.polygamma(n, j).numpy(), sp.polygamma(n, x),
                                   rtol=1e-13)
    far = np.array([-70.3, -100.7])  # the reflection branch of the CPU polygamma
    np.testing.assert_allclose(jitgrad.polygamma(2, jitgrad.from_numpy(far)).numpy(),
                               sp.polygamma(2, far), rtol=1e-12)
    y = np.array([-0.999999, -0.966, -0.5, -1e-10, 0.0, 0.3, 0.5, 0.51, 0.9, 0.996, 1 - 1e-15])
    np.testing.assert_allclose(jitgrad.erfinv(jitgrad.from_numpy(y)).numpy(), sp.erfinv(y),
                               rtol=1e-14, atol=0)
    edges = jitgrad.erfinv(jitgrad.tensor([1.0, -1.0, 1.5, -0.0])).tolist()
    assert edges[:2] == [np.inf, -np.inf] and np.isnan(edges[2])
    assert np.signbit(edges[3])
    assert jitgrad.digamma(jitgrad.tensor([0.0, -0.0, -2.0])).tolist()[:2] == [-np.inf, np.inf]


def test_inplace_special_and_logical_forms():
    x = jitgrad.tensor([0.2, 0.7])
    tx = torch.tensor([0.2, 0.7])
    for f in ("erfinv_", "lgamma_", "digamma_", "sinc_", "logit_"):
        assert getattr(x.clone(), f)().tolist() == pytest.approx(getattr(tx.clone(), f)().tolist())
    assert x.clone().polygamma_(2).tolist() == pytest.approx(tx.clone().polygamma_(2).tolist())
    a, b = jitgrad.tensor([True, False, True]), jitgrad.tensor([False, False, True])
    assert jitgrad.logical_or(a, b).tolist() == [True, False, True]
    assert jitgrad.logical_xor(a, b).tolist() == [True, False, False]
    assert a.clone().logical_xor_(b).tolist() == [True, False, False]
    with pytest.raises(RuntimeError, match="leaf Variable"):
        jitgrad.tensor([0.5], requires_grad=True).erfinv_()
