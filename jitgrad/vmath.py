"""Branch-free, SIMD-vectorisable transcendental functions for Numba kernels.

llvmlite here has no SVML, so ``math.exp`` & co. inside an ``@njit`` loop
become one scalar libm call per element (5-40x slower than NumPy's SIMD
ufuncs).  The functions below use only arithmetic, selects and bit casts
(Cody-Waite reduction, polynomials, exponent tricks via integer bit casts), so
LLVM's loop vectoriser turns a loop over them into packed ymm/zmm code with
no calls left (but one: sin/cos/tan of |x| > 2.6e7 float32 / 1e8 float64,
see below).

Functions: ``exp, expm1, log, log1p, tanh, sigmoid, sin, cos, tan``.

Each accepts float32 or float64 (integers are treated as float64, like
NumPy) and, in jitted code, returns the input's dtype.  Float32 inputs are
computed in float32 arithmetic with float32 constants (no promotion; a test
checks the LLVM IR); the exceptions are sin/cos/tan beyond |x| = 1e5, whose
argument reduction and final sum are done in float64 (below it everything is
float32, see "float32 at float32 width"), and tanh, which evaluates one rational x*P(x**2)/Q(x**2) in float64 and rounds
once (cheaper than an accurate float32 exp-based tanh, see ``_mk_tanh``).
Called from the interpreter the result is a Python ``float``, as for any
Numba scalar.

Usage from generated kernel source::

    from jitgrad.vmath import VMATH_FUNCS
    vm_exp = VMATH_FUNCS["exp"]           # bind as a module global

    @numba.njit(error_model="numpy")      # required: the default error model
    def k(x, out):                        # adds division checks that block
        for i in range(x.size):           # SIMD
            out[i] = vm_exp(x[i]) * two   # two = numba.float32(2.0) (typed!)

``VMATH_FUNCS[name]`` is an ``@njit(error_model='numpy', cache=True)``
dispatcher; its per-dtype body is an ``@overload`` and its helpers are
overloads too.  Every compiled function is marked LLVM ``alwaysinline``
(see ``_ai``), so any number of calls in a kernel are inlined and the loop
vectorised; a test checks that no call survives but sin/cos/tan's
large-argument one.  Nothing compiles at import (~20 ms, mostly registering
~80 overloads).  The first use of a function and dtype with a cold cache
compiles it once (0.2-1.3 s here); afterwards it loads from Numba's on-disk
cache, and a kernel using it costs its own compile (~0.1-0.3 s, +~20-50 ms
of LLVM work per extra call site; sin/cos/tan +~15 ms each for their
large-argument path).  In float32 kernels keep the surrounding constants
typed, or the arithmetic around the calls promotes to float64.

Special values follow NumPy: NaN -> NaN everywhere; exp(+inf)=inf,
exp(-inf)=0, overflow -> inf, gradual underflow through denormals to 0;
log(0)=-inf, log(<0)=NaN, log(inf)=inf, denormal inputs correct;
log1p(-1)=-inf, log1p(<-1)=NaN; expm1(-inf)=-1; tanh(+-inf)=+-1;
sigmoid(-inf)=0, sigmoid(+inf)=1, never overflows, denormal results for very
negative x are correct; sin/cos/tan(+-inf)=NaN.  Odd functions keep -0.0.

Accuracy: max error in ulp against the exact value (float32: NumPy float64
reference; float64: x87 long double, cross-checked against mpmath), measured
over every 97th float32 bit pattern plus dense sweeps, and ~4e6 float64
points per function (log-spaced over the whole range, uniform over the
interesting ranges, nearest values to k*pi/2 for sin/cos/tan; for their
large arguments every 7th float32 bit pattern above 2.6e7 and 2.4e6 float64
values up to the largest); CPU with FMA:

=========  =======  =======  ===========================================
function   float32  float64  domain of the bound
=========  =======  =======  ===========================================
exp        0.78     0.79     all x (denormal results: <= 1 ulp)
expm1      1.27     1.45     all x
log        0.80     0.77     all x
log1p      0.88     0.87     all x
tanh       0.94     1.67     all x (float32: every value checked)
sigmoid    1.47     1.41     all x
sin        0.88     0.77     all x (float32 beyond 1e5: 0.89)
cos        0.88     0.78     all x (float32 beyond 1e5: 0.87)
tan        1.23     2.07     all x (float32 beyond 1e5: 1.15)
=========  =======  =======  ===========================================

``tests/test_vmath.py`` asserts slightly looser bounds (float32 <= 1-1.75,
float64 <= 1-2.5 ulp per function).  sin/cos/tan reduce by pi/2 with
Cody-Waite in float64: float32 inputs with chunks short enough that k*chunk is
exact, exact for |k| < 2**24 (|x| < 2**24*pi/2 = 2.6e7); float64 inputs with
three full chunks and FMA, as a double-double, for |k| < 2**26 (|x| <
1.05e8).  Lanes beyond 2.6e7 / 1e8 are recomputed by a call to a scalar
function with a Payne-Hanek reduction (bits of 2/pi from a table row chosen by
the exponent, ~8-17 ns per element), placed so that the loop still vectorises
(see "Large arguments" below); the check costs sin/cos/tan 10-15% in a loop of
their own (float32 sin 0.61 -> 0.67 ns/element, float64 1.11 -> 1.26, AMD EPYC
Zen 5; float32 tan happened to get faster, 1.02 -> 0.94), and much more in a
long fused body, so generated flat kernels use ``sin_fast`` & co. with a
per-block check instead (``TRIG_FAST_FUNCS``, codegen._guard_trig).

Exact error terms use ``llvm.fma`` (one instruction on any x86-64 with
AVX2/AVX-512; a slow but exact libm call on CPUs without FMA); polynomials use
``llvm.fmuladd`` (fused only where profitable).

Speed (N=1e6 contiguous, njit loop / NumPy ufunc with out=, same process,
2-core Xeon Cascade Lake, noisy shared VM, so +-20%):

=========  ===========  ===========  =============  =================
function   f32 vs np    f64 vs np    f32 math/vm    f64 math/vm
=========  ===========  ===========  =============  =================
exp        1.2-1.3      1.5-1.7      3-5x           4-5x
expm1      1.2-1.4      0.96         20-30x         8-12x
log        1.2-1.4      1.25-1.3     6x             2x
log1p      1.4-1.5      1.2-1.4      10-25x         4-9x
tanh       1.1-1.4      1.3-1.5      20-30x         13-16x
sigmoid    0.75-0.8     0.5          5-7x           3-5x
sin        1.4-1.8      0.2          10x            5x
cos        1.6          0.25         6-10x          4x
tan        2.3-2.7      2.1          9-20x          3.5x
=========  ===========  ===========  =============  =================

(ratio = vmath time / NumPy time; NumPy's float64 sin/cos are scalar here.)
On this Intel AVX-512 CPU LLVM prefers 256-bit vectors while NumPy's ufuncs
use 512-bit ones; with ``NUMBA_CPU_FEATURES=<host features>,-prefer-256-bit``
(zmm, as LLVM already does on AMD Zen 4) float32 becomes 0.95-1.35x NumPy for
all but tan (2.5x) (tanh: 1.15x; its float64 core runs in zmm either way).
``bench/bench_vmath.py`` measures it.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .codegen import llvm_interleave

__all__ = ["exp", "expm1", "log", "log1p", "tanh", "sigmoid", "sin", "cos",
           "tan", "VMATH_FUNCS"]

_F32 = types.float32
_F64 = types.float64
_FLOATS = (_F32, _F64)

# (bits, mantissa bits, exponent bias)
_LAYOUT = {_F32: (32, 23, 127), _F64: (64, 52, 1023)}

_JIT_OPTS = dict(error_model="numpy")


# ----------------------------------------------------------------------------
# LLVM-level helpers (each lowers to one or a few vectorisable instructions)
# ----------------------------------------------------------------------------

def _same_float(*tys):
    return tys[0] in _FLOATS and all(t == tys[0] for t in tys)


def _ternary_llvm(name, doc):
    def impl(typingctx, a, b, c):
        if not _same_float(a, b, c):
            return None   # refuses mixed float32/float64: no silent promotion

        def codegen(context, builder, sig, args):
            t = args[0].type
            fn = builder.module.declare_intrinsic(
                name, [t], ir.FunctionType(t, [t] * 3))
            return builder.call(fn, args)
        return a(a, b, c), codegen
    impl.__name__ = "_" + name.split(".")[1]
    impl.__doc__ = doc
    return intrinsic(impl)


# a*b + c, fused where the target has FMA, else mul + add (polynomials)
_fma = _ternary_llvm("llvm.fmuladd", "a*b+c, fused if profitable")
# a*b + c with a single rounding (exact error terms); every x86-64 CPU with
# AVX2/AVX-512 has FMA, elsewhere LLVM falls back to libm fma (slow, exact)
_fmae = _ternary_llvm("llvm.fma", "a*b+c, single rounding")


def _unary_llvm(name):
    def impl(typingctx, x):
        if x not in _FLOATS:
            return None

        def codegen(context, builder, sig, args):
            t = args[0].type
            fn = builder.module.declare_intrinsic(
                name, [t], ir.FunctionType(t, [t]))
            return builder.call(fn, [args[0]])
        return x(x), codegen
    impl.__name__ = "_" + name.split(".")[1]
    return intrinsic(impl)


_rint = _unary_llvm("llvm.rint")     # round half even (default FP env)
_floor = _unary_llvm("llvm.floor")
_fabs = _unary_llvm("llvm.fabs")


@intrinsic
def _pow2(typingctx, k):
    """2**k for an integer-valued float k within the normal exponent range."""
    if k not in _FLOATS:
        return None
    bits, mant, bias = _LAYOUT[k]

    def codegen(context, builder, sig, args):
        it = ir.IntType(bits)
        i = builder.fptosi(args[0], it)
        i = builder.add(i, ir.Constant(it, bias))
        i = builder.shl(i, ir.Constant(it, mant))
        return builder.bitcast(i, args[0].type)
    return k(k), codegen


@intrinsic
def _ldexp2(typingctx, m, k):
    """m * 2**k for integer-valued float k in [-2*emax+2, 2*emax] (float32:
    [-252, 254]); applied as two exact power-of-two factors, so an overflow
    gives inf and a denormal result is rounded once."""
    if not _same_float(m, k):
        return None
    bits, mant, bias = _LAYOUT[k]

    def codegen(context, builder, sig, args):
        it = ir.IntType(bits)
        ki = builder.fptosi(args[1], it)
        k1 = builder.ashr(ki, ir.Constant(it, 1))
        k2 = builder.sub(ki, k1)
        res = args[0]
        for kk in (k1, k2):
            e = builder.shl(builder.add(kk, ir.Constant(it, bias)),
                            ir.Constant(it, mant))
            res = builder.fmul(res, builder.bitcast(e, args[0].type))
        return res
    return m(m, k), codegen


@intrinsic
def _frexp_s2(typingctx, x):
    """(m, e) with x = m * 2**e, m in [sqrt(1/2), sqrt(2)), e as a float.

    Integer-only bit manipulation (musl's trick); valid for positive normal
    x, garbage (but never undefined behaviour) otherwise.
    """
    if x not in _FLOATS:
        return None
    bits, mant, bias = _LAYOUT[x]
    if x == _F32:
        one, s2 = 0x3F800000, 0x3F3504F3
    else:
        one, s2 = 0x3FF0000000000000, 0x3FE6A09E667F3BCD
    retty = types.UniTuple(x, 2)

    def codegen(context, builder, sig, args):
        it = ir.IntType(bits)
        ft = args[0].type
        i = builder.bitcast(args[0], it)
        i = builder.add(i, ir.Constant(it, one - s2))
        e = builder.sub(builder.ashr(i, ir.Constant(it, mant)),
                        ir.Constant(it, bias))
        m = builder.add(builder.and_(i, ir.Constant(it, (1 << mant) - 1)),
                        ir.Constant(it, s2))
        vals = [builder.bitcast(m, ft), builder.sitofp(e, ft)]
        return context.make_tuple(builder, retty, vals)
    return retty(x), codegen


@intrinsic
def _to_f64(typingctx, x):
    if x != _F32:
        return None

    def codegen(context, builder, sig, args):
        return builder.fpext(args[0], ir.DoubleType())
    return _F64(x), codegen


@intrinsic
def _to_f32(typingctx, x):
    if x != _F64:
        return None

    def codegen(context, builder, sig, args):
        return builder.fptrunc(args[0], ir.FloatType())
    return _F32(x), codegen


@intrinsic
def _ai(typingctx):
    """Mark the function being lowered ``alwaysinline`` for LLVM.

    Every helper calls this first, so a kernel loop gets the whole body
    inlined (and vectorised) however many calls it makes; LLVM's cost model
    otherwise refuses to inline the larger ones (sin/cos/tan)."""
    def codegen(context, builder, sig, args):
        attrs = builder.function.attributes
        if "noinline" not in attrs:
            attrs.add("alwaysinline")
        return context.get_dummy_value()
    return types.none(), codegen


def _jitable(fn):
    """Make a (closure) helper callable from jitted code.

    Closure variables are frozen as typed constants.  Helpers are compiled
    once per signature and inlined by LLVM (Numba-IR inlining was measured
    3-5x slower to compile)."""
    overload(fn, jit_options=_JIT_OPTS, strict=False)(lambda *args: fn)
    return fn


@_jitable
def _two_sum(a, b):
    """s + e == a + b exactly (Knuth), any magnitudes."""
    _ai()
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


# ----------------------------------------------------------------------------
# Per-dtype implementations.  Each maker returns a plain Python closure over
# constants of the target dtype; Numba freezes them as typed constants, so
# float32 code stays float32.
# ----------------------------------------------------------------------------

def _exp_consts(ft):
    f = ft
    if ft is np.float32:
        # ln2 split so that k*LN2H is exact for |k| < 2**15
        return dict(L2E=f(1.4426950408889634), LN2H=f(0.693359375),
                    LN2L=f(-2.12194440e-4), LO=f(-104.0), HI=f(89.0),
                    EM1_LO=f(-18.0))
    # fdlibm ln2_hi (32 significant bits) / ln2_lo
    return dict(L2E=f(1.4426950408889634), LN2H=f(6.93147180369123816490e-01),
                LN2L=f(1.90821492927058770002e-10), LO=f(-746.0), HI=f(710.0),
                EM1_LO=f(-40.0))


# Cephes expf minimax: e**r = 1 + r + r**2 * P(r) on [-ln2/2, ln2/2]
_EXP_P32 = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
            4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
# float64: Taylor 1/n!, n = 13..2 (truncation < 5e-18 relative)
_EXP_P64 = tuple(1.0 / float(np.prod(np.arange(1, n + 1, dtype=np.float64)))
                 for n in range(13, 1, -1))


def _mk_exp_core(ft):
    """core(xc) -> (r, zp, k) with e**xc = 2**k * (1 + r + zp),
    |r| <= ln2/2, |zp| <= 0.07; xc must be finite and clamped."""
    c = _exp_consts(ft)
    L2E, LN2H, LN2L = c["L2E"], c["LN2H"], c["LN2L"]
    f = ft
    if ft is np.float32:
        p0, p1, p2, p3, p4, p5 = (f(v) for v in _EXP_P32)

        @_jitable
        def core(xc):
            _ai()
            k = _rint(xc * L2E)
            r = _fmae(-k, LN2H, xc)          # exact
            r = _fmae(-k, LN2L, r)
            z = r * r
            p = _fma(_fma(_fma(_fma(_fma(p0, r, p1), r, p2), r, p3), r, p4),
                     r, p5)
            return r, p * z, k
        return core

    (q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11) = (
        f(v) for v in _EXP_P64)

    @_jitable
    def core(xc):
        _ai()
        k = _rint(xc * L2E)
        r = _fmae(-k, LN2H, xc)              # exact
        r = _fmae(-k, LN2L, r)
        z = r * r
        z2 = z * z                           # Estrin-style split
        a = _fma(_fma(_fma(q0, r, q1), r, q2), r, q3)
        b = _fma(_fma(_fma(q4, r, q5), r, q6), r, q7)
        cc = _fma(_fma(_fma(q8, r, q9), r, q10), r, q11)
        p = _fma(_fma(a, z2, b), z2, cc)
        return r, p * z, k
    return core


def _mk_exp(ft):
    c = _exp_consts(ft)
    LO, HI = c["LO"], c["HI"]
    core = _mk_exp_core(ft)
    one = ft(1.0)

    @_jitable
    def impl(x):
        _ai()
        xc = x if x > LO else LO           # NaN -> LO (kept finite)
        xc = xc if xc < HI else HI         # +-inf, overflow, underflow edges
        r, zp, k = core(xc)
        hi = one + r
        lo = (one - hi) + r                # exact (Fast2Sum)
        m = hi + (lo + zp)                 # 1 + r + zp, one rounding
        res = _ldexp2(m, k)                # overflow -> inf, denormals ok
        return x if x != x else res
    return impl


def _mk_expm1_raw(ft):
    """raw(xc) = e**xc - 1 for finite xc in [EM1_LO, HI] (no special cases)."""
    core = _mk_exp_core(ft)
    one, half, two = ft(1.0), ft(0.5), ft(2.0)

    @_jitable
    def raw(xc):
        _ai()
        r, zp, k = core(xc)
        # e**x - 1 = 2 * (t*(r + zp) + (t - 1/2)), t = 2**(k-1); k = 0 exact
        t = _pow2(k - one)
        return two * _fma(t, zp, _fma(t, r, t - half))
    return raw


def _mk_expm1(ft):
    c = _exp_consts(ft)
    LO, HI = c["EM1_LO"], c["HI"]
    raw = _mk_expm1_raw(ft)
    TINY = ft(2.0 ** -30) if ft is np.float32 else ft(2.0 ** -60)

    @_jitable
    def impl(x):
        _ai()
        xc = x if x > LO else LO
        xc = xc if xc < HI else HI
        res = raw(xc)
        res = x if _fabs(x) < TINY else res  # expm1(x) rounds to x; keeps -0
        return x if x != x else res
    return impl


# Cephes logf: log(1+f) = f - f**2/2 + f**3 * P(f), f in [sqrt(.5)-1, sqrt(2)-1]
_LOG_P32 = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
            -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
            2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
# fdlibm e_log.c Lg1..Lg7: log(1+f) via s = f/(2+f)
_LOG_LG64 = (6.666666666666735130e-01, 3.999999999940941908e-01,
             2.857142874366239149e-01, 2.222219843214978396e-01,
             1.818357216161805012e-01, 1.531383769920937332e-01,
             1.479819860511658591e-01)


def _mk_log_kernel(ft):
    """kern(f, e, c) = e*ln2 + log(1+f) + c for f in [sqrt(.5)-1, sqrt(2)-1]
    and a tiny correction c."""
    f_ = ft
    if ft is np.float32:
        p0, p1, p2, p3, p4, p5, p6, p7, p8 = (f_(v) for v in _LOG_P32)
        LN2H, LN2L, mhalf = f_(0.693359375), f_(-2.12194440e-4), f_(-0.5)

        @_jitable
        def kern(f, e, c):
            _ai()
            z = f * f
            p = _fma(_fma(_fma(_fma(_fma(_fma(_fma(_fma(
                p0, f, p1), f, p2), f, p3), f, p4), f, p5), f, p6), f, p7),
                f, p8)
            y = p * f * z
            y = _fma(e, LN2L, y)
            y = _fma(mhalf, z, y) + c
            return _fma(e, LN2H, f + y)
        return kern

    lg1, lg2, lg3, lg4, lg5, lg6, lg7 = (f_(v) for v in _LOG_LG64)
    LN2H, LN2L = f_(6.93147180369123816490e-01), f_(1.90821492927058770002e-10)
    half, two = f_(0.5), f_(2.0)

    @_jitable
    def kern(f, e, c):
        _ai()
        s = f / (two + f)
        z = s * s
        w = z * z
        t1 = w * _fma(_fma(lg6, w, lg4), w, lg2)
        t2 = z * _fma(_fma(_fma(lg7, w, lg5), w, lg3), w, lg1)
        R = t2 + t1
        hfsq = half * f * f
        return _fmae(e, LN2H, -((hfsq - _fma(s, hfsq + R, _fma(e, LN2L, c)))
                                - f))
    return kern


def _mk_log(ft):
    kern = _mk_log_kernel(ft)
    if ft is np.float32:
        TINY, SCALE, SHIFT = ft(1.1754943508222875e-38), ft(2.0 ** 25), ft(25.0)
    else:
        TINY, SCALE, SHIFT = ft(2.2250738585072014e-308), ft(2.0 ** 54), ft(54.0)
    zero, one, inf, nan = ft(0.0), ft(1.0), ft(np.inf), ft(np.nan)

    @_jitable
    def impl(x):
        _ai()
        sub = x < TINY                       # denormals (and <= 0): prescale
        xs = x * SCALE if sub else x
        m, e = _frexp_s2(xs)
        e = e - SHIFT if sub else e
        res = kern(m - one, e, zero)
        res = -inf if x == zero else res
        res = nan if x < zero else res
        return res if x < inf else x + x      # inf -> inf, NaN -> NaN
    return impl


def _mk_log1p(ft):
    kern = _mk_log_kernel(ft)
    EMAX = ft(100.0) if ft is np.float32 else ft(1000.0)
    zero, one, inf, nan, mone = (ft(0.0), ft(1.0), ft(np.inf), ft(np.nan),
                                 ft(-1.0))

    @_jitable
    def impl(x):
        _ai()
        u = one + x
        a = x if x > one else one
        b = one if x > one else x
        err = (a - u) + b                   # exact: 1 + x == u + err
        m, e = _frexp_s2(u)                 # u > 0 normal for x > -1
        f = m - one
        en = e if e < EMAX else EMAX
        d = err * _pow2(-en)                # 1 + x == 2**e * (m + d)
        c = d * _fma(f, f, one - f)         # ~ d / m (only needs a few bits)
        res = kern(f, e, c)
        res = x if x == zero else res       # keeps -0.0
        res = -inf if x == mone else res
        res = nan if x < mone else res
        return res if x < inf else x + x
    return impl


# float32 tanh: tanh(x) = x * P(z) / Q(z), z = x*x, x clamped to [-C, C],
# evaluated in float64 and rounded once to float32.  P, Q have degree 4 with
# P(0) = Q(0) = 1 (tiny x -> exactly x) and are the minimax fit of
# tanh(x)/x in relative error on 0 <= x <= C, pinned to be exact at x = C so
# that the clamped result rounds to 1 (tanh(x) rounds to 1 in float32 for
# |x| > 9.011).  Max relative error 2.60e-8 (<= 0.44 float32 ulp on top of
# the final rounding); _fit_tanh32() re-derives the constants.
_TANH_C32 = 9.1
_TANH_P32 = (1.0, 0.13371792916689806, 0.0034845149253389797,
             2.042281337409715e-05, 1.3089361940073205e-08)
_TANH_Q32 = (1.0, 0.4670511204469654, 0.025835130330516046,
             0.00032673480680599855, 7.669475920415849e-07)


def _fit_tanh32(m=4, n=4, c=_TANH_C32, grid=3000, iters=20):
    """Re-derive (_TANH_P32, _TANH_Q32, max relative error) (needs mpmath,
    ~15 s).  Rational Remez exchange on the relative error of P(z)/Q(z) vs
    g(z) = tanh(sqrt z)/sqrt z over z in [0, c**2], with P(0) = Q(0) = 1 and
    P = g*Q at z = c**2: at the m+n reference points solve the linear system
    P(z_i) - g_i Q(z_i) = (-1)**i E g_i Q_prev(z_i) (iterating Q_prev), then
    move the references to the extrema of each sign run of the error on a
    cosine-spaced grid."""
    import mpmath as mp
    with mp.workdps(40):
        return _remez_tanh32(mp, m, n, mp.mpf(c) ** 2, grid, iters)


def _remez_tanh32(mp, m, n, Z, grid, iters):
    """_fit_tanh32's exchange loop (mpmath at the caller's precision)."""
    def g(z):
        return mp.tanh(mp.sqrt(z)) / mp.sqrt(z) if z else mp.mpf(1)

    zs = [Z * (1 - mp.cos(mp.pi * k / grid)) / 2 for k in range(1, grid)]
    gs = [g(z) for z in zs]
    N = m + n
    pts = [zs[(k + 1) * (grid - 1) // (N + 1)] for k in range(N)]
    qprev = lambda z: 1                                       # noqa: E731
    for _ in range(iters):
        for _ in range(30):
            rows = [(z, (-1) ** i) for i, z in enumerate(pts)] + [(Z, 0)]
            A = mp.matrix([[z ** k for k in range(1, m + 1)]
                           + [-g(z) * z ** k for k in range(1, n + 1)]
                           + [-s * g(z) * qprev(z)] for z, s in rows])
            sol = mp.lu_solve(A, mp.matrix([g(z) - 1 for z, _ in rows]))
            p, q = [1] + list(sol[:m]), [1] + list(sol[m:N])
            qprev = lambda z, q=q: mp.polyval(q[::-1], z)     # noqa: E731
        ev = [mp.polyval(p[::-1], z) / qprev(z) / gz - 1
              for z, gz in zip(zs, gs)]
        ext = []                       # the extremum of each sign run
        for k, e in enumerate(ev):
            if ext and (e >= 0) == (ev[ext[-1]] >= 0):
                if abs(e) > abs(ev[ext[-1]]):
                    ext[-1] = k
            else:
                ext.append(k)
        while len(ext) > N:
            ext.pop(0 if abs(ev[ext[0]]) < abs(ev[ext[-1]]) else -1)
        pts = [zs[k] for k in ext]
    return ([float(v) for v in p], [float(v) for v in q],
            float(max(abs(e) for e in ev)))


def _mk_tanh(ft):
    em1 = _mk_expm1_raw(ft)       # arguments below are finite and >= 0
    two, one = ft(2.0), ft(1.0)
    CL = ft(10.0) if ft is np.float32 else ft(20.0)   # tanh rounds to 1

    @_jitable
    def big(a):
        """tanh(a) = em / (em + 2), em = expm1(2a), a >= 0 (finite)."""
        _ai()
        ac = a if a < CL else CL
        em = em1(two * ac)
        d = em + two
        dl = (two - d) + em if em < two else (em - d) + two   # exact
        inv = one / d
        t = em * inv
        rem = _fmae(-t, d, em)              # exact residual of em / d
        rem = _fma(-t, dl, rem)
        return _fma(rem, inv, t)

    if ft is np.float32:
        # float64 constants: the rational is evaluated in float64 (its
        # rounding errors are ~1e-16, so only the fit's 2.6e-8 and the final
        # rounding count).  Bound by the float64 division (and float64
        # halves the lanes), but it is one path with no exp: 1.3-1.8x faster
        # than the former float32 expm1-or-polynomial select (1.50 ulp).
        # The same rational evaluated in float32 is ~1.5x faster again but
        # measured 5.6 ulp (rounding errors of P and Q near |tanh| = 1).
        C = float(_TANH_C32)
        p1, p2, p3, p4 = (float(v) for v in _TANH_P32[1:])
        q1, q2, q3, q4 = (float(v) for v in _TANH_Q32[1:])
        one64 = 1.0

        @_jitable
        def impl(x):
            _ai()
            xd = _to_f64(x)
            xc = C if xd > C else xd        # NaN stays NaN, +-inf -> +-C
            xc = -C if xc < -C else xc
            z = xc * xc
            z2 = z * z
            # x*P(z) = x + x*z*(p1 + p2 z + p3 z^2 + p4 z^3) (keeps -0.0);
            # Estrin: short dependency chains ahead of the division
            num = _fma(xc * z, _fma(z2, _fma(p4, z, p3), _fma(p2, z, p1)), xc)
            den = _fma(z2, _fma(z2, q4, _fma(q3, z, q2)), _fma(q1, z, one64))
            return _to_f32(num / den)
        return impl

    @_jitable
    def impl(x):
        _ai()
        a = _fabs(x)
        t = big(a)
        t = -t if x < 0 else t
        res = x if x == 0 else t
        return x if x != x else res
    return impl


def _mk_sigmoid(ft):
    exp_ = _mk_exp(ft)
    zero, one = ft(0.0), ft(1.0)
    # below this e*e would be denormal (very slow on x86) and is negligible
    TINY = ft(2.0 ** -60) if ft is np.float32 else ft(2.0 ** -500)

    @_jitable
    def impl(x):
        _ai()
        e = exp_(-_fabs(x))                # in [0, 1]: never overflows
        num = one if x >= zero else e      # NaN -> e -> NaN
        d = one + e
        dl = (one - d) + e                 # exact
        dl = dl if e > TINY else zero
        s0 = num / d
        rem = _fmae(-s0, d, num)           # exact residual of the division
        rem = _fma(-s0, dl, rem)
        inv = s0 if x >= zero else one - s0     # ~ 1/d
        return _fma(rem, inv, s0)
    return impl


# Cephes sinf/cosf minimax on [-pi/4, pi/4] (float32)
_SIN_P32 = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
_COS_P32 = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)
# fdlibm __kernel_sin S1..S6, __kernel_cos C1..C6 (float64)
_SIN_P64 = (-1.66666666666666324348e-01, 8.33333333332248946124e-03,
            -1.98412698298579493134e-04, 2.75573137070700676789e-06,
            -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_COS_P64 = (4.16666666666666019037e-02, -1.38888888888741095749e-03,
            2.48015872894767294178e-05, -2.75573143513906633035e-07,
            2.08757232129817482790e-09, -1.13596475577881948265e-11)
# pi/2 split for Cody-Waite of float32 inputs (in float64).  Chunk 1 has 27
# significant bits, chunk 2 28 (k < 2**24), so k*chunk is exact; chunk 3 is a
# full double.
_PIO2_F32 = (1.570796325802803, 9.920935808982456e-10, -1.2177051777973966e-18)
# pi/2 as three full doubles, for float64 inputs.  With FMA, x - k*C1 is exact
# (k*C1 and x are multiples of 2**-52 -- or 2**-53 below 1 -- and |x - k*C1| < 1),
# k*C2 is split exactly by one FMA, and the chunks hold pi/2 to 2**-164: r + rlo
# is exact to ~2**-134 absolute, better than 2**-70 relative even at the doubles
# nearest multiples of pi/2 (|r| ~ 2**-60 at large k).  Half the operations of
# the four-chunk Cody-Waite with short leading chunks it replaced (njit loop over
# 4096 float64, 2-core Zen 4: sin 1.19 -> 1.00 ns/element, its call-free
# sin_fast 0.84; max error unchanged).
_PIO2_F64_FULL = (1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33)
_TOPI = 0.6366197723675814
_RMAX = 0.7855   # float32 inputs' |r| clamp: only active beyond the exact
                 # range (lanes whose result the large-argument path replaces)


@_jitable
def _quadrant(k):
    """k (integer-valued float64) -> (odd, ge2): bits 0 and 1 of k mod 4."""
    _ai()
    q = k - 4.0 * _floor(k * 0.25)
    odd = (q == 1.0) | (q == 3.0)
    return odd, q >= 2.0


_Q32 = tuple(np.float32(v) for v in (4.0, 0.25, 1.0, 3.0, 2.0))


@_jitable
def _quadrant32(kd):
    """As _quadrant, in float32 (k is exact in float32 in the exact range)."""
    _ai()
    four, quarter, one, three, two = _Q32
    k = _to_f32(kd)
    q = k - four * _floor(k * quarter)
    odd = (q == one) | (q == three)
    return odd, q >= two


def _mk_reduce(ft):
    """The vectorised reduction: Cody-Waite, exact up to _TRIG_BIG."""
    if ft is np.float32:
        c1, c2, c3 = _PIO2_F32

        @_jitable
        def red(x):
            """float32 x -> (r, k): x = k*pi/2 + r, r float64 to ~1 float64
            ulp for |k| < 2**24."""
            _ai()
            xd = _to_f64(x)
            k = _rint(xd * _TOPI)
            r = _fmae(-k, c1, xd)           # exact
            r = _fmae(-k, c2, r)            # exact when cancelling
            r = _fmae(-k, c3, r)
            r = _RMAX if r > _RMAX else r   # NaN stays NaN
            r = -_RMAX if r < -_RMAX else r
            return r, k
        return red

    c1, c2, c3 = _PIO2_F64_FULL

    @_jitable
    def red(x):
        """x -> (r, rlo, k): x = k*pi/2 + r + rlo, as a double-double,
        to better than 2**-70 relative for |k| < 2**26 (beyond: garbage, +-inf
        or NaN, which the large-argument path replaces)."""
        _ai()
        k = _rint(x * _TOPI)
        t = _fmae(-k, c1, x)                # exact (see _PIO2_F64_FULL)
        p = k * c2
        pl = _fmae(k, c2, -p)               # exact product error
        r, er = _two_sum(t, -p)             # exact
        lo = _fmae(-k, c3, er - pl)
        rh = r + lo
        return rh, lo - (rh - r), k
    return red


# ----------------------------------------------------------------------------
# Large arguments.  Beyond _TRIG_BIG the Cody-Waite reduction is inexact
# (float32: |k| < 2**24 up to 2**24*pi/2 = 2.635e7; float64: |k| < 2**26 up to
# 1.054e8); such lanes are recomputed by a scalar function with a Payne-Hanek
# reduction (a table row of 2/pi bits chosen by x's exponent; libm would do,
# at 50-100 ns per element here, but glibc 2.36's cos is 8 ulp off at the
# double nearest a multiple of pi/2, test_trig_large_vs_mpmath).  It cannot be
# the vector code itself: the row load is a gather, and LLVM refuses to
# vectorise a loop whose loads it cannot bound when its input and output may
# alias (as in every Numba loop: "cannot identify array bounds").  A plain
# branch around a scalar call does not keep the loop vectorised either: LLVM
# if-converts a speculatable call (llvm.sin) into a vector call run for every
# lane (7.5 ns/element instead of 0.6 for float32 sin here) and keeps the loop
# scalar for any other (8.1 instead of 1.1 ns for float64).  So the call site
# names masked vector variants (LLVM's VFABI attribute, see _mk_slow): the
# vector loop makes one call per vector, which returns at once when no lane is
# large.
# ----------------------------------------------------------------------------

_TRIG_BIG = {np.float32: np.float32(2.6e7), np.float64: 1.0e8}
_PIO2_HI, _PIO2_LO = 1.5707963267948966, 6.123233995736766e-17   # pi/2
_TAB_BITS = 1400          # bits of 2/pi kept (the float64 rows use ~1190)


def _two_over_pi(nbits):
    """floor(2/pi * 2**nbits) with Python integers (Machin's formula)."""
    g = nbits + 64                          # guard bits

    def atan_inv(n):                        # atan(1/n) * 2**g, error < n terms
        term = (1 << g) // n
        total, k, n2 = term, 1, n * n
        while term:
            term //= n2
            k += 2
            total += term // k if k % 4 == 1 else -(term // k)
        return total
    pi = 16 * atan_inv(5) - 4 * atan_inv(239)
    return (1 << (g + nbits + 1)) // pi


def _chunks(v, widths, low):
    """Split the integer v (value v * 2**low) into chunks of the given bit
    widths, highest first, as exact floats."""
    out, shift = [], sum(widths)
    for w in widths:
        shift -= w
        out.append(float(np.ldexp(float((v >> shift) & ((1 << w) - 1)),
                                  low + shift)))
    return out


_TABLES = {}


def _pio2_table(ft):
    """Rows of 2/pi chunks by exponent, flattened (4 per row); built by the
    first compile that needs them (~10 ms), never at import.

    float32 (row s = clamp(e, 0, 127), x = m * 2**e, 1 <= m < 2): the bits of
    2**s * 2/pi modulo 2**25 (x's last bit is 2**(s-23): higher bits add
    multiples of 4 to x*2/pi) as chunks of 29, 29 and 53 bits at weights
    2**24, 2**-5, 2**-34, each scaled by 2**-s so that x is used unscaled;
    x * chunk is exact for the first two.

    float64 (row s = clamp(e, 0, 1023)): 2**s * 2/pi modulo 2**54 as four
    53-bit chunks at weights 2**53, 2**0, 2**-53, 2**-106, for x scaled to
    [1, 2) by 2**-d, d = min(s, 1022) (2**-1023 is not a normal number; row
    1023 carries the remaining factor 1/2)."""
    if ft in _TABLES:
        return _TABLES[ft]
    T = _two_over_pi(_TAB_BITS)
    rows = []
    if ft is np.float32:
        for s in range(128):
            R = (T >> (_TAB_BITS - s - 86)) & ((1 << 111) - 1)
            rows.append([float(np.ldexp(v, -s))
                         for v in _chunks(R, (29, 29, 53), -86)] + [0.0])
    else:
        for s in range(1024):
            R = (T >> (_TAB_BITS - s - 158)) & ((1 << 212) - 1)
            rows.append([float(np.ldexp(v, min(s, 1022) - s))
                         for v in _chunks(R, (53, 53, 53, 53), -158)])
    _TABLES[ft] = tab = np.array(rows, dtype=np.float64).ravel()
    return tab


def _table_row(builder, ft, s, n):
    """Load n values of row s (an integer) of the table, a constant global
    of the module being built."""
    name = "_jitgrad_vmath_2opi_" + ("f32" if ft is np.float32 else "f64")
    mod = builder.module
    gv = mod.globals.get(name)
    if gv is None:
        tab = _pio2_table(ft)
        aty = ir.ArrayType(ir.DoubleType(), tab.size)
        gv = ir.GlobalVariable(mod, aty, name)
        gv.global_constant = True
        gv.linkage = "linkonce_odr"
        gv.unnamed_addr = True
        gv.align = 32
        gv.initializer = ir.Constant(aty, [float(v) for v in tab])
    i64, i32 = ir.IntType(64), ir.IntType(32)
    base = builder.mul(builder.zext(s, i64), ir.Constant(i64, 4))
    return [builder.load(builder.gep(gv, [ir.Constant(i32, 0),
                                          builder.add(base, ir.Constant(i64, j))],
                                     inbounds=True))
            for j in range(n)]


def _clamp_exp(builder, e, hi):
    """min(max(e, 0), hi) on an integer."""
    t = e.type
    e = builder.select(builder.icmp_signed("<", e, ir.Constant(t, 0)),
                       ir.Constant(t, 0), e)
    return builder.select(builder.icmp_signed(">", e, ir.Constant(t, hi)),
                          ir.Constant(t, hi), e)


@intrinsic
def _pio2_row32(typingctx, x):
    """float32 x -> its table row (c0, c1, c2), float64."""
    if x != _F32:
        return None
    retty = types.UniTuple(_F64, 3)

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        e = builder.and_(builder.lshr(builder.bitcast(args[0], i32),
                                      ir.Constant(i32, 23)), ir.Constant(i32, 0xFF))
        s = _clamp_exp(builder, builder.sub(e, ir.Constant(i32, 127)), 127)
        return context.make_tuple(builder, retty,
                                  _table_row(builder, np.float32, s, 3))
    return retty(x), codegen


@intrinsic
def _pio2_row64(typingctx, x):
    """float64 x -> (x * 2**-d, c0, c1, c2, c3) from its table row."""
    if x != _F64:
        return None
    retty = types.UniTuple(_F64, 5)

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        e = builder.and_(builder.lshr(builder.bitcast(args[0], i64),
                                      ir.Constant(i64, 52)), ir.Constant(i64, 0x7FF))
        s = _clamp_exp(builder, builder.sub(e, ir.Constant(i64, 1023)), 1023)
        d = builder.select(builder.icmp_signed(">", s, ir.Constant(i64, 1022)),
                           ir.Constant(i64, 1022), s)
        scale = builder.bitcast(builder.shl(builder.sub(ir.Constant(i64, 1023), d),
                                            ir.Constant(i64, 52)), ir.DoubleType())
        xs = builder.fmul(args[0], scale)       # exact; inf and NaN stay
        return context.make_tuple(builder, retty,
                                  [xs] + _table_row(builder, np.float64, s, 4))
    return retty(x), codegen


@_jitable
def _red32_big(x):
    """float32 x (any) -> (r, k): x = k*pi/2 + r, r float64 to ~2**-51
    relative, |k| <= 5 (only k mod 4 is used).

    x*c0 = p0 and x*c1 = p1 are exact, so is p0 - rint(p0); g is exact when
    |g| < 1/8, else rounded to 2**-53 relative, which x*c2 < 2**-33 cannot
    cancel; x*c2 + g is rounded once."""
    _ai()
    xd = _to_f64(x)
    c0, c1, c2 = _pio2_row32(x)
    p0 = xd * c0
    k0 = _rint(p0)
    f0 = p0 - k0                        # NaN for +-inf and NaN
    p1 = xd * c1
    k1 = _rint(f0 + p1)
    g = (f0 - k1) + p1
    f = _fma(xd, c2, g)
    k = (k0 - 4.0 * _floor(k0 * 0.25)) + k1
    return f * _PIO2_HI, k


@_jitable
def _red64_big(x):
    """float64 x (any) -> (r, rlo, k): x = k*pi/2 + r + rlo as a double-double,
    absolute error ~2**-150 in x*2/pi - k, |k| <= 6 (used mod 4).

    Exact steps (x scaled to [1, 2); grids are powers of 2): x*c0 = p0 + e0
    on 2**-51, |p0| < 2**55; a = (p0 - rint p0) + e0 exact (|a| <= 2.5);
    x*c1 = p1 + e1 on 2**-104, |p1| < 4, |e1| <= 2**-52; g1 = p1 - rint p1
    and a - k2 exact, b + bl their exact sum, bl + e1 exact.  The rest is
    double-double (x*c2 < 2**-51, x*c3 < 2**-104), so even the worst
    cancellation (|x mod pi/2| ~ 2**-61 over all doubles) keeps ~90 bits."""
    _ai()
    xs, c0, c1, c2, c3 = _pio2_row64(x)
    p0 = xs * c0
    e0 = _fmae(xs, c0, -p0)
    k0 = _rint(p0)
    a = (p0 - k0) + e0
    p1 = xs * c1
    e1 = _fmae(xs, c1, -p1)
    k1 = _rint(p1)
    g1 = p1 - k1
    k2 = _rint(a + g1)
    b, bl = _two_sum(a - k2, g1)
    u1, u1l = _two_sum(b, bl + e1)
    p2 = xs * c2
    e2 = _fmae(xs, c2, -p2)
    u2, u2l = _two_sum(u1, p2)
    lo = (u1l + u2l) + _fma(xs, c3, e2)
    fh = u2 + lo
    fl = lo - (fh - u2)
    rh = fh * _PIO2_HI
    rl = _fmae(fh, _PIO2_HI, -rh) + _fma(fh, _PIO2_LO, fl * _PIO2_HI)
    k = (k0 - 4.0 * _floor(k0 * 0.25)) + k1 + k2
    # |x| < pi/4 is its own reduction (exact; the table's products would
    # lose a denormal's bits)
    small = _fabs(x) < 0.785
    return (x if small else rh), (0.0 if small else rl), (0.0 if small else k)


def _mk_reduce_big(ft):
    return _red32_big if ft is np.float32 else _red64_big


def _mk_sincos(ft, red):
    """sc(x) -> (s, c, k): float64 sin(r), cos(r) and the quadrant k, with
    the reduction red (_mk_reduce or _mk_reduce_big)."""
    if ft is np.float32:
        # polynomials in float32; the leading terms are added in float64 so
        # the result is nearly correctly rounded after the final fptrunc
        s0, s1, s2 = (np.float32(v) for v in _SIN_P32)
        c0, c1, c2 = (np.float32(v) for v in _COS_P32)

        @_jitable
        def sc(x):
            _ai()
            rd, k = red(x)
            r = _to_f32(rd)
            z = r * r
            ts = _fma(_fma(s0, z, s1), z, s2) * z * r
            tc = _fma(_fma(c0, z, c1), z, c2) * z * z
            s = rd + _to_f64(ts)
            c = _fma(-0.5 * rd, rd, 1.0) + _to_f64(tc)
            return s, c, k
        return sc

    S1, S2, S3, S4, S5, S6 = _SIN_P64
    C1, C2, C3, C4, C5, C6 = _COS_P64

    @_jitable
    def sc(x):
        _ai()
        r, y, k = red(x)
        # fdlibm __kernel_sin / __kernel_cos with the tail y
        z = r * r
        v = z * r
        R = _fma(_fma(_fma(_fma(S6, z, S5), z, S4), z, S3), z, S2)
        s = r - ((z * (0.5 * y - v * R) - y) - v * S1)
        Rc = z * _fma(_fma(_fma(_fma(_fma(C6, z, C5), z, C4), z, C3), z,
                           C2), z, C1)
        hz = 0.5 * z
        w = 1.0 - hz
        c = w + (((1.0 - w) - hz) + (z * Rc - r * y))
        return s, c, k
    return sc


def _mk_sin_cos64(name, red):
    """float64 sin or cos (name) with the reduction red: one polynomial per lane.

    sin(x) is +-sin(r) or +-cos(r) by quadrant, so each lane evaluates only the one it
    needs, with that polynomial's coefficients chosen per lane (selects, cheaper than the
    second polynomial _mk_sincos evaluates for tan): F = P1 + z*(P2 + ... ) with P = S or C,
    then sin(r) = r + (r*z*F + y*(1 - z/2)) (fdlibm's __kernel_sin with its tail y) and
    cos(r) = w + (((1 - w) - z/2) + (z*z*F - r*y)), w = 1 - z/2 (__kernel_cos), so the lane's
    value is head + (m*F + tail) (_mk_sin_cos_end).  Folding S1 into F rounds r**3*S1 with
    the rest (<= 0.1 ulp more, at r = pi/4).  Max error 0.77 / 0.78 ulp (0.78 / 0.76 before;
    test_vmath's sweep); a standalone njit loop over 4096 float64 ran 0.83 -> 0.73
    ns/element (Zen 4)."""
    S1, S2, S3, S4, S5, S6 = _SIN_P64
    C1, C2, C3, C4, C5, C6 = _COS_P64
    use_cos, end = _mk_sin_cos_end(np.float64, name == "sin", True)

    @_jitable
    def impl(x):
        _ai()
        r, y, k = red(x)
        odd, ge2 = _quadrant(k)
        z = r * r
        c = use_cos(odd)
        F = _fma(_fma(_fma(_fma(_fma(C6 if c else S6, z, C5 if c else S5), z,
                                C4 if c else S4), z, C3 if c else S3), z,
                      C2 if c else S2), z, C1 if c else S1)
        return end(x, r, y, z, F, odd, ge2)
    return impl


def _mk_sin_cos_end(ft, is_sin, tail_scaled):
    """(use_cos, end): the part the one-polynomial sin/cos of both widths share.
    use_cos(odd): whether the lane needs cos's polynomial; end(x, r, rl, z, F, odd, ge2): the
    lane's sin or cos(x) from F, its polynomial in z = r*r (see _mk_sin_cos64).
    ``tail_scaled``: sin's tail is rl*(1 - z/2) (float64's fdlibm kernel) rather than rl
    (float32, where the product is below its rounding)."""
    one, half = ft(1.0), ft(0.5)

    @_jitable
    def use_cos(odd):
        _ai()
        return odd if is_sin else not odd

    @_jitable
    def end(x, r, rl, z, F, odd, ge2):
        _ai()
        c = use_cos(odd)
        hz = half * z
        w = one - hz
        head = w if c else r
        m = z * z if c else z * r
        tail = (((one - w) - hz) - r * rl) if c else (_fma(-hz, rl, rl) if tail_scaled else rl)
        v = head + _fma(m, F, tail)
        v = -v if (ge2 if is_sin else odd != ge2) else v
        if is_sin:
            v = x if x == 0 else v          # keeps -0.0
        return v
    return use_cos, end


def _mk_trig64(name, red):
    """float64 sin/cos/tan with the reduction red."""
    if name == "tan":
        return _mk_trig_value(name, np.float64, _mk_sincos(np.float64, red))
    return _mk_sin_cos64(name, red)


def _mk_trig_value(name, ft, sc):
    """x -> sin/cos/tan(x) from sc = _mk_sincos(ft, ...): tan in either width, sin/cos in
    float32 only (its float64-width path; float64 sin/cos are _mk_sin_cos64)."""
    if name == "tan":
        if ft is np.float32:
            one32 = np.float32(1.0)

            @_jitable
            def tan32(x):
                _ai()
                s, c, k = sc(x)
                odd, ge2 = _quadrant(k)
                num = -c if odd else s
                den = s if odd else c
                # float32 reciprocal (fast divide), one float64 Newton step
                inv = _to_f64(one32 / _to_f32(den))
                t = num * inv
                y = _fma(_fmae(-t, den, num), inv, t)
                return x if x == 0 else _to_f32(y)
            return tan32

        @_jitable
        def tan64(x):
            _ai()
            s, c, k = sc(x)
            odd, ge2 = _quadrant(k)
            num = -c if odd else s
            den = s if odd else c
            inv = 1.0 / den
            t = num * inv
            y = _fma(_fmae(-t, den, num), inv, t)   # exact residual division
            return x if x == 0 else y
        return tan64

    assert ft is np.float32, "float64 sin/cos: _mk_sin_cos64"
    if name == "sin":
        @_jitable
        def sin_(x):
            _ai()
            s, c, k = sc(x)
            odd, ge2 = _quadrant32(k)
            s, c = _to_f32(s), _to_f32(c)
            v = c if odd else s
            v = -v if ge2 else v
            return x if x == 0 else v       # keeps -0.0
        return sin_

    @_jitable
    def cos_(x):
        _ai()
        s, c, k = sc(x)
        odd, ge2 = _quadrant32(k)
        s, c = _to_f32(s), _to_f32(c)
        v = s if odd else c
        return -v if (odd != ge2) else v    # q == 1 or q == 2
    return cos_


# ----------------------------------------------------------------------------
# float32 at float32 width.  The reduction above runs in float64, so a float32
# sin/cos/tan loop ran at half the vector width (8 lanes in a zmm, not 16).
# For |x| <= _TRIG_F32 the reduction and the polynomials below stay in float32:
# k = rint(x*2/pi); t1 = x - k*C1 exact (fma; |t1| < 1 is a multiple of 2**-24,
# so it fits 24 bits, for |k| < 4.5e6); k*C2 = ph + pl exactly (fma), and
# t1 - ph as the exact two-sum rh + e; rl = (e - pl) - k*C3.  (r, rl) is x - k*pi/2
# to ~2**-44 relative even at the float32 values nearest multiples of pi/2.  The
# limit is set by k itself: x*2/pi rounded to float32 puts x near a half-integer
# quadrant in the wrong one by up to ulp(x*2/pi)/2, so |r| exceeds pi/4 by up to
# 0.006 at 1e5 (0.1 at 8e5, 1.8 ulp there); up to 1e5 the polynomials keep sin
# <= 0.88, cos <= 0.88, tan <= 1.23 ulp.  Lanes beyond it take the float64-width
# path above (Payne-Hanek beyond 2.6e7) through the masked-vector call of
# _mk_slow, whose float32 variants run that path as vector code over the whole
# vector (_mid_vector), so the loop stays vectorised and a vector with no such
# lane pays one compare.  Measured (njit loop, 4096 elements, Zen 4, same run):
# sin 0.69 -> 0.39-0.42 ns/element, cos 0.68 -> 0.38-0.43, tan 0.95 -> 0.53;
# for |x| up to 1e6 sin 0.69 -> 1.11 (a scalar call per such lane: 5.0).
# ----------------------------------------------------------------------------

_TRIG_F32 = np.float32(1.0e5)
_PIO2_X = np.longdouble("1.57079632679489661923132169163975144")
_C1_32 = np.float32(_PIO2_X)
_C2_32 = np.float32(_PIO2_X - np.longdouble(_C1_32))
_C3_32 = np.float32(_PIO2_X - np.longdouble(_C1_32) - np.longdouble(_C2_32))
_TOPI_32 = np.float32(_TOPI)
_F32K = tuple(np.float32(v) for v in (1.0, 0.5))


@_jitable
def _red32w(x):
    """float32 x, |x| <= _TRIG_F32 -> (r, rl, k), all float32: x = k*pi/2 + r + rl,
    |rl| <= ulp(r)/2 (see above)."""
    _ai()
    k = _rint(x * _TOPI_32)
    t1 = _fmae(-k, _C1_32, x)                   # exact
    ph = k * _C2_32
    pl = _fmae(k, _C2_32, -ph)                  # k*C2 = ph + pl
    rh, e = _two_sum(t1, -ph)
    rl = _fma(-k, _C3_32, e - pl)
    r = rh + rl
    return r, rl - (r - rh), k


def _mk_sincos32w():
    s0, s1, s2 = (np.float32(v) for v in _SIN_P32)
    c0, c1, c2 = (np.float32(v) for v in _COS_P32)
    one, half = _F32K

    @_jitable
    def sc(x):
        """(s, sl, c, cl, k): sin(r + rl) = s + sl, cos = c + cl (float32 pairs; sl,
        cl are the rounding errors of the last additions, used by tan only)."""
        _ai()
        r, rl, k = _red32w(x)
        z = r * r
        st = _fma(r * z, _fma(_fma(s0, z, s1), z, s2), rl)    # + rl*cos(r)
        s = r + st
        hz = half * z
        w = one - hz
        tc = _fma(_fma(c0, z, c1), z, c2) * z * z
        ct = ((one - w) - hz) + (tc - r * rl)        # w's rounding error; - rl*sin(r)
        c = w + ct
        return s, (r - s) + st, c, (w - c) + ct, k
    return sc


def _mk_trig32w(name):
    """x -> sin/cos/tan(x) in float32 arithmetic only, for |x| <= _TRIG_F32."""
    sc = _mk_sincos32w()
    one = _F32K[0]
    if name == "tan":
        @_jitable
        def tan_(x):
            _ai()
            s, sl, c, cl, k = sc(x)
            odd, ge2 = _quadrant32f(k)
            nh = -c if odd else s
            nl = -cl if odd else sl
            dh = s if odd else c
            dl = sl if odd else cl
            inv = one / dh
            t = nh * inv
            res = _fmae(-t, dh, nh) + _fma(-t, dl, nl)   # (n - t*d) to ~2**-48
            y = _fma(res, inv, t)
            return x if x == 0 else y
        return tan_
    return _mk_sin_cos32w(name)


def _mk_sin_cos32w(name):
    """float32 sin or cos for |x| <= _TRIG_F32 with one polynomial per lane, as
    _mk_sin_cos64: sin(r + rl) = r + (r*z*S(z) + rl), cos = w + (z*z*C(z) + ((1 - w) - z/2 -
    r*rl)), w = 1 - z/2, with S's or C's coefficients chosen by quadrant."""
    s0, s1, s2 = (np.float32(v) for v in _SIN_P32)
    c0, c1, c2 = (np.float32(v) for v in _COS_P32)
    use_cos, end = _mk_sin_cos_end(np.float32, name == "sin", False)

    @_jitable
    def impl(x):
        _ai()
        r, rl, k = _red32w(x)
        odd, ge2 = _quadrant32f(k)
        z = r * r
        c = use_cos(odd)
        F = _fma(_fma(c0 if c else s0, z, c1 if c else s1), z, c2 if c else s2)
        return end(x, r, rl, z, F, odd, ge2)
    return impl


@_jitable
def _quadrant32f(k):
    """As _quadrant, for a float32 k."""
    _ai()
    four, quarter, one, three, two = _Q32
    q = k - four * _floor(k * quarter)
    return (q == one) | (q == three), q >= two


_red32_cw = _mk_reduce(np.float32)
_TRIG_BIG32 = _TRIG_BIG[np.float32]


@_jitable
def _red32_any(x):
    """The float64-width reduction of float32 x for any x: Cody-Waite up to
    _TRIG_BIG, Payne-Hanek beyond (a branch: only ever run as scalar code)."""
    _ai()
    if _fabs(x) > _TRIG_BIG32:
        return _red32_big(x)
    return _red32_cw(x)


_SLOW_VLS = (2, 4, 8, 16, 32)     # vector widths with a vector variant
_SLOW_ATTR = "vector-function-abi-variant"
_SLOW_FLAGS = None


def _slow_flags():
    global _SLOW_FLAGS
    if _SLOW_FLAGS is None:
        from numba.core.compiler import Flags
        _SLOW_FLAGS = Flags()
        _SLOW_FLAGS.error_model = "numpy"
    return _SLOW_FLAGS


def _slow_scalar(context, mod, name, t, impl, sig):
    """``T name(T x)``: impl(x) compiled as a subroutine.  noinline, so the
    loop keeps one call the vectoriser can map to a vector variant;
    memory(none) (it reads only the constant table) but not speculatable,
    so it stays behind its branch."""
    fn = mod.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(mod, ir.FunctionType(t, [t]), name)
    fn.linkage = "linkonce_odr"
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    for a in ("willreturn", "memory(none)"):     # not in llvmlite's list
        set.add(fn.attributes, a)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with llvm_interleave(0):            # (as _batch_fn's: compiled once, shared)
        cres = context.compile_subroutine(b, impl, sig, flags=_slow_flags())
    _, res = context.call_internal_no_propagate(b, cres.fndesc, sig, [fn.args[0]])
    b.ret(res)                      # (impl cannot fail: the status is 0)
    return fn


def _slow_lanes(mod, scalar, t):
    """``void f(T* buf, i64 bits, i32 n)``: buf[i] = scalar(buf[i]) for the
    set bits i < n; shared by the vector variants of every width."""
    name = scalar.name + "_lanes"
    fn = mod.globals.get(name)
    if fn is not None:
        return fn
    i32, i64 = ir.IntType(32), ir.IntType(64)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [t.as_pointer(), i64, i32]),
                     name)
    fn.linkage = "linkonce_odr"
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    buf, bits, n = fn.args
    entry, loop, call, nxt, out = (fn.append_basic_block(k) for k in (
        "entry", "loop", "call", "next", "out"))
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(i32)
    i.add_incoming(ir.Constant(i32, 0), entry)
    bit = b.and_(b.lshr(bits, b.zext(i, i64)), ir.Constant(i64, 1))
    b.cbranch(b.icmp_unsigned("!=", bit, ir.Constant(i64, 0)), call, nxt)
    b.position_at_end(call)
    ptr = b.gep(buf, [i], inbounds=True)
    b.store(b.call(scalar, [b.load(ptr)]), ptr)
    b.branch(nxt)
    b.position_at_end(nxt)
    i1 = b.add(i, ir.Constant(i32, 1))
    i.add_incoming(i1, nxt)
    b.cbranch(b.icmp_unsigned("==", i1, n), out, loop)
    b.position_at_end(out)
    b.ret_void()
    return fn


def _slow_vector(mod, scalar, t, vl):
    """The masked vector variant ``<vl x T> f(<vl x T> x, <vl x i1> m)``:
    x unless a lane is set, else x with the set lanes recomputed by the
    scalar slow path (kept small: every kernel module compiles one per
    width)."""
    name = "%s_m%d" % (scalar.name, vl)
    vf = mod.globals.get(name)
    if vf is not None:
        return vf
    i32, i64 = ir.IntType(32), ir.IntType(64)
    vt = ir.VectorType(t, vl)
    vf = ir.Function(mod, ir.FunctionType(vt, [vt, ir.VectorType(ir.IntType(1), vl)]),
                     name)
    vf.linkage = "linkonce_odr"
    vf.attributes.add("nounwind")
    x, m = vf.args
    entry, slow, fast = (vf.append_basic_block(k) for k in ("entry", "slow", "fast"))
    b = ir.IRBuilder(entry)
    buf = b.alloca(vt)          # a vector slot: aligned for the vector store
    bits = b.zext(b.bitcast(m, ir.IntType(vl)), i64)
    b.cbranch(b.icmp_unsigned("!=", bits, ir.Constant(i64, 0)), slow, fast)
    b.position_at_end(fast)
    b.ret(x)
    b.position_at_end(slow)
    b.store(x, buf)
    b.call(_slow_lanes(mod, scalar, t),
           [b.bitcast(buf, t.as_pointer()), bits, ir.Constant(i32, vl)])
    b.ret(b.load(buf))
    return vf


@intrinsic
def _pload(typingctx, p, i):
    """p[i] for a raw pointer p."""
    if not isinstance(p, types.CPointer):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(builder.gep(args[0], [args[1]], inbounds=True))
    return p.dtype(p, i), codegen


@intrinsic
def _pstore(typingctx, p, i, v):
    """p[i] = v for a raw pointer p."""
    if not isinstance(p, types.CPointer) or v != p.dtype:
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], builder.gep(args[0], [args[1]], inbounds=True))
        return context.get_dummy_value()
    return types.none(p, i, v), codegen


def _batch_fn(context, mod, name, t, impl):
    """``void f(T* buf, i64 n)``: buf[i] = impl(buf[i]) for i < n, a loop LLVM vectorises
    (impl: the float64-width float32 path without its large-argument branch)."""
    fn = mod.globals.get(name)
    if fn is not None:
        return fn
    def batch(p, n):
        for i in range(n):
            _pstore(p, i, impl(_pload(p, i)))

    sig = types.void(types.CPointer(_F32), types.int64)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [t.as_pointer(), ir.IntType(64)]),
                     name)
    fn.linkage = "linkonce_odr"
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    # LLVM's choice of interleave, whatever kernel's compile this runs in (backends/cpu.
    # _interleaved): Numba compiles the subroutine once and links that copy into every later
    # compile, and its loop runs over one vector (16-32 elements), too few to interleave
    with llvm_interleave(0):
        cres = context.compile_subroutine(b, batch, sig, flags=_slow_flags())
    context.call_internal_no_propagate(b, cres.fndesc, sig, list(fn.args))
    b.ret_void()
    return fn


def _mid_vector(mod, scalar, batch, t, vl):
    """float32's masked vector variant: lanes beyond _TRIG_F32 (the set ones) take the
    float64-width path as vector code (batch, over the whole vector, then selected), and
    lanes beyond _TRIG_BIG then the scalar Payne-Hanek path; one call per vector with
    such a lane, none otherwise."""
    name = "%s_m%d" % (scalar.name, vl)
    vf = mod.globals.get(name)
    if vf is not None:
        return vf
    i32, i64 = ir.IntType(32), ir.IntType(64)
    vt = ir.VectorType(t, vl)
    vb = ir.VectorType(ir.IntType(1), vl)
    vf = ir.Function(mod, ir.FunctionType(vt, [vt, vb]), name)
    vf.linkage = "linkonce_odr"
    vf.attributes.add("nounwind")
    x, m = vf.args
    entry, slow, big, done, fast = (vf.append_basic_block(k) for k in (
        "entry", "slow", "big", "done", "fast"))
    b = ir.IRBuilder(entry)
    buf = b.alloca(vt)
    bits = b.zext(b.bitcast(m, ir.IntType(vl)), i64)
    b.cbranch(b.icmp_unsigned("!=", bits, ir.Constant(i64, 0)), slow, fast)
    b.position_at_end(fast)
    b.ret(x)
    b.position_at_end(slow)
    b.store(x, buf)
    ptr = b.bitcast(buf, t.as_pointer())
    b.call(batch, [ptr, ir.Constant(i64, vl)])
    big_c = float(_TRIG_BIG32)
    huge = b.or_(b.fcmp_unordered(">", x, ir.Constant(vt, [big_c] * vl)),   # (NaN too)
                 b.fcmp_ordered("<", x, ir.Constant(vt, [-big_c] * vl)))
    hbits = b.zext(b.bitcast(huge, ir.IntType(vl)), i64)
    mid = b.load(buf)
    b.cbranch(b.icmp_unsigned("!=", hbits, ir.Constant(i64, 0)), big, done)
    b.position_at_end(big)
    b.store(x, buf)
    b.call(_slow_lanes(mod, scalar, t), [ptr, hbits, ir.Constant(i32, vl)])
    far = b.select(huge, b.load(buf), mid)
    b.branch(done)
    b.position_at_end(done)
    res = b.phi(vt)
    res.add_incoming(mid, slow)
    res.add_incoming(far, big)
    b.ret(b.select(m, res, x))
    return vf


def _keep(mod, fns):
    """Add functions to ``llvm.compiler.used``: unreferenced until the loop
    vectoriser picks one, they would otherwise be dropped before it runs."""
    ptr = ir.IntType(8).as_pointer()
    gv = mod.globals.get("llvm.compiler.used")
    if gv is None:
        gv = ir.GlobalVariable(mod, ir.ArrayType(ptr, 0), "llvm.compiler.used")
        gv.linkage = "appending"
        gv.section = "llvm.metadata"
        gv.initializer = ir.Constant(gv.value_type, [])
    vals = list(gv.initializer.constant) + [f.bitcast(ptr) for f in fns]
    gv.value_type = ir.ArrayType(ptr, len(vals))    # the global's own type
    gv.initializer = ir.Constant(gv.value_type, vals)   # is just a pointer


def _mk_slow(name, vector=True):
    # built at import (registers overloads only). float32: the float64-width path
    # (Cody-Waite, Payne-Hanek beyond _TRIG_BIG) for lanes beyond _TRIG_F32.
    # vector=False: a plain call, which keeps the loop around it scalar (_mk_trig_lane)
    impls = {_F32: _mk_trig_value(name, np.float32, _mk_sincos(np.float32, _red32_any)),
             _F64: _mk_trig64(name, _red64_big)}
    mid32 = _mk_trig_value(name, np.float32, _mk_sincos(np.float32, _red32_cw))

    @intrinsic
    def call(typingctx, x):
        """x -> name(x) through the large-argument reduction, as a call to
        the scalar function _slow_scalar builds.  The call site lists its
        masked vector variants (LLVM's VFABI attribute), so that a loop with
        this call behind a rarely true branch still vectorises."""
        if x not in impls:
            return None

        def codegen(context, builder, sig, args):
            mod = builder.module
            fname = "jitgrad_vm_%s_%s" % (name, "f32" if x == _F32 else "f64")
            fresh = mod.globals.get("%s_m%d" % (fname, _SLOW_VLS[0])) is None
            t = args[0].type
            fn = _slow_scalar(context, mod, fname, t, impls[x], sig)
            if not vector:
                return builder.call(fn, [args[0]])
            if x == _F32:
                batch = _batch_fn(context, mod, fname + "_mid", t, mid32)
                vfs = [_mid_vector(mod, fn, batch, t, vl) for vl in _SLOW_VLS]
            else:
                vfs = [_slow_vector(mod, fn, t, vl) for vl in _SLOW_VLS]
            if fresh:
                _keep(mod, vfs)
            c = builder.call(fn, [args[0]])
            set.add(c.attributes, '"%s"="%s"' % (_SLOW_ATTR, ",".join(
                "_ZGV_LLVM_M%dv_%s(%s)" % (vl, fname, vf.name)
                for vl, vf in zip(_SLOW_VLS, vfs))))
            return c
        return x(x), codegen
    call.__name__ = "_slow_" + name
    return call


# the vector code's bound: float32 reduces in float32 up to _TRIG_F32 (then the
# masked call's float64-width path), float64 exactly up to _TRIG_BIG
_TRIG_FAST_MAX = {np.float32: _TRIG_F32, np.float64: _TRIG_BIG[np.float64]}
_FAST_TRIG = {}


def _trig_fast(name, ft):
    """name(x) for |x| <= _TRIG_FAST_MAX[ft], without the large-argument path: one
    helper per function and dtype, shared by the checked function and sin_fast & co."""
    f = _FAST_TRIG.get((name, ft))
    if f is None:
        f = _FAST_TRIG[name, ft] = (
            _mk_trig32w(name) if ft is np.float32 else
            _mk_trig64(name, _mk_reduce(ft)))
    return f


def _mk_trig(name, vector=True):
    slow = _mk_slow(name, vector)

    def maker(ft):
        fast, big = _trig_fast(name, ft), _TRIG_FAST_MAX[ft]

        @_jitable
        def impl(x):
            _ai()
            v = fast(x)
            if _fabs(x) > big:          # rare: recompute (see above)
                v = slow(x)
            return v
        return impl
    return maker


_mk_sin, _mk_cos, _mk_tan = (_mk_trig(n) for n in ("sin", "cos", "tan"))


# ----------------------------------------------------------------------------
# The same without the large-argument path, for generated kernels that guard a
# block of elements instead (codegen.render_fused): the block runs these
# call-free functions, ORs trig_big over their arguments and, only where some
# lane was large, runs again with sin/cos/tan.  In a long fused loop body the
# masked call itself was the cost, not the compare: every vector register is
# live across it, and W1's float64 kernel ran 3.9 ns/element with sin against
# 3.1 with this pair (float32: 1.53 -> 1.27).  Beyond the bound the values
# are garbage (finite, +-inf or NaN), never a trap.
# ----------------------------------------------------------------------------

def _mk_trig_fast(name):
    return lambda ft: _trig_fast(name, ft)


def _mk_trig_lane(name):
    """sin/cos/tan as one call of a subroutine computing them (the same values): the
    guarded block's rerun, which only runs where some lane was large, stays a short scalar
    loop (a call LLVM cannot vectorise), not a second copy of the vectorised body and its
    masked variants, which doubled the compile time of W5's kernels."""
    maker = _mk_trig(name, vector=False)
    checked = {_F32: maker(np.float32), _F64: maker(np.float64)}

    @intrinsic
    def call(typingctx, x):
        if x not in checked:
            return None

        def codegen(context, builder, sig, args):
            fname = "jitgrad_vm_%s_%s_lane" % (name, "f32" if x == _F32 else "f64")
            fn = _slow_scalar(context, builder.module, fname, args[0].type, checked[x], sig)
            return builder.call(fn, [args[0]])
        return x(x), codegen

    def lane_maker(ft):
        @_jitable
        def impl(x):
            _ai()
            return call(x)
        return impl
    return lane_maker


def _mk_trig_big(ft):
    big = _TRIG_FAST_MAX[ft]

    @_jitable
    def impl(x):
        _ai()
        return _fabs(x) > big           # NaN: False (the fast path gives NaN)
    return impl


# ----------------------------------------------------------------------------
# Registration: a stub per function, overloaded per dtype, wrapped in a cached
# njit dispatcher usable from Python and from other jitted code.
# ----------------------------------------------------------------------------

_MAKERS = {
    "exp": _mk_exp, "expm1": _mk_expm1, "log": _mk_log, "log1p": _mk_log1p,
    "tanh": _mk_tanh, "sigmoid": _mk_sigmoid, "sin": _mk_sin, "cos": _mk_cos,
    "tan": _mk_tan, "sin_fast": _mk_trig_fast("sin"), "cos_fast": _mk_trig_fast("cos"),
    "tan_fast": _mk_trig_fast("tan"), "trig_big": _mk_trig_big,
    "sin_lane": _mk_trig_lane("sin"), "cos_lane": _mk_trig_lane("cos"),
    "tan_lane": _mk_trig_lane("tan"),
}

def _register(name, maker):
    def stub(x):
        raise NotImplementedError("jitgrad.vmath stubs only work in jitted code")
    stub.__name__ = "_vm_" + name
    # building the closures is cheap and compiles nothing; registering the
    # helper overloads up front keeps them visible to every typing context
    impls = {_F32: maker(np.float32), _F64: maker(np.float64)}

    @overload(stub, jit_options=_JIT_OPTS)
    def ov(x):
        if x in impls:
            return impls[x]
        if isinstance(x, (types.Integer, types.Boolean)):
            f64 = impls[_F64]

            def impl_int(x):
                _ai()
                return f64(np.float64(x))
            return impl_int
        return None
    return stub


_STUBS = {name: _register(name, mk) for name, mk in _MAKERS.items()}
_exp_s, _expm1_s, _log_s, _log1p_s = (_STUBS[n] for n in
                                      ("exp", "expm1", "log", "log1p"))
_tanh_s, _sigmoid_s = _STUBS["tanh"], _STUBS["sigmoid"]
_sin_s, _cos_s, _tan_s = _STUBS["sin"], _STUBS["cos"], _STUBS["tan"]
_sinf_s, _cosf_s, _tanf_s = _STUBS["sin_fast"], _STUBS["cos_fast"], _STUBS["tan_fast"]
_trig_big_s = _STUBS["trig_big"]
_sinl_s, _cosl_s, _tanl_s = _STUBS["sin_lane"], _STUBS["cos_lane"], _STUBS["tan_lane"]

_NJIT = dict(error_model="numpy", cache=True)


@njit(**_NJIT)
def exp(x):
    """e**x"""
    _ai()
    return _exp_s(x)


@njit(**_NJIT)
def expm1(x):
    """e**x - 1, accurate near 0"""
    _ai()
    return _expm1_s(x)


@njit(**_NJIT)
def log(x):
    """natural logarithm"""
    _ai()
    return _log_s(x)


@njit(**_NJIT)
def log1p(x):
    """log(1 + x), accurate near 0"""
    _ai()
    return _log1p_s(x)


@njit(**_NJIT)
def tanh(x):
    """hyperbolic tangent"""
    _ai()
    return _tanh_s(x)


@njit(**_NJIT)
def sigmoid(x):
    """1 / (1 + e**-x), overflow-free"""
    _ai()
    return _sigmoid_s(x)


@njit(**_NJIT)
def sin(x):
    """sine (all x; |x| > 2.6e7 float32 / 1e8 float64 take a slower path)"""
    _ai()
    return _sin_s(x)


@njit(**_NJIT)
def cos(x):
    """cosine (all x; |x| > 2.6e7 float32 / 1e8 float64 take a slower path)"""
    _ai()
    return _cos_s(x)


@njit(**_NJIT)
def tan(x):
    """tangent (all x; |x| > 2.6e7 float32 / 1e8 float64 take a slower path)"""
    _ai()
    return _tan_s(x)


VMATH_FUNCS = {
    "exp": exp, "expm1": expm1, "log": log, "log1p": log1p, "tanh": tanh,
    "sigmoid": sigmoid, "sin": sin, "cos": cos, "tan": tan,
}


@njit(**_NJIT)
def sin_fast(x):
    """sine for |x| <= 1e5 float32 / 1e8 float64 only (see trig_big)"""
    _ai()
    return _sinf_s(x)


@njit(**_NJIT)
def cos_fast(x):
    """cosine for |x| <= 1e5 float32 / 1e8 float64 only (see trig_big)"""
    _ai()
    return _cosf_s(x)


@njit(**_NJIT)
def tan_fast(x):
    """tangent for |x| <= 1e5 float32 / 1e8 float64 only (see trig_big)"""
    _ai()
    return _tanf_s(x)


@njit(**_NJIT)
def trig_big(x):
    """True where sin/cos/tan_fast(x) is not sin/cos/tan(x) (|x| beyond their bound, +-inf)"""
    _ai()
    return _trig_big_s(x)


@njit(**_NJIT)
def sin_lane(x):
    """sine, all x, keeping the loop around it scalar (see _mk_trig_lane)"""
    _ai()
    return _sinl_s(x)


@njit(**_NJIT)
def cos_lane(x):
    """cosine, all x, keeping the loop around it scalar (see _mk_trig_lane)"""
    _ai()
    return _cosl_s(x)


@njit(**_NJIT)
def tan_lane(x):
    """tangent, all x, keeping the loop around it scalar (see _mk_trig_lane)"""
    _ai()
    return _tanl_s(x)


# kernel helpers (codegen's guarded trig blocks), bound as vm_<name> like VMATH_FUNCS
TRIG_FAST_FUNCS = {"sin_fast": sin_fast, "cos_fast": cos_fast, "tan_fast": tan_fast,
                   "trig_big": trig_big, "sin_lane": sin_lane, "cos_lane": cos_lane,
                   "tan_lane": tan_lane}


# ----------------------------------------------------------------------------
# Array helpers for generated kernels (codegen.render_fused)
# ----------------------------------------------------------------------------
#
# LLVM vectorises a loop that reads and writes several arrays only after it has proved,
# or checked at run time, that the stores cannot feed the loads. Generated kernels are
# compiled with ``noalias`` arguments (backends/cpu.py: their outputs are allocated by
# jitgrad and never overlap an input but elementwise in place), which removes those checks
# only while every pointer the loop uses is visibly derived from an argument. Numba's
# ``a.reshape(a.size)`` hides the data pointer behind a call (numba_attempt_nocopy_reshape
# writes the new array to a stack struct); the checks LLVM then emits compare pointers whose
# origin it cannot see, and they fail whenever two arrays lie within a vector's width of
# each other in memory -- e.g. an output allocated right after its input, which malloc does
# in some processes and not others: the kernel then ran its scalar loop, 5.5x slower.

from numba.core import cgutils as _cgutils  # noqa: E402
from numba.core.imputils import impl_ret_borrowed as _borrowed  # noqa: E402
from numba.np.arrayobj import make_array as _make_array, \
    populate_array as _populate_array  # noqa: E402


@intrinsic
def flat_view(typingctx, a):
    """``a`` (C-contiguous) as a 1-D view whose data pointer is ``a``'s own SSA value, so
    LLVM still sees where it comes from (unlike ``a.reshape(a.size)``, see above)."""
    if not isinstance(a, types.Array):
        return None
    retty = a.copy(ndim=1, layout="C")

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        if aty.layout != "C":  # (kernels only flatten C-contiguous arrays)
            return context.compile_internal(builder, lambda x: x.reshape(x.size), sig, args)
        src = _make_array(aty)(context, builder, args[0])
        out = _make_array(retty)(context, builder)
        _populate_array(out, data=src.data,
                        shape=_cgutils.pack_array(builder, [src.nitems]),
                        strides=_cgutils.pack_array(builder, [src.itemsize]),
                        itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent)
        return _borrowed(context, builder, retty, out._getvalue())
    return retty(a), codegen


@intrinsic
def stack_empty(typingctx, n, dtype):
    """An uninitialised 1-D array of ``n`` (a literal) ``dtype`` elements on the stack of the
    function being compiled (entry-block alloca, no meminfo): a kernel's per-block sum
    buffer without a heap allocation per call, and an object LLVM knows nothing else
    points into (no runtime overlap check against it)."""
    if isinstance(dtype, types.NumberClass):  # np.float32 & co.
        elem = dtype.instance_type
    elif isinstance(dtype, types.DType):
        elem = dtype.dtype
    else:
        return None
    if not isinstance(n, types.IntegerLiteral):
        return None
    size = n.literal_value
    retty = types.Array(elem, 1, "C")

    def codegen(context, builder, sig, args):
        lty = context.get_data_type(elem)
        ptr = _cgutils.alloca_once(builder, lty, size=size)
        out = _make_array(retty)(context, builder)
        nbytes = context.get_abi_sizeof(lty)
        intp = context.get_value_type(types.intp)
        _populate_array(out, data=ptr, shape=_cgutils.pack_array(builder, [intp(size)]),
                        strides=_cgutils.pack_array(builder, [intp(nbytes)]),
                        itemsize=intp(nbytes), meminfo=None, parent=None)
        return out._getvalue()
    return retty(n, dtype), codegen


@intrinsic
def lane_sum(typingctx, buf, n):
    """float64 sum of the float32/float64 ``buf[:n]`` in eight lanes: lane j adds the elements
    j, j+8, ... in order, the tail goes to lane 0, and the lanes are added as
    ((0+1)+(2+3))+((4+5)+(6+7)) -- the same sum, to the bit, as _prelude.block_sum, but as
    one <8 x double> add per eight elements (LLVM leaves block_sum's eight scalar chains
    scalar: 1 cycle per element, a fifth of W1's fused kernel with its three sums)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.dtype in _FLOATS
            and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        arr = _make_array(aty)(context, builder, args[0])
        i64 = ir.IntType(64)
        dbl = ir.DoubleType()
        elt = context.get_data_type(aty.dtype)
        vd = ir.VectorType(dbl, 8)
        cnt = context.cast(builder, args[1], sig.args[1], types.int64)
        n8 = builder.and_(cnt, ir.Constant(i64, -8))
        acc = _cgutils.alloca_once_value(builder, ir.Constant(vd, [0.0] * 8))
        data = arr.data
        with _cgutils.for_range_slice(builder, ir.Constant(i64, 0), n8,
                                      ir.Constant(i64, 8), i64) as (i, _):
            p = builder.bitcast(builder.gep(data, [i]), ir.PointerType(ir.VectorType(elt, 8)))
            v = builder.load(p, align=context.get_abi_sizeof(elt))
            if elt != dbl:
                v = builder.fpext(v, vd)
            builder.store(builder.fadd(builder.load(acc), v), acc)
        s0 = _cgutils.alloca_once_value(
            builder, builder.extract_element(builder.load(acc), ir.Constant(i64, 0)))
        with _cgutils.for_range_slice(builder, n8, cnt, ir.Constant(i64, 1), i64) as (i, _):
            x = builder.load(builder.gep(data, [i]))
            if elt != dbl:
                x = builder.fpext(x, dbl)
            builder.store(builder.fadd(builder.load(s0), x), s0)
        a = builder.load(acc)
        lane = [builder.load(s0)] + [builder.extract_element(a, ir.Constant(i64, j))
                                     for j in range(1, 8)]
        add = builder.fadd
        return add(add(add(lane[0], lane[1]), add(lane[2], lane[3])),
                   add(add(lane[4], lane[5]), add(lane[6], lane[7])))
    return types.float64(buf, n), codegen
