"""ops_api.linalg: the linear-algebra family of public ops added for PyTorch breadth (issue 16).

Composites (einsum, tensordot, kron, inner, the addmm family, trace, cross, multi_dot,
matrix_power, the norms) are built from existing differentiable ops (permute, reshape, matmul,
sum, mul, getitem), so they get gradients, double backward, CUDA, fusion and batching from those.
Each public function is exported through __all__ (jitgrad.<name>); the ``torch.linalg`` names
live in the ``jitgrad.linalg`` namespace (jitgrad/linalg.py), which re-exports them from here.
"""
from __future__ import annotations

import builtins
import math
import numbers

import numpy as np

from .. import dtypes
from .._methods import implement
from .._tensor import Ctx, Tensor, _norm_dim, apply_fn, broadcast_shapes
from ..backends import cuda as cb  # (numba.cuda itself is imported only when a GPU op runs)
from ..backends.cuda import DeviceArray
from ..creation import zeros
from ..functional_ops import (_dims, _tt, cat, copy_, matmul, mul, permute, reshape, stack,
                              where)
from ..ops import structural
from ..structural import TENSORS, keep_shape, same_params, shift_axes
from collections import namedtuple

__all__: list = ["einsum", "tensordot", "kron", "inner", "vdot", "trace", "cross", "addmm",
                 "addmv", "addr", "baddbmm", "addbmm", "chain_matmul", "norm", "dist", "renorm",
                 "det", "logdet", "slogdet", "inverse", "matrix_power", "cholesky", "qr", "svd"]

_bsum = builtins.sum


def _shape(x):
    return tuple(x._meta[0])


def _dtname(x):
    return str(dtypes.from_numpy(x._meta[1])).replace("jitgrad.", "")


# ============================================================================================
# einsum


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _sublist_equation(args):
    """einsum(op1, sublist1, op2, sublist2, ..., [out_sublist]): the equation string."""
    ops, terms = [], []
    k = 0
    while k + 1 < len(args):
        ops.append(args[k])
        terms.append(args[k + 1])
        k += 2
    out = args[k] if k < len(args) else None

    def term(sub):
        s = []
        for v in sub:
            if v is Ellipsis:
                s.append("...")
            else:
                if not isinstance(v, numbers.Integral) or not 0 <= v < 52:
                    raise ValueError("einsum(): subscript in subscript list is not within the "
                                     f"valid range [0, 52), got {v}")
                s.append(_LETTERS[v])
        return "".join(s)

    eq = ",".join(term(t) for t in terms)
    if out is not None:
        eq += "->" + term(out)
    return eq, ops


def _parse_term(term, ndim, k):
    """Labels of one operand's dims: letters as themselves, ellipsis dims as -e..-1."""
    if term.count("...") > 1 or term.replace("...", "").count(".") or \
            (term.count(".") and "..." not in term):
        raise RuntimeError(f"einsum(): found '.' for operand {k} that is not part of any "
                           "ellipsis")
    for c in term.replace("...", ""):
        if c not in _LETTERS:
            raise RuntimeError(f"einsum(): invalid subscript given at index {term.index(c)} in "
                               f"the equation string, subscripts must be in [a-zA-Z]")
    if "..." in term:
        pre, post = term.split("...")
        e = ndim - len(pre) - len(post)
        if e < 0:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                               f"({len(pre) + len(post)}) is more than the number of dimensions "
                               f"({ndim}) for operand {k}")
        return list(pre) + list(range(-e, 0)) + list(post)
    if len(term) != ndim:
        raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(term)}) "
                           f"does not match the number of dimensions ({ndim}) for operand {k}"
                           f" and no ellipsis was given")
    return list(term)


def _diag_last(x, d1, d2):
    """The diagonal of dims d1, d2 of x, as a new last dim (a gather: exact, differentiable)."""
    nd = x.ndim
    rest = [d for d in range(nd) if d not in (d1, d2)]
    y = permute(x, tuple(rest) + (d1, d2))
    n = min(_shape(x)[d1], _shape(x)[d2])
    ar = np.arange(n)
    return y[(Ellipsis, ar, ar)]


def _sum_dims(x, dims):
    return x.sum(dim=tuple(dims)) if dims else x


def einsum(*args):
    """torch.einsum(equation, *operands) (operands as varargs or one list), or the sublist
    form einsum(op1, sublist1, op2, sublist2, ..., [out]). Composed of diagonal gathers, sums,
    permutes, reshapes and batched matmuls, contracting operands left to right; dims of size 1
    broadcast like torch's."""
    if not args:
        raise TypeError("einsum(): must specify the equation string and at least one operand")
    if isinstance(args[0], str):
        eq = args[0]
        ops = list(args[1][0:]) if len(args) == 2 and isinstance(args[1], (list, tuple)) \
            else list(args[1:])
    else:
        eq, ops = _sublist_equation(args)
    ops = [_tt(t) for t in ops]
    if not ops:
        raise RuntimeError("einsum(): must provide at least one operand")
    eq = eq.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ops):
        raise RuntimeError(f"einsum(): more operands were provided than specified in the "
                           f"equation" if len(ops) > len(terms) else
                           "einsum(): fewer operands were provided than specified in the "
                           "equation")
    labels = [_parse_term(t, o.ndim, k) for k, (t, o) in enumerate(zip(terms, ops))]
    ell = max([-min([l for l in ls if isinstance(l, int)], default=0) for ls in labels])
    if arrow:
        out = _parse_term(rhs, len(rhs.replace("...", "")) + (ell if "..." in rhs else 0),
                          "output")
        letters = [l for l in out if isinstance(l, str)]
        if len(set(letters)) != len(letters):
            raise RuntimeError(f"einsum(): output subscript {letters[0]} appears more than once "
                               "in the output")
        seen = {l for ls in labels for l in ls}
        for l in out:
            if l not in seen and isinstance(l, str):
                raise RuntimeError(f"einsum(): output subscript {l} does not appear in the "
                                   "equation for any input operand")
    else:
        counts = {}
        for ls in labels:
            for l in ls:
                if isinstance(l, str):
                    counts[l] = counts.get(l, 0) + 1
        out = list(range(-ell, 0)) + sorted(l for l, c in counts.items() if c == 1)
    # sizes per label (1 broadcasts)
    size = {}
    for k, (ls, o) in enumerate(zip(labels, ops)):
        for l, s in zip(ls, _shape(o)):
            if l not in size or size[l] == 1:
                size[l] = s
            elif s != 1 and s != size[l]:
                raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes "
                                   f"(original->remapped): subscript {l} has size {s} for "
                                   f"operand {k} which does not broadcast with previously seen "
                                   f"size {size[l]}")
    # each operand: diagonals of repeated labels, then sum labels nobody else needs
    cur = []
    for k, (ls, o) in enumerate(zip(labels, ops)):
        ls = list(ls)
        while len(set(ls)) != len(ls):
            l = next(l for l in ls if ls.count(l) > 1)
            d1 = ls.index(l)
            d2 = ls.index(l, d1 + 1)
            if _shape(o)[d1] != _shape(o)[d2]:
                raise RuntimeError(f"einsum(): subscript {l} is repeated for operand {k} but the "
                                   f"sizes don't match, {_shape(o)[d1]} != {_shape(o)[d2]}")
            o = _diag_last(o, d1, d2)
            ls = [m for j, m in enumerate(ls) if j not in (d1, d2)] + [l]
        others = set(out)
        for j, ls2 in enumerate(labels):
            if j != k:
                others.update(ls2)
        drop = [d for d, l in enumerate(ls) if l not in others]
        o = _sum_dims(o, drop)
        ls = [l for d, l in enumerate(ls) if d not in drop]
        cur.append((o, ls))
    a, la = cur[0]
    for i in range(1, len(cur)):
        b, lb = cur[i]
        later = set(out)
        for _, ls in cur[i + 1:]:
            later.update(ls)
        a, la = _contract(a, la, b, lb, later, size)
    drop = [d for d, l in enumerate(la) if l not in out]
    a = _sum_dims(a, drop)
    la = [l for d, l in enumerate(la) if d not in drop]
    # labels of size 1 here that broadcast to more elsewhere (e.g. 'ij,j->ij' with j == 1)
    perm = tuple(la.index(l) for l in out)
    a = permute(a, perm) if perm != tuple(range(len(perm))) else a
    tgt = tuple(size[l] for l in out)
    if _shape(a) != tgt:
        a = a.expand(*tgt)
    return a


def _contract(a, la, b, lb, later, size):
    """One pairwise contraction: (batch, a-only, contracted) @ (batch, contracted, b-only)."""
    sa, sb = _shape(a), _shape(b)
    batch = [l for l in la if l in lb and l in later]
    con = [l for l in la if l in lb and l not in later]
    ao = [l for l in la if l not in lb]
    bo = [l for l in lb if l not in la]

    def fit(x, ls, sx, want):  # expand the size-1 dims of shared labels to the common size
        tgt = tuple(size[l] if l in want else s for l, s in zip(ls, sx))
        return x.expand(*tgt) if tgt != sx else x

    shared = set(batch) | set(con)
    a = fit(a, la, sa, shared)
    b = fit(b, lb, sb, shared)
    sa, sb = _shape(a), _shape(b)
    da = {l: s for l, s in zip(la, sa)}
    db = {l: s for l, s in zip(lb, sb)}
    nb = math.prod(da[l] for l in batch)
    m = math.prod(da[l] for l in ao)
    kk = math.prod(da[l] for l in con)
    n = math.prod(db[l] for l in bo)
    pa = tuple(la.index(l) for l in batch + ao + con)
    pb = tuple(lb.index(l) for l in batch + con + bo)
    a3 = reshape(permute(a, pa), (nb, m, kk))
    b3 = reshape(permute(b, pb), (nb, kk, n))
    r = matmul(a3, b3)
    r = reshape(r, tuple(da[l] for l in batch) + tuple(da[l] for l in ao) +
                tuple(db[l] for l in bo))
    return r, batch + ao + bo


# ============================================================================================
# products: tensordot, kron, inner, vdot, multi_dot


def tensordot(a, b, dims=2, out=None):
    """torch.tensordot(a, b, dims): contract the last ``dims`` dims of a with the first of b, or
    the listed pairs; a size-1 dim against a larger one is summed first, like torch."""
    a, b = _tt(a), _tt(b)
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, numbers.Integral):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > a.ndim or dims > b.ndim:
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        if len(dims) != 2:
            raise RuntimeError("tensordot expects dims to be a pair of lists or an int")
        da, db = dims
        da = [da] if isinstance(da, numbers.Integral) else list(da)
        db = [db] if isinstance(db, numbers.Integral) else list(db)
        if len(da) != len(db):
            raise RuntimeError(f"both dimension lists should have same length, got {len(da)} "
                               f"and {len(db)}")
        da = [_norm_dim(d, a.ndim) for d in da]
        db = [_norm_dim(d, b.ndim) for d in db]
    for i, j in zip(da, db):
        s1, s2 = _shape(a)[i], _shape(b)[j]
        if s1 != s2:
            if s1 != 1 and s2 != 1:
                raise RuntimeError(f"contracted dimensions need to match, but first has size "
                                   f"{s1} in dim {i} and second has size {s2} in dim {j}")
            if s2 == 1:
                a = a.sum(dim=i, keepdim=True)
            else:
                b = b.sum(dim=j, keepdim=True)
    fa = [d for d in range(a.ndim) if d not in da]
    fb = [d for d in range(b.ndim) if d not in db]
    sa, sb = _shape(a), _shape(b)
    m = math.prod(sa[d] for d in fa)
    n = math.prod(sb[d] for d in fb)
    k = math.prod(sa[d] for d in da)
    a2 = reshape(permute(a, tuple(fa + da)), (m, k))
    b2 = reshape(permute(b, tuple(db + fb)), (k, n))
    r = reshape(matmul(a2, b2), tuple(sa[d] for d in fa) + tuple(sb[d] for d in fb))
    return _out(out, r)


def _out(out, r):
    """out= : copy into ``out`` (same shape) and return it."""
    if out is None:
        return r
    if _shape(out) != _shape(r):
        raise RuntimeError(f"out= tensor has shape {list(out.shape)}, expected "
                           f"{list(r.shape)}")
    copy_(out, r)
    return out


def kron(a, b, *, out=None):
    """torch.kron: every element of a times all of b (reshape/broadcast/multiply: exact)."""
    a, b = _tt(a), _tt(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + _shape(a)
    sb = (1,) * (nd - b.ndim) + _shape(b)
    ia = tuple(v for s in sa for v in (s, 1))
    ib = tuple(v for s in sb for v in (1, s))
    r = mul(reshape(a, ia), reshape(b, ib))
    return _out(out, reshape(r, tuple(x * y for x, y in zip(sa, sb))))


def inner(a, b, *, out=None):
    """torch.inner: a 0-d operand multiplies; else the sum over the last dims of both."""
    a, b = _tt(a), _tt(b)
    if a.ndim == 0 or b.ndim == 0:
        return _out(out, mul(a, b))
    if _shape(a)[-1] != _shape(b)[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but "
                           f"got shapes {list(a.shape)} and {list(b.shape)}")
    return _out(out, tensordot(a, b, ([a.ndim - 1], [b.ndim - 1])))


def vdot(a, b, *, out=None):
    """torch.vdot on real tensors: the dot product of two 1-D tensors."""
    a, b = _tt(a), _tt(b)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a._meta[1] != b._meta[1]:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                           f"{_dtname(a)} and {_dtname(b)}")
    return _out(out, matmul(a, b))


def _chain_order(shapes):
    """The cheapest parenthesisation of a matrix chain (the classic O(n^3) table), as torch's
    multi_dot chooses it: split[i][j] is where the product of i..j is divided."""
    n = len(shapes)
    p = [shapes[0][0]] + [s[1] for s in shapes]
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for ln in range(1, n):
        for i in range(n - ln):
            j = i + ln
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + p[i] * p[k + 1] * p[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def _chain(ts, name):
    if len(ts) == 1:
        return ts[0]
    if len(ts) == 2:
        return matmul(ts[0], ts[1])
    if len(ts) == 3:  # torch's rule for three: compare the two orders' costs
        a, b, c = (_shape(t) for t in ts)
        cost1 = a[0] * c[0] * (a[1] + c[1])      # (AB)C
        cost2 = a[1] * c[1] * (a[0] + b[1])      # A(BC)
        if cost1 > cost2:
            return matmul(ts[0], matmul(ts[1], ts[2]))
        return matmul(matmul(ts[0], ts[1]), ts[2])
    split = _chain_order([_shape(t) for t in ts])

    def go(i, j):
        if i == j:
            return ts[i]
        k = split[i][j]
        return matmul(go(i, k), go(k + 1, j))
    return go(0, len(ts) - 1)


def multi_dot(tensors, *, out=None):
    """torch.linalg.multi_dot: the first tensor may be 1-D (a row), the last 1-D (a column);
    multiplied in torch's cheapest order."""
    ts = [_tt(t) for t in tensors]
    n = len(ts)
    if n < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {n}")
    first_1d, last_1d = ts[0].ndim == 1, ts[-1].ndim == 1
    if ts[0].ndim not in (1, 2):
        raise RuntimeError(f"multi_dot(): the first tensor must be 1D or 2D but got "
                           f"{ts[0].ndim}D")
    if ts[-1].ndim not in (1, 2):
        raise RuntimeError(f"multi_dot(): the last tensor must be 1D or 2D but got "
                           f"{ts[-1].ndim}D")
    for i in range(1, n - 1):
        if ts[i].ndim != 2:
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D but got {ts[i].ndim}D")
    dt = ts[0]._meta[1]
    for i, t in enumerate(ts):
        if t._meta[1] != dt:
            raise RuntimeError(f"multi_dot(): all tensors must have be the same dtype but tensor"
                               f" 0 is {_dtname(ts[0])} and tensor {i} {_dtname(t)}")
    if first_1d:
        ts[0] = ts[0].unsqueeze(0)
    if last_1d:
        ts[-1] = ts[-1].unsqueeze(-1)
    for i in range(n - 1):
        if _shape(ts[i])[1] != _shape(ts[i + 1])[0]:
            raise RuntimeError(f"multi_dot(): tensors {i} and {i + 1} with shapes "
                               f"{list(ts[i].shape)} and {list(ts[i + 1].shape)} cannot be "
                               "multiplied")
    r = _chain(ts, "multi_dot")
    if first_1d and last_1d:
        r = r.reshape(())
    elif first_1d:
        r = r.squeeze(0)
    elif last_1d:
        r = r.squeeze(-1)
    return _out(out, r)


def chain_matmul(*matrices, out=None):
    """torch.chain_matmul (deprecated in torch for linalg.multi_dot): 2-D matrices only."""
    if len(matrices) == 1 and isinstance(matrices[0], (list, tuple)):
        matrices = tuple(matrices[0])
    ts = [_tt(t) for t in matrices]
    if not ts:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    for i, t in enumerate(ts):
        if t.ndim != 2:
            raise RuntimeError(f"Tensor dimension is {t.ndim}, expected 2 instead.")
    if len(ts) == 1:
        return _out(out, ts[0].clone())
    return multi_dot(ts, out=out)


# ============================================================================================
# the addmm family: beta * input + alpha * (product)


def _scaled(t, s):
    return t if s == 1 else mul(t, s)


def _add_scaled(name, inp, prod, beta, alpha):
    """beta * input + alpha * prod, where input broadcasts to prod's shape (torch: beta == 0
    ignores input, NaN and inf included)."""
    inp = _tt(inp)
    ps = _shape(prod)
    try:
        bs = broadcast_shapes(_shape(inp), ps)
    except RuntimeError:
        bs = None
    if bs != ps:
        raise RuntimeError(f"{name}: the expanded size of the input {list(inp.shape)} must "
                           f"match the product's shape {list(ps)}")
    kind = inp._meta[1].kind
    if kind == "b":  # bool: beta and alpha act as truth values (or/and), like torch
        r = prod if alpha else prod.logical_and(False)
        if not beta:
            return r if _shape(r) == ps else r.expand(*ps)
        return where(inp, inp, r)
    if kind in "iu":  # integer tensors: torch truncates float beta/alpha to integers
        alpha, beta = int(alpha), int(beta)
    r = _scaled(prod, alpha)
    if beta == 0:
        return r if _shape(r) == ps else r.expand(*ps)
    return _scaled(inp, beta) + r


def _check_nd(name, t, nd, what):
    if t.ndim != nd:
        raise RuntimeError(f"{name}: {what} must be a {nd}-D tensor, got a {t.ndim}-D tensor "
                           f"of shape {list(t.shape)}")


def _same_dtype(name, *ts):
    d = ts[0]._meta[1]
    for t in ts[1:]:
        if t._meta[1] != d:
            raise RuntimeError(f"{name}: expected all tensors to have the same dtype, but got "
                               f"{' and '.join(_dtname(u) for u in ts)}")


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """torch.addmm: beta * input + alpha * (mat1 @ mat2)."""
    mat1, mat2, input = _tt(mat1), _tt(mat2), _tt(input)
    _check_nd("addmm", mat1, 2, "mat1")
    _check_nd("addmm", mat2, 2, "mat2")
    _same_dtype("addmm", input, mat1, mat2)
    return _out(out, _add_scaled("addmm", input, matmul(mat1, mat2), beta, alpha))


def addmv(input, mat, vec, *, beta=1, alpha=1, out=None):
    """torch.addmv: beta * input + alpha * (mat @ vec)."""
    mat, vec, input = _tt(mat), _tt(vec), _tt(input)
    _check_nd("addmv", mat, 2, "mat")
    _check_nd("addmv", vec, 1, "vec")
    _same_dtype("addmv", input, mat, vec)
    return _out(out, _add_scaled("addmv", input, matmul(mat, vec), beta, alpha))


def addr(input, vec1, vec2, *, beta=1, alpha=1, out=None):
    """torch.addr: beta * input + alpha * outer(vec1, vec2)."""
    vec1, vec2, input = _tt(vec1), _tt(vec2), _tt(input)
    _check_nd("addr", vec1, 1, "vec1")
    _check_nd("addr", vec2, 1, "vec2")
    u, v = vec1.unsqueeze(1), vec2.unsqueeze(0)
    prod = u.logical_and(v) if u._meta[1].kind == "b" and v._meta[1].kind == "b" else mul(u, v)
    return _out(out, _add_scaled("addr", input, prod, beta, alpha))


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    """torch.baddbmm: beta * input + alpha * (batch1 @ batch2), batch by batch."""
    batch1, batch2, input = _tt(batch1), _tt(batch2), _tt(input)
    _check_nd("baddbmm", batch1, 3, "batch1")
    _check_nd("baddbmm", batch2, 3, "batch2")
    if _shape(batch1)[0] != _shape(batch2)[0]:
        raise RuntimeError(f"baddbmm: batch1 and batch2 must have the same number of batches, "
                           f"got {batch1.shape[0]} and {batch2.shape[0]}")
    _same_dtype("baddbmm", input, batch1, batch2)
    return _out(out, _add_scaled("baddbmm", input, matmul(batch1, batch2), beta, alpha))


def addbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    """torch.addbmm: beta * input + alpha * sum_b (batch1[b] @ batch2[b])."""
    batch1, batch2, input = _tt(batch1), _tt(batch2), _tt(input)
    _check_nd("addbmm", batch1, 3, "batch1")
    _check_nd("addbmm", batch2, 3, "batch2")
    if _shape(batch1)[0] != _shape(batch2)[0]:
        raise RuntimeError(f"addbmm: batch1 and batch2 must have the same number of batches, "
                           f"got {batch1.shape[0]} and {batch2.shape[0]}")
    _same_dtype("addbmm", input, batch1, batch2)
    b, n, k = _shape(batch1)
    p = _shape(batch2)[2]
    # sum over the batch as one contraction: (n, b*k) @ (b*k, p)
    a2 = reshape(permute(batch1, (1, 0, 2)), (n, b * k))
    b2 = reshape(batch2, (b * k, p))
    return _out(out, _add_scaled("addbmm", input, matmul(a2, b2), beta, alpha))


def _inplace(fn):
    def f(self, *args, **kw):
        r = fn(self, *args, **kw)
        if _shape(r) != _shape(self):
            raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the "
                               f"broadcast shape {list(r.shape)}")
        copy_(self, r)
        return self
    f.__name__ = fn.__name__ + "_"
    return f


# ============================================================================================
# trace, cross, diagonal, vecdot


def trace(input):
    """torch.trace: the sum of a matrix's main diagonal (integers sum in int64)."""
    x = _tt(input)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x.ndim}")
    n = min(_shape(x))
    ar = np.arange(n)
    return x[ar, ar].sum()


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """torch.linalg.diagonal: the diagonal of dims (dim1, dim2) as the last dim (a gather)."""
    A = _tt(A)
    d1, d2 = _norm_dim(dim1, A.ndim), _norm_dim(dim2, A.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rest = [d for d in range(A.ndim) if d not in (d1, d2)]
    y = permute(A, tuple(rest) + (d1, d2))
    s1, s2 = _shape(A)[d1], _shape(A)[d2]
    if offset >= 0:
        n = builtins.max(0, builtins.min(s1, s2 - offset))
        rows, cols = np.arange(n), np.arange(n) + offset
    else:
        n = builtins.max(0, builtins.min(s1 + offset, s2))
        rows, cols = np.arange(n) - offset, np.arange(n)
    return y[(Ellipsis, rows, cols)]


def _cross(name, a, b, dim):
    a, b = _tt(a), _tt(b)
    if a.ndim != b.ndim:  # torch broadcasts sizes, not ranks, here
        raise RuntimeError(f"{name}: inputs must have the same number of dimensions (got shapes "
                           f"{list(_shape(a))} and {list(_shape(b))})")
    shape = broadcast_shapes(_shape(a), _shape(b))
    if dim is None:  # torch.cross without dim: the first dim of size 3 (deprecated there)
        dim = next((d for d, s in enumerate(shape) if s == 3), None)
        if dim is None:
            raise RuntimeError(f"{name}: no dimension of size 3 in input")
    d = _norm_dim(dim, len(shape))
    sa = (1,) * (len(shape) - a.ndim) + _shape(a)
    sb = (1,) * (len(shape) - b.ndim) + _shape(b)
    if sa[d] != 3 or sb[d] != 3:
        raise RuntimeError(f"{name}: inputs dimension {dim} must have length 3. Got {sa[d]} "
                           f"and {sb[d]}")
    _same_dtype(name, a, b)
    if _shape(a) != shape:
        a = a.expand(*shape)
    if _shape(b) != shape:
        b = b.expand(*shape)

    def c(t, k):
        return t[(slice(None),) * d + (k,)]
    a0, a1, a2 = c(a, 0), c(a, 1), c(a, 2)
    b0, b1, b2 = c(b, 0), c(b, 1), c(b, 2)
    return stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], dim=d)


def cross(input, other, dim=None, *, out=None):
    """torch.cross: the cross product along ``dim`` (default: the first dim of size 3)."""
    return _out(out, _cross("linalg.cross", input, other, dim))


def cross_linalg(input, other, *, dim=-1, out=None):
    """torch.linalg.cross: the cross product along ``dim`` (default -1), broadcasting."""
    return _out(out, _cross("linalg.cross", input, other, dim))


def vecdot(x, y, *, dim=-1, out=None):
    """torch.linalg.vecdot on real tensors: sum(x * y, dim), broadcasting."""
    x, y = _tt(x), _tt(y)
    return _out(out, mul(x, y).sum(dim=dim))


# ============================================================================================
# norms: one record for every vector p-norm (torch's gradient rules, subgradient 0 at 0), and
# matrix norms composed from it, sums, amax/amin and singular values


def _host(fwd):
    """The GPU entry of a record whose forward is NumPy/LAPACK: copy the inputs to the host,
    compute, copy the result back (what ``forward`` left on ctx stays on the host, except the
    output, which V.result reads)."""
    def cuda_forward(ctx, *xs, **params):
        out = fwd(ctx, *[cb.to_host(x) if type(x) is DeviceArray else x for x in xs], **params)
        out = cb.to_device(np.ascontiguousarray(out))
        ctx.out = out
        return out
    return cuda_forward


def _norm_grad(V, x, nk, gk, p, axes):
    """torch's norm_backward: d|x|_p / dx times gk, with nk the norm in keepdim form. Zero
    where the norm is 0 (p > 1) or where x is 0 (p < 1); ties of the inf-norms share gk."""
    dt = V.dtype(x)
    sgn = V.astype(x > 0, dt) - V.astype(x < 0, dt)
    if p == 1:
        return sgn * gk
    ax = abs(x)
    with V.errstate():
        if p == 2:
            return gk * V.where(V.eq(nk, 0), 0.0, x / nk)
        if math.isinf(p):
            hit = V.astype(V.eq(ax, nk), dt) + \
                V.astype(V.logical_and(V.isnan(x), V.isnan(nk)), dt)
            return sgn * hit * (gk / V.sum(hit, axes, keepdim=True))
        if p < 1:
            return sgn * V.where(V.eq(x, 0), 0.0, ax ** (p - 1)) * gk * nk ** (1 - p)
        scale = V.where(V.eq(nk, 0), 0.0, gk / nk ** (p - 1))
        if p < 2:
            return sgn * ax ** (p - 1) * scale
        return x * ax ** (p - 2) * scale


def _norm_jvp(ctx, x, out, t):
    axes, p = ctx.axes, ctx.ord
    if p == 0:  # piecewise constant
        shp = t._meta[0]
        s = keep_shape(shp, axes) if ctx.keepdim else \
            tuple(n for k, n in enumerate(shp) if k not in axes)
        return zeros(s, dtype=t.dtype, device=t.device)
    nk = out if ctx.keepdim else out.reshape(keep_shape(x._meta[0], axes))
    d = _norm_grad(TENSORS, x, nk, 1.0, p, axes)
    return (d * t).sum(dim=axes, keepdim=ctx.keepdim)


@structural("linalg_vector_norm", "LinalgVectorNormBackward0", batch=shift_axes, jvp=_norm_jvp)
class _VectorNorm:
    """The p-norm of x over ``axes`` for any p (0, +-inf, fractional, negative)."""

    def forward(ctx, x, ord, axes, keepdim):
        with np.errstate(all="ignore"):
            if ord == 0:
                r = (x != 0).sum(axis=axes, keepdims=keepdim).astype(x.dtype)
            elif ord == 2:
                r = np.sqrt((x * x).sum(axis=axes, keepdims=keepdim))
            else:
                a = np.abs(x)
                if ord == math.inf:
                    r = a.max(axis=axes, keepdims=keepdim)
                elif ord == -math.inf:
                    r = a.min(axis=axes, keepdims=keepdim)
                elif ord == 1:
                    r = a.sum(axis=axes, keepdims=keepdim)
                else:
                    r = (a ** x.dtype.type(ord)).sum(axis=axes, keepdims=keepdim) ** \
                        x.dtype.type(1.0 / ord)
        ctx.out = np.asarray(r, x.dtype)
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        if ctx.ord == 0:
            return (None,)
        x, = V.saved(ctx)
        keep = keep_shape(V.shape(x), ctx.axes)
        nk = V.reshape(V.result(ctx), keep)
        gk = g if ctx.keepdim else V.reshape(g, keep_shape(ctx.shapes[0], ctx.axes))
        return (V.astype(_norm_grad(V, x, nk, gk, ctx.ord, ctx.axes), V.dtype(x)),)


def _float_input(name, x):
    if x._meta[1].kind != "f":
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. Got "
                           f"{_TORCH_NAMES.get(x._meta[1].name, x._meta[1].name)}")


_TORCH_NAMES = {"int64": "Long", "int32": "Int", "bool": "Bool", "float32": "Float",
                "float64": "Double", "int16": "Short", "int8": "Char", "uint8": "Byte"}


def _with_dtype(name, x, dtype):
    if dtype is None:
        return x
    d = dtypes.from_any(dtype)
    if d.np.kind != "f":
        raise RuntimeError(f"{name}: dtype should be floating point or complex, but got {d}")
    if np.dtype(d.np).itemsize < x._meta[1].itemsize:
        raise RuntimeError(f"{name}: the dtype of the input "
                           f"({_TORCH_NAMES[x._meta[1].name]}) should be convertible without "
                           f"narrowing to the specified dtype ({_TORCH_NAMES[np.dtype(d.np).name]})")
    return x.to(d)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """torch.linalg.vector_norm: the ord-norm over ``dim`` (all dims when None) of a floating
    tensor, any real ord; gradients as torch (0 at a zero norm)."""
    x = _tt(x)
    _float_input("linalg.vector_norm", x)
    x = _with_dtype("linalg.vector_norm", x, dtype)
    if isinstance(ord, bool) or not isinstance(ord, numbers.Real):
        raise TypeError(f"linalg.vector_norm(): argument 'ord' must be a number, not "
                        f"{type(ord).__name__}")
    p = float(ord)
    if isinstance(dim, numbers.Integral):
        dim = (dim,)
    if x.ndim == 0:
        for d in dim or ():
            _norm_dim(d, 0)
        r = apply_fn(_VectorNorm, (x.reshape(1),), save=True, ord=p, axes=(0,), keepdim=False)
        return _out(out, r)
    axes = _dims(dim, x.ndim)
    if p < 0 or math.isinf(p):
        s = _shape(x)
        if x.numel() == 0 and (dim is None or not dim):
            raise RuntimeError(f"linalg.vector_norm cannot compute the {_pname(ord)} norm on an "
                               "empty tensor because the operation does not have an identity")
        for a in axes:
            if s[a] == 0:
                raise RuntimeError(f"linalg.vector_norm cannot compute the {_pname(ord)} norm "
                                   f"on the dimension {a} because this dimension is empty and "
                                   "the operation does not have an identity")
    return _out(out, apply_fn(_VectorNorm, (x,), save=True, ord=p, axes=axes,
                              keepdim=bool(keepdim)))


def _pname(p):
    return "inf" if p == math.inf else "-inf" if p == -math.inf else str(p)


def _move_last2(A, d0, d1):
    """A with dims d0, d1 moved to the end (in that order)."""
    rest = [d for d in range(A.ndim) if d not in (d0, d1)]
    perm = tuple(rest) + (d0, d1)
    return permute(A, perm) if perm != tuple(range(A.ndim)) else A


def _keep2(r, d0, d1, keepdim):
    if keepdim:
        for d in sorted((d0, d1)):
            r = r.unsqueeze(d)
    return r


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None, out=None):
    """torch.linalg.matrix_norm: 'fro', 'nuc', +-1, +-2, +-inf over the two dims ``dim``."""
    A = _tt(A)
    _float_input("linalg.matrix_norm", A)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 "
                           f"dimensions.")
    A = _with_dtype("linalg.matrix_norm", A, dtype)
    if not isinstance(dim, (list, tuple)) or len(dim) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {dim}")
    d0, d1 = _norm_dim(dim[0], A.ndim), _norm_dim(dim[1], A.ndim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, "
                           f"{dim[1]})")
    if isinstance(ord, str):
        if ord == "fro":
            return _out(out, vector_norm(A, 2, (d0, d1), keepdim))
        if ord != "nuc":
            raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
        return _out(out, _keep2(svdvals(_move_last2(A, d0, d1)).sum(dim=-1), d0, d1, keepdim))
    p = float(ord)
    if abs(p) == 2:
        sv = svdvals(_move_last2(A, d0, d1))
        r = sv.amax(dim=-1) if p > 0 else sv.amin(dim=-1)
        return _out(out, _keep2(r, d0, d1, keepdim))
    if abs(p) not in (1, math.inf):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    if math.isinf(p):
        d0, d1 = d1, d0
    if not keepdim and d0 < d1:
        d1 -= 1
    s = A.abs().sum(dim=d0, keepdim=keepdim)
    if _shape(s)[d1] == 0:
        raise RuntimeError(f"linalg.matrix_norm: cannot compute the {_pname(ord)} norm of an "
                           "empty matrix (the reduction has no identity)")
    r = s.amax(dim=d1, keepdim=keepdim) if p > 0 else s.amin(dim=d1, keepdim=keepdim)
    return _out(out, r)


def linalg_norm(A, ord=None, dim=None, keepdim=False, *, dtype=None, out=None):
    """torch.linalg.norm: a matrix norm for a string ord or two dims (2-D input without dim
    and ord given), else a vector norm (ord None: the 2-norm of the flattened input)."""
    A = _tt(A)
    if isinstance(dim, numbers.Integral):
        dim = (dim,)
    if dim is not None and len(dim) not in (1, 2):
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. "
                           f"Got {list(dim)}")
    if ord is not None:
        if dim is None and A.ndim not in (1, 2):
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input "
                               f"must be 1D or 2D. Got {A.ndim}D.")
        if isinstance(ord, str) or (dim is not None and len(dim) == 2) or \
                (dim is None and A.ndim == 2):
            return matrix_norm(A, ord, tuple(dim) if dim is not None else (-2, -1), keepdim,
                               dtype=dtype, out=out)
        return vector_norm(A, ord, dim, keepdim, dtype=dtype, out=out)
    return vector_norm(A, 2, dim, keepdim, dtype=dtype, out=out)


def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    """torch.norm: 'fro' (and p=None) is the 2-norm over ``dim``; 'nuc' the nuclear norm;
    a number is a vector norm over ``dim`` (all dims when None)."""
    x = _tt(input)
    if isinstance(dim, numbers.Integral):
        dim = (dim,)
    if isinstance(p, str):
        if p == "fro" and (dim is None or len(dim) <= 2):
            return vector_norm(x, 2, dim, keepdim, dtype=dtype, out=out)
        return matrix_norm(x, p, tuple(dim) if dim is not None else tuple(range(x.ndim)),
                           keepdim, dtype=dtype, out=out)
    return vector_norm(x, 2.0 if p is None else p, dim, keepdim, dtype=dtype, out=out)


def dist(input, other, p=2):
    """torch.dist: the p-norm of input - other (broadcast)."""
    return vector_norm(_tt(input) - _tt(other), p)


def renorm(input, p, dim, maxnorm, *, out=None):
    """torch.renorm: each slice along ``dim`` whose p-norm exceeds maxnorm is scaled to
    maxnorm (by maxnorm / (norm + 1e-7)); the gradient runs through the norm, as torch's."""
    x = _tt(input)
    _float_input("renorm", x)
    if x.ndim <= 1:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {x.ndim} "
                           "dimensions")
    if maxnorm < 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    if p <= 0:
        raise RuntimeError(f"renorm: non-positive-norm not supported")
    d = _norm_dim(dim, x.ndim)
    nrm = vector_norm(x, p, tuple(k for k in range(x.ndim) if k != d), keepdim=True)
    r = where(nrm > maxnorm, x * (maxnorm / (nrm + 1e-7)), x)
    return _out(out, r)


# ============================================================================================
# matrix_power


def _square_check(name, A):
    if A.ndim < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    if _shape(A)[-1] != _shape(A)[-2]:
        raise RuntimeError(f"{name}: A must be batches of square matrices, but they are "
                           f"{_shape(A)[-2]} by {_shape(A)[-1]} matrices")


def matrix_power(A, n, *, out=None):
    """torch.linalg.matrix_power: binary powering with torch's multiplication order; n < 0
    inverts first; n == 0 gives identities (zero gradient, as torch)."""
    A = _tt(A)
    _square_check("linalg.matrix_power", A)
    if n < 0:
        _float_input("linalg.matrix_power", A)
    if not isinstance(n, numbers.Integral):
        raise TypeError(f"matrix_power(): argument 'n' must be int, not {type(n).__name__}")
    if n == 0:
        m = _shape(A)[-1]
        eye = Tensor._make(np.broadcast_to(np.eye(m, dtype=A._meta[1]), _shape(A)).copy())
        if A.is_cuda:
            eye = eye.to(A.device)
        return _out(out, where(eye == eye, eye, A))   # depends on A (zero gradient) like torch
    if n < 0:
        A, n = inv(A), -n
    if n == 1:
        return _out(out, A.clone())
    if n == 2:
        return _out(out, matmul(A, A))
    if n == 3:
        return _out(out, matmul(matmul(A, A), A))
    z = result = None
    while n > 0:
        bit, n = n % 2, n // 2
        z = A if z is None else matmul(z, z)
        if bit:
            result = z if result is None else matmul(result, z)
    return _out(out, result)


# ============================================================================================
# inverses, determinants, solvers: one record each, forward through NumPy/LAPACK (a CUDA tensor
# goes to the host and back), VJPs written against V with nested records applied through _call


class LinAlgError(RuntimeError):
    """torch.linalg.LinAlgError: the matrix cannot be inverted or factorised (singular, not
    positive-definite, no convergence)."""


def _lapack(name, fn, *arrays, why=""):
    try:
        with np.errstate(all="ignore"):
            return fn(*arrays)
    except np.linalg.LinAlgError as e:
        shapes = " and ".join(str(list(a.shape)) for a in arrays if hasattr(a, "shape"))
        raise LinAlgError(f"{name}: {why or e} (input of shape {shapes})") from None


def _call(V, rec, *xs, **params):
    """Another record inside a VJP: its forward on arrays (first-order backward), or on Tensors
    a recorded op whose inputs are saved, so that the gradient is differentiable again."""
    if isinstance(xs[0], np.ndarray):
        return np.asarray(rec.forward(Ctx(), *xs, **params))
    return apply_fn(rec, tuple(xs), save=True, **params)


def _inv_jvp(ctx, x, out, t):
    return -matmul(matmul(out, t), out)


@structural("linalg_inv", "LinalgInvExBackward0", batch=same_params, jvp=_inv_jvp)
class _Inv:
    """A^-1 (batched); gradient -A^-T g A^-T from the saved output."""

    def forward(ctx, a):
        ctx.out = _lapack("linalg.inv", np.linalg.inv, a,
                          why="the input matrix is singular, the inversion could not be "
                              "completed")
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        it = V.mT(V.result(ctx))
        return (-V.matmul(V.matmul(it, g), it),)


def _cofactor(a):
    """The cofactor matrix det(A) A^-T of each matrix, singular ones included (via the SVD:
    adj(A) = det(U) det(Vh) Vh^T diag(prod_{j != i} s_j) U^T)."""
    u, s, vh = np.linalg.svd(a)
    one = np.ones(s.shape[:-1] + (1,), s.dtype)
    pre = np.cumprod(np.concatenate([one, s[..., :-1]], -1), -1)
    suf = np.flip(np.cumprod(np.flip(np.concatenate([s[..., 1:], one], -1), -1), -1), -1)
    sign = np.linalg.det(u) * np.linalg.det(vh)
    return (sign[..., None, None] * np.matmul(u * (pre * suf)[..., None, :], vh)).astype(a.dtype)


def _det_jvp(ctx, x, out, t):
    return out * (inv(x).mT * t).sum(dim=(-2, -1))


@structural("linalg_det", "LinalgDetBackward0", batch=same_params, jvp=_det_jvp)
class _Det:
    """det(A) (batched); gradient g det(A) A^-T (on arrays: the cofactor matrix, which also
    covers singular A)."""

    def forward(ctx, a):
        ctx.out = np.asarray(_lapack("linalg.det", np.linalg.det, a), a.dtype)
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        a, = V.saved(ctx)
        if isinstance(g, np.ndarray):
            d = ctx.out
            if np.all(d != 0):
                with np.errstate(all="ignore"):
                    return ((g * d)[..., None, None] * np.swapaxes(np.linalg.inv(a), -1, -2),)
            return (g[..., None, None] * _cofactor(a),)
        gd = V.reshape(g * V.result(ctx), tuple(V.shape(g)) + (1, 1))
        return (gd * V.mT(_call(V, _Inv, a)),)


def _slogdet_jvp(ctx, x, out, t):
    return (inv(x).mT * t).sum(dim=(-2, -1))


@structural("linalg_slogdet", "LinalgSlogdetBackward0", batch=same_params, jvp=_slogdet_jvp)
class _Slogdet:
    """log|det A| (the sign is left on ctx: piecewise constant, no gradient); gradient
    g A^-T."""

    def forward(ctx, a):
        sign, la = _lapack("linalg.slogdet", np.linalg.slogdet, a)
        ctx.sign = np.asarray(sign, a.dtype)
        ctx.out = np.asarray(la, a.dtype)
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        a, = V.saved(ctx)
        gk = V.reshape(g, tuple(V.shape(g)) + (1, 1))
        return (gk * V.mT(_call(V, _Inv, a)),)


def _solve_vmap(args, batched, p, B):
    """vmap of solve: a batched operand's per-sample batch dims are padded (after the batch
    axis) to the other's rank, so the two broadcast as the per-sample op does."""
    ranks = [a.dim() - f for a, f in zip(args, batched)]
    nb = builtins.max(ranks) - 2
    phys = []
    for a, f, rk in zip(args, batched, ranks):
        if f and rk - 2 < nb:
            s = tuple(a._meta[0])
            a = a.reshape(s[:1] + (1,) * (nb - rk + 2) + s[1:])
        phys.append(a)
    return apply_fn(_Solve, tuple(phys), save=True)


@structural("linalg_solve", "LinalgSolveExBackward0", vmap=_solve_vmap)
class _Solve:
    """X with A X = B (batched, broadcasting); gradients gB = A^-T g, gA = -gB X^T."""

    def forward(ctx, a, b):
        ctx.out = _lapack("linalg.solve", np.linalg.solve, a, b,
                          why="the solve could not be completed because the input matrix is "
                              "singular")
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        a, _ = V.saved(ctx)
        gb = _call(V, _Solve, V.mT(a), g)
        ga = None
        if ctx.needs_input_grad[0]:
            ga = V.sum_to(-V.matmul(gb, V.mT(V.result(ctx))), ctx.shapes[0])
        return ga, V.sum_to(gb, ctx.shapes[1])


def inv(A, *, out=None):
    """torch.linalg.inv: the inverse of each square matrix (LinAlgError when singular)."""
    A = _tt(A)
    _float_input("linalg.inv", A)
    _square_check("linalg.inv", A)
    return _out(out, apply_fn(_Inv, (A,)))


def inverse(input, *, out=None):
    """torch.inverse (= torch.linalg.inv)."""
    return inv(input, out=out)


def det(A, *, out=None):
    """torch.linalg.det / torch.det: the determinant of each square matrix."""
    A = _tt(A)
    _float_input("linalg.det", A)
    _square_check("linalg.det", A)
    return _out(out, apply_fn(_Det, (A,), save=True))


_Slogdet_t = namedtuple("slogdet", ["sign", "logabsdet"])


def slogdet(A, *, out=None):
    """torch.linalg.slogdet / torch.slogdet: (sign, log|det|); logabsdet is -inf and sign 0
    for a singular matrix."""
    A = _tt(A)
    _float_input("linalg.slogdet", A)
    _square_check("linalg.slogdet", A)
    ctx = Ctx()
    la = apply_fn(_Slogdet, (A,), save=True, ctx=ctx)
    sign = Tensor._make(np.asarray(ctx.sign))
    if A.is_cuda:
        sign = sign.to(A.device)
    if la.requires_grad:  # torch's sign is part of the graph too, with a zero gradient
        sign = where(sign == sign, sign, la)
    return _Slogdet_t(sign, la)


def logdet(input):
    """torch.logdet: log det(A); NaN where det < 0, -inf where det == 0 (as torch)."""
    A = _tt(input)
    _float_input("logdet", A)
    _square_check("logdet", A)
    sign, la = slogdet(A)
    return where(sign == -1, math.nan, la)


def solve(A, B, *, left=True, out=None):
    """torch.linalg.solve: X with A X = B (left=False: X A = B). B is a batch of vectors when
    it is 1-D or has A's shape without its last dim; batch dims broadcast."""
    A, B = _tt(A), _tt(B)
    _float_input("linalg.solve", A)
    _float_input("linalg.solve", B)
    _square_check("linalg.solve", A)
    if A._meta[1] != B._meta[1]:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found "
                           f"A of type {_TORCH_NAMES[A._meta[1].name]} and B of type "
                           f"{_TORCH_NAMES[B._meta[1].name]} instead")
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and _shape(B) == _shape(A)[:-1])
    if not left:
        A = A.mT
        if not vector:
            return _out(out, solve(A, B.mT).mT)
    n = _shape(A)[-1]
    if vector:
        B = B.unsqueeze(-1)
    if _shape(B)[-2] != n:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation "
                           f"AX = B ({_shape(A)[-2]}x{n} and {_shape(B)[-2]}x{_shape(B)[-1]})")
    broadcast_shapes(_shape(A)[:-2], _shape(B)[:-2])
    X = apply_fn(_Solve, (A, B), save=True)
    return _out(out, X.squeeze(-1) if vector else X)


# ============================================================================================
# decompositions: cholesky, qr, eigh, svd. One record each; a record with several outputs
# returns them packed in one array (flattened matrices side by side), and the public function
# slices them apart with differentiable getitem/reshape, so every output's gradient reaches the
# one VJP (zeros where an output is unused).


def _k(V, arr, like):
    """A constant array in like's dtype (and on its device)."""
    a = np.asarray(arr, dtype=V.dtype(like))
    if isinstance(like, np.ndarray):
        return a
    if like.is_cuda:
        return Tensor._make(cb.to_device(a))
    return Tensor._make(a)


def _eye(V, n, like):
    return _k(V, np.eye(n), like)


def _tril_half(V, X):
    """tril(X) with its diagonal halved (cholesky's Phi)."""
    n = V.shape(X)[-1]
    m = np.tril(np.ones((n, n)))
    np.fill_diagonal(m, 0.5)
    return X * _k(V, m, X)


def _chol_jvp(ctx, x, out, t):
    linv = inv(out)
    s = (t + t.mT) * 0.5
    return matmul(out, _tril_half(TENSORS, matmul(matmul(linv, s), linv.mT)))


@structural("linalg_cholesky", "LinalgCholeskyExBackward0", batch=same_params, jvp=_chol_jvp)
class _Cholesky:
    """L with A = L L^T (the lower triangle of A is read); torch's gradient, symmetrised:
    sym(L^-T Phi(L^T g) L^-1)."""

    def forward(ctx, a):
        why = "The factorization could not be completed because the input is not " \
              "positive-definite"
        ctx.out = _lapack("linalg.cholesky", np.linalg.cholesky, a, why=why)
        if np.isnan(np.diagonal(ctx.out, axis1=-2, axis2=-1)).any():
            # NumPy lets a NaN through; LAPACK's potrf (torch) stops at a NaN pivot
            raise LinAlgError(f"linalg.cholesky: {why} (a NaN pivot; input of shape "
                              f"{list(a.shape)})")
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        L = V.result(ctx)
        linv = _call(V, _Inv, L)
        phi = _tril_half(V, V.matmul(V.mT(L), g))
        ga = V.matmul(V.matmul(V.mT(linv), phi), linv)
        return ((ga + V.mT(ga)) * 0.5,)


def _unpack(V, P, shapes):
    """Split a packed result (or its cotangent) into its matrices/vectors."""
    lead = tuple(V.shape(P)[:-1])
    out, o = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(V.reshape(V.getitem(P, (Ellipsis, slice(o, o + n))), lead + tuple(s)))
        o += n
    return out


def _pack(parts, lead):
    return np.concatenate([np.asarray(p).reshape(lead + (math.prod(p.shape[len(lead):]),))
                           for p in parts], -1)


def _safe_div(V, a, b):
    """a / b, and 0 where a is exactly 0 (an unused output's zero cotangent against a repeated
    eigen/singular value stays 0, as torch's undefined gradient does)."""
    with V.errstate():
        return V.where(V.eq(a, 0), 0.0, a / b)


def _qr_square(V, Q, R, gQ, gR):
    """QR's VJP for A = QR with R square (m >= n): (gQ + Q copyltu(M)) R^-T,
    M = R gR^T - gQ^T Q."""
    n = V.shape(R)[-1]
    low = np.tril(np.ones((n, n)))
    M = V.matmul(R, V.mT(gR)) - V.matmul(V.mT(gQ), Q)
    Ml = M * _k(V, low, M)
    copyltu = Ml + V.mT(Ml) - M * _eye(V, n, M)
    b = gQ + V.matmul(Q, copyltu)
    return V.mT(_call(V, _Solve, R, V.mT(b)))


@structural("linalg_qr", "LinalgQrBackward0")
class _QR:
    """Q, R (reduced or complete), packed; torch's gradient for m >= n and for m < n (the
    leading square block), none for mode='r' or complete with m > n, as torch."""

    def forward(ctx, a, mode):
        q, r = _lapack("linalg.qr", np.linalg.qr, a, "complete" if mode == "complete" else
                       "reduced")
        ctx.out = _pack([q, r], a.shape[:-2]).astype(a.dtype, copy=False)
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        m, n = ctx.shapes[0][-2:]
        if ctx.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed "
                               "when mode='r'. Please use linalg.qr(A, mode='reduced') if you "
                               "are going to differentiate through linalg.qr.")
        if ctx.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when "
                               "mode='complete' and nrows > ncols.")
        parts = _qr_parts(m, n, ctx.mode)
        Q, R = _unpack(V, V.result(ctx), parts)
        gQ, gR = _unpack(V, g, parts)
        if m >= n:
            return (_qr_square(V, Q, R, gQ, gR),)
        a, = V.saved(ctx)
        Y = V.getitem(a, (Ellipsis, slice(m, None)))
        U = V.getitem(R, (Ellipsis, slice(0, m)))
        gU = V.getitem(gR, (Ellipsis, slice(0, m)))
        gV = V.getitem(gR, (Ellipsis, slice(m, None)))
        gX = _qr_square(V, Q, U, gQ + V.matmul(Y, V.mT(gV)), gU)
        gY = V.matmul(Q, gV)
        return (V.cat([gX, gY], -1),)


def _qr_parts(m, n, mode):
    k = m if mode == "complete" else builtins.min(m, n)
    return (m, k), (k, n)


def _svd_parts(m, n, full):
    k = builtins.min(m, n)
    return ((m, m), (k,), (n, n)) if full else ((m, k), (k,), (k, n))


_QR.vmap = lambda args, batched, p, B: apply_fn(_QR, tuple(args), save=True, **p)


def _eigh_jvp(ctx, x, out, t):
    n = x._meta[0][-1]
    L = out[..., :, 0]
    Vv = out[..., :, 1:]
    s = (t + t.mT) * 0.5
    K = matmul(matmul(Vv.mT, s), Vv)
    eye = _eye(TENSORS, n, K)
    E = L.unsqueeze(-2) - L.unsqueeze(-1) + eye
    F = (1 - eye) / E
    dL = (K * eye).sum(dim=-1)
    dV = matmul(Vv, F * K)
    return cat([dL.unsqueeze(-1), dV], -1)


@structural("linalg_eigh", "LinalgEighBackward0", batch=same_params, jvp=_eigh_jvp)
class _Eigh:
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix (one triangle read,
    UPLO), packed as (..., n, 1 + n); torch's gradient V (diag(gL) + skew(V^T gV) / E) V^T,
    E_ij = L_j - L_i (defined for distinct eigenvalues)."""

    def forward(ctx, a, uplo):
        w, v = _lapack("linalg.eigh", np.linalg.eigh, a, uplo)
        ctx.out = np.concatenate([w[..., None], v], -1).astype(a.dtype, copy=False)
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        n = ctx.shapes[0][-1]
        P = V.result(ctx)
        L = V.getitem(P, (Ellipsis, slice(None), 0))
        Vv = V.getitem(P, (Ellipsis, slice(None), slice(1, None)))
        gL = V.getitem(g, (Ellipsis, slice(None), 0))
        gV = V.getitem(g, (Ellipsis, slice(None), slice(1, None)))
        sh = tuple(V.shape(L))
        Lr = V.reshape(L, sh[:-1] + (1, n))
        Lc = V.reshape(L, sh[:-1] + (n, 1))
        eye = _eye(V, n, L)
        K = V.matmul(V.mT(Vv), gV)
        K = (K - V.mT(K)) * 0.5
        ret = _safe_div(V, K, Lr - Lc + eye) + V.reshape(gL, tuple(V.shape(gL))[:-1] + (1, n)) \
            * eye
        return (V.matmul(V.matmul(Vv, ret), V.mT(Vv)),)


@structural("linalg_svd", "LinalgSvdBackward0")
class _SVD:
    """U, S, Vh (full or reduced), packed; torch's gradient (svd_backward): defined for
    distinct non-zero singular values; full_matrices: only the first k columns of U / rows of
    Vh carry gradient, as torch narrows them."""

    def forward(ctx, a, full_matrices):
        m, n = a.shape[-2:]
        u, s, vh = _lapack("linalg.svd", np.linalg.svd, a, full_matrices)
        ctx.out = _pack([u, s, vh], a.shape[:-2]).astype(a.dtype, copy=False)
        return ctx.out

    cuda_forward = _host(forward)

    def vjp(V, ctx, g):
        m, n = ctx.shapes[0][-2:]
        k = min(m, n)
        parts = _svd_parts(m, n, ctx.full_matrices)
        U, S, Vh = _unpack(V, V.result(ctx), parts)
        gU, gS, gVh = _unpack(V, g, parts)
        if ctx.full_matrices:
            cols, rows = (Ellipsis, slice(None), slice(0, k)), (Ellipsis, slice(0, k))
            U, gU = V.getitem(U, cols), V.getitem(gU, cols)
            Vh, gVh = V.getitem(Vh, rows), V.getitem(gVh, rows)
        sh = tuple(V.shape(S))[:-1]
        Sr, Sc = V.reshape(S, sh + (1, k)), V.reshape(S, sh + (k, 1))
        eye = _eye(V, k, S)
        UhgU = V.matmul(V.mT(U), gU)
        UhgU = UhgU - V.mT(UhgU)
        VhgV = V.matmul(Vh, V.mT(gVh))
        VhgV = VhgV - V.mT(VhgV)
        ret = _safe_div(V, UhgU * Sr + Sc * VhgV, Sr * Sr - Sc * Sc + eye) + \
            V.reshape(gS, tuple(V.shape(gS))[:-1] + (1, k)) * eye
        if m > n:
            ga = V.matmul(U, ret)
            gus = _safe_div(V, gU, Sr)
            ga = ga + gus - V.matmul(U, V.matmul(V.mT(U), gus))
            return (V.matmul(ga, Vh),)
        if m < n:
            ga = V.matmul(ret, Vh)
            sgv = _safe_div(V, gVh, Sc)
            ga = ga + sgv - V.matmul(V.matmul(sgv, V.mT(Vh)), Vh)
            return (V.matmul(U, ga),)
        return (V.matmul(V.matmul(U, ret), Vh),)


_SVD.vmap = lambda args, batched, p, B: apply_fn(_SVD, tuple(args), **p)


def linalg_cholesky(A, *, upper=False, out=None):
    """torch.linalg.cholesky: L with A = L L^T (upper=True: L^T); LinAlgError when A is not
    positive-definite."""
    A = _tt(A)
    _float_input("linalg.cholesky", A)
    _square_check("linalg.cholesky", A)
    L = apply_fn(_Cholesky, (A,))
    return _out(out, L.mT if upper else L)


def cholesky(input, upper=False, *, out=None):
    """torch.cholesky (deprecated in torch for linalg.cholesky)."""
    return linalg_cholesky(input, upper=upper, out=out)


_QR_t = namedtuple("qr", ["Q", "R"])
_Eigh_t = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
_SVD_t = namedtuple("svd", ["U", "S", "Vh"])
_SVDold_t = namedtuple("svd", ["U", "S", "V"])


def _split(P, shapes, lead):
    out, o = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(P[..., o:o + n].reshape(lead + tuple(s)))
        o += n
    return out


def linalg_qr(A, mode="reduced", *, out=None):
    """torch.linalg.qr: (Q, R), mode 'reduced', 'complete' or 'r' (Q empty)."""
    A = _tt(A)
    _float_input("linalg.qr", A)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.qr: The input tensor A must have at least 2 dimensions.")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of "
                           "'reduced' (default), 'r', or 'complete'")
    P = apply_fn(_QR, (A,), save=True, mode=mode)
    Q, R = _split(P, _qr_parts(*_shape(A)[-2:], mode), _shape(A)[:-2])
    if mode == "r":
        Q = zeros((0,), dtype=A.dtype, device=A.device)
    return _QR_t(Q, R)


def qr(input, some=True, *, out=None):
    """torch.qr (deprecated in torch for linalg.qr): some=False is mode 'complete'."""
    return linalg_qr(input, "reduced" if some else "complete")


def eigh(A, UPLO="L", *, out=None):
    """torch.linalg.eigh: (eigenvalues ascending, eigenvectors as columns) of symmetric A,
    read from its UPLO triangle."""
    A = _tt(A)
    _float_input("linalg.eigh", A)
    _square_check("linalg.eigh", A)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    P = apply_fn(_Eigh, (A,), uplo=UPLO)
    return _Eigh_t(P[..., :, 0], P[..., :, 1:])


def eigvalsh(A, UPLO="L", *, out=None):
    """torch.linalg.eigvalsh: the eigenvalues of symmetric A (the gradient needs the vectors,
    so both are computed, as torch does when differentiating)."""
    return _out(out, eigh(A, UPLO).eigenvalues)


def linalg_svd(A, full_matrices=True, *, driver=None, out=None):
    """torch.linalg.svd: (U, S, Vh), singular values descending. The signs of singular
    vectors are LAPACK's (NumPy's build): they may differ from torch's build's."""
    A = _tt(A)
    _float_input("linalg.svd", A)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.svd: The input tensor A must have at least 2 dimensions.")
    full = bool(full_matrices)
    P = apply_fn(_SVD, (A,), full_matrices=full)
    return _SVD_t(*_split(P, _svd_parts(*_shape(A)[-2:], full), _shape(A)[:-2]))


def svdvals(A, *, driver=None, out=None):
    """torch.linalg.svdvals: the singular values, descending."""
    return _out(out, linalg_svd(A, full_matrices=False).S)


def svd(input, some=True, compute_uv=True, *, out=None):
    """torch.svd (deprecated in torch for linalg.svd): (U, S, V) with V = Vh^T; compute_uv=False
    gives zero-filled U (m, m) and V (n, n), as torch."""
    A = _tt(input)
    U, S, Vh = linalg_svd(A, full_matrices=not some)
    if not compute_uv:
        m, n = _shape(A)[-2:]
        lead = _shape(A)[:-2]
        return _SVDold_t(zeros(lead + (m, m), dtype=A.dtype, device=A.device), S,
                         zeros(lead + (n, n), dtype=A.dtype, device=A.device))
    return _SVDold_t(U, S, Vh.mT)


def pinv(A, *, atol=None, rtol=None, hermitian=False, out=None):
    """torch.linalg.pinv through the SVD: singular values at or below max(atol, rtol * s_max)
    are dropped (default rtol: eps * max(m, n)); differentiable where the SVD is."""
    A = _tt(A)
    _float_input("linalg.pinv", A)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.pinv: expected a tensor with 2 or more dimensions, got shape "
                           f"{list(_shape(A))}")
    m, n = _shape(A)[-2:]
    U, S, Vh = linalg_svd(A, full_matrices=False)
    if rtol is None:
        rtol = 0.0 if (atol is not None and atol > 0) else \
            float(np.finfo(A._meta[1]).eps) * builtins.max(m, n)
    smax = S.amax(dim=-1, keepdim=True) if builtins.min(m, n) else S
    tol = smax.detach() * float(rtol)
    if atol is not None:
        tol = where(tol > float(atol), tol, float(atol))
    keep = S > tol
    sinv = where(keep, 1.0 / where(keep, S, 1.0), 0.0)
    return _out(out, matmul(Vh.mT * sinv.unsqueeze(-2), U.mT))


# ============================================================================================
# Tensor methods

implement(
    inner=inner, vdot=vdot, kron=kron, trace=trace, cross=cross,
    addmm=addmm, addmv=addmv, addr=addr, baddbmm=baddbmm, addbmm=addbmm,
    addmm_=_inplace(addmm), addmv_=_inplace(addmv), addr_=_inplace(addr),
    baddbmm_=_inplace(baddbmm), addbmm_=_inplace(addbmm),
    norm=norm, dist=dist, renorm=renorm, renorm_=_inplace(renorm),
    matrix_power=matrix_power, det=det, logdet=logdet, slogdet=slogdet, inverse=inverse,
    cholesky=cholesky, qr=qr, svd=svd,
)
