"""ops: the op registry — every primitive declared once, with its forward rule and one VJP rule
per input.

Elementwise primitives are scalar rules written in a tiny vocabulary (``+ - * /``, comparisons,
``m.exp``, ``m.where``, ...). Each rule is called with three kinds of argument:
  * ``codegen.Sym`` — renders Numba kernel source (forward and VJP kernels);
  * ``Tensor`` with ``m = tensor.TENSOR_MATH`` — builds a differentiable backward
    (``create_graph=True``, higher-order derivatives);
  * plain floats with ``m = FLOAT_MATH`` — lets each rule be checked on its own.
VJP rules take ``(m, *xs, out, g)``. Which of ``xs``/``out`` a VJP reads is found by rendering it,
so a node saves only what its backward needs (like derivatives.yaml's ``result``).

Structural primitives (reductions, matmul, movement, indexing, casts, fused nn nodes) are
:class:`Structural` records in :data:`STRUCTURAL`: a forward on arrays and one VJP written
against a vocabulary with array, Tensor and batched implementations (structural.py), plus the
markers from which their JVP, batching and Jacobian-compiler rules follow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import codegen


@dataclass(eq=False)
class Elementwise:
    name: str
    arity: int
    fwd: Callable
    vjps: tuple                    # per input: rule (m, *xs, out, g) -> grad, or None
    grad_fn: str                   # torch's node name, e.g. "MulBackward0"
    dtype_rule: str = "same"       # same | float (ints -> default float) | compare (bool out)
    bool_inputs: tuple = ()        # inputs read without casting to the compute dtype (where's cond)
    _saves: dict = field(default_factory=dict, repr=False)
    _node_cls: dict = field(default_factory=dict, repr=False)

    def saves(self, i: int) -> set:
        """Names among x0.., out that VJP i reads ('g' excluded)."""
        s = self._saves.get(i)
        if s is None:
            em, res = codegen.render_body(self.vjps[i], self.arity, with_out_and_g=True)
            s = codegen.used_names(em.lines + [em.operand(res)],
                                   [f"x{k}" for k in range(self.arity)] + ["out"])
            self._saves[i] = s
        return s


ELEMENTWISE: dict[str, Elementwise] = {}


def _ew(name, arity, fwd, vjps, grad_fn, dtype_rule="same", bool_inputs=()):
    ELEMENTWISE[name] = Elementwise(name, arity, fwd, tuple(vjps), grad_fn, dtype_rule,
                                    bool_inputs)


def _atan2_recip(m, y, x):
    d = y * y + x * x
    return m.where(d == 0, 0, 1 / d)


_2_SQRTPI = 2 / math.sqrt(math.pi)
_SQRT1_2 = 1 / math.sqrt(2.0)
_INV_SQRT_2PI = 1 / math.sqrt(2.0 * math.pi)
_DEG2RAD, _RAD2DEG = math.pi / 180.0, 180.0 / math.pi
_SQRTPI_2 = math.sqrt(math.pi) / 2

# --- arithmetic --------------------------------------------------------------------------------
_ew("add", 2, lambda m, x, y: x + y,
    [lambda m, x, y, out, g: g, lambda m, x, y, out, g: g], "AddBackward0")
_ew("sub", 2, lambda m, x, y: x - y,
    [lambda m, x, y, out, g: g, lambda m, x, y, out, g: -g], "SubBackward0")
_ew("rsub", 2, lambda m, x, y: y - x,  # scalar - tensor
    [lambda m, x, y, out, g: -g, lambda m, x, y, out, g: g], "RsubBackward1")
_ew("mul", 2, lambda m, x, y: x * y,
    [lambda m, x, y, out, g: g * y, lambda m, x, y, out, g: g * x], "MulBackward0")
_ew("div", 2, lambda m, x, y: x / y,
    [lambda m, x, y, out, g: g / y, lambda m, x, y, out, g: -g * ((x / y) / y)], "DivBackward0",
    "float")
# d/dx x**y is 0 where y == 0 (also at x == 0), and d/dy is 0 where x == 0 and y >= 0, like torch
_ew("pow", 2, lambda m, x, y: x ** y,
    [lambda m, x, y, out, g: m.where(y == 0, 0, g * y * x ** (y - 1)),
     lambda m, x, y, out, g: m.where(m.and_(x == 0, y >= 0), 0, g * out * m.log(x))],
    "PowBackward1")
# ties split the gradient evenly; with a NaN both sides get it (torch's masked_fill formula)
_ew("maximum", 2, lambda m, x, y: m.maximum(x, y),
    [lambda m, x, y, out, g: m.where(x < y, 0, m.where(x == y, g * 0.5, g)),
     lambda m, x, y, out, g: m.where(x > y, 0, m.where(x == y, g * 0.5, g))], "MaximumBackward0")
_ew("minimum", 2, lambda m, x, y: m.minimum(x, y),
    [lambda m, x, y, out, g: m.where(x > y, 0, m.where(x == y, g * 0.5, g)),
     lambda m, x, y, out, g: m.where(x < y, 0, m.where(x == y, g * 0.5, g))], "MinimumBackward0")
_ew("neg", 1, lambda m, x: -x, [lambda m, x, out, g: -g], "NegBackward0")
_ew("abs", 1, lambda m, x: m.abs(x),
    [lambda m, x, out, g: m.where(x > 0, g, m.where(x < 0, -g, 0))], "AbsBackward0")
# sign(NaN) = 0 and sign(-0.) = 0. like torch (np.sign would give nan / -0.)
_ew("sign", 1, lambda m, x: m.where(x > 0, 1, m.where(x < 0, -1, 0)),
    [lambda m, x, out, g: 0], "SignBackward0")
_ew("square", 1, lambda m, x: x * x, [lambda m, x, out, g: g * 2 * x], "PowBackward0")
_ew("reciprocal", 1, lambda m, x: 1 / x, [lambda m, x, out, g: -g * out * out],
    "ReciprocalBackward0", "float")
# relu(NaN) = NaN and relu(-0.) = -0. like torch; subgradient 0 at x == 0, 1 at NaN
_ew("relu", 1, lambda m, x: m.where(x < 0, 0, x),
    [lambda m, x, out, g: m.where(out <= 0, 0, g)], "ReluBackward0")
# clamp = min(max(x, lo), hi) like torch: with lo > hi the result (and gradient) is hi's
_ew("clamp", 3, lambda m, x, lo, hi: m.minimum(m.maximum(x, lo), hi),
    [lambda m, x, lo, hi, out, g: m.where(m.and_(x >= lo, x <= hi), g, 0),
     lambda m, x, lo, hi, out, g: m.where(m.and_(x < lo, lo <= hi), g, 0),
     lambda m, x, lo, hi, out, g: m.where(lo > hi, g, m.where(x > hi, g, 0))], "ClampBackward1")
_ew("where", 3, lambda m, c, x, y: m.where(c, x, y),
    [None, lambda m, c, x, y, out, g: m.where(c, g, 0),
     lambda m, c, x, y, out, g: m.where(c, 0, g)], "WhereBackward0", bool_inputs=(0,))

# --- transcendental ----------------------------------------------------------------------------
_ew("exp", 1, lambda m, x: m.exp(x), [lambda m, x, out, g: g * out], "ExpBackward0", "float")
_ew("log", 1, lambda m, x: m.log(x), [lambda m, x, out, g: g / x], "LogBackward0", "float")
_ew("log1p", 1, lambda m, x: m.log1p(x), [lambda m, x, out, g: g / (x + 1)], "Log1PBackward0",
    "float")
_ew("expm1", 1, lambda m, x: m.expm1(x), [lambda m, x, out, g: g * (out + 1)],
    "Expm1Backward0", "float")
_ew("sqrt", 1, lambda m, x: m.sqrt(x), [lambda m, x, out, g: g / (2 * out)], "SqrtBackward0",
    "float")
_ew("rsqrt", 1, lambda m, x: 1 / m.sqrt(x), [lambda m, x, out, g: -0.5 * g * out * out * out],
    "RsqrtBackward0", "float")
_ew("sin", 1, lambda m, x: m.sin(x), [lambda m, x, out, g: g * m.cos(x)], "SinBackward0",
    "float")
_ew("cos", 1, lambda m, x: m.cos(x), [lambda m, x, out, g: -g * m.sin(x)], "CosBackward0",
    "float")
_ew("tan", 1, lambda m, x: m.tan(x), [lambda m, x, out, g: g * (1 + out * out)],
    "TanBackward0", "float")
_ew("tanh", 1, lambda m, x: m.tanh(x), [lambda m, x, out, g: g * (1 - out * out)],
    "TanhBackward0", "float")
_ew("sigmoid", 1, lambda m, x: m.sigmoid(x), [lambda m, x, out, g: g * out * (1 - out)],
    "SigmoidBackward0", "float")
_ew("gelu", 1, lambda m, x: x * 0.5 * (1 + m.erf(x * _SQRT1_2)),
    [lambda m, x, out, g: g * (0.5 * (1 + m.erf(x * _SQRT1_2))
                               + x * _INV_SQRT_2PI * m.exp(-0.5 * x * x))],
    "GeluBackward0", "float")
_ew("silu", 1, lambda m, x: x * m.sigmoid(x),
    [lambda m, x, out, g: g * m.sigmoid(x) * (1 + x * (1 - m.sigmoid(x)))],
    "SiluBackward0", "float")

_ew("erf", 1, lambda m, x: m.erf(x), [lambda m, x, out, g: g * _2_SQRTPI * m.exp(-x * x)],
    "ErfBackward0", "float")

# --- rounding: zero gradient like torch (integer inputs never reach these rows: identity) ------
for _name, _gf in [("floor", "FloorBackward0"), ("ceil", "CeilBackward0"),
                   ("round", "RoundBackward0"), ("trunc", "TruncBackward0")]:
    _ew(_name, 1, (lambda n: lambda m, x: getattr(m, n)(x))(_name), [lambda m, x, out, g: 0], _gf)
_ew("frac", 1, lambda m, x: x - m.trunc(x), [lambda m, x, out, g: g], "FracBackward0")

# --- more transcendental (torch's derivatives.yaml formulas, so inf/NaN edges agree) ----------
_LN2, _LN10 = math.log(2.0), math.log(10.0)
_ew("log2", 1, lambda m, x: m.log2(x), [lambda m, x, out, g: g / (x * _LN2)], "Log2Backward0",
    "float")
_ew("log10", 1, lambda m, x: m.log10(x), [lambda m, x, out, g: g / (x * _LN10)],
    "Log10Backward0", "float")
_ew("exp2", 1, lambda m, x: m.exp2(x), [lambda m, x, out, g: g * out * _LN2], "Exp2Backward0",
    "float")
_ew("sinh", 1, lambda m, x: m.sinh(x), [lambda m, x, out, g: g * m.cosh(x)], "SinhBackward0",
    "float")
_ew("cosh", 1, lambda m, x: m.cosh(x), [lambda m, x, out, g: g * m.sinh(x)], "CoshBackward0",
    "float")
_ew("asinh", 1, lambda m, x: m.asinh(x), [lambda m, x, out, g: g / m.sqrt(x * x + 1)],
    "AsinhBackward0", "float")
_ew("acosh", 1, lambda m, x: m.acosh(x), [lambda m, x, out, g: g / m.sqrt(x * x - 1)],
    "AcoshBackward0", "float")
_ew("atanh", 1, lambda m, x: m.atanh(x), [lambda m, x, out, g: g / (1 - x * x)],
    "AtanhBackward0", "float")
_ew("asin", 1, lambda m, x: m.asin(x), [lambda m, x, out, g: g / m.sqrt(1 - x * x)],
    "AsinBackward0", "float")
_ew("acos", 1, lambda m, x: m.acos(x), [lambda m, x, out, g: -g / m.sqrt(1 - x * x)],
    "AcosBackward0", "float")
_ew("atan", 1, lambda m, x: m.atan(x), [lambda m, x, out, g: g / (1 + x * x)],
    "AtanBackward0", "float")
# 1/(y^2 + x^2) taken as 0 where the sum is 0 (torch: zero gradient at the origin)
_ew("atan2", 2, lambda m, y, x: m.atan2(y, x),
    [lambda m, y, x, out, g: g * x * _atan2_recip(m, y, x),
     lambda m, y, x, out, g: g * -y * _atan2_recip(m, y, x)], "Atan2Backward0", "float")
_ew("hypot", 2, lambda m, x, y: m.hypot(x, y),
    [lambda m, x, y, out, g: g * x / out, lambda m, x, y, out, g: g * y / out],
    "HypotBackward0", "float")
_ew("logaddexp", 2, lambda m, x, y: m.logaddexp(x, y),
    [lambda m, x, y, out, g: g / (1 + m.exp(y - x)),
     lambda m, x, y, out, g: g / (1 + m.exp(x - y))], "LogaddexpBackward0", "float")
_ew("deg2rad", 1, lambda m, x: x * _DEG2RAD, [lambda m, x, out, g: g * _DEG2RAD],
    "Deg2RadBackward0", "float")
_ew("rad2deg", 1, lambda m, x: x * _RAD2DEG, [lambda m, x, out, g: g * _RAD2DEG],
    "Rad2DegBackward0", "float")
_ew("erfc", 1, lambda m, x: m.erfc(x), [lambda m, x, out, g: -g * _2_SQRTPI * m.exp(-x * x)],
    "ErfcBackward0", "float")

# --- division with rounding and remainders (integer kernels take exact integer forms, see
# codegen._is_float). torch: fmod/remainder pass g to the dividend and -g * the rounded quotient
# to the divisor; the rounded divisions have zero gradient.
_ew("fmod", 2, lambda m, x, y: codegen.fmod(m, x, y),
    [lambda m, x, y, out, g: g, lambda m, x, y, out, g: -g * m.trunc(x / y)], "FmodBackward1")
_ew("remainder", 2, lambda m, x, y: codegen.remainder(m, x, y),
    [lambda m, x, y, out, g: g, lambda m, x, y, out, g: -g * m.floor_divide(x, y)],
    "RemainderBackward1")
_ew("floor_divide", 2, lambda m, x, y: m.floor_divide(x, y),
    [lambda m, x, y, out, g: 0, lambda m, x, y, out, g: 0], "DivBackward2")
_ew("div_trunc", 2, lambda m, x, y: m.div_trunc(x, y),
    [lambda m, x, y, out, g: 0, lambda m, x, y, out, g: 0], "DivBackward2")
# lerp as torch computes it: from the nearer end (exact at weight 0 and 1)
_ew("lerp", 3, lambda m, x, e, w: m.where(m.abs(w) < 0.5, x + w * (e - x), e - (e - x) * (1 - w)),
    [lambda m, x, e, w, out, g: g * (1 - w), lambda m, x, e, w, out, g: g * w,
     lambda m, x, e, w, out, g: g * (e - x)], "LerpBackward1")
# x * log(y) with 0 where x == 0 (unless y is NaN); torch's gradient masks x == 0 & y <= 0
_ew("xlogy", 2, lambda m, x, y: m.where(y != y, math.nan, m.where(x == 0, 0, x * m.log(y))),
    [lambda m, x, y, out, g: m.where(m.and_(x == 0, y <= 0), 0, m.where(
        y != y, math.nan, m.where(g == 0, 0, g * m.log(y)))),
     lambda m, x, y, out, g: g * x / y], "XlogyBackward0", "float")
_ew("xlog1py", 2, lambda m, x, y: m.where(y != y, math.nan, m.where(x == 0, 0, x * m.log1p(y))),
    [lambda m, x, y, out, g: m.where(m.and_(x == 0, y <= -1), 0, m.where(
        y != y, math.nan, m.where(g == 0, 0, g * m.log1p(y)))),
     lambda m, x, y, out, g: g * x / (y + 1)], "SpecialXlog1PyBackward0", "float")
# d/dx copysign(x, y) = out / x, 0 at x == 0 (torch); nothing flows to y
_ew("copysign", 2, lambda m, x, y: m.copysign(x, y),
    [lambda m, x, y, out, g: m.where(x == 0, 0, g * (out / x)), lambda m, x, y, out, g: 0],
    "CopysignBackward0", "float")
# logit without eps (eps clamps first, in functional_ops): NaN gradient outside [0, 1] (torch)
_ew("logit", 1, lambda m, x: m.log(x / (1 - x)),
    [lambda m, x, out, g: m.where(x < 0, math.nan, m.where(x > 1, math.nan,
                                                         g / (x * (1 - x))))],
    "LogitBackward0", "float")
def _sinc_vjp(m, x, out, g):
    """sinc'(x) = pi (z cos z - sin z) / z^2 with z = pi x. For |z| < 0.3 the difference cancels
    (float32 kept ~5 bits at x ~ 1e-3), so there it is the Taylor series -z/3 + z^3/30 - z^5/840
    + z^7/45360 - z^9/3991680 (the next term is < 4e-14 relative there)."""
    z = x * math.pi
    z2 = z * z
    series = math.pi * z * (-1.0 / 3.0 + z2 * (1.0 / 30.0 + z2 * (-1.0 / 840.0 + z2 * (
        1.0 / 45360.0 - z2 / 3991680.0))))
    full = (z * m.cospi(x) - m.sinpi(x)) / (x * z)
    # (below |z| = 1e-4 the formula itself, as torch computes it: 0 where cos z and sin z / z
    # round to 1, torch's value there)
    tiny = m.where(x * z == 0, 0.0, full)  # (0 where x^2 underflows, as torch: not 0 / 0)
    return g * m.where(z2 < 0.09, m.where(z2 < 1e-8, tiny, series), full)


_ew("sinc", 1, lambda m, x: codegen.sinc(m, x), [_sinc_vjp], "SincBackward0", "float")
_ew("lgamma", 1, lambda m, x: m.lgamma(x), [lambda m, x, out, g: g * m.digamma(x)],
    "LgammaBackward0", "float")
_ew("digamma", 1, lambda m, x: m.digamma(x), [lambda m, x, out, g: g * m.polygamma(1, x)],
    "DigammaBackward0", "float")
# the order n is read as given (an integer operand, not promoted or cast: bool_inputs)
_ew("polygamma", 2, lambda m, n, x: m.polygamma(n, x),
    [None, lambda m, n, x, out, g: g * m.polygamma(n + 1, x)], "PolygammaBackward0", "float",
    bool_inputs=(0,))
_ew("erfinv", 1, lambda m, x: m.erfinv(x), [lambda m, x, out, g: g * _SQRTPI_2 * m.exp(out * out)],
    "ErfinvBackward0", "float")

# --- bitwise (integer and bool tensors; not differentiable) ------------------------------------
for _name in ("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
              "bitwise_right_shift"):
    _ew(_name, 2, (lambda n: lambda m, x, y: getattr(m, n)(x, y))(_name), [None, None], "")
_ew("bitwise_not", 1, lambda m, x: m.bitwise_not(x), [None], "")

# --- comparisons (not differentiable; bool output) ---------------------------------------------
for _name, _fn in [("eq", lambda m, x, y: x == y), ("ne", lambda m, x, y: x != y),
                   ("lt", lambda m, x, y: x < y), ("le", lambda m, x, y: x <= y),
                   ("gt", lambda m, x, y: x > y), ("ge", lambda m, x, y: x >= y)]:
    _ew(_name, 2, _fn, [None, None], "", "compare")
_ew("logical_and", 2, lambda m, x, y: m.and_(x, y), [None, None], "", "compare",
    bool_inputs=(0, 1))
_ew("logical_or", 2, lambda m, x, y: m.or_(x, y), [None, None], "", "compare",
    bool_inputs=(0, 1))
_ew("logical_xor", 2, lambda m, x, y: (x != 0) != (y != 0), [None, None], "", "compare",
    bool_inputs=(0, 1))

# --- losses written as elementwise primitives with their own (numerically safe) rules ----------
# max(z, 0) - z*y + log1p(exp(-|z|)): never overflows for large |z|
_ew("bce_with_logits", 2,
    lambda m, z, y: m.maximum(z, 0) - z * y + m.log1p(m.exp(-m.abs(z))),
    [lambda m, z, y, out, g: g * (m.sigmoid(z) - y), lambda m, z, y, out, g: -g * z],
    "BinaryCrossEntropyWithLogitsBackward0", "float")
# torch clamps each log term at -100 and the gradient denominator at 1e-12
_ew("bce", 2,
    lambda m, p, y: -(y * m.maximum(m.log(p), -100) + (1 - y) * m.maximum(m.log(1 - p), -100)),
    [lambda m, p, y, out, g: g * (p - y) / m.maximum((1 - p) * p, 1e-12),
     lambda m, p, y, out, g: g * (m.maximum(m.log(1 - p), -100) - m.maximum(m.log(p), -100))],
    "BinaryCrossEntropyBackward0", "float")
_ew("mse", 2, lambda m, x, y: (x - y) * (x - y),
    [lambda m, x, y, out, g: 2 * g * (x - y), lambda m, x, y, out, g: -2 * g * (x - y)],
    "MseLossBackward0", "float")


class _FloatMath:
    """The rule vocabulary on Python floats (rule unit tests)."""
    exp = staticmethod(math.exp)
    log = staticmethod(lambda x: math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan))
    log1p = staticmethod(lambda x: math.log1p(x) if x > -1 else
                         (-math.inf if x == -1 else math.nan))
    expm1 = staticmethod(math.expm1)
    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    tan = staticmethod(math.tan)
    tanh = staticmethod(math.tanh)
    sqrt = staticmethod(lambda x: math.sqrt(x) if x >= 0 else math.nan)
    erf = staticmethod(math.erf)
    erfc = staticmethod(math.erfc)
    floor = staticmethod(lambda x: float(math.floor(x)))
    ceil = staticmethod(lambda x: float(math.ceil(x)))
    round = staticmethod(lambda x: float(round(x)))    # half to even, like torch
    trunc = staticmethod(lambda x: float(math.trunc(x)))
    log2 = staticmethod(lambda x: math.log2(x) if x > 0 else (-math.inf if x == 0 else math.nan))
    log10 = staticmethod(lambda x: math.log10(x) if x > 0 else
                         (-math.inf if x == 0 else math.nan))
    exp2 = staticmethod(lambda x: 2.0 ** x)
    sinh = staticmethod(math.sinh)
    cosh = staticmethod(math.cosh)
    asinh = staticmethod(math.asinh)
    acosh = staticmethod(lambda x: math.acosh(x) if x >= 1 else math.nan)
    atanh = staticmethod(lambda x: math.atanh(x) if -1 < x < 1 else
                         (math.copysign(math.inf, x) if abs(x) == 1 else math.nan))
    asin = staticmethod(lambda x: math.asin(x) if -1 <= x <= 1 else math.nan)
    acos = staticmethod(lambda x: math.acos(x) if -1 <= x <= 1 else math.nan)
    atan = staticmethod(math.atan)
    atan2 = staticmethod(math.atan2)
    hypot = staticmethod(math.hypot)
    logaddexp = staticmethod(lambda a, b: a if a == b else
                             max(a, b) + math.log1p(math.exp(-abs(a - b))))
    abs = staticmethod(abs)
    sigmoid = staticmethod(lambda x: 1 / (1 + math.exp(-x)) if x > -700 else 0.0)
    sign = staticmethod(lambda x: float((x > 0) - (x < 0)))
    where = staticmethod(lambda c, a, b: a if c else b)
    and_ = staticmethod(lambda a, b: a and b)
    maximum = staticmethod(lambda a, b: a if (a > b or a != a) else b)
    minimum = staticmethod(lambda a, b: a if (a < b or a != a) else b)
    or_ = staticmethod(lambda a, b: a or b)
    sinpi = staticmethod(lambda x: _np_eval(lambda v: np.sin(v * math.pi), x))
    cospi = staticmethod(lambda x: _np_eval(lambda v: np.cos(v * math.pi), x))
    fmod = staticmethod(lambda a, b: _np_eval(np.fmod, a, b))
    floor_divide = staticmethod(lambda a, b: _np_eval(codegen.floor_divide, _NP_MATH, a, b))
    div_trunc = staticmethod(lambda a, b: _np_eval(lambda x, y: np.trunc(x / y), a, b))
    copysign = staticmethod(math.copysign)
    lgamma = staticmethod(lambda x: math.inf if (x <= 0 and x == math.floor(x)) or
                          math.isinf(x) else math.lgamma(x))
    digamma = staticmethod(lambda x: _np_eval(codegen.digamma, _NP_MATH, x))
    erfinv = staticmethod(lambda x: _np_eval(codegen.erfinv, _NP_MATH, x))
    polygamma = staticmethod(codegen.polygamma_py)
    bitwise_and = staticmethod(lambda a, b: float(int(a) & int(b)))
    bitwise_or = staticmethod(lambda a, b: float(int(a) | int(b)))
    bitwise_xor = staticmethod(lambda a, b: float(int(a) ^ int(b)))
    bitwise_not = staticmethod(lambda a: float(~int(a)))
    bitwise_left_shift = staticmethod(lambda a, b: float(_wrap64(int(a) << int(b)))
                                      if 0 <= b < 64 else 0.0)
    bitwise_right_shift = staticmethod(lambda a, b: float(int(a) >> (int(b) if 0 <= b < 64
                                                                      else 63)))


def _wrap64(v):
    return (v + 2 ** 63) % 2 ** 64 - 2 ** 63


class _NpMath:
    """The compound rules (codegen's "Compound functions") on NumPy float64 scalars: every branch of ``where`` is
    evaluated, so its functions must not raise (``math.floor(nan)`` would)."""
    fmod = staticmethod(np.fmod)
    floor = staticmethod(np.floor)
    trunc = staticmethod(np.trunc)
    round = staticmethod(np.rint)
    copysign = staticmethod(np.copysign)
    log = staticmethod(np.log)
    exp = staticmethod(np.exp)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    erf = staticmethod(lambda x: np.float64(math.erf(x)))
    erfc = staticmethod(lambda x: np.float64(math.erfc(x)))
    lgamma = staticmethod(lambda x: np.float64(_FloatMath.lgamma(float(x))))
    where = staticmethod(lambda c, a, b: a if c else b)
    and_ = staticmethod(lambda a, b: a and b)


_NP_MATH = _NpMath()


def _np_eval(fn, *args):
    """fn on float64 NumPy scalars (IEEE results for /0, inf - inf: no exceptions)."""
    with np.errstate(all="ignore"):
        args = [a if isinstance(a, _NpMath) else np.float64(a) for a in args]
        return float(fn(*args))


FLOAT_MATH = _FloatMath()

# --- structural primitives ---------------------------------------------------------------------
# Reductions, movement, indexing, matmul, softmax, casts, fused nn nodes: one record each, built by
# ``@structural`` from a small class body in functional_ops.py / _tensor.py / nn/functional.py.


@dataclass(eq=False)
class Structural:
    """One structural primitive, every rule written once.

    * ``forward(ctx, *arrays, **params) -> array``: NumPy-named calls, or the backend
      interface (``backends.backend_of(x).concatenate(...)``, backends/__init__.py INTERFACE);
      ``gpu=True`` says it runs on every device's arrays as written. A body function named
      ``<device>_forward`` (``cuda_forward``) is that device's own entry instead, for ops whose
      CPU forward calls a CPU-only kernel. ``forwards`` maps each device key to its entry; a
      device missing there raises a clear NotImplementedError.
    * ``vjp(V, ctx, g) -> grads`` (one per input, None for no gradient): written against the
      vocabulary ``V`` (structural.py), which has an array implementation (first-order backward,
      no Tensor bookkeeping), a Tensor one (``create_graph``, GPU) and a batched one (whole
      Jacobians: every cotangent has a leading axis B, primals a leading 1). The rule reads
      ``ctx.shapes`` (input shapes) and the op's params (on ``ctx`` by name), plus what
      ``forward`` or ``save=True`` left on ctx.
    * ``linear``: "all" -- jointly linear in its tensor inputs (JVP = the op on the tangents);
      a tuple -- linear in each listed input on its own (matmul: bilinear, JVP = sum over
      inputs of the op with that input replaced by its tangent); () -- not linear: ``jvp``.
    * ``batch(params, B, in_shapes) -> params``: the same op on inputs with a leading batch
      axis B (an axis shift; None when the batch axis would move); ``batch=None``: the batched
      transforms fall back to the autograd engine.
    * ``vmap(args, batched, params, B)``: the op with a batch axis on the flagged args only,
      when params alone cannot say it (matmul's 1-D operands, expand's rank).
    * ``jvp(ctx, xs, out, ts)``: bespoke batched JVP of a non-linear op (xs/out lifted to a
      leading 1, ts batched, params shifted on ctx).
    * ``index_map``: what the Jacobian compiler needs: "gather" (the forward, run on flat index
      arrays, gives each output element's source element), "reduce" (a reduction over
      ``params["axes"]``: each input element adds into its keepdim output element, divided by
      ``divisor``), "bilinear" (matmul's loops) or None (not compiled: the batched interpreter
      runs it).
    * ``readers``: public functions that read a traced tensor's ``_data`` for shapes only.
    """
    name: str
    grad_fn: str
    forward: Callable | None = None
    vjp: Callable | None = None
    linear: object = ()
    batch: Callable | None = None
    vmap: Callable | None = None
    jvp: Callable | None = None
    index_map: str | None = None
    divisor: Callable | None = None  # index_map "reduce": (params, in_shape) -> n (mean) or None
    gpu: bool = False
    device_forwards: dict = field(default_factory=dict)  # device -> its own forward
    lazy_forward: Callable | None = None
    differentiable: bool = True
    arrays: bool = True              # vjp runs on arrays for a first-order CPU backward
    readers: tuple = ()

    def __post_init__(self):
        # device key -> the forward that runs there (the device of the inputs picks it)
        self.forwards = {"cpu": self.forward}
        if self.gpu:
            self.forwards["cuda"] = self.forward
        self.forwards.update(self.device_forwards)

    @property
    def op_name(self):
        return self.name

    @property
    def __name__(self):
        return self.name

    def __repr__(self):
        return f"<structural {self.name} ({self.grad_fn})>"


STRUCTURAL: dict[str, Structural] = {}
_FIELDS = set(Structural.__dataclass_fields__) - {"name", "grad_fn"}


def structural(name: str, grad_fn: str, register: bool = True, **fields):
    """Build a :class:`Structural` record from a class body (its functions are the record's
    ``forward``/``vjp``/... fields, keyword arguments the others) and register it."""
    def deco(cls):
        items = {k: (v.__func__ if isinstance(v, staticmethod) else v)
                 for k, v in vars(cls).items() if not k.startswith("__")}
        body = {k: v for k, v in items.items() if k in _FIELDS}
        devs = {k[:-len("_forward")]: v for k, v in items.items()
                if k.endswith("_forward") and k not in _FIELDS}  # cuda_forward -> "cuda"
        unknown = set(items) - _FIELDS - {f"{d}_forward" for d in devs}
        if unknown:
            raise TypeError(f"structural {name}: unknown record fields {sorted(unknown)}")
        rec = Structural(name, grad_fn, **{**body, **fields, "device_forwards": devs})
        rec.__doc__ = cls.__doc__
        if register:
            STRUCTURAL[name] = rec
        return rec
    return deco
