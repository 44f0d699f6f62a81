"""functional_ops: every public tensor operation (``jitgrad.exp``, ``Tensor.sum``, indexing, ...).

Elementwise ops apply registry rows (ops.ELEMENTWISE) through generated kernels; reductions,
movement, indexing, matmul and softmax are structural records (ops.STRUCTURAL, built here by
``@structural``): an array forward (njit kernels, NumPy views, BLAS matmul) and one VJP written
against the vocabulary in structural.py, which runs on arrays (first-order backward) and on
these same Tensor ops (``create_graph=True``). Tensor's methods delegate here
through ``_methods.IMPL``, filled at the end of this module.
"""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from . import dtypes, lazy
from . import _state as grad_mode
from ._engine import grad_edge, node_class
from ._engine import device_key
from .backends import ARRAY_TYPES, BACKENDS, backend_of, cpu
from .backends import cuda as cb  # (numba.cuda itself is imported only when a GPU op runs)
from ._methods import implement
from .creation import ones
from .ops import ELEMENTWISE, structural
from .structural import ARRAYS
from .structural import keep_shape as _keep_shape, same_params, shift_axes, shift_axis
from ._tensor import (Ctx, FunctionNode, Tensor, _norm_dim, apply_elementwise, apply_fn,
                     broadcast_shapes, ew, full, tensor, zeros, _STATE, _result_dtype, rebase_views)

_E = ELEMENTWISE


def _t(x):
    """Coerce array-likes (not Python scalars) to Tensor."""
    t = type(x)
    if t is Tensor or t is float or t is int or isinstance(x, Tensor):
        return x
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return x.item()  # a NumPy scalar counts as a Python number, as in torch (float16 too)
    if isinstance(x, numbers.Number):
        return x
    if isinstance(x, (np.ndarray, list, tuple, np.generic)):
        return tensor(x)
    raise TypeError(f"expected a Tensor or a number, got {type(x).__name__}")


def _tt(x):
    """Coerce anything (scalars too) to Tensor."""
    if isinstance(x, Tensor):
        return x
    t = tensor(x)
    rec = grad_mode.STATE.recorder
    if rec is not None and isinstance(x, (bool, int, float)):
        # (jitgrad.compile: a Python number -- a VJP rule's `y == 0`, say -- is a constant of
        # the recorded program, as a scalar operand of a kernel is)
        rec.const(t._arr)
    return t


# ============================================================================================
# Elementwise


def add(x, y, alpha=1):
    if alpha != 1:
        y = mul(y, alpha)
    return ew("add", _t(x), _t(y))


def sub(x, y, alpha=1):
    if alpha != 1:
        y = mul(y, alpha)
    x, y = _t(x), _t(y)
    if any(isinstance(o, Tensor) and o._meta[1].kind == "b" for o in (x, y)) or \
            isinstance(x, bool) or isinstance(y, bool):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    if not isinstance(x, Tensor):
        return apply_elementwise(_E["rsub"], (y, x))
    return ew("sub", x, y)


def mul(x, y):
    return ew("mul", _t(x), _t(y))


def div(x, y, rounding_mode=None):
    """x / y; rounding_mode 'trunc' rounds toward zero, 'floor' down (floor_divide); integer
    operands then stay integer (exact) and a zero divisor raises, like torch."""
    if rounding_mode is None:
        return ew("div", _t(x), _t(y))
    if rounding_mode == "floor":
        return floor_divide(x, y)
    if rounding_mode == "trunc":
        return _div_trunc(x, y)
    raise ValueError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                     f"found '{rounding_mode}'")


def pow(x, y):
    x, y = _t(x), _t(y)
    if isinstance(x, Tensor) and x._meta[1].kind in "iub" and \
            isinstance(y, numbers.Integral) and y < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    if isinstance(y, Tensor) and y._meta[1].kind in "iu" and not y.is_cuda and \
            ((isinstance(x, Tensor) and x._meta[1].kind in "iub") or
             (isinstance(x, numbers.Integral) and not isinstance(x, bool))) and \
            bool((y._data < 0).any()):
        return _int_pow_negative(x, y)
    if isinstance(x, Tensor) and x._meta[1].kind == "b" and \
            isinstance(y, numbers.Integral) and not isinstance(y, bool):
        x = x.to(dtypes.int64)  # torch: bool ** int is int64
    if isinstance(x, Tensor) and not isinstance(y, Tensor):
        if y == 2:
            return ew("square", x)
        return apply_elementwise(_E["pow"], (x, y), "PowBackward0")
    if not isinstance(x, Tensor):
        return apply_elementwise(_E["pow"], (x, y), "PowBackward2")
    return ew("pow", x, y)


def _int_pow_negative(x, y):
    """Integer base, integer tensor exponent with negative entries (torch: no error there):
    1 ** n = 1, (-1) ** n = +-1 by parity, anything else ** n = 0 for n < 0."""
    if isinstance(x, Tensor) and x._meta[1].kind == "b":
        x = x.to(dtypes.int64)
    neg = lt(y, 0)
    res = pow(x, where(neg, 0, y))
    odd = ne(remainder(y, 2), 0)
    if isinstance(x, Tensor):
        at_neg = where(eq(x, 1), 1, where(eq(x, -1), where(odd, -1, 1), 0))
    elif x in (1, -1):
        at_neg = where(odd, x, 1)
    else:
        at_neg = 0
    return where(neg, at_neg, res)


def _unary(name):
    def f(x):
        return ew(name, _tt(x))
    f.__name__ = name
    f.__doc__ = f"Elementwise {name} (registry row ops.ELEMENTWISE[{name!r}])."
    return f


exp = _unary("exp")
log = _unary("log")
log1p = _unary("log1p")
expm1 = _unary("expm1")
sqrt = _unary("sqrt")
rsqrt = _unary("rsqrt")
sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
tanh = _unary("tanh")
sigmoid = _unary("sigmoid")
relu = _unary("relu")


def square(x):
    """Elementwise x * x; a bool tensor squares as int64, as torch's ``bool ** 2`` does."""
    x = _tt(x)
    if isinstance(x, Tensor) and x._meta[1].kind == "b":
        x = x.to(dtypes.int64)
    return ew("square", x)


reciprocal = _unary("reciprocal")
def neg(x):
    x = _tt(x)
    if x._meta[1].kind == "b":
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you "
                           "are trying to invert a mask, use the `~` or `logical_not()` operator "
                           "instead.")
    return ew("neg", x)


negative = neg
abs = _unary("abs")
sign = _unary("sign")
erf = _unary("erf")
erfc = _unary("erfc")
log2 = _unary("log2")
log10 = _unary("log10")
exp2 = _unary("exp2")
sinh = _unary("sinh")
cosh = _unary("cosh")
asinh = _unary("asinh")
acosh = _unary("acosh")
atanh = _unary("atanh")
asin = _unary("asin")
acos = _unary("acos")
atan = _unary("atan")
deg2rad = _unary("deg2rad")
rad2deg = _unary("rad2deg")
arcsinh, arccosh, arctanh, arcsin, arccos, arctan = asinh, acosh, atanh, asin, acos, atan


def _rounding(name):
    def f(x):
        x = _tt(x)
        kind = x._meta[1].kind
        if kind == "b":
            raise RuntimeError(f'"{name}" not implemented for \'Bool\'')
        if kind in "iu":
            return x.clone()  # torch: an integer tensor is already integral (a copy, no grad)
        return ew(name, x)
    f.__name__ = name
    f.__doc__ = (f"Elementwise {name} (registry row ops.ELEMENTWISE[{name!r}]); integer "
                 "tensors are returned as a copy, like torch; the gradient is zero.")
    return f


floor = _rounding("floor")
ceil = _rounding("ceil")
trunc = _rounding("trunc")
fix = trunc
_round0 = _rounding("round")


def round(x, *, decimals=0):
    """Round half to even (torch.round); ``decimals`` scales by 10**decimals first, as torch
    does (x * 10**d rounded, then divided; negative d: divided, rounded, multiplied)."""
    x = _tt(x)
    if decimals == 0:
        return _round0(x)
    if x._meta[1].kind in "iub":
        raise NotImplementedError(f'"round_cpu" not implemented for \'{x.dtype}\' with '
                                  "decimals != 0")
    if decimals > 0:
        p = 10.0 ** decimals
        return ew("round", x * p) / p
    p = 10.0 ** -decimals
    return ew("round", x / p) * p


def frac(x):
    """x - trunc(x), with x's sign (torch.frac); floating tensors only, gradient 1."""
    x = _tt(x)
    if x._meta[1].kind in "iub":
        raise RuntimeError(f"frac: expected a floating point tensor, got {x.dtype}")
    return ew("frac", x)


def atan2(input, other):
    """Elementwise atan2(input, other) in [-pi, pi]; both inputs get gradients (zero at the
    origin, like torch)."""
    return ew("atan2", _t(input), _t(other))


arctan2 = atan2


def hypot(input, other):
    """Elementwise sqrt(input**2 + other**2) without overflow."""
    return ew("hypot", _t(input), _t(other))


def logaddexp(input, other):
    """Elementwise log(exp(input) + exp(other)) without overflow."""
    return ew("logaddexp", _t(input), _t(other))
gelu_exact = _unary("gelu")
silu = _unary("silu")


def maximum(x, y):
    return ew("maximum", _t(x), _t(y))


def minimum(x, y):
    return ew("minimum", _t(x), _t(y))


def _clamp_bounds(x, min, max):
    """clamp's (lo, hi) operands. Like torch, the result dtype comes from x and the bounds
    given; a missing bound becomes the identity of max/min *in that dtype* (+-inf for floats,
    the integer range's ends for integers), so an absent bound never promotes an int64 tensor
    to float (which would round 16777217)."""
    if min is None and max is None:
        raise RuntimeError("clamp: At least one of 'min' or 'max' must not be None")
    given = [b for b in (min, max) if b is not None]
    cdt = _result_dtype(_E["clamp"], (x, *given))
    if cdt.is_floating_point:
        lo_id, hi_id = -np.inf, np.inf
    elif cdt is dtypes.bool_:
        lo_id, hi_id = False, True
    else:
        info = np.iinfo(cdt.np)
        lo_id, hi_id = int(info.min), int(info.max)
        for b in given:
            if isinstance(b, (int, np.integer)) and not isinstance(b, (bool, np.bool_)) and \
                    not lo_id <= b <= hi_id:
                raise RuntimeError(f"clamp: value {b} cannot be converted to type {cdt} "
                                   "without overflow")
    return (lo_id if min is None else min), (hi_id if max is None else max)


def clamp(x, min=None, max=None):
    x = _tt(x)
    lo, hi = _clamp_bounds(x, None if min is None else _t(min), None if max is None else _t(max))
    return ew("clamp", x, lo, hi)


clip = clamp


def where(condition, x=None, y=None):
    if x is None and y is None:
        return nonzero(condition, as_tuple=True)
    c = _tt(condition)
    if c._meta[1] != np.bool_:
        c = c.to(dtypes.bool_)
    return ew("where", c, _t(x), _t(y))


def and_(a, b):
    return logical_and(a, b)


def logical_and(a, b):
    return ew("logical_and", _tt(a).bool(), _tt(b).bool())


def logical_not(a):
    return eq(_tt(a).bool(), False)


def _cmp(name):
    def f(x, y):
        return ew(name, _t(x), _t(y))
    f.__name__ = name
    return f


eq, ne, lt, le, gt, ge = (_cmp(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def _host(a):
    return a._host if isinstance(a, Tensor) else np.asarray(a)


def equal(a, b) -> bool:
    return a.shape == b.shape and bool(np.array_equal(_host(a), _host(b)))


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(np.allclose(_host(a), _host(b), rtol, atol, equal_nan))


def isnan(x):
    return ne(x, x)


def isfinite(x):
    x = _tt(x)
    if device_key(x) != "cpu":  # not NaN and not +-inf, as elementwise ops (fused there)
        return logical_and(eq(x, x), ne(abs(x), float("inf")))
    return Tensor._make(np.isfinite(x._data))


def nonzero(x, as_tuple=False):
    x = _tt(x)
    dev = device_key(x)
    if dev != "cpu":  # the result's size depends on the values: computed on the host
        return tuple(t.to(dev) for t in nonzero(x.cpu(), True)) if as_tuple else \
            nonzero(x.cpu()).to(dev)
    a = x._data
    if a.ndim == 0:  # torch: a 0-d tensor is one element at an empty index: (n, 0) / ([0],)
        n = int(bool(a))
        return (Tensor._make(np.zeros(n, np.int64)),) if as_tuple else \
            Tensor._make(np.zeros((n, 0), np.int64))
    idx = np.nonzero(a)
    if as_tuple:
        return tuple(Tensor._make(i.astype(np.int64)) for i in idx)
    return Tensor._make(np.stack(idx, axis=1).astype(np.int64))


# ============================================================================================
# Reductions


def _dims(dim, ndim):
    if dim is None or (isinstance(dim, (list, tuple)) and not dim):  # torch: () means all dims
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        ds = tuple(sorted({_norm_dim(d, ndim) for d in dim}))
        if len(ds) != len(dim):
            raise RuntimeError(f"dim {tuple(dim)} appears multiple times in the list of dims")
        return ds if ndim else ()
    d = _norm_dim(dim, ndim)  # validates: a 0-d tensor accepts dim in [-1, 0] like torch
    return (d,) if ndim else ()


_be = backend_of  # the backend module that owns an array (backends/__init__.py INTERFACE)


def _lazy_reduce(ctx, x, axes, keepdim, dtype, mean):
    """sum/mean of a lazy tensor: folded into the kernel that computes x (lazy.py)."""
    shape, dt = x._meta
    ctx.axes, ctx.keepdim = axes, keepdim
    n = 1
    for a in axes:
        n *= shape[a]
    ctx.n = n
    if dt.kind != "f" or (dtype is not None and dtype.np != dt) or x._lazy.row is None:
        arrays = (x._data,)
        out = _Mean.forward(ctx, *arrays, axes=axes, keepdim=keepdim) if mean else \
            _Sum.forward(ctx, *arrays, axes=axes, keepdim=keepdim, dtype=dtype)
        # (NumPy turns 0-d results into scalars; kernels take arrays: as apply_fn does)
        return Tensor._make(out if isinstance(out, ARRAY_TYPES) else
                            np.asarray(out))
    out_shape = _keep_shape(shape, axes) if keepdim else \
        tuple(s for k, s in enumerate(shape) if k not in axes)
    return lazy.make_lazy(Tensor, lazy.Lazy(None, (x,), out_shape, dt, dt, axes, keepdim,
                                             n if mean else None))


@structural("sum", "SumBackward1", linear="all", batch=shift_axes, index_map="reduce",
            gpu=True)
class _Sum:
    def forward(ctx, x, axes, keepdim, dtype):
        ctx.axes, ctx.keepdim = axes, keepdim
        out_dtype = dtype.np if dtype is not None else (
            x.dtype if x.dtype.kind == "f" else np.dtype(np.int64))
        if dtype is not None and x.dtype != out_dtype:  # like torch: cast each element first
            x = _be(x).contiguous(x, out_dtype)
        out = _be(x).reduce_sum(x, axes, out_dtype)
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out

    def vjp(V, ctx, g):
        return (V.expand_back(g, ctx.shapes[0], ctx.axes, ctx.keepdim),)

    def lazy_forward(ctx, x, axes, keepdim, dtype):
        return _lazy_reduce(ctx, x, axes, keepdim, dtype, mean=False)


def sum(x, dim=None, keepdim=False, dtype=None):
    x = _tt(x)
    axes = _dims(dim, x.ndim)
    d = dtypes.from_any(dtype) if dtype is not None else None
    return apply_fn(_Sum, (x,), "SumBackward0" if dim is None else None, axes=axes,
                    keepdim=keepdim, dtype=d)


def _mean_divisor(p, in_shape):
    n = 1
    for a in p["axes"]:
        n *= in_shape[a]
    return None if n == 1 else n


@structural("mean", "MeanBackward1", linear="all", batch=shift_axes, index_map="reduce",
            divisor=_mean_divisor)
class _Mean:
    def forward(ctx, x, axes, keepdim):
        ctx.axes, ctx.keepdim = axes, keepdim
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        s = cpu.reduce_sum(x, axes, x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (s / n).astype(x.dtype) if n else np.full(s.shape, np.nan, x.dtype)
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out

    def cuda_forward(ctx, x, axes, keepdim):
        """A float64 sum, then one kernel that divides and casts (scale_cast)."""
        ctx.axes, ctx.keepdim = axes, keepdim
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        s = cb.reduce_sum(x, axes, np.float64)
        out = cb.empty(s.shape, x.dtype)
        cb.scale_cast(s, out, n)
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out

    def vjp(V, ctx, g):
        shape = ctx.shapes[0]
        n = 1
        for a in ctx.axes:
            n *= shape[a]
        return (V.expand_back(g / n, shape, ctx.axes, ctx.keepdim),)

    def lazy_forward(ctx, x, axes, keepdim):
        return _lazy_reduce(ctx, x, axes, keepdim, None, mean=True)


def mean(x, dim=None, keepdim=False, dtype=None):
    x = _tt(x)
    if dtype is not None:
        d = dtypes.from_any(dtype)
        if not d.is_floating_point:
            raise RuntimeError(f"mean(): could not infer output dtype. Optional dtype must be "
                               f"either a floating point or complex dtype. Got: {d}")
        x = x.to(d)
    if x._meta[1].kind != "f":
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {x.dtype}")
    axes = _dims(dim, x.ndim)
    return apply_fn(_Mean, (x,), "MeanBackward0" if dim is None else None, axes=axes,
                    keepdim=keepdim)


@structural("prod", "ProdBackward1", gpu=True)
class _Prod:
    def forward(ctx, x, axes, keepdim, dtype=None):
        be = _be(x)
        x3, keep = be.arb_view(x, axes)
        # like sum: an explicit dtype (x was cast to it), else integers and bool give int64
        out_dtype = dtype.np if dtype is not None else (
            x.dtype if x.dtype.kind == "f" else np.dtype(np.int64))
        out = be.empty((x3.shape[0], x3.shape[2]), out_dtype)
        if out.size:
            be.prod_arb(x3, out)
        out = out.reshape(keep)
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out

    def vjp(V, ctx, g):
        x, = V.saved(ctx)
        gk = V.expand_back(g, ctx.shapes[0], ctx.axes, ctx.keepdim)
        return (gk * V.apply(_ProdOthers, x, axes=ctx.axes),)


@structural("prod_others", "ProdBackward0", differentiable=False, gpu=True)
class _ProdOthers:
    """For each element, the product of the other elements of its reduction group (exact with
    zeros, unlike out / x). Its own derivative is not implemented."""

    def forward(ctx, x, axes):
        be = _be(x)
        x3, _ = be.arb_view(x, axes)
        out = be.empty(x3.shape, x.dtype)
        if out.size:
            be.prod_others_arb(x3, out)
        if len(axes) and axes[-1] - axes[0] + 1 != len(axes):  # arb_view transposed: undo
            keep = [d for d in range(x.ndim) if d not in axes]
            perm = keep + list(axes)
            tshape = tuple(x.shape[p] for p in perm)
            return out.reshape(tshape).transpose(tuple(np.argsort(perm).tolist()))
        return out.reshape(x.shape)


def prod(x, dim=None, keepdim=False, dtype=None):
    x = _tt(x)
    d = None
    if dtype is not None:
        d = dtypes.from_any(dtype)
        x = x.to(d)
    axes = _dims(dim, x.ndim)
    return apply_fn(_Prod, (x,), "ProdBackward0" if dim is None else None, save=True,
                    axes=axes, keepdim=keepdim, dtype=d)


MaxMin = namedtuple("max", ["values", "indices"])
_return_types = {n: namedtuple(n, ["values", "indices"]) for n in ("max", "min")}


def _check_nonempty(x, name, axes):
    if x.numel() == 0 and (not axes or any(x._meta[0][a] == 0 for a in axes)):
        raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() "
                         f"== 0 (input of shape {tuple(x.shape)}).")


@structural("amax", "MaxBackward1", gpu=True)
class _Extreme:
    """Full max/min: the gradient is shared evenly among tied maxima, like torch."""

    def forward(ctx, x, sign):
        be = _be(x)
        x3, _ = be.arb_view(x, tuple(range(x.ndim)))
        x3 = x3.reshape(1, -1, 1)
        out = be.empty((1, 1), x.dtype)
        idx = be.empty((1, 1), np.int64)
        be.argmax_arb(x3, out, idx, sign)
        ctx.out = out.reshape(())
        return ctx.out

    def vjp(V, ctx, g):
        x, = V.saved(ctx)
        xd, out = V.detach(x), V.const(ctx.out)
        dt = ctx.out.dtype
        # x == max, or both NaN (NaN maxima share g like torch); never both at once
        hit = V.astype(V.eq(xd, out), dt) + \
            V.astype(V.logical_and(V.isnan(xd), V.isnan(out)), dt)
        return (hit * (g / float(V.sum(hit, None))),)


@structural("max_dim", "MaxBackward0", gpu=True)
class _ExtremeDim:
    def forward(ctx, x, axis, keepdim, sign):
        be = _be(x)
        x3, keep = be.arb_view(x, (axis,))
        out = be.empty((x3.shape[0], x3.shape[2]), x.dtype)
        idx = be.empty((x3.shape[0], x3.shape[2]), np.int64)
        if out.size:
            be.argmax_arb(x3, out, idx, sign)
        ks = _keep_shape(x.shape, (axis,))
        idx_k = idx.reshape(ks)
        ctx.indices = idx_k if keepdim else idx.reshape(keep)
        ctx.idx_k = idx_k
        return out.reshape(ks) if keepdim else out.reshape(keep)

    def vjp(V, ctx, g):
        shape, axis = ctx.shapes[0], ctx.axis
        r = np.arange(shape[axis]).reshape([-1 if k == axis else 1 for k in range(len(shape))])
        onehot = V.eq(V.const(r, like=ctx.idx_k), V.const(ctx.idx_k))
        gk = g if ctx.keepdim else V.reshape(g, _keep_shape(shape, (axis,)))
        return (V.where(onehot, gk, 0.0),)


def _max_min(name, sign, x, dim=None, keepdim=False, other=None):
    x = _tt(x)
    if isinstance(dim, Tensor) and other is None:
        dim, other = None, dim
    if other is not None:
        return maximum(x, other) if sign > 0 else minimum(x, other)
    if dim is None:
        _check_nonempty(x, name, ())
        return apply_fn(_Extreme, (x,), "MaxBackward1" if sign > 0 else "MinBackward1",
                        save=True, sign=sign)
    axis = _norm_dim(dim, x.ndim)
    if x.ndim == 0:
        return _return_types[name](x.clone(), zeros((), dtype=dtypes.int64, device=x.device))
    _check_nonempty(x, name, (axis,))
    ctx = Ctx()
    vals = apply_fn(_ExtremeDim, (x,), "MaxBackward0" if sign > 0 else "MinBackward0", ctx=ctx,
                    axis=axis, keepdim=keepdim, sign=sign)
    return _return_types[name](vals, Tensor._make(ctx.indices))


def max(x, dim=None, keepdim=False, *, other=None):
    return _max_min("max", 1, x, dim, keepdim, other)


def min(x, dim=None, keepdim=False, *, other=None):
    return _max_min("min", -1, x, dim, keepdim, other)


def _amax_amin(x, dim, keepdim, fn):
    """amax/amin over dims: like torch, the gradient is shared evenly among tied extremes."""
    x = _tt(x)
    if dim is None:
        return fn(x)
    axes = _dims(dim, x.ndim)
    with grad_mode.no_grad():
        v = x
        for a in reversed(axes):
            v = fn(v, a, keepdim=True).values
        if x._meta[1].kind != "f":  # no gradient to share: the values, in x's own dtype
            if not axes:
                return v.clone()
            return v if keepdim else v.reshape(
                tuple(s for k, s in enumerate(x._meta[0]) if k not in axes))
        hit = eq(x, v)
        count = sum(hit.to(x.dtype), axes, keepdim=keepdim)
    # where, not x * mask: an infinite non-extreme element times 0 would make the sum NaN
    return sum(where(hit, x, 0.0), axes, keepdim=keepdim) / count


def amax(x, dim=None, keepdim=False):
    return _amax_amin(x, dim, keepdim, max)


def amin(x, dim=None, keepdim=False):
    return _amax_amin(x, dim, keepdim, min)


def argmax(x, dim=None, keepdim=False):
    x = _tt(x)
    if dim is None:
        _check_nonempty(x, "argmax", ())
        with grad_mode.no_grad():
            return max(x.reshape(-1), 0).indices.reshape(())
    with grad_mode.no_grad():
        return max(x, dim, keepdim).indices


def argmin(x, dim=None, keepdim=False):
    x = _tt(x)
    if dim is None:
        _check_nonempty(x, "argmin", ())
        with grad_mode.no_grad():
            return min(x.reshape(-1), 0).indices.reshape(())
    with grad_mode.no_grad():
        return min(x, dim, keepdim).indices


def _lse_jvp(ctx, x, out, t):
    axes = ctx.axes
    if len(axes) == 0:
        return t
    ok = out if ctx.keepdim else out.reshape(_keep_shape(x._meta[0], axes))
    return (t * exp(x - ok)).sum(dim=axes, keepdim=ctx.keepdim)


@structural("logsumexp", "LogsumexpBackward0", batch=shift_axes, jvp=_lse_jvp, gpu=True)
class _LogSumExp:
    def forward(ctx, x, axes, keepdim):
        be = _be(x)
        x3, keep = be.arb_view(x, axes)
        out = be.empty((x3.shape[0], x3.shape[2]), x.dtype)
        if out.size:
            be.logsumexp_arb(x3, out)
        ctx.out = out.reshape(_keep_shape(x.shape, axes)) if keepdim else out.reshape(keep)
        return ctx.out

    def vjp(V, ctx, g):
        x, = V.saved(ctx)
        keep = _keep_shape(V.shape(x), ctx.axes)
        gk = g if ctx.keepdim else V.reshape(g, _keep_shape(ctx.shapes[0], ctx.axes))
        return (gk * V.exp(x - V.reshape(V.result(ctx), keep)),)


def logsumexp(x, dim, keepdim=False):
    x = _tt(x)
    if x._meta[1].kind != "f":
        x = x.to(dtypes.get_default_dtype())
    axes = _dims(dim, x.ndim)
    return apply_fn(_LogSumExp, (x,), axes=axes, keepdim=keepdim, save=True)


def _var_jvp(ctx, x, out, t):
    axes, c = ctx.axes, ctx.correction
    if len(axes) == 0:
        return t * 0
    n = 1
    for a in axes:
        n *= x._meta[0][a]
    r = (t * (x - x.mean(dim=axes, keepdim=True))).sum(dim=axes, keepdim=ctx.keepdim)
    with np.errstate(divide="ignore"):
        return r * float(np.float64(2.0) / np.float64(n - c))


@structural("var", "VarBackward0", batch=shift_axes, jvp=_var_jvp)
class _Var:
    def forward(ctx, x, axes, keepdim, correction, full=False):
        x3, keep = cpu.arb_view(x, axes)
        out = np.empty((x3.shape[0], x3.shape[2]), x.dtype)
        n = x3.shape[1]
        if out.size:
            if n == 0:  # like torch: the mean of nothing is NaN, so is the variance
                out.fill(np.nan)
            else:  # torch divides by max(0, n - correction): inf, or NaN for a constant
                with np.errstate(all="ignore"):
                    cpu.var_arb(x3, out, float(builtins_min(correction, n)))
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out.reshape(keep)

    def cuda_forward(ctx, x, axes, keepdim, correction, full=False):
        """The same two-pass variance, written with Tensor ops (fused kernels on the GPU)."""
        n = 1
        for a in axes:
            n *= x.shape[a]
        with grad_mode.no_grad():
            xt = Tensor._make(x)
            d = xt - mean(xt, axes, keepdim=True)
            # divisor max(0, n - correction) (0: inf/nan like torch); n == 0: NaN
            v = sum(d * d, axes, keepdim=keepdim) / (float(builtins_max(n - correction, 0))
                                                     if n else np.nan)
            return v._data

    def vjp(V, ctx, g):
        x, = V.saved(ctx)
        shape, axes = ctx.shapes[0], ctx.axes
        n = 1
        for a in axes:
            n *= shape[a]
        gk = g if ctx.keepdim else V.reshape(g, _keep_shape(shape, axes))
        mu = V.mean(x, axes)
        if ctx.full and n - ctx.correction <= 0:
            # torch's rule for a full reduction without degrees of freedom: 2/0 * (x - mu)
            # is NaN where x == mu and +inf elsewhere (whatever the sign of x - mu)
            r = V.where(V.eq(V.detach(x), V.detach(mu)), np.nan, np.inf)
            return (gk * V.astype(r, V.dtype(x)),)
        with np.errstate(divide="ignore"):
            scale = np.float64(2.0) / np.float64(n - ctx.correction)  # inf/nan like torch
        return (gk * float(scale) * (x - mu),)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased in (None, True) else 0


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    x = _tt(x)
    if x._meta[1].kind not in "fc":  # torch: no integer variance (it would come out float64)
        raise RuntimeError(f"std and var only support floating point and complex dtypes, got "
                           f"{x.dtype}")
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    axes = _dims(dim, x.ndim)
    return apply_fn(_Var, (x,), save=True, axes=axes, keepdim=keepdim,
                    correction=_correction(unbiased, correction), full=dim is None)


@structural("std", "StdBackward0", register=False)
class _StdFromVar:
    """sqrt of a variance, with torch's std rule: the gradient is 0 where the std is 0 (a
    constant input), not g / (2 * 0) * 0 = NaN; elsewhere g / (2 * std). A NaN or inf std
    still passes NaN on, like torch. Registered as a variant of var in the op table."""

    def forward(ctx, v):
        with np.errstate(invalid="ignore"):
            ctx.out = np.asarray(np.sqrt(v))  # (a 0-d input gives a NumPy scalar)
        return ctx.out

    def cuda_forward(ctx, v):
        with grad_mode.no_grad():
            ctx.out = sqrt(Tensor._make(v))._data
        return ctx.out

    def vjp(V, ctx, g):
        # double backward goes through the std's own node (torch's saved ``result``), so a NaN
        # coming back through it at std == 0 is masked the same way
        s = V.result(ctx)
        with V.errstate():
            r = V.where(V.eq(V.detach(s), 0.0), 0.0, g / (s * 2.0))
        return (V.astype(r, ctx.out.dtype),)


def _std_of_var(v):
    return apply_fn(_StdFromVar, (v,), save=True)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _std_of_var(var(x, dim, unbiased, keepdim, correction=correction))


# ============================================================================================
# Movement (views share the version counter of their base)


@structural("reshape", "ViewBackward0", linear="all", index_map="gather", gpu=True,
            batch=lambda p, B, shapes: {"shape": (B,) + tuple(p["shape"])},
            readers=("reshape", "view"))
class _Reshape:
    def forward(ctx, x, shape):
        return x.reshape(shape)  # DeviceArray.reshape: a view when contiguous, else a copy

    def vjp(V, ctx, g):
        return (V.reshape(g, ctx.shapes[0]),)


def _infer_shape(shape, numel):
    shape = list(shape)
    neg = [k for k, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"invalid shape dimension {s}")
            known *= s
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[neg[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
    return tuple(shape)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"shape must be a sequence of ints, got {shape!r} ({type(s).__name__} "
                            "element)")
    return tuple(int(s) for s in shape)


def reshape(x, *shape, grad_fn=None):
    x = _tt(x)
    shape = _infer_shape(_shape_args(shape), x.numel())
    if shape == x._meta[0]:
        return apply_fn(_Reshape, (x,), grad_fn, view_of=x, shape=shape)
    if device_key(x) != "cpu":  # a device array reshapes to a view when C-contiguous
        view = x._arr is None or x._data.flags.c_contiguous
        return apply_fn(_Reshape, (x,), grad_fn, view_of=x if view else None, shape=shape)
    out = x._data.reshape(shape)
    view = np.may_share_memory(out, x._data)
    return apply_fn(_Reshape, (x,), grad_fn, view_of=x if view else None, shape=shape)


def view(x, *shape):
    x = _tt(x)
    if len(shape) == 1 and isinstance(shape[0], (dtypes.DType, type, str)):
        raise NotImplementedError("view(dtype) is not supported")
    shape = _infer_shape(_shape_args(shape), x.numel())
    v = x._data.view() if device_key(x) == "cpu" else None
    try:
        if v is None:
            if not x._data.flags.c_contiguous:
                raise AttributeError
        else:
            v.shape = shape
    except AttributeError:
        raise RuntimeError(
            f"view size is not compatible with input tensor's size and stride (input shape "
            f"{tuple(x.shape)}, requested {list(shape)}): at least one dimension spans across "
            "two contiguous subspaces. Use .reshape(...) instead.") from None
    return apply_fn(_Reshape, (x,), view_of=x, shape=shape)


def flatten(x, start_dim=0, end_dim=-1):
    x = _tt(x)
    nd = x.ndim
    s, e = _norm_dim(start_dim, nd), _norm_dim(end_dim, nd)
    if nd == 0:
        return reshape(x, 1)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shp = x._meta[0]
    n = 1
    for d in shp[s:e + 1]:
        n *= d
    return reshape(x, shp[:s] + (n,) + shp[e + 1:])


def squeeze(x, dim=None):
    x = _tt(x)
    shp = x._meta[0]
    if dim is None:
        return reshape(x, tuple(s for s in shp if s != 1), grad_fn="SqueezeBackward0")
    if isinstance(dim, (list, tuple)):  # torch: an empty tuple squeezes nothing
        dims = {_norm_dim(d, x.ndim) for d in dim}
        if len(dims) != len(dim):
            raise RuntimeError(f"dim {tuple(dim)} appears multiple times in the list of dims")
        new = tuple(s for k, s in enumerate(shp) if not (k in dims and s == 1))
        return reshape(x, new, grad_fn="SqueezeBackward2")
    dims = _dims(dim, x.ndim)
    new = tuple(s for k, s in enumerate(shp) if not (k in dims and s == 1))
    return reshape(x, new, grad_fn="SqueezeBackward1")


def unsqueeze(x, dim):
    x = _tt(x)
    nd = x.ndim + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}],"
                         f" but got {dim})")
    d = dim % nd
    shp = x._meta[0]
    return reshape(x, shp[:d] + (1,) + shp[d:], grad_fn="UnsqueezeBackward0")


@structural("permute", "PermuteBackward0", linear="all", index_map="gather", gpu=True,
            batch=lambda p, B, shapes: {"perm": (0,) + tuple(q + 1 for q in p["perm"])})
class _Permute:
    def forward(ctx, x, perm):
        return x.transpose(perm)  # a strided view, like torch (NumPy and DeviceArray)

    def vjp(V, ctx, g):
        return (V.transpose(g, tuple(np.argsort(ctx.perm).tolist())),)


def permute(x, *dims, grad_fn=None):
    x = _tt(x)
    dims = _shape_args(dims)
    nd = x.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {nd} is not equal to len(dims) = {len(dims)}")
    perm = tuple(_norm_dim(d, nd) for d in dims)
    if len(set(perm)) != nd:
        raise RuntimeError(f"permute(): duplicate dims are not allowed, got {dims}")
    return apply_fn(_Permute, (x,), grad_fn, view_of=x, perm=perm)


def transpose(x, dim0, dim1):
    x = _tt(x)
    nd = x.ndim
    a, b = _norm_dim(dim0, nd), _norm_dim(dim1, nd)
    if nd == 0:
        return x
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm, grad_fn="TransposeBackward0")


swapaxes = transpose


def t(x):
    x = _tt(x)
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{x.ndim}D")
    if x.ndim < 2:
        return x
    return permute(x, (1, 0), grad_fn="TBackward0")


def _expand_vmap(args, batched, p, B):
    t, = args
    s = t._meta[0]
    k = len(p["shape"]) - (len(s) - 1)
    if k > 0:
        t = t.reshape((s[0],) + (1,) * k + s[1:])
    return apply_fn(_Expand, (t,), shape=(B,) + tuple(p["shape"]))


@structural("expand", "ExpandBackward0", linear="all", index_map="gather", gpu=True,
            batch=lambda p, B, shapes: {"shape": (B,) + tuple(p["shape"])}, vmap=_expand_vmap)
class _Expand:
    def forward(ctx, x, shape):
        return backend_of(x).broadcast_to(x, shape)  # a stride-0 view

    def vjp(V, ctx, g):
        return (V.sum_to(g, ctx.shapes[0]),)


def expand(x, *sizes):
    x = _tt(x)
    sizes = _shape_args(sizes)
    shp = x._meta[0]
    if len(sizes) < len(shp):
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({len(shp)})")
    lead = len(sizes) - len(shp)
    new = []
    for k, s in enumerate(sizes):
        if k < lead:
            if s < 0:
                raise RuntimeError(f"expand: -1 not allowed in leading, non-existing dimension")
            new.append(s)
            continue
        old = shp[k - lead]
        if s == -1:
            s = old
        if old != 1 and s != old:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing "
                               f"size ({old}) at non-singleton dimension {k}.  Target sizes: "
                               f"{list(sizes)}.  Tensor sizes: {list(shp)}")
        new.append(s)
    new = tuple(new)
    if new == shp:
        return x
    return apply_fn(_Expand, (x,), view_of=x, shape=new)


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, shape)


@structural("flip", "FlipBackward0", linear="all", index_map="gather", gpu=True,
            batch=lambda p, B, shapes: {"dims": tuple(d + 1 for d in p["dims"])})
class _Flip:
    """Reverse the order of elements along ``dims`` (a copy, like torch)."""

    def forward(ctx, x, dims):
        return backend_of(x).flip(x, dims)  # a copy, like torch (0-d stays 0-d)

    def vjp(V, ctx, g):
        return (V.flip(g, ctx.dims),)


def flip(x, dims):
    """torch.flip(input, dims): dims is a tuple/list of ints (the method also takes *dims)."""
    x = _tt(x)
    if not isinstance(dims, (list, tuple)):
        raise TypeError(f"flip(): argument 'dims' must be tuple of ints, not "
                        f"{type(dims).__name__}")
    ds = tuple(_norm_dim(d, x.ndim) for d in dims)
    if len(set(ds)) != len(ds):
        raise RuntimeError(f"dim {ds[0]} appears multiple times in the list of dims")
    return apply_fn(_Flip, (x,), dims=ds if x.ndim else ())


def _flip_method(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    return flip(x, tuple(dims))


@structural("cumsum", "CumsumBackward0", linear="all", batch=shift_axis)
class _Cumsum:
    """Cumulative sum along ``axis``; integers and bool accumulate in int64 like torch. Linear:
    its VJP is the reversed cumulative sum of g, its JVP the cumsum of the tangent."""

    def forward(ctx, x, axis, dtype):
        ctx.in_dtype = x.dtype
        out = dtype.np if dtype is not None else (
            x.dtype if x.dtype.kind == "f" else np.dtype(np.int64))
        return np.cumsum(x, axis=axis, dtype=out)

    def vjp(V, ctx, g):
        r = V.flip(V.cumsum(V.flip(g, (ctx.axis,)), ctx.axis), (ctx.axis,))
        return (V.astype(r, ctx.in_dtype),)


def cumsum(x, dim, *, dtype=None):
    """torch.cumsum(input, dim, *, dtype=None)."""
    x = _tt(x)
    axis = _norm_dim(dim, x.ndim)
    d = dtypes.from_any(dtype) if dtype is not None else None
    if x.ndim == 0:
        return apply_fn(_Cumsum, (x.reshape(1),), axis=0, dtype=d).reshape(())
    return apply_fn(_Cumsum, (x,), axis=axis, dtype=d)


@structural("cat", "CatBackward0", linear="all", index_map="gather", readers=("cat",),
            batch=shift_axis, gpu=True)
class _Cat:
    def forward(ctx, *xs, axis, dtype):
        return backend_of(xs[0]).concatenate(xs, axis, dtype)

    def vjp(V, ctx, g):
        out, start, pre = [], 0, (slice(None),) * ctx.axis
        for k, shape in enumerate(ctx.shapes):
            n = shape[ctx.axis]
            out.append(V.getitem(g, pre + (slice(start, start + n),))
                       if ctx.needs_input_grad[k] else None)
            start += n
        return tuple(out)


def cat(tensors, dim=0):
    tensors = [_tt(x) for x in tensors]
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    nonempty = [x for x in tensors if not (x.ndim == 1 and x.numel() == 0)]
    if not nonempty:
        return tensors[0].clone()
    ref = nonempty[0]._data
    nd = ref.ndim
    if nd == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    axis = _norm_dim(dim, nd)
    for k, x in enumerate(nonempty):
        s = x._meta[0]
        if len(s) != nd or any(s[d] != ref.shape[d] for d in range(nd) if d != axis):
            raise RuntimeError(f"Sizes of tensors must match except in dimension {axis}. "
                               f"Expected size {list(ref.shape)} but got size {list(s)} for "
                               f"tensor number {k} in the list.")
    dt = dtypes.result_type([dtypes.from_numpy(x._meta[1]) for x in tensors])
    return apply_fn(_Cat, tuple(nonempty), axis=axis, dtype=dt.np)


concat = cat


@structural("stack", "StackBackward0", linear="all", index_map="gather", gpu=True,
            batch=shift_axis)
class _Stack:
    def forward(ctx, *xs, axis, dtype):  # np.stack: each input gets the new axis, then cat
        shape = xs[0].shape[:axis] + (1,) + xs[0].shape[axis:]
        return backend_of(xs[0]).concatenate([a.reshape(shape) for a in xs], axis, dtype)

    def vjp(V, ctx, g):
        pre = (slice(None),) * ctx.axis
        return tuple(V.getitem(g, pre + (k,)) if ctx.needs_input_grad[k] else None
                     for k in range(len(ctx.shapes)))


def stack(tensors, dim=0):
    tensors = [_tt(x) for x in tensors]
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    s0 = tensors[0]._meta[0]
    for k, x in enumerate(tensors):
        if x._meta[0] != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} "
                               f"at entry 0 and {list(x._meta[0])} at entry {k}")
    nd = len(s0) + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}],"
                         f" but got {dim})")
    dt = dtypes.result_type([dtypes.from_numpy(x._meta[1]) for x in tensors])
    return apply_fn(_Stack, tuple(tensors), axis=dim % nd, dtype=dt.np)


def select(x, dim, index):
    x = _tt(x)
    axis = _norm_dim(dim, x.ndim)
    return getitem(x, (slice(None),) * axis + (index,))


def split(x, split_size_or_sections, dim=0):
    x = _tt(x)
    axis = _norm_dim(dim, x.ndim)
    n = x._meta[0][axis]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0 and n:
            raise RuntimeError(f"split expects split_size be non-negative, but got {s}")
        # torch: at least one piece (an empty dimension gives one empty piece)
        sizes = [s] * (n // s) + ([n % s] if n % s else []) if s and n else [0]
        name = "SplitBackward0"
    else:
        sizes = list(split_size_or_sections)
        if any(v < 0 for v in sizes):  # a negative size would slice backwards silently
            raise RuntimeError("split_with_sizes expects split_sizes have only non-negative "
                               f"entries, but got split_sizes={sizes}")
        if builtins_sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {axis}), but got "
                               f"split_sizes={sizes}")
        name = "SplitWithSizesBackward0"
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, (slice(None),) * axis + (slice(start, start + s),), grad_fn=name))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    x = _tt(x)
    axis = _norm_dim(dim, x.ndim)
    n = x._meta[0][axis]
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    if n == 0:  # torch: ``chunks`` empty pieces (split would give one)
        return split(x, [0] * chunks, axis)
    return split(x, -(-n // chunks), axis)


def unbind(x, dim=0):
    x = _tt(x)
    axis = _norm_dim(dim, x.ndim)
    return tuple(select(x, axis, k) for k in range(x._meta[0][axis]))


import builtins as _builtins  # noqa: E402

builtins_sum = _builtins.sum
builtins_min, builtins_max = _builtins.min, _builtins.max

# ============================================================================================
# Indexing


def _convert_index(idx, shape):
    """Tensors/lists inside an index become integer/bool arrays; validates index dtypes."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    out, advanced = [], False
    for i in idx:
        if isinstance(i, Tensor):
            i = i._host  # index arithmetic happens on the host (a GPU index is copied back)
            if i.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool "
                                 f"tensors (got {dtypes.from_numpy(i.dtype)})")
            advanced = True
        elif isinstance(i, (list, np.ndarray)):
            i = np.asarray(i)
            if i.size == 0 and i.dtype.kind == "f":  # x[[]]: an empty integer index
                i = i.astype(np.int64)
            if i.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool "
                                 "tensors")
            advanced = True
        elif isinstance(i, (bool, np.bool_)):
            advanced = True
        elif not (i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral))):
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(i).__name__})")
        if isinstance(i, slice) and i.step is not None and i.step <= 0:
            raise ValueError("step must be greater than zero")
        out.append(i)
    if not advanced and Ellipsis not in out:
        out.append(Ellipsis)  # numpy then returns a 0-d array view instead of a scalar
    return tuple(out), advanced


def _index_name(idx, advanced):
    if advanced:
        return "IndexBackward0"
    if any(isinstance(i, numbers.Integral) for i in idx):
        return "SelectBackward0"
    if any(isinstance(i, slice) for i in idx):
        return "SliceBackward0"
    if any(i is None for i in idx):
        return "UnsqueezeBackward0"
    return "AliasBackward0"


def _apply_index(a, idx, shape):
    try:
        return backend_of(a).getitem(a, idx)
    except IndexError as e:
        raise IndexError(f"{e} (indexing a tensor of shape {tuple(shape)})") from None


def _shift_index(p, B, in_shape, out_shape=None):
    """Batch rule of an index: a leading full slice, provided the batch axis stays in front
    (None otherwise: advanced indices after a basic one can move it)."""
    idx = (slice(None),) + tuple(p["idx"])
    try:
        got = np.empty((B,) + tuple(in_shape), np.bool_)[idx].shape
        want = np.empty(tuple(in_shape), np.bool_)[tuple(p["idx"])].shape
    except (IndexError, ValueError):
        return None
    return {**p, "idx": idx} if got == (B,) + want else None


@structural("getitem", "IndexBackward0", linear="all", index_map="gather", gpu=True,
            batch=lambda p, B, shapes: _shift_index(p, B, shapes[0]))
class _GetItem:
    def forward(ctx, x, idx):  # basic: a view, like torch; advanced: a copy
        return _apply_index(x, idx, x.shape)

    def vjp(V, ctx, g):
        return (V.index_add(g, ctx.shapes[0], ctx.idx),)


def _shift_index_add(p, B, shapes):
    q = _shift_index(p, B, p["shape"])
    return None if q is None else {**q, "shape": (B,) + tuple(p["shape"])}


@structural("index_backward", "IndexPutBackward0", linear="all", batch=_shift_index_add,
            gpu=True)
class _IndexBackward:
    """zeros(shape) with g scatter-added at idx (duplicates accumulate)."""

    def forward(ctx, g, shape, idx):
        return backend_of(g).index_add(shape, idx, g)

    def vjp(V, ctx, gg):
        return (V.getitem(gg, ctx.idx),)


def getitem(x, index, grad_fn=None):
    x = _tt(x)
    idx, advanced = _convert_index(index, x._meta[0])
    return apply_fn(_GetItem, (x,), grad_fn or _index_name(idx, advanced),
                    view_of=None if advanced else x, idx=idx)


@structural("setitem", "CopySlices")
class _SetItem:
    """Gradient of ``x[idx] = v``: g with idx zeroed for the old x, g[idx] for v (recorded by
    ``setitem`` itself: there is no forward to run)."""

    def vjp(V, ctx, g):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = V.zero_at(g, ctx.idx)
        if ctx.needs_input_grad[1]:
            gv = V.astype(V.sum_to(V.getitem(g, ctx.idx), ctx.shapes[1]), ctx.v_dtype)
        return gx, gv


def _check_inplace(x, name):
    if _STATE.enabled and x._rg and x.grad_fn is None:
        raise RuntimeError(f"a leaf Variable that requires grad is being used in an in-place "
                           f"operation ({name}).")
    if _STATE.enabled and x._base is not None and (x._rg or x._base._rg):
        raise NotImplementedError(
            f"{name}: in-place modification of a view of a tensor that requires grad is not "
            "supported yet; clone() the tensor or use an out-of-place op")


def _readonly_error(x, op):
    """The error for writing into a tensor whose array is read-only, saying why it is: a
    broadcast (expand) view, a view of one (its root tensor is writable), or memory shared with
    a read-only NumPy array (from_numpy / as_tensor / DLPack)."""
    a, root = x._data, x._base
    if any(st == 0 and n > 1 for st, n in zip(a.strides, a.shape)) or \
            (root is not None and root._arr is not None and root._arr.flags.writeable):
        return RuntimeError(
            f"unsupported operation ({op}): the tensor is a broadcast (expanded) view, or a "
            "view of one: more than one element refers to a single memory location. "
            "clone() it before writing into it")
    return RuntimeError(
        f"unsupported operation ({op}): the tensor's memory is read-only: it shares a NumPy "
        "array whose writeable flag is False (from jitgrad.from_numpy / as_tensor of a "
        "read-only array, or a read-only DLPack export). Copy the array (np.array(a)) or "
        "clone() the tensor before writing into it")


def setitem(x, index, value):
    idx, advanced = _convert_index(index, x._meta[0])
    v = value if isinstance(value, Tensor) else None
    rec = _STATE.enabled and (x._rg or (v is not None and v._rg))
    if rec:
        _check_inplace(x, "__setitem__")
    dev = device_key(x)  # values come to x's device (a tensor or array-like is copied over)
    if v is not None:
        if device_key(v) != dev:
            v = v.to(dev)
    elif dev != "cpu" and not isinstance(value, numbers.Number):
        v = Tensor._make(BACKENDS[dev].from_host(np.asarray(value, dtype=x._meta[1])))
    vd = v._data if v is not None else value
    if x._meta[1].kind != "f" and v is not None and v._meta[1].kind == "f":
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{x.dtype} for the destination and {v.dtype} for the source.")
    try:
        target_shape = np.empty(x._meta[0], np.bool_)[idx].shape
    except IndexError as e:
        raise IndexError(f"{e} (indexing a tensor of shape {tuple(x.shape)})") from None
    if v is not None:
        vshape = v._meta[0]
        while len(vshape) > len(target_shape) and vshape[0] == 1:  # torch drops leading 1s
            vshape = vshape[1:]
        if vshape != v._meta[0]:
            v = v.reshape(vshape)
            vd = v._data
        try:
            broadcast_shapes(vshape, target_shape)
            if np.broadcast_shapes(vshape, target_shape) != tuple(target_shape):
                raise ValueError  # the value must broadcast *to* the target (torch)
        except (RuntimeError, ValueError):
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(v.shape)} cannot be "
                               f"broadcast to indexing result of shape {list(target_shape)}") \
                from None
    if not x._data.flags.writeable:
        raise _readonly_error(x, "__setitem__")
    if rec:
        ctx_node_inputs = (x, v if v is not None else Tensor._make(np.asarray(vd)))
        node = node_class(FunctionNode, "CopySlices")(tuple(grad_edge(t) for t in ctx_node_inputs))
        ctx = Ctx()
        ctx.idx = idx
        ctx.shapes = [x._meta[0], ctx_node_inputs[1]._meta[0]]
        ctx.v_dtype = ctx_node_inputs[1]._meta[1]
        ctx.needs_input_grad = (x._rg, ctx_node_inputs[1]._rg)
        node.fn, node.ctx = _SetItem, ctx
    lazy.flush()  # pending lazy values may read x's old contents
    x._data[idx] = vd
    x._vc[0] += 1
    if rec:
        x.grad_fn = node
        x._rg = True
        if x._views is not None:
            rebase_views(x)


# ============================================================================================
# Linear algebra (BLAS through NumPy's matmul)


def _pad_batched(t, nd):
    """(B,) + s -> (B,) + (1,) * (nd - len(s)) + s: align a batched value for broadcasting."""
    s = t._meta[0]
    k = nd - (len(s) - 1)
    return t if k <= 0 else t.reshape((s[0],) + (1,) * k + s[1:])


def _matmul_vmap(args, batched, p, B):
    """matmul with a leading batch axis on one operand (the other is a primal) or on both
    (vmap): a batched 1-D operand is a stack of vectors, so it is padded/unsqueezed rather
    than read as a matrix."""
    a, b = args
    sa, sb = a._meta[0], b._meta[0]
    if batched[0] and batched[1]:
        na, nb = len(sa) - 1, len(sb) - 1
        if na == 1 and nb == 1:
            return (a * b).sum(dim=-1)
        if na == 1:
            return _matmul_vmap((a.unsqueeze(-2), b), batched, p, B).squeeze(-2)
        if nb == 1:
            return _matmul_vmap((a, b.unsqueeze(-1)), batched, p, B).squeeze(-1)
        a, b = _pad_batched(a, nb), _pad_batched(b, na)
        if sa[-1] == 1 and np.dtype(a._meta[1]).kind == "f":
            # stacks of outer products (per-sample weight gradients): one broadcast multiply,
            # the same products (NumPy's stacked matmul with k = 1 is ~4x slower)
            return a * b
        return matmul(a, b)
    if batched[0]:
        na, nb = len(sa) - 1, len(sb)
        if na == 1 and nb == 1:
            return (a * b).sum(dim=-1)
        if na == 1:
            return matmul(_pad_batched(a.unsqueeze(-2), nb), b).squeeze(-2)
        return matmul(_pad_batched(a, nb), b)
    na, nb = len(sa), len(sb) - 1
    if na == 1 and nb == 1:
        return (b * a).sum(dim=-1)
    if nb == 1:
        return matmul(a, _pad_batched(b.unsqueeze(-1), na)).squeeze(-1)
    return matmul(a, _pad_batched(b, na))


@structural("matmul", "MmBackward0", linear=(0, 1), index_map="bilinear", gpu=True,
            batch=same_params, vmap=_matmul_vmap, readers=("matmul",))
class _Matmul:
    def forward(ctx, a, b):
        return backend_of(a).matmul(a, b)

    def vjp(V, ctx, g):
        a, b = V.saved(ctx)
        sa, sb = ctx.shapes
        na, nb = len(sa) - V.nb, len(sb) - V.nb   # the primal ranks (batched: one more)
        gshape = list(V.shape(g))
        if na == 1:  # (k,) -> (1, k); the product gets a row axis
            a = V.reshape(a, V.shape(a)[:-1] + (1,) + V.shape(a)[-1:])
            sa = sa[:-1] + (1,) + sa[-1:]
            gshape.insert(len(gshape) - (0 if nb == 1 else 1), 1)
        if nb == 1:  # (k,) -> (k, 1); the product gets a column axis
            b = V.reshape(b, V.shape(b) + (1,))
            sb = sb + (1,)
            gshape.append(1)
        g = V.reshape(g, gshape)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = V.reshape(V.sum_to(V.matmul(g, V.mT(b)), sa), ctx.shapes[0])
        if ctx.needs_input_grad[1]:
            gb = V.reshape(V.sum_to(V.matmul(V.mT(a), g), sb), ctx.shapes[1])
        return ga, gb


def _matmul_name(a, b):
    if a.ndim == 2 and b.ndim == 2:
        return "MmBackward0"
    if a.ndim == 1 and b.ndim == 1:
        return "DotBackward0"
    if a.ndim == 2 and b.ndim == 1:
        return "MvBackward0"
    if a.ndim == 1 and b.ndim == 2:
        return "SqueezeBackward4"
    return "BmmBackward0" if a.ndim == b.ndim == 3 else "UnsafeViewBackward0"


def matmul(a, b):
    a, b = _tt(a), _tt(b)
    ad, bd = a._data, b._data
    if ad.ndim == 0 or bd.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{ad.ndim}D and {bd.ndim}D")
    if ad.dtype != bd.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{dtypes.from_numpy(ad.dtype)} != {dtypes.from_numpy(bd.dtype)}")
    k_a = ad.shape[-1]
    k_b = bd.shape[-2] if bd.ndim > 1 else bd.shape[0]
    if k_a != k_b:
        if ad.ndim == 1 and bd.ndim == 1:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{k_a}] and src "
                               f"[{k_b}] to have the same number of elements, but got {k_a} and "
                               f"{k_b} elements respectively")
        sa = "x".join(map(str, ad.shape if ad.ndim > 1 else (1,) + ad.shape))
        sb = "x".join(map(str, bd.shape if bd.ndim > 1 else bd.shape + (1,)))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({sa} and {sb})")
    if ad.ndim > 2 or bd.ndim > 2:
        broadcast_shapes(ad.shape[:-2], bd.shape[:-2] if bd.ndim > 1 else ())
    return apply_fn(_Matmul, (a, b), _matmul_name(ad, bd), save=True)


def mm(a, b):
    if a.dim() != 2 or b.dim() != 2:
        raise RuntimeError(f"mm: expected 2D tensors, got {a.dim()}D and {b.dim()}D")
    return matmul(a, b)


def bmm(a, b):
    if a.dim() != 3 or b.dim() != 3:
        raise RuntimeError(f"bmm: expected 3D tensors, got {a.dim()}D and {b.dim()}D")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {a.shape[0]} and {b.shape[0]}")
    return matmul(a, b)


def mv(a, b):
    if a.dim() != 2 or b.dim() != 1:
        raise RuntimeError(f"mv: expected a 2D matrix and a 1D vector, got {a.dim()}D and "
                           f"{b.dim()}D")
    return matmul(a, b)


def dot(a, b):
    if a.dim() != 1 or b.dim() != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.dim()}D and {b.dim()}D tensors")
    return matmul(a, b)


inner = dot


def outer(a, b):
    if a.dim() != 1 or b.dim() != 1:
        raise RuntimeError(f"outer: expected 1D tensors, got {a.dim()}D and {b.dim()}D")
    return mul(a.unsqueeze(1), b.unsqueeze(0))


ger = outer


# ============================================================================================
# Softmax family (row kernels over an (A, R, B) view)


def _softmax_jvp(ctx, x, out, t):
    return out * (t - sum(t * out, ctx.axis, keepdim=True))


def _log_softmax_jvp(ctx, x, out, t):
    return t - sum(t * exp(out), ctx.axis, keepdim=True)


def _softmax_forward(ctx, x, axis, log):
    be = _be(x)
    x3, _ = be.arb_view(x, (axis,))
    out = be.empty(x3.shape, x.dtype)
    if out.size:
        be.softmax_arb(x3, out, log)
    out = out.reshape(x.shape)
    ctx.out = out
    return out


@structural("softmax", "SoftmaxBackward0", batch=shift_axis,
            jvp=_softmax_jvp, gpu=True)
class _Softmax:
    forward = _softmax_forward

    def vjp(V, ctx, g):  # reads the saved output, like torch
        return (V.softmax_vjp(ctx, g, False),)


def _apply_softmax(cls, x, axis):
    """Run softmax/log_softmax, saving (and version-checking) the output rather than the input:
    writing into the input in place afterwards is fine, like torch."""
    res = apply_fn(cls, (x,), axis=axis, log=cls is _LogSoftmax)
    node = res.grad_fn
    if isinstance(node, FunctionNode) and node.fn is cls:
        node.saved_versions = ((res._vc, res._vc[0], Tensor._make(node.ctx.out)),)
    return res


@structural("log_softmax", "LogSoftmaxBackward0", batch=shift_axis,
            jvp=_log_softmax_jvp, gpu=True)
class _LogSoftmax:
    forward = _softmax_forward

    def vjp(V, ctx, g):
        return (V.softmax_vjp(ctx, g, True),)


def _softmax_dim(x, dim):
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return _norm_dim(dim, x.ndim)


def softmax(x, dim=None, dtype=None):
    x = _tt(x)
    if dtype is not None:
        x = x.to(dtype)
    elif x._meta[1].kind != "f":
        x = x.to(dtypes.get_default_dtype())
    if x.ndim == 0:
        _norm_dim(0 if dim is None else dim, 0)
        return _apply_softmax(_Softmax, x.reshape(1), 0).reshape(())
    return _apply_softmax(_Softmax, x, _softmax_dim(x, dim))


def log_softmax(x, dim=None, dtype=None):
    x = _tt(x)
    if dtype is not None:
        x = x.to(dtype)
    elif x._meta[1].kind != "f":
        x = x.to(dtypes.get_default_dtype())
    if x.ndim == 0:
        _norm_dim(0 if dim is None else dim, 0)
        return _apply_softmax(_LogSoftmax, x.reshape(1), 0).reshape(())
    return _apply_softmax(_LogSoftmax, x, _softmax_dim(x, dim))


# ============================================================================================
# In-place ops


def _writable_target(x, others):
    """x's array when an eager kernel may write its result straight into it: a C-contiguous
    NumPy array that no other operand overlaps (reading x itself is safe: each element is read
    before it is written); None otherwise (pending operands take realize_into's path)."""
    arr = x._arr
    if type(arr) is not np.ndarray or not arr.flags.c_contiguous:
        return None
    for o in others:
        if isinstance(o, Tensor):
            a = o._arr
            if a is None or (a is not arr and np.may_share_memory(a, arr)):
                return None
    return arr


def _inplace_ew(x, name, *others, grad_fn=None):
    row = _E[name]
    rec = _STATE.enabled and (x._rg or any(isinstance(o, Tensor) and o._rg for o in others))
    into = None  # x's array when the eager kernel writes it directly
    if rec:
        _check_inplace(x, name + "_")
    if x._arr is not None and not x._arr.flags.writeable:
        raise _readonly_error(x, name + "_")
    if rec:
        src = Tensor._make(x._data.copy(), x._rg, x.grad_fn)
        res = apply_elementwise(row, (src,) + others, grad_fn)
    else:
        if x._arr is not None and x._arr.size < lazy.INPLACE_NOW_MAX and \
                _STATE.fusion is not lazy.FUSE_ALL:  # (jitgrad.compile records the fused group)
            for o in others:  # (p -= lr * g: lr * g now, then one eager kernel into p)
                if isinstance(o, Tensor) and o._arr is None:
                    lazy.realize_now(o)
        into = _writable_target(x, others)
        if into is not None:  # pending values that read x see its old contents
            lazy.realize_readers(into)
        res = apply_elementwise(row, (x,) + others, grad_fn, into=into)
    if res._meta[0] != x._meta[0]:
        raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast shape "
                           f"{list(res.shape)}")
    if res._meta[1] != x._meta[1] and not np.can_cast(res._meta[1], x._meta[1],
                                                            "same_kind"):
        raise RuntimeError(f"result type {dtypes.from_numpy(res._meta[1])} can't be cast to "
                           f"the desired output type {x.dtype}")
    # into: the kernel wrote x already; not recorded: realize_into lets one kernel write x
    if (into is None or res._arr is not into) and (rec or not lazy.realize_into(res, x._arr)):
        lazy.flush()
        x._data[...] = res._data
    x._vc[0] += 1
    if rec:
        x.grad_fn = res.grad_fn
        x._rg = True
        if x._views is not None:
            rebase_views(x)
    return x


def add_(x, y, alpha=1):
    return _inplace_ew(x, "add", _t(y) if alpha == 1 else mul(_t(y), alpha))


def sub_(x, y, alpha=1):
    return _inplace_ew(x, "sub", _t(y) if alpha == 1 else mul(_t(y), alpha))


def mul_(x, y):
    return _inplace_ew(x, "mul", _t(y))


def div_(x, y, *, rounding_mode=None):
    if rounding_mode == "floor":
        return floor_divide_(x, y)
    if rounding_mode == "trunc":
        return _div_trunc_(x, y)
    if rounding_mode is not None:
        div(x, y, rounding_mode)  # raises
    return _inplace_ew(x, "div", _t(y))


def pow_(x, y):
    return _inplace_ew(x, "pow", _t(y), grad_fn="PowBackward0")


def clamp_(x, min=None, max=None):
    lo, hi = _clamp_bounds(x, None if min is None else _t(min), None if max is None else _t(max))
    return _inplace_ew(x, "clamp", lo, hi)


def neg_(x):
    return _inplace_ew(x, "neg")


def _inplace_unary(name, rounding=False):
    def f(x):
        if rounding and x._meta[1].kind in "iub":
            globals()[name](x)  # torch's checks (bool raises); integers are already integral
            return x
        if name == "frac" and x._meta[1].kind in "iub":
            frac(x)  # raises: floating tensors only
        return _inplace_ew(x, name)
    f.__name__ = name + "_"
    f.__doc__ = f"In-place {name} (registry row ops.ELEMENTWISE[{name!r}])."
    return f


def _inplace_binary(name, check=None):
    """The in-place form of a binary registry row; ``check(name, x, other)``: the operand
    checks the out-of-place op runs (only the checks: not the op out of place as well)."""
    def f(x, other):
        other = _t(other)
        if check is not None:
            check(name, x, other)
        return _inplace_ew(x, name, other)
    f.__name__ = name + "_"
    f.__doc__ = f"In-place {name} (registry row ops.ELEMENTWISE[{name!r}])."
    return f


erfc_ = _inplace_unary("erfc")
log2_ = _inplace_unary("log2")
log10_ = _inplace_unary("log10")
exp2_ = _inplace_unary("exp2")
sinh_ = _inplace_unary("sinh")
cosh_ = _inplace_unary("cosh")
asinh_ = _inplace_unary("asinh")
acosh_ = _inplace_unary("acosh")
atanh_ = _inplace_unary("atanh")
asin_ = _inplace_unary("asin")
acos_ = _inplace_unary("acos")
atan_ = _inplace_unary("atan")
deg2rad_ = _inplace_unary("deg2rad")
rad2deg_ = _inplace_unary("rad2deg")
frac_ = _inplace_unary("frac")
floor_ = _inplace_unary("floor", rounding=True)
ceil_ = _inplace_unary("ceil", rounding=True)
trunc_ = _inplace_unary("trunc", rounding=True)
atan2_ = _inplace_binary("atan2")
hypot_ = _inplace_binary("hypot")
fix_ = trunc_
arcsinh_, arccosh_, arctanh_, arcsin_, arccos_, arctan_, arctan2_ = (
    asinh_, acosh_, atanh_, asin_, acos_, atan_, atan2_)
_round0_ = _inplace_unary("round", rounding=True)


def round_(x, *, decimals=0):
    """In-place round (half to even); with ``decimals`` through the out-of-place op."""
    if decimals == 0:
        return _round0_(x)
    return x.copy_(round(x, decimals=decimals))


def zero_(x):
    return fill_(x, 0)


def fill_(x, value):
    if isinstance(value, Tensor):
        value = value.item()
    setitem(x, Ellipsis, value)
    return x


def copy_(x, src, non_blocking=False):
    setitem(x, Ellipsis, _tt(src))
    return x


# ============================================================================================
# Elementwise, issue 16 breadth: rounding divisions and remainders, lerp/addcmul/addcdiv,
# xlogy, logit, copysign, nan_to_num and predicates, special functions, bitwise and logical
# ops. Registry rows (ops.py) where torch's formula or gradient needs one; compositions of the
# ops above where those are exact.

def _kind_name(cdt):
    return {"bool": "Bool", "int64": "Long", "int32": "Int", "float32": "Float",
            "float64": "Double"}.get(cdt.name, cdt.name)


def _check_int_division(name, x, y):
    """torch's checks before a rounding division: no bool result, and an integer division by
    zero raises (the integer kernels would silently give 0). Returns the operands."""
    cdt = _result_dtype(_E[name], (x, y))
    if cdt is dtypes.bool_:
        raise NotImplementedError(f'"{name}_cpu" not implemented for \'Bool\'')
    if not cdt.is_floating_point:
        if isinstance(y, Tensor):
            if not y.is_cuda and bool((y._data == 0).any()):
                raise RuntimeError("ZeroDivisionError")
        elif y == 0:
            raise RuntimeError("ZeroDivisionError")
    return x, y


def fmod(input, other):
    """C's fmod: the remainder has the dividend's sign (integers: C's %); gradient g to the
    dividend, -g * trunc(input / other) to the divisor."""
    x = _tt(input)
    return ew("fmod", *_check_int_division("fmod", x, _t(other)))


def remainder(input, other):
    """Python's modulus (torch.remainder, ``%``): the result has the divisor's sign."""
    x, y = _t(input), _t(other)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        raise TypeError("remainder(): expected a Tensor operand")
    return ew("remainder", *_check_int_division("remainder", x, y))


def floor_divide(input, other):
    """Division rounded down (``//``, div(rounding_mode='floor')), computed like Python's float
    ``//`` (exact where input / other would round across an integer); zero gradient."""
    x, y = _t(input), _t(other)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        raise TypeError("floor_divide(): expected a Tensor operand")
    x, y = _check_int_division("floor_divide", x, y)
    return ew("floor_divide", x, y)


def _div_trunc(x, y):
    x, y = _check_int_division("div_trunc", _t(x), _t(y))
    return ew("div_trunc", x, y)


def true_divide(input, other):
    """Alias of div (always a true division)."""
    return div(input, other)


def lerp(input, end, weight):
    """input + weight * (end - input), computed from the nearer end like torch (exact at weight
    0 and 1); a Python-number weight or a tensor weight (which gets a gradient too)."""
    x, e, w = _tt(input), _tt(end), _t(weight)
    for t, what in ((e, "end"), (w, "weight")):
        if isinstance(t, Tensor) and t.dtype != x.dtype:
            raise RuntimeError(f"expected dtype {x.dtype} for `{what}` but got dtype {t.dtype}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f'"lerp_kernel_scalar" not implemented for \'{_kind_name(x.dtype)}\'')
    if isinstance(w, Tensor):
        return ew("lerp", x, e, w)
    return apply_elementwise(_E["lerp"], (x, e, w), "LerpBackward0")


def _check_value(x, value, what):
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, float) and not x.dtype.is_floating_point:
        raise RuntimeError(f"For integral input tensors, argument {what} must not be a floating "
                           "point number.")
    return value


def addcmul(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 * tensor2 (torch's order: (value * tensor1) * tensor2)."""
    x, t1, t2 = _tt(input), _tt(tensor1), _tt(tensor2)
    value = _check_value(x, value, "value")
    return add(x, mul(t1 if value == 1 else mul(t1, value), t2))


def addcdiv(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 / tensor2; integer tensor1 and tensor2 refused like torch."""
    x, t1, t2 = _tt(input), _tt(tensor1), _tt(tensor2)
    if not t1.dtype.is_floating_point and not t2.dtype.is_floating_point:
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a "
                           "future release addcdiv will perform a true division of tensor1 and "
                           "tensor2. The current addcdiv behavior can be replicated using "
                           "floor_divide for integral inputs (self + value * tensor1 // tensor2)"
                           " and division for float inputs (self + value * tensor1 / tensor2). "
                           "The new addcdiv behavior can be implemented with true_divide "
                           "(self + value * torch.true_divide(tensor1, tensor2).")
    value = _check_value(x, value, "value")
    return add(x, div(t1 if value == 1 else mul(t1, value), t2))


def xlogy(input, other):
    """input * log(other), 0 where input == 0 (NaN where other is NaN)."""
    x, y = _t(input), _t(other)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        raise TypeError("xlogy(): expected a Tensor operand")
    return ew("xlogy", x, y)


def xlog1py(input, other):
    """input * log1p(other), 0 where input == 0 (torch.special.xlog1py)."""
    x, y = _t(input), _t(other)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        raise TypeError("xlog1py(): expected a Tensor operand")
    return ew("xlog1py", x, y)


def logit(input, eps=None):
    """log(p / (1 - p)); with ``eps`` the input is clamped to [eps, 1 - eps] first (gradient 0
    outside), without it the gradient is NaN outside [0, 1], like torch."""
    x = _tt(input)
    if eps is None:
        return ew("logit", x)
    if not x.dtype.is_floating_point:
        x = x.to(dtypes.get_default_dtype())
    return ew("logit", clamp(x, eps, 1 - eps))


def copysign(input, other):
    """|input| with other's sign (the sign bit: -0.0 counts as negative); floating result."""
    return ew("copysign", _tt(input), _t(other))


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced (defaults: 0 and the dtype's largest/lowest finite value);
    integer and bool tensors are returned as a copy. Gradient: g where the input is finite."""
    x = _tt(input)
    if not x.dtype.is_floating_point:
        return x.clone()
    info = np.finfo(x.dtype.np)
    hi = float(info.max) if posinf is None else posinf
    lo = float(info.min) if neginf is None else neginf
    return where(ne(x, x), nan, where(eq(x, np.inf), hi, where(eq(x, -np.inf), lo, x)))


def isinf(input):
    x = _tt(input)
    if not x.dtype.is_floating_point:
        return ne(x, x)  # all False, in x's shape and device
    return eq(abs(x), np.inf)


def isposinf(input):
    x = _tt(input)
    return eq(x, np.inf) if x.dtype.is_floating_point else ne(x, x)


def isneginf(input):
    x = _tt(input)
    return eq(x, -np.inf) if x.dtype.is_floating_point else ne(x, x)


def isreal(input):
    """Every element of a real tensor is real."""
    x = _tt(input)
    return full(tuple(x.shape), True, dtype=dtypes.bool_, device=x.device)


def signbit(input):
    """True where the sign bit is set (-0.0 and negative NaNs included)."""
    x = _tt(input)
    if x.dtype is dtypes.bool_:
        return ne(x, x)
    if not x.dtype.is_floating_point:
        return lt(x, 0)
    return lt(ew("copysign", 1.0, x.detach()), 0)


def sgn(input):
    """sign for real tensors."""
    return sign(input)


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def heaviside(input, values):
    """0 where input < 0, values where input == 0, 1 where input > 0 (NaN counts as < 0)."""
    x, v = _tt(input), _tt(values)
    if x.dtype != v.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes")
    return where(eq(x, 0), v, gt(x, 0).to(x.dtype))


def fmax(input, other):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN); the gradient goes to
    the chosen element, like torch."""
    x, y = _tt(input), _tt(other)
    return where(logical_or(ge(x, y), ne(y, y)), x, y)


def fmin(input, other):
    """Elementwise minimum that ignores NaN."""
    x, y = _tt(input), _tt(other)
    return where(logical_or(le(x, y), ne(y, y)), x, y)


def float_power(input, exponent):
    """pow computed in float64 (the result is float64 whatever the inputs)."""
    x, e = _t(input), _t(exponent)
    x = x.to(dtypes.float64) if isinstance(x, Tensor) else float(x)
    e = e.to(dtypes.float64) if isinstance(e, Tensor) else float(e)
    return pow(x, e)


sinc = _unary("sinc")
lgamma = _unary("lgamma")
digamma = _unary("digamma")
psi = digamma
erfinv = _unary("erfinv")


def polygamma(n, input):
    """The n-th derivative of digamma (n = 0: digamma itself)."""
    if isinstance(n, Tensor):
        n = n.item()
    if int(n) != n or n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    x = _tt(input)
    if n == 0:
        return digamma(x)
    return apply_elementwise(_E["polygamma"], (int(n), x))


_BITWISE_KERNELS: dict = {}  # name -> (torch's kernel name for the message, is a shift)


def _check_bitwise(name, x, y) -> None:
    """torch's operand checks of a bitwise op (an integer or bool result; shifts: integer)."""
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        raise TypeError(f"{name}(): expected a Tensor operand")
    kernel_name, shift = _BITWISE_KERNELS[name]
    cdt = _result_dtype(_E[name], (x, y))
    if cdt.is_floating_point or (shift and cdt is dtypes.bool_):
        raise RuntimeError(f'"{kernel_name}_cpu" not implemented for '
                           f"'{_kind_name(cdt)}'")


def _bitwise(name, kernel_name, shift=False):
    _BITWISE_KERNELS[name] = (kernel_name, shift)

    def f(input, other):
        x, y = _t(input), _t(other)
        _check_bitwise(name, x, y)
        return ew(name, x, y)
    f.__name__ = name
    f.__doc__ = f"Elementwise {name} of integer or bool tensors (not differentiable)."
    return f


bitwise_and = _bitwise("bitwise_and", "bitwise_and")
bitwise_or = _bitwise("bitwise_or", "bitwise_or")
bitwise_xor = _bitwise("bitwise_xor", "bitwise_xor")
bitwise_left_shift = _bitwise("bitwise_left_shift", "lshift", shift=True)
bitwise_right_shift = _bitwise("bitwise_right_shift", "rshift", shift=True)


def bitwise_not(input):
    """~x for integers, logical not for bool."""
    x = _tt(input)
    if x.dtype.is_floating_point:
        raise RuntimeError(f"\"bitwise_not_cpu\" not implemented for '{_kind_name(x.dtype)}'")
    return ew("bitwise_not", x)


def _invert(x):
    """``~x``: torch's message for floating tensors."""
    if x.dtype.is_floating_point:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type "
                        "tensors")
    return ew("bitwise_not", x)


def logical_or(input, other):
    return ew("logical_or", _tt(input).bool(), _tt(other).bool())


def logical_xor(input, other):
    return ew("logical_xor", _tt(input).bool(), _tt(other).bool())


# -- in-place forms (the result is cast to the target's dtype, as torch does)

def _inplace_int_division(name):
    def f(x, other):
        y = _t(other)
        _check_int_division(name, x, y)
        return _inplace_ew(x, name, y)
    f.__name__ = name + "_"
    f.__doc__ = f"In-place {name}."
    return f


fmod_ = _inplace_int_division("fmod")
remainder_ = _inplace_int_division("remainder")
floor_divide_ = _inplace_int_division("floor_divide")


def true_divide_(x, other):
    return div_(x, other)


def _div_trunc_(x, y):
    y = _t(y)
    _check_int_division("div_trunc", x, y)
    return _inplace_ew(x, "div_trunc", y)


def lerp_(x, end, weight):
    out = lerp(x, end, weight)
    if tuple(out.shape) != tuple(x.shape):
        raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast shape"
                           f" {list(out.shape)}")
    return x.copy_(out)


def addcmul_(x, tensor1, tensor2, *, value=1):
    value = _check_value(x, value, "value")
    t1 = _tt(tensor1)
    return add_(x, mul(t1 if value == 1 else mul(t1, value), tensor2))


def addcdiv_(x, tensor1, tensor2, *, value=1):
    t1, t2 = _tt(tensor1), _tt(tensor2)
    if not t1.dtype.is_floating_point and not t2.dtype.is_floating_point:
        addcdiv(x, t1, t2)  # raises torch's message
    value = _check_value(x, value, "value")
    return add_(x, div(t1 if value == 1 else mul(t1, value), t2))


def xlogy_(x, other):
    return _inplace_ew(x, "xlogy", _t(other))


def copysign_(x, other):
    return _inplace_ew(x, "copysign", _t(other))


def logit_(x, eps=None):
    if eps is None:
        return _inplace_ew(x, "logit")
    return x.copy_(logit(x, eps))


def nan_to_num_(x, nan=0.0, posinf=None, neginf=None):
    if not x.dtype.is_floating_point:
        return x
    return x.copy_(nan_to_num(x, nan, posinf, neginf))


def clamp_min_(x, min):
    return clamp_(x, min=min)


def clamp_max_(x, max):
    return clamp_(x, max=max)


def heaviside_(x, values):
    return x.copy_(heaviside(x, values))


def float_power_(x, exponent):
    if x.dtype is not dtypes.float64:
        raise RuntimeError(f"the base given to float_power_ has dtype {_kind_name(x.dtype)} but "
                           "the operation's result requires dtype Double")
    return pow_(x, exponent.to(dtypes.float64) if isinstance(exponent, Tensor) else exponent)


sinc_ = _inplace_unary("sinc")
lgamma_ = _inplace_unary("lgamma")
digamma_ = _inplace_unary("digamma")
erfinv_ = _inplace_unary("erfinv")


def polygamma_(x, n):
    """In-place polygamma (method form: ``x.polygamma_(n)``)."""
    if int(n) == 0:
        return digamma_(x)
    if int(n) != n or n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    return x.copy_(polygamma(n, x))


bitwise_and_ = _inplace_binary("bitwise_and", _check_bitwise)
bitwise_or_ = _inplace_binary("bitwise_or", _check_bitwise)
bitwise_xor_ = _inplace_binary("bitwise_xor", _check_bitwise)
bitwise_left_shift_ = _inplace_binary("bitwise_left_shift", _check_bitwise)
bitwise_right_shift_ = _inplace_binary("bitwise_right_shift", _check_bitwise)


def bitwise_not_(x):
    bitwise_not(x)
    return _inplace_ew(x, "bitwise_not")


def logical_and_(x, other):
    return x.copy_(logical_and(x, other))


def logical_or_(x, other):
    return x.copy_(logical_or(x, other))


def logical_xor_(x, other):
    return x.copy_(logical_xor(x, other))


def logical_not_(x):
    return x.copy_(logical_not(x))


# Tensor.__invert__, and sinc's vocabulary on Tensors (create_graph): sin/cos of x * pi
implement(_invert=_invert, sinpi=lambda x: sin(mul(x, np.pi)), cospi=lambda x: cos(mul(x, np.pi)))


# ============================================================================================
# Tensor methods


def _max_method(x, dim=None, keepdim=False):
    return max(x, dim, keepdim)


def _min_method(x, dim=None, keepdim=False):
    return min(x, dim, keepdim)


def _T(x):
    return permute(x, tuple(range(x.dim() - 1, -1, -1)))


def _mT(x):
    if x.dim() < 2:
        raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. Got "
                           f"{x.dim()}-D tensor.")
    return transpose(x, -2, -1)


def _new_tensor(x, data, dtype=None, device=None, requires_grad=False):
    return tensor(data, dtype=dtype or x.dtype, device=device or x.device,
                  requires_grad=requires_grad)


def _new_zeros(x, *size, dtype=None, device=None, requires_grad=False):
    return zeros(*size, dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)


def _new_ones(x, *size, dtype=None, device=None, requires_grad=False):
    return ones(*size, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def _new_full(x, size, fill_value, dtype=None, device=None, requires_grad=False):
    return full(size, fill_value, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


# The Tensor methods (declared in _methods.TensorMethods and Tensor's operators) run these
# functions: every public function here, plus the helpers that adapt a method's signature.
implement(**{name: fn for name, fn in list(globals().items())
             if callable(fn) and not name.startswith("_") and fn.__module__ == __name__},
          _max_method=_max_method, _min_method=_min_method, _flip_method=_flip_method, _T=_T,
          _mT=_mT, _new_tensor=_new_tensor, _new_zeros=_new_zeros, _new_ones=_new_ones,
          _new_full=_new_full, _IndexBackward=_IndexBackward)
