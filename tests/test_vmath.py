"""Accuracy, special values and code-generation checks for jitgrad.vmath.

Float32 is checked against NumPy float64 (error << 1 float32 ulp); float64
against x87 long double (64-bit mantissa, ~2**-11 float64 ulp), itself
spot-checked against mpmath.  Sweeps: every 2039th float32 bit pattern
(~2.1e6 values: denormals, NaN payloads, +-inf, overflow and underflow edges)
plus dense uniform sweeps of each function's interesting range and, for
sin/cos/tan, the float32 values nearest to k*pi/2; for float64 ~4e5 values
log-spaced over the whole exponent range plus uniform sweeps (~1e6 in all).
The module docstring's figures come from denser runs of the same sweeps.
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
TRIG_RANGE = {np.float32: 2.6e7, np.float64: 1.0e8}   # documented exact range

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
        x += [near, -near]
    x = np.concatenate(x)
    if name in TRIG:
        x = x[~(np.abs(x) > TRIG_RANGE[np.float32])]
    return x


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
        x += [near, -near]
    x = np.concatenate(x)
    if name in TRIG:
        x = x[~(np.abs(x) > TRIG_RANGE[np.float64])]
    return x


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trig_beyond_exact_range(dtype):
    """Outside the documented range results are inaccurate but bounded."""
    rng = np.random.default_rng(4)
    with np.errstate(over="ignore"):
        x = (rng.choice([-1, 1], 20_000) *
             10.0 ** rng.uniform(np.log10(TRIG_RANGE[dtype]),
                                 np.log10(np.finfo(dtype).max), 20_000)).astype(dtype)
    x = x[np.isfinite(x)]
    for name in ("sin", "cos"):
        y = apply(name, x)
        assert np.all(np.abs(y) <= 1.0001), name
    assert np.all(np.isfinite(apply("tan", x)))


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
    assert calls and all(c.startswith("llvm.") for c in calls), calls
    ty = "float" if dtype == np.float32 else "double"
    assert re.search(r"fmul[^\n]*<\d+ x %s>" % ty, body), "loop not vectorised"


@pytest.mark.parametrize("name", [n for n in NAMES if n not in TRIG + ("tanh",)])
def test_float32_stays_float32(name):
    """No float64 arithmetic in float32 code (sin/cos/tan reduce in float64
    and tanh evaluates its rational in float64 on purpose)."""
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
