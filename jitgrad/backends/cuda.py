"""CUDA backend: device arrays (with a caching allocator), compilation of generated kernel source
with numba.cuda (memory + disk cache, like backends/cpu.py), launch geometry, and the device
versions of the few array operations the engine needs (copy, cast, transfer, reduce).

Nothing here imports numba.cuda until a CUDA tensor is made: ``import jitgrad`` stays fast and
CPU-only installs never touch CUDA. Which numba.cuda: the one built into numba (deprecated
upstream but shipped with numba 0.68, and it compiles against the system CUDA toolkit); the
separate ``numba-cuda`` package replaces it transparently when installed (README: "CUDA").

Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` runs the same kernels on Numba's simulator (slow:
tests keep tensors tiny).
"""
from __future__ import annotations

import os
import threading
from math import prod

import numpy as np

from .. import _debug, codegen
from ..ops import ELEMENTWISE
from . import cpu

DEVICE = "cuda"          # the key of this backend in backends.BACKENDS
_cuda = None


def cu():
    """numba.cuda, imported on first use."""
    global _cuda
    if _cuda is None:
        import numba
        if not hasattr(np, "row_stack"):
            # numba-cuda 0.30 registers an overload for np.row_stack (an alias of np.vstack that
            # NumPy 2.5 removed) when it first builds its target: without the alias every kernel
            # compile fails with AttributeError. Seen with numba-cuda 0.30.4 + NumPy 2.5.2.
            np.row_stack = np.vstack
        from numba import cuda as c
        if "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" not in os.environ:
            # small tensors make small grids by design; numba would warn on every launch
            numba.config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
        _cuda = c
    return _cuda


def simulated() -> bool:
    import numba
    return bool(numba.config.ENABLE_CUDASIM)


def is_available() -> bool:
    try:
        return bool(cu().is_available())
    except Exception:  # no driver, no toolkit: not available, whatever the reason
        return False


def device_count() -> int:
    if not is_available():
        return 0
    if simulated():
        return 1
    return len(cu().gpus)


def synchronize() -> None:
    if is_available():
        cu().synchronize()


def require() -> None:
    if not is_available():
        raise RuntimeError("jitgrad: CUDA is not available (numba.cuda found no GPU or driver; "
                           "set NUMBA_ENABLE_CUDASIM=1 to run CUDA kernels on Numba's simulator)")


# =============================================================================================
# Device arrays


class _Flags:
    __slots__ = ("c_contiguous", "writeable")

    def __init__(self, c, w):
        self.c_contiguous = c
        self.writeable = w


def _c_strides(shape, itemsize):
    st, acc = [], itemsize
    for s in reversed(shape):
        st.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(st))


class DeviceArray:
    """A tensor's storage on the GPU: a numba device array (``dev``, what kernels take) plus the
    NumPy-like metadata the engine reads (shape, dtype, strides, ``flags.c_contiguous``).

    Memory comes from the caching allocator: the root array owns a pooled block (``_block``)
    that goes back to the pool when the root and every view of it are gone."""

    __slots__ = ("dev", "shape", "dtype", "strides", "size", "ndim", "_block", "_owner",
                 "__weakref__")

    def __init__(self, dev, block=None, owner=None):
        self.dev = dev
        self.shape = tuple(dev.shape)
        self.dtype = np.dtype(dev.dtype)
        self.strides = tuple(dev.strides)
        self.size = prod(self.shape)
        self.ndim = len(self.shape)
        self._block = block
        self._owner = owner

    def __del__(self):
        b = self._block
        if b is not None:
            self._block = None
            _give_back(b)

    @property
    def flags(self):
        c = self.size <= 1 or all(
            st == c for st, c, n in zip(self.strides, _c_strides(self.shape, self.dtype.itemsize),
                                        self.shape) if n != 1)
        # a broadcast (stride-0) view is read-only, as np.broadcast_to's views are
        return _Flags(c, self.size <= 1 or all(st != 0 or n == 1
                                               for st, n in zip(self.strides, self.shape)))

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    def _view(self, dev):
        return DeviceArray(dev, owner=self if self._owner is None else self._owner)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        shape = tuple(int(s) for s in shape)
        if -1 in shape:
            k = shape.index(-1)
            rest = prod(s for i, s in enumerate(shape) if i != k)
            shape = shape[:k] + (self.size // rest if rest else 0,) + shape[k + 1:]
        if shape == self.shape:
            return self
        if prod(shape) != self.size:
            raise ValueError(f"cannot reshape a CUDA array of shape {self.shape} into {shape}")
        if self._block is not None:  # a pooled root: C-contiguous from the block's start
            return self._view(_typed_view(self._block, shape, self.dtype))
        src = self if self.flags.c_contiguous else contiguous(self)
        return src._view(strided_view(src.dev, shape, _c_strides(shape, self.dtype.itemsize)))

    def transpose(self, axes):
        axes = tuple(axes)
        return self._view(strided_view(self.dev, tuple(self.shape[a] for a in axes),
                                       tuple(self.strides[a] for a in axes)))

    def expand(self, shape):
        """A stride-0 broadcast view (like np.broadcast_to); ``shape`` has at least our ndim."""
        lead = len(shape) - self.ndim
        st = [0] * lead + [0 if (s == 1 and n != 1) else st
                           for s, n, st in zip(self.shape, shape[lead:], self.strides)]
        return self._view(strided_view(self.dev, tuple(shape), tuple(st)))

    def __getitem__(self, item):
        return self._view(self.dev[item])

    def __setitem__(self, item, value):
        """``a[index] = value`` (a DeviceArray broadcast to the target, or a scalar) for any
        NumPy index, also into a strided view: the flat positions the index selects in the
        contiguous root array are worked out on the host, then one scatter kernel writes."""
        from . import cuda_kernels
        whole = item is Ellipsis or (isinstance(item, slice) and item == slice(None))
        if whole and self.flags.c_contiguous:  # the fast path: a copy or a fill
            if isinstance(value, DeviceArray):
                src = value if value.shape == self.shape else _broadcast(value, self.shape)
                if self.size:
                    cuda_kernels.strided_copy(src.dev, self.dev)
            elif self.size:
                cuda_kernels.fill(self.dev.reshape(self.size), np.asarray(value).item())
            return
        root, pos = self._positions()
        if not whole:
            pos = pos[item]
        if pos.size == 0:
            return
        if isinstance(value, DeviceArray):
            src = contiguous(value if value.shape == pos.shape else
                             _broadcast(value, pos.shape), self.dtype)
        else:
            src = full(pos.shape, np.asarray(value).item(), self.dtype)
        from ._cuda_prelude import scatter_set_kernel
        idx = to_device(pos.reshape(-1))
        n = idx.size
        _debug.COUNTERS["kernel_launches"] += 1
        scatter_set_kernel[blocks_for(n), threads()](root.dev.reshape(root.size), idx.dev,
                                                     src.dev.reshape(n))

    def _positions(self):
        """(root, positions): this view's elements as flat indices into its contiguous root."""
        from numpy.lib.stride_tricks import as_strided
        root = self if self._owner is None else self._owner
        if not root.flags.c_contiguous:
            raise NotImplementedError("jitgrad: writing into a CUDA array that does not own "
                                      "contiguous memory is not supported")
        it = self.dtype.itemsize
        offset = (_address(self.dev) - _address(root.dev)) // it if self.size else 0
        flat = np.arange(root.size, dtype=np.int64)
        return root, as_strided(flat[offset:], self.shape,
                                tuple(st // it * 8 for st in self.strides))

    def copy_to_host(self) -> np.ndarray:
        return to_host(self)

    def copy(self) -> "DeviceArray":
        return contiguous(self)

    def __iadd__(self, other):
        add_into(self, other)
        return self

    @property
    def __cuda_array_interface__(self):
        return self.dev.__cuda_array_interface__

    def __repr__(self):
        return f"<DeviceArray {self.dtype} {self.shape}>"

    def _host_only(self, *args, **kwargs):
        """NumPy-style use of GPU data (``np.foo(a)``, ``a < 0``): reached only by an op that has
        no CUDA implementation yet, so say that clearly instead of failing somewhere deeper."""
        raise NotImplementedError(
            "jitgrad: this operation is not implemented for CUDA tensors yet (it needs the values "
            f"on the host: a CUDA array of shape {self.shape}, {self.dtype}); move the tensor to "
            "the CPU with .cpu() first")

    __array__ = __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __sub__ = __rsub__ = \
        __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __neg__ = __abs__ = __pow__ = \
        __bool__ = __float__ = __int__ = __index__ = __iter__ = __len__ = tolist = astype = \
        _host_only


ARRAY_TYPE = DeviceArray  # this backend's storage (backends/__init__.py INTERFACE)


def _broadcast(value, shape):
    return value.expand(shape) if value.ndim else value.reshape((1,) * len(shape)).expand(shape)


def _address(dev) -> int:
    """The device address of a numba array's first element (host address on the simulator)."""
    if simulated():
        return dev._ary.__array_interface__["data"][0]
    return dev.__cuda_array_interface__["data"][0]


def strided_view(dev, shape, strides, offset: int = 0):
    """A numba device array over ``dev``'s memory (from ``offset`` bytes on) with another
    shape/strides (no copy)."""
    if simulated():  # the simulator's arrays are host arrays: the same view in NumPy
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        return FakeCUDAArray(_np_view(dev._ary, shape, strides, offset))
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    data = dev.gpu_data.view(offset) if offset else dev.gpu_data
    return DeviceNDArray(shape, strides, dev.dtype, stream=dev.stream, gpu_data=data)


class _Memory:
    """Describes host memory to NumPy (the simulator's device memory) and keeps its owner."""

    def __init__(self, owner, ptr, shape, strides, dtype):
        self.owner = owner
        self.__array_interface__ = {"data": (ptr, False), "shape": tuple(shape),
                                    "strides": tuple(strides), "typestr": dtype.str,
                                    "version": 3}


def _np_view(a: np.ndarray, shape, strides, offset: int) -> np.ndarray:
    """An ndarray over ``a``'s memory from ``offset`` bytes on (``a`` may be any view)."""
    ptr = a.__array_interface__["data"][0] + offset
    return np.asarray(_Memory(a, ptr, shape, strides, a.dtype))


def basic_view(x: "DeviceArray", idx) -> "DeviceArray":
    """x[idx] for a basic index (ints, slices, None, Ellipsis) as a view, like NumPy/torch:
    NumPy works out the view's shape, strides and offset on a stand-in array."""
    from numpy.lib.stride_tricks import as_strided
    probe = np.zeros(1, x.dtype)
    stand_in = as_strided(probe, x.shape, x.strides)
    v = stand_in[idx]
    offset = v.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    return x._view(strided_view(x.dev, v.shape, v.strides, offset))


# --- caching allocator ------------------------------------------------------------------------
# Freed blocks are kept per rounded size and handed out again, so a training step that makes the
# same tensors each time stops calling cudaMalloc after its first step. Blocks are used in stream
# order (one stream), so a block freed by a kernel's operand may be reused by the next kernel.

_POOL: dict = {}                           # rounded nbytes -> [raw uint8 device arrays]
# Every block handed out stays referenced from here until it is given back. Without this, a
# tensor that dies inside a reference cycle would resurrect a dead block: the cycle collector
# runs the block's own weakref finalizer (numba frees the memory) before DeviceArray.__del__
# puts the block back in the pool, and the next _take hands out freed memory
# (numba-cuda raised "ReferenceError: weakly-referenced object no longer exists").
_IN_USE: dict = {}                         # id(block) -> block
# Typed views of each live block, by (shape, dtype): a step that makes the same tensors again
# reuses them instead of building 2-3 numba device arrays per tensor (each one costs tens of
# microseconds of Python in numba.cuda). Dropped with the block in empty_cache.
_BLOCK_VIEWS: dict = {}                    # id(block) -> {(shape, dtype): numba device array}
STATS = {"allocs": 0, "reuses": 0, "bytes_reserved": 0, "bytes_in_use": 0}
# The pool, _IN_USE, _BLOCK_VIEWS and STATS change under one lock: threads share the pool.
# Re-entrant, because a block is given back from DeviceArray.__del__, which the garbage
# collector may run inside _take in the same thread.
_POOL_LOCK = threading.RLock()


def _round(nbytes: int) -> int:
    if nbytes <= 1 << 20:
        return max(512, (nbytes + 511) // 512 * 512)
    return (nbytes + (1 << 20) - 1) >> 20 << 20


def _take(nbytes: int):
    size = _round(nbytes)
    with _POOL_LOCK:
        free = _POOL.get(size)
        if free:
            STATS["reuses"] += 1
            b = free.pop()
        else:
            c = cu()
            try:
                b = c.device_array(size, np.uint8)
            except Exception:  # out of memory: give the cached blocks back and try once more
                empty_cache()
                b = c.device_array(size, np.uint8)
            STATS["allocs"] += 1
            STATS["bytes_reserved"] += size
        STATS["bytes_in_use"] += size
        _IN_USE[id(b)] = b
    return b


def _give_back(block) -> None:
    with _POOL_LOCK:
        if _IN_USE.pop(id(block), None) is None:
            return  # given back already (or during interpreter shutdown)
        size = block.shape[0]
        STATS["bytes_in_use"] -= size
        _POOL.setdefault(size, []).append(block)


def empty_cache() -> None:
    """Free every cached block (blocks in use stay)."""
    with _POOL_LOCK:
        for blocks in _POOL.values():
            STATS["bytes_reserved"] -= sum(b.shape[0] for b in blocks)
            for b in blocks:
                _BLOCK_VIEWS.pop(id(b), None)
            blocks.clear()


def _typed_view(block, shape: tuple, dtype) -> object:
    """A numba array of ``shape``/``dtype`` over the start of a pooled block (cached)."""
    with _POOL_LOCK:
        views = _BLOCK_VIEWS.get(id(block))
        if views is None:
            views = _BLOCK_VIEWS[id(block)] = {}
        dev = views.get((shape, dtype))
        if dev is None:
            if len(views) >= 8:  # a block reused for many shapes: keep the cache small
                views.clear()
            n = prod(shape)
            dev = block[:n * dtype.itemsize].view(dtype)
            dev = dev.reshape(shape) if shape != (n,) else dev
            views[(shape, dtype)] = dev
    return dev


def empty(shape, dtype) -> DeviceArray:
    """An uninitialised C-contiguous device array from the pool."""
    require()
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    n = prod(shape)
    if n == 0:
        return DeviceArray(cu().device_array(shape, dtype))
    block = _take(n * dtype.itemsize)
    return DeviceArray(_typed_view(block, shape, dtype), block=block)


def to_device(a: np.ndarray) -> DeviceArray:
    a = np.asarray(a, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    out = empty(a.shape, a.dtype)
    if a.size:
        out.dev.copy_to_device(a.reshape(out.dev.shape))
    return out


from_host = to_device  # (the interface's name: backends/__init__.py INTERFACE)


def to_host(d: DeviceArray) -> np.ndarray:
    if d.size == 0:
        return np.empty(d.shape, d.dtype)
    src = d if d.flags.c_contiguous else contiguous(d)
    return src.dev.copy_to_host().reshape(d.shape)


def contiguous(d: DeviceArray, dtype=None) -> DeviceArray:
    """A C-contiguous copy (optionally cast to ``dtype``) of any view."""
    out = empty(d.shape, d.dtype if dtype is None else dtype)
    if d.size:
        from . import cuda_kernels
        cuda_kernels.strided_copy(d.dev, out.dev)
    return out


def full(shape, value, dtype) -> DeviceArray:
    out = empty(shape, dtype)
    if out.size:
        from . import cuda_kernels
        cuda_kernels.fill(out.dev.reshape(out.size), value)
    return out


# =============================================================================================
# Compilation and launch


_kernels: dict = {}


def compile_source(key, fn_source: str, fn_name: str, compute_dtype: str):
    """The numba.cuda kernel for generated source, compiled (or loaded from disk) once."""
    k = _kernels.get(key)
    if k is not None:
        return k
    use_cache = cpu.cache_dir() is not None and not simulated()
    src = ("# generated by jitgrad.codegen (CUDA); safe to delete\n"
           "from jitgrad.backends._cuda_prelude import *\n"
           f"T = numba.{compute_dtype}\n\n"
           f"{fn_source}\n"
           f"{fn_name} = cuda.jit(cache={use_cache})({fn_name})\n")
    k, where = cpu.load_generated(src, fn_name, "c", use_cache)
    _debug.count("kernels_built")
    _debug.log(f"CUDA kernel {fn_name} ({where}) key={key!r}\n{fn_source}")
    _kernels[key] = k
    return k


def threads() -> int:
    from ._cuda_prelude import THREADS
    return THREADS


def blocks_for(n: int) -> int:
    """Blocks for a grid-stride loop over ``n`` items: enough to fill the GPU, no more."""
    t = threads()
    cap = 4 if simulated() else 1024
    b = (n + t - 1) // t
    return max(1, b if b < cap else cap)


def launch(kern, n: int, *args) -> int:
    """Launch a generated kernel over ``n`` items; returns the block count (partial sums)."""
    b = blocks_for(n)
    _debug.COUNTERS["kernel_launches"] += 1
    kern[b, threads()](*args)
    return b


def finish_sum(partials: DeviceArray, nblocks: int, out: DeviceArray, scale) -> None:
    """out[0] = (sum of the first ``nblocks`` partials) / scale, cast to out's dtype."""
    from ._cuda_prelude import finish_sum_f, finish_sum_i
    _debug.COUNTERS["kernel_launches"] += 1
    k = finish_sum_f if partials.dtype.kind == "f" else finish_sum_i
    k[1, threads()](partials.dev, nblocks, out.dev.reshape(1),
                                    float(scale if scale is not None else 1.0),
                                    scale is not None)


FINISH_CHUNK = 16  # sums per finish_sums launch (each adds ~120 bytes of kernel parameters)


def _render_finish_sums(k: int, has_scale: tuple) -> str:
    """Source of a kernel that finishes ``k`` float64 per-block partial sums in one launch: block
    j sums ``p<j>[:n]`` in the same fixed order as finish_sum_f and stores it (divided by
    ``s<j>`` for a mean) into ``o<j>[0]``, cast to o<j>'s dtype."""
    ps = ", ".join(f"p{j}" for j in range(k))
    os_ = ", ".join(f"o{j}" for j in range(k))
    ss = ", ".join(f"s{j}" for j in range(k))
    lines = [f"def finish_sums(n, {ps}, {os_}, {ss}):",
             "    tx = cuda.threadIdx.x",
             "    j = cuda.blockIdx.x",
             "    sh = cuda.shared.array(THREADS, numba.float64)",
             "    acc = numba.float64(0)"]
    for j in range(k):
        lines += [f"    {'if' if j == 0 else 'elif'} j == {j}:",
                  "        for i in range(tx, n, THREADS):",
                  f"            acc += p{j}[i]"]
    lines += ["    sh[tx] = acc",
              "    cuda.syncthreads()",
              "    w = THREADS // 2",
              "    while w > 0:",
              "        if tx < w:",
              "            sh[tx] += sh[tx + w]",
              "        cuda.syncthreads()",
              "        w //= 2",
              "    if tx == 0:",
              "        s = sh[0]"]
    for j in range(k):
        val = f"s / s{j} if s{j} != 0 else math.nan" if has_scale[j] else "s"
        lines += [f"        {'if' if j == 0 else 'elif'} j == {j}:",
                  f"            o{j}[0] = {val}"]
    return "\n".join(lines) + "\n"


def finish_sums(partials: list, nblocks: int, outs: list, scales: list) -> None:
    """Several finish_sum calls (float64 partials, one-element outputs) as one launch."""
    if len(partials) == 1:
        finish_sum(partials[0], nblocks, outs[0], scales[0])
        return
    if len(partials) > FINISH_CHUNK:  # bounded kernel-parameter space and kernel variants
        for i in range(0, len(partials), FINISH_CHUNK):
            finish_sums(partials[i:i + FINISH_CHUNK], nblocks, outs[i:i + FINISH_CHUNK],
                        scales[i:i + FINISH_CHUNK])
        return
    has = tuple(s is not None for s in scales)
    key = ("finish_sums", len(partials), has)
    k = _kernels.get(key)
    if k is None:
        k = compile_source(key, _render_finish_sums(len(partials), has), "finish_sums",
                           "float64")
    _debug.COUNTERS["kernel_launches"] += 1
    k[len(partials), threads()](nblocks, *[p.dev for p in partials],
                                *[o.reshape(1).dev for o in outs],
                                *[float(s) if s is not None else 1.0 for s in scales])


def scale_cast(src: DeviceArray, out: DeviceArray, scale) -> None:
    """out = src / scale (mean) or src, cast to out's dtype; both C-contiguous, same size."""
    from ._cuda_prelude import scale_cast_kernel
    n = src.size
    if n:
        _debug.COUNTERS["kernel_launches"] += 1
        scale_cast_kernel[blocks_for(n), threads()](
            src.dev.reshape(n), out.dev.reshape(n),
            float(scale if scale is not None else 1.0), scale is not None)


def reduce_sum(x: DeviceArray, axes: tuple, out_dtype) -> DeviceArray:
    """Sum over ``axes`` (sorted) on the device; the result has the kept dims."""
    from . import cuda_kernels
    x3, kept = arb_view(x, axes)
    out = empty((x3.shape[0], x3.shape[2]), out_dtype)
    if out.size:
        cuda_kernels.sum_arb(x3.dev, out.dev)
    return out.reshape(kept)


def matmul(a: DeviceArray, b: DeviceArray) -> DeviceArray:
    """np.matmul semantics (1-D operands promoted, batch dims broadcast) over the tiled
    shared-memory kernel (cuda_kernels.matmul) on (batch, M, K) @ (batch, K, N)."""
    from . import cuda_kernels
    a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
    b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    (m, k), n = a2.shape[-2:], b2.shape[-1]
    bt = prod(batch)

    def as3(x, rows, cols):
        if x.shape[:-2] != batch:
            x = x.expand(batch + (rows, cols))
        if not x.flags.c_contiguous:
            x = contiguous(x)
        return x.reshape(bt, rows, cols)

    if a.dtype.kind != "f" or b.dtype.kind != "f":
        raise NotImplementedError(f"jitgrad: matmul of {a.dtype} CUDA tensors is not "
                                  "implemented yet (float32/float64 only)")
    out = empty((bt, m, n), a.dtype)
    if out.size:
        if k == 0:
            cuda_kernels.fill(out.dev.reshape(out.size), 0)
        else:
            # both temporaries are held until the launch: a DeviceArray that dies returns its
            # block to the pool, and the next allocation would reuse it
            a3, b3 = as3(a2, m, k), as3(b2, k, n)
            _debug.COUNTERS["kernel_launches"] += 1
            cuda_kernels.matmul(a3.dev, b3.dev, out.dev)
    shape = batch + ((m,) if a.ndim > 1 else ()) + ((n,) if b.ndim > 1 else ())
    return out.reshape(shape)


def add_into(acc: DeviceArray, g: DeviceArray) -> None:
    """acc += g in place (``.grad`` accumulation); g is broadcast to acc's shape."""
    from ._cuda_prelude import add_into_kernel
    if g.shape != acc.shape:
        g = g.expand(acc.shape)
    if not g.flags.c_contiguous:
        g = contiguous(g)
    if not acc.flags.c_contiguous:
        raise RuntimeError("jitgrad: in-place accumulation into a non-contiguous CUDA tensor is "
                           "not supported")
    n = acc.size
    if n:
        _debug.COUNTERS["kernel_launches"] += 1
        add_into_kernel[blocks_for(n), threads()](acc.dev.reshape(n), g.dev.reshape(n))


# --- the (A, R, B) reduction family (the CPU backend's convention: reduce the middle axis) ---


def arb_view(x: DeviceArray, axes: tuple):
    """(x3, kept shape): ``x`` as a C-contiguous (A, R, B) array reducing ``axes``."""
    nd = x.ndim
    keep = [d for d in range(nd) if d not in axes]
    if axes and axes[-1] - axes[0] + 1 != len(axes):
        x = contiguous(x.transpose(keep + list(axes)))
        axes = tuple(range(len(keep), nd))
    elif not x.flags.c_contiguous:
        x = contiguous(x)
    shp = x.shape
    if not axes:
        return x.reshape(x.size, 1, 1), shp
    lo, hi = axes[0], axes[-1]
    return x.reshape(prod(shp[:lo]), prod(shp[lo:hi + 1]), prod(shp[hi + 1:])), \
        shp[:lo] + shp[hi + 1:]


def argmax_arb(x3, out, idx, sign):
    from . import cuda_kernels
    _debug.COUNTERS["kernel_launches"] += 1
    cuda_kernels.extreme_arb(x3.dev, out.dev, None if idx is None else idx.dev, sign)


def logsumexp_arb(x3, out):
    from . import cuda_kernels
    _debug.COUNTERS["kernel_launches"] += 1
    cuda_kernels.logsumexp_arb(x3.dev, out.dev)


def softmax_arb(x3, out, log):
    from . import cuda_kernels
    _debug.COUNTERS["kernel_launches"] += 1
    cuda_kernels.softmax_arb(x3.dev, out.dev, log)


def ptx_check_generated(cc=(9, 0), dtype="float32", skip_rows=()) -> dict:
    """Compile the generated kernel families to real PTX (no GPU needed; run without the
    simulator): every registry row's forward and VJPs in one flat kernel each, an N-d
    broadcasting kernel with a partial sum, and a flat kernel with a full sum. Returns
    {family: ptx}. Code only the simulator accepts (it runs kernels as Python) fails here."""
    import numba
    c = cu()
    T = getattr(numba, dtype)

    def build(name, loads, lines, results, ndim, argtypes):
        src = codegen.render_cuda(name, loads, lines, results, ndim)
        ns: dict = {}
        exec("from jitgrad.backends._cuda_prelude import *\n"
             f"T = numba.{dtype}\n" + src, ns)
        ptx, _ = c.compile_ptx(ns[name], tuple(argtypes), cc=cc)
        return ptx

    out = {}
    for kind in ("fwd", "vjp"):  # every row at once: one kernel per direction
        em = codegen.Emitter(codegen.FUNC_SRC_CUDA)
        loads, results, out_types = [], [], []
        for row in ELEMENTWISE.values():
            if row.name in skip_rows:
                continue
            xs = []
            for k in range(row.arity):
                var = f"{row.name}_x{k}"
                loads.append(codegen.Load(f"a_{var}", var, "a", k not in row.bool_inputs))
                xs.append(codegen.Sym(em, var))
            if kind == "fwd":
                res = [row.fwd(codegen.SYM_MATH, *xs)]
            else:
                o, g = codegen.Sym(em, "out"), codegen.Sym(em, "g")
                res = [v(codegen.SYM_MATH, *xs, o, g) for v in row.vjps if v is not None]
            bool_out = kind == "fwd" and row.dtype_rule == "compare"
            for r in res:
                results.append(("full", em.operand(r), None, dtype))
                out_types.append((numba.boolean if bool_out else T)[::1])
        if kind == "vjp":
            loads += [codegen.Load("a_out", "out", "a"), codegen.Load("a_g", "g", "a")]
        in_types = [(T if ld.cast else numba.boolean)[::1] for ld in loads]
        out[f"rows_{kind}"] = build(f"rows_{kind}", loads, em.lines, results, None,
                                    in_types + out_types + [numba.int64])
    # N-d: broadcast operand, a 'c' scalar, a partial sum over dim 0 and a full output
    em = codegen.Emitter(codegen.FUNC_SRC_CUDA)
    x, y = codegen.Sym(em, "x0"), codegen.Sym(em, "x1")
    t = codegen.SYM_MATH.tanh(x * y + 0.5)
    loads = [codegen.Load("a0", "x0", "a", True, (False, False)),
             codegen.Load("a1", "x1", "a", True, (True, False))]
    res = [("full", t.name, None, dtype), ("sum", t.name, (0,), dtype)]
    out["nd_broadcast_partial_sum"] = build(
        "k_nd", loads, em.lines, res, 2,
        [T[:, :], T[:, :], T[:, :], numba.float64[:, :], numba.int64, numba.int64])
    # flat: a full sum (block tree + per-block partials) next to a full output, 's' and 'c' loads
    em = codegen.Emitter(codegen.FUNC_SRC_CUDA)
    x, s, k = codegen.Sym(em, "x0"), codegen.Sym(em, "x1"), codegen.Sym(em, "x2")
    v = codegen.SYM_MATH.exp(x * s) - k
    loads = [codegen.Load("a0", "x0", "a"), codegen.Load("a1", "x1", "s"),
             codegen.Load("a2", "x2", "c")]
    res = [("full", v.name, None, dtype), ("sum", v.name, (0,), dtype)]
    out["flat_full_sum"] = build("k_flat", loads, em.lines, res, None,
                                 [T[::1], T[::1], numba.float64, T[::1], numba.float64[::1],
                                  numba.int64])
    # the small fixed kernels of _cuda_prelude (second pass of sums, casts, in-place add, ...)
    from . import _cuda_prelude as P
    f64, i64, b1 = numba.float64, numba.int64, numba.boolean
    for name, k, sig in (
            ("finish_sum_f", P.finish_sum_f, (f64[::1], i64, T[::1], f64, b1)),
            ("finish_sum_i", P.finish_sum_i, (i64[::1], i64, i64[::1], f64, b1)),
            ("scale_cast", P.scale_cast_kernel, (f64[::1], T[::1], f64, b1)),
            ("add_into", P.add_into_kernel, (T[::1], T[::1])),
            ("scatter_set", P.scatter_set_kernel, (T[::1], i64[::1], T[::1])),
            ("prod_arb", P.prod_arb_kernel, (T[:, :, ::1], T[:, ::1], T)),
            ("prod_others_arb", P.prod_others_arb_kernel, (T[:, :, ::1], T[:, :, ::1], T))):
        out[f"prelude_{name}"] = c.compile_ptx(k.py_func, sig, cc=cc)[0]
    return out




def linear_index(shape, idx) -> np.ndarray:
    """The flat (C-order) positions that ``idx`` selects from an array of ``shape``, computed
    on the host with NumPy's own indexing rules (so every index form behaves as on the CPU)."""
    return np.arange(prod(shape), dtype=np.int64).reshape(shape)[idx]


def gather(x: DeviceArray, idx, out_dtype=None) -> DeviceArray:
    """x[idx] for any NumPy index, as a new array (a gather of the selected positions)."""
    from . import cuda_kernels
    lin = linear_index(x.shape, idx)
    out = empty(lin.shape, x.dtype if out_dtype is None else out_dtype)
    if out.size:
        src = x if x.flags.c_contiguous else contiguous(x)
        _debug.COUNTERS["kernel_launches"] += 1
        cuda_kernels.gather_flat(src.reshape(src.size).dev, to_device(lin.reshape(-1)).dev,
                                 out.reshape(out.size).dev)
    return out


def index_add(shape, idx, g: DeviceArray) -> DeviceArray:
    """zeros(shape) with g scatter-added at idx (duplicates accumulate: atomics)."""
    from . import cuda_kernels
    out = full(shape, 0, g.dtype)
    lin = linear_index(shape, idx)
    if lin.size:
        src = contiguous(g.expand(lin.shape) if g.shape != lin.shape else g)
        _debug.COUNTERS["kernel_launches"] += 1
        cuda_kernels.scatter_add_flat(out.reshape(out.size).dev,
                                      to_device(lin.reshape(-1)).dev,
                                      src.reshape(src.size).dev)
    return out


def concatenate(arrays, axis: int, dtype) -> DeviceArray:
    """np.concatenate on the device: each input is copied into its slab of the result (the
    axis is moved to the front so every slab is contiguous)."""
    from . import cuda_kernels
    nd = arrays[0].ndim
    perm = [axis] + [d for d in range(nd) if d != axis]
    inv = list(np.argsort(perm))
    moved = [a.transpose(perm) for a in arrays]
    total = sum(a.shape[0] for a in moved)
    out = empty((total,) + moved[0].shape[1:], dtype)
    lo = 0
    for a in moved:
        hi = lo + a.shape[0]
        if a.size:
            cuda_kernels.strided_copy(a.dev, out[lo:hi].dev)
        lo = hi
    res = out.transpose(inv)
    return res if axis == 0 else contiguous(res)


def prod_arb(x3, out):
    from ._cuda_prelude import prod_arb_kernel
    n = out.size
    _debug.COUNTERS["kernel_launches"] += 1
    if n:
        prod_arb_kernel[blocks_for(n), threads()](x3.dev, out.dev, out.dtype.type(1))


def prod_others_arb(x3, out):
    from ._cuda_prelude import prod_others_arb_kernel
    n = x3.shape[0] * x3.shape[2]
    _debug.COUNTERS["kernel_launches"] += 1
    if n:
        prod_others_arb_kernel[blocks_for(n), threads()](x3.dev, out.dev, out.dtype.type(1))


def broadcast_to(x: DeviceArray, shape) -> DeviceArray:
    """A stride-0 view (the interface's np.broadcast_to)."""
    return x.expand(shape)


def flip(x: DeviceArray, dims) -> DeviceArray:
    """A C-contiguous copy with ``dims`` reversed: one gather per flipped dim."""
    for d in dims:
        x = gather(x, (slice(None),) * d + (np.arange(x.shape[d] - 1, -1, -1),))
    return x if dims else contiguous(x)


def getitem(x: DeviceArray, idx) -> DeviceArray:
    """x[idx] with NumPy's rules: a view for a basic index, a gathered copy for an advanced one
    (an index array or a bool)."""
    if not any(isinstance(i, (np.ndarray, bool, np.bool_)) for i in idx):
        return basic_view(x, idx)
    return gather(x, idx)
