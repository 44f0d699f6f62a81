"""functional_ops: every public tensor operation (``jitgrad.exp``, ``Tensor.sum``, indexing, ...).

Elementwise ops apply registry rows (ops.ELEMENTWISE) through generated kernels; reductions,
movement, indexing and matmul are structural primitives: array forward (njit kernels, NumPy
views, BLAS matmul) and a backward written with these same Tensor ops, so it is differentiable
again (``create_graph=True``). ``bind_methods`` attaches the methods to Tensor.
"""
from __future__ import annotations

import numbers
import weakref
from collections import namedtuple

import numpy as np

from . import dtypes, lazy
from .autograd import grad_mode
from .autograd.engine import grad_edge, node_class
from .backends import cpu
from .backends import cuda as cb  # (numba.cuda itself is imported only when a GPU op runs)
from .backends.cuda import DeviceArray
from .ops import ELEMENTWISE, structural
from .tensor import (Ctx, FunctionNode, Function, Tensor, _sum_to_array, _norm_dim, apply_elementwise, apply_fn,
                     broadcast_shapes, ew, full, sum_to, zeros, _STATE, _result_dtype, rebase_views)

_E = ELEMENTWISE


def _t(x):
    """Coerce array-likes (not Python scalars) to Tensor."""
    t = type(x)
    if t is Tensor or t is float or t is int or isinstance(x, Tensor) or \
            isinstance(x, numbers.Number):
        return x
    if isinstance(x, (np.ndarray, list, tuple, np.generic)):
        from .tensor import tensor
        return tensor(x)
    raise TypeError(f"expected a Tensor or a number, got {type(x).__name__}")


def _tt(x):
    """Coerce anything (scalars too) to Tensor."""
    if isinstance(x, Tensor):
        return x
    from .tensor import tensor
    return tensor(x)


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
    out = ew("div", _t(x), _t(y))
    if rounding_mode is not None:
        raise NotImplementedError("div(rounding_mode=...) is not supported yet")
    return out


def pow(x, y):
    x, y = _t(x), _t(y)
    if isinstance(x, Tensor) and x._meta[1].kind in "iub" and \
            ((isinstance(y, numbers.Integral) and y < 0) or
             (isinstance(y, Tensor) and y._meta[1].kind in "iu" and bool((y._data < 0).any()))):
        raise RuntimeError("Integers to negative integer powers are not allowed.")
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
square = _unary("square")
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
    if x.is_cuda:  # not NaN and not +-inf, as elementwise ops (fused on the GPU)
        return logical_and(eq(x, x), ne(abs(x), float("inf")))
    return Tensor._make(np.isfinite(x._data))


def nonzero(x, as_tuple=False):
    x = _tt(x)
    if x.is_cuda:  # the result's size depends on the values: computed on the host
        return tuple(t.cuda() for t in nonzero(x.cpu(), True)) if as_tuple else \
            nonzero(x.cpu()).cuda()
    idx = np.nonzero(x._data)
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


def _be(x):
    """The backend module (cpu or cuda) for an array: both have arb_view, empty and the (A, R,
    B) row kernels, so a structural op's forward is written once for both devices."""
    return cb if type(x) is DeviceArray else cpu


def _keep_shape(shape, axes):
    return tuple(1 if k in axes else s for k, s in enumerate(shape))


def _expand_back_array(g, in_shape, axes, keepdim):
    if lazy.ENABLED:  # a broadcast view: the fused kernel reads it as one scalar
        return np.broadcast_to(g if keepdim else g.reshape(_keep_shape(in_shape, axes)),
                               in_shape)
    out = np.empty(in_shape, g.dtype)
    out[...] = g if keepdim else g.reshape(_keep_shape(in_shape, axes))
    return out


def _softmax_vjp(ctx, g, log):
    out = ctx.out
    o3, _ = cpu.arb_view(out, (ctx.axis,))
    g3, _ = cpu.arb_view(g, (ctx.axis,))
    res = np.empty(o3.shape, out.dtype)
    if res.size:
        cpu.softmax_vjp_arb(o3, g3, res, log)
    return res.reshape(out.shape)


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
        return Tensor._make(out if isinstance(out, (np.ndarray, DeviceArray)) else
                            np.asarray(out))
    out_shape = _keep_shape(shape, axes) if keepdim else \
        tuple(s for k, s in enumerate(shape) if k not in axes)
    return lazy.make_lazy(Tensor, lazy.Lazy(None, (x,), out_shape, dt, dt, axes, keepdim,
                                             n if mean else None))


def _expand_back(g, in_shape, axes, keepdim):
    """Gradient of a reduction over ``axes``: reshape g to keepdim form, broadcast to input."""
    if not keepdim:
        g = g.reshape(_keep_shape(in_shape, axes))
    return g.expand(in_shape)


@structural("sum", "SumBackward1")
class _Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, dtype):
        ctx.axes, ctx.keepdim = axes, keepdim
        out_dtype = dtype.np if dtype is not None else (
            x.dtype if x.dtype.kind == "f" else np.dtype(np.int64))
        if dtype is not None and x.dtype != out_dtype:  # like torch: cast each element first
            x = cb.contiguous(x, out_dtype) if type(x) is DeviceArray else \
                x.astype(out_dtype)
        out = _be(x).reduce_sum(x, axes, out_dtype)
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out

    cuda_forward = forward

    @staticmethod
    def backward(ctx, g):
        return (_expand_back(g, ctx.shapes[0], ctx.axes, ctx.keepdim),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (_expand_back_array(g, ctx.shapes[0], ctx.axes, ctx.keepdim),)

    @staticmethod
    def lazy_forward(ctx, x, axes, keepdim, dtype):
        return _lazy_reduce(ctx, x, axes, keepdim, dtype, mean=False)


def sum(x, dim=None, keepdim=False, dtype=None):
    x = _tt(x)
    axes = _dims(dim, x.ndim)
    d = dtypes.from_any(dtype) if dtype is not None else None
    return apply_fn(_Sum, (x,), "SumBackward0" if dim is None else None, axes=axes,
                    keepdim=keepdim, dtype=d)


@structural("mean", "MeanBackward1")
class _Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.axes, ctx.keepdim = axes, keepdim
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        if type(x) is DeviceArray:
            s = cb.reduce_sum(x, axes, np.float64)
            out = cb.empty(s.shape, x.dtype)
            cb.scale_cast(s, out, n)
            return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out
        s = cpu.reduce_sum(x, axes, x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (s / n).astype(x.dtype) if n else np.full(s.shape, np.nan, x.dtype)
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out

    cuda_forward = forward

    @staticmethod
    def backward(ctx, g):
        return (_expand_back(g / ctx.n, ctx.shapes[0], ctx.axes, ctx.keepdim),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (_expand_back_array(g / ctx.n, ctx.shapes[0], ctx.axes, ctx.keepdim),)

    @staticmethod
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


@structural("prod", "ProdBackward1")
class _Prod(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, dtype=None):
        ctx.axes, ctx.keepdim = axes, keepdim
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

    cuda_forward = forward

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        gk = _expand_back(g, ctx.shapes[0], ctx.axes, ctx.keepdim)
        return (gk * _prod_others(x, ctx.axes),)


@structural("prod_others", "ProdBackward0")
class _ProdOthers(Function):
    """For each element, the product of the other elements of its reduction group (exact with
    zeros, unlike out / x). Its own derivative is not implemented."""
    differentiable = False

    @staticmethod
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

    cuda_forward = forward


def _prod_others(x, axes):
    if grad_mode.is_grad_enabled() and x._rg:
        raise NotImplementedError("double backward through prod() is not supported yet")
    return apply_fn(_ProdOthers, (x,), axes=axes)


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


@structural("amax", "MaxBackward1")
class _Extreme(Function):
    """Full max/min: the gradient is shared evenly among tied maxima, like torch."""

    @staticmethod
    def forward(ctx, x, sign):
        be = _be(x)
        x3, _ = be.arb_view(x, tuple(range(x.ndim)))
        x3 = x3.reshape(1, -1, 1)
        out = be.empty((1, 1), x.dtype)
        idx = be.empty((1, 1), np.int64)
        be.argmax_arb(x3, out, idx, sign)
        ctx.out = out.reshape(())
        return ctx.out

    cuda_forward = forward

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        if x.is_cuda:  # the same rule in Tensor ops (they run on the GPU)
            with grad_mode.no_grad():
                xd, out = x.detach(), Tensor._make(ctx.out)
                # x == max, or both NaN (NaN maxima share g like torch); never both at once
                mask = eq(xd, out).to(x.dtype) + \
                    logical_and(ne(xd, xd), ne(out, out)).to(x.dtype)
                n = float(mask.sum().item())
            return (mask * (g / n),)
        xd, out = x._data, ctx.out
        hit = (xd == out) | (np.isnan(xd) & np.isnan(out))  # NaN maxima share g like torch
        mask = Tensor._make(np.asarray(hit, dtype=xd.dtype))
        return (mask * (g / float(hit.sum())),)


@structural("max_dim", "MaxBackward0")
class _ExtremeDim(Function):
    @staticmethod
    def forward(ctx, x, axis, keepdim, sign):
        be = _be(x)
        x3, keep = be.arb_view(x, (axis,))
        out = be.empty((x3.shape[0], x3.shape[2]), x.dtype)
        idx = be.empty((x3.shape[0], x3.shape[2]), np.int64)
        if out.size:
            be.argmax_arb(x3, out, idx, sign)
        ks = _keep_shape(x.shape, (axis,))
        idx_k = idx.reshape(ks)
        ctx.axis, ctx.keepdim = axis, keepdim
        ctx.indices = idx_k if keepdim else idx.reshape(keep)
        ctx.idx_k = idx_k
        return out.reshape(ks) if keepdim else out.reshape(keep)

    cuda_forward = forward

    @staticmethod
    def backward(ctx, g):
        shape = ctx.shapes[0]
        axis = ctx.axis
        r = np.arange(shape[axis]).reshape([-1 if k == axis else 1 for k in range(len(shape))])
        if type(ctx.idx_k) is DeviceArray:
            from .tensor import tensor
            onehot = eq(tensor(r, device="cuda"), Tensor._make(ctx.idx_k))
        else:
            onehot = Tensor._make(r == ctx.idx_k)
        gk = g if ctx.keepdim else g.unsqueeze(axis)
        return (where(onehot, gk, 0.0),)


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
        mask = eq(x, v).to(x.dtype)
        count = sum(mask, axes, keepdim=keepdim)
    return sum(x * mask, axes, keepdim=keepdim) / count


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


@structural("logsumexp", "LogsumexpBackward0")
class _LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.axes, ctx.keepdim = axes, keepdim
        be = _be(x)
        x3, keep = be.arb_view(x, axes)
        out = be.empty((x3.shape[0], x3.shape[2]), x.dtype)
        if out.size:
            be.logsumexp_arb(x3, out)
        ks = _keep_shape(x.shape, axes)
        ctx.out_k = out.reshape(ks)
        return ctx.out_k if keepdim else out.reshape(keep)

    cuda_forward = forward

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        gk = g if ctx.keepdim else g.reshape(_keep_shape(ctx.shapes[0], ctx.axes))
        out_k = Tensor._make(ctx.out_k)
        if grad_mode.is_grad_enabled():  # differentiable path: recompute out from x
            out_k = logsumexp(x, ctx.axes, keepdim=True)
        return (gk * exp(x - out_k),)


def logsumexp(x, dim, keepdim=False):
    x = _tt(x)
    if x._meta[1].kind != "f":
        x = x.to(dtypes.get_default_dtype())
    axes = _dims(dim, x.ndim)
    return apply_fn(_LogSumExp, (x,), axes=axes, keepdim=keepdim, save=True)


@structural("var", "VarBackward0")
class _Var(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, correction, full=False):
        ctx.axes, ctx.keepdim, ctx.correction, ctx.full = axes, keepdim, correction, full
        x3, keep = cpu.arb_view(x, axes)
        out = np.empty((x3.shape[0], x3.shape[2]), x.dtype)
        ctx.n = x3.shape[1]
        if out.size:
            if ctx.n == 0:  # like torch: the mean of nothing is NaN, so is the variance
                out.fill(np.nan)
            else:  # torch divides by max(0, n - correction): inf, or NaN for a constant
                with np.errstate(all="ignore"):
                    cpu.var_arb(x3, out, float(builtins_min(correction, ctx.n)))
        return out.reshape(_keep_shape(x.shape, axes)) if keepdim else out.reshape(keep)

    @staticmethod
    def cuda_forward(ctx, x, axes, keepdim, correction, full=False):
        """The same two-pass variance, written with Tensor ops (fused kernels on the GPU)."""
        ctx.axes, ctx.keepdim, ctx.correction, ctx.full = axes, keepdim, correction, full
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        with grad_mode.no_grad():
            xt = Tensor._make(x)
            d = xt - mean(xt, axes, keepdim=True)
            # divisor max(0, n - correction) (0: inf/nan like torch); n == 0: NaN
            v = sum(d * d, axes, keepdim=keepdim) / (float(builtins_max(n - correction, 0))
                                                     if n else np.nan)
            return v._data

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        gk = g if ctx.keepdim else g.reshape(_keep_shape(ctx.shapes[0], ctx.axes))
        mu = mean(x, ctx.axes, keepdim=True)
        if ctx.full and ctx.n - ctx.correction <= 0:
            # torch's rule for a full reduction without degrees of freedom: 2/0 * (x - mu)
            # is NaN where x == mu and +inf elsewhere (whatever the sign of x - mu)
            with grad_mode.no_grad():
                r = where(eq(x, mu), np.nan, np.inf).to(x.dtype)
            return (gk * r,)
        with np.errstate(divide="ignore"):
            scale = np.float64(2.0) / np.float64(ctx.n - ctx.correction)  # inf/nan like torch
        return (gk * float(scale) * (x - mu),)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased in (None, True) else 0


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    x = _tt(x)
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    axes = _dims(dim, x.ndim)
    return apply_fn(_Var, (x,), save=True, axes=axes, keepdim=keepdim,
                    correction=_correction(unbiased, correction), full=dim is None)


class _StdFromVar(Function):
    """sqrt of a variance, with torch's std rule: the gradient is 0 where the std is 0 (a
    constant input), not g / (2 * 0) * 0 = NaN; elsewhere g / (2 * std). A NaN or inf std
    still passes NaN on, like torch."""
    op_name = "std"
    grad_fn = "StdBackward0"

    @staticmethod
    def forward(ctx, v):
        with np.errstate(invalid="ignore"):
            ctx.out = np.asarray(np.sqrt(v))  # (a 0-d input gives a NumPy scalar)
        return ctx.out

    @staticmethod
    def cuda_forward(ctx, v):
        with grad_mode.no_grad():
            ctx.out = sqrt(Tensor._make(v))._data
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        v, = ctx.saved_tensors
        # differentiable again: the std recomputed as its own std node (like torch's saved
        # ``result``), so a NaN coming back through it at std == 0 is masked the same way
        s = _std_of_var(v) if grad_mode.is_grad_enabled() else Tensor._make(ctx.out)
        with grad_mode.no_grad():
            zero = eq(s, 0.0)
        return (where(zero, 0.0, g / (s * 2.0)),)

    @staticmethod
    def backward_arrays(ctx, g):
        out = ctx.out
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(out == 0, 0, g / (out * 2))
        return (r.astype(out.dtype, copy=False),)


def _std_of_var(v):
    return apply_fn(_StdFromVar, (v,), save=True)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _std_of_var(var(x, dim, unbiased, keepdim, correction=correction))


# ============================================================================================
# Movement (views share the version counter of their base)


@structural("reshape", "ViewBackward0")
class _Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        return x.reshape(shape)

    cuda_forward = forward  # DeviceArray.reshape: a view when contiguous, else a copy

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.shapes[0]),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (g.reshape(ctx.shapes[0]),)


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
    if x.is_cuda:
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
    v = x._data.view() if not x.is_cuda else None
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


@structural("permute", "PermuteBackward0")
class _Permute(Function):
    @staticmethod
    def forward(ctx, x, perm):
        ctx.perm = perm
        return np.transpose(x, perm)

    @staticmethod
    def cuda_forward(ctx, x, perm):
        ctx.perm = perm
        return x.transpose(perm)  # a strided view, like torch

    @staticmethod
    def backward(ctx, g):
        return (permute(g, tuple(np.argsort(ctx.perm).tolist())),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (np.transpose(g, np.argsort(ctx.perm)),)


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


@structural("expand", "ExpandBackward0")
class _Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def cuda_forward(ctx, x, shape):
        return x.expand(shape)  # a stride-0 view

    @staticmethod
    def backward(ctx, g):
        return (sum_to(g, ctx.shapes[0]),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (_sum_to_array(g, ctx.shapes[0]),)


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


@structural("cat", "CatBackward0")
class _Cat(Function):
    @staticmethod
    def forward(ctx, *xs, axis, dtype):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in xs]
        return np.concatenate([a.astype(dtype, copy=False) for a in xs], axis=axis)

    @staticmethod
    def cuda_forward(ctx, *xs, axis, dtype):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in xs]
        return cb.concatenate(xs, axis, dtype)

    @staticmethod
    def backward(ctx, g):
        out, start = [], 0
        for k, n in enumerate(ctx.sizes):
            if ctx.needs_input_grad[k]:
                idx = (slice(None),) * ctx.axis + (slice(start, start + n),)
                out.append(g[idx])
            else:
                out.append(None)
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


@structural("stack", "StackBackward0")
class _Stack(Function):
    @staticmethod
    def forward(ctx, *xs, axis, dtype):
        ctx.axis = axis
        return np.stack([a.astype(dtype, copy=False) for a in xs], axis=axis)

    @staticmethod
    def cuda_forward(ctx, *xs, axis, dtype):
        ctx.axis = axis
        shape = xs[0].shape[:axis] + (1,) + xs[0].shape[axis:]
        return cb.concatenate([a.reshape(shape) for a in xs], axis, dtype)

    @staticmethod
    def backward(ctx, g):
        return tuple(select(g, ctx.axis, k) if ctx.needs_input_grad[k] else None
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
        return a[idx]
    except IndexError as e:
        raise IndexError(f"{e} (indexing a tensor of shape {tuple(shape)})") from None


@structural("getitem", "IndexBackward0")
class _GetItem(Function):
    @staticmethod
    def forward(ctx, x, idx):
        ctx.idx = idx
        return _apply_index(x, idx, x.shape)

    @staticmethod
    def cuda_forward(ctx, x, idx):
        ctx.idx = idx
        try:
            if not any(isinstance(i, (np.ndarray, bool, np.bool_)) for i in idx):
                return cb.basic_view(x, idx)  # a view, like torch
            return cb.gather(x, idx)          # advanced: a copy
        except IndexError as e:
            raise IndexError(f"{e} (indexing a tensor of shape {tuple(x.shape)})") from None

    @staticmethod
    def backward(ctx, g):
        return (apply_fn(_IndexBackward, (g,), shape=ctx.shapes[0], idx=ctx.idx),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (_IndexBackward.forward(ctx, g, ctx.shapes[0], ctx.idx),)


@structural("index_backward", "IndexPutBackward0")
class _IndexBackward(Function):
    """zeros(shape) with g scatter-added at idx (duplicates accumulate)."""

    @staticmethod
    def forward(ctx, g, shape, idx):
        ctx.idx = idx
        out = np.zeros(shape, g.dtype)
        lin = np.arange(out.size, dtype=np.int64).reshape(shape)[idx]
        if lin.size:
            src = np.ascontiguousarray(np.broadcast_to(g, lin.shape)).reshape(-1)
            cpu.scatter_add_flat(out.reshape(-1), np.ascontiguousarray(lin).reshape(-1), src)
        return out

    @staticmethod
    def cuda_forward(ctx, g, shape, idx):
        ctx.idx = idx
        return cb.index_add(shape, idx, g)

    @staticmethod
    def backward(ctx, gg):
        return (getitem(gg, ctx.idx),)


def getitem(x, index, grad_fn=None):
    x = _tt(x)
    idx, advanced = _convert_index(index, x._meta[0])
    return apply_fn(_GetItem, (x,), grad_fn or _index_name(idx, advanced),
                    view_of=None if advanced else x, idx=idx)


@structural("setitem", "CopySlices")
class _SetItem(Function):
    """Gradient of ``x[idx] = v``: g with idx zeroed for the old x, g[idx] for v."""

    @staticmethod
    def backward(ctx, g):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = g * Tensor._make(ctx.keep_mask)
        if ctx.needs_input_grad[1]:
            gv = sum_to(getitem(g, ctx.idx), ctx.shapes[1])
            if gv._meta[1] != ctx.v_dtype:
                gv = gv.to(dtypes.from_numpy(ctx.v_dtype))
        return gx, gv

    @staticmethod
    def backward_arrays(ctx, g):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = np.array(g, copy=True, order="C")
            gx[ctx.idx] = 0
        if ctx.needs_input_grad[1]:
            gv = _sum_to_array(np.asarray(g[ctx.idx]), ctx.shapes[1]).astype(ctx.v_dtype,
                                                                             copy=False)
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
    if x.is_cuda:  # values come to the GPU (a CPU tensor or array-like is copied over)
        if v is not None and not v.is_cuda:
            v = v.to("cuda")
        elif v is None and not isinstance(value, numbers.Number):
            v = Tensor._make(cb.to_device(np.asarray(value, dtype=x._meta[1])))
    elif v is not None and v.is_cuda:
        v = v.cpu()
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
        from .tensor import Ctx
        ctx = Ctx()
        ctx.idx = idx
        ctx.shapes = [x._meta[0], ctx_node_inputs[1]._meta[0]]
        ctx.v_dtype = ctx_node_inputs[1]._meta[1]
        mask = np.ones(x._meta[0], x._meta[1])
        mask[idx] = 0
        if x.is_cuda:
            mask = cb.to_device(mask)
        ctx.keep_mask = mask
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


@structural("matmul", "MmBackward0")
class _Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        return np.matmul(a, b)

    @staticmethod
    def cuda_forward(ctx, a, b):
        return cb.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        a2 = a.unsqueeze(0) if a.dim() == 1 else a
        b2 = b.unsqueeze(-1) if b.dim() == 1 else b
        gshape = list(g.shape)
        if a.dim() == 1:
            gshape.insert(len(gshape) - (0 if b.dim() == 1 else 1), 1)
        if b.dim() == 1:
            gshape.append(1)
        g2 = g.reshape(gshape)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to(matmul(g2, b2.mT), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to(matmul(a2.mT, g2), b2.shape).reshape(b.shape)
        return ga, gb

    @staticmethod
    def backward_arrays(ctx, g):
        a, b = (t._data for t in ctx.saved_tensors)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1 or b.ndim == 1:
            gshape = list(g.shape)
            if a.ndim == 1:
                gshape.insert(len(gshape) - (0 if b.ndim == 1 else 1), 1)
            if b.ndim == 1:
                gshape.append(1)
            g = g.reshape(gshape)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = _sum_to_array(np.matmul(g, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = _sum_to_array(np.matmul(np.swapaxes(a2, -1, -2), g), b2.shape).reshape(b.shape)
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


@structural("softmax", "SoftmaxBackward0")
class _Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis, log):
        ctx.axis = axis
        be = _be(x)
        x3, _ = be.arb_view(x, (axis,))
        out = be.empty(x3.shape, x.dtype)
        if out.size:
            be.softmax_arb(x3, out, log)
        out = out.reshape(x.shape)
        ctx.out = out
        return out

    cuda_forward = forward

    @staticmethod
    def backward(ctx, g):
        out = _saved_result(ctx)
        return (out * (g - sum(g * out, ctx.axis, keepdim=True)),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (_softmax_vjp(ctx, g, False),)


def _saved_result(ctx):
    """softmax/log_softmax's saved output (their backward reads it, not the input, as torch's
    does); under create_graph it is rebuilt around its own node, so a double backward flows
    through it."""
    if grad_mode.is_grad_enabled():
        return Tensor._make(ctx.out, True, ctx.node())
    return Tensor._make(ctx.out)


def _apply_softmax(cls, x, axis):
    """Run softmax/log_softmax, saving (and version-checking) the output rather than the input:
    writing into the input in place afterwards is fine, like torch."""
    res = apply_fn(cls, (x,), axis=axis, log=cls is _LogSoftmax)
    node = res.grad_fn
    if isinstance(node, FunctionNode) and node.fn is cls:
        node.ctx.node = weakref.ref(node)
        node.saved_versions = ((res._vc, res._vc[0], Tensor._make(node.ctx.out)),)
    return res


@structural("log_softmax", "LogSoftmaxBackward0")
class _LogSoftmax(_Softmax):
    @staticmethod
    def backward(ctx, g):
        out = _saved_result(ctx)
        return (g - exp(out) * sum(g, ctx.axis, keepdim=True),)

    @staticmethod
    def backward_arrays(ctx, g):
        return (_softmax_vjp(ctx, g, True),)


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


def div_(x, y):
    return _inplace_ew(x, "div", _t(y))


def pow_(x, y):
    return _inplace_ew(x, "pow", _t(y), grad_fn="PowBackward0")


def clamp_(x, min=None, max=None):
    lo, hi = _clamp_bounds(x, None if min is None else _t(min), None if max is None else _t(max))
    return _inplace_ew(x, "clamp", lo, hi)


def neg_(x):
    return _inplace_ew(x, "neg")


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
# Tensor methods


def _rsub(x, y):
    return sub(y, x)


def _rdiv(x, y):
    return div(y, x)


def _rpow(x, y):
    return pow(y, x)


def _rmatmul(x, y):
    return matmul(y, x)


def _iop(f):
    def op(x, y):
        return f(x, y)
    return op


def _binop(f):
    def op(x, y):
        t = type(y)
        if t is not Tensor and t is not float and t is not int and \
                not isinstance(y, (Tensor, numbers.Number, np.ndarray, np.generic)):
            return NotImplemented
        return f(x, y)
    return op


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
    from .tensor import tensor
    return tensor(data, dtype=dtype or x.dtype, device=device or x.device,
                  requires_grad=requires_grad)


def _new_zeros(x, *size, dtype=None, device=None, requires_grad=False):
    return zeros(*size, dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)


def _new_ones(x, *size, dtype=None, device=None, requires_grad=False):
    from .creation import ones
    return ones(*size, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def _new_full(x, size, fill_value, dtype=None, device=None, requires_grad=False):
    return full(size, fill_value, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def bind_methods():
    T = Tensor
    for name in ("exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh",
                 "sigmoid", "relu", "square", "reciprocal", "neg", "negative", "abs", "sign",
                 "erf", "maximum", "minimum", "clamp", "clip", "add", "sub", "mul", "div", "pow",
                 "eq", "ne", "lt", "le", "gt", "ge", "sum", "mean", "prod", "argmax",
                 "argmin", "amax", "amin", "logsumexp", "var", "std", "reshape", "view",
                 "flatten", "squeeze", "unsqueeze", "t", "transpose", "swapaxes", "permute",
                 "expand", "expand_as", "split", "chunk", "unbind", "select", "matmul", "mm",
                 "bmm", "mv", "dot", "inner", "outer", "softmax", "log_softmax", "add_", "sub_",
                 "mul_", "div_", "pow_", "clamp_", "neg_", "zero_", "fill_", "copy_",
                 "logical_and", "logical_not", "isnan", "isfinite", "nonzero", "equal",
                 "allclose", "broadcast_to", "where"):
        setattr(T, name, globals()[name])
    T.max = _max_method
    T.min = _min_method
    T.multiply, T.divide, T.subtract = mul, div, sub
    T.T = property(_T)
    T.mT = property(_mT)
    T.new_tensor, T.new_zeros, T.new_ones, T.new_full = (_new_tensor, _new_zeros, _new_ones,
                                                         _new_full)
    T.__add__ = T.__radd__ = _binop(add)
    T.__sub__ = _binop(sub)
    T.__rsub__ = _binop(_rsub)
    T.__mul__ = T.__rmul__ = _binop(mul)
    T.__truediv__ = _binop(div)
    T.__rtruediv__ = _binop(_rdiv)
    T.__pow__ = _binop(pow)
    T.__rpow__ = _binop(_rpow)
    T.__matmul__ = _binop(matmul)
    T.__rmatmul__ = _binop(_rmatmul)
    T.__neg__ = neg
    T.__pos__ = lambda x: x
    T.__abs__ = abs
    T.__lt__, T.__le__, T.__gt__, T.__ge__ = (_binop(lt), _binop(le), _binop(gt), _binop(ge))
    T.__eq__, T.__ne__ = _binop(eq), _binop(ne)
    T.__iadd__ = _iop(add_)
    T.__isub__ = _iop(sub_)
    T.__imul__ = _iop(mul_)
    T.__itruediv__ = _iop(div_)
    T.__getitem__ = getitem
    T.__setitem__ = setitem
    T.__and__ = logical_and
    T.__invert__ = logical_not
    T.__hash__ = lambda x: id(x)
