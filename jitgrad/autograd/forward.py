"""forward: batched forward-mode (JVP) and reverse-mode (VJP) rules over a traced record.

Every tangent / cotangent carries a leading batch axis ``B`` (the basis vectors of a Jacobian,
or B = 1 for one ``jvp``/``vjp``), so a whole Jacobian is one pass over the record, one Tensor
op per primitive, instead of one backward per row.

Elementwise primitives need no rule of their own: a registry VJP rule ``vjps[i](m, *xs, out,
g)`` is scalar and linear in ``g`` (``tests/test_functional.py`` checks every row), so the
forward-mode rule is derived from it, ``out_t = sum_i vjps[i](m, *xs, out, t_i)`` — torch's
``auto_element_wise``. Structural primitives (reductions, movement, indexing, matmul, softmax)
have one JVP and one batched VJP rule each below, written with jitgrad Tensor ops: run with grad
enabled they are differentiable again (``create_graph=True``, nested transforms).
"""
from __future__ import annotations

import sys

import numpy as np

__all__ = ["Unsupported", "run_forward", "run_reverse"]


class Unsupported(Exception):
    """A recorded primitive has no batched rule: use the autograd engine instead."""


def _mods():
    from .. import functional_ops as F
    return F, sys.modules["jitgrad.tensor"]


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
    from .. import dtypes
    return dtypes.from_numpy(np.dtype(npdt))


def _keep(shape, axes):
    return tuple(1 if k in axes else s for k, s in enumerate(shape))


def _check_index(in_shape, idx, B, out_shape):
    """A batch axis in front of a basic/adjacent-advanced index must stay in front."""
    try:
        got = np.empty((B,) + tuple(in_shape), np.bool_)[(slice(None),) + tuple(idx)].shape
    except (IndexError, ValueError):
        raise Unsupported("index") from None
    if got != (B,) + tuple(out_shape):
        raise Unsupported("index moves the batch axis")


# ============================================================================================
# Forward mode


def _ew_jvp(op, P, tan, B):
    from ..tensor import TENSOR_MATH, apply_elementwise
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


def _mm_jvp(a, b, ta, tb):
    """Tangent of matmul(a, b) given batched ta / tb (either may be None)."""
    sa, sb = _shape(a), _shape(b)
    res = None
    if ta is not None:
        if len(sa) == 1 and len(sb) == 1:
            r = (ta * b).sum(dim=-1)
        elif len(sa) == 1:
            t2 = _pad(ta.unsqueeze(-2), len(sb))
            r = (t2 @ b).squeeze(-2)
        else:
            r = _pad(ta, len(sb)) @ b
        res = r
    if tb is not None:
        if len(sa) == 1 and len(sb) == 1:
            r = (tb * a).sum(dim=-1)
        elif len(sb) == 1:
            t2 = _pad(tb.unsqueeze(-1), len(sa))
            r = (a @ t2).squeeze(-1)
        else:
            r = a @ _pad(tb, len(sa))
        res = r if res is None else res + r
    return res


def _fn_jvp(op, P, tan, B):
    F, T = _mods()
    fn = op.prim
    p = op.params
    ts = [tan.get(a) if isinstance(a, int) else None for a in op.args]
    if all(t is None for t in ts):
        return None
    x = P[op.args[0]]
    out = P[op.out]
    oshape = _shape(out)
    t = ts[0]
    if fn is F._Sum:
        if not p["axes"]:
            r = t
        else:
            r = t.sum(dim=tuple(a + 1 for a in p["axes"]), keepdim=p["keepdim"])
        return _cast(r, out._meta[1])
    if fn is F._Mean:
        if not p["axes"]:
            return t
        return t.mean(dim=tuple(a + 1 for a in p["axes"]), keepdim=p["keepdim"])
    if fn is F._Reshape:
        return t.reshape((B,) + oshape)
    if fn is F._Permute:
        return t.permute((0,) + tuple(q + 1 for q in p["perm"]))
    if fn is F._Expand:
        return _pad(t, len(oshape)).expand((B,) + oshape)
    if fn is F._GetItem:
        _check_index(_shape(x), p["idx"], B, oshape)
        return F.getitem(t, (slice(None),) + tuple(p["idx"]))
    if fn is F._IndexBackward:
        _check_index(p["shape"], p["idx"], B, _shape(x))
        return T.apply_fn(F._IndexBackward, (t,), shape=(B,) + tuple(p["shape"]),
                          idx=(slice(None),) + tuple(p["idx"]))
    if fn is F._Cat or fn is F._Stack:
        parts = []
        for a, ti in zip(op.args, ts):
            if ti is None:
                ti = T.zeros((B,) + _shape(P[a]), dtype=_dtype(out._meta[1]))
            parts.append(_cast(ti, out._meta[1]))
        return (F.cat if fn is F._Cat else F.stack)(parts, dim=p["axis"] + 1)
    if fn is F._Matmul:
        return _mm_jvp(P[op.args[0]], P[op.args[1]], ts[0], ts[1])
    if fn is F._LogSoftmax:  # checked before _Softmax: it is a subclass
        ax = p["axis"] + 1
        return t - (t * F.exp(out)).sum(dim=ax, keepdim=True)
    if fn is F._Softmax:
        ax = p["axis"] + 1
        return out * (t - (t * out).sum(dim=ax, keepdim=True))
    if fn is T._Clone:
        return t
    if fn is T._ToCopy:
        d = p["dtype"]
        return t.to(d) if d.is_floating_point else None
    if fn is F._LogSumExp:
        axes = p["axes"]
        if not axes:
            return t
        w = F.exp(x - out.reshape(_keep(_shape(x), axes)) if not p["keepdim"] else x - out)
        return (t * w).sum(dim=tuple(a + 1 for a in axes), keepdim=p["keepdim"])
    if fn is F._Var:
        axes, c = p["axes"], p["correction"]
        n = 1
        for a in axes:
            n *= _shape(x)[a]
        mu = x.mean(dim=axes, keepdim=True) if axes else x
        r = (t * (x - mu)).sum(dim=tuple(a + 1 for a in axes), keepdim=p["keepdim"]) \
            if axes else t * 0
        with np.errstate(divide="ignore"):
            return r * float(np.float64(2.0) / np.float64(n - c))
    raise Unsupported(op.name)


def run_forward(tr, seeds: dict, B: int) -> dict:
    """Tangents ((B,) + shape Tensors) of every value that depends on a seeded one."""
    from ..tensor import Tensor
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
    from ..tensor import TENSOR_MATH, apply_elementwise
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


def _mm_vjp(a, b, g, na, nb):
    sa, sb = _shape(a), _shape(b)
    ga = gb = None
    if len(sa) == 1 and len(sb) == 1:
        if na:
            ga = g.unsqueeze(-1) * b
        if nb:
            gb = g.unsqueeze(-1) * a
        return ga, gb
    if len(sa) == 1:    # (k,) @ (..., k, n) -> (..., n)
        if na:
            ga = _bsum_to((g.unsqueeze(-2) @ b.mT).squeeze(-2), sa)
        if nb:
            gb = _bsum_to(a.unsqueeze(-1) * g.unsqueeze(-2), sb)
        return ga, gb
    if len(sb) == 1:    # (..., m, k) @ (k,) -> (..., m)
        if na:
            ga = _bsum_to(g.unsqueeze(-1) * b, sa)
        if nb:
            gb = _bsum_to((a.mT @ g.unsqueeze(-1)).squeeze(-1), sb)
        return ga, gb
    if na:
        ga = _bsum_to(g @ b.mT, sa)
    if nb:
        gb = _bsum_to(a.mT @ g, sb)
    return ga, gb


def _fn_vjp(op, P, g, B, need):
    F, T = _mods()
    fn = op.prim
    p = op.params
    x = P[op.args[0]]
    xs = _shape(x)
    out = P[op.out]
    a0 = op.args[0]
    if fn is F._Sum or fn is F._Mean:
        axes = p["axes"]
        if axes and not p["keepdim"]:
            g = g.reshape((B,) + _keep(xs, axes))
        if fn is F._Mean and axes:
            n = 1
            for a in axes:
                n *= xs[a]
            g = g / n
        return [(a0, _cast(g.expand((B,) + xs), x._meta[1]))]
    if fn is F._Reshape:
        return [(a0, g.reshape((B,) + xs))]
    if fn is F._Permute:
        inv = np.argsort(p["perm"]).tolist()
        return [(a0, g.permute([0] + [q + 1 for q in inv]))]
    if fn is F._Expand:
        return [(a0, _bsum_to(g, xs))]
    if fn is F._GetItem:
        _check_index(xs, p["idx"], B, _shape(out))
        return [(a0, T.apply_fn(F._IndexBackward, (g,), shape=(B,) + xs,
                                idx=(slice(None),) + tuple(p["idx"])))]
    if fn is F._IndexBackward:
        _check_index(p["shape"], p["idx"], B, xs)
        return [(a0, F.getitem(g, (slice(None),) + tuple(p["idx"])))]
    if fn is F._Cat:
        res, start = [], 0
        ax = p["axis"] + 1
        for a in op.args:
            n = _shape(P[a])[p["axis"]]
            if a in need:
                gi = F.getitem(g, (slice(None),) * ax + (slice(start, start + n),))
                res.append((a, _cast(gi, P[a]._meta[1])))
            start += n
        return res
    if fn is F._Stack:
        return [(a, _cast(F.select(g, p["axis"] + 1, k), P[a]._meta[1]))
                for k, a in enumerate(op.args) if a in need]
    if fn is F._Matmul:
        a, b = op.args
        ga, gb = _mm_vjp(P[a], P[b], g, a in need, b in need)
        return [(i, v) for i, v in ((a, ga), (b, gb)) if v is not None]
    if fn is F._LogSoftmax:
        ax = p["axis"] + 1
        return [(a0, g - F.exp(out) * g.sum(dim=ax, keepdim=True))]
    if fn is F._Softmax:
        ax = p["axis"] + 1
        return [(a0, out * (g - (g * out).sum(dim=ax, keepdim=True)))]
    if fn is T._Clone:
        return [(a0, g)]
    if fn is T._ToCopy:
        return [(a0, g.to(_dtype(x._meta[1])))] if p["dtype"].is_floating_point else []
    if fn is F._LogSumExp:
        axes = p["axes"]
        if not axes:
            return [(a0, g)]
        ok = out if p["keepdim"] else out.reshape(_keep(xs, axes))
        gk = g if p["keepdim"] else g.reshape((B,) + _keep(xs, axes))
        return [(a0, gk * F.exp(x - ok))]
    if fn is F._Var:
        axes, c = p["axes"], p["correction"]
        if not axes:
            return [(a0, g * 0)]
        n = 1
        for a in axes:
            n *= xs[a]
        gk = g if p["keepdim"] else g.reshape((B,) + _keep(xs, axes))
        with np.errstate(divide="ignore"):
            scale = float(np.float64(2.0) / np.float64(n - c))
        return [(a0, gk * scale * (x - x.mean(dim=axes, keepdim=True)))]
    raise Unsupported(op.name)


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
