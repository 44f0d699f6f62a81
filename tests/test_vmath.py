"""Accuracy, special values and code-generation checks for jitgrad.vmath.

Float32 is checked against NumPy float64 (error << 1 float32 ulp); float64
against x87 long double (64-bit mantissa, ~2**-11 float64 ulp), itself
spot-checked against mpmath.  Sweeps: every 2039th float32 bit pattern
(~2.1e6 values: denormals, NaN payloads, +-inf, overflow and underflow edges)
plus dense uniform sweeps of each function's interesting range and, for
sin/cos/tan, the float32 values nearest to k*pi/2 and the values around the
switch to the large-argument path; for float64 ~4e5 values log-spaced over
the whole exponent range plus uniform sweeps (~1e6 in all).  The module
docstring's figures come from denser runs of the same sweeps.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

import jitgrad.vmath as vm

NAMES = ["exp", "expm1", "log", "log1p", "tanh", "sigmoid", "sin", "cos", "tan"]
TRIG = ("sin", "cos", "tan")
# sin/cos/tan: for |x| > TRIG_BIG the vectorised reduction is inexact and the
# lane is recomputed by the large-argument path (jitgrad.vmath._mk_slow)
TRIG_BIG = {np.float32: float(vm._TRIG_BIG[np.float32]),
            np.float64: float(vm._TRIG_BIG[np.float64])}
# float32 sin/cos/tan reduce in float32 up to TRIG_F32, in float64 beyond (_mk_slow)
TRIG_F32 = float(vm._TRIG_F32)

# Asserted max error in ulp (the module docstring lists the measured values).
BOUND = {
    np.float32: dict(exp=1.0, expm1=1.5, log=1.0, log1p=1.0, tanh=1.75,
                     sigmoid=1.75, sin=1.0, cos=1.0, tan=1.5),
    np.float64: dict(exp=1.0, expm1=1.75, log=1.0, log1p=1.0, tanh=2.0,
                     sigmoid=1.75, sin=1.0, cos=1.0, tan=2.5),
}

LD = np.longdouble
HAVE_LD = np.finfo(LD).nmant >= 63


def _sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


REF = dict(exp=np.exp, expm1=np.expm1, log=np.log, log1p=np.log1p,
           tanh=np.tanh, sigmoid=_sigmoid_ref, sin=np.sin, cos=np.cos,
           tan=np.tan)


def _mk_loop(f):
    @njit(error_model="numpy")
    def loop(a, out):
        for i in range(a.size):
            out[i] = f(a[i])
    return loop


_LOOPS = {}


def apply(name, x):
    if name not in _LOOPS:
        _LOOPS[name] = _mk_loop(vm.VMATH_FUNCS[name])
    out = np.empty_like(x)
    _LOOPS[name](x, out)
    return out


def reference(name, x):
    wide = np.float64 if x.dtype == np.float32 else LD
    with np.errstate(all="ignore"):
        return REF[name](x.astype(wide))


def ulp_error(y, ref):
    """|y - ref| in units of the last place of y's dtype at ref.

    0 where y equals ref rounded to y's dtype (incl. inf and NaN); inf where
    one is NaN/inf and the other is not."""
    p, emin = (24, -125) if y.dtype == np.float32 else (53, -1021)
    with np.errstate(all="ignore"):
        rr = ref.astype(y.dtype)
        _, e = np.frexp(ref)
        ulp = np.ldexp(np.ones_like(ref), np.maximum(e, emin) - p)
        err = np.abs(y.astype(ref.dtype) - ref) / ulp
    same = (y == rr) | (np.isnan(y) & np.isnan(rr))
    err = np.where(same, 0.0, err)
    bad = ~same & ~(np.isfinite(y) & np.isfinite(rr))
    return np.where(bad, np.inf, err)


def _steps(v, dtype, lo, hi):
    """The floats of dtype lo..hi-1 steps (in ulps) from the float v."""
    a = np.asarray(v, dtype).view(np.uint32 if dtype == np.float32 else np.uint64)
    return (a.astype(np.int64) + np.arange(lo, hi)).astype(a.dtype).view(dtype)


def _around(v, dtype, n=64):
    """The n floats of dtype either side of +-v (both sides of a switch)."""
    x = _steps(v, dtype, -n, n)
    return np.concatenate([x, -x])


def f32_bit_sweep(stride=2039):
    bits = np.arange(0, 2 ** 32, stride, dtype=np.uint64).astype(np.uint32)
    return bits.view(np.float32)


def f32_inputs(name, rng):
    x = [f32_bit_sweep()]
    dense = {
        "exp": [(-104.5, 89.0)], "expm1": [(-20, 89.0), (-1, 1)],
        "sigmoid": [(-104.5, 104.5), (-10, 10)], "log": [(0, 4)],
        "log1p": [(-1, 1), (-1e-3, 1e-3), (1, 100)], "tanh": [(-10, 10)],
        "sin": [(-10, 10)], "cos": [(-10, 10)], "tan": [(-10, 10)],
    }[name]
    for lo, hi in dense:
        x.append(rng.uniform(lo, hi, 250_000).astype(np.float32))
    if name in TRIG:
        # nearest float32 to k*pi/2: the cancellation-prone arguments
        k = np.concatenate([np.arange(1, 50_000),
                            rng.integers(1, 2 ** 24 - 1, 100_000)]).astype(LD)
        near = (k * LD("1.57079632679489661923132169163975144")).astype(np.float32)
        # up to the float32-width reduction's limit: x*2/pi near a half-integer (k
        # rounded to the wrong quadrant, |r| > pi/4), near k*pi/2, both sides of it
        kk = np.arange(0, int(TRIG_F32 / 1.5707963267948966) + 1, 3).astype(LD) + LD(0.5)
        half = (kk * LD("1.57079632679489661923132169163975144")).astype(np.float32)
        x += [near, -near, half, -half, _around(TRIG_BIG[np.float32], np.float32),
              _around(TRIG_F32, np.float32), rng.uniform(-TRIG_F32, TRIG_F32, 250_000)
              .astype(np.float32), rng.uniform(TRIG_F32, 3e7, 100_000).astype(np.float32)]
    return np.concatenate(x)


def f64_inputs(name, rng):
    n = 400_000
    with np.errstate(over="ignore"):
        logspaced = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-323.5, 308.2, n)
    x = [logspaced,
         np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324,
                   2.2250738585072014e-308, 1.7976931348623157e308,
                   -1.7976931348623157e308])]
    dense = {
        "exp": [(-746, 710), (-1, 1)], "expm1": [(-40, 710), (-1, 1)],
        "sigmoid": [(-746, 746), (-20, 20)], "log": [(0, 4)],
        "log1p": [(-1, 1), (-1e-6, 1e-6)], "tanh": [(-20, 20), (-1, 1)],
        "sin": [(-10, 10), (-1e8, 1e8)], "cos": [(-10, 10), (-1e8, 1e8)],
        "tan": [(-10, 10), (-1e8, 1e8)],
    }[name]
    for lo, hi in dense:
        x.append(rng.uniform(lo, hi, 150_000))
    if name in TRIG:
        k = np.concatenate([np.arange(1, 20_000),
                            rng.integers(1, 2 ** 26 // 1.0001, 40_000)]).astype(LD)
        near = (k * LD("1.57079632679489661923132169163975144")).astype(np.float64)
        x += [near, -near, _around(TRIG_BIG[np.float64], np.float64)]
    return np.concatenate(x)


def _check_sweep(name, x):
    y = apply(name, x)
    assert y.dtype == x.dtype
    err = ulp_error(y, reference(name, x))
    i = int(np.argmax(err))
    bound = BOUND[x.dtype.type][name]
    assert err[i] <= bound, (
        f"{name}[{x.dtype}]: {err[i]:.3f} ulp > {bound} at x={x[i]!r}: "
        f"got {y[i]!r}, want {reference(name, x[i:i + 1])[0]!r}")


@pytest.mark.parametrize("name", NAMES)
def test_float32_sweep(name):
    _check_sweep(name, f32_inputs(name, np.random.default_rng(1)))


@pytest.mark.skipif(not HAVE_LD, reason="needs x87 80-bit long double for the "
                    "float64 reference (np.longdouble is only float64 here)")
@pytest.mark.parametrize("name", NAMES)
def test_float64_sweep(name):
    _check_sweep(name, f64_inputs(name, np.random.default_rng(2)))


@pytest.mark.parametrize("name", NAMES)
def test_float64_vs_mpmath(name):
    """A few hundred points against mpmath (50 digits): validates the long
    double reference and the float64 bound independently of it."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    rng = np.random.default_rng(3)
    lo, hi = {"log": (1e-300, 1e300), "log1p": (-0.999, 1e6)}.get(name, (-30, 30))
    x = np.concatenate([rng.uniform(max(lo, -30), min(hi, 30), 250),
                        rng.uniform(-1e-3, 1e-3, 50) if lo < 0 else
                        rng.uniform(1e-3, 2, 50)])
    if name == "log":
        x = np.abs(x) + 1e-300
    fn = {"exp": mp.exp, "expm1": mp.expm1, "log": mp.log, "log1p": mp.log1p,
          "tanh": mp.tanh, "sin": mp.sin, "cos": mp.cos, "tan": mp.tan,
          "sigmoid": lambda v: 1 / (1 + mp.exp(-v))}[name]
    y = apply(name, x)
    exact = np.array([fn(mp.mpf(float(v))) for v in x], dtype=object)
    # error in ulp, computed exactly in mpmath
    errs = []
    for yi, ei in zip(y, exact):
        e = int(mp.floor(mp.log(abs(ei), 2))) if ei != 0 else -1074
        ulp = mp.mpf(2) ** max(e - 52, -1074)
        errs.append(float(abs(mp.mpf(float(yi)) - ei) / ulp))
    assert max(errs) <= BOUND[np.float64][name]
    if HAVE_LD:  # the long double reference agrees with mpmath to << 1 ulp
        ref = reference(name, x)
        d = [float(abs(mp.mpf(str(r)) - ei) / abs(ei)) for r, ei in zip(ref, exact)
             if ei != 0]
        assert max(d) < 2.0 ** -60


# ----------------------------------------------------------------------------
# special values
# ----------------------------------------------------------------------------

INF, NAN = np.inf, np.nan
SPECIAL = {
    # name: [(x, expected)], expected NaN means NaN
    "exp": [(NAN, NAN), (INF, INF), (-INF, 0.0), (0.0, 1.0), (-0.0, 1.0),
            (1000.0, INF), (-1000.0, 0.0)],
    "expm1": [(NAN, NAN), (INF, INF), (-INF, -1.0), (0.0, 0.0), (-0.0, -0.0),
              (1000.0, INF), (-1000.0, -1.0)],
    "log": [(NAN, NAN), (INF, INF), (-INF, NAN), (0.0, -INF), (-0.0, -INF),
            (-1.0, NAN), (1.0, 0.0)],
    "log1p": [(NAN, NAN), (INF, INF), (-INF, NAN), (0.0, 0.0), (-0.0, -0.0),
              (-1.0, -INF), (-2.0, NAN)],
    "tanh": [(NAN, NAN), (INF, 1.0), (-INF, -1.0), (0.0, 0.0), (-0.0, -0.0),
             (30.0, 1.0), (-30.0, -1.0), (1e30, 1.0), (-1e30, -1.0)],
    "sigmoid": [(NAN, NAN), (INF, 1.0), (-INF, 0.0), (0.0, 0.5), (-0.0, 0.5),
                (1e4, 1.0), (-1e4, 0.0), (1e30, 1.0), (-1e30, 0.0)],
    "sin": [(NAN, NAN), (INF, NAN), (-INF, NAN), (0.0, 0.0), (-0.0, -0.0)],
    "cos": [(NAN, NAN), (INF, NAN), (-INF, NAN), (0.0, 1.0), (-0.0, 1.0)],
    "tan": [(NAN, NAN), (INF, NAN), (-INF, NAN), (0.0, 0.0), (-0.0, -0.0)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_special_values(name, dtype):
    xs, want = (np.array(v, dtype=dtype) for v in zip(*SPECIAL[name]))
    got = apply(name, xs)
    assert got.dtype == dtype
    for x, g, w in zip(xs, got, want):
        if np.isnan(w):
            assert np.isnan(g), (name, x, g)
        else:
            assert g == w and np.signbit(g) == np.signbit(w), (name, x, g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_denormal_edges(dtype):
    fi = np.finfo(dtype)
    tiny = np.array([fi.smallest_subnormal, 3 * fi.smallest_subnormal,
                     fi.tiny / 3, fi.tiny], dtype=dtype)
    # exp/sigmoid of the most negative arguments give denormals, not 0
    x = np.log(tiny.astype(np.float64)).astype(dtype)
    for name in ("exp", "sigmoid"):
        y = apply(name, x)
        assert np.all(y > 0) and np.all(ulp_error(y, reference(name, x)) <= 1)
    # log of denormals; odd functions are the identity there
    assert np.all(ulp_error(apply("log", tiny), reference("log", tiny)) <= 1)
    for name in ("expm1", "log1p", "tanh", "sin", "tan"):
        for t in (tiny, -tiny):
            assert np.array_equal(apply(name, t), t), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_overflow_edges(dtype):
    big = np.log(np.finfo(dtype).max.astype(np.float64))     # 88.72 / 709.78
    x = np.array([np.nextafter(dtype(big), dtype(0)), np.nextafter(dtype(big), dtype(1e9)),
                  big + 0.5], dtype=dtype)
    for name in ("exp", "expm1"):
        y = apply(name, x)
        assert np.isfinite(y[0]) and y[0] > np.finfo(dtype).max / 2
        assert np.isinf(y[1]) and np.isinf(y[2]), name


# the float64 closest to a multiple of pi/2 (|x mod pi/2| ~ 4.7e-19): the
# hardest argument reduction among all doubles
_HARDEST_F64 = np.ldexp(6381956970095103.0, 797)


def _large_args(dtype, rng, n=20_000):
    """Both signs, log-uniform over [1e7, 1e30] (float32: up to its max too),
    the largest finite values, the values around the switch to the
    large-argument path, and values near multiples of pi/2 far beyond it."""
    hi = 30.0 if dtype == np.float64 else np.log10(np.finfo(dtype).max)
    x = 10.0 ** rng.uniform(7, hi, n)
    k = rng.integers(2 ** 30, 2 ** 52, 2_000).astype(LD) * LD(2.0) ** rng.integers(0, 40, 2_000)
    near = k * LD("1.57079632679489661923132169163975144")
    top = _steps(np.finfo(dtype).max, dtype, -15, 1)
    with np.errstate(over="ignore"):
        x = np.concatenate([x.astype(dtype), near.astype(dtype), top,
                            np.array([_HARDEST_F64], np.float64).astype(dtype)])
    x = x[np.isfinite(x)]
    return np.concatenate([x, -x, _around(TRIG_BIG[dtype], dtype)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", TRIG)
def test_trig_large_arguments(name, dtype):
    """Beyond the vectorised reduction's exact range (|x| > 2.6e7 float32,
    1e8 float64) the lanes are recomputed with a Payne-Hanek reduction: the
    sweep's bound against the exact value (float32: NumPy's float64; float64:
    long double), and float64 within 1 ulp of NumPy's float64 (libm)."""
    x = _large_args(dtype, np.random.default_rng(4))
    y = apply(name, x)
    if dtype == np.float32 or HAVE_LD:
        err = ulp_error(y, reference(name, x))
        i = int(np.argmax(err))
        assert err[i] <= BOUND[dtype][name], (name, x[i], y[i], err[i])
    if dtype == np.float64:
        # glibc 2.36's cos is 8 ulp off at the hardest argument (mpmath
        # agrees with us there, test_trig_large_vs_mpmath)
        keep = np.abs(x) != _HARDEST_F64
        ref = getattr(np, name)(x[keep])
        err = ulp_error(y[keep], ref)
        i = int(np.argmax(err))
        assert err[i] <= 1.0 + (name == "tan"), (name, x[keep][i], y[keep][i], ref[i])


def test_two_over_pi_table():
    """The large-argument tables: 2/pi's bits (Machin's formula in integers)
    against mpmath, and rows that add back up to 2**s * 2/pi without the bits
    that only add multiples of 4 to x * 2/pi."""
    mp = pytest.importorskip("mpmath")
    with mp.workprec(vm._TAB_BITS + 64):
        assert vm._two_over_pi(vm._TAB_BITS) == int(
            mp.floor(2 / mp.pi * mp.mpf(2) ** vm._TAB_BITS))
        t64 = vm._pio2_table(np.float64).reshape(-1, 4)
        for s in (0, 1, 26, 500, 1022, 1023):
            row = sum(mp.mpf(float(v)) for v in t64[s]) * mp.mpf(2) ** (s - min(s, 1022))
            # x = m * 2**s with m in [1, 2) on a 2**-52 grid: bits >= 2**54 of
            # 2**s * 2/pi only add multiples of 4
            assert abs(row - mp.fmod(mp.mpf(2) ** s * 2 / mp.pi, 2 ** 54)) < mp.mpf(2) ** -157
        t32 = vm._pio2_table(np.float32).reshape(-1, 4)
        for s in (0, 24, 127):
            row = sum(mp.mpf(float(v)) for v in t32[s]) * mp.mpf(2) ** s
            assert abs(row - mp.fmod(mp.mpf(2) ** s * 2 / mp.pi, 2 ** 25)) < mp.mpf(2) ** -85


def test_trig_large_vs_mpmath():
    """A few large float64 arguments, the hardest reduction among them,
    against mpmath (independent of libm and of long double)."""
    mp = pytest.importorskip("mpmath")
    x = np.array([3e7, 1e8 * (1 + 2 ** -40), 2.5e8, 1e15, -7.3e22, 1e100, -1e300,
                  np.finfo(np.float64).max, _HARDEST_F64, -_HARDEST_F64])
    with mp.workdps(60):
        for name in TRIG:
            y = apply(name, x)
            for xi, yi in zip(x, y):
                e = getattr(mp, name)(mp.mpf(float(xi)))
                ulp = mp.mpf(2) ** (int(mp.floor(mp.log(abs(e), 2))) - 52)
                assert abs(mp.mpf(float(yi)) - e) / ulp <= BOUND[np.float64][name], \
                    (name, xi, yi)


def test_tanh32_rational():
    """The float32 tanh's rational (float64 evaluation): P(0) = Q(0) = 1,
    exact at the clamp point, relative error <= 2.6e-8 against tanh on
    [0, C] (the figure its Remez fit, vm._fit_tanh32, reports)."""
    P, Q, C = vm._TANH_P32, vm._TANH_Q32, vm._TANH_C32
    assert P[0] == Q[0] == 1.0
    x = np.concatenate([np.linspace(1e-6, C, 400_001), [C]])
    z = x * x
    r = x * np.polyval(P[::-1], z) / np.polyval(Q[::-1], z)
    assert np.max(np.abs(r / np.tanh(x) - 1)) <= 2.6e-8
    assert abs(r[-1] / np.tanh(C) - 1) < 1e-14
    assert np.float32(r[-1]) == 1.0        # the clamped result rounds to 1


def test_python_and_integer_calls():
    # dispatchers are callable from Python too; ints are treated as float64
    assert vm.exp(1.0) == pytest.approx(np.e, rel=1e-15)
    assert vm.log(np.float32(2.0)) == pytest.approx(np.log(2.0), rel=1e-7)
    assert vm.sigmoid(0) == 0.5


# ----------------------------------------------------------------------------
# code generation: vectorised, fully inlined, no float64 in float32 code
# ----------------------------------------------------------------------------

def _kernel_ir(dispatcher):
    """LLVM IR (optimised) of the compiled function itself, no wrappers."""
    ir = dispatcher.inspect_llvm(dispatcher.signatures[0])
    for fn in ir.split("\ndefine ")[1:]:
        name = re.match(r"[^@]*@\"?([\w.$]+)", fn).group(1)
        if name.startswith("_ZN") and "cpython" not in name and "kernel" in name:
            return fn.split("\n}")[0]
    raise AssertionError("kernel not found in the LLVM IR")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_and_inlined(dtype):
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = (vm.VMATH_FUNCS[n] for n in NAMES)

    @njit(error_model="numpy")
    def kernel(a, out):
        for i in range(a.size):
            x = a[i]
            out[i] = (a0(x) + a1(x) + a2(x) + a3(x) + a4(x) + a5(x) + a6(x)
                      + a7(x) + a8(x))

    a = np.linspace(0.5, 2, 64).astype(dtype)
    kernel(a, np.empty_like(a))
    body = _kernel_ir(kernel)
    calls = set(re.findall(r"call [^@\n]*@([\w.$\"]+)\(", body))
    # besides intrinsics only sin/cos/tan's large-|x| path, and
    # in the vector loop through its masked vector variant
    slow = {c for c in calls if not c.startswith("llvm.")}
    ty = "f32" if dtype == np.float32 else "f64"
    assert slow and all(re.fullmatch(r"jitgrad_vm_(sin|cos|tan)_%s(_m\d+)?" % ty, c)
                        for c in slow), calls
    for name in TRIG:
        assert any(re.fullmatch(r"jitgrad_vm_%s_%s_m\d+" % (name, ty), c)
                   for c in slow), (name, calls)
    ty = "float" if dtype == np.float32 else "double"
    assert re.search(r"fmul[^\n]*<\d+ x %s>" % ty, body), "loop not vectorised"


@pytest.mark.parametrize("name", [n for n in NAMES if n != "tanh"])
def test_float32_stays_float32(name):
    """No float64 arithmetic in float32 code (tanh evaluates its rational in
    float64 on purpose; sin/cos/tan reduce in float32 up to |x| = 1e5, and only
    the out-of-line call for larger lanes, not in the loop, works in float64)."""
    f = vm.VMATH_FUNCS[name]

    @njit(error_model="numpy")
    def kernel(a, out):
        for i in range(a.size):
            out[i] = f(a[i])

    a = np.ones(4, np.float32)
    kernel(a, np.empty_like(a))
    body = _kernel_ir(kernel)
    assert "double" not in body and "fpext" not in body


def test_import_compiles_nothing():
    code = ("import jitgrad.vmath as v\n"
            "assert all(not f.signatures for f in v.VMATH_FUNCS.values())\n"
            "assert sorted(v.VMATH_FUNCS) == sorted(%r)\n" % NAMES)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
def test_tensor_trig_large_arguments(fused):
    """jitgrad.sin/cos/tan on Tensors at large |x| (and +-inf, NaN), eager
    and fused into one kernel: values and gradients (cos, -sin, 1 + tan**2:
    the same vmath functions) match torch in the same dtype, and float32
    stays within 2 ulp of torch's float64 on the same inputs."""
    torch = pytest.importorskip("torch")
    import jitgrad
    from jitgrad import lazy
    x64 = np.array([3e7, -3e7, 2.7e7, 1e8 + 0.5, -2.5e8, 1e15, 7.3e22, -1e30, 3e38,
                    0.5, -2.0, np.inf, -np.inf, np.nan]).reshape(-1, 1)
    prev = (lazy.is_fusion_enabled(), lazy.FUSE_MIN)
    try:
        lazy.set_fusion(fused, min_size=0)
        for dtype in (np.float32, np.float64):
            x = x64.astype(dtype)
            leaves = [jitgrad.tensor(x, requires_grad=True) for _ in TRIG]
            ys = [getattr(jitgrad, n)(a) for n, a in zip(TRIG, leaves)]
            (ys[0] + ys[1] + ys[2]).sum().backward()
            want = {}
            for tdt in (dtype, np.float64):
                tl = [torch.tensor(x.astype(tdt), requires_grad=True) for _ in TRIG]
                ty = [getattr(torch, n)(a) for n, a in zip(TRIG, tl)]
                (ty[0] + ty[1] + ty[2]).sum().backward()
                want[tdt] = [(t.detach().numpy(), a.grad.numpy()) for t, a in zip(ty, tl)]
            for name, y, a, w, w64 in zip(TRIG, ys, leaves, want[dtype], want[np.float64]):
                for what, g, wd, wx in zip(("value", "grad"), (y.detach().numpy(),
                                                               a.grad.numpy()), w, w64):
                    assert g.dtype == dtype, (name, what, g.dtype)
                    same = ulp_error(g, wd.astype(np.float64))
                    exact = ulp_error(g, wx)
                    assert same.max() <= 2 and exact.max() <= 2, (
                        name, dtype, what, fused, x.ravel(), g.ravel(), same.ravel(),
                        exact.ravel())
    finally:
        lazy.set_fusion(*prev)
