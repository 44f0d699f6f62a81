"""ops_api.indexing: the indexing family of public ops added for PyTorch breadth (issue 16).

Each public function is exported through __all__ (jitgrad.<name>) and registered with
_methods.implement when its Tensor method exists (declared in _methods.TensorMethods).

Why most of them are composites: every op here moves elements to or from positions an index
names, and two existing structural records cover reading and adding exactly: advanced
``getitem`` (gather: its VJP is a scatter-add) and ``index_backward`` (zeros with values
scatter-added: its VJP is a gather). So ``gather(x, dim, index)`` is ``x[I0, .., index, ..,
In]`` with broadcast ``arange`` index arrays, ``scatter_add``/``index_add``/``index_put(...,
accumulate=True)`` are ``x + index_backward(src)``, ``masked_fill`` is ``where``; they get
torch's gradients, double backward, the GPU and batching from those records. Two records are
new: ``index_put`` (an out-of-place write: scatter, index_copy, index_fill, index_put,
masked_scatter; linear, batched) and ``scatter_reduce`` (prod/amax/amin of scatter_reduce and
index_reduce, whose gradients are not a composition of the others). The in-place ``_`` forms
write through ``setitem`` (or ``copy_`` of the out-of-place result), so they follow its leaf and
version rules.

Every index is checked on the host (dtype, bounds, shapes, with torch's messages) before any
kernel sees it: Numba does no bounds checks. Integer and bool tensors (never differentiable)
take plain NumPy paths (``ufunc.at``) instead of the float kernels.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import dtypes, lazy
from .._methods import implement
from .._tensor import Tensor, _norm_dim, _STATE, apply_fn, broadcast_shapes
from ..backends import cuda as cb
from ..functional_ops import (_IndexBackward, _check_inplace, _convert_index, _tt, copy_,
                              getitem, nonzero, setitem, where)
from ..ops import structural

__all__ = ["gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add",
           "index_copy", "index_fill", "index_put", "index_put_", "index_reduce", "masked_fill",
           "masked_select", "masked_scatter", "take", "take_along_dim", "argwhere",
           "nonzero_static",
           "searchsorted", "bucketize"]


# ============================================================================================
# Helpers: index validation (before any kernel), host paths for integer/bool tensors


def _index(index, op, int32=True, msg=None, exc=RuntimeError):
    """The index as a host int64 array; torch's dtype rule for ``op``."""
    if isinstance(index, Tensor):
        a = index._host
    elif isinstance(index, (np.ndarray, list, tuple)):
        a = np.asarray(index)
        if a.size == 0 and a.dtype.kind == "f":
            a = a.astype(np.int64)
    else:
        raise TypeError(f"{op}(): index must be a Tensor, got {type(index).__name__}")
    if a.dtype == np.int64:
        return a
    if a.dtype == np.int32 and int32:
        return a.astype(np.int64)
    if msg is None:
        msg = f"{op}(): Expected dtype int32/int64 for index" if int32 else \
            f"{op}(): Expected a long tensor for index, but got {dtypes.from_numpy(a.dtype)}"
    raise exc(msg)


def _bounds(a, size, op="", negative=False, exc=RuntimeError, msg=None):
    """Raise unless every entry lies in [0, size) (or [-size, size) when ``negative``)."""
    if not a.size:
        return
    lo, hi = int(a.min()), int(a.max())
    bad = hi if hi >= size else (lo if lo < (-size if negative else 0) else None)
    if bad is not None:
        raise exc(msg.format(bad=bad, size=size) if msg else
                  f"{op}index {bad} is out of bounds for dimension with size {size}")


def _dim_bounds(a, size, dim, op=""):
    _bounds(a, size, exc=RuntimeError,
            msg=op + "index {bad} is out of bounds for dimension " + str(dim) +
            " with size {size}")


def _floating(x):
    return x._meta[1].kind == "f"


def _wrap(arr, like):
    """A host result as a Tensor on ``like``'s device."""
    return Tensor._make(cb.to_device(arr) if like.is_cuda else np.asarray(arr))


def _along(index, dim):
    """gather/scatter's element positions as one NumPy advanced index: ``index`` on ``dim``,
    broadcast ``arange`` arrays on every other axis (all of shape index.shape together)."""
    nd = index.ndim
    return tuple(index if d == dim else
                 np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (nd - 1 - d))
                 for d, n in enumerate(index.shape))


def _same_dtype(x, src, msg):
    if x._meta[1] != src._meta[1]:
        raise RuntimeError(msg.format(x=x.dtype, s=src.dtype, X=_torch_name(x.dtype),
                                      S=_torch_name(src.dtype)))


def _torch_name(d):
    return {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
            "bool": "Bool"}.get(str(d).replace("jitgrad.", ""), str(d))


def _value_tensor(value, op):
    """A fill value: a number, or a 0-d tensor (torch's rule)."""
    if isinstance(value, Tensor):
        if value.dim() != 0:
            raise RuntimeError(f"{op} only supports a 0-dimensional value tensor, but got tensor "
                               f"with {value.dim()} dimension(s).")
        return value
    if isinstance(value, (numbers.Number, np.generic)):
        return value
    raise TypeError(f"{op}: value must be a number or a 0-dimensional tensor, got "
                    f"{type(value).__name__}")


def _inplace_via(x, name, result, *others):
    """``x.<name>_(...)``: torch's in-place rules (a leaf that requires grad raises; otherwise the
    op is recorded), then x takes ``result(x0)``'s values through ``copy_`` (whose CopySlices
    node passes the gradient on to the out-of-place result's graph). Recorded, ``x0`` is a
    clone of x: a record that saves its input (scatter_reduce) keeps the old values."""
    rec = _STATE.enabled and (x._rg or any(isinstance(o, Tensor) and o._rg for o in others))
    if rec:
        _check_inplace(x, name)
    r = result(x.clone() if rec else x)
    if r._meta[0] != x._meta[0]:
        raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast shape "
                           f"{list(r.shape)}")
    copy_(x, r)
    return x


def _write(x, name, index, value, *others):
    """``x[index] = value`` as in-place op ``name`` (leaf/version rules of setitem)."""
    if _STATE.enabled and (x._rg or any(isinstance(o, Tensor) and o._rg for o in others)):
        _check_inplace(x, name)
    setitem(x, index, value)
    return x


def _advanced_adjacent(idx):
    """True when a leading full slice keeps a batch axis in front of ``x[idx]``: NumPy moves
    the advanced-index dims to the front only when advanced entries (arrays, bools, and integers
    next to arrays) are separated by a basic one."""
    adv = [k for k, i in enumerate(idx) if isinstance(i, (np.ndarray, bool, np.bool_))]
    if adv and any(isinstance(i, numbers.Integral) and not isinstance(i, (bool, np.bool_))
                   for i in idx):
        adv = sorted(adv + [k for k, i in enumerate(idx) if isinstance(i, numbers.Integral)])
    return not adv or adv[-1] - adv[0] + 1 == len(adv)


def _shift_put(p, B=None, in_shapes=None):
    """Batch rule of an index parameter: a leading full slice (None when the batch axis would
    move). Reads no shapes, so it holds for any caller's shape convention."""
    idx = p["idx"]
    return {**p, "idx": (slice(None),) + tuple(idx)} if _advanced_adjacent(idx) else None


@structural("index_put", "IndexPutBackward0", linear="all", batch=_shift_put, gpu=True)
class _IndexPut:
    """A copy of x with v written at ``idx`` (v already broadcast to x[idx]'s shape): the
    out-of-place scatter, index_copy, index_fill, index_put and masked_scatter. Torch's VJPs:
    g with the written positions zeroed for x, g[idx] for v (a repeated position gives each of
    its writers the gradient, as torch's gather does). No index map: with a repeated position
    the forward keeps one writer, the VJP feeds all of them."""

    def forward(ctx, x, v, idx):
        out = x.copy()
        out[idx] = v
        return out

    def vjp(V, ctx, g):
        gx = V.zero_at(g, ctx.idx) if ctx.needs_input_grad[0] else None
        gv = V.getitem(g, ctx.idx) if ctx.needs_input_grad[1] else None
        return gx, gv


def _put(x, idx, value, grad_fn, target=None):
    """x with ``value`` (a tensor of x's dtype broadcasting to x[idx], or a number) written at
    ``idx``, out of place, through the _IndexPut record."""
    if target is None:
        target = np.empty(x._meta[0], np.bool_)[idx].shape
    target = tuple(target)
    if isinstance(value, Tensor):
        v = value
        if v._meta[1] != x._meta[1]:
            v = v.to(x.dtype)
        while v.dim() > len(target) and v._meta[0][0] == 1:  # torch drops leading 1s
            v = v.reshape(v._meta[0][1:])
    else:
        v = _wrap(np.asarray(value).astype(x._meta[1]), x)
    if v._meta[0] != target:
        v = v.expand(target)
    return apply_fn(_IndexPut, (x, v), grad_fn, idx=idx)


# ============================================================================================
# gather / take / take_along_dim / index_select: advanced getitem (VJP: scatter-add)


def _gather_prep(x, dim, index, op):
    """(x viewed as >= 1-d, dim, validated int64 index >= 1-d, result shape)."""
    x = _tt(x)
    idx = _index(index, op)
    out_shape = idx.shape
    nd = max(x.dim(), 1)
    dim = _norm_dim(dim, x.dim())
    if max(idx.ndim, 1) != nd:
        raise RuntimeError("Index tensor must have the same number of dimensions as input "
                           "tensor")
    if x.dim() == 0:
        x = x.reshape(1)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    return x, dim, idx, out_shape


def gather(input, dim, index, *, sparse_grad=False, out=None):
    """torch.gather: out[i][j][k] = input[index[i][j][k]][j][k] (dim 0)."""
    x, d, idx, out_shape = _gather_prep(input, dim, index, "gather")
    xs = x._meta[0]
    if idx.size:
        for k in range(len(xs)):
            if k != d and idx.shape[k] > xs[k]:
                raise RuntimeError(f"Size does not match at dimension {k} expected index "
                                   f"{list(idx.shape)} to be no larger than self {list(xs)} "
                                   f"apart from dimension {d}")
        _dim_bounds(idx, xs[d], d)
    r = getitem(x, _along(idx, d), grad_fn="GatherBackward0")
    if r._meta[0] != tuple(out_shape):
        r = r.reshape(out_shape)
    return _out(r, out)


def _out(r, out):
    """``out=``: the result written into ``out`` (same shape and dtype; as torch, not with
    autograd)."""
    if out is None:
        return r
    if _STATE.enabled and (r._rg or out._rg):
        raise RuntimeError("functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")
    if out._meta[1] != r._meta[1] or out._meta[0] != r._meta[0]:
        raise RuntimeError(f"out= must have the result's shape {list(r.shape)} and dtype "
                           f"{r.dtype}, got shape {list(out.shape)} and dtype {out.dtype}")
    copy_(out, r)
    return out


def take(input, index):
    """torch.take: input as 1-D, read at ``index`` (negative indices count from the end)."""
    x = _tt(input)
    idx = _index(index, "take", int32=False)
    n = x.numel()
    _bounds(idx, n, negative=True, exc=IndexError,
            msg="out of range: tried to access index {bad} on a tensor of {size} elements.")
    return getitem(x.reshape(-1), (idx,), grad_fn="TakeBackward0")


def take_along_dim(input, indices, dim=None, *, out=None):
    """torch.take_along_dim: gather after broadcasting input and indices (except along dim);
    negative indices count from the end (with a dim; without one, as torch, they raise)."""
    x = _tt(input)
    idx = _index(indices, "take_along_dim", int32=False,
                 msg=None if not isinstance(indices, Tensor) or indices._meta[1] != np.int32
                 else "torch.take_along_dim(): dtype of indices should be Long but got Int")
    if dim is None:  # torch: a gather of the flattened input, which takes no negative index
        n = x.numel()
        _bounds(idx, n, exc=RuntimeError,
                msg="take_along_dim(): index {bad} is out of bounds for dimension 0 with size "
                    "{size} (the flattened input)")
        return _out(gather(x.reshape(-1), 0, Tensor._make(idx.reshape(-1))), out)
    if x.dim() != idx.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {x.dim()} dimensions for input, and "
                           f"{idx.ndim} dimensions for indices")
    d = _norm_dim(dim, x.dim())
    xs = list(x._meta[0])
    if x.dim():
        a = list(xs)
        a[d] = idx.shape[d]
        ishape = broadcast_shapes(tuple(a), idx.shape)
        b = list(idx.shape)
        b[d] = xs[d]
        xshape = broadcast_shapes(tuple(b), tuple(xs))
        idx = np.broadcast_to(idx, ishape)
        if tuple(xshape) != tuple(xs):
            x = x.expand(tuple(xshape))
    size = xs[d] if xs else 1
    _bounds(idx, size, negative=True, exc=RuntimeError,
            msg="index {bad} is out of bounds for dimension " + str(d) + " with size {size}")
    idx = np.where(idx < 0, idx + size, idx)
    return _out(gather(x, d, Tensor._make(idx)), out)


def index_select(input, dim, index, *, out=None):
    """torch.index_select: the slices of ``input`` along ``dim`` at a 1-D ``index``."""
    x = _tt(input)
    idx = _index(index, "index_select",
                 msg="index_select(): Expected dtype int32 or int64 for index")
    if idx.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    d = _norm_dim(dim, x.dim())
    size = x._meta[0][d] if x.dim() else 1
    _bounds(idx, size, exc=IndexError, msg="index out of range in self")
    if x.dim() == 0:  # torch: a 0-d input gives a 0-d result
        return getitem(x.reshape(1), (idx.reshape(-1),),
                       grad_fn="IndexSelectBackward0").reshape(())
    return _out(getitem(x, (slice(None),) * d + (idx.reshape(-1),),
                        grad_fn="IndexSelectBackward0"), out)


# ============================================================================================
# scatter family


def _scatter_prep(x, dim, index, src, op):
    """Validated (x >= 1-d, dim, index >= 1-d, src or None): torch's shape rules."""
    x = _tt(x)
    idx = _index(index, op)
    nd = max(x.dim(), 1)
    d = _norm_dim(dim, x.dim())
    if max(idx.ndim, 1) != nd:
        raise RuntimeError("Index tensor must have the same number of dimensions as self "
                           "tensor")
    if isinstance(src, Tensor) and max(src.dim(), 1) != nd and idx.size:
        raise RuntimeError("Index tensor must have the same number of dimensions as src "
                           "tensor")
    xs = tuple(x._meta[0]) or (1,)
    ishape = idx.shape or (1,)
    if idx.size:
        ss = (tuple(src._meta[0]) or (1,)) if isinstance(src, Tensor) else None
        for k in range(nd):
            if (k != d and ishape[k] > xs[k]) or (ss is not None and ishape[k] > ss[k]):
                raise RuntimeError(
                    f"Expected index {list(ishape)} to be no larger than self {list(xs)} apart "
                    f"from dimension {d}" +
                    (f" and to be no larger size than src {list(ss)}" if ss is not None else ""))
        _dim_bounds(idx, xs[d], d)
    return idx.reshape(ishape), d


def _src_part(src, ishape):
    """src restricted to the index's shape (torch reads only src[:i0, :i1, ...])."""
    src = src if src.dim() else src.reshape(1)
    if tuple(src._meta[0]) == tuple(ishape):
        return src
    return getitem(src, tuple(slice(0, n) for n in ishape))


def _scatter_add_float(x1, pos, srcp):
    """x1 + zeros with srcp scatter-added at pos (differentiable; VJP for src is a gather)."""
    return x1 + apply_fn(_IndexBackward, (srcp,), "ScatterAddBackward0",
                         shape=tuple(x1._meta[0]), idx=pos)


def _host_ufunc_at(x, pos, src_arr, ufunc):
    """Integer/bool tensors (no gradient): ``ufunc.at`` on a host copy of x."""
    out = x._host.copy()
    ufunc.at(out, pos, src_arr)
    return out


def scatter_add(input, dim, index, src):
    """torch.scatter_add: self[index[i][j]][j] += src[i][j] (dim 0); duplicates accumulate."""
    x = _tt(input)
    src = _tt(src)
    idx, d = _scatter_prep(x, dim, index, src, "scatter")
    _same_dtype(x, src, "scatter(): Expected self.dtype to be equal to src.dtype")
    shape0 = x._meta[0]
    x1 = x if x.dim() else x.reshape(1)
    if not idx.size:
        return x.clone()
    pos = _along(idx, d)
    srcp = _src_part(src, idx.shape)
    if _floating(x):
        r = _scatter_add_float(x1, pos, srcp)
    else:
        r = _wrap(_host_ufunc_at(x1, pos, srcp._host, np.add), x)
    return r.reshape(shape0) if r._meta[0] != shape0 else r


def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """torch.scatter: self[index[i][j]][j] = src[i][j] (dim 0), or a scalar ``value``;
    ``reduce='add'|'multiply'`` combines instead (torch's deprecated form)."""
    x = _tt(input)
    if src is None and value is None:
        raise TypeError("scatter() missing required argument 'src' or 'value'")
    if src is not None and value is not None:
        raise TypeError("scatter(): pass either src or value, not both")
    v = src if src is not None else value
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
        if not isinstance(v, Tensor):
            v = _filled(x, index, v)
        if reduce == "add":
            return scatter_add(x, dim, index, v)
        return scatter_reduce(x, dim, index, v, "prod")
    if isinstance(v, Tensor):
        idx, d = _scatter_prep(x, dim, index, v, "scatter")
        _same_dtype(x, v, "scatter(): Expected self.dtype to be equal to src.dtype")
        vv = _src_part(v, idx.shape) if idx.size else v
    else:
        idx, d = _scatter_prep(x, dim, index, None, "scatter")
        vv = _value_tensor(v, "scatter")
    shape0 = x._meta[0]
    if not idx.size:
        return x.clone()
    y = _put(x if x.dim() else x.reshape(1), _along(idx, d), vv, "ScatterBackward0", idx.shape)
    return y.reshape(shape0) if y._meta[0] != shape0 else y


def _filled(x, index, value):
    idx = _index(index, "scatter")
    return _wrap(np.full(idx.shape, value, x._meta[1]), x)


def scatter_(input, dim, index, src=None, value=None, *, reduce=None):
    """In-place scatter (method form Tensor.scatter_)."""
    x = input
    v = src if src is not None else value
    if reduce is not None or not x.dim():
        return _inplace_via(x, "scatter_", lambda x: scatter(x, dim, index, src, value,
                                                             reduce=reduce), v)
    if isinstance(v, Tensor):
        idx, d = _scatter_prep(x, dim, index, v, "scatter")
        _same_dtype(x, v, "scatter(): Expected self.dtype to be equal to src.dtype")
        if idx.size:
            _write(x, "scatter_", _along(idx, d), _src_part(v, idx.shape), v)
    else:
        idx, d = _scatter_prep(x, dim, index, None, "scatter")
        if idx.size:
            _write(x, "scatter_", _along(idx, d), _value_tensor(v, "scatter"))
    return x


def scatter_add_(input, dim, index, src):
    return _inplace_via(input, "scatter_add_", lambda x: scatter_add(x, dim, index, src), src)


# --- scatter_reduce: sum/mean composites, prod/amax/amin one record --------------------------

_IDENTITY = {"prod": 1, "amax": -np.inf, "amin": np.inf}
_UFUNC = {"prod": np.multiply, "amax": np.maximum, "amin": np.minimum, "sum": np.add}


def _identity(reduce, dt):
    if dt == np.bool_:
        return reduce != "amax"
    if dt.kind in "iu":
        return {"prod": 1, "amax": np.iinfo(dt).min, "amin": np.iinfo(dt).max}[reduce]
    return _IDENTITY[reduce]


def _reduce_arrays(x, src, idx, reduce, include_self):
    out = np.array(x, copy=True, order="C")
    if not include_self:
        out[idx] = _identity(reduce, out.dtype)
    _UFUNC[reduce].at(out, idx, np.broadcast_to(src, out[idx].shape))
    return out


def _scatter_reduce_vmap(args, batched, p, B):
    """vmap: the same op with the batch axis in front (unbatched operands expanded) and a
    leading full slice on the index."""
    full = []
    for a, f in zip(args, batched):
        if not f:
            sh = tuple(a._meta[0])
            a = a.reshape((1,) + sh).expand((B,) + sh)
        full.append(a)
    q = _shift_put(p)
    if q is None:
        raise NotImplementedError("vmap: scatter_reduce with this index cannot keep the batch "
                                  "axis in front")
    return apply_fn(_ScatterReduce, tuple(full), save=True, **q)


@structural("scatter_reduce", "ScatterReduceBackward0", vmap=_scatter_reduce_vmap)
class _ScatterReduce:
    """x with src combined in at the positions ``idx`` names (a NumPy advanced index over x,
    shaped like src) by prod, amax or amin; without ``include_self`` x's own value at a written
    position is left out. The VJPs are torch's: prod divides the result by each factor, with
    the single-zero cases recomputed; amax/amin share the gradient evenly among the elements
    equal to the result. vmap runs it with a leading slice on the index; the Jacobian transforms
    (no JVP rule for a two-input non-linear record) use the autograd engine."""

    def forward(ctx, x, src, idx, reduce, include_self, save=True):
        # (save: V.apply passes it on so that the inner records of a create_graph backward keep
        # their inputs; ARRAYS.apply hands it to forward, which has nothing to do with it)
        ctx.out = _reduce_arrays(x, src, idx, reduce, include_self)  # (V.result: the VJP reads it)
        return ctx.out

    def cuda_forward(ctx, x, src, idx, reduce, include_self, save=True):
        """On the host (the GPU has no scatter-multiply/-max kernel yet), result copied back."""
        ctx.out = cb.to_device(_reduce_arrays(x.copy_to_host(), src.copy_to_host(), idx,
                                              reduce, include_self))
        return ctx.out

    def vjp(V, ctx, g):
        x, src = V.saved(ctx)
        res = V.result(ctx)
        idx, reduce = ctx.idx, ctx.reduce
        shape, dt = V.shape(x), V.dtype(x)
        with V.errstate():
            if reduce == "prod":
                masked_self = V.where(V.eq(x, 0), 1.0, x)
                msr = V.apply(_ScatterReduce, masked_self, src, idx=idx, reduce=reduce,
                              include_self=ctx.include_self, save=True)
                gx = g * msr / masked_self
                src_zero = V.eq(src, 0)
                nz = V.getitem(V.index_add(V.astype(src_zero, dt), shape, idx), idx)
                single = V.logical_and(src_zero, V.eq(nz, 1))
                masked_src = V.where(single, 1.0, src)
                msrc = V.apply(_ScatterReduce, x, masked_src, idx=idx, reduce=reduce,
                               include_self=ctx.include_self, save=True)
                gsrc = V.where(single, V.getitem(g * msrc, idx),
                               V.getitem(g * res, idx) / V.where(src_zero, 1.0, src))
            else:
                value = V.getitem(res, idx)
                self_is = V.astype(V.eq(x, res), dt)
                src_is = V.astype(V.eq(src, value), dt)
                gd = g / (self_is + V.index_add(src_is, shape, idx))
                gx = self_is * gd
                gsrc = src_is * V.getitem(gd, idx)
        if not ctx.include_self:
            gx = V.zero_at(gx, idx)
        return (gx if ctx.needs_input_grad[0] else None,
                gsrc if ctx.needs_input_grad[1] else None)


_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def _reduce_at(x, pos, srcp, reduce, include_self):
    """The scatter_reduce/index_reduce core on a >= 1-d x; srcp is shaped like x[pos]."""
    if reduce not in _REDUCES:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    floating = _floating(x)
    if reduce in ("sum", "mean"):
        if floating:
            base = x
            if not include_self:
                keep = np.ones(x._meta[0], x._meta[1])
                keep[pos] = 0
                base = x * _wrap(keep, x)
            r = _scatter_add_float(base, pos, srcp)
            if reduce == "mean":
                r = r / _wrap(_counts(x._meta[0], x._meta[1], pos, include_self), x)
            return r
        dt = x._meta[1]
        out = x._host.copy()
        if not include_self:
            out[pos] = 0
        s = srcp._host
        np.add.at(out, pos, s)
        if reduce == "mean":
            n = _counts(out.shape, np.int64, pos, include_self)
            out = out // n if dt != np.bool_ else out
        return _wrap(out.astype(dt), x)
    if not floating:
        return _wrap(_reduce_arrays(x._host, srcp._host, pos, reduce, include_self), x)
    return apply_fn(_ScatterReduce, (x, srcp), save=True, idx=pos, reduce=reduce,
                    include_self=include_self)


def _counts(shape, dt, pos, include_self):
    """How many values each output element averages (at least 1), for mean."""
    n = np.full(shape, 1 if include_self else 0, np.int64)
    np.add.at(n, pos, 1)
    np.maximum(n, 1, out=n)
    return n.astype(dt)


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True, out=None):
    """torch.scatter_reduce: src's values combined into self at index along dim by
    sum/prod/mean/amax/amin; ``include_self=False`` leaves self's value out where written."""
    x = _tt(input)
    src = _tt(src)
    idx, d = _scatter_prep(x, dim, index, src, "scatter_reduce")
    _same_dtype(x, src, "scatter_reduce(): Expected self.dtype to be equal to src.dtype")
    if reduce not in _REDUCES:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    shape0 = x._meta[0]
    if not idx.size:
        return _out(x.clone(), out)
    x1 = x if x.dim() else x.reshape(1)
    r = _reduce_at(x1, _along(idx, d), _src_part(src, idx.shape), reduce, include_self)
    return _out(r.reshape(shape0) if r._meta[0] != shape0 else r, out)


def scatter_reduce_(input, dim, index, src, reduce, *, include_self=True):
    return _inplace_via(input, "scatter_reduce_", lambda x: scatter_reduce(
        x, dim, index, src, reduce, include_self=include_self), src)


# ============================================================================================
# index_add / index_copy / index_fill / index_reduce: along one dim at a 1-D index


def _index_dim_prep(x, dim, index, source, op, int32=True, idx_msg=None, idx_exc=RuntimeError):
    """Validated (x >= 1-d, dim, 1-D int64 index, source >= 1-d): torch's shape rules."""
    x = _tt(x)
    idx = _index(index, op, int32=int32, msg=idx_msg, exc=idx_exc)
    if idx.ndim > 1:
        raise IndexError(f"{op}(): Index is supposed to be a vector")
    idx = idx.reshape(-1)
    d = _norm_dim(dim, x.dim())
    x1 = x if x.dim() else x.reshape(1)
    if source is not None:
        source = _tt(source)
        s1 = source if source.dim() else source.reshape(1)
        ss, xs = s1._meta[0], x1._meta[0]
        if len(ss) != len(xs):
            raise IndexError(f"{op}(): Source/destination tensor must have same slice shapes. "
                             f"Destination slice shape: {list(xs)} at dimension {d} and source "
                             f"slice shape: {list(ss)} at dimension 0.")
        if ss[d] != idx.size:
            raise RuntimeError(f"{op}(): Number of indices ({idx.size}) should be equal to "
                               f"source.size(dim): ({ss[d]}), for dim: {d}")
        if any(a != b for k, (a, b) in enumerate(zip(ss, xs)) if k != d):
            raise RuntimeError("source tensor shape must match self tensor shape, excluding the "
                               f"specified dimension. Got self.shape = {list(x.shape)} "
                               f"source.shape = {list(source.shape)}")
        source = s1
    return x1, d, idx, source


def index_add(input, dim, index, source, *, alpha=1, out=None):
    """torch.index_add: self[index[i]] += alpha * source[i] along dim (duplicates add up)."""
    x0 = _tt(input)
    x, d, idx, src = _index_dim_prep(x0, dim, index, source, "index_add")
    if x._meta[1] != src._meta[1]:
        raise RuntimeError(f"index_add_(): self ({_torch_name(x.dtype)}) and source "
                           f"({_torch_name(src.dtype)}) must have the same scalar type")
    _dim_bounds(idx, x._meta[0][d], d)
    pos = (slice(None),) * d + (idx,)
    if _floating(x):
        r = _scatter_add_float(x, pos, src if alpha == 1 else src * alpha)
    else:
        s = src._host
        s = s * int(alpha) if x._meta[1] != np.bool_ else s & bool(alpha)
        r = _wrap(_host_ufunc_at(x, pos, s.astype(x._meta[1]), np.add), x)
    return _out(r.reshape(x0._meta[0]) if r._meta[0] != x0._meta[0] else r, out)


def index_add_(input, dim, index, source, *, alpha=1):
    return _inplace_via(input, "index_add_", lambda x: index_add(x, dim, index, source,
                                                                 alpha=alpha), source)


def _index_copy_prep(x, dim, index, source):
    x1, d, idx, src = _index_dim_prep(x, dim, index, source, "index_copy_", int32=False)
    _same_dtype(x1, src, "index_copy_(): self and source expected to have the same dtype, but "
                         "got (self) {X} and (source) {S}")
    _bounds(idx, x1._meta[0][d], exc=IndexError,
            msg="index_copy_(): index {bad} is out of bounds for dimension " + str(d) +
            " with size {size}")
    return x1, (slice(None),) * d + (idx,), src


def index_copy(input, dim, index, source, *, out=None):
    """torch.index_copy: self[index[i]] = source[i] along dim."""
    x = _tt(input)
    x1, pos, src = _index_copy_prep(x, dim, index, source)
    y = _put(x1, pos, src, "IndexCopyBackward0")
    return _out(y.reshape(x._meta[0]) if y._meta[0] != x._meta[0] else y, out)


def index_copy_(input, dim, index, source):
    x = input
    if not x.dim():
        return _inplace_via(x, "index_copy_", lambda x: index_copy(x, dim, index, source), source)
    _, pos, src = _index_copy_prep(x, dim, index, source)
    return _write(x, "index_copy_", pos, src, src)


def _index_fill_prep(x, dim, index, value):
    x1, d, idx, _ = _index_dim_prep(x, dim, index, None, "index_fill_", int32=False,
                                    idx_msg="index_fill_(): Expected dtype int64 for index.",
                                    idx_exc=IndexError)
    v = _value_tensor(value, "index_fill_")
    n = x1._meta[0][d]
    _bounds(idx, n, negative=True, exc=IndexError,
            msg="index {bad} is out of bounds for dimension " + str(d) + " with size {size}")
    # unique: a repeated index fills once (the value's gradient counts each element once)
    idx = np.unique(np.where(idx < 0, idx + n, idx))
    if isinstance(v, Tensor) and not _floating(x1):
        v = v.item()
    return x1, (slice(None),) * d + (idx,), v


def index_fill(input, dim, index, value):
    """torch.index_fill: the slices of self along dim at index set to ``value``."""
    x = _tt(input)
    x1, pos, v = _index_fill_prep(x, dim, index, value)
    y = _put(x1, pos, v, "IndexFillBackward0")
    return y.reshape(x._meta[0]) if y._meta[0] != x._meta[0] else y


def index_fill_(input, dim, index, value):
    x = input
    if not x.dim():
        return _inplace_via(x, "index_fill_", lambda x: index_fill(x, dim, index, value), value)
    _, pos, v = _index_fill_prep(x, dim, index, value)
    return _write(x, "index_fill_", pos, v, v)


def index_reduce(input, dim, index, source, reduce, *, include_self=True, out=None):
    """torch.index_reduce: source's slices combined into self's slices at index along dim by
    prod/mean/amax/amin (scatter_reduce's core on a slice index)."""
    x0 = _tt(input)
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"index_reduce(): Expected reduce to be one of prod, mean, amax or "
                           f"amin but got {reduce}.")
    x, d, idx, src = _index_dim_prep(x0, dim, index, source, "index_reduce_")
    _same_dtype(x, src, "index_reduce_(): self ({X}) and source ({S}) must have the same "
                        "scalar type")
    _dim_bounds(idx, x._meta[0][d], d)
    r = _reduce_at(x, (slice(None),) * d + (idx,), src, reduce, include_self)
    return _out(r.reshape(x0._meta[0]) if r._meta[0] != x0._meta[0] else r, out)


def index_reduce_(input, dim, index, source, reduce, *, include_self=True):
    return _inplace_via(input, "index_reduce_", lambda x: index_reduce(
        x, dim, index, source, reduce, include_self=include_self), source)


# ============================================================================================
# index_put


def _put_index(x, indices):
    if not isinstance(indices, (tuple, list)):
        raise TypeError("index_put(): indices must be a tuple of tensors")
    idx, _ = _convert_index(tuple(indices), x._meta[0])
    try:
        target = np.empty(x._meta[0], np.bool_)[idx].shape
    except IndexError as e:
        raise IndexError(f"{e} (indexing a tensor of shape {tuple(x.shape)})") from None
    return idx, target


def _put_values(x, values, target):
    v = _tt(values)
    if v._meta[1] != x._meta[1]:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{_torch_name(x.dtype)} for the destination and "
                           f"{_torch_name(v.dtype)} for the source.")
    try:
        if tuple(np.broadcast_shapes(v._meta[0], target)) != tuple(target):
            raise ValueError
    except ValueError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(v.shape)} cannot be "
                           f"broadcast to indexing result of shape {list(target)}") from None
    return v


def _accumulate(x, idx, target, v):
    if _floating(x):
        if v._meta[0] != tuple(target):
            v = v.expand(tuple(target))
        return _scatter_add_float(x, idx, v)
    return _wrap(_host_ufunc_at(x, idx, np.broadcast_to(v._host, target), np.add), x)


def index_put(input, indices, values, accumulate=False):
    """torch.index_put: self[indices] = values (``accumulate=True``: +=, duplicates add up)."""
    x = _tt(input)
    idx, target = _put_index(x, indices)
    v = _put_values(x, values, target)
    if accumulate:
        return _accumulate(x, idx, target, v)
    return _put(x, idx, v, "IndexPutBackward0", target)


def index_put_(input, indices, values, accumulate=False):
    x = input
    idx, target = _put_index(x, indices)
    v = _put_values(x, values, target)
    if accumulate:
        return _inplace_via(x, "index_put_", lambda x: _accumulate(x, idx, target, v), v)
    return _write(x, "index_put_", idx, v, v)


# ============================================================================================
# masked ops


def _mask(mask, op):
    m = _tt(mask)
    if m._meta[1] != np.bool_:
        raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype "
                           f"{str(m.dtype).replace('jitgrad.', '')}" if op.startswith("masked_fill")
                           else f"{op}: expected BoolTensor for mask")
    return m


def masked_fill(input, mask, value):
    """torch.masked_fill: ``value`` where mask is True (mask broadcasts); self's dtype."""
    x = _tt(input)
    m = _mask(mask, "masked_fill_")
    v = _value_tensor(value, "masked_fill_")
    if isinstance(v, Tensor) and not _floating(x):
        v = v.item()
    if not isinstance(v, Tensor):
        v = np.asarray(v).astype(x._meta[1]).item()  # the value cast to self's dtype first
    r = where(m, v, x)
    return r if r._meta[1] == x._meta[1] else r.to(x.dtype)


def masked_fill_(input, mask, value):
    x = input
    m = _mask(mask, "masked_fill_")
    v = _value_tensor(value, "masked_fill_")
    shape = x._meta[0]
    if broadcast_shapes(m._meta[0], shape) != tuple(shape):
        raise RuntimeError(f"output with shape {list(shape)} doesn't match the broadcast shape "
                           f"{list(broadcast_shapes(m._meta[0], shape))}")
    if isinstance(v, Tensor) and not _floating(x):
        v = v.item()
    return _write(x, "masked_fill_", np.broadcast_to(m._host, shape), v, v)


def masked_select(input, mask, *, out=None):
    """torch.masked_select: the elements where mask (broadcast with input) is True, as 1-D."""
    x = _tt(input)
    m = _mask(mask, "masked_select")
    shape = broadcast_shapes(x._meta[0], m._meta[0])
    if x._meta[0] != tuple(shape):
        x = x.expand(tuple(shape))
    mb = np.broadcast_to(m._host, shape)
    if not mb.ndim:
        x, mb = x.reshape(1), mb.reshape(1)
    return _out(getitem(x, (mb,), grad_fn="MaskedSelectBackward0"), out)


def _masked_scatter_prep(x, mask, source, shape):
    m = _mask(mask, "masked_scatter_")
    src = _tt(source)
    if src._meta[1] != x._meta[1]:
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes but "
                           f"got{_torch_name(x.dtype)} and {_torch_name(src.dtype)}")
    mb = np.broadcast_to(m._host, shape)
    n = int(mb.sum())
    if src.numel() < n:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    return mb, src.reshape(-1)[:n], src


def masked_scatter(input, mask, source):
    """torch.masked_scatter: source's leading elements, in order, where mask is True."""
    x = _tt(input)
    shape = tuple(broadcast_shapes(x._meta[0], _tt(mask)._meta[0]))
    mb, vals, _ = _masked_scatter_prep(x, mask, source, shape)
    y = x.expand(shape) if x._meta[0] != shape else x
    if not mb.ndim:
        return _put(y.reshape(1), (mb.reshape(1),), vals, "MaskedScatterBackward0").reshape(())
    return _put(y, (mb,), vals, "MaskedScatterBackward0")


def masked_scatter_(input, mask, source):
    x = input
    shape = tuple(x._meta[0])
    if broadcast_shapes(_tt(mask)._meta[0], shape) != shape:
        raise RuntimeError(f"masked_scatter_: mask of shape {list(_tt(mask).shape)} does not "
                           f"broadcast to self's shape {list(shape)}")
    if not shape:
        return _inplace_via(x, "masked_scatter_", lambda x: masked_scatter(x, mask, source), source)
    mb, vals, src = _masked_scatter_prep(x, mask, source, shape)
    return _write(x, "masked_scatter_", (mb,), vals, src)


# ============================================================================================
# nonzero / argwhere, searchsorted / bucketize (integer results, no gradient)


def argwhere(input):
    """torch.argwhere: nonzero(input) as an (n, ndim) int64 tensor (a 0-d input: (n, 0))."""
    x = _tt(input)
    if x.dim() == 0:
        return _wrap(np.zeros((int(bool(x._host)), 0), np.int64), x)
    return nonzero(x)


def nonzero_static(input, *, size, fill_value=-1):
    """torch.nonzero_static: nonzero(input) cut or padded (with ``fill_value``) to ``size``
    rows, so the shape does not depend on the values."""
    if size < 0:
        raise RuntimeError(f"nonzero_static: 'size' must be an non-negative integer, got {size}")
    x = _tt(input)
    nz = nonzero(x)._host
    out = np.full((int(size), nz.shape[1]), fill_value, np.int64)
    k = min(int(size), nz.shape[0])
    out[:k] = nz[:k]
    return _wrap(out, x)


def _sorted_search(seq, vals, side, sorter):
    """np.searchsorted row by row over the leading dims (seq 1-D: one search)."""
    if not vals.size or not seq.shape[-1]:
        return np.zeros(vals.shape, np.int64)
    if sorter is not None:
        seq = np.take_along_axis(seq, sorter, axis=-1)
    if seq.ndim == 1:
        return np.searchsorted(seq, vals, side=side)
    s2 = seq.reshape(-1, seq.shape[-1])
    v2 = vals.reshape(s2.shape[0], -1)
    out = np.empty(v2.shape, np.int64)
    for r in range(s2.shape[0]):
        out[r] = np.searchsorted(s2[r], v2[r], side=side)
    return out.reshape(vals.shape)


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None, out=None):
    """torch.searchsorted: for each value, the index in the innermost dim of sorted_sequence
    where it would be inserted to keep it sorted (``right``/``side='right'``: after equals)."""
    seq = _tt(sorted_sequence)
    scalar = not isinstance(input, Tensor)
    if scalar and seq.dim() != 1:
        raise RuntimeError("torch.searchsorted(): input value can be a scalar only when "
                           "boundaries tensor dimension is 1, but we got boundaries tensor dim("
                           f"{seq.dim()}) and input value's dim(0) numel(1)")
    vals = _tt(input)
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but "
                               f"got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, "
                               "got side of left while right was True")
        right = side == "right"
    if seq.dim() == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have positive "
                           "dimension, but got 0 dimension")
    ss, vs = seq._meta[0], vals._meta[0]
    if seq.dim() != 1 and (len(vs) != len(ss) or tuple(vs[:-1]) != tuple(ss[:-1])):
        raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or the "
                           "first N-1 dimensions of boundaries tensor and input value tensor "
                           f"must match, but we got boundaries tensor {list(ss)} and input "
                           f"value tensor {list(vs)}")
    srt = None
    if sorter is not None:
        srt = _index(sorter, "searchsorted", int32=False,
                     msg="torch.searchsorted(): sorter must be a tensor of long dtype")
        if srt.shape != tuple(ss):
            raise RuntimeError("torch.searchsorted(): boundary and sorter must have the same "
                               f"size, but got boundary tensor {list(ss)}and got sorter tensor "
                               f"{list(srt.shape)}")
        _bounds(srt, ss[-1], msg="torch.searchsorted(): sorter index out of range")
    s, v = seq._host, vals._host
    if s.dtype != v.dtype:  # compared in the promoted dtype
        dt = np.promote_types(s.dtype, v.dtype)
        s, v = s.astype(dt), v.astype(dt)
    r = _sorted_search(s, v, "right" if right else "left", srt)
    r = np.asarray(r, np.int32 if out_int32 else np.int64).reshape(vs)
    return _out(_wrap(r, seq), out)


def bucketize(input, boundaries, *, out_int32=False, right=False, out=None):
    """torch.bucketize: the bucket of each value given 1-D boundaries (right=False:
    boundaries[i-1] < x <= boundaries[i])."""
    b = _tt(boundaries)
    if b.dim() != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({b.dim()})")
    return searchsorted(b, input, out_int32=out_int32, right=right, out=out)


implement(gather=gather, scatter=scatter, scatter_=scatter_, scatter_add=scatter_add,
          scatter_add_=scatter_add_, scatter_reduce=scatter_reduce,
          scatter_reduce_=scatter_reduce_, index_select=index_select, index_add=index_add,
          index_add_=index_add_, index_copy=index_copy, index_copy_=index_copy_,
          index_fill=index_fill, index_fill_=index_fill_, index_reduce=index_reduce,
          index_reduce_=index_reduce_, index_put=index_put, index_put_=index_put_,
          masked_fill=masked_fill, masked_fill_=masked_fill_, masked_select=masked_select,
          masked_scatter=masked_scatter, masked_scatter_=masked_scatter_, take=take,
          take_along_dim=take_along_dim, argwhere=argwhere, nonzero_static=nonzero_static)
