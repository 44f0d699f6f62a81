"""ops_api.linalg against torch: einsum, products, the addmm family, norms, inverses,
determinants, solvers and decompositions (values and gradients; float64 and float32)."""
import numpy as np
import pytest

import jitgrad

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(20240516)


def _np(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [v for o in out for v in _flat(o)]
    return [out]


def check(fn, *arrays, rtol=1e-9, atol=1e-10, grad=True, dtype="float64", gtol=None):
    """fn(M, *tensors) with M = jitgrad and M = torch on the same inputs: outputs (values,
    shapes, dtypes) and the gradients of sum(out_i * u_i) for fixed random u_i."""
    res = {}
    for M in (jitgrad, torch):
        ins = []
        for a in arrays:
            a = np.asarray(a)
            if a.dtype.kind in "iub":
                ins.append(M.tensor(a))
            else:
                ins.append(M.tensor(a, dtype=getattr(M, dtype), requires_grad=grad))
        res[M] = (ins, _flat(fn(M, *ins)))
    (jins, jo), (tins, to) = res[jitgrad], res[torch]
    assert len(jo) == len(to)
    for a, b in zip(jo, to):
        assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1], (a.dtype, b.dtype)
        np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, equal_nan=True)
    if not grad:
        return jo
    pairs = [(a, b) for a, b in zip(jo, to) if b.requires_grad]
    if not pairs:
        return jo
    us = [RNG.standard_normal(tuple(b.shape)) for _, b in pairs]
    tl = sum((b * torch.tensor(u, dtype=b.dtype)).sum() for (_, b), u in zip(pairs, us))
    jl = sum((a * jitgrad.tensor(u, dtype=a.dtype)).sum() for (a, _), u in zip(pairs, us))
    tleaves = [t for t in tins if t.requires_grad]
    jleaves = [t for t in jins if t.requires_grad]
    tg = torch.autograd.grad(tl, tleaves, allow_unused=True)
    jg = jitgrad.autograd.grad(jl, jleaves, allow_unused=True)
    g_rtol, g_atol = gtol or (rtol * 10, atol * 10)
    for a, b, t in zip(jg, tg, tleaves):
        if b is None or a is None:  # (no gradient: zero on the other side)
            assert np.all(_np(a if b is None else b) == 0) if (a, b) != (None, None) else True
            continue
        np.testing.assert_allclose(_np(a), _np(b), rtol=g_rtol, atol=g_atol)
    return jo


def r(*shape):
    return RNG.standard_normal(shape)


# --- einsum -------------------------------------------------------------------------------------

EINSUM = [
    ("i->", [(3,)]), ("i,j->ij", [(3,), (4,)]), ("ij->i", [(2, 3)]), ("ij,kj->ik", [(2, 3), (1, 3)]),
    ("ij,Ab->ijAb", [(2, 3), (4, 4)]), ("aij,ajk->aik", [(2, 2, 3), (2, 3, 4)]),
    ("aij,jk->aik", [(1, 3, 4), (4, 4)]), ("ijk,ik->j", [(1, 2, 3), (1, 3)]),
    ("iji->j", [(2, 3, 2)]), ("i...->...", [(3, 3)]), ("...ik, ...j -> ij", [(1, 2, 3), (3,)]),
    ("ii", [(3, 3)]), ("ii->i", [(3, 3)]), ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk,bkl->bil", [(2, 2, 3), (2, 3, 4), (2, 4, 2)]), ("i,i", [(4,), (4,)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (3, 3, 4)]), ("ij,ij->", [(0, 3), (0, 3)]),
    ("ba,ca->bc", [(3, 2), (4, 2)]), ("ijk->kji", [(2, 3, 4)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum_vs_torch(eq, shapes):
    check(lambda M, *xs: M.einsum(eq, *xs), *[r(*s) for s in shapes])


def test_einsum_forms_and_errors():
    a, b = r(2, 3), r(3, 4)
    check(lambda M, x, y: M.einsum("ij,jk->ik", [x, y]), a, b)
    check(lambda M, x, y: M.einsum(x, [0, 1], y, [1, 2], [0, 2]), a, b)
    check(lambda M, x, y: M.einsum(x, [Ellipsis, 1], y, [1, 2]), a, b)
    x = jitgrad.tensor(a)
    with pytest.raises(RuntimeError, match="does not appear"):
        jitgrad.einsum("ij->k", x)
    with pytest.raises(RuntimeError, match="number of subscripts"):
        jitgrad.einsum("ijk->", x)
    with pytest.raises(RuntimeError, match="broadcast"):
        jitgrad.einsum("ij,ij->", x, jitgrad.tensor(r(2, 4)))
    # integer operands stay integer
    ia = np.arange(6).reshape(2, 3)
    check(lambda M, x: M.einsum("ij,ij->i", x, x), ia, grad=False)


def test_einsum_float32_and_double_backward():
    check(lambda M, x, y: M.einsum("bij,bjk->bik", x, y), r(2, 3, 4), r(2, 4, 2),
          dtype="float32", rtol=1e-5, atol=1e-6)
    x = jitgrad.tensor(r(3, 3), requires_grad=True)
    y = jitgrad.einsum("ij,jk,ki->", x, x, x)
    g, = jitgrad.autograd.grad(y, x, create_graph=True)
    h, = jitgrad.autograd.grad(g.sum(), x)
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    gt, = torch.autograd.grad(torch.einsum("ij,jk,ki->", xt, xt, xt), xt, create_graph=True)
    ht, = torch.autograd.grad(gt.sum(), xt)
    np.testing.assert_allclose(h.numpy(), ht.numpy(), rtol=1e-10)


# --- products -------------------------------------------------------------------------------------

def test_tensordot_kron_inner_vdot():
    check(lambda M, x, y: M.tensordot(x, y, dims=2), r(2, 3, 4), r(3, 4, 5))
    check(lambda M, x, y: M.tensordot(x, y, dims=([0, 1], [2, 0])), r(2, 2, 1), r(2, 1, 2))
    check(lambda M, x, y: M.tensordot(x, y, dims=([0, 1], [2, 0])), r(1, 1, 1), r(2, 1, 2))
    check(lambda M, x, y: M.tensordot(x, y, dims=0), r(2), r(3))
    check(lambda M, x, y: M.kron(x, y), r(2, 3), r(4, 2))
    check(lambda M, x, y: M.kron(x, y), r(2, 3), r(3))
    check(lambda M, x, y: x.kron(y), r(2, 1, 3), r(2, 2))
    check(lambda M, x, y: M.inner(x, y), r(5), r(5))
    check(lambda M, x, y: M.inner(x, y), r(), r(2, 2))
    check(lambda M, x, y: x.inner(y), r(2, 3), r(4, 3))
    check(lambda M, x, y: M.vdot(x, y), r(5), r(5))
    with pytest.raises(RuntimeError, match="last dimension must match"):
        jitgrad.inner(jitgrad.tensor(r(2, 3)), jitgrad.tensor(r(2)))
    with pytest.raises(RuntimeError, match="contracted dimensions need to match"):
        jitgrad.tensordot(jitgrad.tensor(r(2, 3)), jitgrad.tensor(r(2, 3)), dims=1)


def test_multi_dot_and_chain_matmul():
    for shapes in [[(1, 2), (2, 1)], [(2, 3), (3, 4), (4, 5)], [(2, 0), (0, 2)],
                   [(2, 4), (4, 3), (3, 5), (5, 3), (3, 2)], [(3,), (3, 4), (4,)], [(3,), (3, 2)]]:
        check(lambda M, *xs: M.linalg.multi_dot(list(xs)), *[r(*s) for s in shapes])
    check(lambda M, *xs: M.chain_matmul(*xs), r(2, 3), r(3, 4), r(4, 2))
    with pytest.raises(RuntimeError, match="at least 2"):
        jitgrad.linalg.multi_dot([jitgrad.tensor(r(2, 2))])
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        jitgrad.linalg.multi_dot([jitgrad.tensor(r(2, 2)), jitgrad.tensor(r(3, 2))])


@pytest.mark.parametrize("name,shapes", [
    ("addmm", [(2, 3), (2, 4), (4, 3)]), ("addmm", [(3,), (2, 4), (4, 3)]),
    ("addmm", [(), (5, 0), (0, 10)]), ("addmv", [(5,), (5, 4), (4,)]),
    ("addmv", [(1,), (5, 4), (4,)]), ("addr", [(5, 4), (5,), (4,)]), ("addr", [(), (5,), (4,)]),
    ("baddbmm", [(2, 3, 4), (2, 3, 5), (2, 5, 4)]), ("baddbmm", [(1,), (2, 3, 5), (2, 5, 4)]),
    ("addbmm", [(3, 4), (2, 3, 5), (2, 5, 4)]), ("addbmm", [(), (2, 3, 5), (2, 5, 4)]),
])
def test_addmm_family(name, shapes):
    xs = [r(*s) for s in shapes]
    check(lambda M, *t: getattr(M, name)(*t), *xs)
    check(lambda M, *t: getattr(M, name)(*t, beta=0.2, alpha=0.6), *xs)
    check(lambda M, *t: getattr(t[0], name)(*t[1:], beta=0.5, alpha=2), *xs)
    # beta == 0 ignores the input, NaN included
    nan = np.full(shapes[0], np.nan)
    check(lambda M, *t: getattr(M, name)(*t, beta=0), nan, *xs[1:])


def test_addmm_inplace_and_errors():
    for M in (jitgrad, torch):
        c = M.tensor(r(2, 3))
        c0 = _np(c).copy()
        a, b = M.tensor(r(2, 4)), M.tensor(r(4, 3))
        out = c.addmm_(a, b, beta=0.5, alpha=2)
        assert out is c
        np.testing.assert_allclose(_np(c), 0.5 * c0 + 2 * _np(a) @ _np(b), rtol=1e-12)
    with pytest.raises(RuntimeError, match="2-D"):
        jitgrad.addmm(jitgrad.tensor(r(2, 3)), jitgrad.tensor(r(2)), jitgrad.tensor(r(2, 3)))
    with pytest.raises(RuntimeError, match="expanded size"):
        jitgrad.addmm(jitgrad.tensor(r(3, 3)), jitgrad.tensor(r(2, 4)), jitgrad.tensor(r(4, 3)))


def test_trace_cross_diagonal_vecdot():
    for s in [(5, 5), (7, 5), (5, 7), (1, 5)]:
        check(lambda M, x: M.trace(x), r(*s))
    check(lambda M, x: x.trace(), np.arange(6).reshape(2, 3), grad=False)
    check(lambda M, x, y: M.cross(x, y), r(5, 3), r(5, 3))
    check(lambda M, x, y: M.cross(x, y, dim=1), r(5, 3, 5), r(5, 3, 5))
    check(lambda M, x, y: M.linalg.cross(x, y), r(1, 3), r(5, 3))
    check(lambda M, x, y: x.cross(y, dim=-1), r(4, 3), r(4, 3))
    for kw in [{}, {"offset": 2}, {"offset": -1}, {"offset": 1, "dim1": 1, "dim2": 2},
               {"offset": -2, "dim1": 0, "dim2": 1}]:
        check(lambda M, x: M.linalg.diagonal(x, **kw), r(4, 5, 3))
    check(lambda M, x, y: M.linalg.vecdot(x, y), r(3, 4), r(4))
    check(lambda M, x, y: M.linalg.vecdot(x, y, dim=0), r(3, 4), r(3, 1))
    with pytest.raises(RuntimeError, match="must have length 3"):
        jitgrad.linalg.cross(jitgrad.tensor(r(2, 4)), jitgrad.tensor(r(2, 4)))


# --- norms ----------------------------------------------------------------------------------------

ORDS = [2, 1, 0, 3, 0.5, -0.5, -1, -2.5, float("inf"), float("-inf"), 1.5]


@pytest.mark.parametrize("ord", ORDS)
def test_vector_norm_vs_torch(ord):
    x = r(3, 4)
    check(lambda M, t: M.linalg.vector_norm(t, ord), x)
    check(lambda M, t: M.linalg.vector_norm(t, ord, dim=1, keepdim=True), x)
    check(lambda M, t: M.linalg.vector_norm(t, ord, dim=(0,)), x)
    check(lambda M, t: M.linalg.vector_norm(t, ord, dim=-1), r())
    # zeros: torch's subgradient (0 at a zero norm, 0 where x == 0 for ord < 1)
    z = np.zeros((2, 3))
    z[1, 1] = 0.5
    check(lambda M, t: M.linalg.vector_norm(t, ord, dim=1), z)


def test_vector_norm_ties_dtype_and_errors():
    x = np.array([[1.0, -3.0, 3.0], [2.0, 2.0, -2.0]])
    check(lambda M, t: M.linalg.vector_norm(t, float("inf"), dim=1), x)
    check(lambda M, t: M.linalg.vector_norm(t, float("-inf")), x)
    check(lambda M, t: M.linalg.vector_norm(t, 3, dtype=M.float64), r(2, 3), dtype="float32",
          rtol=1e-6, atol=1e-6)
    check(lambda M, t: M.linalg.vector_norm(t, 2.5), r(4, 5), dtype="float32", rtol=1e-5,
          atol=1e-6)
    with pytest.raises(RuntimeError, match="floating point"):
        jitgrad.linalg.vector_norm(jitgrad.arange(3))
    with pytest.raises(RuntimeError, match="identity"):
        jitgrad.linalg.vector_norm(jitgrad.zeros(0), float("inf"))
    with pytest.raises(RuntimeError, match="narrowing"):
        jitgrad.linalg.vector_norm(jitgrad.zeros(2, dtype=jitgrad.float64), dtype=jitgrad.float32)


def test_norm_double_backward():
    for ord in (2, 1.5):  # (the inf-norms' gradients are piecewise constant)
        xa = r(3, 4)
        res = []
        for M in (jitgrad, torch):
            x = M.tensor(xa, requires_grad=True)
            y = M.linalg.vector_norm(x, ord, dim=1)
            g, = M.autograd.grad((y * M.tensor([1.0, 2.0, 3.0], dtype=y.dtype)).sum(), x,
                                 create_graph=True)
            h, = M.autograd.grad((g * g).sum(), x)
            res.append(_np(h))
        np.testing.assert_allclose(res[0], res[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ord", ["fro", 1, -1, float("inf"), float("-inf")])
def test_matrix_norm(ord):
    check(lambda M, t: M.linalg.matrix_norm(t, ord), r(2, 3, 4))
    check(lambda M, t: M.linalg.matrix_norm(t, ord, dim=(-1, 0), keepdim=True), r(3, 2, 4))
    check(lambda M, t: M.linalg.matrix_norm(t, ord, dim=(2, 0)), r(3, 2, 4))


def test_torch_norm_linalg_norm_dist_renorm():
    x = r(3, 4)
    check(lambda M, t: M.norm(t), x)
    check(lambda M, t: t.norm(), x)
    check(lambda M, t: t.norm(p=None), x)
    check(lambda M, t: t.norm(3, 1, True), x)
    check(lambda M, t: M.norm(t, "fro", [0, 1]), x)
    check(lambda M, t: M.norm(t, float("inf"), -1), x)
    check(lambda M, t: M.norm(t, 0.5), x)
    for args in [(), (None,), ("fro",), (float("inf"),), (1,), (-1,)]:
        check(lambda M, t: M.linalg.norm(t, *args), x)
    check(lambda M, t: M.linalg.norm(t, 3), r(5))
    check(lambda M, t: M.linalg.norm(t, dim=(0, 1)), r(2, 3, 4))
    check(lambda M, t: M.linalg.norm(t, 1, dim=(0, 2), keepdim=True), r(2, 3, 4))
    check(lambda M, t: M.linalg.norm(t, 4, dim=1), r(2, 3, 4))
    with pytest.raises(RuntimeError, match="1D or 2D"):
        jitgrad.linalg.norm(jitgrad.tensor(r(2, 3, 4)), 2)
    for p in (2, 4, 1, float("inf")):
        check(lambda M, a, b: M.dist(a, b, p), r(3, 1, 4), r(2, 4))
    check(lambda M, a, b: a.dist(b), r(3), r(3))
    for args in [(2, 1, 0.5), (2, -1, 0.5), (1, 2, 3.0), (float("inf"), 2, 0.5)]:
        check(lambda M, t: M.renorm(t, *args), r(3, 4, 2))
    for M in (jitgrad, torch):
        t = M.tensor(np.ones((2, 3)))
        assert t.renorm_(2, 0, 1.0) is t
        np.testing.assert_allclose(_np(t), np.full((2, 3), 3 ** -0.5 * (1 / (1 + 1e-7 / 3 ** .5))),
                                   rtol=1e-9)


# --- inverses, determinants, solve ----------------------------------------------------------------

def wc(*shape):
    """Well-conditioned square matrices (random + n * I)."""
    n = shape[-1]
    return r(*shape) + n * np.eye(n)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (1, 2, 3, 3), (0, 3, 3), (2, 0, 0), (1, 1)])
def test_inv_det_slogdet(shape):
    a = wc(*shape)
    check(lambda M, t: M.linalg.inv(t), a)
    check(lambda M, t: t.inverse(), a)
    check(lambda M, t: M.linalg.det(t), a)
    check(lambda M, t: M.linalg.slogdet(t), a)
    check(lambda M, t: M.logdet(t), a)
    check(lambda M, t: t.slogdet(), a)
    check(lambda M, t: M.linalg.inv(t), a, dtype="float32", rtol=2e-5, atol=1e-5)


def test_det_signs_singular_and_logdet_nan():
    a = wc(2, 3, 3)
    a[0] *= -1  # det < 0
    check(lambda M, t: M.linalg.det(t), a)
    check(lambda M, t: M.linalg.slogdet(t), a)
    check(lambda M, t: M.logdet(t), a)
    s = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])  # rank 2
    # det is a polynomial: its gradient at a singular matrix is the cofactor matrix (central
    # differences agree; torch 2.13 returns 0 there, from its LU solve with a zero right side)
    check(lambda M, t: M.linalg.det(t), s, grad=False)
    x = jitgrad.tensor(s, requires_grad=True)
    g, = jitgrad.autograd.grad(jitgrad.linalg.det(x), x)
    num = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e = np.zeros((3, 3))
            e[i, j] = 1e-6
            num[i, j] = (np.linalg.det(s + e) - np.linalg.det(s - e)) / 2e-6
    np.testing.assert_allclose(g.numpy(), num, atol=1e-8)
    assert np.abs(num).max() > 1
    with pytest.raises(jitgrad.linalg.LinAlgError, match="singular"):
        jitgrad.linalg.inv(jitgrad.tensor(s))
    with pytest.raises(RuntimeError, match="square"):
        jitgrad.linalg.det(jitgrad.tensor(r(2, 3)))
    with pytest.raises(RuntimeError, match="floating point"):
        jitgrad.linalg.inv(jitgrad.tensor([[1, 2], [3, 4]]))


@pytest.mark.parametrize("sa,sb", [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3)),
                                   ((2, 3, 3), (3,)), ((2, 1, 3, 3), (3, 3, 2)),
                                   ((0, 3, 3), (0, 3, 1)), ((2, 3, 3), (2, 3, 1))])
def test_solve(sa, sb):
    a, b = wc(*sa), r(*sb)
    check(lambda M, x, y: M.linalg.solve(x, y), a, b)
    if len(sb) >= 2 and sb != (3,) and len(sb) == len(sa):
        check(lambda M, x, y: M.linalg.solve(x, y.mT, left=False), a, b)


def test_solve_errors_and_double_backward():
    with pytest.raises(RuntimeError, match="Incompatible shapes"):
        jitgrad.linalg.solve(jitgrad.tensor(wc(3, 3)), jitgrad.tensor(r(4, 2)))
    with pytest.raises(RuntimeError, match="same dtype"):
        jitgrad.linalg.solve(jitgrad.tensor(wc(3, 3)), jitgrad.tensor(r(3), dtype=jitgrad.float32))
    res = []
    a0, b0 = wc(3, 3), r(3, 2)
    for M in (jitgrad, torch):
        a = M.tensor(a0, requires_grad=True)
        b = M.tensor(b0, requires_grad=True)
        y = (M.linalg.solve(a, b) ** 2).sum() + M.linalg.det(a) + M.linalg.inv(a).sum() + \
            M.linalg.slogdet(a).logabsdet
        ga, gb = M.autograd.grad(y, (a, b), create_graph=True)
        h = M.autograd.grad((ga ** 2).sum() + (gb ** 3).sum(), (a, b))
        res.append([_np(v) for v in h])
    for u, v in zip(*res):
        np.testing.assert_allclose(u, v, rtol=1e-8, atol=1e-10)


def test_matrix_power():
    for n in (0, 1, 2, 3, 5, 6, -1, -2, -4):
        check(lambda M, t: M.linalg.matrix_power(t, n), wc(2, 3, 3))
        check(lambda M, t: t.matrix_power(n), wc(3, 3))
    check(lambda M, t: M.matrix_power(t, 3), wc(0, 2, 2))


def test_grad_of_an_output_and_its_own_ancestor():
    """autograd.grad over [y, f(y)] (one root is an ancestor of the other): the engine's
    path pruning (found through slogdet's sign, which hangs off logabsdet like torch's)."""
    res = []
    for M in (jitgrad, torch):
        x = M.tensor(np.array([1.0, 2.0]), requires_grad=True)
        y = (x * x).sum()
        z = y * 3
        res.append(_np(M.autograd.grad([y, z], [x], [M.tensor(1.0, dtype=x.dtype),
                                                     M.tensor(2.0, dtype=x.dtype)])[0]))
    np.testing.assert_allclose(res[0], res[1])


# --- decompositions -------------------------------------------------------------------------------

def spd(*shape):
    a = r(*shape)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3), (0, 3, 3), (2, 0, 0), (1, 1)])
def test_cholesky(shape):
    a = spd(*shape)
    # symmetrised input: the gradient is torch's symmetric one
    check(lambda M, t: M.linalg.cholesky((t + t.mT) / 2), a)
    check(lambda M, t: M.linalg.cholesky((t + t.mT) / 2, upper=True), a)
    check(lambda M, t: M.cholesky(t), a)   # (torch's gradient, without symmetrising)
    check(lambda M, t: t.cholesky(upper=True), a)
    with pytest.raises(jitgrad.linalg.LinAlgError, match="positive-definite"):
        jitgrad.linalg.cholesky(jitgrad.tensor(-np.eye(3)))


@pytest.mark.parametrize("shape", [(5, 3), (3, 3), (3, 5), (2, 4, 2), (2, 2, 4), (0, 3), (3, 0)])
def test_qr(shape):
    a = r(*shape)
    check(lambda M, t: M.linalg.qr(t), a)
    check(lambda M, t: M.linalg.qr(t, mode="complete"), a,
          grad=shape[-2] <= shape[-1])
    check(lambda M, t: M.linalg.qr(t, mode="r").R, a, grad=False)
    check(lambda M, t: t.qr(), a)
    check(lambda M, t: M.linalg.qr(t).R, a)


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3), (0, 3, 3), (1, 1)])
def test_eigh(shape):
    a = r(*shape)
    sym = lambda M, t: (t + t.mT) / 2  # noqa: E731
    # eigenvectors up to sign: compare gauge-invariant functions (V * V, V diag(L) V^T)
    check(lambda M, t: M.linalg.eigh(sym(M, t)).eigenvalues, a)
    check(lambda M, t: M.linalg.eigh(sym(M, t)).eigenvectors ** 2, a)
    check(lambda M, t: M.linalg.eigh(sym(M, t), UPLO="U").eigenvectors ** 2, a)
    check(lambda M, t: M.linalg.eigvalsh(t), a)
    check(lambda M, t: M.linalg.eigvalsh(t, UPLO="U"), a)


def test_eigvalsh_repeated_eigenvalues_and_double_backward():
    check(lambda M, t: M.linalg.eigvalsh(t), np.eye(3))   # finite: V diag(g) V^T
    res = []
    a0 = r(3, 3)
    for M in (jitgrad, torch):
        a = M.tensor(a0, requires_grad=True)
        w, v = M.linalg.eigh(a + a.mT)
        y = (w ** 3).sum() + (v ** 4).sum()
        g, = M.autograd.grad(y, a, create_graph=True)
        h, = M.autograd.grad((g ** 2).sum(), a)
        res.append(_np(h))
    np.testing.assert_allclose(res[0], res[1], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("shape", [(5, 3), (3, 3), (3, 5), (2, 4, 3), (2, 3, 4), (0, 3), (3, 0),
                                   (0, 2, 2)])
def test_svd(shape):
    a = r(*shape)
    # singular vectors up to sign (LAPACK builds differ): gauge-invariant functions of them
    inv_ = lambda M, u, s, vh: (u * s.unsqueeze(-2)) @ vh  # noqa: E731
    check(lambda M, t: M.linalg.svd(t, full_matrices=False).S, a)
    check(lambda M, t: M.linalg.svdvals(t), a)
    check(lambda M, t: inv_(M, *M.linalg.svd(t, full_matrices=False)), a)
    check(lambda M, t: M.linalg.svd(t, full_matrices=False).U.abs(), a, grad=False)
    if min(shape[-2:]):
        check(lambda M, t: (M.linalg.svd(t, full_matrices=False).U[..., :, :1] *
                            M.linalg.svd(t, full_matrices=False).Vh[..., :1, :1]), a)
    out = jitgrad.linalg.svd(jitgrad.tensor(a), full_matrices=True)
    tout = torch.linalg.svd(torch.tensor(a), full_matrices=True)
    for x, y in zip(out, tout):
        assert tuple(x.shape) == tuple(y.shape)
    u = out.U.numpy()
    np.testing.assert_allclose(u @ np.swapaxes(u, -1, -2), np.broadcast_to(
        np.eye(shape[-2]), u.shape[:-2] + (shape[-2],) * 2), atol=1e-12)
    check(lambda M, t: M.svd(t).S, a)
    check(lambda M, t: (lambda u, s, v: (u * s.unsqueeze(-2)) @ v.mT)(*t.svd()), a)


def test_svd_double_backward_pinv_and_matrix_norms():
    res = []
    a0 = r(4, 3)
    for M in (jitgrad, torch):
        a = M.tensor(a0, requires_grad=True)
        u, s, vh = M.linalg.svd(a, full_matrices=False)
        y = (s ** 3).sum() + (u[:, 0:1] * vh[0:1, :]).sum()
        g, = M.autograd.grad(y, a, create_graph=True)
        h, = M.autograd.grad((g ** 2).sum(), a)
        res.append(_np(h))
    np.testing.assert_allclose(res[0], res[1], rtol=1e-7, atol=1e-9)
    for shape in [(4, 3), (3, 4), (2, 3, 3)]:
        check(lambda M, t: M.linalg.pinv(t), r(*shape))
    for ord in ("nuc", 2, -2):
        check(lambda M, t: M.linalg.matrix_norm(t, ord), r(2, 3, 4))
        check(lambda M, t: M.linalg.matrix_norm(t, ord, dim=(0, 2), keepdim=True), r(3, 2, 4))
    check(lambda M, t: M.norm(t, "nuc"), r(3, 3))


def test_vmap_and_jacrev():
    """The records' batching rules (vmap) and batched VJPs (jacrev) against torch.func."""
    a, b = wc(3, 4, 4), r(3, 4, 2)
    fns = [
        lambda M, x, y: M.linalg.solve(x, y),
        lambda M, x, y: M.linalg.solve(x, y[..., 0]),
        lambda M, x, y: M.linalg.inv(x) @ y + M.linalg.det(x) + M.linalg.slogdet(x).logabsdet,
        lambda M, x, y: M.linalg.qr(x @ x).R * M.linalg.svdvals(y).sum(),
        lambda M, x, y: M.linalg.vector_norm(y, 3, dim=-1).unsqueeze(-1) * y +
        M.linalg.cholesky(x @ x.mT).sum(),
        lambda M, x, y: M.einsum("ij,jk->ik", x, y),
    ]
    for f in fns:
        jv = jitgrad.vmap(lambda x, y: f(jitgrad, x, y))(jitgrad.tensor(a), jitgrad.tensor(b))
        tv = torch.func.vmap(lambda x, y: f(torch, x, y))(torch.tensor(a), torch.tensor(b))
        np.testing.assert_allclose(_np(jv), _np(tv), rtol=1e-9, atol=1e-10)
    for f in [lambda M, x: M.linalg.inv(x), lambda M, x: M.linalg.det(x),
              lambda M, x: M.linalg.cholesky(x @ x.mT), lambda M, x: M.linalg.vector_norm(x, 2.5),
              lambda M, x: M.linalg.eigvalsh(x + x.mT)]:
        jj = jitgrad.func.jacrev(lambda x: f(jitgrad, x))(jitgrad.tensor(a[0]))
        tj = torch.func.jacrev(lambda x: f(torch, x))(torch.tensor(a[0]))
        np.testing.assert_allclose(_np(jj), _np(tj), rtol=1e-8, atol=1e-10)
        jf = jitgrad.func.jacfwd(lambda x: f(jitgrad, x))(jitgrad.tensor(a[0]))
        np.testing.assert_allclose(_np(jf), _np(tj), rtol=1e-8, atol=1e-10)


def test_cuda_host_round_trip_matches_cpu():
    """On a CUDA tensor (the simulator without a GPU) the LAPACK forwards run on the host and
    copy back; the VJPs run as jitgrad ops on the device. Same values and gradients as CPU."""
    if not jitgrad.cuda.is_available():
        pytest.skip("no CUDA device or simulator")
    a0, b0 = wc(2, 3, 3), r(2, 3, 2)
    fns = [lambda M, a, b: M.linalg.solve(a, b).sum() + M.linalg.det(a).sum(),
           lambda M, a, b: M.linalg.inv(a).sum() + M.linalg.slogdet(a).logabsdet.sum(),
           lambda M, a, b: M.linalg.cholesky(a @ a.mT).sum() + M.linalg.vector_norm(b, 3),
           lambda M, a, b: M.linalg.eigvalsh(a + a.mT).sum() + M.linalg.svdvals(b).sum(),
           lambda M, a, b: M.linalg.qr(b).R.sum() + M.einsum("bij,bjk->", a, b)]
    for f in fns:
        res = []
        for dev in ("cpu", "cuda"):
            a = jitgrad.tensor(a0, device=dev, requires_grad=True)
            b = jitgrad.tensor(b0, device=dev, requires_grad=True)
            y = f(jitgrad, a, b)
            gs = jitgrad.autograd.grad(y, (a, b), allow_unused=True)
            res.append([_np(y)] + [np.zeros(1) if g is None else _np(g) for g in gs])
        for u, v in zip(*res):
            np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-10)
