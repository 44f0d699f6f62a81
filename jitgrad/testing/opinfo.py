"""opinfo: the per-op test table. One :class:`OpInfo` row per registry primitive (keyed like
``ops.ELEMENTWISE`` / ``ops.STRUCTURAL``) says how to call the op through the public API, what
NumPy computes for it, on which shapes and domain, which inputs are differentiable, and how far
its derivatives are expected to work. ``tests/test_ops.py`` and ``tests/test_rules.py`` are
generated from it; :data:`VARIANTS` holds extra rows (other call paths of the same primitives).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

import jitgrad
from jitgrad import ops
from jitgrad.nn import functional as F

SAME = "same"  # torch= SAME: the row's own callable works on torch tensors too (method syntax)


@dataclass
class OpInfo:
    name: str                          # registry key (or, for VARIANTS, a unique variant name)
    op: Callable                       # public jitgrad callable; tensors passed positionally
    ref: Callable                      # NumPy reference on float64 (or bool) arrays
    shapes: list                       # samples: one tuple of input shapes per sample
    domain: object = (-2.0, 2.0)       # (lo, hi) for every input, or a list with one per input
    kinds: tuple | None = None         # per input: 'float' | 'bool' | 'discrete' (ties, zeros)
    values: tuple = (-1.0, -0.5, 0.0, 0.5, 1.0)  # what 'discrete' inputs are drawn from
    diff: tuple | None = None          # per input: differentiable (default: every float input)
    grad_order: int = 2                # 0 none, 1 first derivatives, 2 second derivatives too
    torch: object = None               # torch_module -> callable on torch tensors, SAME, or None
    out_dtype: str = "same"            # 'same' (input float dtype) | 'bool' | 'int64'
    elementwise: bool = False          # gets non-contiguous-layout tests
    binary: bool = False               # tensor (+) tensor / scalar: dtype-promotion tests
    scalar_operand: bool = True        # binary rows: the op also takes a Python number operand
    numeric_grad: bool = True          # False: derivative undefined by central differences (ties)
    rtol: float = 1e-10                # float64 forward vs ref / torch
    atol: float = 1e-12
    rtol32: float = 1e-5               # float32 forward vs ref / torch
    atol32: float = 1e-6
    grad_rtol: float = 1e-3            # gradcheck (float64 central differences)
    grad_atol: float = 1e-5
    f32_samples: int = 2               # float32 forward on the first n samples (compile time);
                                       # float32 torch parity on the first one
    variant_of: str | None = None      # VARIANTS: the registry row exercised
    notes: str = ""

    def __post_init__(self):
        n = len(self.shapes[0])
        if self.kinds is None:
            self.kinds = ("float",) * n
        if self.diff is None:
            self.diff = tuple(k != "bool" and self.grad_order > 0 for k in self.kinds)
        if isinstance(self.domain, tuple):
            self.domain = [self.domain] * n

    @property
    def row(self) -> str:
        return self.variant_of or self.name

    def arrays(self, shapes, rng) -> list:
        """Float64 (or bool) NumPy inputs for one sample, drawn from the domain."""
        out = []
        for shape, kind, (lo, hi) in zip(shapes, self.kinds, self.domain):
            if kind == "bool":
                out.append(np.asarray(rng.random(shape) < 0.5))
            elif kind == "discrete":
                out.append(np.asarray(rng.choice(np.asarray(self.values, np.float64), shape)))
            else:
                out.append(np.asarray(rng.uniform(lo, hi, shape)))
        return out

    def torch_op(self, torch):
        if self.torch is None:
            return None
        return self.op if self.torch is SAME else self.torch(torch)


def _t(path):
    """torch= helper: ``_t("nn.functional.gelu")`` resolves torch.nn.functional.gelu lazily."""
    def get(torch):
        obj = torch
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj
    return get


def _lib(x):
    """(module, nn.functional) of the library x belongs to: lets one lambda serve jitgrad and
    torch where a row needs constants (targets, weights) built in the same library."""
    if isinstance(x, jitgrad.Tensor):
        return jitgrad, F
    import torch
    return torch, torch.nn.functional


def _const(x, arr):
    lib, _ = _lib(x)
    t = lib.from_numpy(np.array(arr, order="C"))
    return t.to(x.device) if lib is jitgrad and x.is_cuda else t


# --- ops_api.linalg helpers --------------------------------------------------------------------
SQUARE = [((3, 3),), ((2, 3, 3),)]


def _wc(x):
    """A well-conditioned matrix from a uniform one: x + 2n I (either library, or NumPy)."""
    n = x.shape[-1]
    if isinstance(x, np.ndarray):
        return x + 2 * n * np.eye(n)
    return x + _const(x, 2 * n * np.eye(n, dtype=np.float64)).to(x.dtype)


def _spd(x):
    """A symmetric positive-definite matrix from a uniform one: x x^T + n I."""
    n = x.shape[-1]
    if isinstance(x, np.ndarray):
        return x @ np.swapaxes(x, -1, -2) + n * np.eye(n)
    return x @ x.mT + _const(x, n * np.eye(n, dtype=np.float64)).to(x.dtype)


def _sym(x):
    return (x + np.swapaxes(x, -1, -2)) / 2 if isinstance(x, np.ndarray) else (x + x.mT) / 2


def _qr_both(qr):
    q, r = qr
    return q[..., :, :1] * r[..., :1, :] + q.sum() * 0.5 + r.sum() * 0.25


def _eig_inv(wv):
    w, v = wv
    return v * v * w[..., None, :] + w[..., :, None]


def _svd_inv(usv):
    u, s, vh = usv
    return (u[..., :, :1] * vh[..., :1, :]) * s[..., :1, None] + s[..., -1:, None]


def _np_solve(a, b):
    if b.ndim == 1 or (b.ndim == a.ndim - 1 and b.shape == a.shape[:-1]):
        return np.linalg.solve(a, b[..., None])[..., 0]
    return np.linalg.solve(a, b)


# --- NumPy references ------------------------------------------------------------------------
def _median_ref(x):
    """torch's median of all elements: the lower of the two middle values."""
    a = np.sort(x.reshape(-1))
    return np.asarray(a[(a.size - 1) // 2])


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _gelu(x):
    return x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def _diag_embed_ref(x):
    """diag_embed(x, offset=-1, dim1=0, dim2=-1): out[i + 1, ..., i] = x[..., i]."""
    n = x.shape[-1] + 1
    out = np.zeros((n,) + x.shape[:-1] + (n,), x.dtype)
    for i in range(x.shape[-1]):
        out[i + 1, ..., i] = x[..., i]
    return out


def _bce_wl(z, y):
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def _bce(p, y):
    return -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))


def _logsumexp(x, axis):
    if x.ndim == 0:
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True) if x.size else np.zeros(x.shape[:-1] + (1,))
    return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m, axis)


def _softmax(x, axis=-1):
    if x.ndim == 0:
        return np.ones_like(x)
    e = np.exp(x - (np.max(x, axis, keepdims=True) if x.size else 0))
    return e / np.sum(e, axis, keepdims=True)


def _log_softmax(x, axis=-1):
    if x.ndim == 0:
        return np.zeros_like(x)
    return x - _logsumexp(x, axis)[..., None]


def _nll_target(shape):
    """Class indices for an (N, C, ...) or (C,) input: deterministic, every class used."""
    if len(shape) == 1:
        return np.array(1, np.int64)
    n, c, rest = shape[0], shape[1], shape[2:]
    return (np.arange(int(np.prod((n,) + rest))).reshape((n,) + rest) * 7 + 1) % c


def _nll_ref(x, weight=None, ignore_index=-100, reduction="mean"):
    t = _nll_target(x.shape)
    if x.ndim == 1:
        x, t = x[None], t.reshape(1)
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    valid = t != ignore_index
    tt = np.where(valid, t, 0)
    picked = np.take_along_axis(x, tt[:, None], axis=1)[:, 0]
    wt = np.where(valid, w[tt], 0.0)
    losses = -picked * wt
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / wt.sum()


def _nll(x):
    _, fn = _lib(x)
    return fn.nll_loss(x, _const(x, _nll_target(tuple(x.shape))))


_NLL_W = np.array([0.5, 2.0, 1.0, 1.5])


def _nll_weighted(x):
    _, fn = _lib(x)
    return fn.nll_loss(x, _const(x, _nll_target(tuple(x.shape))),
                       weight=_const(x, _NLL_W.astype(np.asarray(x.detach().cpu()).dtype)),
                       ignore_index=2, reduction="mean")


def _cross_entropy(x):
    _, fn = _lib(x)
    return fn.cross_entropy(x, _const(x, _nll_target(tuple(x.shape))))


def _cast_round_trip(x):
    """x cast to the other float dtype and back: two ToCopy nodes (float64 values round to
    float32 on the way)."""
    lib, _ = _lib(x)
    other = lib.float64 if x.dtype == lib.float32 else lib.float32
    return x.to(other).to(x.dtype)


def _device_round_trip(x):
    """x copied to the GPU and back (two to_device nodes) where a device or the CUDA simulator
    is available (tests/test_cuda.py); on a machine without one this row checks clone."""
    lib, _ = _lib(x)
    if lib is jitgrad and jitgrad.cuda.is_available():
        return x.cuda().cpu()
    return x.clone()


def _linear(x, w, b):
    _, fn = _lib(x)
    return fn.linear(x, w, b)


# --- nn.functional windows (issue 16): the im2col / col2im records --------------------------
def _unfold(x):
    _, fn = _lib(x)
    return fn.unfold(x, 2, padding=1, stride=(1, 2))


def _unfold_ref(x):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = h + 1, (w + 2 - 2) // 2 + 1
    cols = [xp[:, :, i:i + oh, j:j + 2 * ow - 1:2] for i in range(2) for j in range(2)]
    return np.stack(cols, 2).reshape(n, c * 4, oh * ow)


def _fold(x):
    _, fn = _lib(x)
    return fn.fold(x, (2, 3), 2, padding=1, stride=(1, 2))


def _fold_ref(x):
    n, ck, _ = x.shape
    out = np.zeros((n, ck // 4, 4, 6), x.dtype)  # padded (2 + 2, 3 + 2)... cropped below
    cols = x.reshape(n, ck // 4, 2, 2, 3, 2)
    for i in range(2):
        for j in range(2):
            out[:, :, i:i + 3, j:j + 3:2] += cols[:, :, i, j]
    return out[:, :, 1:3, 1:4]


def _setitem(x, v):
    y = x.clone()
    y[1:, :2] = v
    return y


def _setitem_ref(x, v):
    y = x.copy()
    y[1:, :2] = v
    return y


def _prod_others_ref(x):
    return np.prod(x, axis=(0, 2))


_SR_IDX = np.array([[0, 1, 0, 2], [2, 1, 0, 0]])  # scatter_reduce rows: repeats, one untouched


def _scatter_reduce_ref(x, s, ufunc, include_self):
    out = x.copy()
    cols = np.broadcast_to(np.arange(x.shape[1]), _SR_IDX.shape)
    if not include_self:
        out[_SR_IDX, cols] = ufunc.identity if ufunc.identity is not None else \
            (-np.inf if ufunc is np.maximum else np.inf)
    ufunc.at(out, (_SR_IDX, cols), s)
    return out


def _index_put_ref(x, v):
    out = x.copy()
    out[np.array([2, 0])] = v
    return out


def _index_put(x, v):
    return _lib(x)[0].index_put(x, (_const(x, np.array([2, 0])),), v)


def _scatter_reduce(reduce, include_self=True):
    def f(x, s):
        return _lib(x)[0].scatter_reduce(x, 0, _const(x, _SR_IDX), s, reduce,
                                         include_self=include_self)
    return f



def _rev(x):
    return x.permute(tuple(reversed(range(x.dim()))))


# --- shape sets ------------------------------------------------------------------------------
UNARY = [((3, 4),), ((),), ((0, 3),)]
BINARY = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((0, 3), (0, 3))]
TERNARY = [((3, 4),) * 3, ((3, 1), (1, 4), ()), ((),) * 3, ((0, 3),) * 3]
# torch's clamp backward cannot broadcast x itself, so x keeps the full shape
CLAMP = [((3, 4),) * 3, ((3, 4), (3, 1), (1, 4)), ((2, 3), (), ()), ((),) * 3, ((0, 3),) * 3]
SAME_SHAPE = [((3, 4), (3, 4)), ((), ()), ((0, 3), (0, 3))]   # losses: target matches input
REDUCE = [((3, 4),), ((),), ((0, 3),)]

_POS = (0.1, 4.0)


def _unary(name, ref, domain=(-2.0, 2.0), torch=None, **kw):
    return OpInfo(name, getattr(jitgrad, name), ref, UNARY, domain,
                  torch=torch or _t(name), elementwise=True, **kw)


def _binary(name, op, ref, domain=(-2.0, 2.0), torch=None, **kw):
    return OpInfo(name, op, ref, BINARY, domain, torch=torch or _t(name), elementwise=True,
                  binary=True, **kw)


def _sp():
    import scipy.special  # (a test dependency; the references of the special functions)
    return scipy.special


def _lerp(x, e, w):
    return np.where(np.abs(w) < 0.5, x + w * (e - x), e - (e - x) * (1 - w))


def _lshift(a, b):
    """torch: a count < 0 or >= 64 shifts everything out."""
    with np.errstate(all="ignore"):
        return np.where((b < 0) | (b >= 64), 0, np.left_shift(a, np.clip(b, 0, 63)))


def _rshift(a, b):
    return np.right_shift(a, np.where((b < 0) | (b >= 64), 63, b))


_TRIGAMMA_RTOL = 1e-9  # torch's float64 trigamma (digamma's gradient) is good to ~5e-10
_INT_VALUES = (-7.0, -3.0, -1.0, 0.0, 1.0, 2.0, 5.0, 12.0)


def _bitwise(name, ref, unary=False, values=_INT_VALUES):
    """Bitwise rows: integer operands (the float samples' integral values cast to int64)."""
    fn = getattr(jitgrad, name)
    if unary:
        return OpInfo(name, lambda x: fn(x.long()), lambda x: ref(x.astype(np.int64)),
                      UNARY[:2], kinds=("discrete",), values=values, grad_order=0,
                      torch=lambda T: lambda x: getattr(T, name)(x.long()), out_dtype="int64",
                      elementwise=True, f32_samples=1)
    return OpInfo(name, lambda x, y: fn(x.long(), y.long()),
                  lambda x, y: ref(x.astype(np.int64), y.astype(np.int64)), BINARY[:3],
                  kinds=("discrete", "discrete"), values=values, grad_order=0,
                  torch=lambda T: lambda x, y: getattr(T, name)(x.long(), y.long()),
                  out_dtype="int64", elementwise=True, f32_samples=1)


def _compare(name, ref):
    return OpInfo(name, getattr(jitgrad, name), ref, BINARY[:3], kinds=("discrete", "discrete"),
                  grad_order=0, torch=_t(name), out_dtype="bool", elementwise=True, binary=True,
                  f32_samples=1)


_ROWS = [
    # --- arithmetic ----------------------------------------------------------------------------
    _binary("add", jitgrad.add, np.add),
    _binary("sub", jitgrad.sub, np.subtract),
    OpInfo("rsub", lambda x: 1.5 - x, lambda x: 1.5 - x, UNARY, torch=SAME, elementwise=True,
           notes="scalar - tensor: the rsub row via Tensor.__rsub__"),
    _binary("mul", jitgrad.mul, np.multiply),
    _binary("div", jitgrad.div, np.divide, domain=[(-2.0, 2.0), (0.5, 2.0)]),
    _binary("pow", jitgrad.pow, np.power, domain=[(0.5, 2.0), (-1.5, 1.5)]),
    _binary("maximum", jitgrad.maximum, np.maximum, scalar_operand=False),
    _binary("minimum", jitgrad.minimum, np.minimum, scalar_operand=False),
    _unary("neg", np.negative),
    _unary("abs", np.abs),
    _unary("sign", np.sign),
    _unary("square", np.square),
    _unary("reciprocal", np.reciprocal, (0.5, 2.0)),
    _unary("relu", lambda x: np.maximum(x, 0)),
    OpInfo("clamp", jitgrad.clamp, lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), CLAMP,
           [(-2.0, 2.0), (-1.0, -0.25), (0.25, 1.0)], torch=_t("clamp"), elementwise=True),
    OpInfo("where", jitgrad.where, np.where, TERNARY, kinds=("bool", "float", "float"),
           torch=_t("where"), elementwise=True),
    # --- transcendental ------------------------------------------------------------------------
    _unary("exp", np.exp),
    _unary("log", np.log, _POS),
    _unary("log1p", np.log1p, (-0.5, 3.0)),
    _unary("expm1", np.expm1),
    _unary("sqrt", np.sqrt, _POS),
    _unary("rsqrt", lambda x: 1 / np.sqrt(x), _POS),
    _unary("sin", np.sin, (-3.0, 3.0)),
    _unary("cos", np.cos, (-3.0, 3.0)),
    _unary("tan", np.tan, (-1.2, 1.2)),
    _unary("tanh", np.tanh, (-3.0, 3.0)),
    _unary("sigmoid", _sigmoid, (-4.0, 4.0)),
    OpInfo("gelu", F.gelu, _gelu, UNARY, (-3.0, 3.0), torch=_t("nn.functional.gelu"),
           elementwise=True),
    OpInfo("silu", F.silu, lambda x: x * _sigmoid(x), UNARY, (-3.0, 3.0),
           torch=_t("nn.functional.silu"), elementwise=True),
    _unary("erf", _erf),
    _unary("erfc", np.vectorize(math.erfc, otypes=[np.float64])),
    _unary("floor", np.floor),
    _unary("ceil", np.ceil),
    _unary("round", np.rint),
    _unary("trunc", np.trunc),
    _unary("frac", lambda x: x - np.trunc(x)),
    _unary("log2", np.log2, _POS),
    _unary("log10", np.log10, _POS),
    _unary("exp2", np.exp2),
    _unary("sinh", np.sinh),
    _unary("cosh", np.cosh),
    _unary("asinh", np.arcsinh),
    _unary("acosh", np.arccosh, (1.2, 3.0)),
    _unary("atanh", np.arctanh, (-0.8, 0.8)),
    _unary("asin", np.arcsin, (-0.8, 0.8)),
    _unary("acos", np.arccos, (-0.8, 0.8)),
    _unary("atan", np.arctan),
    _binary("atan2", jitgrad.atan2, np.arctan2, domain=[(-2.0, 2.0), (0.25, 2.0)],
            scalar_operand=False),
    _binary("hypot", jitgrad.hypot, np.hypot, domain=[(-2.0, 2.0), (0.25, 2.0)],
            scalar_operand=False),
    _binary("logaddexp", jitgrad.logaddexp, np.logaddexp, scalar_operand=False),
    _unary("deg2rad", np.deg2rad, (-3.0, 3.0)),
    _unary("rad2deg", np.rad2deg, (-3.0, 3.0)),
    # rounding divisions and remainders (divisors kept away from 0; integer semantics:
    # tests/test_elementwise_division_special.py and the torch conformance suite)
    _binary("fmod", jitgrad.fmod, np.fmod, domain=[(-3.0, 3.0), (0.4, 2.0)]),
    _binary("remainder", jitgrad.remainder, np.mod, domain=[(-3.0, 3.0), (0.4, 2.0)]),
    _binary("floor_divide", jitgrad.floor_divide, np.floor_divide,
            domain=[(-3.0, 3.0), (0.4, 2.0)],
            torch=lambda T: lambda x, y: T.div(x, y, rounding_mode="floor")),
    OpInfo("div_trunc", lambda x, y: jitgrad.div(x, y, rounding_mode="trunc"),
           lambda x, y: np.trunc(x / y), BINARY, [(-3.0, 3.0), (0.4, 2.0)], elementwise=True,
           torch=lambda T: lambda x, y: T.div(x, y, rounding_mode="trunc")),
    OpInfo("lerp", jitgrad.lerp, _lerp, TERNARY, [(-2.0, 2.0), (-2.0, 2.0), (-0.5, 1.5)],
           torch=_t("lerp"), elementwise=True),
    _binary("xlogy", jitgrad.xlogy, lambda x, y: np.where(x == 0, 0.0, x * np.log(y)),
            domain=[(-2.0, 2.0), (0.25, 3.0)]),
    OpInfo("xlog1py", jitgrad.special.xlog1py,
           lambda x, y: np.where(x == 0, 0.0, x * np.log1p(y)), BINARY,
           [(-2.0, 2.0), (-0.5, 2.0)], torch=_t("special.xlog1py"), elementwise=True,
           binary=True),
    _binary("copysign", jitgrad.copysign, np.copysign),
    OpInfo("logit", jitgrad.logit, lambda x: np.log(x / (1 - x)), UNARY, (0.05, 0.95),
           torch=_t("logit"),
           notes="not in the special-values table: torch's own gradient at x = -0.0 is +inf in "
                 "float32 and -inf in (vectorised) float64; jitgrad gives -inf (IEEE g / -0)"),
    _unary("sinc", np.sinc, (-2.5, 2.5)),
    _unary("lgamma", lambda x: _sp().gammaln(x), (0.2, 4.0)),
    OpInfo("digamma", jitgrad.digamma, lambda x: _sp().digamma(x), UNARY, (0.2, 4.0),
           torch=_t("digamma"), rtol=_TRIGAMMA_RTOL,
           notes="not in the special-values table, rtol 1e-9: its gradient is trigamma, which "
                 "torch computes to ~5e-10 (jitgrad's agrees with SciPy to ~1e-15)"),
    OpInfo("polygamma", lambda n, x: jitgrad.polygamma(int(n), x),
           lambda n, x: _sp().polygamma(n.astype(np.int64), x),
           [((), (3, 4)), ((), ()), ((), (0, 3))], [(1.0, 3.0), (0.3, 4.0)],
           kinds=("discrete", "float"), values=(1.0, 2.0, 3.0), diff=(False, True),
           torch=lambda T: lambda n, x: T.polygamma(int(n), x), rtol=_TRIGAMMA_RTOL,
           notes="the order n is an integer operand of the row (read as given)"),
    _unary("erfinv", lambda x: _sp().erfinv(x), (-0.95, 0.95)),
    _bitwise("bitwise_and", np.bitwise_and),
    _bitwise("bitwise_or", np.bitwise_or),
    _bitwise("bitwise_xor", np.bitwise_xor),
    # (counts < 0 and >= 64 included; no wrap-around here: the CUDA simulator's Python ints
    # do not wrap. Wrapping: tests/test_elementwise_division_special.py)
    _bitwise("bitwise_left_shift", _lshift, values=(-5.0, -1.0, 0.0, 1.0, 3.0, 64.0, 70.0)),
    _bitwise("bitwise_right_shift", _rshift, values=(-5.0, -1.0, 0.0, 1.0, 3.0, 63.0, 64.0)),
    _bitwise("bitwise_not", np.invert, unary=True),
    # --- comparisons / logical (forward only) --------------------------------------------------
    _compare("eq", np.equal),
    _compare("ne", np.not_equal),
    _compare("lt", np.less),
    _compare("le", np.less_equal),
    _compare("gt", np.greater),
    _compare("ge", np.greater_equal),
    OpInfo("logical_and", jitgrad.logical_and, np.logical_and, BINARY[:3],
           kinds=("discrete", "discrete"), grad_order=0, torch=_t("logical_and"),
           out_dtype="bool", elementwise=True, f32_samples=1),
    OpInfo("logical_or", jitgrad.logical_or, np.logical_or, BINARY[:3],
           kinds=("discrete", "discrete"), grad_order=0, torch=_t("logical_or"),
           out_dtype="bool", elementwise=True, f32_samples=1),
    OpInfo("logical_xor", jitgrad.logical_xor, np.logical_xor, BINARY[:3],
           kinds=("discrete", "discrete"), grad_order=0, torch=_t("logical_xor"),
           out_dtype="bool", elementwise=True, f32_samples=1),
    # --- losses that are elementwise rows (reduced inside the node) -----------------------------
    OpInfo("bce_with_logits", F.binary_cross_entropy_with_logits,
           lambda z, y: np.mean(_bce_wl(z, y)), SAME_SHAPE, [(-3.0, 3.0), (0.0, 1.0)],
           torch=_t("nn.functional.binary_cross_entropy_with_logits"), rtol=1e-9, elementwise=True),
    OpInfo("bce", F.binary_cross_entropy, lambda p, y: np.mean(_bce(p, y)), SAME_SHAPE,
           [(0.05, 0.95), (0.0, 1.0)], torch=_t("nn.functional.binary_cross_entropy"),
           rtol=1e-9, elementwise=True),
    OpInfo("mse", F.mse_loss, lambda x, y: np.mean((x - y) ** 2), SAME_SHAPE,
           torch=_t("nn.functional.mse_loss"), rtol=1e-9, elementwise=True),
    # --- reductions ----------------------------------------------------------------------------
    OpInfo("sum", lambda x: x.sum(dim=-1), lambda x: x.sum(axis=-1) if x.ndim else x.copy(),
           REDUCE, torch=SAME),
    OpInfo("mean", lambda x: x.mean(dim=-1), lambda x: x.mean(axis=-1) if x.ndim else x.copy(),
           REDUCE, torch=SAME),
    OpInfo("prod", lambda x: x.prod(dim=-1), lambda x: x.prod(axis=-1) if x.ndim else x.copy(),
           REDUCE, grad_order=1, torch=SAME, notes="double backward: NotImplementedError"),
    OpInfo("prod_others", lambda x: jitgrad.prod(x, dim=(0, 2)), _prod_others_ref,
           [((2, 3, 2),), ((3, 1, 4),)], kinds=("discrete",), values=(0.0, 0.0, 0.5, -1.5, 2.0),
           grad_order=1, notes="prod's gradient with zeros, over non-adjacent dims"),
    OpInfo("amax", lambda x: x.max(), np.max, [((3, 4),), ((),)], torch=SAME),
    OpInfo("max_dim", lambda x: x.max(dim=-1).values,
           lambda x: x.max(axis=-1) if x.ndim else x.copy(), REDUCE, torch=SAME),
    OpInfo("logsumexp", lambda x: jitgrad.logsumexp(x, -1), lambda x: _logsumexp(x, -1),
           REDUCE, torch=lambda T: lambda x: T.logsumexp(x, -1)),
    OpInfo("var", lambda x: x.var(dim=-1), lambda x: x.var(axis=-1, ddof=1),
           [((3, 4),), ((2, 3, 2),), ((0, 3),)], torch=SAME),
    # --- movement / indexing -------------------------------------------------------------------
    OpInfo("reshape", lambda x: x.reshape(-1), lambda x: x.reshape(-1), REDUCE, torch=SAME),
    OpInfo("permute", _rev, lambda x: x.transpose(), [((2, 3, 4),), ((),), ((0, 3),)],
           torch=SAME),
    OpInfo("expand", lambda x: x.expand(2, *x.shape), lambda x: np.broadcast_to(x, (2,) + x.shape),
           REDUCE, torch=SAME),
    OpInfo("cat", lambda x, y: jitgrad.cat([x, y], dim=0), lambda x, y: np.concatenate([x, y]),
           [((2, 3), (1, 3)), ((0, 3), (2, 3)), ((2,), (3,))],
           torch=lambda T: lambda x, y: T.cat([x, y], dim=0)),
    OpInfo("stack", lambda x, y: jitgrad.stack([x, y], dim=0), lambda x, y: np.stack([x, y]),
           [((2, 3), (2, 3)), ((), ()), ((0, 3), (0, 3))],
           torch=lambda T: lambda x, y: T.stack([x, y], dim=0)),
    OpInfo("getitem", lambda x: x[1:, ::2], lambda x: x[1:, ::2], [((3, 4),), ((2, 3, 4),),
                                                                    ((0, 3),)], torch=SAME),
    OpInfo("index_backward", lambda x: x[[0, 2, 0]], lambda x: x[[0, 2, 0]],
           [((3, 4),), ((3,),)], torch=SAME,
           notes="advanced getitem with a repeated index: backward scatter-adds (index_backward),"
                 " double backward differentiates index_backward"),
    OpInfo("flip", lambda x: x.flip(0, -1), lambda x: np.flip(x, (0, -1)),
           [((3, 4),), ((2, 3, 4),), ((0, 3),)], torch=SAME),
    OpInfo("cumsum", lambda x: x.cumsum(-1), lambda x: np.cumsum(x, -1) if x.ndim else x.copy(),
           REDUCE, torch=SAME),
    OpInfo("setitem", _setitem, _setitem_ref, [((3, 4), (2, 2)), ((3, 4), (1, 2)), ((3, 4), ())],
           torch=SAME),
    OpInfo("matmul", jitgrad.matmul, np.matmul,
           [((2, 3), (3, 4)), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)),
            ((2, 2, 3), (3, 4)), ((0, 3), (3, 2))], torch=_t("matmul"), rtol=1e-9),
    OpInfo("softmax", lambda x: jitgrad.softmax(x, -1), _softmax, REDUCE,
           torch=lambda T: lambda x: T.softmax(x, -1)),
    OpInfo("log_softmax", lambda x: jitgrad.log_softmax(x, -1), _log_softmax, REDUCE,
           torch=lambda T: lambda x: T.log_softmax(x, -1)),
    OpInfo("nll_loss", _nll, _nll_ref, [((3, 4),), ((4,),), ((2, 4, 2),)], torch=SAME),
    OpInfo("cross_entropy", _cross_entropy, lambda x: _nll_ref(_log_softmax(x, 1)),
           [((3, 4),)], torch=SAME, notes="(N, C) logits: one fused node"),
    OpInfo("linear", _linear, lambda x, w, b: x @ w.T + b, [((3, 4), (2, 4), (2,))],
           torch=SAME, rtol=1e-9, notes="2-D input, weight and bias: one fused addmm node"),
    # --- nn.functional windows (issue 16) -------------------------------------------------------
    OpInfo("im2col", _unfold, _unfold_ref, [((2, 3, 3, 4),), ((1, 1, 2, 2),)], torch=SAME,
           notes="unfold: kernel 2, padding 1, stride (1, 2); conv/pooling gather the same way"),
    OpInfo("col2im", _fold, _fold_ref, [((2, 8, 6),), ((1, 4, 6),)], torch=SAME,
           notes="fold, the adjoint of im2col (conv_transpose, im2col's gradient)"),
    # --- casts and copies ----------------------------------------------------------------------
    OpInfo("to_copy", _cast_round_trip, lambda x: x.astype(np.float32).astype(np.float64),
           [((3, 4),), ((),)], torch=SAME, numeric_grad=False, rtol=0, atol=0, rtol32=0,
           atol32=0, notes="through the other float dtype and back"),
    OpInfo("clone", lambda x: x.clone(), lambda x: x.copy(), [((3, 4),), ((),)], torch=SAME),
    OpInfo("to_device", _device_round_trip, lambda x: x.copy(), [((3, 4),)], torch=SAME,
           notes="GPU round trip where a device/simulator exists, else clone"),
    # --- ops_api.reductions ----------------------------------------------------------------------
    OpInfo("cumprod", lambda x: x.cumprod(-1), lambda x: np.cumprod(x, -1) if x.ndim else x.copy(),
           [((3, 4),), ((),), ((0, 3),), ((2, 5),)], kinds=("discrete",),
           values=(0.0, 0.0, 0.5, -1.5, 2.0, 1.25), torch=SAME,
           notes="zeros (one or several per row): the gradient's exact zero handling"),
    OpInfo("logcumsumexp", lambda x: jitgrad.logcumsumexp(x, -1),
           lambda x: np.logaddexp.accumulate(x, -1) if x.ndim else x.copy(), REDUCE,
           domain=(-4.0, 4.0), torch=lambda T: lambda x: T.logcumsumexp(x, -1)),
    OpInfo("median", lambda x: x.median(), _median_ref, [((3, 4),), ((),), ((5,),)],
           torch=SAME, notes="lower middle value; gradient shared among tied elements"),
    # --- ops_api.indexing ------------------------------------------------------------------------
    OpInfo("index_put", _index_put, _index_put_ref, [((3, 4), (2, 4)), ((3, 4), (4,))],
           torch=SAME, notes="out-of-place writes: scatter, index_copy/fill/put, masked_scatter"),
    OpInfo("scatter_reduce", _scatter_reduce("prod"),
           lambda x, s: _scatter_reduce_ref(x, s, np.multiply, True), [((3, 4), (2, 4))],
           torch=SAME, notes="prod/amax/amin record (sum/mean are index_backward composites)"),
    # --- ops_api.shape ---------------------------------------------------------------------------
    OpInfo("diagonal", lambda x: jitgrad.diagonal(x, 1, 0, -1),
           lambda x: np.diagonal(x, 1, 0, -1).copy(), [((3, 4),), ((2, 3, 4),), ((0, 3),)],
           torch=lambda T: lambda x: T.diagonal(x, 1, 0, -1),
           notes="a strided view; the gradient scatters g onto the diagonal"),
    OpInfo("diag_embed", lambda x: jitgrad.diag_embed(x, -1, 0, -1), _diag_embed_ref,
           [((3,),), ((2, 3),), ((0,),)], torch=lambda T: lambda x: T.diag_embed(x, -1, 0, -1),
           notes="dims 0 and -1, offset -1: zeros with x on a diagonal view"),
    OpInfo("as_strided", lambda x: jitgrad.as_strided(x, (3, 2), (2, 1), 1),
           lambda x: np.lib.stride_tricks.as_strided(x.reshape(-1)[1:], (3, 2),
                                                     (2 * x.itemsize, x.itemsize)).copy(),
           [((3, 3),), ((8,),)], torch=lambda T: lambda x: T.as_strided(x, (3, 2), (2, 1), 1),
           notes="overlapping windows of the flat memory: their gradients add up"),
    # --- ops_api.linalg --------------------------------------------------------------------------
    OpInfo("linalg_vector_norm", lambda x: jitgrad.linalg.vector_norm(x, 3, dim=-1),
           lambda x: (np.abs(x) ** 3).sum(-1) ** (1 / 3), [((3, 4),), ((2, 3, 2),)],
           torch=lambda T: lambda x: T.linalg.vector_norm(x, 3, dim=-1), rtol=1e-9,
           notes="one record for every p; p = 2, 1, inf, 0 and p < 1 in tests/test_linalg.py"),
    OpInfo("linalg_inv", lambda x: jitgrad.linalg.inv(_wc(x)), lambda x: np.linalg.inv(_wc(x)),
           SQUARE, torch=lambda T: lambda x: T.linalg.inv(_wc(x)), rtol=1e-9),
    OpInfo("linalg_det", lambda x: jitgrad.linalg.det(_wc(x)), lambda x: np.linalg.det(_wc(x)),
           SQUARE, torch=lambda T: lambda x: T.linalg.det(_wc(x)), rtol=1e-9),
    OpInfo("linalg_slogdet", lambda x: jitgrad.linalg.slogdet(_wc(x)).logabsdet,
           lambda x: np.linalg.slogdet(_wc(x))[1], SQUARE,
           torch=lambda T: lambda x: T.linalg.slogdet(_wc(x)).logabsdet, rtol=1e-9),
    OpInfo("linalg_solve", lambda a, b: jitgrad.linalg.solve(_wc(a), b),
           lambda a, b: _np_solve(_wc(a), b), [((3, 3), (3, 2)), ((2, 3, 3), (3,)),
                                               ((2, 1, 3, 3), (3, 3, 1))],
           torch=lambda T: lambda a, b: T.linalg.solve(_wc(a), b), rtol=1e-9),
    OpInfo("linalg_cholesky", lambda x: jitgrad.linalg.cholesky(_spd(x)),
           lambda x: np.linalg.cholesky(_spd(x)), SQUARE,
           torch=lambda T: lambda x: T.linalg.cholesky(_spd(x)), rtol=1e-9),
    OpInfo("linalg_qr", lambda x: _qr_both(jitgrad.linalg.qr(x)),
           lambda x: _qr_both(np.linalg.qr(x)), [((4, 3),), ((2, 3, 3),), ((2, 4),)],
           torch=lambda T: lambda x: _qr_both(T.linalg.qr(x)), rtol=1e-9,
           notes="Q and R in one output; m > n, square and m < n (the leading block's rule)"),
    OpInfo("linalg_eigh", lambda x: _eig_inv(jitgrad.linalg.eigh(_sym(x))),
           lambda x: _eig_inv(np.linalg.eigh(_sym(x))), SQUARE,
           torch=lambda T: lambda x: _eig_inv(T.linalg.eigh(_sym(x))), rtol=1e-8,
           grad_rtol=1e-3, notes="eigenvalues and the squares of the eigenvectors "
                                 "(sign-invariant) in one output"),
    OpInfo("linalg_svd", lambda x: _svd_inv(jitgrad.linalg.svd(x, full_matrices=False)),
           lambda x: _svd_inv(np.linalg.svd(x, full_matrices=False)),
           [((4, 3),), ((3, 3),), ((2, 3, 4),)],
           torch=lambda T: lambda x: _svd_inv(T.linalg.svd(x, full_matrices=False)),
           rtol=1e-8, notes="S and sign-invariant products of U and Vh in one output"),
]

OPINFOS: dict[str, OpInfo] = {r.name: r for r in _ROWS}


def _v(name, of, op, ref, shapes, f32_samples=1, **kw):
    return OpInfo(name, op, ref, shapes, variant_of=of, f32_samples=f32_samples, **kw)


VARIANTS: list[OpInfo] = [
    _v("sub_alpha", "sub", lambda x, y: jitgrad.sub(x, y, alpha=2), lambda x, y: x - 2 * y,
       BINARY[:2], torch=lambda T: lambda x, y: T.sub(x, y, alpha=2)),
    _v("div_scalar", "div", lambda x: x / 3.0, lambda x: x / 3.0, UNARY[:2], torch=SAME),
    _v("rdiv_scalar", "div", lambda x: 3.0 / x, lambda x: 3.0 / x, UNARY[:2], domain=(0.5, 2.0),
       torch=SAME),
    _v("pow_scalar_exponent", "pow", lambda x: x ** 2.5, lambda x: x ** 2.5, UNARY,
       domain=(0.5, 2.0), torch=SAME),
    _v("pow_scalar_base", "pow", lambda x: 2.0 ** x, lambda x: 2.0 ** x, UNARY, torch=SAME),
    _v("pow_2_is_square", "square", lambda x: x ** 2, lambda x: x ** 2, UNARY[:2], torch=SAME),
    _v("clamp_scalars", "clamp", lambda x: x.clamp(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
       UNARY, torch=SAME),
    _v("clamp_min_above_max", "clamp", jitgrad.clamp,
       lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), [((3, 4), (3, 1), (1, 4)),
                                                            ((3, 4), (), ())],
       domain=[(-2.0, 2.0), (0.25, 1.0), (-1.0, -0.25)], torch=_t("clamp"),
       notes="torch: where min > max, every element is max"),
    _v("remainder_negative_divisor", "remainder", jitgrad.remainder, np.mod, BINARY[:2],
       domain=[(-3.0, 3.0), (-2.0, -0.4)], torch=_t("remainder")),
    _v("floor_divide_negative_divisor", "floor_divide", jitgrad.floor_divide, np.floor_divide,
       BINARY[:2], domain=[(-3.0, 3.0), (-2.0, -0.4)],
       torch=lambda T: lambda x, y: T.div(x, y, rounding_mode="floor")),
    _v("fmod_negative_divisor", "fmod", jitgrad.fmod, np.fmod, BINARY[:2],
       domain=[(-3.0, 3.0), (-2.0, -0.4)], torch=_t("fmod")),
    _v("lerp_scalar_weight", "lerp", lambda x, e: jitgrad.lerp(x, e, 0.75),
       lambda x, e: e - (e - x) * 0.25, BINARY[:2], torch=lambda T: lambda x, e: T.lerp(x, e, 0.75)),
    _v("logit_eps", "logit", lambda x: jitgrad.logit(x, 0.2),
       lambda x: np.log(np.clip(x, 0.2, 0.8) / (1 - np.clip(x, 0.2, 0.8))), UNARY[:2],
       domain=(0.02, 0.98), torch=lambda T: lambda x: T.logit(x, 0.2)),
    _v("digamma_negative", "digamma", jitgrad.digamma, lambda x: _sp().digamma(x), UNARY[:2],
       domain=(-1.8, -1.2), torch=_t("digamma"), rtol=_TRIGAMMA_RTOL),
    _v("lgamma_negative", "lgamma", jitgrad.lgamma, lambda x: _sp().gammaln(x), UNARY[:2],
       domain=(-1.8, -1.2), torch=_t("lgamma")),
    _v("polygamma_negative", "polygamma", lambda n, x: jitgrad.polygamma(int(n), x),
       lambda n, x: _sp().polygamma(n.astype(np.int64), x), [((), (3, 4))],
       domain=[(1.0, 3.0), (-2.8, -2.2)], kinds=("discrete", "float"), values=(1.0, 2.0, 4.0),
       diff=(False, True), torch=lambda T: lambda n, x: T.polygamma(int(n), x),
       rtol=_TRIGAMMA_RTOL),
    _v("clamp_min_only", "clamp", lambda x: x.clamp(min=-0.5), lambda x: np.maximum(x, -0.5),
       UNARY[:2], torch=SAME),
    _v("where_scalar_other", "where", lambda c, x: jitgrad.where(c, x, 0.0),
       lambda c, x: np.where(c, x, 0.0), [((3, 4), (3, 4)), ((3, 1), (1, 4))],
       kinds=("bool", "float"), torch=lambda T: lambda c, x: T.where(c, x, 0.0)),
    _v("maximum_ties", "maximum", jitgrad.maximum, np.maximum, [((3, 4), (3, 4))],
       kinds=("discrete", "discrete"), numeric_grad=False, torch=_t("maximum"),
       notes="ties split the gradient evenly, like torch"),
    _v("minimum_ties", "minimum", jitgrad.minimum, np.minimum, [((3, 4), (3, 4))],
       kinds=("discrete", "discrete"), numeric_grad=False, torch=_t("minimum")),
    _v("gelu_tanh", "tanh", lambda x: F.gelu(x, approximate="tanh"),
       lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3))),
       UNARY[:2], domain=(-3.0, 3.0),
       torch=lambda T: lambda x: T.nn.functional.gelu(x, approximate="tanh")),
    _v("mse_none", "mse", lambda x, y: F.mse_loss(x, y, reduction="none"),
       lambda x, y: (x - y) ** 2, SAME_SHAPE,
       torch=lambda T: lambda x, y: T.nn.functional.mse_loss(x, y, reduction="none")),
    _v("bce_sum", "bce", lambda p, y: F.binary_cross_entropy(p, y, reduction="sum"),
       lambda p, y: np.sum(_bce(p, y)), SAME_SHAPE[:2], domain=[(0.05, 0.95), (0.0, 1.0)],
       torch=lambda T: lambda p, y: T.nn.functional.binary_cross_entropy(p, y, reduction="sum")),
    _v("bce_with_logits_none", "bce_with_logits",
       lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none"), _bce_wl,
       SAME_SHAPE, domain=[(-30.0, 30.0), (0.0, 1.0)],
       torch=lambda T: lambda z, y: T.nn.functional.binary_cross_entropy_with_logits(
           z, y, reduction="none"), notes="large |z|: the rule must not overflow"),
    _v("l1_loss", "abs", F.l1_loss, lambda x, y: np.mean(np.abs(x - y)), SAME_SHAPE[:2],
       torch=_t("nn.functional.l1_loss")),
    _v("sum_all", "sum", lambda x: x.sum(), np.sum, REDUCE, torch=SAME),
    _v("sum_dims_keepdim", "sum", lambda x: x.sum(dim=(0, 2), keepdim=True),
       lambda x: x.sum(axis=(0, 2), keepdims=True), [((2, 3, 2),)], torch=SAME),
    _v("mean_all", "mean", lambda x: x.mean(), np.mean, REDUCE[:2], torch=SAME),
    _v("prod_all_with_zeros", "prod_others", lambda x: x.prod(), np.prod,
       [((3, 4),), ((2, 3),)], kinds=("discrete",), values=(0.0, 0.5, -1.5, 2.0, 1.0),
       grad_order=1, torch=SAME),
    _v("amin", "amax", lambda x: x.min(), np.min, [((3, 4),)], torch=SAME),
    _v("amax_ties", "amax", lambda x: x.max(), np.max, [((3, 4),)], kinds=("discrete",),
       values=(0.0, 1.0), numeric_grad=False, torch=SAME,
       notes="the gradient is shared evenly among tied maxima, like torch"),
    _v("amax_nan", "amax", lambda x: x.max(), np.max, [((3, 4),)], kinds=("discrete",),
       values=(np.nan, 0.0, 1.0), numeric_grad=False, torch=SAME,
       notes="max is NaN; torch shares the gradient among the NaN elements"),
    _v("min_dim_keepdim", "max_dim", lambda x: x.min(dim=0, keepdim=True).values,
       lambda x: x.min(axis=0, keepdims=True), [((3, 4),)], torch=SAME),
    _v("max_dim_indices", "max_dim", lambda x: x.max(dim=-1).indices,
       lambda x: np.argmax(x, axis=-1), [((3, 4),), ((2, 3, 4),)], kinds=("discrete",),
       values=(0.0, 1.0), grad_order=0, out_dtype="int64", torch=SAME,
       notes="ties: the first index, like torch and NumPy"),
    _v("std", "var", lambda x: x.std(dim=-1), lambda x: x.std(axis=-1, ddof=1), [((3, 4),)],
       torch=SAME),
    _v("var_all_biased", "var", lambda x: x.var(unbiased=False), np.var, [((3, 4),)],
       torch=SAME),
    _v("view", "reshape", lambda x: x.view(2, -1), lambda x: x.reshape(2, -1), [((3, 4),)],
       torch=SAME),
    _v("unsqueeze_squeeze", "reshape", lambda x: x.unsqueeze(0).squeeze(), lambda x: x,
       [((3, 4),), ((),)], torch=SAME),
    _v("flatten", "reshape", lambda x: x.flatten(1), lambda x: x.reshape(x.shape[0], -1),
       [((2, 3, 2),)], torch=SAME),
    _v("transpose", "permute", lambda x: x.transpose(0, 1), lambda x: np.swapaxes(x, 0, 1),
       [((2, 3, 4),)], torch=SAME),
    _v("expand_broadcast", "expand", lambda x: x.expand(3, -1, 4),
       lambda x: np.broadcast_to(x, (3, 2, 4)), [((2, 1),)], torch=SAME),
    _v("cat_dim1", "cat", lambda x, y: jitgrad.cat([x, y], dim=1),
       lambda x, y: np.concatenate([x, y], 1), [((2, 3), (2, 1))],
       torch=lambda T: lambda x, y: T.cat([x, y], dim=1)),
    _v("stack_last", "stack", lambda x, y: jitgrad.stack([x, y], dim=-1),
       lambda x, y: np.stack([x, y], -1), [((2, 3), (2, 3))],
       torch=lambda T: lambda x, y: T.stack([x, y], dim=-1)),
    _v("getitem_int", "getitem", lambda x: x[1], lambda x: x[1], [((3, 4),)], torch=SAME),
    _v("getitem_none_ellipsis", "getitem", lambda x: x[None, ..., 0],
       lambda x: x[None, ..., 0], [((3, 4),)], torch=SAME),
    _v("getitem_mask", "index_backward", lambda x: x[x > 0], lambda x: x[x > 0], [((3, 4),)],
       torch=SAME),
    _v("scatter_reduce_amax_no_self", "scatter_reduce", _scatter_reduce("amax", False),
       lambda x, s: _scatter_reduce_ref(x, s, np.maximum, False), [((3, 4), (2, 4))],
       torch=SAME),
    _v("softmax_dim0", "softmax", lambda x: jitgrad.softmax(x, 0), lambda x: _softmax(x, 0),
       [((3, 4),)], torch=lambda T: lambda x: T.softmax(x, 0)),
    _v("nll_loss_weighted_ignore", "nll_loss", _nll_weighted,
       lambda x: _nll_ref(x, _NLL_W, ignore_index=2), [((3, 4),)], torch=SAME),
]

ALL_INFOS: list[OpInfo] = list(OPINFOS.values()) + VARIANTS


def registry_names() -> set:
    return set(ops.ELEMENTWISE) | set(ops.STRUCTURAL)
