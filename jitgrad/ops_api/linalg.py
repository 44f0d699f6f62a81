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
from .._tensor import Tensor, _norm_dim, broadcast_shapes
from ..functional_ops import (_tt, copy_, matmul, mul, permute, reshape, stack, where)

__all__: list = ["einsum", "tensordot", "kron", "inner", "vdot", "trace", "cross", "addmm",
                 "addmv", "addr", "baddbmm", "addbmm", "chain_matmul"]

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
# Tensor methods

implement(
    inner=inner, vdot=vdot, kron=kron, trace=trace, cross=cross,
    addmm=addmm, addmv=addmv, addr=addr, baddbmm=baddbmm, addbmm=addbmm,
    addmm_=_inplace(addmm), addmv_=_inplace(addmv), addr_=_inplace(addr),
    baddbmm_=_inplace(baddbmm), addbmm_=_inplace(addbmm),
)
