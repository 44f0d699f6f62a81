"""ops_api.shape: the shape family of public ops added for PyTorch breadth (issue 16).

Most of these are exact compositions of the existing movement records (reshape, permute,
getitem, expand, cat, flip) and ``where``: they get gradients, double backward, CUDA and
batching from those records. Two records are new, because torch's results are *views* and a
composite could only give a copy (an in-place write into ``x.diagonal()`` must reach ``x``):

* ``diagonal`` -- a strided view (stride ``s1 + s2`` along the diagonal); its VJP scatters g
  back onto the diagonal positions;
* ``diag_embed`` -- its transpose: zeros with the input written onto a diagonal view.

``Tensor.unfold`` is a gather (a copy, where torch gives an overlapping view).

Each public function is exported through __all__ (jitgrad.<name>) and registered with
_methods.implement when its Tensor method exists (declared in _methods.TensorMethods).
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np
from numpy.lib.stride_tricks import as_strided as _np_as_strided

from .. import dtypes
from .._methods import implement
from .._tensor import Size, Tensor, _norm_dim, apply_fn, broadcast_shapes as _bshapes, tensor
from ..backends import cuda as cb
from ..functional_ops import (_IndexBackward, _shape_args, _tt, cat, chunk, expand, flatten,
                              flip, getitem, permute, reshape, split, squeeze, stack,
                              sum as _sum, transpose, unbind, unsqueeze, view, where)
from ..ops import structural

__all__ = [
    "fliplr", "flipud", "roll", "rot90", "repeat_interleave", "tile", "narrow", "narrow_copy",
    "movedim", "moveaxis", "swapaxes", "swapdims", "unflatten", "diag", "diagonal",
    "diagonal_copy", "diag_embed", "diagflat", "tril", "triu", "broadcast_tensors",
    "broadcast_shapes", "meshgrid", "hstack", "vstack", "row_stack", "dstack", "column_stack",
    "tensor_split", "hsplit", "vsplit", "dsplit", "atleast_1d", "atleast_2d", "atleast_3d",
    "ravel", "split_with_sizes", "unsafe_split", "unsafe_chunk", "block_diag", "cartesian_prod",
    "combinations", "select_scatter", "slice_scatter", "diagonal_scatter", "positive", "conj",
    "resolve_conj", "resolve_neg", "constant_pad_nd", "fill", "zero_", "unravel_index",
    "as_strided", "as_strided_copy", "as_strided_scatter",
    "expand_copy", "permute_copy", "view_copy", "t_copy", "transpose_copy", "squeeze_copy",
    "unsqueeze_copy", "unbind_copy", "unfold_copy", "alias_copy", "split_with_sizes_copy",
]


def _int(v, what):
    """A Python int from an int or a one-element integer tensor (torch accepts both)."""
    if isinstance(v, Tensor):
        if v.numel() != 1 or v._meta[1].kind not in "iu":
            raise TypeError(f"{what} must be an int or a 1-element integer tensor, got a "
                            f"{v.dtype} tensor of shape {tuple(v.shape)}")
        return int(v.item())
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {type(v).__name__}")
    return int(v)


def _ints(v, what):
    """A tuple of ints from an int or a sequence of ints."""
    if isinstance(v, (list, tuple)):
        return tuple(_int(e, what) for e in v)
    return (_int(v, what),)


def _along(axis, idx):
    """An index that applies ``idx`` along ``axis`` (full slices before it)."""
    return (slice(None),) * axis + (idx,)


# ============================================================================================
# flips, rolls, rotations


def fliplr(input):
    """torch.fliplr: reverse dim 1 (a copy)."""
    x = _tt(input)
    if x.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(x, (1,))


def flipud(input):
    """torch.flipud: reverse dim 0 (a copy)."""
    x = _tt(input)
    if x.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(x, (0,))


def roll(input, shifts, dims=None):
    """torch.roll: each dim is two slices concatenated in swapped order (views, then one cat),
    so the gradient is the opposite roll of g; dims=None rolls the flattened tensor."""
    x = _tt(input)
    shifts = _ints(shifts, "shifts")
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               "dims:0")
        return roll(flatten(x), shifts, 0).reshape(x._meta[0])
    dims = _ints(dims, "dims")
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                           f"dims:{len(dims)}")
    out = x
    for s, d in zip(shifts, dims):
        d = _norm_dim(d, x.ndim)
        n = x._meta[0][d] if x.ndim else 1
        if n == 0 or s % n == 0:
            continue
        k = n - s % n
        out = cat([getitem(out, _along(d, slice(k, None))),
                   getitem(out, _along(d, slice(0, k)))], d)
    return out.clone() if out is x else out


def rot90(input, k=1, dims=(0, 1)):
    """torch.rot90: rotate by 90 degrees k times from dims[0] towards dims[1] (flip and
    transpose, torch's own decomposition)."""
    x = _tt(input)
    dims = _ints(dims, "dims")
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if x.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {x.ndim}")
    d0, d1 = _norm_dim(dims[0], x.ndim), _norm_dim(dims[1], x.ndim)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and "
                           f"dim1 = {d1}")
    k = _int(k, "k") % 4
    if k == 1:
        return transpose(flip(x, (d1,)), d0, d1)
    if k == 2:
        return flip(x, (d0, d1))
    if k == 3:
        return transpose(flip(x, (d0,)), d0, d1)
    return x.clone()


# ============================================================================================
# repeats


def _check_numel(shape, op):
    """Raise for a result of more than 2**63 - 1 elements (NumPy says only 'iterator is too
    large', naming neither the op nor the sizes)."""
    n = 1
    for v in shape:
        n *= int(v)
    if n > 2 ** 63 - 1:
        raise RuntimeError(f"{op}: the result of shape {list(shape)} has more elements than int64 "
                           "can count (Storage size calculation overflowed)")


def _repeat(input, *sizes):
    """Tensor.repeat: every dim of size s repeated r times is (r, s) expanded from (1, s) and
    merged, so the gradient is expand's (a sum over the repeats)."""
    x = _tt(input)
    reps = _shape_args(sizes)
    if len(reps) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    shp = (1,) * (len(reps) - x.ndim) + x._meta[0]
    for r, s in zip(reps, shp):
        if r < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {r * s}: "
                               f"{[a * b for a, b in zip(reps, shp)]}")
    _check_numel([r * s for r, s in zip(reps, shp)], "repeat")
    if all(r == 1 for r in reps):
        return reshape(x, shp).clone()
    inter = tuple(v for s in shp for v in (1, s))
    big = tuple(v for r, s in zip(reps, shp) for v in (r, s))
    return reshape(expand(reshape(x, inter), big), tuple(r * s for r, s in zip(reps, shp)))


def tile(input, dims):
    """torch.tile: repeat, with ``dims`` padded by leading 1s to the tensor's rank."""
    x = _tt(input)
    dims = _ints(dims, "dims")
    return _repeat(x, (1,) * (x.ndim - len(dims)) + dims)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """torch.repeat_interleave: an int repeat is unsqueeze + expand + reshape (no gather);
    a tensor of repeats gathers along ``dim`` (its gradient scatter-adds). With ``repeats``
    omitted, ``input`` holds the repeats of ``arange(len(input))``."""
    x = _tt(input)
    if repeats is None:
        if x.ndim > 1 or x._meta[1].kind not in "iu":
            raise RuntimeError("repeat_interleave: repeats must be a 0-dim or 1-dim integer "
                               f"tensor, got {x.dtype} of shape {tuple(x.shape)}")
        r = x._host.reshape(-1)
        if (r < 0).any():
            raise RuntimeError("repeats can not be negative")
        out = np.repeat(np.arange(r.size, dtype=np.int64), r)
        return tensor(out, device="cuda" if x.is_cuda else None)
    if dim is None:
        x, axis = flatten(x), 0
    else:
        axis = _norm_dim(dim, x.ndim)
        if x.ndim == 0:
            x = x.reshape(1)
    n = x._meta[0][axis]
    if isinstance(repeats, Tensor) and repeats.numel() != 1:
        if repeats.ndim != 1 or repeats._meta[1].kind not in "iu":
            raise RuntimeError("repeat_interleave: repeats must be a 0-dim or 1-dim integer "
                               f"tensor, got {repeats.dtype} of shape {tuple(repeats.shape)}")
        r = repeats._host
        if r.size != n:
            raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                               f"repeats.size(0) = {r.size} and input.size({axis}) = {n}")
        if (r < 0).any():
            raise RuntimeError("repeats can not be negative")
        if output_size is not None and int(r.sum()) != output_size:
            raise RuntimeError("allocated size does not match required size")
        idx = np.repeat(np.arange(n, dtype=np.int64), r)
        return getitem(x, _along(axis, idx), grad_fn="RepeatInterleaveBackward0")
    r = _int(repeats, "repeats")
    if r < 0:
        raise RuntimeError("repeats can not be negative")
    _check_numel(list(x._meta[0]) + [r], "repeat_interleave")
    if output_size is not None and output_size != r * n:
        raise RuntimeError("allocated size does not match required size")
    shp = x._meta[0]
    y = expand(unsqueeze(x, axis + 1), shp[:axis + 1] + (r,) + shp[axis + 1:])
    out = reshape(y, shp[:axis] + (n * r,) + shp[axis + 1:])
    return out.clone() if r == 1 else out


# ============================================================================================
# narrowing, moving and naming dims


def narrow(input, dim, start, length):
    """torch.narrow: a slice view along ``dim``; ``start`` may be a 0-d integer tensor."""
    x = _tt(input)
    if x.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    axis = _norm_dim(dim, x.ndim)
    n = x._meta[0][axis]
    start, length = _int(start, "start"), _int(length, "length")
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got "
                         f"{start})")
    if start < 0:
        start += n
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return getitem(x, _along(axis, slice(start, start + length)))


def narrow_copy(input, dim, start, length):
    return narrow(input, dim, start, length).clone()


def movedim(input, source, destination):
    """torch.movedim: the permutation that puts each source dim at its destination, the
    others keeping their order."""
    x = _tt(input)
    nd = x.ndim
    src, dst = _ints(source, "source"), _ints(destination, "destination")
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} "
                           f"dims) should contain the same number of dims as destination "
                           f"({list(dst)} dims)")
    src = tuple(_norm_dim(d, nd) for d in src)
    dst = tuple(_norm_dim(d, nd) for d in dst)
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({list(source)})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` ({list(destination)})")
    if nd == 0:
        return x
    perm = [-1] * nd
    for s, d in zip(src, dst):
        perm[d] = s
    rest = iter(d for d in range(nd) if d not in src)
    perm = [p if p >= 0 else next(rest) for p in perm]
    return permute(x, perm)


moveaxis = movedim


def swapaxes(input, axis0, axis1):
    return transpose(input, axis0, axis1)


def swapdims(input, dim0, dim1):
    return transpose(input, dim0, dim1)


def unflatten(input, dim, sizes):
    """torch.unflatten: dim becomes ``sizes`` (one -1 is inferred): a reshape."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    sizes = _ints(sizes, "sizes")
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    n = x._meta[0][axis] if x.ndim else 1
    known = 1
    for s in sizes:
        if s != -1:
            known *= s
    if sizes.count(-1) > 1:
        raise RuntimeError("unflatten: only one dimension can be inferred")
    if -1 in sizes:
        if known == 0 or n % known:
            raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to "
                               f"the size of dim {dim} ({n}) in the input tensor")
        sizes = tuple(n // known if s == -1 else s for s in sizes)
    elif known != n:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({n}) in the input tensor")
    shp = x._meta[0]
    return reshape(x, shp[:axis] + sizes + shp[axis + 1:])


def _unfold(input, dimension, size, step):
    """Tensor.unfold: windows of ``size`` every ``step`` along ``dimension``, the window as a
    new last dim. One gather (torch returns an overlapping view; this is a copy)."""
    x = _tt(input)
    nd = x.ndim
    d = _norm_dim(dimension, nd)
    n = x._meta[0][d] if nd else 1
    size, step = _int(size, "size"), _int(step, "step")
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if nd == 0:
        return reshape(x, (1,)).clone()
    m = (n - size) // step + 1
    idx = np.arange(m, dtype=np.int64)[:, None] * step + np.arange(size, dtype=np.int64)
    y = getitem(x, _along(d, idx), grad_fn="UnfoldBackward0")  # (..., m, size, ...)
    return movedim(y, d + 1, -1) if d + 1 != nd else y


def ravel(input):
    """torch.ravel: the flattened tensor (a view when contiguous)."""
    return reshape(_tt(input), -1)


def _view_as(x, other):
    return view(x, tuple(other.shape))


def _reshape_as(x, other):
    return reshape(x, tuple(other.shape))


# ============================================================================================
# diagonals: two strided-view records


def _diag_geometry(shape, offset, dim1, dim2):
    """(index of the diagonal's first element, result shape, the kept dims)."""
    n1, n2 = shape[dim1], shape[dim2]
    if offset >= 0:
        length = max(0, min(n1, n2 - offset))
        start = [0] * len(shape)
        start[dim2] = min(offset, n2)
    else:
        length = max(0, min(n1 + offset, n2))
        start = [0] * len(shape)
        start[dim1] = min(-offset, n1)
    keep = [d for d in range(len(shape)) if d not in (dim1, dim2)]
    return start, tuple(shape[d] for d in keep) + (length,), keep


def _diag_view(a, offset, dim1, dim2):
    """The diagonal of a NumPy or device array as a strided view (writable when ``a`` is)."""
    start, shape, keep = _diag_geometry(a.shape, offset, dim1, dim2)
    st = a.strides
    strides = tuple(st[d] for d in keep) + (st[dim1] + st[dim2],)
    base = tuple(slice(s, None) for s in start)
    if isinstance(a, np.ndarray):
        return _np_as_strided(a[base], shape, strides, writeable=a.flags.writeable)
    v = cb.basic_view(a, base)
    return v._view(cb.strided_view(v.dev, shape, strides))


def _diag_index(shape, offset, dim1, dim2):
    """The diagonal's positions in an array of ``shape`` as an advanced index (a tuple of
    integer arrays shaped like the diagonal)."""
    pos = _diag_view(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape),
                     offset, dim1, dim2)
    return np.unravel_index(pos, shape)


def _shift_diag(p, B=None, shapes=None):
    return {**p, "dim1": p["dim1"] + 1, "dim2": p["dim2"] + 1}


def _shift_embed(p, B, shapes):
    return {**_shift_diag(p), "shape": (B,) + tuple(p["shape"])}


@structural("diagonal", "DiagonalBackward0", linear="all", index_map="gather", batch=_shift_diag)
class _Diagonal:
    """A strided view of the diagonal (like torch): writes into it reach the input."""

    def forward(ctx, x, offset, dim1, dim2):
        return _diag_view(x, offset, dim1, dim2)

    def cuda_forward(ctx, x, offset, dim1, dim2):
        return _diag_view(x, offset, dim1, dim2)

    def vjp(V, ctx, g):  # g on the diagonal of zeros: diag_embed's forward (and vice versa)
        return (V.apply(_DiagEmbed, g, shape=tuple(ctx.shapes[0]), offset=ctx.offset,
                        dim1=ctx.dim1, dim2=ctx.dim2),)


@structural("diag_embed", "DiagEmbedBackward0", linear="all", batch=_shift_embed)
class _DiagEmbed:
    """Zeros of ``shape`` with x written onto the diagonal (dim1, dim2, offset); the
    gradient is g's diagonal. (No index map: most outputs are zeros, copied from nothing.)"""

    def forward(ctx, x, shape, offset, dim1, dim2):
        out = np.zeros(shape, x.dtype)
        _diag_view(out, offset, dim1, dim2)[...] = x
        return out

    def cuda_forward(ctx, x, shape, offset, dim1, dim2):
        out = cb.full(shape, 0, x.dtype)
        _diag_view(out, offset, dim1, dim2)[...] = x
        return out

    def vjp(V, ctx, g):
        return (V.apply(_Diagonal, g, offset=ctx.offset, dim1=ctx.dim1, dim2=ctx.dim2),)


def _strided_flat(a, size, stride, offset):
    """``a`` (C-contiguous) seen as a flat storage, re-strided (strides in elements): a view.
    Other layouts are refused: torch's strides would then refer to memory in another order
    (a transposed alias, Fortran-ordered NumPy memory, a vmap batch not in front)."""
    if not a.flags.c_contiguous:
        raise NotImplementedError(
            f"as_strided of a tensor whose memory is not C-contiguous (shape {a.shape}, "
            f"strides {a.strides}) is not supported; apply it to x.contiguous().clone()")
    flat = a.reshape(-1)[offset:] if a.size else a.reshape(-1)
    strides = tuple(st * a.itemsize for st in stride)
    if isinstance(flat, np.ndarray):
        return _np_as_strided(flat, size, strides, writeable=a.flags.writeable)
    return flat._view(cb.strided_view(flat.dev, size, strides))


def _shift_strided(p, B, shapes):
    """A leading batch axis: each sample's storage starts numel elements after the last."""
    n = int(np.prod(shapes[0])) if shapes is not None else None
    if n is None:
        return None
    return {**p, "size": (B,) + tuple(p["size"]), "stride": (n,) + tuple(p["stride"])}


@structural("as_strided", "AsStridedBackward0", linear="all", index_map="gather",
            batch=_shift_strided)
class _AsStrided:
    """A view of the input's own memory with the given sizes and element strides (overlapping
    windows allowed: their gradients add up)."""

    def forward(ctx, x, size, stride, offset):
        return _strided_flat(x, size, stride, offset)

    def cuda_forward(ctx, x, size, stride, offset):
        return _strided_flat(x, size, stride, offset)

    def vjp(V, ctx, g):
        shape = tuple(ctx.shapes[0])
        pos = _strided_flat(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape),
                            ctx.size, ctx.stride, ctx.offset)
        return (V.index_add(g, shape, np.unravel_index(pos, shape)),)


def as_strided(input, size, stride, storage_offset=None):
    """torch.as_strided on a tensor that owns its memory (its storage is its own elements in
    C order); a view is refused, since torch's strides and offset would then refer to the
    memory of the tensor it views."""
    x = _tt(input)
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise RuntimeError(f"mismatch in length of strides and shape: size {list(size)}, "
                           f"stride {list(stride)}")
    if any(s < 0 for s in size) or any(st < 0 for st in stride):
        raise RuntimeError(f"as_strided: negative sizes or strides are not supported "
                           f"(size {list(size)}, stride {list(stride)})")
    # a view of the same shape as its root (detach(), an alias) reads the same memory; one
    # laid out differently (a transposed alias) is refused by the forward
    if x._base is not None and x._base._meta[0] != x._meta[0]:
        raise NotImplementedError(
            "as_strided of a view is not supported (its strides and storage_offset would "
            "refer to the memory it views): apply it to a tensor that owns its memory, e.g. "
            "x.clone()")
    offset = 0 if storage_offset is None else _int(storage_offset, "storage_offset")
    n = x.numel()
    last = offset + sum((sz - 1) * st for sz, st in zip(size, stride)) if all(size) else -1
    if offset < 0 or last >= n:
        raise RuntimeError(f"setStorage: sizes {list(size)}, strides {list(stride)}, storage "
                           f"offset {offset} require a storage of {last + 1} elements, but the "
                           f"input has {n}")
    return apply_fn(_AsStrided, (x,), view_of=x, size=size, stride=stride, offset=offset)


def as_strided_copy(input, size, stride, storage_offset=None):
    return as_strided(input, size, stride, storage_offset).clone()


def as_strided_scatter(input, src, size, stride, storage_offset=None):
    """torch.as_strided_scatter: a copy of input with ``src`` written at the strided
    positions."""
    x = _tt(input)
    pos = as_strided(tensor(np.arange(x.numel(), dtype=np.int64).reshape(x._meta[0])),
                     size, stride, storage_offset)._data
    return _scatter_into(x, np.unravel_index(np.asarray(pos), x._meta[0]), src,
                         "as_strided_scatter")


def diagonal(input, offset=0, dim1=0, dim2=1):
    """torch.diagonal: a view of the diagonal of the (dim1, dim2) planes, as the last dim."""
    x = _tt(input)
    nd = x.ndim
    a, b = _norm_dim(dim1, nd), _norm_dim(dim2, nd)
    if a == b:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return apply_fn(_Diagonal, (x,), view_of=x, offset=_int(offset, "offset"), dim1=a, dim2=b)


def diagonal_copy(input, offset=0, dim1=0, dim2=1):
    return diagonal(input, offset, dim1, dim2).clone()


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """torch.diag_embed: the last dim of ``input`` becomes the diagonal of new (dim1, dim2)
    planes of size n + |offset|."""
    x = _tt(input)
    nd = x.ndim + 1
    a, b = _norm_dim(dim1, nd), _norm_dim(dim2, nd)
    if a == b:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    offset = _int(offset, "offset")
    shp = x._meta[0]
    n = (shp[-1] if shp else 1) + abs(offset)
    if not shp:
        x, shp = x.reshape(1), (1,)
    rest = iter(shp[:-1])
    shape = tuple(n if d in (a, b) else next(rest) for d in range(nd))
    return apply_fn(_DiagEmbed, (x,), shape=shape, offset=offset, dim1=a, dim2=b)


def diag(input, diagonal=0):
    """torch.diag: a 1-D input becomes a square matrix's diagonal; a 2-D input gives its
    diagonal (a copy, like torch)."""
    x = _tt(input)
    k = _int(diagonal, "diagonal")
    if x.ndim == 1:
        return diag_embed(x, k, 0, 1)
    if x.ndim == 2:
        return diagonal_copy(x, k, 0, 1)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {x.ndim}D")


def diagflat(input, offset=0):
    """torch.diagflat: the flattened input on the diagonal of a square matrix."""
    return diag_embed(flatten(_tt(input)), offset, 0, 1)


# ============================================================================================
# triangles


def _tri_mask(x, k, lower):
    m, n = x._meta[0][-2:]
    mask = np.tri(m, n, k, dtype=np.bool_) if lower else ~np.tri(m, n, k - 1, dtype=np.bool_)
    return tensor(mask, device="cuda" if x.is_cuda else None)


def _tri(name, x, diagonal, lower):
    x = _tt(x)
    if x.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    zero = False if x._meta[1].kind == "b" else 0
    return where(_tri_mask(x, _int(diagonal, "diagonal"), lower), x, zero)


def tril(input, diagonal=0):
    """torch.tril: the elements on and below the diagonal (others zero): a ``where`` against
    a constant mask, so the gradient is g masked the same way."""
    return _tri("tril", input, diagonal, True)


def triu(input, diagonal=0):
    """torch.triu: the elements on and above the diagonal (others zero)."""
    return _tri("triu", input, diagonal, False)


def _tril_(x, diagonal=0):
    return x.copy_(tril(x, diagonal))


def _triu_(x, diagonal=0):
    return x.copy_(triu(x, diagonal))


# ============================================================================================
# broadcasting and grids


def broadcast_shapes(*shapes):
    """torch.broadcast_shapes: ints or sequences of ints, broadcast like tensors' shapes."""
    norm = []
    for s in shapes:
        s = _ints(s, "shape")
        for v in s:
            if v < 0:
                raise RuntimeError(f"Trying to create tensor with negative dimension {v}: "
                                   f"{list(s)}")
        norm.append(s)
    return Size(_bshapes(*norm))


def broadcast_tensors(*tensors):
    """torch.broadcast_tensors: each tensor expanded (a view) to the common shape."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    ts = [_tt(t) for t in tensors]
    shape = _bshapes(*[t._meta[0] for t in ts])
    return tuple(expand(t, shape) for t in ts)


def meshgrid(*tensors, indexing=None):
    """torch.meshgrid: 0-d/1-d tensors expanded to the grid (views); ``indexing='xy'`` swaps
    the first two dims of the grid (Cartesian), 'ij' (the default) is matrix indexing."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    ts = [_tt(t) for t in tensors]
    if not ts:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    if indexing is None:
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but "
                           f"received: {indexing}")
    for t in ts:
        if t.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list "
                               f"but got a tensor of shape {tuple(t.shape)}")
        if t._meta[1] != ts[0]._meta[1]:
            raise RuntimeError(f"meshgrid expects all tensors to have the same dtype (got "
                               f"{ts[0].dtype} and {t.dtype})")
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    sizes = tuple(t.numel() for t in ts)
    k = len(ts)
    grids = [expand(reshape(t, (1,) * i + (-1,) + (1,) * (k - i - 1)), sizes)
             for i, t in enumerate(ts)]
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def cartesian_prod(*tensors):
    """torch.cartesian_prod: the rows of the 'ij' meshgrid of 1-D tensors."""
    ts = [_tt(t) for t in tensors]
    for t in ts:
        if t.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)}")
    if len(ts) == 1:
        return ts[0]
    return stack([flatten(g) for g in meshgrid(ts, indexing="ij")], 1)


def combinations(input, r=2, with_replacement=False):
    """torch.combinations: the r-length combinations of a 1-D tensor's elements (index
    tuples from itertools, then one gather), shape (count, r)."""
    x = _tt(input)
    if x.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(x.shape)}")
    r = _int(r, "r")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return getitem(x, slice(0, 0))
    gen = itertools.combinations_with_replacement if with_replacement else \
        itertools.combinations
    idx = np.array(list(gen(range(x._meta[0][0]), r)), dtype=np.int64).reshape(-1, r)
    return getitem(x, idx)


# ============================================================================================
# stacking


def _tensor_list(tensors, name):
    if isinstance(tensors, Tensor):
        raise TypeError(f"{name}(): argument 'tensors' must be a tuple/list of Tensors, not "
                        "Tensor")
    ts = [_tt(t) for t in tensors]
    if not ts:
        raise RuntimeError(f"{name} expects a non-empty TensorList")
    return ts


def atleast_1d(*tensors):
    """torch.atleast_1d: 0-d tensors become shape (1,); others are returned as they are."""
    return _atleast(tensors, lambda t: reshape(t, (1,)) if t.ndim == 0 else t)


def _to_2d(t):
    if t.ndim == 0:
        return reshape(t, (1, 1))
    return unsqueeze(t, 0) if t.ndim == 1 else t


def _to_3d(t):
    if t.ndim == 0:
        return reshape(t, (1, 1, 1))
    if t.ndim == 1:
        return reshape(t, (1, t._meta[0][0], 1))
    return unsqueeze(t, -1) if t.ndim == 2 else t


def atleast_2d(*tensors):
    """torch.atleast_2d: 0-d -> (1, 1), 1-d (n,) -> (1, n)."""
    return _atleast(tensors, _to_2d)


def atleast_3d(*tensors):
    """torch.atleast_3d: 0-d -> (1, 1, 1), (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    return _atleast(tensors, _to_3d)


def _atleast(tensors, f):
    if len(tensors) == 1 and isinstance(tensors[0], Tensor):
        return f(tensors[0])
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    return tuple(f(_tt(t)) for t in tensors)


def hstack(tensors):
    """torch.hstack: cat along dim 1 (dim 0 for 1-D tensors) after atleast_1d."""
    ts = [atleast_1d(t) for t in _tensor_list(tensors, "hstack")]
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    """torch.vstack: cat along dim 0 after atleast_2d."""
    return cat([_to_2d(t) for t in _tensor_list(tensors, "vstack")], 0)


row_stack = vstack


def dstack(tensors):
    """torch.dstack: cat along dim 2 after atleast_3d."""
    return cat([_to_3d(t) for t in _tensor_list(tensors, "dstack")], 2)


def column_stack(tensors):
    """torch.column_stack: 0-d/1-d tensors become columns, then cat along dim 1."""
    ts = _tensor_list(tensors, "column_stack")
    return cat([reshape(t, (t.numel(), 1)) if t.ndim <= 1 else t for t in ts], 1)


def block_diag(*tensors):
    """torch.block_diag: 0-d/1-d/2-d tensors as the diagonal blocks of one matrix (zero
    blocks between them), in the promoted dtype."""
    ts = []
    for k, t in enumerate(tensors):
        t = _tt(t)
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer "
                               f"dimensions. Input {k} has {t.ndim} dimensions")
        ts.append(_to_2d(t))
    if not ts:
        return tensor(np.zeros((1, 0), np.float32))
    dt = dtypes.result_type([dtypes.from_numpy(t._meta[1]) for t in ts])
    ncols = sum(t._meta[0][1] for t in ts)
    dev = "cuda" if ts[0].is_cuda else None
    rows, c = [], 0
    for t in ts:
        m, n = t._meta[0]
        parts = [t.to(dt)]
        if c:
            parts.insert(0, tensor(np.zeros((m, c), dt.np), device=dev))
        if ncols - c - n:
            parts.append(tensor(np.zeros((m, ncols - c - n), dt.np), device=dev))
        rows.append(cat(parts, 1) if len(parts) > 1 else parts[0])
        c += n
    return cat(rows, 0)


# ============================================================================================
# splitting


def tensor_split(input, indices_or_sections, dim=0):
    """torch.tensor_split: ``n`` sections (the first ``size % n`` one longer), or split at
    the given indices (slice semantics: out-of-range indices clamp). Views."""
    x = _tt(input)
    if x.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    axis = _norm_dim(dim, x.ndim)
    n = x._meta[0][axis]
    ios = indices_or_sections
    if isinstance(ios, Tensor):
        if ios._meta[1].kind not in "iu" or ios.ndim > 1:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a "
                               "zero-dimensional or one-dimensional tensor of integers, but "
                               f"got a {ios.dtype} tensor with {ios.ndim} dims")
        ios = int(ios.item()) if ios.ndim == 0 else [int(v) for v in ios._host]
    if isinstance(ios, (list, tuple)):
        bounds = [0] + [_int(i, "indices") for i in ios] + [n]
        return tuple(getitem(x, _along(axis, slice(a, b)))
                     for a, b in zip(bounds[:-1], bounds[1:]))
    sections = _int(ios, "sections")
    if sections <= 0:
        raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
    q, rem = divmod(n, sections)
    out, start = [], 0
    for k in range(sections):
        size = q + (1 if k < rem else 0)
        out.append(getitem(x, _along(axis, slice(start, start + size))))
        start += size
    return tuple(out)


def _split_dir(name, x, ios, axis, min_nd):
    x = _tt(x)
    if x.ndim < min_nd:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_nd} dimension, "
                           f"but got a tensor with {x.ndim} dimensions!")
    axis = axis if x.ndim > 1 or name != "hsplit" else 0
    if not isinstance(ios, (list, tuple, Tensor)):
        s = _int(ios, "sections")
        n = x._meta[0][axis]
        if s == 0 or n % s:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {axis}, but "
                               f"the size of the dimension {n} is not divisible by the "
                               f"split_size {s}!")
    return tensor_split(x, ios, axis)


def hsplit(input, indices_or_sections):
    return _split_dir("hsplit", input, indices_or_sections, 1, 1)


def vsplit(input, indices_or_sections):
    return _split_dir("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input, indices_or_sections):
    return _split_dir("dsplit", input, indices_or_sections, 2, 3)


def split_with_sizes(input, split_sizes, dim=0):
    return split(_tt(input), list(_ints(split_sizes, "split_sizes")), dim)


def unsafe_split(input, split_size, dim=0):
    return split(_tt(input), split_size, dim)


def unsafe_chunk(input, chunks, dim=0):
    return chunk(_tt(input), chunks, dim)


# ============================================================================================
# scatters into a copy (the gradient: g with the region zeroed, and g's region for src)


def _scatter_into(x, idx, src, name):
    """x with ``src`` at ``idx``: ``where(region, src placed into zeros, x)``, records with
    batch rules only (so vmap batches it; clone + setitem would not)."""
    x, src = _tt(x), _tt(src)
    shape = tuple(x._meta[0])
    mask = np.zeros(shape, np.bool_)
    mask[idx] = True
    want = np.empty(shape, np.bool_)[idx].shape
    if tuple(src._meta[0]) != tuple(want):
        raise RuntimeError(f"{name}: expected src to have a size equal to the slice of self. "
                           f"src size = {list(src.shape)}, slice size = {list(want)}")
    if src._meta[1] != x._meta[1]:
        src = src.to(dtypes.from_numpy(x._meta[1]))
    placed = apply_fn(_IndexBackward, (src,), shape=shape, idx=idx)
    return where(tensor(mask, device="cuda" if x.is_cuda else None), placed, x)


def select_scatter(input, src, dim, index):
    """torch.select_scatter: a copy of input with ``src`` at ``index`` along ``dim``."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    n = x._meta[0][axis]
    i = _int(index, "index")
    if not -n <= i < n:
        raise IndexError(f"select_scatter(): index {i} out of range for tensor of size "
                         f"{list(x.shape)} at dimension {axis}")
    return _scatter_into(x, _along(axis, i % n), src, "select_scatter")


def slice_scatter(input, src, dim=0, start=None, end=None, step=1):
    """torch.slice_scatter: a copy of input with ``src`` at the slice along ``dim``."""
    x = _tt(input)
    axis = _norm_dim(dim, x.ndim)
    if _int(step, "step") <= 0:
        raise RuntimeError("slice step must be positive")
    return _scatter_into(x, _along(axis, slice(start, end, step)), src, "slice_scatter")


def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    """torch.diagonal_scatter: a copy of input with ``src`` on the diagonal."""
    x = _tt(input)
    nd = x.ndim
    a, b = _norm_dim(dim1, nd), _norm_dim(dim2, nd)
    if a == b:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    idx = _diag_index(x._meta[0], _int(offset, "offset"), a, b)
    return _scatter_into(x, idx, src, "diagonal_scatter")


# ============================================================================================
# small identities and copies


def positive(input):
    """torch.positive: the input itself (bool tensors are refused, as in torch)."""
    x = _tt(input)
    if x._meta[1].kind == "b":
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return x


def conj(input):
    """Real tensors are their own conjugate (jitgrad has no complex dtypes)."""
    return _tt(input)


resolve_conj = resolve_neg = conj


def constant_pad_nd(input, pad, value=0):
    """torch.constant_pad_nd: ``pad`` holds (before, after) pairs from the last dim backwards;
    negative widths crop (a slice), positive ones concatenate blocks of ``value``."""
    x = _tt(input)
    pad = _ints(pad, "pad")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise RuntimeError(f"Length of pad must be even but instead it equals {len(pad)}"
                           if len(pad) % 2 else
                           f"Length of pad should be no more than twice the number of "
                           f"dimensions of the input. Pad length is {len(pad)} while the input "
                           f"has {x.ndim} dimensions.")
    dev = "cuda" if x.is_cuda else None
    out = x
    for k in range(len(pad) // 2):
        d = x.ndim - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        n = out._meta[0][d]
        if n + lo + hi < 0:
            raise RuntimeError(f"The input size {n}, plus negative padding {lo} and {hi} "
                               f"resulted in a negative output size, which is invalid. Check "
                               f"dimension {d} of your input.")
        if lo < 0 or hi < 0:
            out = getitem(out, _along(d, slice(max(-lo, 0), max(n - max(-hi, 0),
                                                                 max(-lo, 0)))))
        s = out._meta[0]

        def block(w):
            return [tensor(np.full(s[:d] + (w,) + s[d + 1:], value, out._meta[1]),
                           device=dev)] if w > 0 else []
        parts = block(lo) + [out] + block(hi)
        if len(parts) > 1:
            out = cat(parts, d)
    return out.clone() if out is x else out


def fill(input, value):
    """torch.fill: a new tensor like input filled with ``value`` (a number or a 0-d tensor,
    which receives the summed gradient; input's gradient is zero)."""
    x = _tt(input)
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"fill only supports 0-dimension value tensor but got tensor with "
                           f"{value.ndim} dimensions.")
    none = tensor(np.zeros(x._meta[0], np.bool_), device="cuda" if x.is_cuda else None)
    out = where(none, x, value)
    dt = dtypes.from_numpy(x._meta[1])
    return out if out._meta[1] == x._meta[1] else out.to(dt)


def zero_(input):
    return input.zero_()


def _copy_of(f, name):
    def g(input, *args, **kwargs):
        out = f(_tt(input), *args, **kwargs)
        if isinstance(out, tuple):
            return tuple(o.clone() for o in out)
        return out.clone()
    g.__name__ = name
    g.__doc__ = f"torch.{name}: {f.__name__}, as a new tensor (no view)."
    return g


expand_copy = _copy_of(lambda x, size, implicit=False: expand(x, size), "expand_copy")
permute_copy = _copy_of(permute, "permute_copy")
view_copy = _copy_of(view, "view_copy")
t_copy = _copy_of(lambda x: x.t(), "t_copy")
transpose_copy = _copy_of(transpose, "transpose_copy")
squeeze_copy = _copy_of(squeeze, "squeeze_copy")
unsqueeze_copy = _copy_of(unsqueeze, "unsqueeze_copy")
unbind_copy = _copy_of(unbind, "unbind_copy")
unfold_copy = _copy_of(_unfold, "unfold_copy")
alias_copy = _copy_of(lambda x: x, "alias_copy")
split_with_sizes_copy = _copy_of(split_with_sizes, "split_with_sizes_copy")


def unravel_index(indices, shape):
    """torch.unravel_index: flat indices -> one int64 tensor of coordinates per dim of
    ``shape`` (torch's arithmetic: floor division and modulo from the last dim, so indices
    out of range wrap instead of raising)."""
    if isinstance(shape, (bool, np.bool_)) or not isinstance(shape, (numbers.Integral, list,
                                                                     tuple)):
        raise TypeError(f"expected 'shape' to be int or sequence of ints, but got "
                        f"{type(shape)}")
    shape = _ints(shape, "shape")
    if any(s < 0 for s in shape):
        raise ValueError(f"'shape' cannot have negative values, but got {shape}")
    if any(s == 0 for s in shape):
        raise RuntimeError(f"unravel_index: 'shape' {shape} has a dimension of size 0")
    x = _tt(indices)
    if x._meta[1].kind not in "iu":
        raise TypeError(f"expected 'indices' to be integer dtype, but got {x.dtype}")
    i = x._host.astype(np.int64)
    out = []
    for s in reversed(shape):
        out.append(np.mod(i, s))
        i = np.floor_divide(i, s)
    dev = "cuda" if x.is_cuda else None
    return tuple(tensor(a, device=dev) for a in reversed(out))


def _sum_to_size(x, *size):
    """Tensor.sum_to_size: sum x down to ``size`` (which must expand to x's shape)."""
    size = _shape_args(size)
    if not size:  # torch (at::sum_to): an empty size sums everything, even a 0-d tensor
        return _sum(x)
    shp = x._meta[0]
    lead = len(shp) - len(size)
    if lead < 0 or any(s != 1 and s != shp[lead + k] for k, s in enumerate(size)):
        raise RuntimeError(f"size {{{', '.join(map(str, size))}}} is not expandable to size "
                           f"{{{', '.join(map(str, shp))}}}.")
    axes = tuple(range(lead)) + tuple(lead + k for k, s in enumerate(size)
                                      if s == 1 and shp[lead + k] != 1)
    if not axes:
        return x
    return reshape(_sum(x, axes, keepdim=True), size)


implement(fliplr=fliplr, flipud=flipud, roll=roll, rot90=rot90, repeat=_repeat, tile=tile,
          repeat_interleave=repeat_interleave, narrow=narrow, narrow_copy=narrow_copy,
          movedim=movedim, moveaxis=moveaxis, swapdims=swapdims, unflatten=unflatten,
          unfold=_unfold, ravel=ravel, view_as=_view_as, reshape_as=_reshape_as,
          diagonal=diagonal, diag=diag, diag_embed=diag_embed, diagflat=diagflat,
          tril=tril, triu=triu, tril_=_tril_, triu_=_triu_, tensor_split=tensor_split,
          hsplit=hsplit, vsplit=vsplit, dsplit=dsplit, split_with_sizes=split_with_sizes,
          unsafe_split=unsafe_split, unsafe_chunk=unsafe_chunk, select_scatter=select_scatter,
          slice_scatter=slice_scatter, diagonal_scatter=diagonal_scatter, positive=positive,
          conj=conj, resolve_conj=resolve_conj, resolve_neg=resolve_neg,
          sum_to_size=_sum_to_size, as_strided=as_strided)
