"""ops_api.reductions: the reductions family of public ops added for PyTorch breadth (issue 16).

Each public function is exported through __all__ (jitgrad.<name>) and registered with
_methods.implement when its Tensor method exists (declared in _methods.TensorMethods).

How they are built:

* selections (sort, topk, kthvalue, median/nanmedian/mode with a dim, cummax/cummin, quantile):
  the integer positions are computed on the host with NumPy (a stable argsort, so ties keep
  their order as torch's CPU sort does), then the values are ``x[positions]`` -- an advanced
  ``getitem`` of x, so the gradient scatter-adds back to the chosen elements (duplicates
  accumulate, as cummax's does in torch), with double backward, batching and the GPU for free;
* cumprod and logcumsumexp are structural records (a scan has no exact composite); median and
  nanmedian of all elements are one record sharing the gradient among tied elements, like torch;
* any/all/count_nonzero/nansum/nanmean/aminmax/var_mean/std_mean compose existing ops;
* unique/unique_consecutive are host-side (no gradient in torch either).
"""
from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from .. import _state as grad_mode
from .. import dtypes
from .._methods import implement
from .._tensor import Tensor, _norm_dim, apply_fn
from ..backends import cuda as cb
from ..backends.cuda import DeviceArray
from ..functional_ops import (_dims, _tt, amax, amin, cumsum, eq, exp, getitem, isnan, mean,
                              ne, std, sum, var, where)
from ..ops import structural
from ..structural import TENSORS, shift_axis

__all__ = ["sort", "argsort", "msort", "topk", "kthvalue", "any", "all", "count_nonzero",
           "cumprod", "cummax", "cummin", "logcumsumexp", "median", "nanmedian", "mode",
           "nansum", "nanmean", "aminmax", "var_mean", "std_mean", "quantile", "nanquantile",
           "unique", "unique_consecutive"]

_any, _all, _sorted = builtins.any, builtins.all, builtins.sorted

# torch.return_types.<name>: namedtuples with .values/.indices (aminmax: .min/.max)
return_types = {n: namedtuple(n, ["values", "indices"])
                for n in ("sort", "topk", "kthvalue", "median", "nanmedian", "mode", "cummax",
                          "cummin")}
return_types["aminmax"] = namedtuple("aminmax", ["min", "max"])


# ============================================================================================
# helpers


def _index_tensor(a, like):
    """An int64 result tensor from host positions, on ``like``'s device."""
    t = Tensor._make(np.array(a, dtype=np.int64, order="C"))  # (0-d stays 0-d)
    return t.to(like.device) if like.is_cuda else t


def _take(x, axis, idx, grad_fn):
    """x's elements at positions ``idx`` along ``axis``; the other axes index themselves.
    ``idx``'s trailing x.ndim dims line up with x's (size 1 broadcasts), leading dims are
    extra. A getitem: its gradient scatter-adds g back to the chosen elements."""
    shape = x._meta[0]
    nd = idx.ndim
    lead = nd - len(shape)
    ix = []
    for d, s in enumerate(shape):
        if d == axis:
            ix.append(idx)
        else:
            ix.append(np.arange(s).reshape([s if k == lead + d else 1 for k in range(nd)]))
    return getitem(x, tuple(ix), grad_fn=grad_fn)


def _argsort_np(a, axis, descending):
    """Stable argsort along ``axis`` with torch's order: NaN is the largest value (last when
    ascending, first when descending); equal elements keep their original order both ways."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    r = np.argsort(np.flip(a, axis), axis=axis, kind="stable")
    return np.flip(a.shape[axis] - 1 - r, axis)


def _full_sort_needed(a, axis):
    """Short rows or NaNs (which partition and comparisons order differently): the plain
    stable sort."""
    return a.shape[axis] < 64 or (a.dtype.kind == "f" and np.isnan(a).any())


def _kth_position(a, axis, k):
    """Keepdim-shaped positions along axis of element k (from 0) of the stable ascending sort,
    in O(n): a partition gives the value v; the element is the (k - #{a < v})-th of those
    equal to v in index order -- the one the stable sort puts at k."""
    if _full_sort_needed(a, axis):
        return np.take(_argsort_np(a, axis, False), [k], axis=axis)
    v = np.take(np.partition(a, k, axis=axis), [k], axis=axis)
    eq = a == v
    less = (a < v).sum(axis=axis, keepdims=True)
    return np.argmax(eq & (np.cumsum(eq, axis=axis) == k - less + 1), axis=axis, keepdims=True)


def _topk_positions(a, axis, k, largest):
    """Positions of the first k elements of the stable (descending when largest) sort, in that
    order, without sorting the whole row: a partition finds the k-th value v; the rows keep
    everything better than v plus the first equal ones in index order, then sort those k."""
    n = a.shape[axis]
    if k == 0 or 4 * k >= n or _full_sort_needed(a, axis):
        return np.take(_argsort_np(a, axis, largest), np.arange(k), axis=axis)
    kth = n - k if largest else k - 1
    v = np.take(np.partition(a, kth, axis=axis), [kth], axis=axis)
    better = a > v if largest else a < v
    eq = a == v
    need = k - better.sum(axis=axis, keepdims=True)
    sel = np.moveaxis(better | (eq & (np.cumsum(eq, axis=axis) <= need)), axis, -1)
    pos = np.nonzero(sel)[-1].reshape(sel.shape[:-1] + (k,))   # k per row, in index order
    vals = np.take_along_axis(np.moveaxis(a, axis, -1), pos, axis=-1)
    pos = np.take_along_axis(pos, _argsort_np(vals, -1, largest), axis=-1)
    return np.moveaxis(pos, -1, axis)


def _keep(shape, axis):
    return tuple(1 if k == axis else s for k, s in enumerate(shape))


def _drop(shape, axis):
    return tuple(s for k, s in enumerate(shape) if k != axis)


def _check_dim_nonempty(x, axis, name):
    if x._meta[0][axis] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {axis} to have non-zero size "
                         f"(input of shape {tuple(x.shape)}).")


def _write_out(name, out, res):
    """torch's ``out=``: the result copied into the given tensor(s), which are returned."""
    if out is None:
        return res
    outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    ress = tuple(res) if isinstance(res, tuple) else (res,)
    if len(outs) != len(ress) or not _all(isinstance(o, Tensor) for o in outs):
        raise TypeError(f"{name}(): out= expects {len(ress)} tensor(s), got {out!r}")
    if grad_mode.is_grad_enabled() and _any(r.requires_grad for r in ress):
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")
    for o, r in zip(outs, ress):
        if o.dtype != r.dtype:
            raise RuntimeError(f"{name}(): expected out tensor to have dtype {r.dtype}, but got "
                               f"{o.dtype} instead")
        if tuple(o.shape) != tuple(r.shape):
            raise RuntimeError(f"{name}(): out tensor has shape {tuple(o.shape)}, but the result "
                               f"has shape {tuple(r.shape)} (jitgrad does not resize out=)")
        with grad_mode.no_grad():
            o.copy_(r)
    return type(res)(*outs) if isinstance(res, tuple) and hasattr(res, "_fields") else \
        (tuple(outs) if isinstance(res, tuple) else outs[0])


def _is_float(x):
    return x._meta[1].kind == "f"


# ============================================================================================
# sort, argsort, msort, topk, kthvalue


def sort(input, dim=-1, descending=False, stable=False, *, out=None):
    """torch.sort: (values, indices), int64 indices. Always stable (torch's CPU sort is stable
    for small sizes; stable=False allows any order of ties, so this is one valid answer)."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    xr = x.reshape(1) if x.ndim == 0 else x
    idx = _argsort_np(xr._host, axis, bool(descending))
    vals = _take(xr, axis, idx, "SortBackward0")
    ind = _index_tensor(idx, x)
    if x.ndim == 0:
        vals, ind = vals.reshape(()), ind.reshape(())
    return _write_out("sort", out, return_types["sort"](vals, ind))


def argsort(input, dim=-1, descending=False, stable=False):
    """torch.argsort: the int64 indices of sort (stable)."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    a = x._host
    if a.ndim == 0:
        return _index_tensor(np.zeros((), np.int64), x)
    return _index_tensor(_argsort_np(a, axis, bool(descending)), x)


def msort(input, *, out=None):
    """torch.msort: sort along dim 0, values only."""
    return _write_out("msort", out, sort(input, 0).values)


def _check_k(name, k, n, lo):
    if isinstance(k, Tensor):
        k = k.item()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name}(): argument 'k' must be int, not {type(k).__name__}")
    if not lo <= k <= n:
        raise RuntimeError(f"{name}(): selected number k = {k} out of range for a dimension of "
                           f"size {n} (expected {lo} <= k <= {n})")
    return int(k)


def topk(input, k, dim=-1, largest=True, sorted=True, *, out=None):
    """torch.topk: the k largest (smallest) along dim, with int64 indices. Always sorted (the
    order torch leaves unspecified for sorted=False); ties keep their original order."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    xr = x.reshape(1) if x.ndim == 0 else x
    k = _check_k("topk", k, xr._meta[0][axis], 0)
    idx = _topk_positions(xr._host, axis, k, bool(largest))
    vals = _take(xr, axis, idx, "TopkBackward0")
    ind = _index_tensor(idx, x)
    if x.ndim == 0:
        vals, ind = vals.reshape(()), ind.reshape(())
    return _write_out("topk", out, return_types["topk"](vals, ind))


def _select_at(name, x, axis, idx_keep, keepdim, grad_fn):
    """(values, indices) at keepdim-shaped positions along axis (the reduced forms)."""
    vals = _take(x, axis, idx_keep, grad_fn)
    ind = _index_tensor(idx_keep, x)
    if not keepdim:
        shape = _drop(x._meta[0], axis)
        vals, ind = vals.reshape(shape), ind.reshape(shape)
    return return_types[name](vals, ind)


def _reduced_0d(name, x, grad_fn):
    """The dim form on a 0-d tensor: the element itself, index 0."""
    v = _take(x.reshape(1), 0, np.zeros(1, np.int64), grad_fn).reshape(())
    return return_types[name](v, _index_tensor(np.zeros((), np.int64), x))


def kthvalue(input, k, dim=-1, keepdim=False, *, out=None):
    """torch.kthvalue: the k-th smallest element along dim (k from 1), with its index."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    n = x._meta[0][axis] if x.ndim else 1
    k = _check_k("kthvalue", k, n, 1)
    if x.ndim == 0:
        return _write_out("kthvalue", out, _reduced_0d("kthvalue", x, "KthvalueBackward0"))
    idx = _kth_position(x._host, axis, k - 1)
    return _write_out("kthvalue", out,
                      _select_at("kthvalue", x, axis, idx, keepdim, "KthvalueBackward0"))


# ============================================================================================
# any, all, count_nonzero


def any(input, dim=None, keepdim=False, *, out=None):
    """torch.any: bool; True where some element along dim is nonzero (NaN counts)."""
    x = _tt(input)
    axes = _dims(dim, x.ndim)
    with grad_mode.no_grad():
        r = sum(ne(x, 0), axes, keepdim=keepdim) > 0
    return _write_out("any", out, r)


def all(input, dim=None, keepdim=False, *, out=None):
    """torch.all: bool; True where every element along dim is nonzero (empty: True)."""
    x = _tt(input)
    axes = _dims(dim, x.ndim)
    with grad_mode.no_grad():
        r = sum(eq(x, 0), axes, keepdim=keepdim) == 0
    return _write_out("all", out, r)


def count_nonzero(input, dim=None):
    """torch.count_nonzero: int64 counts over dim (an int or a tuple; None: all)."""
    x = _tt(input)
    with grad_mode.no_grad():
        return sum(ne(x, 0), _dims(dim, x.ndim))


# ============================================================================================
# cumprod, cummax, cummin, logcumsumexp


def _scan(ufunc, x, axis):
    """A ufunc's running accumulation along axis; float32 accumulates in float64 and rounds
    each result once, as torch's CPU scans do (their accumulator type is double)."""
    dt = x.dtype
    if dt == np.float32:  # (cast first: accumulate(dtype=) is slower, casting per element)
        x = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return ufunc.accumulate(x, axis=axis).astype(dt, copy=False)


def _cumprod_jvp(ctx, x, out, t):
    """Tangent of cumprod, exact with zeros (same decomposition as the vjp): p_j times the
    running sum of t_i / x_i before the first zero, of the first zero's t_i until the next."""
    with grad_mode.no_grad():
        zero = eq(x, 0.0)
        zc = cumsum(zero.to(x.dtype), ctx.axis)
    x1 = where(zero, 1.0, x)
    p = cumprod(x1, ctx.axis)
    before = p * cumsum(where(zero, 0.0, t / x1), ctx.axis)
    at_first = p * cumsum(where(zero, t, 0.0), ctx.axis)
    return where(eq(zc, 0.0), before, where(eq(zc, 1.0), at_first, 0.0))


@structural("cumprod", "CumprodBackward0", batch=shift_axis, jvp=_cumprod_jvp)
class _Cumprod:
    """Cumulative product along ``axis`` (x already in the result dtype). Backward, element k
    gets sum over j >= k of g_j * prod_{l <= j, l != k} x_l:

    * no zero in x: torch's reversed cumsum of g * out, divided by x (smooth, so it
      differentiates again to any order);
    * zeros, first order: the same sums without dividing by a zero -- with zc the count of
      zeros so far and p the running product of x with zeros read as 1, a nonzero x_k gets
      the reversed cumsum of g * p over zc == 0, divided by x_k; the first zero gets it over
      zc == 1; later zeros get 0;
    * zeros under create_graph: prod_{l < k} x_l * sum_{j >= k} g_j prod_{k < l <= j} x_l
      from an (n, n) table per row, a polynomial in x with position-only masks, so double
      backward is exact at the zeros too (O(n^2) memory: only this case)."""

    def forward(ctx, x, axis):
        ctx.out = _scan(np.multiply, x, axis)
        return ctx.out

    def vjp(V, ctx, g):
        x, = V.saved(ctx)
        ax, axes = ctx.axis, (ctx.axis,)
        dt = V.dtype(x)
        zero = V.eq(V.detach(x), 0.0)

        def rev_cumsum(t):
            return V.flip(V.cumsum(V.flip(t, axes), ax), axes)
        if float(V.sum(V.astype(zero, dt), None)) == 0:
            return (V.astype(rev_cumsum(g * V.result(ctx)) / x, dt),)
        if not grad_mode.is_grad_enabled():
            zc = V.cumsum(V.astype(zero, dt), ax)
            x1 = V.where(zero, 1.0, x)
            gp = g * V.cumprod(x1, ax)
            first = V.eq(zc, 1.0)
            r0 = rev_cumsum(V.where(V.eq(zc, 0.0), gp, 0.0))
            r1 = rev_cumsum(V.where(first, gp, 0.0))
            return (V.astype(V.where(zero, V.where(first, r1, 0.0), r0 / x1), dt),)
        shape = V.shape(x)
        nd, n = len(shape), shape[ax]
        perm = [d for d in range(nd) if d != ax] + [ax]
        inv = tuple(int(i) for i in np.argsort(perm))
        xt, gt = V.transpose(x, perm), V.transpose(g, perm)
        row = V.reshape(xt, tuple(V.shape(xt)[:-1]) + (1, n))        # x_l at [..., k, l]
        k, l = np.arange(n)[:, None], np.arange(n)[None, :]
        like = ctx.out
        after = V.cumprod(V.where(V.const(l > k, like), row, 1.0), nd)     # prod_{k<l<=j} x_l
        before = V.cumprod(V.where(V.const(l < k, like), row, 1.0), nd)    # prod_{l<k} x_l
        gj = V.reshape(gt, tuple(V.shape(gt)[:-1]) + (1, n))
        s = V.sum(V.where(V.const(l >= k, like), gj * after, 0.0), (nd,))
        e = V.getitem(before, (Ellipsis, n - 1))
        return (V.astype(V.transpose(e * s, inv), dt),)


def cumprod(input, dim, *, dtype=None, out=None):
    """torch.cumprod(input, dim, *, dtype=None): integers and bool accumulate in int64."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    if dtype is not None:
        x = x.to(dtypes.from_any(dtype))
    elif not _is_float(x):
        x = x.to(dtypes.int64)
    if x.ndim == 0:
        r = apply_fn(_Cumprod, (x.reshape(1),), save=True, axis=0).reshape(())
    else:
        r = apply_fn(_Cumprod, (x,), save=True, axis=axis)
    return _write_out("cumprod", out, r)


def _cumprod_(x, dim, *, dtype=None):
    """Tensor.cumprod_: the product written into x (cast to x's dtype); the backward reads a
    copy of x's old values (x itself is overwritten)."""
    src = x.clone() if x.requires_grad and grad_mode.is_grad_enabled() else x
    return x.copy_(cumprod(src, dim, dtype=dtype))


def _cum_extreme(name, input, dim, sign, out):
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    if x.ndim == 0:
        return _write_out(name, out, _reduced_0d(name, x, f"Cum{name[3:]}Backward0"))
    a = x._host
    v = (np.maximum if sign > 0 else np.minimum).accumulate(a, axis=axis)
    # the running extreme's position: the latest element equal to it, or the latest NaN
    mark = a == v
    if a.dtype.kind == "f":
        mark |= np.isnan(a)
    pos = np.arange(a.shape[axis]).reshape([-1 if k == axis else 1 for k in range(a.ndim)])
    idx = np.maximum.accumulate(np.where(mark, pos, 0), axis=axis) if a.size else \
        np.zeros(a.shape, np.int64)
    vals = _take(x, axis, idx, "CummaxBackward0" if sign > 0 else "CumminBackward0")
    return _write_out(name, out, return_types[name](vals, _index_tensor(idx, x)))


def cummax(input, dim, *, out=None):
    """torch.cummax: running maximum along dim and its index (the latest of ties; NaN
    propagates). The gradient adds into the element each output came from."""
    return _cum_extreme("cummax", input, dim, 1, out)


def cummin(input, dim, *, out=None):
    """torch.cummin: running minimum along dim and its index (see cummax)."""
    return _cum_extreme("cummin", input, dim, -1, out)


def _lcse_jvp(ctx, x, out, t):
    """Tangent: sum over i <= j of t_i * exp(x_i - out_j), the positive and negative parts of
    t as log-cumsum-exps of log|t| + x (each term bounded by max |t|)."""
    lp, ln = _log_parts(TENSORS, t)
    return exp(logcumsumexp(lp + x, ctx.axis) - out) - exp(logcumsumexp(ln + x, ctx.axis) - out)


@structural("logcumsumexp", "LogcumsumexpBackward0", batch=shift_axis, jvp=_lcse_jvp)
class _LogCumSumExp:
    """log(cumsum(exp(x))) along ``axis`` without overflow (NumPy's logaddexp scan). Gradient:
    element k gets sum over j >= k of g_j * exp(x_k - out_j), each factor <= 1 (out_j >= x_k):
    the positive and negative parts of g are summed as reversed log-cumsum-exps of
    log|g| - out, so nothing overflows."""

    def forward(ctx, x, axis):
        ctx.out = _scan(np.logaddexp, x, axis)
        return ctx.out

    def vjp(V, ctx, g):
        x, = V.saved(ctx)
        out = V.result(ctx)
        ax = (ctx.axis,)
        lp, ln = _log_parts(V, g)

        def part(lg):  # log of sum_{j >= k} |g_j| * exp(-out_j) over one sign of g
            return V.flip(V.logcumsumexp(V.flip(lg - out, ax), ctx.axis), ax)
        with np.errstate(over="ignore"):  # (lowest - out: -inf, whose exp is the 0 wanted)
            return (V.exp(x + part(lp)) - V.exp(x + part(ln)),)


def _log_parts(V, t):
    """(log t where t > 0, log -t where t < 0), the dtype's lowest finite value elsewhere
    (torch's choice: -inf would give inf - inf = NaN further on); log never sees a zero, so
    its derivative stays finite under create_graph."""
    low = float(np.finfo(V.dtype(t)).min)
    pos, neg = t > 0, t < 0
    lg = V.log(V.where(pos, t, V.where(neg, -t, 1.0)))
    return V.where(pos, lg, low), V.where(neg, lg, low)


def logcumsumexp(input, dim, *, out=None):
    """torch.logcumsumexp(input, dim): floating inputs only, like torch on the CPU."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    if not _is_float(x):
        raise RuntimeError(f"logcumsumexp(): expected a floating point input, got {x.dtype}")
    if x.ndim == 0:
        r = apply_fn(_LogCumSumExp, (x.reshape(1),), save=True, axis=0).reshape(())
    else:
        r = apply_fn(_LogCumSumExp, (x,), save=True, axis=axis)
    return _write_out("logcumsumexp", out, r)


# ============================================================================================
# median, nanmedian, mode


def _median_all(a, ignore_nan):
    a = a.reshape(-1)
    if a.dtype.kind == "f":
        nan = np.isnan(a)
        if ignore_nan:
            a = a[~nan]
        elif nan.any():
            return np.full((), np.nan, a.dtype)
    if a.size == 0:
        return np.full((), np.nan, a.dtype)
    k = (a.size - 1) // 2
    return np.asarray(np.partition(a, k)[k])


@structural("median", "MedianBackward0")
class _Median:
    """median/nanmedian of all elements: the lower of the two middle values (NaN if any, for
    median; NaNs ignored by nanmedian). Like torch (and max()), the gradient is shared evenly
    among the elements equal to the result (NaN result: among the NaNs)."""

    def forward(ctx, x, ignore_nan):
        ctx.out = _median_all(x, ignore_nan)
        return ctx.out

    def cuda_forward(ctx, x, ignore_nan):  # (on the host: a partition of one array)
        ctx.out = cb.to_device(_median_all(x.copy_to_host(), ignore_nan))
        return ctx.out

    def vjp(V, ctx, g):
        x, = V.saved(ctx)
        xd, out = V.detach(x), V.const(ctx.out)
        dt = ctx.out.dtype
        hit = V.astype(V.eq(xd, out), dt) + \
            V.astype(V.logical_and(V.isnan(xd), V.isnan(out)), dt)
        return (hit * (g / float(V.sum(hit, None))),)


def _median(name, input, dim, keepdim, out, ignore_nan):
    x = _tt(input)
    grad_fn = "NanmedianBackward0" if ignore_nan else "MedianBackward0"
    if dim is None:
        if x.numel() == 0 and not _is_float(x):
            raise IndexError(f"{name}(): input tensor of shape {tuple(x.shape)} is empty")
        return _write_out(name, out, apply_fn(_Median, (x,), grad_fn, save=True,
                                              ignore_nan=ignore_nan))
    axis = _norm_dim(dim, x.ndim)
    if x.ndim == 0:
        return _write_out(name, out, _reduced_0d(name, x, grad_fn + "1"))
    _check_dim_nonempty(x, axis, name)
    a = x._host
    n = a.shape[axis]
    nan = np.isnan(a) if a.dtype.kind == "f" else None
    if nan is not None and ignore_nan and nan.any():
        nv = n - nan.sum(axis=axis, keepdims=True)
        k = np.where(nv > 0, (nv - 1) // 2, (n - 1) // 2)
        idx = np.take_along_axis(_argsort_np(a, axis, False), k, axis=axis)
    else:
        idx = _kth_position(a, axis, (n - 1) // 2)
        if nan is not None and not ignore_nan:  # a NaN in the row: NaN, at the first NaN
            idx = np.where(nan.any(axis=axis, keepdims=True),
                           np.argmax(nan, axis=axis, keepdims=True), idx)
    return _write_out(name, out, _select_at(name, x, axis, idx, keepdim, grad_fn + "1"))


def median(input, dim=None, keepdim=False, *, out=None):
    """torch.median: of all elements (a tensor; lower middle value, NaN if any), or along dim
    ((values, indices))."""
    return _median("median", input, dim, keepdim, out, False)


def nanmedian(input, dim=None, keepdim=False, *, out=None):
    """torch.nanmedian: median ignoring NaNs (NaN only where everything is NaN)."""
    return _median("nanmedian", input, dim, keepdim, out, True)


def mode(input, dim=-1, keepdim=False, *, out=None):
    """torch.mode: the most frequent value along dim (the smallest of equally frequent ones;
    NaNs never equal each other) and the index of its last occurrence, like torch's CPU."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    if x.ndim == 0:
        return _write_out("mode", out, _reduced_0d("mode", x, "ModeBackward0"))
    _check_dim_nonempty(x, axis, "mode")
    a = np.moveaxis(x._host, axis, -1)
    n = a.shape[-1]
    rows = a.reshape(-1, n)
    R = rows.shape[0]
    if R == 0:
        idx = np.zeros((0,), np.int64)
    else:
        order = np.argsort(rows, axis=1, kind="stable")
        s = np.take_along_axis(rows, order, axis=1)
        new = np.ones(s.shape, np.bool_)
        new[:, 1:] = s[:, 1:] != s[:, :-1]
        flat = new.reshape(-1)
        starts = np.flatnonzero(flat)
        lengths = np.diff(np.append(starts, flat.size))
        run_len = lengths[np.cumsum(flat) - 1].reshape(s.shape)
        j0 = np.argmax(run_len, axis=1)          # the first (smallest) of the longest runs
        jend = j0 + run_len[np.arange(R), j0] - 1
        idx = order[np.arange(R), jend]          # stable: the run's last original position
    idx = np.expand_dims(idx.reshape(a.shape[:-1]), axis)
    return _write_out("mode", out, _select_at("mode", x, axis, idx, keepdim, "ModeBackward0"))


# ============================================================================================
# nansum, nanmean, aminmax, var_mean, std_mean


def nansum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """torch.nansum: sum treating NaN as zero (gradient 0 there); integers sum to int64."""
    x = _tt(input)
    if _is_float(x):
        x = where(isnan(x), 0.0, x)
    return _write_out("nansum", out, sum(x, dim, keepdim, dtype=dtype))


def nanmean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """torch.nanmean: nansum over the count of non-NaN elements (floating inputs)."""
    x = _tt(input)
    if dtype is not None:
        x = x.to(dtypes.from_any(dtype))
    if not _is_float(x):
        raise RuntimeError(f"nanmean(): expected input to have floating point dtype but got "
                           f"{x.dtype}")
    with grad_mode.no_grad():
        count = sum(eq(x, x), dim, keepdim)
    return _write_out("nanmean", out, nansum(x, dim, keepdim) / count)


def aminmax(input, *, dim=None, keepdim=False, out=None):
    """torch.aminmax: (min, max) over dim (None: all elements); each gradient shared evenly
    among tied extremes, like amin/amax."""
    x = _tt(input)
    if dim is None:
        lo, hi = amin(x), amax(x)
        if keepdim:
            ones = (1,) * x.ndim
            lo, hi = lo.reshape(ones), hi.reshape(ones)
    else:
        axis = _norm_dim(dim, x.ndim)
        if x.ndim and x._meta[0][axis] == 0:
            raise IndexError(f"aminmax(): cannot compute aminmax over an empty dimension "
                             f"(dim {axis} of shape {tuple(x.shape)}) as the operation has no "
                             "identity.")
        lo, hi = amin(x, axis, keepdim), amax(x, axis, keepdim)
    return _write_out("aminmax", out, return_types["aminmax"](lo, hi))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """torch.var_mean: (var, mean) over the same dims (var's unbiased/correction rules)."""
    x = _tt(input)
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return (var(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """torch.std_mean: (std, mean) over the same dims."""
    x = _tt(input)
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return (std(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim))


# ============================================================================================
# quantile, nanquantile

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(name, input, q, dim, keepdim, interpolation, ignore_nan):
    """torch's algorithm: sort (NaN last), rank = q * (n - 1) in the input's dtype (n: the
    non-NaN count for nanquantile; a row with a NaN gives NaN for quantile), then the two
    neighbours interpolated with torch's lerp. The values are gathered from x directly, so
    the gradient reaches the two chosen elements."""
    x = _tt(input)
    if not _is_float(x):
        raise RuntimeError(f"{name}() input tensor must be either float or double dtype, got "
                           f"{x.dtype}")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError(f"{name}() interpolation must be one of {', '.join(_INTERPOLATIONS)}."
                           f" Got '{interpolation}'")
    dt = x._meta[1]
    if isinstance(q, Tensor):
        if q.ndim > 1:
            raise RuntimeError(f"{name}() q must be a scalar or 1D tensor, got shape "
                               f"{tuple(q.shape)}")
        if q._meta[1] != dt:
            raise RuntimeError(f"{name}() q tensor must be same dtype as the input tensor "
                               f"({x.dtype}), got {q.dtype}")
        qa, q_dim = q._host.reshape(-1), q.ndim == 1
    else:
        qa, q_dim = np.asarray([float(q)], dt), False
    if not ((qa >= 0) & (qa <= 1)).all():
        raise RuntimeError(f"{name}() q values must be in the range [0, 1]")
    if dim is None:
        xr, axis = x.reshape(-1), 0
        out_shape = (1,) * x.ndim if keepdim else ()
    else:
        axis = _norm_dim(dim, x.ndim)
        xr = x.reshape(1) if x.ndim == 0 else x
        out_shape = _keep(x._meta[0], axis) if keepdim else _drop(x._meta[0], axis)
    a = xr._host
    n = a.shape[axis]
    if n == 0:
        raise RuntimeError(f"{name}() input tensor must be non-empty (reducing dim {axis} of "
                           f"shape {tuple(x.shape)})")
    order = np.argsort(a, axis=axis, kind="stable")[None]   # (1, ...): a leading q axis
    nan = np.isnan(a)
    qb = qa.astype(dt).reshape((-1,) + (1,) * a.ndim)
    kshape = (len(qa),) + _keep(a.shape, axis)
    if ignore_nan:
        mult = (n - nan.sum(axis=axis, keepdims=True)).astype(dt) - dt.type(1)
        ranks = np.broadcast_to(qb * mult, kshape)
        fixed = ranks < 0                   # an all-NaN row: rank 0 (NaN)
        ranks = np.where(fixed, dt.type(0), ranks)
    else:
        mult = dt.type(n - 1)
        ranks = np.broadcast_to(qb * mult, kshape)
        fixed = np.broadcast_to(nan.any(axis=axis, keepdims=True), kshape)
        ranks = np.where(fixed, dt.type(n - 1), ranks)   # a row with a NaN: the NaN
    ranks = np.asarray(ranks, dt)

    def at(r):
        return _take(xr, axis, np.take_along_axis(order, r, axis=axis + 1), "QuantileBackward0")
    if interpolation == "lower":
        res = at(ranks.astype(np.int64))
    elif interpolation == "higher":
        res = at(np.ceil(ranks).astype(np.int64))
    elif interpolation == "nearest":
        res = at(np.round(ranks).astype(np.int64))     # half to even, like torch's round
    else:
        below = ranks.astype(np.int64)
        lo, hi = at(below), at(np.ceil(ranks).astype(np.int64))
        w = np.full(ranks.shape, 0.5, dt) if interpolation == "midpoint" else \
            (ranks - below.astype(dt)).astype(dt)
        if interpolation == "linear" and isinstance(q, Tensor) and q.requires_grad:
            # torch's weight is q * (n - 1) - below: differentiable in q (same values as w)
            wt = where(_const(fixed, x), 0.0, q.reshape(qb.shape) * _const(np.asarray(mult, dt), x)
                       - _const(below.astype(dt), x))
            w1 = 1.0 - wt
        else:
            wt, w1 = _const(w, x), _const((dt.type(1) - w).astype(dt), x)
        d = hi - lo
        # torch's lerp: start + w * (end - start) below 0.5, end - (end - start) * (1 - w) above
        res = where(_const(w < 0.5, x), lo + wt * d, hi - d * w1)
    return res.reshape(((len(qa),) if q_dim else ()) + tuple(out_shape))


def _const(a, like):
    t = Tensor._make(np.array(a, order="C"))
    return t.to(like.device) if like.is_cuda else t


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None):
    """torch.quantile: q a float or a 1-D tensor (its length becomes the first dim);
    interpolation 'linear', 'lower', 'higher', 'midpoint' or 'nearest'."""
    return _write_out("quantile", out,
                      _quantile("quantile", input, q, dim, keepdim, interpolation, False))


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None):
    """torch.nanquantile: quantile ignoring NaNs (NaN where a row is all NaN)."""
    return _write_out("nanquantile", out,
                      _quantile("nanquantile", input, q, dim, keepdim, interpolation, True))


# ============================================================================================
# unique, unique_consecutive (no gradient, as in torch)


def _unique_results(x, u, inv, cnt, return_inverse, return_counts):
    out = Tensor._make(np.array(u, dtype=x._meta[1], order="C"))
    if x.is_cuda:
        out = out.to(x.device)
    res = [out]
    if return_inverse:
        res.append(_index_tensor(inv, x))
    if return_counts:
        res.append(_index_tensor(cnt, x))
    return res[0] if len(res) == 1 else tuple(res)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """torch.unique: the distinct elements (or slices along dim), sorted (torch's CPU sorts for
    sorted=False too); NaNs are all distinct, like torch. Optional inverse and counts (int64)."""
    x = _tt(input)
    a = x._host
    if dim is None:
        u, inv, cnt = np.unique(a.reshape(-1), return_inverse=True, return_counts=True,
                                equal_nan=False)
        inv = inv.reshape(a.shape)
    else:
        axis = _norm_dim(dim, x.ndim)
        if a.ndim == 0:
            raise IndexError("unique(): dim= needs a tensor with at least one dimension")
        if a.shape[axis] == 0:
            u, inv, cnt = a, np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            u, inv, cnt = np.unique(a, return_inverse=True, return_counts=True, axis=axis,
                                    equal_nan=False)
            inv = inv.reshape(-1)
    return _unique_results(x, u, inv, cnt, return_inverse, return_counts)


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """torch.unique_consecutive: collapse runs of equal consecutive elements (or slices
    along dim), with optional inverse and counts (int64)."""
    x = _tt(input)
    a = x._host
    if dim is None:
        rows, shape_inv, axis = a.reshape(-1, 1), a.shape, None
    else:
        axis = _norm_dim(dim, x.ndim)
        if a.ndim == 0:
            raise IndexError("unique_consecutive(): dim= needs a tensor with at least one "
                             "dimension")
        m = np.moveaxis(a, axis, 0)
        rows, shape_inv = m.reshape(m.shape[0], int(np.prod(m.shape[1:]))), (a.shape[axis],)
    n = rows.shape[0]
    new = np.ones(n, np.bool_)
    if n > 1:
        new[1:] = (rows[1:] != rows[:-1]).any(axis=1) if rows.shape[1] else False
    starts = np.flatnonzero(new)
    cnt = np.diff(np.append(starts, n))
    inv = (np.cumsum(new) - 1).reshape(shape_inv)
    u = a.reshape(-1)[starts] if axis is None else np.take(a, starts, axis=axis)
    return _unique_results(x, u, inv, cnt, return_inverse, return_counts)


implement(**{name: globals()[name] for name in __all__}, cumprod_=_cumprod_)
