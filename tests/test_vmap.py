"""jitgrad.vmap / jitgrad.func.vmap against torch.func.vmap: every op-table row, in_dims /
out_dims / chunk_size, nesting with grad / jacrev / jacfwd / hessian and with itself,
randomness, and per-sample gradients of an MLP with cross-entropy."""
from __future__ import annotations

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as JF
from jitgrad.func import grad, hessian, jacfwd, jacrev, vmap
from jitgrad.testing.opinfo import ALL_INFOS

torch = pytest.importorskip("torch")
tvmap = torch.func.vmap

B = 3

# rows whose primitive has no batching rule yet: vmap raises a clear error naming it (a row that
# gains a rule is compared like the others; a new row without one must be listed here)
NO_RULE = {
    "linalg_solve": "linalg_solve",
    "prod": "prod", "prod_others": "prod", "prod_all_with_zeros": "prod",
    "amax": "amax", "amin": "amax", "amax_ties": "amax", "amax_nan": "amax",
    "max_dim": "max_dim", "min_dim_keepdim": "max_dim", "max_dim_indices": "max_dim",
    "median": "median", "std": "std", "scatter_reduce": "scatter_reduce",
    "scatter_reduce_amax_no_self": "scatter_reduce",
    # value-dependent: a tensor's values steer the op (boolean mask, in-place write, weights
    # read on the host)
    "setitem": "needs the values", "getitem_mask": "needs the values",
    "nll_loss_weighted_ignore": "needs the values",
    # the row reads the order n (a tensor input of the table) as a Python int
    "polygamma": "needs the values", "polygamma_negative": "needs the values",
}


def _np(t):
    return t.detach().numpy()


def _batched_inputs(info, rng):
    shapes = info.shapes[0]
    per = [info.arrays(shapes, rng) for _ in range(B)]
    return [np.stack([p[k] for p in per]) for k in range(len(shapes))]


def _close(got, want, info):
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w, info)
        return
    g, w = _np(got), want.detach().numpy()
    assert g.shape == w.shape, (info.name, g.shape, w.shape)
    if w.dtype.kind in "biu":
        np.testing.assert_array_equal(g, w, err_msg=info.name)
    else:
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11, equal_nan=True,
                                   err_msg=info.name)


@pytest.mark.parametrize("info", ALL_INFOS, ids=lambda i: i.name)
def test_vmap_matches_torch_on_every_op(info):
    """vmap(op) over a batch of 3 samples (float64) equals torch.func.vmap of the same op (or,
    for rows without a torch callable, the op applied per sample); the first operand alone
    batched (in_dims=(0, None, ...)) too. Rows without a batching rule raise a clear error."""
    rng = np.random.default_rng(0)
    arrs = _batched_inputs(info, rng)
    js = [jitgrad.tensor(a) for a in arrs]
    if info.name in NO_RULE:
        try:
            vmap(info.op)(*js)
        except (NotImplementedError, RuntimeError) as e:
            assert str(e).startswith("vmap") and NO_RULE[info.name] in str(e), str(e)
            return
    top = info.torch_op(torch)
    dims_list = [0] if len(arrs) == 1 else [0, (0,) + (None,) * (len(arrs) - 1)]
    for dims in dims_list:
        call = [j if dims == 0 or k == 0 else j[0] for k, j in enumerate(js)]
        got = vmap(info.op, in_dims=dims)(*call)
        if top is not None:
            ts = [torch.from_numpy(a) if dims == 0 or k == 0 else torch.from_numpy(a[0])
                  for k, a in enumerate(arrs)]
            try:
                want = tvmap(top, in_dims=dims)(*ts)
            except Exception:   # torch cannot vmap it (data-dependent): per-sample reference
                want = None
            if want is not None:
                _close(got, want, info)
                continue
        per = [info.op(*[c[b] if dims == 0 or k == 0 else c for k, c in enumerate(call)])
               for b in range(B)]
        if isinstance(per[0], (tuple, list)):
            want = tuple(torch.from_numpy(np.stack([_np(p[k]) for p in per]))
                         for k in range(len(per[0])))
        else:
            want = torch.from_numpy(np.stack([_np(p) for p in per]))
        _close(got, want, info)


# --- in_dims / out_dims / chunk_size ---------------------------------------------------------

def _pair(shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return jitgrad.tensor(a), torch.from_numpy(a)


def test_in_dims_out_dims_nested_structures():
    x, tx = _pair((4, 3, 5), 1)
    y, ty = _pair((5, 4), 2)
    d, td = _pair((3,), 3)

    args = ({"a": x, "b": x[:, 0]}, y, (d, 1.5))
    targs = ({"a": tx, "b": tx[:, 0]}, ty, (td, 1.5))
    # dict and tuple prefixes of the arguments (a non-tensor leaf under None), nested out_dims
    in_dims = ({"a": 2, "b": 1}, 0, None)
    out_dims = {"s": 1, "t": (0, -1)}

    def g(p, q, c):
        return {"s": (p["a"].t() * q).sum(-1) + c[0], "t": (p["b"] * 2, q.exp())}
    got = vmap(g, in_dims=in_dims, out_dims=out_dims)(*args)
    want = tvmap(g, in_dims=in_dims, out_dims=out_dims)(*targs)
    assert set(got) == {"s", "t"}
    np.testing.assert_allclose(_np(got["s"]), want["s"].numpy(), rtol=1e-12)
    for a, b in zip(got["t"], want["t"]):
        np.testing.assert_allclose(_np(a), b.numpy(), rtol=1e-12)


@pytest.mark.parametrize("in_dim,out_dim", [(0, 0), (1, 0), (-1, 2), (2, -1), (1, 1)])
def test_in_dim_out_dim_positions(in_dim, out_dim):
    x, tx = _pair((3, 4, 5))
    f = lambda v: jitgrad.tanh(v) @ v.t()  # noqa: E731
    tf_ = lambda v: torch.tanh(v) @ v.t()  # noqa: E731
    got = vmap(f, in_dims=in_dim, out_dims=out_dim)(x)
    want = tvmap(tf_, in_dims=in_dim, out_dims=out_dim)(tx)
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-12)


def test_unbatched_outputs_are_expanded_and_out_dims_none():
    x, tx = _pair((4, 3))
    c, tc = _pair((3,), 5)
    got = vmap(lambda v: (v * 2, c.sum()), out_dims=(0, None))(x)
    want = tvmap(lambda v: (v * 2, tc.sum()), out_dims=(0, None))(tx)
    np.testing.assert_allclose(_np(got[0]), want[0].numpy())
    np.testing.assert_allclose(_np(got[1]), want[1].numpy())
    got = vmap(lambda v: c * 3)(x)   # unbatched with out_dims=0: expanded to the batch
    assert tuple(got.shape) == (4, 3)
    np.testing.assert_allclose(_np(got), np.broadcast_to(c.numpy() * 3, (4, 3)))
    with pytest.raises(ValueError, match="out_dim=None"):
        vmap(lambda v: v * 2, out_dims=None)(x)


@pytest.mark.parametrize("chunk", [1, 2, 3, 10])
def test_chunk_size(chunk):
    x, tx = _pair((7, 4))
    w, tw = _pair((4, 2), 9)
    f = lambda v: (jitgrad.sin(v) @ w, v.sum())  # noqa: E731
    tf_ = lambda v: (torch.sin(v) @ tw, v.sum())  # noqa: E731
    got = vmap(f, out_dims=(1, 0), chunk_size=chunk)(x)
    want = tvmap(tf_, out_dims=(1, 0), chunk_size=chunk)(tx)
    for g, t in zip(got, want):
        np.testing.assert_allclose(_np(g), t.numpy(), rtol=1e-12)


def test_bad_arguments_raise_clear_errors():
    x = jitgrad.randn(3, 2)
    with pytest.raises(ValueError, match="same size in the mapped dimension"):
        vmap(lambda a, b: a + b)(x, jitgrad.randn(4, 2))
    with pytest.raises(ValueError, match="in_dim=2"):
        vmap(lambda a: a, in_dims=2)(x)
    with pytest.raises(ValueError, match="non-Tensor"):
        vmap(lambda a, n: a * n)(x, 3)
    with pytest.raises(ValueError, match="at least one input"):
        vmap(lambda a: a, in_dims=None)(x)
    with pytest.raises(ValueError, match="not compatible"):
        vmap(lambda a, b: a, in_dims=(0,))(x, x)
    with pytest.raises(ValueError, match="chunk_size"):
        vmap(lambda a: a, chunk_size=0)
    with pytest.raises(RuntimeError, match="randomness"):
        vmap(lambda a: a, randomness="sometimes")
    with pytest.raises(RuntimeError, match="needs the values of a batched tensor"):
        vmap(lambda a: a * 2 if a.sum() > 0 else a)(x)
    with pytest.raises(RuntimeError, match="needs the values of a batched tensor"):
        vmap(lambda a: a.item())(jitgrad.randn(3))
    with pytest.raises(ValueError, match="must only return Tensors"):
        vmap(lambda a: 3)(x)


# --- randomness ------------------------------------------------------------------------------

def test_randomness_modes():
    x = jitgrad.randn(5, 3)
    with pytest.raises(RuntimeError, match="randomness='error'"):
        vmap(lambda a: a + jitgrad.rand(3))(x)
    with pytest.raises(RuntimeError, match="randomness='error'"):
        vmap(lambda a: JF.dropout(a, 0.5))(x)
    # 'same': one draw shared by every sample
    jitgrad.manual_seed(0)
    got = vmap(lambda a: a * 0 + jitgrad.rand_like(a), randomness="same")(x).numpy()
    assert np.all(got == got[0]) and got.std() > 0
    got = vmap(lambda a: JF.dropout(a * 0 + 1, 0.5), randomness="same")(x).numpy()
    assert np.all(got == got[0])
    # 'different': a draw per sample
    jitgrad.manual_seed(0)
    got = vmap(lambda a: a * 0 + jitgrad.randn(3), randomness="different")(x).numpy()
    assert got.shape == (5, 3) and len({tuple(r) for r in got}) == 5
    got = vmap(lambda a: a * 0 + jitgrad.rand_like(a), randomness="different")(x).numpy()
    assert len({tuple(r) for r in got}) == 5 and (got >= 0).all() and (got < 1).all()


# --- nesting ---------------------------------------------------------------------------------

def _f(x):
    return jitgrad.sin(x) * x.sum() + jitgrad.tanh(x * x)


def _tf(x):
    return torch.sin(x) * x.sum() + torch.tanh(x * x)


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd", "hessian", "grad"])
def test_vmap_of_derivative_transforms(transform):
    x, tx = _pair((4, 3), 11)
    J = {"jacrev": jacrev, "jacfwd": jacfwd, "hessian": hessian, "grad": grad}[transform]
    tJ = getattr(torch.func, transform)
    if transform in ("hessian", "grad"):
        f, tf_ = (lambda v: _f(v).sum()), (lambda v: _tf(v).sum())
    else:
        f, tf_ = _f, _tf
    got = vmap(J(f))(x)
    want = tvmap(tJ(tf_))(tx)
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-10, atol=1e-12)


def test_grad_of_vmap_and_vmap_of_vmap():
    x, tx = _pair((4, 3), 12)
    y, ty = _pair((2, 3), 13)
    got = grad(lambda v: vmap(lambda r: (jitgrad.sin(r) * r).sum())(v).sum())(x)
    want = torch.func.grad(lambda v: tvmap(lambda r: (torch.sin(r) * r).sum())(v).sum())(tx)
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-12)
    inner = lambda a, b: a * b.exp() + a.sum()  # noqa: E731
    got = vmap(vmap(inner, in_dims=(None, 0)), in_dims=(0, None))(x, y)
    want = tvmap(tvmap(inner, in_dims=(None, 0)), in_dims=(0, None))(tx, ty)
    assert tuple(got.shape) == (4, 2, 3)
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-12)
    # vmap(vmap(grad)) and vmap(jacrev(vmap))
    got = vmap(vmap(grad(lambda r: (r * r.sin()).sum())))(x.reshape(2, 2, 3))
    want = tvmap(tvmap(torch.func.grad(lambda r: (r * r.sin()).sum())))(tx.reshape(2, 2, 3))
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-12)
    got = vmap(jacrev(vmap(lambda r: r.exp() * r.sum())))(x.reshape(2, 2, 3))
    want = tvmap(torch.func.jacrev(tvmap(lambda r: r.exp() * r.sum())))(tx.reshape(2, 2, 3))
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-12)


def test_vmap_results_stay_differentiable_through_autograd():
    x, tx = _pair((4, 3), 14)
    x.requires_grad_(True)
    tx.requires_grad_(True)
    out = vmap(lambda r: (r.exp() * r.sum()).sum())(x)
    tout = tvmap(lambda r: (r.exp() * r.sum()).sum())(tx)
    (out * jitgrad.arange(4.0, dtype=jitgrad.float64)).sum().backward()
    (tout * torch.arange(4.0, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert not vmap(lambda r: r * 2)(jitgrad.randn(3, 2)).requires_grad


# --- per-sample gradients --------------------------------------------------------------------

def _mlp_params(rng, sizes, dtype):
    P = []
    for i, o in sizes:
        P += [rng.standard_normal((o, i)) / np.sqrt(i), rng.standard_normal(o) * 0.1]
    return [p.astype(dtype) for p in P]


def _loss(F, lib):
    def loss(params, x, y):
        h = x.unsqueeze(0)
        n = len(params) // 2
        for k in range(n):
            h = F.linear(h, params[2 * k], params[2 * k + 1])
            if k < n - 1:
                h = lib.tanh(h)
        return F.cross_entropy(h, y.unsqueeze(0))
    return loss


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_per_sample_gradients_of_an_mlp_match_torch_func(dtype, tol):
    rng = np.random.default_rng(3)
    P = _mlp_params(rng, [(12, 16), (16, 16), (16, 5)], dtype)
    X = rng.standard_normal((6, 12)).astype(dtype)
    Y = rng.integers(0, 5, 6)
    jp = tuple(jitgrad.tensor(p) for p in P)
    tp = tuple(torch.from_numpy(p) for p in P)
    got = vmap(grad(_loss(JF, jitgrad)), in_dims=(None, 0, 0))(jp, jitgrad.tensor(X),
                                                               jitgrad.tensor(Y))
    want = tvmap(torch.func.grad(_loss(torch.nn.functional, torch)), in_dims=(None, 0, 0))(
        tp, torch.from_numpy(X), torch.from_numpy(Y))
    for g, w, p in zip(got, want, P):
        assert tuple(g.shape) == (6,) + p.shape and g.dtype == jitgrad.tensor(p).dtype
        np.testing.assert_allclose(_np(g), w.numpy(), rtol=tol, atol=tol)
    # and against a Python loop of grad calls
    g1 = grad(_loss(JF, jitgrad))
    for b in range(6):
        gb = g1(jp, jitgrad.tensor(X[b]), jitgrad.tensor(Y[b]))
        for g, w in zip(got, gb):
            np.testing.assert_allclose(_np(g)[b], _np(w), rtol=tol, atol=tol)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_batched_losses_match_torch(reduction):
    """nll_loss / cross_entropy with batched targets, class weights, ignore_index, label
    smoothing and probability targets, against torch.func.vmap."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5))
    y = rng.integers(0, 5, (3, 4))
    y[0, 1] = -100
    w = rng.random(5) + 0.5
    p = rng.random((3, 4, 5))
    jx, jy, jw, jp_ = (jitgrad.tensor(a) for a in (x, y, w, p))
    tx, ty, tw, tp = (torch.from_numpy(a) for a in (x, y, w, p))
    cases = [
        (lambda F, a, t: F.cross_entropy(a, t, reduction=reduction), (jx, jy), (tx, ty)),
        (lambda F, a, t, ww: F.cross_entropy(a, t, weight=ww, reduction=reduction,
                                             label_smoothing=0.2), (jx, jy, jw), (tx, ty, tw)),
        (lambda F, a, t: F.nll_loss(F.log_softmax(a, 1), t, reduction=reduction),
         (jx, jy), (tx, ty)),
        (lambda F, a, t: F.cross_entropy(a, t.softmax(1), reduction=reduction,
                                         label_smoothing=0.1), (jx, jp_), (tx, tp)),
    ]
    for fn, ja, ta in cases:
        in_dims = (0, 0) + (None,) * (len(ja) - 2)
        got = vmap(lambda *a: fn(JF, *a), in_dims=in_dims)(*ja)
        # (torch.func.vmap cannot batch a weighted, label-smoothed loss: per-sample torch)
        per = [[t[b] if d == 0 else t for t, d in zip(ta, in_dims)] for b in range(3)]
        want = torch.stack([fn(torch.nn.functional, *a) for a in per])
        np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-10, atol=1e-12)
        gg = vmap(grad(lambda a, *r: fn(JF, a, *r).sum()), in_dims=in_dims)(*ja)
        tg = torch.stack([torch.func.grad(lambda a, *r: fn(torch.nn.functional, a, *r).sum())(
            *a) for a in per])
        np.testing.assert_allclose(_np(gg), tg.numpy(), rtol=1e-10, atol=1e-12)


def test_jitgrad_vmap_is_func_vmap():
    assert jitgrad.vmap is jitgrad.func.vmap
