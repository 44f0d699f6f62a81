"""The op table (jitgrad.testing.opinfo) at a size above FUSE_MIN, in the default (fused)
mode: every row's forward against its NumPy reference and its gradient against torch (rows
without a torch callable: against the same op with fusion off), on one sample whose shapes
are scaled up to >= 65,536 elements, so the lazily fused kernels run instead of the eager
ones that tests/test_ops.py exercises. Float64 for every row, float32 for the unary
elementwise rows.

Also each unary float row applied to a *reduction* (a mean over all, an amax over a dim) of a
large tensor: ops whose VJP reads their output were silently wrong there (the
gradient of sqrt(sum(x * x)) was 1.0 instead of 0.0032 for 100,000 elements)."""
import math
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import autograd, lazy
from jitgrad.testing import fuzz
from jitgrad.testing.opinfo import ALL_INFOS

torch = pytest.importorskip("torch")

BIG = fuzz.DEFAULT_FUSE_MIN
# rows whose shapes are coupled (a value written into a slice, a contraction, a class weight)
SHAPES = {
    "setitem": ((300, 256), (299, 2)),
    "matmul": ((300, 256), (256, 8)),
    "nll_loss_weighted_ignore": ((16_400, 4),),
    "cross_entropy": ((16_400, 4),),
    "linear": ((1024, 64), (64, 64), (64,)),
    "diag_embed": ((1024, 64),),  # (output: one 64 x 64 matrix per row, 4M elements)
}
# rows whose NumPy reference is written for their small sample's shapes: torch is the forward
# reference instead
TORCH_FORWARD = {"expand_broadcast"}


def _scaled(shapes):
    """shapes with every non-broadcast dim grown by one factor so the broadcast result has
    at least BIG elements (size-1 broadcast dims stay 1)."""
    out = tuple(np.broadcast_shapes(*[s for s in shapes if len(s)]) if any(shapes) else ())
    big = [d for d in out if d > 1]
    f = math.ceil((BIG / math.prod(big)) ** (1 / len(big)))
    res = []
    for s in shapes:
        res.append(tuple(d * f if d > 1 else d for d in s))
    assert math.prod(tuple(np.broadcast_shapes(*res))) >= BIG
    return tuple(res)


def _big_sample(info):
    if info.row.startswith("linalg_"):  # LAPACK on the host, not a fused kernel; a large
        return None                      # random matrix's det overflows (inf) anyway
    if info.row == "col2im":  # its input's shape is fixed by the row's output_size/kernel
        return None           # params: a scaled input is not a valid call
    if info.name in SHAPES:
        return SHAPES[info.name]
    for shapes in info.shapes:
        try:
            s = tuple(np.broadcast_shapes(*shapes))
        except ValueError:  # inputs that do not broadcast (solve's (n, n), (n, k)): no
            return None     # one factor scales them; the row has no large case
        if s and math.prod(s) > 0 and any(d > 1 for d in s):
            return _scaled(shapes)
    return None


# float32 for the unary elementwise rows (their float32 kernels use vmath's own float32
# approximations); every row in float64
CASES = [(info, "float64") for info in ALL_INFOS if _big_sample(info) is not None] + \
        [(info, "float32") for info in ALL_INFOS if info.elementwise and
         info.kinds == ("float",) and _big_sample(info) is not None]


def _inputs(info, arrays, dtype, requires_grad):
    xs = []
    for a, kind, d in zip(arrays, info.kinds, info.diff):
        if kind == "bool":
            xs.append(jitgrad.from_numpy(a))
        else:
            t = jitgrad.from_numpy(np.array(a, dtype=dtype))
            xs.append(t.requires_grad_(True) if requires_grad and d else t)
    return xs


def _close(got, want, rtol, atol, what):
    got = got.detach().numpy() if isinstance(got, jitgrad.Tensor) else np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.dtype.kind in "bi":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    scale = float(np.nanmax(np.abs(want))) if want.size and not np.isnan(want).all() else 0.0
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=atol * max(scale, 1.0), equal_nan=True, err_msg=what)


def _reference_grads(info, arrays, dtype, g):
    """Gradients from torch (float64 on the same rounded values), else from jitgrad with fusion
    off (the eager kernels: the path gradcheck verifies on small shapes)."""
    diff = [k for k, d in enumerate(info.diff) if d]
    rounded = [a if k == "bool" else a.astype(dtype).astype(np.float64)
               for a, k in zip(arrays, info.kinds)]
    top = info.torch_op(torch)
    if top is not None:
        txs = [torch.from_numpy(np.array(a)) for a in rounded]
        for k in diff:
            txs[k].requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = top(*txs)
        gs = torch.autograd.grad(out, [txs[k] for k in diff], torch.from_numpy(g),
                                 allow_unused=True)
        return [np.zeros(txs[k].shape) if t is None else t.numpy() for k, t in zip(diff, gs)]
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    lazy.set_fusion(False)
    try:
        xs = _inputs(info, rounded, np.float64, True)
        out = info.op(*xs)
        gs = autograd.grad(out, [xs[k] for k in diff], jitgrad.from_numpy(g), allow_unused=True)
    finally:
        lazy.set_fusion(prev, prev_min)
    return [np.zeros(xs[k].shape) if t is None else t.numpy() for k, t in zip(diff, gs)]


@pytest.mark.parametrize("info,dtype", [pytest.param(i, d, id=f"{i.name}-{d}")
                                        for i, d in CASES])
def test_op_large(info, dtype):
    rng = np.random.default_rng(7)
    shapes = _big_sample(info)
    arrays = info.arrays(shapes, rng)
    npdt = np.float32 if dtype == "float32" else np.float64
    grads_wanted = info.grad_order >= 1 and any(info.diff)
    with fuzz.fusion_mode("large"):
        xs = _inputs(info, arrays, npdt, grads_wanted)
        out = info.op(*xs)
        rounded = [a if k == "bool" else a.astype(npdt).astype(np.float64)
                   for a, k in zip(arrays, info.kinds)]
        if info.name in TORCH_FORWARD:
            want = info.torch_op(torch)(*[torch.from_numpy(a) for a in rounded]).numpy()
        else:
            want = info.ref(*rounded)
        rtol, atol = (info.rtol, info.atol) if dtype == "float64" else (info.rtol32,
                                                                          info.atol32)
        _close(out, want, rtol, atol, f"{info.name} forward {shapes}")
        if not grads_wanted:
            return
        diff = [k for k, d in enumerate(info.diff) if d]
        g = rng.standard_normal(tuple(out.shape)).astype(npdt)
        grads = autograd.grad(out, [xs[k] for k in diff], jitgrad.from_numpy(g),
                              allow_unused=True)
        grads = [np.zeros(xs[k].shape) if t is None else t.numpy() for k, t in zip(diff, grads)]
    ref = _reference_grads(info, arrays, npdt, g.astype(np.float64))
    grtol, gatol = (1e-8, 1e-10) if dtype == "float64" else (1e-4, 1e-5)
    for k, a, b in zip(diff, grads, ref):
        _close(a, b, grtol, gatol, f"{info.name} gradient of input {k} {shapes}")


# --- unary ops of a large reduction ---------------------------------------------------------
UNARY_FLOAT = [i for i in ALL_INFOS if i.elementwise and len(i.shapes[0]) == 1 and
               i.kinds == ("float",) and i.torch is not None and i.grad_order >= 1]
# (x * 1.0 is pending at this size: its reduction is fused into the same lazy kernel)
REDUCTIONS = {"mean": lambda x: (x * 1.0).mean(), "amax0": lambda x: x.amax(0)}


@pytest.mark.parametrize("red", list(REDUCTIONS))
@pytest.mark.parametrize("info", [pytest.param(i, id=i.name) for i in UNARY_FLOAT])
def test_unary_of_large_reduction(info, red):
    """op(reduce(x)) with x of 2**16+ elements: the reduced value stays in the op's domain
    (a mean or max of values drawn from it); gradient of x against torch."""
    lo, hi = info.domain[0]
    rng = np.random.default_rng(11)
    a = rng.uniform(lo, hi, (BIG // 4 + 4, 4))
    g = None
    with fuzz.fusion_mode("large"):
        x = jitgrad.from_numpy(a.copy()).requires_grad_(True)
        out = info.op(REDUCTIONS[red](x))
        g = rng.standard_normal(tuple(out.shape))
        (gx,) = autograd.grad(out, [x], jitgrad.from_numpy(g))
        got_out, got_g = out.detach().numpy(), gx.numpy()
    tx = torch.from_numpy(a.copy()).requires_grad_(True)
    tout = info.torch_op(torch)(REDUCTIONS[red](tx))
    (tg,) = torch.autograd.grad(tout, [tx], torch.from_numpy(g))
    _close(got_out, tout.detach().numpy(), 1e-10, 1e-12, f"{info.name}({red}) value")
    _close(got_g, tg.numpy(), 1e-9, 1e-12, f"{info.name}({red}) gradient")
