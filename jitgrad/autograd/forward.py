"""forward: batched forward-mode (JVP) and reverse-mode (VJP) rules over a traced record.

Every tangent / cotangent carries a leading batch axis ``B`` (the basis vectors of a Jacobian,
or B = 1 for one ``jvp``/``vjp``), so a whole Jacobian is one pass over the record, one Tensor
op per primitive, instead of one backward per row.

Elementwise primitives need no rule of their own: a registry VJP rule ``vjps[i](m, *xs, out,
g)`` is scalar and linear in ``g`` (``tests/test_functional.py`` checks every row), so the
forward-mode rule is derived from it, ``out_t = sum_i vjps[i](m, *xs, out, t_i)`` — torch's
``auto_element_wise``. Structural primitives (ops.STRUCTURAL records) need no rule here either:

* JVP: a record ``linear="all"`` (sum, reshape, getitem, cat, ...) is the op itself applied to
  the tangents with batch-shifted params (``rec.batch``); a multilinear one (matmul) is the sum
  over its linear inputs of the op with that input replaced by its tangent (``rec.vmap``); the
  others (softmax, logsumexp, var) have a bespoke ``rec.jvp``;
* VJP: the record's one ``vjp`` rule on the ``BATCHED`` vocabulary, with batch-shifted params,
  the cotangent's leading B and the primals lifted to a leading 1.

All of it is jitgrad Tensor ops: run with grad enabled it is differentiable again
(``create_graph=True``, nested transforms).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .._tensor import TENSOR_MATH, Tensor, apply_elementwise, apply_fn, zeros
from ..structural import BATCHED

__all__ = ["Unsupported", "run_forward", "run_reverse"]


class Unsupported(Exception):
    """A recorded primitive has no batched rule: use the autograd engine instead."""


def _shape(t):
    return tuple(t._meta[0])


def _pad(t, nd):
    """(B,) + s  ->  (B,) + (1,)*(nd - len(s)) + s (align a batched value for broadcasting)."""
    s = _shape(t)
    k = nd - (len(s) - 1)
    if k <= 0:
        return t
    return t.reshape((s[0],) + (1,) * k + s[1:])


def _bsum_to(t, shape):
    """Sum batched ``t`` ((B,) + broadcast shape) down to (B,) + ``shape``."""
    s = _shape(t)
    tgt = (s[0],) + tuple(shape)
    if s == tgt:
        return t
    lead = len(s) - len(tgt)
    axes = tuple(range(1, 1 + lead)) + tuple(1 + lead + k - 1 for k in range(1, len(tgt))
                                              if tgt[k] == 1 and s[lead + k] != 1)
    r = t.sum(dim=axes, keepdim=True) if axes else t
    return r.reshape(tgt)


def _cast(t, dt):
    return t if t._meta[1] == dt else t.to(_dtype(dt))


def _dtype(npdt):
    return dtypes.from_numpy(np.dtype(npdt))


# ============================================================================================
# Forward mode


def _ew_jvp(op, P, tan, B):
    row = op.prim
    xs = [P[a] if isinstance(a, int) else a[0] for a in op.args]
    shapes = [_shape(P[a]) for a in op.args if isinstance(a, int)]
    out_shape = np.broadcast_shapes(*shapes) if shapes else ()
    if row.dtype_rule == "compare":
        return None
    out = None
    res = None
    for i, a in enumerate(op.args):
        if not isinstance(a, int) or i in row.bool_inputs or row.vjps[i] is None:
            continue
        t = tan.get(a)
        if t is None:
            continue
        if out is None and "out" in row.saves(i):  # reduce: the rule needs the unreduced out
            out = apply_elementwise(row, tuple(xs)) if op.params["reduce"] else P[op.out]
        c = row.vjps[i](TENSOR_MATH, *xs, out, _pad(t, len(out_shape)))
        if not hasattr(c, "_meta"):
            if c == 0:
                continue
            raise Unsupported(f"{row.name}: a JVP rule that is not linear in g")
        res = c if res is None else res + c
    if res is None:
        return None
    tgt = (B,) + tuple(out_shape)
    if _shape(res) != tgt:
        res = _pad(res, len(out_shape)).expand(tgt)
    red = op.params["reduce"]
    if red is not None:
        dims = tuple(range(1, 1 + len(out_shape)))
        if dims:
            res = res.sum(dim=dims) if red == "sum" else res.mean(dim=dims)
    return _cast(res, P[op.out]._meta[1])


def _bparams(op, P, B):
    """The record's params for inputs with a leading batch axis B."""
    rec = op.prim
    if rec.batch is None:
        raise Unsupported(op.name)
    q = rec.batch(op.params, B, [_shape(P[a]) for a in op.args])
    if q is None:
        raise Unsupported(f"{op.name}: the batch axis would move")
    return q


def _lift(t):
    return t.reshape((1,) + _shape(t))


class _BatchedCtx:
    """A structural op's ctx for the batched rules: what its forward left (op.ctx), params
    shifted, shapes with the leading B, and primal inputs/output lifted to a leading 1 (on
    first use)."""

    def __init__(self, op, P, B, q, need):
        if op.ctx is not None:
            self.__dict__.update(op.ctx.__dict__)
        self.__dict__.update(q)
        self._op, self._P = op, P
        self.shapes = [(B,) + _shape(P[a]) for a in op.args]
        self.needs_input_grad = tuple(need is None or a in need for a in op.args)

    @property
    def saved_tensors(self):
        return tuple(_lift(self._P[a]) for a in self._op.args)

    @property
    def result(self):
        return _lift(self._P[self._op.out])


def _fn_jvp(op, P, tan, B):
    rec = op.prim
    ts = [tan.get(a) for a in op.args]
    if all(t is None for t in ts):
        return None
    out = P[op.out]
    if np.dtype(out._meta[1]).kind != "f":  # (a cast to an integer type: no tangent)
        return None
    q = _bparams(op, P, B)
    lin = rec.linear
    if lin == "all":
        ts = [t if t is not None else zeros((B,) + _shape(P[a]), dtype=_dtype(P[a]._meta[1]))
              for a, t in zip(op.args, ts)]
        r = rec.vmap(ts, (True,) * len(ts), op.params, B) if rec.vmap is not None else \
            apply_fn(rec, tuple(ts), **q)
    elif lin:
        r = None
        for i in lin:
            if ts[i] is None:
                continue
            args = [P[a] for a in op.args]
            args[i] = ts[i]
            c = rec.vmap(args, tuple(k == i for k in range(len(args))), op.params, B)
            r = c if r is None else r + c
    elif rec.jvp is not None and len(op.args) == 1:
        ctx = _BatchedCtx(op, P, B, q, None)
        r = rec.jvp(ctx, ctx.saved_tensors[0], ctx.result, ts[0])
    else:
        raise Unsupported(op.name)
    return _cast(r, out._meta[1])


def run_forward(tr, seeds: dict, B: int) -> dict:
    """Tangents ((B,) + shape Tensors) of every value that depends on a seeded one."""
    P = tr.values
    tan = dict(seeds)
    for op in tr.ops:
        if not any(isinstance(a, int) and a in tan for a in op.args):
            continue
        t = _ew_jvp(op, P, tan, B) if op.kind == "ew" else _fn_jvp(op, P, tan, B)
        if t is not None:
            if not isinstance(t, Tensor):
                raise Unsupported(op.name)
            tan[op.out] = t
    return tan


# ============================================================================================
# Reverse mode


def _ew_vjp(op, P, g, B):
    row = op.prim
    xs = [P[a] if isinstance(a, int) else a[0] for a in op.args]
    shapes = [_shape(P[a]) for a in op.args if isinstance(a, int)]
    out_shape = tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    red = op.params["reduce"]
    out = P[op.out]
    if red is not None:
        n = 1
        for s in out_shape:
            n *= s
        if red == "mean":
            g = g / n
        g = g.reshape((B,) + (1,) * len(out_shape)).expand((B,) + out_shape)
        out = None
    res = []
    for i, a in enumerate(op.args):
        if not isinstance(a, int) or i in row.bool_inputs or row.vjps[i] is None \
                or row.dtype_rule == "compare":
            continue
        if out is None and "out" in row.saves(i):
            out = apply_elementwise(row, tuple(xs))
        gi = row.vjps[i](TENSOR_MATH, *xs, out, g)
        if not hasattr(gi, "_meta"):
            if gi == 0:
                continue
            raise Unsupported(f"{row.name}: a VJP rule that is not linear in g")
        if _shape(gi) != (B,) + out_shape:
            gi = _pad(gi, len(out_shape)).expand((B,) + out_shape)
        res.append((a, _cast(_bsum_to(gi, _shape(P[a])), P[a]._meta[1])))
    return res


def _fn_vjp(op, P, g, B, need):
    rec = op.prim
    if rec.vjp is None:
        raise Unsupported(op.name)
    if np.dtype(P[op.out]._meta[1]).kind != "f":
        return []
    ctx = _BatchedCtx(op, P, B, _bparams(op, P, B), need)
    grads = rec.vjp(BATCHED, ctx, g)
    if not isinstance(grads, tuple):
        grads = (grads,)
    res = []
    for a, gi in zip(op.args, grads):
        if gi is None or a not in need or np.dtype(P[a]._meta[1]).kind != "f":
            continue
        tgt = (B,) + _shape(P[a])
        if _shape(gi) != tgt:
            gi = _pad(gi, len(tgt) - 1).expand(tgt)
        res.append((a, _cast(gi, P[a]._meta[1])))
    return res


def depends(tr, roots) -> set:
    """Value indices that depend on any of ``roots``."""
    dep = set(roots)
    for op in tr.ops:
        if any(isinstance(a, int) and a in dep for a in op.args):
            dep.add(op.out)
    return dep


def run_reverse(tr, seeds: dict, B: int, wrt) -> dict:
    """Cotangents ((B,) + shape) of the values in ``wrt`` given cotangents of outputs."""
    P = tr.values
    dep = depends(tr, wrt)
    cot = dict(seeds)
    for op in reversed(tr.ops):
        g = cot.get(op.out)
        if g is None:
            continue
        need = {a for a in op.args if isinstance(a, int) and a in dep}
        if not need:
            continue
        contrib = _ew_vjp(op, P, g, B) if op.kind == "ew" else _fn_vjp(op, P, g, B, need)
        for a, gi in contrib:
            if a not in need:
                continue
            prev = cot.get(a)
            cot[a] = gi if prev is None else prev + gi
    return cot
