"""batching: ``jitgrad.vmap`` / ``jitgrad.func.vmap`` with torch.func's semantics.

Design: a batched value is a :class:`BatchedTensor`, a Tensor whose metadata (``shape``,
``dim()``, ``_meta``) is the *logical* per-sample view while it holds the *physical* tensor
(the batch axis always in front) in ``_bval``. While ``vmap`` runs, a :class:`_Layer` is the
thread's active interpreter (``STATE.tracer``, the hook ``apply_elementwise``/``apply_fn``
already call), so every primitive the function runs reaches the layer with the logical
operands and params the public op computed. The layer runs the same primitive once on the
physical values, by one batching rule per primitive:

* elementwise rows: broadcasting (a batched operand is padded to the output's logical rank
  behind its batch axis); a folded ``sum``/``mean`` becomes a reduction over the logical axes;
* structural records (ops.STRUCTURAL): the record's own ``vmap`` (matmul, expand) or its
  ``batch`` params rule (the axis shift the Jacobian transforms use), unbatched operands
  expanded along the batch axis; a record with neither raises, naming the op.

The physical ops run with the layer's parent as the active interpreter, so nesting works in
both orders without levels: ``vmap(vmap(f))`` (an inner BatchedTensor holds an outer one),
``vmap(grad(f))`` (grad's tracer records logical ops, its reverse pass runs logical Tensor ops
which the layer batches: per-sample gradients come out of one batched pass), and
``grad(vmap(f))`` (the outer tracer records the physical ops).

Why not trace once and replay the record with batched rules: values a primitive takes as
params rather than operands (nll_loss/cross_entropy targets, index arrays) and arrays a
forward leaves on its ctx would be baked in from the traced sample; here every public op sees
the real batched operands (nn.functional's losses take a composed path for batched targets,
see :func:`cross_entropy`), and what cannot be batched raises instead of going silently wrong.
"""
from __future__ import annotations

import functools
import sys

import numpy as np

from . import functional_ops as F
from ._state import STATE
from ._tensor import Tensor, apply_elementwise, apply_fn
from .autograd import trace as _trace

__all__ = ["vmap", "BatchedTensor", "is_batched"]

_RANDOMNESS = ("error", "different", "same")


# ============================================================================================
# BatchedTensor


class _Escaped:
    """What a BatchedTensor shows as ``_lazy``: the device (read by device checks), and a clear
    error for anything else (jitgrad internals reached a batched value outside its layer)."""

    __slots__ = ("_t",)

    def __init__(self, t):
        self._t = t

    @property
    def device(self):
        p = self._t._bval
        return "cuda" if p.is_cuda else "cpu"

    @property
    def cuda(self):
        return self._t._bval.is_cuda

    @property
    def shape(self):
        return self._t._bmeta[0]

    @property
    def dtype(self):
        return self._t._bmeta[1]

    def __getattr__(self, name):
        raise RuntimeError(
            "vmap: a batched tensor reached jitgrad internals outside the vmap that made it (an "
            "escaped value, a custom autograd.Function or an op without a batching rule); "
            f"shape {list(self._t._bmeta[0])} (batch size {self._t._blayer.B})")


_allowed = None


def _shape_readers():
    """Code objects that read ``_data`` for shapes/dtypes/layout only (they get a stand-in
    array of the logical shape): the tracer's structural readers plus reshape's view test."""
    global _allowed
    if _allowed is None:
        codes = set(_trace._structural_readers())
        codes.update(f.__code__ for f in (F.reshape,))
        codes.update(p.__code__ for p in (Tensor.contiguous, Tensor.is_contiguous))
        _allowed = frozenset(codes)
    return _allowed


def _user_frame():
    """Name of the first caller outside the jitgrad package (for error messages)."""
    f = sys._getframe(2)
    first = f.f_code.co_name
    while f is not None and "/jitgrad/" in f.f_code.co_filename.replace("\\", "/"):
        f = f.f_back
    return first, (f.f_code.co_name if f is not None else first)


class BatchedTensor(Tensor):
    """A per-sample (logical) view of a tensor with a leading batch axis: ``_bval`` is the
    physical tensor (batch axis first), ``_blayer`` the vmap layer it belongs to."""

    __slots__ = ("_bval", "_blayer", "_bmeta")

    @property
    def _meta(self):
        return self._bmeta

    @property
    def _lazy(self):
        return _Escaped(self)

    @property
    def _data(self):
        code = sys._getframe(1).f_code
        if code in _shape_readers():
            shape, dt = self._bmeta
            return np.lib.stride_tricks.as_strided(np.zeros(1, dt), shape, (0,) * len(shape),
                                                   writeable=False)
        op, user = _user_frame()
        raise RuntimeError(
            f"vmap: {op} (called from {user}) needs the values of a batched tensor, which vmap "
            "does not support: data-dependent Python control flow, .item(), .tolist(), "
            ".numpy(), in-place writes into a batched tensor and value-dependent ops "
            "(nonzero, boolean masks, tensor indices) cannot be batched; compute them outside "
            "vmap or pass them with in_dims=None")

    def detach(self):
        return self._blayer._wrap(self._bval.detach())

    def __repr__(self):
        return (f"BatchedTensor(lvl={self._blayer.level}, bdim=0, "
                f"value=\n{self._bval!r})")


def is_batched(*xs) -> bool:
    """Whether any of ``xs`` is a BatchedTensor (a value inside ``vmap``)."""
    for x in xs:
        if isinstance(x, BatchedTensor):
            return True
    return False


class _Everything:
    """Layer.index: an enclosing transform keeps every value connected (an inner grad's
    inputs are reshaped, not detached, so outer transforms see through it)."""

    def __contains__(self, key):
        return True


_EVERYTHING = _Everything()


# ============================================================================================
# The layer: one vmap's interpreter


class _Layer:
    """The active interpreter while one ``vmap`` runs (``STATE.tracer``): batches every
    primitive whose operands it owns, passes the others on to its parent."""

    index = _EVERYTHING
    batches = True   # (autograd.functional: inner transforms' inputs stay as they are)

    def __init__(self, B, randomness, parent):
        self.B = B
        self.randomness = randomness
        self.parent = parent
        self.observed = None
        self.level = 1
        tr = parent
        while tr is not None:
            if isinstance(tr, _Layer):
                self.level += 1
            tr = tr.parent
        self.draws = 0   # random draws this layer batched (randomness='different')

    # the tracer protocol's attributes that enclosing code sets on every active interpreter
    @property
    def inexact(self):
        return None

    @inexact.setter
    def inexact(self, why):
        if why:
            raise NotImplementedError(
                f"vmap: {why}; the autograd engine cannot run on batched values (a transform "
                "inside vmap met a primitive without a batched rule, an in-place write, or a "
                "custom autograd.Function)")

    def _wrap(self, p):
        t = object.__new__(BatchedTensor)
        t._arr = None
        t._rg = p._rg
        t.grad = None
        t.grad_fn = None
        t._vc = [0]
        t._base = None
        t._accum = None
        t._views = None
        t._bval = p
        t._blayer = self
        s, dt = p._meta
        t._bmeta = (tuple(s[1:]), dt)
        return t

    def _mine(self, o):
        return type(o) is BatchedTensor and o._blayer is self

    # --- the hooks apply_elementwise / apply_fn call ----------------------------------------
    def elementwise(self, row, ops, grad_fn, reduce, out):
        st = STATE
        st.tracer = self.parent
        try:
            if not any(self._mine(o) for o in ops):
                return apply_elementwise(row, ops, grad_fn, reduce, out)
            if out is not None:
                raise RuntimeError(f"vmap: {row.name} with out= is not supported on batched "
                                   "tensors")
            nd = max(len(o._meta[0]) for o in ops if isinstance(o, Tensor))
            phys = []
            for o in ops:
                if self._mine(o):
                    p = o._bval
                    s = o._bmeta[0]
                    if len(s) < nd:
                        p = p.reshape((self.B,) + (1,) * (nd - len(s)) + tuple(s))
                    phys.append(p)
                else:
                    phys.append(o)
            r = apply_elementwise(row, tuple(phys), grad_fn, None, None)
            if reduce is not None and r.dim() > 1:
                dims = tuple(range(1, r.dim()))
                r = r.sum(dim=dims) if reduce == "sum" else r.mean(dim=dims)
        finally:
            st.tracer = self
        return self._wrap(r)

    def function(self, fn, inputs, grad_fn, view_of, save, ctx, params):
        st = STATE
        st.tracer = self.parent
        try:
            flags = tuple(self._mine(t) for t in inputs)
            if not any(flags):
                return apply_fn(fn, inputs, grad_fn, view_of, save, ctx, **params)
            B = self.B
            phys = [t._bval if f else t for t, f in zip(inputs, flags)]
            if fn.vmap is not None:
                r = fn.vmap(phys, flags, params, B)
            elif fn.batch is not None:
                full = []
                for p, f in zip(phys, flags):
                    if not f:
                        s = tuple(p._meta[0])
                        p = p.reshape((1,) + s).expand((B,) + s)
                    full.append(p)
                # (in_shapes are the per-sample shapes, as forward.py passes them)
                q = fn.batch(params, B, [tuple(p._meta[0][1:]) for p in full])
                if q is None:
                    raise NotImplementedError(
                        f"vmap: {fn.name} ({fn.grad_fn}) cannot keep the batch axis in front "
                        f"with these params (e.g. advanced indices after a slice); batching it "
                        "is not supported yet")
                vo = None
                if view_of is not None:
                    for t, p in zip(inputs, full):
                        if t is view_of:
                            vo = p
                r = apply_fn(fn, tuple(full), grad_fn, vo, save, ctx, **q)
            else:
                raise NotImplementedError(
                    f"vmap: no batching rule for {fn.name} ({fn.grad_fn}) yet; call it outside "
                    "vmap (or give its ops.STRUCTURAL record a batch/vmap rule)")
        finally:
            st.tracer = self
        if tuple(r._meta[0][:1]) != (B,):
            raise RuntimeError(f"vmap: the batching rule of {fn.name} lost the batch axis "
                               f"(physical shape {list(r._meta[0])}, batch size {B})")
        return self._wrap(r)

    # --- random numbers (creation's factories ask the innermost layer) -----------------------
    def random(self, draw, shape):
        """``draw(shape)`` under this layer: randomness='error' raises, 'same' draws one value
        for every sample, 'different' draws a leading batch axis."""
        if self.randomness == "error":
            raise RuntimeError(
                "vmap: called a random operation while in randomness='error' mode; use "
                "vmap(..., randomness='different') or 'same', or draw the random numbers "
                "outside vmap")
        st = STATE
        st.tracer = self.parent
        try:
            if self.randomness == "same":
                return draw(tuple(shape))
            self.draws += 1
            r = draw((self.B,) + tuple(shape))
        finally:
            st.tracer = self
        return self._wrap(r)


def random_layer():
    """The innermost active vmap layer, or None (creation's random factories)."""
    tr = STATE.tracer
    while tr is not None:
        if isinstance(tr, _Layer):
            return tr
        tr = tr.parent
    return None


# ============================================================================================
# in_dims / out_dims over pytrees


def _leaves(tree, dims, what, path, out):
    """Pair each leaf of ``tree`` with its dim from ``dims`` (a prefix of the tree)."""
    if dims is None or isinstance(dims, int):
        if isinstance(tree, (tuple, list)):
            for k, x in enumerate(tree):
                _leaves(x, dims, what, path + (k,), out)
        elif isinstance(tree, dict):
            for k in tree:
                _leaves(tree[k], dims, what, path + (k,), out)
        else:
            out.append((path, tree, dims))
        return
    if isinstance(dims, (tuple, list)):
        if not isinstance(tree, (tuple, list)) or len(tree) != len(dims):
            raise ValueError(f"vmap: {what}={dims!r} is not compatible with the structure of "
                             f"the {'inputs' if what == 'in_dims' else 'outputs'} at "
                             f"{_where(path)}: got {type(tree).__name__}"
                             + (f" of length {len(tree)}" if isinstance(tree, (tuple, list))
                                else ""))
        for k, (x, d) in enumerate(zip(tree, dims)):
            _leaves(x, d, what, path + (k,), out)
        return
    if isinstance(dims, dict):
        if not isinstance(tree, dict) or set(tree) != set(dims):
            raise ValueError(f"vmap: {what} is not compatible with the structure of the "
                             f"{'inputs' if what == 'in_dims' else 'outputs'} at {_where(path)}")
        for k in tree:
            _leaves(tree[k], dims[k], what, path + (k,), out)
        return
    raise ValueError(f"vmap: {what} must be an int, None or a (nested) tuple/list/dict of them, "
                     f"got {type(dims).__name__} at {_where(path)}")


def _where(path):
    return "the top level" if not path else "".join(f"[{p!r}]" for p in path)


def _rebuild(tree, repl, path=()):
    """``tree`` with the leaves at the paths in ``repl`` replaced."""
    if path in repl:
        return repl[path]
    if isinstance(tree, (tuple, list)):
        return type(tree)(_rebuild(x, repl, path + (k,)) for k, x in enumerate(tree))
    if isinstance(tree, dict):
        return {k: _rebuild(v, repl, path + (k,)) for k, v in tree.items()}
    return tree


def _move(t, src, dst):
    """``t`` with axis ``src`` moved to ``dst``."""
    if src == dst:
        return t
    nd = t.dim()
    perm = [k for k in range(nd) if k != src]
    perm.insert(dst, src)
    return F.permute(t, tuple(perm))


def _fname(func):
    return getattr(func, "__name__", type(func).__name__)


# ============================================================================================
# vmap


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """``vmap(func, in_dims=0, out_dims=0, randomness='error', *, chunk_size=None)``: ``func``
    mapped over a batch axis of its inputs, computed by one batched call of each primitive
    (torch.func.vmap's semantics). ``in_dims``: an int or None per argument (a prefix of the
    argument pytrees); ``out_dims`` likewise for the outputs; ``randomness``: 'error' (random
    ops raise), 'same' (one draw shared by every sample) or 'different' (a draw per sample);
    ``chunk_size``: run the batch in chunks of that many samples (less memory)."""
    if randomness not in _RANDOMNESS:
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or "
                           f"'same'. Got {randomness!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool)
                                   or chunk_size <= 0):
        raise ValueError(f"vmap: chunk_size should be None or greater than 0. (got "
                         f"{chunk_size!r})")

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        return _vmap_call(func, in_dims, out_dims, randomness, chunk_size, args, kwargs)
    return wrapped


def _vmap_call(func, in_dims, out_dims, randomness, chunk_size, args, kwargs):
    name = _fname(func)
    if not isinstance(in_dims, (int, type(None), tuple, list)) or isinstance(in_dims, bool):
        raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...): expected `in_dims` to be int "
                         f"or a (potentially nested) tuple matching the structure of inputs, "
                         f"got: {type(in_dims).__name__}.")
    if isinstance(in_dims, (tuple, list)) and len(in_dims) != len(args):
        raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>): in_dims is not "
                         f"compatible with the structure of `inputs`. in_dims has structure "
                         f"of length {len(in_dims)} but inputs has {len(args)} arguments.")
    if not args:
        raise ValueError(f"vmap({name})(<inputs>): got no inputs. Maybe you forgot to add "
                         "inputs, or you are trying to vmap over a function with no inputs. "
                         "The latter is unsupported.")
    pairs = []
    _leaves(tuple(args), tuple(in_dims) if isinstance(in_dims, (tuple, list)) else in_dims,
            "in_dims", (), pairs)
    sizes = []
    batched = []
    for path, x, d in pairs:
        if d is None:
            continue
        if isinstance(d, bool) or not isinstance(d, int):
            raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>): in_dim "
                             f"{d!r} at {_where(path)} must be an int or None")
        if not isinstance(x, Tensor):
            raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>): Got "
                             f"in_dim={d} for an input but the input is of type "
                             f"{type(x).__name__}. We cannot vmap over non-Tensor arguments, "
                             "please use None as the respective in_dim")
        nd = x.dim()
        if not -nd <= d < nd:
            raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>): Got "
                             f"in_dim={d} for some input, but that input is a Tensor of "
                             f"dimensionality {nd} so expected in_dim to satisfy "
                             f"-{nd} <= in_dim < {nd}.")
        d %= nd
        sizes.append(x.shape[d])
        batched.append((path, x, d))
    if not batched:
        raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>): Got no Tensor "
                         "inputs batched by in_dims (all in_dims are None or there are no "
                         "Tensors); at least one input must be a batched Tensor")
    if len(set(sizes)) != 1:
        raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>): Expected all "
                         f"tensors to have the same size in the mapped dimension, got sizes "
                         f"{sizes} for the mapped dimension")
    B = sizes[0]
    moved = {path: _move(x, d, 0) for path, x, d in batched}
    if chunk_size is None or chunk_size >= B:
        return _run(func, name, args, kwargs, moved, B, out_dims, randomness)
    parts = []
    for lo in range(0, B, chunk_size):
        hi = min(B, lo + chunk_size)
        sub = {p: x[lo:hi] for p, x in moved.items()}
        parts.append(_run(func, name, args, kwargs, sub, hi - lo, out_dims, randomness,
                          flat=True))
    spec, dims = parts[0][0], parts[0][2]
    outs = []
    for k, d in enumerate(dims):
        if d is None:
            outs.append(parts[0][1][k])
        else:
            outs.append(F.cat([p[1][k] for p in parts], d))
    return _rebuild(spec, dict(zip([p for p, _ in parts[0][3]], outs)))


def _run(func, name, args, kwargs, moved, B, out_dims, randomness, flat=False):
    st = STATE
    layer = _Layer(B, randomness, st.tracer)
    draws = st.draws
    st.tracer = layer
    try:
        wrapped = {p: layer._wrap(x) for p, x in moved.items()}
        call_args = _rebuild(tuple(args), wrapped)
        out = func(*call_args, **kwargs)
    finally:
        st.tracer = layer.parent
    if st.draws != draws + layer.draws:
        if randomness == "error":
            raise RuntimeError(
                f"vmap({name}): called a random operation while in randomness='error' mode; "
                "use vmap(..., randomness='different') or 'same', or draw the random numbers "
                "outside vmap")
        if randomness == "different":
            raise NotImplementedError(
                f"vmap({name}, randomness='different'): a random op drew numbers that jitgrad "
                "cannot batch yet (only rand, randn, randint, rand_like and randn_like are batched); "
                "use randomness='same' or draw them outside vmap")
    return _unwrap(out, name, layer, out_dims, flat)


def _unwrap(out, name, layer, out_dims, flat):
    B = layer.B
    pairs = []
    od = tuple(out_dims) if isinstance(out_dims, list) else out_dims
    if isinstance(od, tuple) and not isinstance(out, (tuple, list)):
        if len(od) != 1:
            raise ValueError(f"vmap({name}, ..., out_dims={out_dims!r})(<inputs>): out_dims is "
                             "not compatible with the structure of `outputs`: the function "
                             "returned one value")
        od = od[0]
    _leaves(out, od, "out_dims", (), pairs)
    repl, dims = {}, []
    for path, x, d in pairs:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int)):
            raise ValueError(f"vmap({name}, ..., out_dims={out_dims!r}): out_dim {d!r} at "
                             f"{_where(path)} must be an int or None")
        if not isinstance(x, Tensor):
            if d is None:
                continue
            raise ValueError(f"vmap({name}, ...): `{name}` must only return Tensors, got type "
                             f"{type(x).__name__} at {_where(path)}. Did you mean to set "
                             "out_dims= to None for output?")
        mine = type(x) is BatchedTensor and x._blayer is layer
        if isinstance(x, BatchedTensor) and not mine and x._blayer.level >= layer.level:
            raise RuntimeError(f"vmap({name}): an output is a batched tensor of an inner vmap "
                               "that escaped it")
        if d is None:
            if mine:
                raise ValueError(f"vmap({name}, ..., out_dims={out_dims!r})(<inputs>): Cannot "
                                 f"use out_dim=None for the output at {_where(path)}: it is "
                                 "batched (it depends on a batched input)")
            repl[path] = x
            dims.append((path, None))
            continue
        p = x._bval if mine else x.reshape((1,) + tuple(x.shape)).expand(
            (B,) + tuple(x.shape))
        nd = p.dim()
        if not -nd <= d < nd:
            raise ValueError(f"vmap({name}, ..., out_dims={out_dims!r}): Got out_dim={d} for an "
                             f"output of {nd - 1} dims (with the batch dim: {nd}); expected "
                             f"-{nd} <= out_dim < {nd}")
        d %= nd
        repl[path] = _move(p, 0, d)
        dims.append((path, d))
    if flat:
        return out, [repl[p] for p, _ in dims], [d for _, d in dims], dims
    return _rebuild(out, repl)


# ============================================================================================
# Losses with class-index targets, composed for batched operands (nn.functional calls these)


def _class_onehot(target, C, dim, nd):
    """bool one-hot of integer ``target`` along ``dim`` of an ``nd``-dim input (an ``==``
    against arange(C): elementwise, so it batches by broadcasting)."""
    if target._meta[1].kind not in "iu":
        raise RuntimeError(f"expected target of integer dtype (class indices), got "
                           f"{target.dtype}")
    shape = [1] * nd
    shape[dim] = C
    classes = Tensor._make(np.arange(C, dtype=np.int64).reshape(shape))
    return F.eq(target.unsqueeze(dim), classes)


def _check_targets(target, C, ignore_index, op):
    """Range-check class targets on their physical values (all samples at once) before the
    one-hot: a check that only raises feeds no value back into the computation, so it is no
    data-dependent control flow; torch's vmap raises here too, where the one-hot would silently
    give an out-of-range target weight 0."""
    t = target
    while isinstance(t, BatchedTensor):
        t = t._bval
    if t._meta[1].kind not in "iu":
        return  # _class_onehot names the dtype
    v = t._host
    bad = (v < 0) | (v >= C)
    if ignore_index is not None:
        bad &= v != ignore_index
    if bad.any():
        raise IndexError(f"{op}: target {int(v[bad][0])} is out of bounds for {C} classes "
                         f"(under vmap; target of per-sample shape {list(target.shape)})")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", _op="nll_loss"):
    """nll_loss of batched operands as elementwise ops and sums: ``-where(onehot, input, 0)``
    summed over the class dim, weighted, reduced like torch (``mean``: by the total weight of
    the counted rows). Targets are range-checked first (:func:`_check_targets`)."""
    x = input
    if not isinstance(target, Tensor):
        target = F.tensor(np.asarray(target))
    if x.dim() < 1:
        raise ValueError(f"nll_loss: expected input of shape (N, C, ...) or (C,), got "
                         f"{list(x.shape)}")
    dim = 0 if x.dim() == 1 else 1
    want = () if x.dim() == 1 else (x.shape[0],) + tuple(x.shape[2:])
    if tuple(target.shape) != want:
        raise ValueError(f"nll_loss: expected target of shape {list(want)} for input "
                         f"{list(x.shape)}, got {list(target.shape)}")
    C = x.shape[dim]
    _check_targets(target, C, ignore_index, _op)
    hot = _class_onehot(target, C, dim, x.dim())
    if ignore_index is not None:
        hot = F.logical_and(hot, F.ne(target, ignore_index).unsqueeze(dim))
    dt = x.dtype
    wt = hot.to(dt)
    if weight is not None:
        shape = [1] * x.dim()
        shape[dim] = C
        wt = wt * weight.to(dt).reshape(tuple(shape))
    picked = F.where(hot, x, 0.0) * wt
    losses = -picked.sum(dim)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction != "mean":
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return losses.sum() / wt.sum()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """cross_entropy of batched operands: ``log_softmax`` then :func:`nll_loss` for class
    indices; ``-sum(w * target * log_softmax)`` for class probabilities (torch's formulas,
    label smoothing included)."""
    dim = 0 if input.dim() == 1 else 1
    lsm = F.log_softmax(input, dim)
    C = input.shape[dim]
    shape = [1] * input.dim()
    shape[dim] = C
    if target._meta[1].kind == "f":
        if tuple(target.shape) != tuple(input.shape):
            raise RuntimeError(f"cross_entropy: expected target of the input's shape "
                               f"{list(input.shape)} for class probabilities, got "
                               f"{list(target.shape)}")
        t = target
        if label_smoothing:
            t = t * (1 - label_smoothing) + label_smoothing / C
        prod = lsm * t
        if weight is not None:
            prod = prod * weight.to(input.dtype).reshape(tuple(shape))
        losses = -prod.sum(dim)
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        n = 1 if input.dim() == 1 else losses.numel()
        return losses.sum() / n
    loss = nll_loss(lsm, target, weight, ignore_index, reduction, _op="cross_entropy")
    if not label_smoothing:
        return loss
    # torch: (1 - eps) * nll + eps * smooth, smooth = -sum_c w_c lsm_c / C per counted row
    hot = _class_onehot(target, C, dim, input.dim())
    valid = F.ne(target, ignore_index) if ignore_index is not None else None
    sm = lsm if weight is None else lsm * weight.to(input.dtype).reshape(tuple(shape))
    smooth = -sm.sum(dim) / C
    if valid is not None:
        smooth = F.where(valid, smooth, 0.0)
    if reduction == "none":
        s = smooth
    elif reduction == "sum":
        s = smooth.sum()
    else:
        wt = hot.to(input.dtype)
        if valid is not None:
            wt = wt * valid.unsqueeze(dim).to(input.dtype)
        if weight is not None:
            wt = wt * weight.to(input.dtype).reshape(tuple(shape))
        s = smooth.sum() / wt.sum()
    return (1 - label_smoothing) * loss + label_smoothing * s
