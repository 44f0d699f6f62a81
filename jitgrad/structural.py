"""structural: the vocabulary ``V`` that structural VJP rules (ops.Structural.vjp) are written in.

A rule is written once, ``vjp(V, ctx, g)``, and runs on three implementations:

* ``ARRAYS``  -- NumPy arrays: a plain first-order backward on the CPU, with no Tensor
  bookkeeping (what each op's ``backward_arrays`` twin used to be);
* ``TENSORS`` -- jitgrad Tensors: differentiable again (``create_graph=True``) and on the GPU;
* ``BATCHED`` -- Tensors whose cotangent carries a leading batch axis B (a whole Jacobian in one
  pass, autograd/forward.py): primal values get a leading 1, params are batch-shifted, and
  ``sum_to`` never sums the batch axis.

Names follow NumPy (``reshape``, ``transpose``, ``broadcast_to``, ``matmul``, ``where``).
Fused entries (``softmax_vjp``, ``xent_vjp``) are one kernel on arrays and the composed formula
on Tensors. Arithmetic operators work on both kinds of value directly.
"""
from __future__ import annotations

import numpy as np

from . import _state as grad_mode
from . import dtypes, lazy
from ._methods import IMPL  # the Tensor-level names (Tensor, apply_fn, the public ops): filled
#                             by _tensor and functional_ops at import; see _methods
from ._engine import device_key
from .backends import BACKENDS, backend_of, cpu, cpu_nn

__all__ = ["ARRAYS", "TENSORS", "BATCHED", "keep_shape", "shift_axes", "shift_axis",
           "same_params"]

def keep_shape(shape, axes):
    """``shape`` with the reduced ``axes`` kept as size 1 (keepdim form)."""
    return tuple(1 if k in axes else s for k, s in enumerate(shape))


def shift_axes(p, B=None, in_shapes=None):
    """Batch rule of a reduction over ``axes``: every axis moves one to the right."""
    return {**p, "axes": tuple(a + 1 for a in p["axes"])}


def shift_axis(p, B=None, in_shapes=None):
    """Batch rule of an op along one ``axis`` (softmax, cat, cumsum)."""
    return {**p, "axis": p["axis"] + 1}


def same_params(p, B=None, in_shapes=None):
    """Batch rule of an op whose params do not name axes (casts, copies, matmul)."""
    return dict(p)


class _Arrays:
    """V on NumPy arrays (first-order backward on the CPU)."""
    nb = 0

    @staticmethod
    def saved(ctx):
        return tuple([t._data for t in ctx.saved_tensors])

    @staticmethod
    def result(ctx):
        return ctx.out

    @staticmethod
    def const(a, like=None):
        return a

    @staticmethod
    def apply(rec, *xs, **params):
        """Another structural primitive's forward (e.g. prod's prod_others)."""
        return np.asarray(rec.forward(IMPL.Ctx(), *xs, **params))

    @staticmethod
    def detach(x):
        return x

    @staticmethod
    def shape(x):
        return x.shape

    @staticmethod
    def dtype(x):
        return x.dtype

    @staticmethod
    def mean(x, axes):
        if x.size == 0:  # the mean of nothing is NaN (without NumPy's warning)
            return np.full(keep_shape(x.shape, axes), np.nan, x.dtype)
        return x.mean(axis=axes, keepdims=True)

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    @staticmethod
    def transpose(x, perm):
        return np.transpose(x, perm)

    @staticmethod
    def mT(x):
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def expand_back(g, in_shape, axes, keepdim):
        """Gradient of a reduction over ``axes``: g in keepdim form, broadcast to the input."""
        gk = g if keepdim else g.reshape(keep_shape(in_shape, axes))
        if lazy.is_fusion_enabled():  # a broadcast view: the fused kernel reads one scalar
            return np.broadcast_to(gk, in_shape)
        out = np.empty(in_shape, g.dtype)
        out[...] = gk
        return out

    @staticmethod
    def sum_to(a, shape):
        shape = tuple(shape)
        if a.shape == shape:
            return a
        if a.ndim == 2 and shape == a.shape[1:]:  # bias gradients: one column-sum kernel
            out = np.empty(shape, a.dtype)
            if a.size:
                cpu_nn.col_sum(a, out)
            else:
                out[...] = 0
            return out
        lead = a.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + k for k, s in enumerate(shape)
                                          if s == 1 and a.shape[lead + k] != 1)
        if not axes:
            return a.reshape(shape)
        return cpu.reduce_sum(a, axes, a.dtype).reshape(shape)

    @staticmethod
    def sum(x, axes, keepdim=False):
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def matmul(a, b):
        return cpu.matmul(a, b)  # (np.matmul, or its transposed product: see cpu.matmul)

    @staticmethod
    def matmul_as(a, b, like):
        """a @ b laid out like ``like``: a transposed view gets (b^T a^T)^T, no copy."""
        if like.flags.f_contiguous and not like.flags.c_contiguous:
            return np.matmul(np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2)).T
        return np.matmul(a, b)

    @staticmethod
    def getitem(x, idx):
        return np.asarray(x[idx])

    @staticmethod
    def index_add(g, shape, idx):
        """zeros(shape) with g scatter-added at idx (duplicates accumulate)."""
        return cpu.index_add(shape, idx, g)

    @staticmethod
    def zero_at(g, idx):
        """g with the elements at idx set to 0 (a copy)."""
        out = np.array(g, copy=True, order="C")
        out[idx] = 0
        return out

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def eq(a, b):
        return a == b

    @staticmethod
    def isnan(a):
        return np.isnan(a)

    @staticmethod
    def logical_and(a, b):
        return np.logical_and(a, b)

    @staticmethod
    def exp(x):
        return np.exp(x)

    @staticmethod
    def astype(x, dt):
        return x.astype(dt, copy=False)

    @staticmethod
    def flip(x, axes):
        return np.flip(x, axes)

    @staticmethod
    def cumsum(x, axis):
        return np.cumsum(x, axis=axis, dtype=x.dtype)

    @staticmethod
    def cumprod(x, axis):  # (float32 accumulates in float64, like the op's forward and torch)
        return np.cumprod(x.astype(np.float64) if x.dtype == np.float32 else x,
                          axis=axis).astype(x.dtype, copy=False)

    @staticmethod
    def logcumsumexp(x, axis):
        with np.errstate(invalid="ignore", over="ignore"):
            return np.logaddexp.accumulate(x.astype(np.float64) if x.dtype == np.float32 else x,
                                           axis=axis).astype(x.dtype, copy=False)

    @staticmethod
    def log(x):
        return np.log(x)

    @staticmethod
    def cat(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def to_device(x, device):
        return BACKENDS[device].from_host(backend_of(x).to_host(x))

    @staticmethod
    def softmax_vjp(ctx, g, log):
        out = ctx.out
        o3, _ = cpu.arb_view(out, (ctx.axis,))
        g3, _ = cpu.arb_view(g, (ctx.axis,))
        res = np.empty(o3.shape, out.dtype)
        if res.size:
            cpu.softmax_vjp_arb(o3, g3, res, log)
        return res.reshape(out.shape)

    @staticmethod
    def xent_vjp(ctx, g):
        probs = ctx.probs
        out = np.empty(probs.shape, probs.dtype)
        if out.size:
            cpu_nn.cross_entropy_bwd(probs, ctx.target, ctx.coef, g.reshape(-1),
                                     ctx.reduction == "none", out)
        return out

    @staticmethod
    def errstate():
        return np.errstate(divide="ignore", invalid="ignore")


class _NoErr:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class _Tensors:
    """V on jitgrad Tensors: differentiable again, and device-agnostic."""
    nb = 0

    @staticmethod
    def saved(ctx):
        return ctx.saved_tensors

    @staticmethod
    def result(ctx):
        """The op's saved output (softmax reads it, like torch); under create_graph it is rebuilt
        around the op's own node so a double backward flows through it."""
        if grad_mode.is_grad_enabled() and getattr(ctx, "node", None) is not None:
            return IMPL.Tensor._make(ctx.out, True, ctx.node())
        return IMPL.Tensor._make(ctx.out)

    @staticmethod
    def const(a, like=None):
        """A constant array as a Tensor (on the device of the array ``like``)."""
        if like is not None and type(a) is np.ndarray:
            a = backend_of(like).from_host(a)
        return IMPL.Tensor._make(a)

    @staticmethod
    def apply(rec, *xs, **params):
        if not rec.differentiable and grad_mode.is_grad_enabled() and any(x._rg for x in xs):
            raise NotImplementedError(f"double backward through {rec.grad_fn} ({rec.name}) is "
                                      "not supported yet")
        return IMPL.apply_fn(rec, xs, **params)

    @staticmethod
    def detach(x):
        return x.detach()

    @staticmethod
    def shape(x):
        return x._meta[0]

    @staticmethod
    def dtype(x):
        return x._meta[1]

    @staticmethod
    def mean(x, axes):
        return IMPL.mean(x, axes, keepdim=True)

    @staticmethod
    def reshape(x, shape):
        return x.reshape(tuple(shape))

    @staticmethod
    def transpose(x, perm):
        return IMPL.permute(x, tuple(perm))

    @staticmethod
    def mT(x):
        return IMPL.transpose(x, -2, -1)

    @staticmethod
    def broadcast_to(x, shape):
        return IMPL.expand(x, tuple(shape))

    @staticmethod
    def expand_back(g, in_shape, axes, keepdim):
        if not keepdim:
            g = g.reshape(keep_shape(in_shape, axes))
        return g.expand(tuple(in_shape))

    @staticmethod
    def sum_to(t, shape):
        return IMPL.sum_to(t, shape)

    @staticmethod
    def sum(x, axes, keepdim=False):
        return IMPL.sum(x, axes, keepdim=keepdim)

    @staticmethod
    def matmul(a, b):
        return IMPL.matmul(a, b)

    @staticmethod
    def matmul_as(a, b, like):
        return IMPL.matmul(a, b)

    @staticmethod
    def getitem(x, idx):
        return IMPL.getitem(x, idx)

    @staticmethod
    def index_add(g, shape, idx):
        return IMPL.apply_fn(IMPL._IndexBackward, (g,), shape=tuple(shape), idx=idx)

    @staticmethod
    def zero_at(g, idx):
        mask = np.ones(g._meta[0], g._meta[1])
        mask[idx] = 0
        mask = BACKENDS[device_key(g)].from_host(mask)
        return g * IMPL.Tensor._make(mask)

    @staticmethod
    def where(c, a, b):
        return IMPL.where(c, a, b)

    @staticmethod
    def eq(a, b):
        return IMPL.eq(a, b)

    @staticmethod
    def isnan(a):
        return IMPL.ne(a, a)

    @staticmethod
    def logical_and(a, b):
        return IMPL.logical_and(a, b)

    @staticmethod
    def exp(x):
        return IMPL.exp(x)

    @staticmethod
    def astype(x, dt):
        d = dtypes.from_numpy(np.dtype(dt))
        return x if x._meta[1] == d.np else x.to(d)

    @staticmethod
    def flip(x, axes):
        return IMPL.flip(x, axes)

    @staticmethod
    def cumsum(x, axis):
        return IMPL.cumsum(x, axis)

    @staticmethod
    def cumprod(x, axis):
        return IMPL.cumprod(x, axis)

    @staticmethod
    def logcumsumexp(x, axis):
        return IMPL.logcumsumexp(x, axis)

    @staticmethod
    def log(x):
        return IMPL.log(x)

    @staticmethod
    def cat(xs, axis):
        return IMPL.cat(list(xs), axis)

    @staticmethod
    def to_device(x, device):
        return x.to(device)

    @classmethod
    def softmax_vjp(cls, ctx, g, log):
        out = cls.result(ctx)
        if log:
            return g - IMPL.exp(out) * IMPL.sum(g, ctx.axis, keepdim=True)
        return out * (g - IMPL.sum(g * out, ctx.axis, keepdim=True))

    @staticmethod
    def xent_vjp(ctx, g):
        """(softmax(x) - onehot) * g * coef, recomputing softmax from the logits under
        create_graph (version-checked: the logits must not have been written in place)."""
        x = ctx.x
        if x._vc[0] != ctx.x_version:
            shape, dt = x._meta
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{dt} tensor of shape {list(shape)}], which is needed by "
                f"NllLossBackward0, is at version {x._vc[0]}; expected version "
                f"{ctx.x_version} instead.")
        n, c = ctx.probs.shape
        dt = ctx.probs.dtype
        onehot = np.zeros((n, c), dt)
        rows = np.flatnonzero(ctx.coef != 0)
        onehot[rows, ctx.target[rows]] = 1
        p = IMPL.softmax(x, 1) if grad_mode.is_grad_enabled() else IMPL.Tensor._make(ctx.probs)
        gg = g.unsqueeze(1) if ctx.reduction == "none" else g
        coef = IMPL.Tensor._make(ctx.coef.astype(dt)[:, None])
        return (p - IMPL.Tensor._make(onehot)) * (gg * coef)

    @staticmethod
    def errstate():
        return _NoErr()


class _Batched(_Tensors):
    """V for batched cotangents: the primal values (``saved``, ``result``) were lifted to a
    leading axis of size 1 by the caller, and ``sum_to`` keeps the leading batch axis."""
    nb = 1

    @staticmethod
    def result(ctx):
        return ctx.result

    @staticmethod
    def sum_to(t, shape):
        s = t._meta[0]
        tgt = tuple(shape)
        if s == tgt:
            return t
        lead = len(s) - len(tgt)
        axes = tuple(range(1, 1 + lead)) + tuple(lead + k for k in range(1, len(tgt))
                                                  if tgt[k] == 1 and s[lead + k] != 1)
        r = t.sum(dim=axes, keepdim=True) if axes else t
        return r.reshape(tgt)


ARRAYS = _Arrays()
TENSORS = _Tensors()
BATCHED = _Batched()
