"""ops_api.misc: torch ops op_db has that jitgrad lacked (issue 16), built as composites.

Why composites: every differentiable one here is an exact formula over existing differentiable
jitgrad ops (where, narrow, cat, sum, cumsum, matmul, lgamma, erfc, ...), so it gets forward,
gradient, double backward, CUDA and batching from those ops. Integer-valued or boolean results
(isclose, isin, bincount, histc, gcd, lcm, nextafter, frexp's exponent) have no gradient in
torch and are computed on the host with NumPy. Branchy formulas (angle, entr, log_ndtr, erfcx)
feed each branch a safe input (``where(cond, x, safe)``) so that the unused branch's gradient
is 0, not NaN.
"""
from __future__ import annotations

import math
import numbers
from collections import namedtuple

import numpy as np

from types import SimpleNamespace

from .. import creation as _creation
from .. import dtypes
from .. import functional_ops as _fo
from .._methods import implement
from .._tensor import Tensor, _norm_dim, tensor
from ..functional_ops import _tt
from . import indexing as _indexing
from . import shape as _shape

#: the ops the composites are made of, under their public names (several shadow builtins)
_jg = SimpleNamespace(
    **{n: getattr(_fo, n) for n in (
        "abs", "amax", "cat", "clamp", "cumsum", "erfc", "erfinv", "exp", "exp2", "isfinite",
        "isnan", "lgamma", "log", "logaddexp", "logical_xor", "matmul", "mean", "mul", "sqrt",
        "sub", "sum", "where")},
    zeros_like=_creation.zeros_like, full_like=_creation.full_like, tensor=tensor,
    narrow=_shape.narrow, diagonal=_shape.diagonal, index_put=_indexing.index_put)

__all__ = ["rsub", "logaddexp2", "ldexp", "nextafter", "angle", "frexp", "mvlgamma", "isclose",
           "diff", "trapezoid", "trapz", "cumulative_trapezoid", "gradient", "cov", "corrcoef",
           "isin", "bincount", "histc", "cdist", "gcd", "lcm", "put"]

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)


def _float(x):
    """x as a floating tensor (ints/bools to the default dtype, as torch's float ops do)."""
    return x if x.dtype.is_floating_point else x.to(dtypes.get_default_dtype())


def _result(x, arr):
    """A host result as a tensor on x's device."""
    return _jg.tensor(arr, device=x.device)


def _inplace(x, res, name):
    """x <- res for the in-place `name_` variants (shape and dtype kinds checked as torch)."""
    if tuple(res.shape) != tuple(x.shape):
        raise RuntimeError(f"{name}_: output with shape {list(x.shape)} doesn't match the "
                           f"broadcast shape {list(res.shape)}")
    if not np.can_cast(res.dtype.np, x.dtype.np, "same_kind"):
        raise RuntimeError(f"{name}_: result type {res.dtype.name} can't be cast to the desired "
                           f"output type {x.dtype.name}")
    return x.copy_(res)


def _host_pair(a, b):
    """Two operands (tensors or numbers) as NumPy arrays in torch's promoted dtype."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    dev = (a if ta else b).device
    A = a._host if ta else np.asarray(a)
    B = b._host if tb else np.asarray(b)
    td, zd, sc = [], [], []
    for v in (a, b):
        if isinstance(v, Tensor):
            (td if v.ndim else zd).append(v.dtype)
        else:
            sc.append(v)
    d = dtypes.result_type(td, zd, sc)
    return A.astype(d.np, copy=False), B.astype(d.np, copy=False), d, dev


# ---------------------------------------------------------------------------------- elementwise

def rsub(input, other, *, alpha=1):
    """torch.rsub: other - alpha * input."""
    x = _tt(input)
    if x.dtype is dtypes.bool_:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported.")
    return _jg.sub(other, x, alpha=alpha)


def logaddexp2(input, other):
    """log2(2**input + 2**other), via logaddexp on the inputs scaled by ln 2."""
    x, y = _float(_tt(input)), _float(_tt(other))
    return _jg.logaddexp(x * _LN2, y * _LN2) / _LN2


def ldexp(input, other):
    """input * 2**other, in the promoted floating dtype (ints: the default dtype)."""
    x, e = _tt(input), _tt(other)
    d = dtypes.promote_types(x.dtype, e.dtype)
    if not d.is_floating_point:
        d = dtypes.get_default_dtype()
    return _jg.mul(x.to(d), _jg.exp2(e.to(d)))


def nextafter(input, other):
    """The next representable value after input towards other (NumPy on the host; torch has no
    gradient for it)."""
    a, b, d, dev = _host_pair(input, other)
    if not d.is_floating_point:
        raise RuntimeError(f"\"nextafter_cpu\" not implemented for '{d.name}'")
    r = _jg.tensor(np.nextafter(a, b), device=dev)
    if not (isinstance(input, Tensor) and input.requires_grad):
        return r
    # torch's gradient: 1 for input, 0 for other; r - x is exact (one ulp) where x is finite
    x = input.to(d)
    xd = x.detach()
    step = _jg.where(_jg.isfinite(xd), x - xd, 0.0).to(d)
    return _jg.where(r == xd, x, r + step)


def angle(input):
    """The argument of a real number: 0 for x >= 0, pi for x < 0, NaN kept; zero gradient."""
    x = _float(_tt(input))
    xd = x.detach()
    c = _jg.where(_jg.isnan(xd), xd, _jg.where(xd < 0, _jg.full_like(xd, math.pi), 0.0))
    if not x.requires_grad:
        return c
    return _jg.where(_jg.zeros_like(xd, dtype=dtypes.bool_), x, c)  # x attached, gradient 0


_frexp_t = namedtuple("frexp", ["mantissa", "exponent"])


def frexp(input):
    """(mantissa, exponent): input = mantissa * 2**exponent, |mantissa| in [0.5, 1); the
    exponent (int32) is found on the host, the mantissa is input * 2**-exponent (exact)."""
    x = _tt(input)
    if not x.dtype.is_floating_point:
        raise RuntimeError("torch.frexp() only supports floating-point dtypes")
    _, e = np.frexp(x._host)
    e = e.astype(np.int32)
    # 2**-e in two exact power-of-two factors (2**148 alone overflows float32 for subnormals)
    h = e // 2
    one = np.ones((), x.dtype.np)
    m = x * _result(x, np.ldexp(one, -h)) * _result(x, np.ldexp(one, h - e))
    return _frexp_t(m, _result(x, e))


def mvlgamma(input, p):
    """Multivariate log-gamma: sum_{i<p} lgamma(x - i/2) + p(p-1)/4 * log(pi)."""
    x = _tt(input)
    if not isinstance(p, numbers.Integral) or p < 1:
        raise RuntimeError(f"p has to be greater than or equal to 1, got {p}")
    if x.numel() and not bool((x._host > (p - 1) / 2).all()):
        raise RuntimeError(f"All elements must be greater than (p-1)/2 = {(p - 1) / 2}")
    xf = _float(x)
    r = _jg.lgamma(xf)
    for i in range(1, p):
        r = r + _jg.lgamma(xf - i / 2)
    return r + p * (p - 1) / 4 * math.log(math.pi)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other| (or equal), elementwise; bool result."""
    x, y = _tt(input), _tt(other)
    if x.dtype is not y.dtype:
        raise RuntimeError(f"{x.dtype.name} did not match {y.dtype.name}")
    if rtol < 0 or atol < 0:
        raise RuntimeError(f"rtol and atol must be non-negative, got rtol={rtol}, atol={atol}")
    A, B = np.broadcast_arrays(x._host, y._host)
    if x.dtype is dtypes.bool_:
        return _result(x, A == B)
    eq = A == B
    if x.dtype.is_floating_point:
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(A - B)
            tol = (atol + rtol * np.abs(B)).astype(A.dtype)
            r = eq | (np.isfinite(d) & (d <= tol))
        if equal_nan:
            r |= np.isnan(A) & np.isnan(B)
    else:  # integers: torch compares in double
        r = eq | (np.abs(A.astype(np.float64) - B) <= atol + rtol * np.abs(B.astype(np.float64)))
    return _result(x, r)


def gcd(input, other):
    """Greatest common divisor of integer tensors (NumPy on the host)."""
    a, b, d, dev = _host_pair(input, other)
    if d.category != 1:
        raise RuntimeError(f"\"gcd_cpu\" not implemented for '{d.name}'")
    return _jg.tensor(np.gcd(a, b), device=dev)


def lcm(input, other):
    """Least common multiple of integer tensors (NumPy on the host)."""
    a, b, d, dev = _host_pair(input, other)
    if d.category != 1:
        raise RuntimeError(f"\"lcm_cpu\" not implemented for '{d.name}'")
    with np.errstate(all="ignore"):
        return _jg.tensor(np.abs(np.lcm(a, b)).astype(d.np), device=dev)


# ---------------------------------------------------------------------------- differences, sums

def _slice(x, dim, start, stop):
    return _jg.narrow(x, dim, start, stop - start)


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """n-th forward difference along dim (after concatenating prepend/append); bools XOR."""
    x = _tt(input)
    if x.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    dim = _norm_dim(dim, x.ndim)
    if n == 0:
        return x
    if prepend is not None or append is not None:
        seq = []
        for extra in (prepend, x, append):
            if extra is None:
                continue
            e = _tt(extra)
            if e.ndim == 0:
                shape = list(x.shape)
                shape[dim] = 1
                e = e.expand(*shape)
            seq.append(e)
        x = _jg.cat(seq, dim)
    for _ in range(n):
        m = x.shape[dim]
        if m == 0:
            break
        hi, lo = _slice(x, dim, 1, m), _slice(x, dim, 0, m - 1)
        x = _jg.logical_xor(hi, lo) if x.dtype is dtypes.bool_ else hi - lo
    return x


def _dx_along(x, y, dim):
    """Spacing for trapezoid: diff of x along dim (x 1-D: laid along y's dim)."""
    xt = _tt(x)
    if xt.ndim == 1:
        if xt.shape[0] != y.shape[dim]:
            raise RuntimeError("trapezoid: There must be one `x` value for each sample point")
        shape = [1] * y.ndim
        shape[dim] = -1
        return diff(xt).reshape(*shape)
    return diff(xt, dim=dim)


def _trap_terms(y, x, dx, dim):
    """The trapezoids' areas along dim, in a float dtype."""
    m = y.shape[dim]
    s = _slice(y, dim, 1, m) + _slice(y, dim, 0, m - 1)
    t = _dx_along(x, y, dim) * s / 2 if x is not None else s * (dx / 2)
    return t if t.dtype.is_floating_point else _float(t)


def _trap_args(name, y, x, dx, dim):
    """(y as a Tensor, dim normalised, the spacing dx) of trapezoid / cumulative_trapezoid."""
    y = _tt(y)
    if x is not None and dx is not None:
        raise RuntimeError(f"{name}: cannot pass both x and dx")
    return y, _norm_dim(dim, y.ndim), 1 if dx is None else dx


def trapezoid(y, x=None, *, dx=None, dim=-1):
    """Trapezoidal rule along dim: sum((x[i+1]-x[i]) * (y[i+1]+y[i]) / 2) (or spacing dx)."""
    y, dim, dx = _trap_args("trapezoid", y, x, dx, dim)
    if y.shape[dim] == 0:
        return _jg.sum(_float(y), dim)  # zeros, as torch's empty integral
    return _jg.sum(_trap_terms(y, x, dx, dim), dim)


def trapz(y, x=None, *, dx=1, dim=-1):
    """torch.trapz: trapezoid with torch's older argument names."""
    return trapezoid(y, x, dim=dim) if x is not None else trapezoid(y, dx=dx, dim=dim)


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    """Running trapezoidal integral along dim (one element fewer than y along dim)."""
    y, dim, dx = _trap_args("cumulative_trapezoid", y, x, dx, dim)
    if y.shape[dim] == 0:
        return _float(y)
    return _jg.cumsum(_trap_terms(y, x, dx, dim), dim)


def _grad_one(f, dim, h, edge_order):
    """Derivative of f along dim; h a number (uniform) or a 1-D coordinate tensor."""
    n = f.shape[dim]
    if n < edge_order + 1:
        raise RuntimeError("torch.gradient expected each dimension size to be at least "
                           f"edge_order+1")
    s = lambda a, b: _slice(f, dim, a, b)  # noqa: E731
    if not isinstance(h, Tensor):
        interior = (s(2, n) - s(0, n - 2)) / (2 * h) if n > 2 else None
        if edge_order == 1:
            first = (s(1, 2) - s(0, 1)) / h
            last = (s(n - 1, n) - s(n - 2, n - 1)) / h
        else:
            first = (s(0, 1) * -1.5 + s(1, 2) * 2 - s(2, 3) * 0.5) / h
            last = (s(n - 3, n - 2) * 0.5 - s(n - 2, n - 1) * 2 + s(n - 1, n) * 1.5) / h
    else:
        if h.ndim != 1 or h.shape[0] != n:
            raise RuntimeError("torch.gradient expected each tensor to be on the same device "
                               f"and of size {n} along dim {dim}, got shape {list(h.shape)}")
        shape = [1] * f.ndim
        shape[dim] = -1
        c = h.to(f.dtype)
        dxs = diff(c).reshape(*shape)
        d = lambda a, b: _slice(dxs, dim, a, b)  # noqa: E731
        interior = None
        if n > 2:
            a, b = d(0, n - 2), d(1, n - 1)  # a = x[i]-x[i-1], b = x[i+1]-x[i]
            interior = (s(2, n) * (a * a) - s(0, n - 2) * (b * b) + s(1, n - 1) * (b * b - a * a)
                        ) / (a * b * (a + b))
        if edge_order == 1:
            first = (s(1, 2) - s(0, 1)) / d(0, 1)
            last = (s(n - 1, n) - s(n - 2, n - 1)) / d(n - 2, n - 1)
        else:
            h1, h2 = d(0, 1), d(1, 2)
            first = (s(0, 1) * (-(2 * h1 + h2) / (h1 * (h1 + h2))) + s(1, 2) * ((h1 + h2) / (h1 * h2))
                     - s(2, 3) * (h1 / (h2 * (h1 + h2))))
            h1, h2 = d(n - 3, n - 2), d(n - 2, n - 1)
            last = (s(n - 3, n - 2) * (h2 / (h1 * (h1 + h2))) - s(n - 2, n - 1) * ((h1 + h2) / (h1 * h2))
                    + s(n - 1, n) * ((2 * h2 + h1) / (h2 * (h1 + h2))))
    parts = [first] + ([interior] if interior is not None else []) + [last]
    return _jg.cat(parts, dim)


def gradient(input, *, spacing=1, dim=None, edge_order=1):
    """Central differences in the interior, one-sided (edge_order 1 or 2) at the ends, along
    each dim; spacing: a number, numbers per dim, or 1-D coordinate tensors per dim."""
    f = _tt(input)
    if edge_order not in (1, 2):
        raise RuntimeError(f"torch.gradient only supports edge_order=1 and edge_order=2, got "
                           f"{edge_order}")
    if dim is None:
        dims = list(range(f.ndim))
    elif isinstance(dim, numbers.Integral):
        dims = [_norm_dim(dim, f.ndim)]
    else:
        dims = [_norm_dim(d, f.ndim) for d in dim]
    if isinstance(spacing, (list, tuple)):
        if len(spacing) != len(dims):
            raise RuntimeError(f"torch.gradient expected spacing to be unspecified, a scalar or "
                               f"it's spacing and dim arguments to have the same length, but got "
                               f"a spacing argument of length {len(spacing)} and a dim argument "
                               f"of length {len(dims)}.")
        hs = list(spacing)
    else:
        hs = [spacing] * len(dims)
    hs = [1 if h is None else h.item() if isinstance(h, Tensor) and h.ndim == 0 else h
          for h in hs]
    f = _float(f)  # torch's result is floating for integer input too
    return tuple(_grad_one(f, d, h, edge_order) for d, h in zip(dims, hs))


# ----------------------------------------------------------------------------- statistics

def cov(input, *, correction=1, fweights=None, aweights=None):
    """Covariance of the rows of input (variables x observations), with frequency and
    observation weights as torch.cov."""
    x = _tt(input)
    if x.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an "
                           f"input with {x.ndim} dimensions")
    if x.ndim < 2:
        x = x.reshape(1, -1)
    nobs = x.shape[1]
    w = None
    if fweights is not None:
        fw = _tt(fweights)
        if fw.ndim > 1 or fw.dtype.category != 1:
            raise RuntimeError("cov(): expected fweights to be a 1-D integer tensor")
        if fw.shape[0] != nobs:
            raise RuntimeError(f"cov(): expected fweights to have the same numel as there are "
                               f"observations in the input but got {fw.shape[0]} != {nobs}")
        if fw.numel() and (fw._host < 0).any():
            raise RuntimeError("cov(): fweights cannot be negative")
        w = fw
    if aweights is not None:
        aw = _tt(aweights)
        if aw.ndim > 1 or not aw.dtype.is_floating_point:
            raise RuntimeError("cov(): expected aweights to be a 1-D floating point tensor")
        if aw.shape[0] != nobs:
            raise RuntimeError(f"cov(): expected aweights to have the same numel as there are "
                               f"observations in the input but got {aw.shape[0]} != {nobs}")
        if aw.numel() and (aw._host < 0).any():
            raise RuntimeError("cov(): aweights cannot be negative")
        w = aw if w is None else w * aw
    xf = _float(x)
    if w is None:
        avg = _jg.mean(xf, 1)
        w_sum = nobs
        norm = nobs - correction
    else:
        w_sum = _jg.sum(w)
        avg = _jg.sum(xf * w, 1) / w_sum
        if aweights is None:
            norm = w_sum - correction
        else:
            norm = w_sum - correction * _jg.sum(w * _tt(aweights)) / w_sum
    if isinstance(norm, Tensor):
        norm = _jg.clamp(norm.to(xf.dtype), min=0)
    else:
        norm = max(norm, 0)
    xm = xf - avg.reshape(-1, 1)
    c = _jg.matmul(xm if w is None else xm * w, xm.transpose(0, 1))
    c = c / norm
    return c.squeeze() if c.shape[0] == 1 else c


def corrcoef(input):
    """Pearson correlation coefficients of the rows of input (cov normalised, clipped)."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    s = _jg.sqrt(_jg.diagonal(c))
    c = c / s.reshape(-1, 1) / s.reshape(1, -1)
    return _jg.clamp(c, -1, 1)


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """Whether each element of `elements` is in `test_elements` (bool, elements' shape)."""
    te, tt = isinstance(elements, Tensor), isinstance(test_elements, Tensor)
    if not (te or tt):
        raise TypeError("isin(): expected at least one of elements, test_elements to be a Tensor")
    dev = (elements if te else test_elements).device
    A = elements._host if te else np.asarray(elements)
    B = test_elements._host if tt else np.asarray(test_elements)
    return _jg.tensor(np.isin(A, B, invert=invert), device=dev)


def bincount(input, weights=None, minlength=0):
    """Counts of each non-negative integer in a 1-D int tensor (weighted sums with weights)."""
    x = _tt(input)
    if x.ndim != 1 or x.dtype.category != 1:
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs, got a "
                           f"{x.ndim}-d {x.dtype.name} tensor")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    a = x._host
    if a.size and a.min() < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if weights is None:
        return _result(x, np.bincount(a, minlength=minlength).astype(np.int64))
    w = _tt(weights)
    if w.ndim != 1 or w.shape[0] != a.shape[0]:
        raise RuntimeError(f"weights should be 1-d and have the same length as input, got "
                           f"{list(w.shape)} for input {list(x.shape)}")
    out_np = w.dtype.np if w.dtype.is_floating_point else np.float64
    r = np.bincount(a, weights=w._host.astype(np.float64), minlength=minlength)
    return _result(x, r.astype(out_np))


def histc(input, bins=100, min=0, max=0):
    """Histogram with `bins` equal bins over [min, max] (the data's range when min == max);
    elements outside are ignored; result in input's dtype."""
    x = _tt(input)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"\"histogram_cpu\" not implemented for '{x.dtype.name}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histc: bins must be > 0, but got {bins} for bins")
    a = x._host.reshape(-1)
    dt = a.dtype.type
    lo, hi = dt(min), dt(max)
    if lo == hi and a.size:
        lo, hi = a.min(), a.max()
    if lo == hi:
        lo, hi = lo - dt(1), hi + dt(1)
    if lo > hi:
        raise RuntimeError(f"torch.histc: max must be larger than min, but got min {min} max {max}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{lo}, {hi}] is not finite")
    keep = (a >= lo) & (a <= hi)
    v = a[keep]
    pos = ((v - lo) * dt(bins) / (hi - lo)).astype(np.int64)
    pos = np.minimum(pos, bins - 1)
    return _result(x, np.bincount(pos, minlength=bins).astype(a.dtype))


def cdist(x1, x2, p=2.0, compute_mode=None):
    """p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M): (..., P, R).
    The gradient is 0 where a distance is 0 (as torch's), for every p."""
    a, b = _tt(x1), _tt(x2)
    if a.ndim < 2 or b.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {a.ndim}D, "
                           f"X2 got: {b.ndim}D")
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {a.shape[-1]} "
                           f"X2: {b.shape[-1]}")
    if not (a.dtype.is_floating_point and b.dtype.is_floating_point):
        raise RuntimeError("cdist only supports floating-point dtypes, X1 got: "
                           f"{a.dtype.name}, X2 got: {b.dtype.name}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    d = a.unsqueeze(-2) - b.unsqueeze(-3)  # (..., P, R, M)
    if p == 0:
        zero_link = _jg.where(_jg.zeros_like(d, dtype=dtypes.bool_), d, 0.0)  # gradient 0
        return _jg.sum((d != 0).to(d.dtype) + zero_link, -1)
    if p == math.inf:
        return _jg.amax(_jg.abs(d), -1) if d.shape[-1] else _jg.sum(d * 0, -1)
    if p == 1:
        return _jg.sum(_jg.abs(d), -1)
    if p == 2:
        s = _jg.sum(d * d, -1)
        zero = s == 0
        return _jg.where(zero, 0.0, _jg.sqrt(_jg.where(zero, 1.0, s))).to(d.dtype)
    ad = _jg.abs(d)
    nz = ad != 0
    s = _jg.sum(_jg.where(nz, ad, 1.0) ** p * nz.to(d.dtype), -1)
    zero = s == 0
    return _jg.where(zero, 0.0, _jg.where(zero, 1.0, s) ** (1.0 / p)).to(d.dtype)


# ------------------------------------------------------------------------------------------ put

def _put_index(x, index):
    idx = _tt(index)
    if idx.dtype is not dtypes.int64:
        raise IndexError(f"put_(): Expected a long tensor for index, but got {idx.dtype.name}")
    n = x.numel()
    i = idx._host.reshape(-1)
    if i.size and (n == 0 or i.min() < -n or i.max() >= n):
        bad = i[(i < -n) | (i >= n)][0]
        raise IndexError(f"put_(): index {int(bad)} out of range for tensor of size "
                         f"{list(x.shape)} with {n} elements")
    return _result(x, np.where(i < 0, i + n, i))


def put(input, index, source, accumulate=False):
    """A copy of input with source's elements written (or added, accumulate=True) at the flat
    positions `index` (validated; negative positions count from the end)."""
    x, src = _tt(input), _tt(source)
    i = _put_index(x, index)
    if src.numel() != i.shape[0]:
        raise RuntimeError(f"put_(): Expected source and index to have the same number of "
                           f"elements, but got source.numel() = {src.numel()}, "
                           f"index.numel() = {i.shape[0]}")
    if src.dtype is not x.dtype:
        raise RuntimeError(f"put_(): self and source expected to have the same dtype, but got "
                           f"self.dtype = {x.dtype.name} and source.dtype = {src.dtype.name}")
    flat = x.reshape(-1)
    out = _jg.index_put(flat, (i,), src.reshape(-1), accumulate)
    return out.reshape(*x.shape)


def _put_(x, index, source, accumulate=False):
    return _inplace(x, put(x, index, source, accumulate), "put")


def _ldexp_(x, other):
    return _inplace(x, ldexp(x, other), "ldexp")


def _nextafter_(x, other):
    return _inplace(x, nextafter(x, other), "nextafter")


def _mvlgamma_(x, p):
    return _inplace(x, mvlgamma(x, p), "mvlgamma")


def _gcd_(x, other):
    return _inplace(x, gcd(x, other), "gcd")


def _lcm_(x, other):
    return _inplace(x, lcm(x, other), "lcm")


# ------------------------------------------------------------------------- jitgrad.special extras

def ndtr(input):
    """Standard normal CDF: erfc(-x/sqrt 2) / 2."""
    x = _float(_tt(input))
    return _jg.erfc(x * (-1 / _SQRT2)) * 0.5


def ndtri(input):
    """Inverse of ndtr: sqrt 2 * erfinv(2p - 1) (inf at 0 and 1, NaN outside [0, 1])."""
    x = _float(_tt(input))
    return _jg.erfinv(x * 2 - 1) * _SQRT2


def _erfcx_asym(x, terms):
    """exp(x^2) erfc(x) for large x: 1/(x sqrt pi) * sum_k (-1)^k (2k-1)!! / (2x^2)^k."""
    r = 1 / (x * x * 2)
    s = 1.0
    c = 1.0
    acc = None
    for k in range(1, terms + 1):
        c = c * -(2 * k - 1)
        term = c * (r ** k)
        acc = term if acc is None else acc + term
    return (acc + s) / (x * math.sqrt(math.pi))


def erfcx(input):
    """Scaled complementary error function exp(x^2) erfc(x); an asymptotic series where
    erfc underflows (x > 25 in float64, x > 8 in float32)."""
    x = _float(_tt(input))
    big = 25.0 if x.dtype is dtypes.float64 else 8.0
    terms = 8 if x.dtype is dtypes.float64 else 6
    large = x > big
    xs = _jg.where(large, 0.0, x).to(x.dtype)
    xl = _jg.where(large, x, big + 1).to(x.dtype)
    return _jg.where(large, _erfcx_asym(xl, terms), _jg.exp(xs * xs) * _jg.erfc(xs))


def log_ndtr(input):
    """log(ndtr(x)); for x < -1 as log(erfcx(-x/sqrt 2) / 2) - x^2/2, which does not
    underflow."""
    x = _float(_tt(input))
    neg = x < -1
    xp = _jg.where(neg, 0.0, x).to(x.dtype)
    xn = _jg.where(neg, x, -2.0).to(x.dtype)
    t = xn * (-1 / _SQRT2)
    low = _jg.log(erfcx(t) * 0.5) - t * t
    return _jg.where(neg, low, _jg.log(ndtr(xp)))


def entr(input):
    """-x log x for x > 0, 0 at 0, -inf for x < 0 (NaN kept)."""
    x = _float(_tt(input))
    pos = x > 0
    xs = _jg.where(pos, x, 1.0).to(x.dtype)
    other = _jg.where(x == 0, 0.0, _jg.where(_jg.isnan(x), x, -math.inf)).to(x.dtype)
    return _jg.where(pos, -xs * _jg.log(xs), other)


_NO_METHOD = ("rsub", "trapz", "trapezoid", "cumulative_trapezoid", "gradient", "cdist", "isin")
implement(**{name: globals()[name] for name in __all__ if name not in _NO_METHOD},
          put_=_put_, ldexp_=_ldexp_, nextafter_=_nextafter_, mvlgamma_=_mvlgamma_, gcd_=_gcd_,
          lcm_=_lcm_)
