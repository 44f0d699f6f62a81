"""The shape family (jitgrad/ops_api/shape.py) against torch: values, dtypes, gradients for a
random cotangent, double backward (gradgradcheck), view semantics of diagonal, in-place
tril_/triu_, torch's error cases, and the two new records on CUDA tensors (the simulator
without a GPU). Every op_db entry of the family is also run by tests/test_torch_conformance.py.
"""
import zlib

import numpy as np
import pytest

import jitgrad
from jitgrad.autograd import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

# name -> (f(lib, *tensors), input shapes). ``lib`` is jitgrad or torch: one lambda for both.
CASES = {
    "fliplr": (lambda L, x: L.fliplr(x), [(3, 4)]),
    "flipud_method": (lambda L, x: x.flipud(), [(3, 4)]),
    "roll_flat": (lambda L, x: L.roll(x, 5), [(3, 4)]),
    "roll_dims": (lambda L, x: x.roll((1, -2), (0, 2)), [(2, 3, 4)]),
    "roll_zero_dim": (lambda L, x: L.roll(x, 3), [()]),
    "rot90_1": (lambda L, x: L.rot90(x, 1, (1, 2)), [(2, 3, 4)]),
    "rot90_3": (lambda L, x: x.rot90(-1, (0, -1)), [(2, 3, 4)]),
    "rot90_2": (lambda L, x: L.rot90(x, 2), [(3, 4)]),
    "repeat": (lambda L, x: x.repeat(2, 1, 3), [(3, 2)]),
    "repeat_zero": (lambda L, x: x.repeat(0, 2), [(3,)]),
    "tile": (lambda L, x: L.tile(x, (2,)), [(2, 3)]),
    "tile_method": (lambda L, x: x.tile(2, 1, 2), [(2, 3)]),
    "repeat_interleave_int": (lambda L, x: L.repeat_interleave(x, 2, dim=1), [(2, 3)]),
    "repeat_interleave_flat": (lambda L, x: x.repeat_interleave(3), [(2, 2)]),
    "repeat_interleave_tensor": (
        lambda L, x: L.repeat_interleave(x, L.tensor([2, 0, 3]), dim=0, output_size=5),
        [(3, 2)]),
    "narrow": (lambda L, x: L.narrow(x, -1, 1, 2), [(2, 4)]),
    "narrow_tensor_start": (lambda L, x: x.narrow(0, L.tensor(1), 2), [(4, 2)]),
    "narrow_copy": (lambda L, x: L.narrow_copy(x, 0, -3, 2), [(4, 2)]),
    "movedim": (lambda L, x: L.movedim(x, (0, 1), (2, 0)), [(2, 3, 4)]),
    "moveaxis": (lambda L, x: x.moveaxis(-1, 0), [(2, 3, 4)]),
    "swapaxes": (lambda L, x: L.swapaxes(x, 0, 2), [(2, 3, 4)]),
    "swapdims": (lambda L, x: x.swapdims(1, 0), [(2, 3)]),
    "unflatten": (lambda L, x: L.unflatten(x, 1, (2, -1)), [(3, 6)]),
    "unfold_last": (lambda L, x: x.unfold(-1, 3, 2), [(2, 7)]),
    "unfold_first": (lambda L, x: x.unfold(0, 2, 1), [(4, 3)]),
    "diag_vec": (lambda L, x: L.diag(x, -1), [(3,)]),
    "diag_mat": (lambda L, x: x.diag(1), [(3, 4)]),
    "diagonal": (lambda L, x: L.diagonal(x), [(3, 4)]),
    "diagonal_dims": (lambda L, x: x.diagonal(-1, 2, 0), [(3, 2, 4)]),
    "diagonal_far_offset": (lambda L, x: L.diagonal(x, 7), [(3, 4)]),
    "diagonal_copy": (lambda L, x: L.diagonal_copy(x, 1, 1, 2), [(2, 3, 4)]),
    "diag_embed": (lambda L, x: L.diag_embed(x), [(2, 3)]),
    "diag_embed_dims": (lambda L, x: x.diag_embed(2, 0, 2), [(2, 3)]),
    "diagflat": (lambda L, x: L.diagflat(x, 1), [(2, 2)]),
    "tril": (lambda L, x: L.tril(x), [(3, 4)]),
    "tril_batched": (lambda L, x: x.tril(-1), [(2, 3, 3)]),
    "triu": (lambda L, x: L.triu(x, 1), [(4, 3)]),
    "broadcast_tensors": (lambda L, x, y: L.broadcast_tensors(x, y), [(3, 1), (4,)]),
    "meshgrid_ij": (lambda L, x, y: L.meshgrid(x, y, indexing="ij"), [(3,), (2,)]),
    "meshgrid_xy": (lambda L, x, y, z: L.meshgrid([x, y, z], indexing="xy"),
                    [(3,), (2,), ()]),
    "hstack": (lambda L, x, y: L.hstack([x, y]), [(2, 3), (2, 1)]),
    "hstack_1d": (lambda L, x, y: L.hstack((x, y)), [(3,), ()]),
    "vstack": (lambda L, x, y: L.vstack([x, y]), [(3,), (2, 3)]),
    "row_stack": (lambda L, x, y: L.row_stack([x, y]), [(3,), (3,)]),
    "dstack": (lambda L, x, y: L.dstack([x, y]), [(2, 3), (2, 3, 2)]),
    "column_stack": (lambda L, x, y, z: L.column_stack([x, y, z]), [(3,), (3, 2), (3,)]),
    "tensor_split_n": (lambda L, x: L.tensor_split(x, 3, dim=1), [(2, 7)]),
    "tensor_split_idx": (lambda L, x: x.tensor_split([1, 5, 9]), [(6, 2)]),
    "tensor_split_tensor": (lambda L, x: L.tensor_split(x, L.tensor([2, 3])), [(5,)]),
    "hsplit": (lambda L, x: L.hsplit(x, 2), [(3, 4)]),
    "vsplit": (lambda L, x: x.vsplit([1]), [(3, 4)]),
    "dsplit": (lambda L, x: L.dsplit(x, 3), [(2, 2, 3)]),
    "atleast_1d": (lambda L, x: L.atleast_1d(x), [()]),
    "atleast_2d_many": (lambda L, x, y: L.atleast_2d(x, y), [(3,), ()]),
    "atleast_3d": (lambda L, x, y: L.atleast_3d([x, y]), [(3,), (2, 3)]),
    "ravel": (lambda L, x: L.ravel(x.t()), [(2, 3)]),
    "view_as": (lambda L, x, y: x.view_as(y), [(2, 3), (3, 2)]),
    "reshape_as": (lambda L, x, y: x.t().reshape_as(y), [(2, 3), (6,)]),
    "expand_as": (lambda L, x, y: x.expand_as(y), [(3, 1), (2, 3, 4)]),
    "split_with_sizes": (lambda L, x: L.split_with_sizes(x, [1, 3], 1), [(2, 4)]),
    "unsafe_split": (lambda L, x: x.unsafe_split(2), [(5,)]),
    "unsafe_chunk": (lambda L, x: L.unsafe_chunk(x, 2, 1), [(2, 3)]),
    "block_diag": (lambda L, x, y, z: L.block_diag(x, y, z), [(2, 3), (), (2,)]),
    "cartesian_prod": (lambda L, x, y: L.cartesian_prod(x, y), [(3,), (2,)]),
    "combinations": (lambda L, x: L.combinations(x, 2), [(4,)]),
    "combinations_repl": (lambda L, x: L.combinations(x, 3, with_replacement=True), [(3,)]),
    "select_scatter": (lambda L, x, y: L.select_scatter(x, y, 1, -1), [(3, 4), (3,)]),
    "slice_scatter": (lambda L, x, y: x.slice_scatter(y, 1, 1, None, 2), [(3, 5), (3, 2)]),
    "diagonal_scatter": (lambda L, x, y: L.diagonal_scatter(x, y, -1), [(3, 4), (2,)]),
    "sum_to_size": (lambda L, x: x.sum_to_size(3, 1), [(2, 3, 4)]),
    "constant_pad_nd": (lambda L, x: L.constant_pad_nd(x, (1, -1, 0, 2), 1.5), [(2, 3)]),
    "fill": (lambda L, x, v: L.fill(x, v), [(2, 3), ()]),
    "expand_copy": (lambda L, x: L.expand_copy(x, (2, 3)), [(3,)]),
    "permute_copy": (lambda L, x: L.permute_copy(x, (1, 0)), [(2, 3)]),
    "unfold_copy": (lambda L, x: L.unfold_copy(x, 0, 2, 2), [(5,)]),
    "as_strided_windows": (lambda L, x: L.as_strided(x, (4, 3), (2, 1), 1), [(3, 4)]),
    "as_strided_method": (lambda L, x: x.as_strided((2, 2, 2), (1, 3, 0)), [(6,)]),
    "as_strided_copy": (lambda L, x: L.as_strided_copy(x, (2, 2), (1, 2)), [(4,)]),
}


def _leaves(L, arrays):
    return [L.tensor(a.copy(), requires_grad=True) if L is jitgrad else
            torch.tensor(a.copy(), requires_grad=True) for a in arrays]


def _outs(o):
    return list(o) if isinstance(o, (tuple, list)) else [o]


@pytest.mark.parametrize("name", sorted(CASES))
def test_vs_torch(name):
    f, shapes = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    arrays = [rng.standard_normal(s) for s in shapes]
    jx, tx = _leaves(jitgrad, arrays), _leaves(torch, arrays)
    jo, to = _outs(f(jitgrad, *jx)), _outs(f(torch, *tx))
    assert len(jo) == len(to)
    for j, t in zip(jo, to):
        assert tuple(j.shape) == tuple(t.shape), name
        assert str(j.dtype).split(".")[-1] == str(t.dtype).split(".")[-1], name
        np.testing.assert_allclose(j.detach().numpy(), t.detach().numpy(), rtol=1e-14,
                                   atol=0, err_msg=name)  # (sum_to_size: summation order)
    pairs = [(j, t) for j, t in zip(jo, to) if t.requires_grad]
    if not pairs:
        return
    ws = [rng.standard_normal(tuple(t.shape)) for _, t in pairs]
    tg = torch.autograd.grad([t for _, t in pairs], tx, [torch.tensor(w) for w in ws],
                             allow_unused=True)
    jg = jitgrad.autograd.grad([j for j, _ in pairs], jx, [jitgrad.tensor(w) for w in ws],
                               allow_unused=True)
    for k, (a, b) in enumerate(zip(jg, tg)):
        a = np.zeros(shapes[k]) if a is None else a.numpy()
        b = np.zeros(shapes[k]) if b is None else b.numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"{name} grad {k}")


@pytest.mark.parametrize("dtype", ["int64", "bool"])
@pytest.mark.parametrize("name", ["roll_dims", "repeat", "repeat_interleave_tensor", "tril",
                                  "diagonal_dims", "diag_embed_dims", "unfold_last",
                                  "block_diag", "diagonal_scatter", "meshgrid_xy"])
def test_integer_and_bool_dtypes(name, dtype):
    f, shapes = CASES[name]
    rng = np.random.default_rng(3)
    arrays = [(rng.integers(-3, 4, s) > 0 if dtype == "bool" else rng.integers(-3, 4, s))
              for s in shapes]
    jo = _outs(f(jitgrad, *[jitgrad.tensor(a) for a in arrays]))
    to = _outs(f(torch, *[torch.tensor(a) for a in arrays]))
    for j, t in zip(jo, to):
        assert str(j.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
        np.testing.assert_array_equal(j.numpy(), t.numpy())


@pytest.mark.parametrize("name", ["roll_dims", "rot90_1", "repeat", "repeat_interleave_tensor",
                                  "unfold_last", "diagonal_dims", "diag_embed_dims", "tril",
                                  "meshgrid_xy", "block_diag", "diagonal_scatter",
                                  "tensor_split_n"])
def test_double_backward(name):
    f, shapes = CASES[name]
    rng = np.random.default_rng(5)
    xs = [jitgrad.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]

    def fn(*a):
        return tuple(_outs(f(jitgrad, *a)))
    assert gradcheck(fn, xs)
    assert gradgradcheck(fn, xs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_matches_a_loop_of_torch(name):
    """jitgrad.vmap over a leading batch of 2 against torch applied to each sample (not
    torch.func.vmap: it has no rule for some of these, and rolls a 0-d sample across the
    batch)."""
    f, shapes = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    arrays = [rng.standard_normal((2,) + s) for s in shapes]
    got = jitgrad.vmap(lambda *a: tuple(_outs(f(jitgrad, *a))))(
        *[jitgrad.tensor(a) for a in arrays])
    for k, g in enumerate(got):
        want = np.stack([_outs(f(torch, *[torch.tensor(a[b]) for a in arrays]))[k].numpy()
                         for b in range(2)])
        np.testing.assert_allclose(g.numpy(), want, rtol=1e-14, atol=0, err_msg=name)


def test_per_sample_gradients_through_the_records():
    """vmap(grad) through diagonal and diag_embed (their batch rules), against torch.func."""
    from torch.func import grad as tgrad, vmap as tvmap
    x = np.random.default_rng(2).standard_normal((3, 4, 4))

    def loss(L, a):
        return (L.diag_embed(a.diagonal(1) * a.diagonal(-1)) ** 2).sum()
    got = jitgrad.vmap(jitgrad.func.grad(lambda a: loss(jitgrad, a)))(jitgrad.tensor(x))
    want = tvmap(tgrad(lambda a: loss(torch, a)))(torch.tensor(x))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


def test_diagonal_is_a_view():
    x = jitgrad.zeros(3, 4)
    d = x.diagonal(1)
    d.fill_(7.0)
    x.diagonal().add_(1.0)
    want = np.eye(3, 4) + 7 * np.eye(3, 4, 1)
    np.testing.assert_array_equal(x.numpy(), want)
    # of a non-contiguous tensor: the view follows its strides
    y = jitgrad.arange(12.0).reshape(3, 4).t()
    np.testing.assert_array_equal(y.diagonal(-1).numpy(), [1.0, 6.0, 11.0])
    # a gradient through an in-place write into the root reaches the view's reader
    a = jitgrad.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    b = a * 1
    v = b.diagonal()
    b.mul_(2)
    v.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), 2 * np.eye(3))


def test_as_strided_view_and_scatter():
    x = jitgrad.zeros(3, 4)
    x.as_strided((3,), (5,)).fill_(1.0)  # the diagonal, through the flat memory
    np.testing.assert_array_equal(x.numpy(), np.eye(3, 4))
    with pytest.raises(NotImplementedError, match="of a view"):
        jitgrad.ones(4, 4)[1:].as_strided((2,), (1,))
    with pytest.raises(NotImplementedError, match="not C-contiguous"):
        jitgrad.ones(4, 4).t().as_strided((2,), (1,))
    np.testing.assert_array_equal(  # an alias (detach) reads the same memory
        jitgrad.arange(6.0).detach().as_strided((2, 2), (1, 2), 1).numpy(), [[1, 3], [2, 4]])
    with pytest.raises(RuntimeError, match="require a storage of 14 elements"):
        jitgrad.ones(10).as_strided((2, 2), (1, 2), 10)
    # torch's own gradient w.r.t. input of as_strided_scatter fails torch.autograd.gradcheck
    # (it is g inside the written region); jitgrad's is the derivative
    rng = np.random.default_rng(0)
    a = jitgrad.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    b = jitgrad.tensor(rng.standard_normal((2, 2)), requires_grad=True)

    def f(a, b):
        return jitgrad.as_strided_scatter(a, b, (2, 2), (1, 2), 1)
    assert gradcheck(f, (a, b)) and gradgradcheck(f, (a, b))
    want = torch.as_strided_scatter(torch.tensor(a.detach().numpy()),
                                    torch.tensor(b.detach().numpy()), (2, 2), (1, 2), 1)
    np.testing.assert_array_equal(f(a, b).detach().numpy(), want.numpy())


def test_tril_triu_inplace():
    a = jitgrad.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    b = a * 2
    assert b.tril_(1) is b
    np.testing.assert_array_equal(b.detach().numpy(), np.tril(2 * np.arange(12.0).reshape(3, 4),
                                                              1))
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), 2 * np.tril(np.ones((3, 4)), 1))
    c = jitgrad.ones(3, 3, dtype=jitgrad.int64)
    c.triu_()
    np.testing.assert_array_equal(c.numpy(), np.triu(np.ones((3, 3), np.int64)))
    with pytest.raises(RuntimeError, match="leaf Variable"):
        jitgrad.ones(2, 2, requires_grad=True).tril_()


def test_flip_dims_keyword():
    x = jitgrad.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(x.flip(dims=(0, 1)).numpy(), np.flip(np.arange(6.0).reshape(
        2, 3)))


def test_broadcast_shapes_and_repeat_interleave_counts():
    assert jitgrad.broadcast_shapes((3, 1), 4, [2, 1, 1]) == (2, 3, 4)
    assert isinstance(jitgrad.broadcast_shapes((1,), ()), jitgrad.Size)
    np.testing.assert_array_equal(jitgrad.repeat_interleave(jitgrad.tensor([1, 0, 2])).numpy(),
                                  [0, 2, 2])


def test_unravel_index_vs_torch():
    for idx, shape in (([22, 41, -1, 100], (7, 6)), ([[3, 8], [0, 5]], (4, 5)), (5, 6),
                       (1621, (6, 7, 8, 9)), (0, ())):
        got = jitgrad.unravel_index(jitgrad.tensor(idx), shape)
        want = torch.unravel_index(torch.tensor(idx), shape)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == jitgrad.int64
            np.testing.assert_array_equal(g.numpy(), w.numpy())


ERRORS = [
    (lambda: jitgrad.fliplr(jitgrad.ones(3)), RuntimeError, "Input must be >= 2-d"),
    (lambda: jitgrad.roll(jitgrad.ones(3, 3), (1, 2), (0,)), RuntimeError,
     "shifts and dimensions must align"),
    (lambda: jitgrad.rot90(jitgrad.ones(3, 3), 1, (0, 0)), RuntimeError,
     "expected rotation dims to be different"),
    (lambda: jitgrad.ones(3, 4).repeat(2), RuntimeError, "can not be smaller"),
    (lambda: jitgrad.repeat_interleave(jitgrad.ones(3), jitgrad.tensor([1, 2])), RuntimeError,
     "repeats must have the same size"),
    (lambda: jitgrad.repeat_interleave(jitgrad.ones(3), jitgrad.tensor([1, -1, 1])),
     RuntimeError, "can not be negative"),
    (lambda: jitgrad.narrow(jitgrad.ones(5), 0, 3, 3), RuntimeError,
     r"start \(3\) \+ length \(3\) exceeds dimension size \(5\)"),
    (lambda: jitgrad.narrow(jitgrad.ones(5), 0, -6, 1), IndexError, "start out of range"),
    (lambda: jitgrad.movedim(jitgrad.ones(2, 3), (0, 0), (1, 0)), RuntimeError,
     "repeated dim in `source`"),
    (lambda: jitgrad.unflatten(jitgrad.ones(6), 0, (4, 2)), RuntimeError,
     "don't multiply up"),
    (lambda: jitgrad.ones(5).unfold(0, 6, 1), RuntimeError, "maximum size for tensor"),
    (lambda: jitgrad.ones(5).unfold(0, 2, 0), RuntimeError, "step is 0"),
    (lambda: jitgrad.diagonal(jitgrad.ones(3, 3), 0, 1, -1), RuntimeError,
     "diagonal dimensions cannot be identical"),
    (lambda: jitgrad.diag(jitgrad.ones(2, 2, 2)), RuntimeError, "Supports 1D or 2D"),
    (lambda: jitgrad.tril(jitgrad.ones(3)), RuntimeError, "at least 2 dimensions"),
    (lambda: jitgrad.meshgrid(jitgrad.ones(2, 2)), RuntimeError, "Expected 0D or 1D"),
    (lambda: jitgrad.meshgrid(jitgrad.ones(2), jitgrad.ones(2, dtype=jitgrad.float64)),
     RuntimeError, "same dtype"),
    (lambda: jitgrad.tensor_split(jitgrad.ones(5), 0), RuntimeError,
     "number of sections must be larger than 0"),
    (lambda: jitgrad.hsplit(jitgrad.ones(5, 5), 2), RuntimeError, "not divisible"),
    (lambda: jitgrad.vsplit(jitgrad.ones(5), 1), RuntimeError, "at least 2 dimension"),
    (lambda: jitgrad.block_diag(jitgrad.ones(2, 2, 2)), RuntimeError,
     "2 or fewer dimensions"),
    (lambda: jitgrad.select_scatter(jitgrad.ones(3, 4), jitgrad.ones(4), 1, 0), RuntimeError,
     "expected src to have a size equal to the slice"),
    (lambda: jitgrad.ones(2, 3).sum_to_size(2, 2), RuntimeError, "is not expandable"),
    (lambda: jitgrad.positive(jitgrad.ones(2, dtype=jitgrad.bool)), RuntimeError,
     "bool tensor"),
    (lambda: jitgrad.hstack(jitgrad.ones(2)), TypeError, "tuple/list of Tensors"),
    (lambda: jitgrad.unravel_index(jitgrad.tensor(1.0), (2, 3)), TypeError, "integer dtype"),
    (lambda: jitgrad.unravel_index(jitgrad.tensor(1), (-1, 3)), ValueError, "negative"),
]


@pytest.mark.parametrize("k", range(len(ERRORS)))
def test_errors(k):
    f, exc, msg = ERRORS[k]
    with pytest.raises(exc, match=msg):
        f()


@pytest.mark.cuda
@pytest.mark.skipif(not jitgrad.cuda.is_available(), reason="no GPU and no CUDA simulator")
@pytest.mark.parametrize("name", ["diagonal_dims", "diag_embed_dims", "tril", "roll_dims",
                                  "unfold_last", "repeat"])
def test_cuda_matches_cpu(name):
    f, shapes = CASES[name]
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(s) for s in shapes]
    res = {}
    for dev in ("cpu", "cuda"):
        xs = [jitgrad.tensor(a, device=dev, requires_grad=True) for a in arrays]
        out = _outs(f(jitgrad, *xs))[0]
        w = jitgrad.tensor(np.linspace(0.5, 1.5, out.numel()).reshape(tuple(out.shape)),
                           device=dev)
        (out * w).sum().backward()
        assert out.device.type == dev and xs[0].grad.device.type == dev
        res[dev] = (out.detach().cpu().numpy(), xs[0].grad.cpu().numpy())
    for a, b in zip(res["cpu"], res["cuda"]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not jitgrad.cuda.is_available(), reason="no GPU and no CUDA simulator")
def test_cuda_diagonal_view_write():
    z = jitgrad.zeros(3, 4, device="cuda")
    z.diagonal(1).fill_(2.0)
    np.testing.assert_array_equal(z.cpu().numpy(), 2 * np.eye(3, 4, 1))
