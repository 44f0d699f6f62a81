"""The rest of torch.nn.functional: convolution, pooling, resampling, activations, losses and
normalisations (re-exported by ``jitgrad.nn.functional``).

Everything here is composed from differentiable jitgrad ops, so each function gets gradients,
double backward, GPU execution and batching from the ops it is made of:

* sliding windows (conv, unfold, max/avg/adaptive pooling) are one *gather* of the input,
  flattened over its spatial dims, with an int64 index map built on the host: ``(K, L)``, the
  flat input position of kernel offset ``k`` at output position ``l``, -1 in the padding. On
  CPU tensors (outside vmap) the gather is the ``im2col`` record (one njit pass, ``fill`` in
  the padding: 0 for conv/avg, -inf for max) and its adjoint the ``col2im`` record (each is
  the other's VJP, so double backward works); elsewhere (GPU, vmap) the same gather is the
  composite getitem of the input with one *sentinel* slot appended, its adjoint the
  ``index_backward`` record;
* a convolution is that gather (im2col) and one batched BLAS matmul with the weight, per group;
  ``fold`` / ``conv_transpose`` are the gather's adjoint (col2im);
* max pooling is ``max`` over the window axis; its ``return_indices`` map the argmax back
  through the index map (flat positions in the unpadded input, as torch);
* ``interpolate`` is separable: per spatial dim, one or a few gathers along that dim and a
  weighted sum with host-computed weights (torch's source-index arithmetic, in the op's
  precision).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import batching as _batching
from .. import functional_ops as F
from .._engine import all_on_cpu
from .._state import no_grad
from .._tensor import Tensor, apply_fn, full
from ..backends import cpu_conv
from ..creation import _gen, default_generator
from ..ops import structural
from ..ops_api import linalg as _linalg

# ============================================================================================
# helpers


def _const(a, like):
    """A host array as a constant tensor on ``like``'s device."""
    t = Tensor._make(np.asarray(a, order="C"))  # (ascontiguousarray would make 0-d 1-d)
    return t.cuda() if like.is_cuda else t


def _ntuple(v, n, name):
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    v = tuple(int(e) for e in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError(f"{name} must be an int or a tuple of {n} ints, got {list(v)}")
    return v


def _check_reduction(reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce(loss, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _legacy(size_average, reduce, reduction):
    """torch's deprecated size_average/reduce pair, mapped to ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _float_dtype(x, name):
    if x._meta[1].kind != "f":
        raise RuntimeError(f"{name}: expected a floating point input, got {x.dtype}")


def _sentinel(dtype, kind):
    """The value padding positions read: 0 (conv, avg) or the dtype's lowest (max)."""
    if kind == "zero":
        return 0
    if dtype.kind == "f":
        return -math.inf
    return int(np.iinfo(dtype).min) if dtype.kind in "iu" else False


# ============================================================================================
# window index maps (host, int64)


def _conv_coords(size, k, s, p, d, out):
    """Input coordinate (K, O) of kernel offset k at output position o along one dim, and
    whether it is inside the input."""
    c = np.arange(k, dtype=np.int64)[:, None] * d + np.arange(out, dtype=np.int64)[None, :] * s - p
    return c, (c >= 0) & (c < size)


def _adaptive_coords(size, out):
    """torch's adaptive windows: [floor(o*I/O), ceil((o+1)*I/O)), padded to the largest."""
    o = np.arange(out, dtype=np.int64)
    start = (o * size) // out
    end = -((-(o + 1) * size) // out)
    kmax = int((end - start).max()) if out else 0
    c = start[None, :] + np.arange(kmax, dtype=np.int64)[:, None]
    return c, c < end[None, :]


def _window_map(sizes, coords):
    """Combine per-dim (K_d, O_d) coordinates into the (prod K, prod O) flat index map; invalid
    (padding) positions get -1. Returns (idx, uses_padding)."""
    n = len(sizes)
    flat = np.zeros((1,) * (2 * n), np.int64)
    valid = np.ones((1,) * (2 * n), np.bool_)
    for d, (c, v) in enumerate(coords):
        shp = [1] * (2 * n)
        shp[d], shp[n + d] = c.shape
        flat = flat * sizes[d] + c.reshape(shp)
        valid = valid & v.reshape(shp)
    k = int(np.prod([c.shape[0] for c, _ in coords], dtype=np.int64))
    o = int(np.prod([c.shape[1] for c, _ in coords], dtype=np.int64))
    flat = np.where(valid, flat, -1)
    return np.ascontiguousarray(flat).reshape(k, o), not bool(valid.all())


def _lead_batch(p, B, shapes):
    """Batch rule of the window records: they act on the trailing axis (axes), so a leading
    batch axis needs no change."""
    return p


@structural("im2col", "Im2ColBackward0", linear="all", batch=_lead_batch)
class _Im2Col:
    """x (..., S) -> (..., K, L): x[..., idx[k, l]], ``fill`` where idx < 0 (padding); with
    ``lck`` x (..., C, S) -> (..., L, C, K), the layout whose (L, C * K) rows feed one 2-D GEMM
    in conv. One njit pass writing a C-contiguous block (NumPy's x[..., idx] writes the index
    dims first: a transposed layout that later reshapes and matmuls copy or run slowly on)."""

    def forward(ctx, x, idx, fill, lck=False):
        x = np.ascontiguousarray(x)
        if lck:
            c = x.shape[-2]
            x3 = x.reshape(-1, c, x.shape[-1])
            out = np.empty((x3.shape[0], idx.shape[1], c, idx.shape[0]), x.dtype)
            if out.size:
                cpu_conv.im2col_lck(x3, idx, x.dtype.type(fill), out)
            return out.reshape(x.shape[:-2] + out.shape[1:])
        x2 = x.reshape(-1, x.shape[-1])
        out = np.empty((x2.shape[0],) + idx.shape, x.dtype)
        if out.size:
            cpu_conv.im2col(x2, idx, x.dtype.type(fill), out)
        return out.reshape(x.shape[:-1] + idx.shape)

    def vjp(V, ctx, g):
        return (V.apply(_Col2Im, g, idx=ctx.idx, size=ctx.shapes[0][-1], lck=ctx.lck),)


@structural("col2im", "Col2ImBackward0", linear="all", batch=_lead_batch)
class _Col2Im:
    """g (..., K, L) -> (..., S): each g[..., k, l] added at idx[k, l] (idx < 0: dropped); the
    adjoint of im2col (fold, conv_transpose, the im2col gradient); ``lck``: g (..., L, C, K)
    -> (..., C, S)."""

    def forward(ctx, g, idx, size, lck=False):
        g = np.ascontiguousarray(g)
        if lck:
            g4 = g.reshape((-1,) + g.shape[-3:])
            out = np.zeros((g4.shape[0], g4.shape[2], size), g.dtype)
            if g4.size:
                cpu_conv.col2im_lck(g4, idx, out)
            return out.reshape(g.shape[:-3] + out.shape[1:])
        g3 = g.reshape((-1,) + idx.shape)
        out = np.zeros((g3.shape[0], size), g.dtype)
        if g3.size:
            cpu_conv.col2im(g3, idx, out)
        return out.reshape(g.shape[:-2] + (size,))

    def vjp(V, ctx, gg):
        return (V.apply(_Im2Col, gg, idx=ctx.idx, fill=0, lck=ctx.lck),)


def _records_ok(*ts):
    """The njit window records apply: CPU operands outside vmap (elsewhere the composite
    gather / index_backward path runs: GPU forward, batching rules)."""
    return not _batching.is_batched(*ts) and all_on_cpu(*ts)


def _gather_windows(x, nsp, idx, sentinel_used, fill):
    """x (..., *spatial) -> (..., K, L): the windows of the index map."""
    shape = tuple(x.shape)
    lead, sp = shape[:-nsp], shape[-nsp:]
    s = int(np.prod(sp, dtype=np.int64))
    xf = x.reshape(lead + (s,))
    if _records_ok(x):
        return apply_fn(_Im2Col, (xf,), "Im2ColBackward0", idx=idx, fill=fill, lck=False)
    if sentinel_used:  # composite: one sentinel slot appended, a gather (getitem record)
        xf = F.cat([xf, full(lead + (1,), fill, dtype=x.dtype, device=x.device)], -1)
        idx = np.where(idx < 0, s, idx)
    return xf[(Ellipsis, idx)]


def _scatter_windows(cols, sizes, idx, sentinel_used, grad_fn):
    """cols (..., K, L) scatter-added into (..., *sizes) at the index map (the gather's
    adjoint: fold, col2im)."""
    lead = tuple(cols.shape[:-2])
    s = int(np.prod(sizes, dtype=np.int64))
    if _records_ok(cols):
        out = apply_fn(_Col2Im, (cols,), grad_fn, idx=idx, size=s, lck=False)
        return out.reshape(lead + tuple(sizes))
    if sentinel_used:
        idx = np.where(idx < 0, s, idx)
    out = apply_fn(F._IndexBackward, (cols,), grad_fn, shape=lead + (s + int(sentinel_used),),
                   idx=(Ellipsis, idx))
    if sentinel_used:
        out = out[..., :s]
    return out.reshape(lead + tuple(sizes))


# ============================================================================================
# convolution


def _conv_padding(padding, nsp, k, d, stride, name):
    """(lo, hi) per dim for an int/tuple padding or 'same'/'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nsp, (0,) * nsp
        if padding != "same":
            raise ValueError(f"Invalid padding string '{padding}', should be one of "
                             "{'valid', 'same'}")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        tot = [d[i] * (k[i] - 1) for i in range(nsp)]
        lo = tuple(t // 2 for t in tot)
        return lo, tuple(t - lo_ for t, lo_ in zip(tot, lo))
    p = _ntuple(padding, nsp, "padding")
    if any(v < 0 for v in p):
        raise RuntimeError(f"{name}: negative padding is not supported, got {list(p)}")
    return p, p


def _batchify(input, nsp, name, what="input"):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument '{what}' must be Tensor, not "
                        f"{type(input).__name__}")
    if input.dim() == nsp + 1:
        return input.unsqueeze(0), True
    if input.dim() != nsp + 2:
        raise RuntimeError(f"{name}: Expected {nsp + 1}D (unbatched) or {nsp + 2}D (batched) "
                           f"input to {name}, but got input of size: {list(input.shape)}")
    return input, False


def _conv_checks(name, nsp, input, weight, groups, weight_layout):
    """(batched input, whether it was unbatched, groups as an int) after the checks a
    convolution and a transposed one share (ranks, dtypes, groups > 0); ``weight_layout``
    names the weight's leading axes in the rank error."""
    x, unbatched = _batchify(input, nsp, name)
    if weight.dim() != nsp + 2:
        raise RuntimeError(f"{name}: expected a {nsp + 2}-D weight ({weight_layout}, "
                           f"*kernel), got {list(weight.shape)}")
    if x._meta[1] != weight._meta[1]:
        raise RuntimeError(f"Input type ({x.dtype}) and weight type ({weight.dtype}) should "
                           "be the same")
    _float_dtype(x, name)
    groups = int(groups)
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    return x, unbatched, groups


def _conv(name, nsp, input, weight, bias, stride, padding, dilation, groups):
    x, unbatched, groups = _conv_checks(name, nsp, input, weight, groups,
                                        "out_channels, in_channels/groups")
    n, c = x.shape[0], x.shape[1]
    o, cg = weight.shape[0], weight.shape[1]
    if o == 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least 1 at dimension "
                           f"0, but got weight of size {list(weight.shape)} instead")
    if cg * groups != c:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{list(x.shape)} to have {cg * groups} channels, but "
                           f"got {c} channels instead")
    if o % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {list(weight.shape)} instead")
    if bias is not None and tuple(bias.shape) != (o,):
        raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {o} elements, but got bias of size "
                           f"{list(bias.shape)} instead")
    k = tuple(weight.shape[2:])
    s = _ntuple(stride, nsp, "stride")
    d = _ntuple(dilation, nsp, "dilation")
    if any(v <= 0 for v in s):
        raise RuntimeError("non-positive stride is not supported")
    if any(v <= 0 for v in d):
        raise RuntimeError("dilation should be greater than zero")
    lo, hi = _conv_padding(padding, nsp, k, d, s, name)
    sp = tuple(x.shape[2:])
    out = tuple((sp[i] + lo[i] + hi[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nsp))
    if any(v <= 0 for v in out):
        raise RuntimeError(f"{name}: calculated output size {list(out)} is too small (input "
                           f"{list(x.shape)}, kernel {list(k)}, padding {list(lo)}, dilation "
                           f"{list(d)}, stride {list(s)})")
    kk = int(np.prod(k, dtype=np.int64))
    L = int(np.prod(out, dtype=np.int64))
    one = kk == 1 and all(v == 1 for v in s) and not any(lo) and not any(hi)
    if groups == 1 and not one and _records_ok(x, weight):
        # (N, L, C, K) windows: one 2-D GEMM (N L, C K) @ (C K, O), dX and dW 2-D GEMMs too
        idx, _ = _window_map(sp, [_conv_coords(sp[i], k[i], s[i], lo[i], d[i], out[i])
                                  for i in range(nsp)])
        cols = apply_fn(_Im2Col, (x.reshape(n, c, int(np.prod(sp, dtype=np.int64))),),
                        "Im2ColBackward0", idx=idx, fill=0,
                        lck=True)
        y = F.matmul(cols.reshape(n * L, c * kk), weight.reshape(o, c * kk).t())
        y = y.reshape(n, L, o).permute(0, 2, 1).reshape((n, o) + out)
        if bias is not None:
            y = y + bias.reshape((o,) + (1,) * nsp)
        return y.squeeze(0) if unbatched else y
    if one:
        cols = x.reshape(n, c, 1, L)  # 1x1 convolution: no gather
    else:
        idx, sent = _window_map(sp, [_conv_coords(sp[i], k[i], s[i], lo[i], d[i], out[i])
                                     for i in range(nsp)])
        cols = _gather_windows(x, nsp, idx, sent, 0)
    if groups == 1:
        y = F.matmul(weight.reshape(o, c * kk), cols.reshape(n, c * kk, L))
    else:
        y = F.matmul(weight.reshape(groups, o // groups, cg * kk),
                     cols.reshape(n, groups, cg * kk, L)).reshape(n, o, L)
    y = y.reshape((n, o) + out)
    if bias is not None:
        y = y + bias.reshape((o,) + (1,) * nsp)
    return y.squeeze(0) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) of (N, C, L) or (C, L) input; im2col + matmul."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of (N, C, H, W) or (C, H, W) input; im2col + one matmul per group."""
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution of (N, C, D, H, W) or (C, D, H, W) input."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(name, nsp, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    x, unbatched, groups = _conv_checks(name, nsp, input, weight, groups,
                                        "in_channels, out_channels/groups")
    n, cin = x.shape[0], x.shape[1]
    if weight.shape[0] != cin or cin % groups:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {weight.shape[0]} channels, but got "
                           f"{cin} channels instead")
    og = weight.shape[1]
    o = og * groups
    if bias is not None and tuple(bias.shape) != (o,):
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"bias to be 1-dimensional with {o} elements, but got bias of size "
                           f"{list(bias.shape)} instead")
    if isinstance(padding, str):
        raise RuntimeError(f"{name}: padding must be an int or a tuple of ints (no 'same'/"
                           "'valid' for transposed convolutions)")
    k = tuple(weight.shape[2:])
    s = _ntuple(stride, nsp, "stride")
    d = _ntuple(dilation, nsp, "dilation")
    p = _ntuple(padding, nsp, "padding")
    op = _ntuple(output_padding, nsp, "output_padding")
    if any(v <= 0 for v in s):
        raise RuntimeError("non-positive stride is not supported")
    if any(v <= 0 for v in d):
        raise RuntimeError("dilation should be greater than zero")
    if any(v < 0 for v in p) or any(v < 0 for v in op):
        raise RuntimeError(f"{name}: negative padding is not supported (padding={list(p)}, "
                           f"output_padding={list(op)})")
    for i in range(nsp):
        if op[i] >= s[i] and op[i] >= d[i]:
            raise RuntimeError("output padding must be smaller than either stride or dilation,"
                               f" but got output_padding={list(op)}, stride={list(s)}, "
                               f"dilation={list(d)}")
    sp = tuple(x.shape[2:])
    out = tuple((sp[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
                for i in range(nsp))
    if any(v <= 0 for v in out):
        raise RuntimeError(f"{name}: calculated output size {list(out)} is too small")
    kk = int(np.prod(k, dtype=np.int64))
    L = int(np.prod(sp, dtype=np.int64))
    cg = cin // groups
    xg = x.reshape(n, groups, cg, L)
    wt = weight.reshape(groups, cg, og * kk).transpose(-1, -2)   # (G, og*K, cg)
    cols = F.matmul(wt, xg).reshape(n, o, kk, L)
    idx, sent = _window_map(out, [_conv_coords(out[i], k[i], s[i], p[i], d[i], sp[i])
                                  for i in range(nsp)])
    y = _scatter_windows(cols, out, idx, sent, "Col2ImBackward0")
    if bias is not None:
        y = y + bias.reshape((o,) + (1,) * nsp)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution: the gradient of conv1d w.r.t. its input (matmul + col2im)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution (matmul + col2im)."""
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 3-D convolution (matmul + col2im)."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, H, W) -> (N, C * kH * kW, L), zero padding."""
    x, unbatched = _batchify(input, 2, "unfold")
    k = _ntuple(kernel_size, 2, "kernel_size")
    d = _ntuple(dilation, 2, "dilation")
    p = _ntuple(padding, 2, "padding")
    s = _ntuple(stride, 2, "stride")
    if any(v <= 0 for v in k + d + s) or any(v < 0 for v in p):
        raise RuntimeError(f"unfold: kernel_size {list(k)}, dilation {list(d)} and stride "
                           f"{list(s)} must be positive and padding {list(p)} non-negative")
    sp = tuple(x.shape[2:])
    out = tuple((sp[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))
    if any(v <= 0 for v in out):
        raise RuntimeError(f"Given input with spatial size {list(sp)}, kernel_size={list(k)}, "
                           f"dilation={list(d)}, padding={list(p)}, calculated shape of the "
                           f"array of sliding blocks as {list(out)}, but its components must "
                           "be at least one.")
    idx, sent = _window_map(sp, [_conv_coords(sp[i], k[i], s[i], p[i], d[i], out[i])
                                 for i in range(2)])
    cols = _gather_windows(x, 2, idx, sent, 0)
    n, c = x.shape[0], x.shape[1]
    y = cols.reshape(n, c * idx.shape[0], idx.shape[1])
    return y.squeeze(0) if unbatched else y


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the adjoint of ``unfold``: (N, C * kH * kW, L) blocks summed into
    (N, C, *output_size)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"fold(): argument 'input' must be Tensor, not {type(input).__name__}")
    unbatched = input.dim() == 2
    x = input.unsqueeze(0) if unbatched else input
    if x.dim() != 3:
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input to col2im, but got "
                           f"input of size {list(input.shape)}")
    osz = _ntuple(output_size, 2, "output_size")
    k = _ntuple(kernel_size, 2, "kernel_size")
    d = _ntuple(dilation, 2, "dilation")
    p = _ntuple(padding, 2, "padding")
    s = _ntuple(stride, 2, "stride")
    if any(v <= 0 for v in k + d + s) or any(v < 0 for v in p):
        raise RuntimeError(f"fold: kernel_size {list(k)}, dilation {list(d)} and stride "
                           f"{list(s)} must be positive and padding {list(p)} non-negative")
    kk = k[0] * k[1]
    n, ck, L = x.shape
    if ck % kk:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the "
                           f"product of kernel_size, but got input.size(1)={ck} and "
                           f"kernel_size={list(k)}")
    blocks = tuple((osz[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))
    if blocks[0] * blocks[1] != L or min(blocks) <= 0:
        raise RuntimeError(f"Given output_size={list(osz)}, kernel_size={list(k)}, "
                           f"dilation={list(d)}, padding={list(p)}, stride={list(s)}, expected "
                           f"size of input's dimension 2 to match the calculated number of "
                           f"sliding blocks {blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]},"
                           f" but got input.size(2)={L}.")
    idx, sent = _window_map(osz, [_conv_coords(osz[i], k[i], s[i], p[i], d[i], blocks[i])
                                  for i in range(2)])
    y = _scatter_windows(x.reshape(n, ck // kk, kk, L), osz, idx, sent, "Col2ImBackward0")
    return y.squeeze(0) if unbatched else y


# ============================================================================================
# pooling


def _pool_args(name, nsp, input, kernel_size, stride, padding, dilation, ceil_mode):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not "
                        f"{type(input).__name__}")
    if input.dim() not in (nsp + 1, nsp + 2):
        raise RuntimeError(f"{name}: Expected {nsp + 1}D or {nsp + 2}D input tensor, but got "
                           f"{list(input.shape)}")
    k = _ntuple(kernel_size, nsp, "kernel_size")
    s = k if stride is None or (not isinstance(stride, numbers.Integral) and
                                len(stride) == 0) else _ntuple(stride, nsp, "stride")
    p = _ntuple(padding, nsp, "padding")
    d = _ntuple(dilation, nsp, "dilation")
    if any(v <= 0 for v in k):
        raise RuntimeError(f"{name}: kernel_size must be greater than zero, got {list(k)}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"{name}: stride must be greater than zero, got {list(s)}")
    if any(v <= 0 for v in d):
        raise RuntimeError(f"{name}: dilation must be greater than zero, got {list(d)}")
    if any(p[i] < 0 or p[i] > k[i] // 2 for i in range(nsp)):
        raise RuntimeError(f"{name}: pad should be at most half of effective kernel size, but "
                           f"got pad={list(p)}, kernel_size={list(k)}")
    sp = tuple(input.shape[-nsp:])
    out = []
    for i in range(nsp):
        span = sp[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1
        o = (-(-span // s[i]) if ceil_mode else span // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= sp[i] + p[i]:
            o -= 1
        out.append(o)
    if any(v <= 0 for v in out) or any(v == 0 for v in input.shape[-nsp - 1:]):
        raise RuntimeError(f"{name}: Given input size: {list(input.shape)}. Calculated output "
                           f"size: {out}. Output size is too small")
    return k, s, p, d, sp, tuple(out)


def _max_over(name, input, nsp, sp, out, idx, sent, return_indices):
    w = _gather_windows(input, nsp, idx, sent, _sentinel(input._meta[1], "max"))
    vals, arg = F.max(w, -2)
    lead = tuple(input.shape[:-nsp])
    vals = vals.reshape(lead + out)
    if not return_indices:
        return vals
    a = arg._host
    L = idx.shape[1]
    ind = idx[a, np.arange(L)]
    if sent:  # a window whose maximum is -inf may pick a padding slot: torch reports its
        bad = ind < 0  # first in-input position then
        if bad.any():
            first = np.argmax(idx >= 0, axis=0)
            ind = np.where(bad, idx[first, np.arange(L)], ind)
    return vals, _const(ind.reshape(lead + out).astype(np.int64), input)


def _max_pool(name, nsp, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    k, s, p, d, sp, out = _pool_args(name, nsp, input, kernel_size, stride, padding, dilation,
                                     ceil_mode)
    if input._meta[1].kind not in "fiu":
        raise RuntimeError(f'"{name}" not implemented for \'{input.dtype}\'')
    idx, sent = _window_map(sp, [_conv_coords(sp[i], k[i], s[i], p[i], d[i], out[i])
                                 for i in range(nsp)])
    return _max_over(name, input, nsp, sp, out, idx, sent, return_indices)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over each window (padding counts as -inf); ``return_indices`` gives each maximum's
    flat position in its (H, W) input plane, as torch."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool1d_with_indices(*args, **kwargs):
    return max_pool1d(*args, **{**kwargs, "return_indices": True})


def max_pool2d_with_indices(*args, **kwargs):
    return max_pool2d(*args, **{**kwargs, "return_indices": True})


def max_pool3d_with_indices(*args, **kwargs):
    return max_pool3d(*args, **{**kwargs, "return_indices": True})


def _avg_pool(name, nsp, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    k, s, p, d, sp, out = _pool_args(name, nsp, input, kernel_size, stride, padding, 1,
                                     ceil_mode)
    if input._meta[1].kind != "f":
        raise RuntimeError(f'"{name}" not implemented for \'{input.dtype}\'')
    if divisor_override is not None and int(divisor_override) == 0:
        raise RuntimeError("divisor must be not zero")
    coords = [_conv_coords(sp[i], k[i], s[i], p[i], 1, out[i]) for i in range(nsp)]
    idx, sent = _window_map(sp, coords)
    w = _gather_windows(input, nsp, idx, sent, 0)
    total = w.sum(-2)
    if divisor_override is not None:
        y = total / float(divisor_override)
    else:
        div = np.ones((1,), np.float64)
        for i in range(nsp):
            start = np.arange(out[i]) * s[i] - p[i]
            end = np.minimum(start + k[i], sp[i] + p[i])
            if count_include_pad:
                cnt = end - start
            else:
                cnt = np.minimum(end, sp[i]) - np.maximum(start, 0)
            div = (div[:, None] * cnt[None, :]).reshape(-1)
        y = total / _const(div.astype(input._meta[1]), input)
    return y.reshape(tuple(input.shape[:-nsp]) + out)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over each window: window sum (a gather, zero padding) divided by torch's divisor
    (the window clipped to the padded input, or to the input with count_include_pad=False)."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def _adaptive_args(name, nsp, input, output_size):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not "
                        f"{type(input).__name__}")
    if input.dim() not in (nsp + 1, nsp + 2):
        raise RuntimeError(f"{name}: Expected {nsp + 1}D or {nsp + 2}D tensor, but got "
                           f"{list(input.shape)}")
    sp = tuple(input.shape[-nsp:])
    if isinstance(output_size, numbers.Integral) or output_size is None:
        output_size = (output_size,) * nsp
    output_size = tuple(output_size)
    if len(output_size) == 1 and nsp > 1:
        output_size = output_size * nsp
    if len(output_size) != nsp:
        raise RuntimeError(f"{name}: output_size must be {nsp} ints, got {list(output_size)}")
    out = tuple(sp[i] if v is None else int(v) for i, v in enumerate(output_size))
    if any(v < 0 for v in out):
        raise RuntimeError(f"{name}: output_size must be non-negative, got {list(out)}")
    if any(v == 0 for v in sp) and input.numel() == 0 and any(out):
        raise RuntimeError(f"{name}: Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {list(input.shape)}")
    return sp, out


def _adaptive_avg(name, nsp, input, output_size):
    sp, out = _adaptive_args(name, nsp, input, output_size)
    if input._meta[1].kind != "f":
        raise RuntimeError(f'"{name}" not implemented for \'{input.dtype}\'')
    lead = tuple(input.shape[:-nsp])
    if any(v == 0 for v in out):
        return F.mean(input.reshape(lead + (-1,)), -1, keepdim=True)[..., :0].reshape(lead + out)
    coords = [_adaptive_coords(sp[i], out[i]) for i in range(nsp)]
    idx, sent = _window_map(sp, coords)
    w = _gather_windows(input, nsp, idx, sent, 0)
    div = np.ones((1,), np.float64)
    for c, v in coords:
        div = (div[:, None] * v.sum(0)[None, :]).reshape(-1)
    y = w.sum(-2) / _const(div.astype(input._meta[1]), input)
    return y.reshape(lead + out)


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Mean over torch's adaptive windows [floor(o I / O), ceil((o + 1) I / O))."""
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    return _adaptive_avg("adaptive_avg_pool3d", 3, input, output_size)


def _adaptive_max(name, nsp, input, output_size, return_indices):
    sp, out = _adaptive_args(name, nsp, input, output_size)
    if any(v == 0 for v in sp):
        raise RuntimeError(f"{name}: Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {list(input.shape)}")
    if input._meta[1].kind not in "fiu":
        raise RuntimeError(f'"{name}" not implemented for \'{input.dtype}\'')
    coords = [_adaptive_coords(sp[i], out[i]) for i in range(nsp)]
    idx, sent = _window_map(sp, coords)
    return _max_over(name, input, nsp, sp, out, idx, sent, return_indices)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool1d(input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool2d(input, output_size, True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool3d(input, output_size, True)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over the window of x^p)^(1/p), as torch: avg_pool of x^p times the window size."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def _lp_pool(nsp, input, norm_type, kernel_size, stride, ceil_mode):
    k = _ntuple(kernel_size, nsp, "kernel_size")
    pool = avg_pool1d if nsp == 1 else avg_pool2d
    x = pool(F.pow(input, norm_type), k, stride, 0, ceil_mode)
    kk = int(np.prod(k))
    return F.pow(F.sign(x) * F.relu(F.abs(x)) * kk, 1.0 / norm_type)


def _max_unpool(name, nsp, input, indices, kernel_size, stride, padding, output_size):
    k = _ntuple(kernel_size, nsp, "kernel_size")
    s = k if stride is None else _ntuple(stride, nsp, "stride")
    p = _ntuple(padding, nsp, "padding")
    sp = tuple(input.shape[-nsp:])
    default = tuple((sp[i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(nsp))
    if output_size is None:
        out = default
    else:
        out = tuple(int(v) for v in output_size)[-nsp:]
        if len(out) != nsp:
            raise ValueError(f"output_size should be a sequence containing {nsp} or {nsp + 2}"
                             f" elements, but it has a length of '{len(output_size)}'")
        for i in range(nsp):  # torch: within a stride of the default size, exclusive
            if not default[i] - s[i] < out[i] < default[i] + s[i]:
                raise ValueError(f'invalid output_size "{tuple(out)}" (dim {i} must be between '
                                 f"{default[i] - s[i]} and {default[i] + s[i]})")
    if tuple(indices.shape) != tuple(input.shape):
        raise RuntimeError(f"{name}: Expected shape of indices to be same as that of the input"
                           f" tensor ({list(input.shape)}) but got indices tensor with shape: "
                           f"{list(indices.shape)}")
    ind = indices._host
    if ind.dtype != np.int64:
        raise RuntimeError(f"{name}: expected indices to have dtype Long, got {indices.dtype}")
    total = int(np.prod(out, dtype=np.int64))
    if ind.size and (ind.min() < 0 or ind.max() >= total):
        bad = ind[(ind < 0) | (ind >= total)][0]
        raise RuntimeError(f"Found an invalid max index: {int(bad)} (output volumes are of size "
                           f"{'x'.join(str(v) for v in out)})")
    lead = tuple(input.shape[:-nsp])
    m = int(np.prod(lead, dtype=np.int64))
    L = int(np.prod(sp, dtype=np.int64))
    rows = np.broadcast_to(np.arange(m, dtype=np.int64)[:, None], (m, L))
    flat = ind.reshape(m, L)
    x = input.reshape(m, L)
    # torch writes each value at its index (a repeated index keeps the last write) and its
    # gradient is a gather at every index: scatter the last writers, plus a zero-valued
    # x - x.detach() from the overwritten ones so that they get their gradient too
    lin = (rows * total + flat).reshape(-1)
    last = np.zeros(lin.size, np.bool_)
    if lin.size:
        _, first_rev = np.unique(lin[::-1], return_index=True)
        last[lin.size - 1 - first_rev] = True
    last = last.reshape(m, L)
    if last.all():
        y = apply_fn(F._IndexBackward, (x,), "MaxUnpoolBackward0", shape=(m, total),
                     idx=(np.ascontiguousarray(rows), np.ascontiguousarray(flat)))
    else:
        r, c = np.nonzero(last)
        y = apply_fn(F._IndexBackward, (x[r, c],), "MaxUnpoolBackward0", shape=(m, total),
                     idx=(r, flat[r, c]))
        r2, c2 = np.nonzero(~last)
        xd = x[r2, c2]
        y = y + apply_fn(F._IndexBackward, (xd - xd.detach(),), "MaxUnpoolBackward0",
                         shape=(m, total), idx=(r2, flat[r2, c2]))
    return y.reshape(lead + out)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Each value written at its index (from max_pool2d(return_indices=True)) in a zero plane."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                       output_size)


# ============================================================================================
# resampling


def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r): a reshape, a permute and a reshape."""
    r = int(upscale_factor)
    if input.dim() < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got "
                           f"input with {input.dim()} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={c}"
                           f" is not divisible by {r * r}")
    lead = tuple(lead)
    nl = len(lead)
    x = input.reshape(lead + (c // (r * r), r, r, h, w))
    perm = tuple(range(nl)) + tuple(nl + i for i in (0, 3, 1, 4, 2))
    return x.permute(perm).reshape(lead + (c // (r * r), h * r, w * r))


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of pixel_shuffle."""
    r = int(downscale_factor)
    if input.dim() < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but "
                           f"got input with {input.dim()} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by "
                           f"downscale_factor, but input.size(-2)={h}, input.size(-1)={w} and "
                           f"downscale_factor={r}")
    lead = tuple(lead)
    nl = len(lead)
    x = input.reshape(lead + (c, h // r, r, w // r, r))
    perm = tuple(range(nl)) + tuple(nl + i for i in (0, 2, 4, 1, 3))
    return x.permute(perm).reshape(lead + (c * r * r, h // r, w // r))


def channel_shuffle(input, groups):
    """(N, C, *) with channels regrouped: reshape (N, g, C/g, *), swap g and C/g, reshape."""
    g = int(groups)
    if input.dim() < 3:
        raise RuntimeError(f"channel_shuffle expects input to have at least 3 dimensions, but "
                           f"got input with {input.dim()} dimension(s)")
    if g <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of "
                           f"groups:{g}")
    n, c = input.shape[0], input.shape[1]
    if c % g:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels "
                           f"and {g} groups.")
    rest = tuple(input.shape[2:])
    return input.reshape((n, g, c // g) + rest).transpose(1, 2).reshape((n, c) + rest)


def _take(x, axis, idx):
    return x[(slice(None),) * axis + (idx,)]


def _weights(w, x, axis):
    """Per-position weights (O,) shaped to broadcast along ``axis`` of x."""
    shp = [1] * x.dim()
    shp[axis] = w.shape[0]
    return _const(w.astype(x._meta[1]).reshape(shp), x)


def _opmath(dt):
    return np.float64 if dt == np.float64 else np.float32


def _src_scale(isz, osz, align_corners, scale, opm):
    if align_corners:
        return opm((isz - 1) / (osz - 1)) if osz > 1 else opm(0)
    if scale is not None and scale > 0:
        return opm(1.0 / scale)
    return opm(isz) / opm(osz)


def _resample_dim(x, axis, isz, osz, mode, align_corners, scale):
    dt = x._meta[1]
    opm = _opmath(dt)
    o = np.arange(osz)
    if mode in ("nearest", "nearest-exact"):
        sc = np.float32(1.0 / scale) if scale is not None and scale > 0 else \
            np.float32(isz) / np.float32(osz)
        if mode == "nearest":
            src = np.floor(o.astype(np.float32) * sc)
        else:
            src = np.floor((o.astype(np.float32) + np.float32(0.5)) * sc)
        idx = np.minimum(src.astype(np.int64), isz - 1)
        return _take(x, axis, idx)
    sc = _src_scale(isz, osz, align_corners, scale, opm)
    of = o.astype(opm)
    if align_corners:
        src = sc * of
    else:
        src = sc * (of + opm(0.5)) - opm(0.5)
    if mode == "linear":
        src = np.maximum(src, opm(0))
        i0 = np.floor(src).astype(np.int64)
        i0 = np.minimum(i0, isz - 1)
        i1 = np.minimum(i0 + 1, isz - 1)
        lam1 = (src - i0).astype(opm)
        lam0 = opm(1) - lam1
        return _take(x, axis, i0) * _weights(lam0, x, axis) + \
            _take(x, axis, i1) * _weights(lam1, x, axis)
    # cubic (A = -0.75), taps i-1..i+2 clamped into the input
    i = np.floor(src).astype(np.int64)
    t = (src - i).astype(opm)
    A = opm(-0.75)

    def c1(v):
        return ((A + 2) * v - (A + 3)) * v * v + 1

    def c2(v):
        return ((A * v - 5 * A) * v + 8 * A) * v - 4 * A
    ws = [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]
    out = None
    for j in range(4):
        term = _take(x, axis, np.clip(i - 1 + j, 0, isz - 1)) * _weights(ws[j], x, axis)
        out = term if out is None else out + term
    return out


_INTERP_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """torch.nn.functional.interpolate for 'nearest', 'nearest-exact', 'linear', 'bilinear',
    'bicubic', 'trilinear' and 'area' (adaptive average pooling). Separable: each spatial dim
    is resampled in turn (last first, as torch's kernels weigh it) by gathers along that dim and
    a weighted sum with weights from torch's source-index formula."""
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate(): argument 'input' must be Tensor, not "
                        f"{type(input).__name__}")
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported")
    nsp = input.dim() - 2
    if nsp < 1 or nsp > 3:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {input.dim()}D) for the modes: nearest | linear | "
                                  f"bilinear | bicubic | trilinear | area | nearest-exact "
                                  f"(got {mode})")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif mode in _INTERP_DIMS:
        if align_corners is None:
            align_corners = False
        if _INTERP_DIMS[mode] != nsp:
            raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs "
                                      f"{_INTERP_DIMS[mode] + 2}D input")
    else:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {input.dim()}D) for the modes: nearest | linear | "
                                  f"bilinear | bicubic | trilinear | area | nearest-exact "
                                  f"(got {mode})")
    sp = tuple(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != nsp:
                raise ValueError(f"Input and output must have the same number of spatial "
                                 f"dimensions, but got input with spatial dimensions of "
                                 f"{list(sp)} and output size of {list(size)}. Please provide "
                                 f"input tensor in (N, C, d1, d2, ...,dK) format and output "
                                 f"size in (o1, o2, ...,oK) format.")
            out = tuple(int(v) for v in size)
        else:
            out = (int(size),) * nsp
        scales = (None,) * nsp
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != nsp:
                raise ValueError(f"Input and scale_factor must have the same number of spatial "
                                 f"dimensions, but got input with spatial dimensions of "
                                 f"{list(sp)} and scale_factor of shape {list(scale_factor)}.")
            sf = tuple(float(v) for v in scale_factor)
        else:
            sf = (float(scale_factor),) * nsp
        out = tuple(int(math.floor(float(sp[i]) * sf[i])) for i in range(nsp))
        scales = (None,) * nsp if recompute_scale_factor else sf
    else:
        raise ValueError("either size or scale_factor should be defined")
    if any(v <= 0 for v in out):
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input "
                           f"({', '.join(map(str, sp))}) and output "
                           f"({', '.join(map(str, out))})")
    if mode == "area":
        return _adaptive_avg("adaptive_avg_pool%dd" % nsp, nsp, input, out)
    if input._meta[1].kind != "f" and mode != "nearest" and mode != "nearest-exact":
        raise RuntimeError(f'"upsample_{mode}" not implemented for \'{input.dtype}\'')
    x = input
    for i in reversed(range(nsp)):
        x = _resample_dim(x, 2 + i, sp[i], out[i], "linear" if mode in _INTERP_DIMS and
                          mode != "bicubic" else ("cubic" if mode == "bicubic" else mode),
                          align_corners, scales[i])
    return x


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ============================================================================================
# activations (composed; gradients are torch's away from the kinks)


def _inplace(x, out, inplace):
    return x.copy_(out) if inplace else out


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clamp to [min_val, max_val]; the gradient is 1 strictly inside, 0 elsewhere (torch's)."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    out = F.where(input <= min_val, min_val, F.where(input >= max_val, max_val, input))
    if input._meta[1].kind != "f":
        out = out.to(input.dtype)
    return _inplace(input, out, inplace)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, True)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6 (gradient 1/6 on (-3, 3))."""
    return _inplace(input, F.where(input <= -3.0, 0.0, F.where(input >= 3.0, 1.0,
                                                                input / 6.0 + 0.5)), inplace)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6."""
    return _inplace(input, F.where(input <= -3.0, 0.0, F.where(input >= 3.0, input,
                                                                input * (input + 3.0) / 6.0)),
                    inplace)


def _softplus(x):
    """log(1 + exp(x)), stable: max(x, 0) + log1p(exp(-|x|))."""
    return F.relu(x) + F.log1p(F.exp(-F.abs(x)))


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    return _inplace(input, input * F.tanh(_softplus(input)), inplace)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    """scale * (x if x > 0 else alpha (exp(x) - 1)) with torch's constants."""
    neg = (_SELU_SCALE * _SELU_ALPHA) * F.expm1(F.clamp(input, max=0.0))
    return _inplace(input, F.where(input > 0, _SELU_SCALE * input, neg), inplace)


def celu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha (exp(x / alpha) - 1)."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    neg = alpha * F.expm1(F.clamp(input, max=0.0) / alpha)
    return _inplace(input, F.where(input > 0, input, neg), inplace)


def selu_(input):
    return selu(input, True)


def celu_(input, alpha=1.0):
    return celu(input, alpha, True)


def prelu(input, weight):
    """x if x > 0 else weight * x, weight shared (1 element) or per channel (dim 1)."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"prelu(): argument 'weight' must be Tensor, not "
                        f"{type(weight).__name__}")
    nw = weight.numel()
    if weight.dim() > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                           f"ndim = {weight.dim()}")
    if nw != 1:
        c = input.shape[1] if input.dim() >= 2 else (input.shape[0] if input.dim() == 1 else 1)
        if input.dim() == 0 or nw != c:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {nw} and channel size = {c}.")
        if input.dim() >= 2:
            w = weight.reshape((nw,) + (1,) * (input.dim() - 2))
        else:
            w = weight
    else:
        w = weight.reshape(())
    return F.where(input > 0, input, w * input)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Leaky ReLU with slope (lower + upper) / 2 in eval; in training each negative element
    gets its own slope ~ U(lower, upper), drawn from jitgrad's generator."""
    if lower > upper:
        raise RuntimeError(f"rrelu: Lower bound should be less than or equal to the upper bound "
                           f"(got lower={lower}, upper={upper})")
    if not training:
        slope = (lower + upper) / 2.0
        return _inplace(input, F.where(input >= 0, input, input * slope), inplace)
    u = default_generator._draw("random", tuple(input.shape))
    a = _const((lower + (upper - lower) * u).astype(input._meta[1]), input)
    return _inplace(input, F.where(input >= 0, input, input * a), inplace)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, True)


def logsigmoid(input):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), stable for large |x|."""
    return -_softplus(-input)


def softsign(input):
    return input / (1 + F.abs(input))


def softshrink(input, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, 0 between."""
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return F.where(input > lambd, input - lambd, F.where(input < -lambd, input + lambd, 0.0))


def hardshrink(input, lambd=0.5):
    """x where |x| > lambd, else 0."""
    return F.where((input > lambd) | (input < -lambd), input, 0.0)


def tanhshrink(input):
    return input - F.tanh(input)


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, else value."""
    out = F.where(input > threshold, input, value)
    if out._meta[1] != input._meta[1]:
        out = out.to(input.dtype)
    return _inplace(input, out, inplace)


def threshold_(input, threshold, value):
    return globals()["threshold"](input, threshold, value, True)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-x)."""
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        dim = 0 if input.dim() in (0, 1, 3) else 1
    return F.softmax(-input, dim)


def glu(input, dim=-1):
    """a * sigmoid(b) for the two halves (a, b) of ``dim``."""
    if input.dim() == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    dim = F._norm_dim(dim, input.dim())
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension "
                           f"{dim % input.dim()} is size {n}")
    a, b = F.chunk(input, 2, dim)
    return a * F.sigmoid(b)


def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """softmax((logits + g) / tau) with Gumbel(0, 1) noise g = -log(Exp(1)) from jitgrad's
    generator; ``hard`` returns the one-hot argmax with the soft sample's gradient."""
    e = default_generator._draw("standard_exponential", tuple(logits.shape))
    g = _const((-np.log(e)).astype(logits._meta[1]), logits)
    y = F.softmax((logits + g) / tau, dim)
    if not hard:
        return y
    idx = F.argmax(y, dim, keepdim=True)
    ax = dim % y.dim()
    onehot = np.zeros(tuple(y.shape), y._meta[1])
    np.put_along_axis(onehot, idx._host, 1, axis=ax)
    return _const(onehot, y) - y.detach() + y


# ============================================================================================
# distances and losses


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) over ``dim`` (broadcast first),
    computed as torch does: each operand divided by its clamped norm."""
    shape = F.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    a, b = F.broadcast_to(x1, shape), F.broadcast_to(x2, shape)
    na = F.clamp(F.sqrt((a * a).sum(dim, keepdim=True)), min=eps)
    nb = F.clamp(F.sqrt((b * b).sum(dim, keepdim=True)), min=eps)
    return ((a / na) * (b / nb)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    nd = max(x1.dim(), x2.dim())
    d = x1 - x2 + eps
    if nd == 0:
        return F.abs(d) if p != 0 else (d != 0).to(d.dtype)
    return _linalg.vector_norm(d, p, -1, keepdim)


def pdist(input, p=2):
    """The p-norm distance of every row pair i < j of an (N, M) input, row-major order."""
    if input.dim() != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.dim()}D")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    n = input.shape[0]
    i, j = np.triu_indices(n, 1)
    if i.size == 0:
        return input.reshape(-1)[:0]
    return _linalg.vector_norm(input[i] - input[j], p, -1)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with d = pairwise_distance."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    dims = (anchor.dim(), positive.dim(), negative.dim())
    if not (dims[0] == dims[1] == dims[2]):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the"
                           f" same number of dimensions, but got: anchor {dims[0]}D, positive "
                           f"{dims[1]}D, and negative {dims[2]}D inputs")
    dap = pairwise_distance(anchor, positive, p, eps)
    dan = pairwise_distance(anchor, negative, p, eps)
    if swap:
        dan = F.minimum(dan, pairwise_distance(positive, negative, p, eps))
    return _reduce(F.clamp(margin + dap - dan, min=0.0), reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"triplet_margin_with_distance_loss: expected margin to be greater "
                         f"than 0, got {margin} instead")
    dist = distance_function if distance_function is not None else pairwise_distance
    dap = dist(anchor, positive)
    dan = dist(anchor, negative)
    if swap:
        dan = F.minimum(dan, dist(positive, negative))
    return _reduce(F.clamp(margin + dap - dan, min=0.0), reduction)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                        reduction="mean"):
    """max(0, -y (x1 - x2) + margin)."""
    reduction = _legacy(size_average, reduce, reduction)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension"
                           f" but got sizes: input1: {list(input1.shape)}, input2: "
                           f"{list(input2.shape)}, target: {list(target.shape)} ")
    return _reduce(F.clamp(-target * (input1 - input2) + margin, min=0.0), reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """x where y == 1, max(0, margin - x) where y == -1 (summed where y is neither, as torch)."""
    reduction = _legacy(size_average, reduce, reduction)
    mc = F.clamp(margin - input, min=0.0)
    out = F.where(target != 1, mc, 0.0) + F.where(target != -1, input, 0.0)
    return _reduce(out, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-y x))."""
    reduction = _legacy(size_average, reduce, reduction)
    return _reduce(F.log1p(F.exp(-input * target)), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """-(y log sigmoid(x) + (1 - y) log sigmoid(-x)), averaged over the class (last) dim."""
    reduction = _legacy(size_average, reduce, reduction)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    cdim = input.dim() - 1
    loss = loss.sum(cdim) / input.shape[cdim] if input.dim() else loss
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """target * (log(target) - input) (xlogy, so 0 where target == 0); 'batchmean' divides the
    sum by the batch size."""
    reduction = _legacy(size_average, reduce, reduction)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if log_target:
        loss = F.exp(target) * (target - input)
    else:
        loss = F.xlogy(target, target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.dim() else loss.sum()
    return _reduce(loss, reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """exp(x) - y x (log_input) or x - y log(x + eps); ``full`` adds Stirling's term where
    y > 1."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    if log_input:
        loss = F.exp(input) - target * input
    else:
        loss = input - target * F.log(input + eps)
    if full:
        t = target if isinstance(target, Tensor) else F._tt(target)
        st = t * F.log(t) - t + 0.5 * F.log(2 * math.pi * t)
        loss = loss + F.where(t > 1, st, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """0.5 (log(max(var, eps)) + (x - y)^2 / max(var, eps)) (+ 0.5 log(2 pi) with ``full``). Like
    torch the clamp is invisible to autograd (the gradient reaches var as if unclamped)."""
    _check_reduction(reduction)
    if not isinstance(var, Tensor):
        var = _full_scalar(input, float(var))
    vs, isz = tuple(var.shape), tuple(input.shape)
    if vs != isz:
        if isz[:-1] == vs:
            var = var.unsqueeze(-1)
        elif isz[:-1] == vs[:-1] and vs[-1:] == (1,):
            pass
        elif var.numel() == 1 and var.dim() <= input.dim():
            pass
        else:
            raise ValueError("var is of incorrect size")
    if (var._host < 0).any():
        raise ValueError("var has negative entry/entries")
    v = var + (F.clamp(var.detach(), min=eps) - var.detach())
    loss = 0.5 * (F.log(v) + (input - target) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def _full_scalar(x, value):
    return full((), value, dtype=x.dtype, device=x.device)


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                          reduction="mean"):
    """1 - cos(x1, x2) where y == 1, max(0, cos - margin) where y == -1 (cos with torch's
    EPSILON = 1e-12 added to each squared norm)."""
    reduction = _legacy(size_average, reduce, reduction)
    if input1.dim() != input2.dim() or input1.dim() not in (1, 2):
        raise RuntimeError(f"cosine_embedding_loss: 1D target tensor expects 2D input tensors, "
                           f"but found inputs with sizes {list(input1.shape)} and "
                           f"{list(input2.shape)}.")
    d = input1.dim() - 1
    prod = (input1 * input2).sum(d)
    m1 = (input1 * input1).sum(d) + 1e-12
    m2 = (input2 * input2).sum(d) + 1e-12
    cos = prod / F.sqrt(m1 * m2)
    out = F.where(target == 1, 1 - cos, 0.0) + F.where(target == -1,
                                                        F.clamp(cos - margin, min=0.0), 0.0)
    return _reduce(out, reduction)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """sum over classes i != y of max(0, margin - x[y] + x[i])^p (times weight[y]) / C."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    x = input.unsqueeze(0) if input.dim() <= 1 else input
    if x.dim() == 1:
        x = x.reshape(1, -1)
    if x.dim() != 2:
        raise RuntimeError(f"multi_margin_loss: Expected non-empty vector or matrix with "
                           f"optional 0-dim batch size, but got: {list(input.shape)}")
    n, c = x.shape
    t = np.asarray(target._host if isinstance(target, Tensor) else target).reshape(-1)
    if t.size != n:
        raise RuntimeError(f"inconsistent target size, expected {n} but got "
                           f"{list(target.shape)}")
    if t.size and (t.min() < 0 or t.max() >= c):
        raise IndexError("target out of range")
    xy = x[np.arange(n), t].unsqueeze(1)
    z = F.clamp(margin - xy + x, min=0.0)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * weight[t].unsqueeze(1)
    mask = np.ones((n, c), x._meta[1])
    mask[np.arange(n), t] = 0
    loss = (z * _const(mask, x)).sum(1) / c
    if input.dim() <= 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """For each sample: targets are the indices before the first -1; the loss sums
    max(0, 1 - (x[j] - x[i])) over targets j and non-targets i, divided by C."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    x = input.reshape(1, -1) if input.dim() <= 1 else input
    if x.dim() != 2:
        raise RuntimeError(f"multilabel_margin_loss: Expected non-empty vector or matrix with "
                           f"optional 0-dim batch size, but got: {list(input.shape)}")
    n, c = x.shape
    t = np.asarray(target._host).reshape(n, c) if c else np.zeros((n, 0), np.int64)
    if t.size and (t.max() >= c or t.min() < -1):
        raise IndexError("multilabel_margin_loss: target out of range")
    is_t = np.zeros((n, c), np.bool_)
    pair = np.zeros((n, c, c), x._meta[1])
    for r in range(n):
        js = []
        for v in t[r]:
            if v < 0:
                break
            js.append(int(v))
        is_t[r, js] = True
        for j in js:  # (a repeated target counts twice, as in torch's loop)
            pair[r, j, :] += 1
        pair[r, :, is_t[r]] = 0
    z = F.clamp(1 - (x.unsqueeze(2) - x.unsqueeze(1)), min=0.0)
    loss = (z * _const(pair, x)).sum((1, 2)) / c
    if input.dim() <= 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


# ============================================================================================
# normalisation


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha / size * sum of x^2 over ``size`` neighbouring channels)^beta (window
    [c - size//2, c + (size-1)//2], zero outside), as torch."""
    if input.dim() < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.dim()} "
                         f"dimensions)")
    if input.numel() == 0:
        return input
    c = input.shape[1]
    sq = input * input
    lo, hi = size // 2, (size - 1) // 2
    shp = tuple(input.shape)
    parts = []
    if lo:
        parts.append(full((shp[0], lo) + shp[2:], 0.0, dtype=input.dtype, device=input.device))
    parts.append(sq)
    if hi:
        parts.append(full((shp[0], hi) + shp[2:], 0.0, dtype=input.dtype, device=input.device))
    padded = F.cat(parts, 1) if len(parts) > 1 else sq
    acc = None
    for j in range(size):
        term = padded[:, j:j + c]
        acc = term if acc is None else acc + term
    div = F.pow(acc * (alpha / size) + k, beta)
    return input / div


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each (sample, group of C / G channels) over its channels and spatial dims
    (biased variance), then scale and shift per channel."""
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.dim()}")
    n, c = input.shape[0], input.shape[1]
    g = int(num_groups)
    if g <= 0 or c % g:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(input.shape)} and "
                           f"num_groups={g}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of "
                               f"channels in input, but got {name} of shape {list(p.shape)} "
                               f"and input of shape {list(input.shape)}")
    x = input.reshape(n, g, (c // g) * int(np.prod(input.shape[2:], dtype=np.int64)))
    mu = x.mean(-1, keepdim=True)
    var = F.var(x, -1, keepdim=True, correction=0)
    y = ((x - mu) * F.rsqrt(var + eps)).reshape(tuple(input.shape))
    cshape = (c,) + (1,) * (input.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(cshape)
    if bias is not None:
        y = y + bias.reshape(cshape)
    return y


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalise each (sample, channel) over its spatial dims. With ``use_input_stats`` the
    running stats (if given) are updated in place with the batch average of the per-instance
    statistics (unbiased variance); otherwise the running stats normalise."""
    if input.dim() < 3:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *) with at least "
                         f"one spatial dim, got {list(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    cshape = (c,) + (1,) * (input.dim() - 2)
    dims = tuple(range(2, input.dim()))
    if use_input_stats:
        m = int(np.prod(input.shape[2:], dtype=np.int64))
        if m <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input "
                             f"size {list(input.shape)}")
        mu = input.mean(dims, keepdim=True)
        var = F.var(input, dims, keepdim=True, correction=0)
        with no_grad():
            if running_mean is not None:
                bm = mu.detach().reshape(n, c).mean(0)
                running_mean.mul_(1 - momentum).add_(bm.to(running_mean.dtype) * momentum)
            if running_var is not None:
                bv = var.detach().reshape(n, c).mean(0) * (m / (m - 1))
                running_var.mul_(1 - momentum).add_(bv.to(running_var.dtype) * momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when "
                             "use_input_stats is false")
        mu = running_mean.reshape(cshape)
        var = running_var.reshape(cshape)
    return _normalize_affine(input, mu, var, eps, weight, bias, cshape)


def _normalize_affine(input, mean, var, eps, weight, bias, cshape):
    """(input - mean) / sqrt(var + eps), then the per-channel affine (weight, bias reshaped to
    ``cshape``): the tail of batch_norm and instance_norm."""
    y = (input - mean) * F.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.reshape(cshape)
    if bias is not None:
        y = y + bias.reshape(cshape)
    return y


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2 over the trailing normalized_shape) + eps) * weight; eps defaults to
    the dtype's machine epsilon, as torch."""
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else \
        tuple(int(v) for v in normalized_shape)
    shape = tuple(input.shape)
    if len(ns) > len(shape) or shape[len(shape) - len(ns):] != ns:
        raise RuntimeError(f"Given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in ns)}], but got input of size"
                           f"{list(shape)}")
    if eps is None:
        eps = float(np.finfo(input._meta[1]).eps)
    dims = tuple(range(len(shape) - len(ns), len(shape)))
    y = input * F.rsqrt((input * input).mean(dims, keepdim=True) + eps) if dims else \
        input * F.rsqrt(input * input + eps)
    if weight is not None:
        y = y * weight
    return y


# ============================================================================================
# dropout variants (masks from jitgrad's generator)


def _check_p(p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _bernoulli_keep(shape, p, generator=None):
    return _gen(generator)._draw("random", shape) < 1.0 - p


def _feature_dropout(input, p, training, inplace, alpha, batched_dims):
    _check_p(p)
    if not training or p == 0.0:
        return input
    shape, dt = input._meta
    if p == 1.0:
        return _inplace(input, input * 0.0, inplace)
    nshape = shape[:batched_dims] + (1,) * (len(shape) - batched_dims) if batched_dims else shape
    keep = _bernoulli_keep(nshape, p)
    if alpha:
        a_ = 1.7580993408473766
        a = 1.0 / math.sqrt((a_ * a_ * p + 1) * (1 - p))
        mul = np.where(keep, a, 0.0).astype(dt)
        add = ((keep.astype(np.float64) - 1) * (a_ * a) + a_ * a * p).astype(dt)
        out = input * _const(mul, input) + _const(add, input)
    else:
        out = input * _const(np.where(keep, 1.0 / (1.0 - p), 0.0).astype(dt), input)
    return _inplace(input, out, inplace)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """SELU-preserving dropout: dropped elements become -alpha' and the result is rescaled so
    mean and variance are kept (torch's a, b)."""
    return _feature_dropout(input, p, training, inplace, True, 0)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """alpha_dropout with one mask value per (sample, channel)."""
    return _feature_dropout(input, p, training, inplace, True, min(2, input.dim()))


def _dropout_nd(name, nd, input, p, training, inplace):
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}: Expected {nd + 1}D or {nd + 2}D input, but received a "
                           f"{input.dim()}D input")
    batched = 2 if input.dim() == nd + 2 else 1
    return _feature_dropout(input, p, training, inplace, False, batched)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) input with probability p, scale by 1/(1-p)."""
    return _dropout_nd("dropout1d", 1, input, p, training, inplace)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, H, W) input (a 3-D input is taken as (N, C, L), as torch)."""
    _check_p(p)
    if input.dim() == 3:
        return _feature_dropout(input, p, training, inplace, False, 2)
    return _dropout_nd("dropout2d", 2, input, p, training, inplace)


def dropout3d(input, p=0.5, training=True, inplace=False):
    return _dropout_nd("dropout3d", 3, input, p, training, inplace)


# ============================================================================================
# embedding_bag, attention


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False,
                  mode="mean", sparse=False, per_sample_weights=None, include_last_offset=False,
                  padding_idx=None):
    """Sums / means / maxima of bags of embedding rows: a 2-D input is one bag per row; a 1-D
    input is cut into bags at ``offsets``. Rows gathered, then scatter-added per bag (sum,
    mean) or gathered into a -inf-padded (bags, longest) block (max); an empty bag gives 0."""
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding_bag: scale_grad_by_freq / sparse are not supported")
    if max_norm is not None:
        raise NotImplementedError("embedding_bag(max_norm=...) is not supported")
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    idx = np.asarray(input._host if isinstance(input, Tensor) else input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError("embedding_bag: expected input of integer dtype (Long, Int)")
    if weight.dim() != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension "
                         f"{weight.dim()}")
    nw, dim = weight.shape
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. "
                                  f"per_sample_weights is only supported for mode='sum' (got "
                                  f"mode='{mode}'). Please open a feature request on GitHub.")
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated "
                             "is a mini-batch of fixed length sequences.")
        b, ln = idx.shape
        off = np.arange(0, b * ln, ln, dtype=np.int64)
        flat = idx.reshape(-1)
        psw = None if per_sample_weights is None else per_sample_weights.reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        off = np.asarray(offsets._host if isinstance(offsets, Tensor) else offsets,
                         np.int64).reshape(-1)
        flat = idx
        psw = per_sample_weights
        if include_last_offset:
            if off.size == 0:
                raise RuntimeError("embedding_bag: include_last_offset needs at least one "
                                   "offset")
            flat = flat[:off[-1]] if off[-1] <= flat.size else flat
            off = off[:-1]
            if psw is not None:
                psw = psw[:flat.size]
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{idx.ndim}")
    if off.size and (off[0] != 0 or (np.diff(off) < 0).any() or off[-1] > flat.size):
        raise RuntimeError("embedding_bag: offsets must start at 0, be non-decreasing and at "
                           f"most the number of indices ({flat.size}), got {off.tolist()}")
    if flat.size and (flat.min() < 0 or flat.max() >= nw):
        raise IndexError("index out of range in self")
    nb = off.size
    bag = np.zeros(flat.size, np.int64)
    if nb:
        bag = np.searchsorted(off, np.arange(flat.size), side="right") - 1
    keep = np.ones(flat.size, np.bool_)
    if padding_idx is not None:
        pi = padding_idx + nw if padding_idx < 0 else padding_idx
        keep = flat != pi
    counts = np.bincount(bag[keep], minlength=nb).astype(np.int64)
    sel = np.nonzero(keep)[0]
    fk, bk = flat[sel].astype(np.int64), bag[sel]
    rows = weight[fk]
    if mode in ("sum", "mean"):
        if psw is not None:
            rows = rows * psw[sel].unsqueeze(1)
        out = apply_fn(F._IndexBackward, (rows,), "EmbeddingBagBackward0", shape=(nb, dim),
                       idx=(bk,))
        if mode == "mean":
            out = out / _const(np.maximum(counts, 1).astype(weight._meta[1])[:, None], weight)
        return out
    longest = int(counts.max()) if nb else 0
    if longest == 0:
        return weight[np.zeros(0, np.int64)].reshape(0, dim)[:0] if nb == 0 else \
            full((nb, dim), 0.0, dtype=weight.dtype, device=weight.device)
    pos = np.arange(sel.size) - np.concatenate([[0], np.cumsum(counts)[:-1]])[bk]
    slot = np.full((nb, longest), sel.size, np.int64)
    slot[bk, pos] = np.arange(sel.size)
    ext = F.cat([rows, full((1, dim), -math.inf, dtype=weight.dtype, device=weight.device)], 0)
    vals = F.max(ext[slot], 1).values  # (gradient to the argmax row, as torch)
    return F.where(_const((counts > 0)[:, None], weight), vals, 0.0)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """softmax(q k^T * scale + mask) v, the reference math of torch's SDPA: a boolean mask keeps
    True positions, a float mask is added; ``is_causal`` keeps j <= i; ``enable_gqa`` repeats
    key/value heads to the query's."""
    L, S = query.shape[-2], key.shape[-2]
    sc = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if enable_gqa:
        hq, hk = query.shape[-3], key.shape[-3]
        if hq % hk:
            raise RuntimeError("enable_gqa: the number of query heads must be a multiple of "
                               "the number of key/value heads")
        rep = hq // hk
        if rep > 1:
            key = _repeat_heads(key, rep)
            value = _repeat_heads(value, rep)
    scores = F.matmul(query, key.transpose(-2, -1)) * sc
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                               "set when is_causal=True")
        keep = np.tril(np.ones((L, S), np.bool_))
        scores = F.where(_const(keep, scores), scores, -math.inf)
    elif attn_mask is not None:
        if attn_mask._meta[1] == np.bool_:
            scores = F.where(attn_mask, scores, -math.inf)
        else:
            scores = scores + attn_mask
    attn = F.softmax(scores, -1)
    if dropout_p > 0.0:
        keep = _bernoulli_keep(tuple(attn.shape), dropout_p)
        attn = attn * _const(np.where(keep, 1.0 / (1.0 - dropout_p), 0.0)
                             .astype(attn._meta[1]), attn)
    return F.matmul(attn, value)


def _repeat_heads(t, rep):
    """(..., H, S, E) -> (..., H * rep, S, E), each head repeated ``rep`` times in place."""
    shp = tuple(t.shape)
    tgt = shp[:-3] + (shp[-3], rep) + shp[-2:]
    return F.broadcast_to(t.unsqueeze(-3), tgt).reshape(shp[:-3] + (shp[-3] * rep,) + shp[-2:])


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "math", "numbers", "np", "F", "Tensor", "apply_fn", "full", "no_grad",
    "default_generator", "structural", "cpu_conv")]
