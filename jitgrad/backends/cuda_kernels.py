"""Hand-written numba.cuda kernels (reductions, softmax, matmul, scatter/gather, strided copy,
fill): the CUDA twins of cpu.py's njit kernels that are not generated from elementwise rules.

Imported lazily by backends/cuda.py when a CUDA tensor is used (it imports numba.cuda).

Conventions
- Every public function takes numba device arrays (DeviceNDArray, or FakeCUDAArray under the
  simulator), writes into outputs the caller allocated (C-contiguous), validates shapes and
  dtypes in Python before launching (ValueError naming them; Numba does no bounds checks),
  computes its launch configuration itself and launches on ``stream``. Nothing is compiled at
  import: kernels are built per (family, dtype, block width) on first use.
- Reductions use cpu.py's (A, R, B) form: reduce the middle axis of a 3-D array (any strides).
- Deterministic: the launch plan depends only on the shapes, each thread walks its elements in
  a fixed order and blocks combine with a fixed shared-memory tree; split reductions write
  per-block partials and a second pass adds them in a fixed order. No atomics except
  scatter_add_flat. Float sums accumulate in float64, integer sums in int64.
- No device-function calls: with the built-in target, compile_ptx of a kernel that calls a
  cuda.jit device function (or a register_jitable helper) queries the driver for the compute
  capability and fails without a GPU, so shared logic is written inline. Constants are typed
  (closure constants of the kernel's dtype: a Python float literal would make float32 kernels
  compute in float64) and ternaries replace max()/min() (which query the driver too).
- float32 kernels compute in float32; reductions accumulate in float64 by design (the f64 part
  of their PTX is only the accumulator's adds, conversions and moves: see ptx_f64_report).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda, types

SIM = bool(numba.config.ENABLE_CUDASIM)

# Threads per block of the 1-D kernels. The simulator runs each thread as a Python thread, so
# it gets narrow blocks (the tree code is the same for any power of two).
THREADS = 32 if SIM else 256
# Cap on the grid of grid-stride kernels (H100: 132 SMs x up to 8 resident blocks of 256; the
# simulator pays per block, and a few blocks make its tests walk the grid-stride loops).
MAX_BLOCKS = 4 if SIM else 4096
# Split reductions aim for about this many blocks in their first pass.
TARGET_BLOCKS = 4 if SIM else 1024
MAX_CHUNKS = 1024          # partials per output of a split reduction
MIN_PER_LANE = 4           # a reduction lane (thread) gets at least this many elements
SPLIT_PER_LANE = 16        # ... and at least this many in each chunk of a split reduction
BIG_OUT = 32768            # this many outputs fill the GPU with one thread per output
# Matmul tiling: (threads per side TS, register block RB, k-tile BK); a block computes a
# (TS*RB) x (TS*RB) tile of the output with TS*TS threads, each an RB x RB register block.
MATMUL_TILE = (8, 2, 8) if SIM else (16, 4, 16)
MAX_NDIM = 8

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INTS = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8))
_NUMERIC = _FLOATS + _INTS + (np.dtype(np.bool_),)
_ATOMIC = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))
_INDEX = (np.dtype(np.int32), np.dtype(np.int64))

_cache: dict = {}


# ---------------------------------------------------------------------------------------------
# Launch configuration and validation helpers

def grid_for(n: int, threads: int | None = None, max_blocks: int | None = None):
    """(blocks, threads) for a grid-stride loop over ``n`` items (at least one block)."""
    threads = THREADS if threads is None else threads
    cap = MAX_BLOCKS if max_blocks is None else max_blocks
    blocks = (n + threads - 1) // threads
    return (1 if blocks < 1 else (cap if blocks > cap else blocks)), threads


def _pow2_ceil(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def reduce_plan(A: int, R: int, B: int, threads: int | None = None, split: bool = True):
    """Launch plan of a middle-axis reduction: (bx, ry, n_tiles, C).

    A block of ``threads`` threads covers ``bx`` consecutive outputs (flat index a*B + b) with
    ``ry`` reduction lanes each (bx * ry == threads); lane ty of chunk c walks
    r = c*ry + ty, c*ry + ty + C*ry, ...  C > 1 splits R over C blocks that write partials.
    Small B: one output per block column, lanes over R (coalesced when B == 1); B >= 32: 32
    outputs side by side (coalesced across b); many outputs and a short R: one thread each."""
    T = THREADS if threads is None else threads
    n_out = A * B
    if n_out >= BIG_OUT and (B >= 32 or R <= 32):
        bx, ry = T, 1
    else:
        bx = _pow2_ceil(B)
        bx = 32 if bx > 32 else bx
        bx = T if bx > T else bx
        ry = T // bx
        while ry > 1 and ry * MIN_PER_LANE > R:   # a short R: fewer lanes, more outputs
            ry //= 2
        bx = T // ry
    n_tiles = (n_out + bx - 1) // bx
    C = 1
    if split and n_tiles < TARGET_BLOCKS:
        want = (TARGET_BLOCKS + n_tiles - 1) // n_tiles
        most = (R + ry * SPLIT_PER_LANE - 1) // (ry * SPLIT_PER_LANE)
        C = want if want < most else most
        C = MAX_CHUNKS if C > MAX_CHUNKS else C
        C = 1 if C < 1 else C
    return bx, ry, n_tiles, C


def _dt(arr) -> np.dtype:
    return np.dtype(arr.dtype)


def _shape(arr) -> tuple:
    return tuple(int(s) for s in arr.shape)


def _is_c(arr) -> bool:
    return bool(arr.is_c_contiguous())


def _need(cond: bool, msg: str):
    if not cond:
        raise ValueError(f"jitgrad.cuda_kernels: {msg}")


def _check_out(name: str, out, shape: tuple, dtypes=_NUMERIC):
    _need(_shape(out) == tuple(shape),
          f"{name}: output has shape {_shape(out)}, expected {tuple(shape)}")
    _need(_dt(out) in dtypes, f"{name}: unsupported output dtype {_dt(out)}")
    _need(_is_c(out), f"{name}: output must be C-contiguous (shape {_shape(out)}, "
                      f"strides {tuple(out.strides)})")


def _check_3d(name: str, x, dtypes=_NUMERIC):
    _need(len(x.shape) == 3, f"{name}: expected a 3-D (A, R, B) array, got shape {_shape(x)}")
    _need(_dt(x) in dtypes, f"{name}: unsupported input dtype {_dt(x)}")


def _flat(arr):
    """1-D view of a C-contiguous device array (0-d included)."""
    return arr.reshape(int(arr.size))


def _nb(dt: np.dtype):
    return numba.from_dtype(np.dtype(dt))


def _acc_kind(dt: np.dtype) -> str:
    return "f" if np.dtype(dt).kind == "f" else "i"


def _acc_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if _acc_kind(dt) == "f" else np.dtype(np.int64)


# Scratch (per-block partials) comes from here: a callable (shape, dtype, stream) -> device
# array; None uses cuda.device_array. backends/cuda.py may point it at its caching allocator.
scratch_alloc = None


def _scratch(shape, dtype, stream):
    if scratch_alloc is not None:
        return scratch_alloc(shape, np.dtype(dtype), stream)
    return cuda.device_array(shape, dtype=dtype, stream=stream)


def _get(key, build):
    k = _cache.get(key)
    if k is None:
        k = _cache[key] = build()
    return k


# ---------------------------------------------------------------------------------------------
# sum over the middle axis

def _build_sum(acc_kind: str, threads: int):
    ACC = numba.float64 if acc_kind == "f" else numba.int64
    ZERO = np.float64(0) if acc_kind == "f" else np.int64(0)
    T = threads

    @cuda.jit
    def sum_tiles(x, dst, bx, ry, n_tiles, C):
        """dst[a, c, b] = sum of x[a, r, b] over chunk c (see reduce_plan)."""
        A, R, B = x.shape
        n_out = A * B
        tid = cuda.threadIdx.x
        ty = tid // bx
        tx = tid - ty * bx
        sh = cuda.shared.array(T, ACC)
        step = C * ry
        for blk in range(cuda.blockIdx.x, n_tiles * C, cuda.gridDim.x):
            tile = blk // C
            c = blk - tile * C
            o = tile * bx + tx
            a = o // B
            b = o - a * B
            acc = ZERO
            if o < n_out:
                for r in range(c * ry + ty, R, step):
                    acc += x[a, r, b]
            sh[tid] = acc
            cuda.syncthreads()
            w = ry // 2
            while w > 0:
                if ty < w:
                    sh[tid] += sh[tid + w * bx]
                cuda.syncthreads()
                w //= 2
            if ty == 0 and o < n_out:
                dst[a, c, b] = sh[tx]
            cuda.syncthreads()  # sh is reused by the next tile
    return sum_tiles


def sum_arb(x3, out, stream=0):
    """out[a, b] = sum_r x3[a, r, b] (cast on store). Float inputs accumulate in float64,
    integer/bool inputs in int64. Deterministic (fixed per-shape plan, fixed trees)."""
    _check_3d("sum_arb", x3)
    A, R, B = _shape(x3)
    _check_out("sum_arb", out, (A, B))
    if A * B == 0:
        return
    if R == 0:
        fill(out, 0, stream=stream)
        return
    _sum_into(x3, out.reshape(A, 1, B), stream)


def _sum_into(x3, dst3, stream):
    A, R, B = _shape(x3)
    T = THREADS
    kind = _acc_kind(_dt(x3))
    bx, ry, n_tiles, C = reduce_plan(A, R, B, T)
    k = _get(("sum", kind, T), lambda: _build_sum(kind, T))
    if C == 1:
        blocks = n_tiles if n_tiles < MAX_BLOCKS else MAX_BLOCKS
        k[blocks, T, stream](x3, dst3, bx, ry, n_tiles, 1)
        return
    part = _scratch((A, C, B), _acc_dtype(_dt(x3)), stream)
    nblk = n_tiles * C
    k[(nblk if nblk < MAX_BLOCKS else MAX_BLOCKS), T, stream](x3, part, bx, ry, n_tiles, C)
    _sum_into(part, dst3, stream)   # partials: (A, C, B) -> (A, 1, B), fixed order


# ---------------------------------------------------------------------------------------------
# max / min with the index of the first extreme (NaN wins, like torch)

def _build_extreme(dt: np.dtype, threads: int, src_idx: bool):
    DT = _nb(dt)
    INIT = np.dtype(dt).type(0)
    T = threads
    SRC_IDX = src_idx

    @cuda.jit
    def extreme_tiles(x, xi, dst, dsti, sign, bx, ry, n_tiles, C):
        """dst/dsti[a, c, b] = extreme of x[a, r, b] over chunk c and its index (r, or xi's
        entry when SRC_IDX: the second pass over partials)."""
        A, R, B = x.shape
        n_out = A * B
        tid = cuda.threadIdx.x
        ty = tid // bx
        tx = tid - ty * bx
        shv = cuda.shared.array(T, DT)
        shi = cuda.shared.array(T, numba.int64)
        step = C * ry
        for blk in range(cuda.blockIdx.x, n_tiles * C, cuda.gridDim.x):
            tile = blk // C
            c = blk - tile * C
            o = tile * bx + tx
            a = o // B
            b = o - a * B
            best = INIT
            bi = -1
            if o < n_out:
                for r in range(c * ry + ty, R, step):
                    v = x[a, r, b]
                    vi = xi[a, r, b] if SRC_IDX else r
                    # take (v, vi)? NaN beats numbers; among equals / NaNs the lower index wins
                    if bi < 0:
                        take = True
                    elif best != best:
                        take = v != v and vi < bi
                    elif v != v:
                        take = True
                    elif (v > best) if sign > 0 else (v < best):
                        take = True
                    else:
                        take = v == best and vi < bi
                    if take:
                        best = v
                        bi = vi
            shv[tid] = best
            shi[tid] = bi
            cuda.syncthreads()
            w = ry // 2
            while w > 0:
                if ty < w:
                    j = tid + w * bx
                    v = shv[j]
                    vi = shi[j]
                    best = shv[tid]
                    bi = shi[tid]
                    if vi < 0:   # the other lane saw nothing
                        take = False
                    elif bi < 0:
                        take = True
                    elif best != best:
                        take = v != v and vi < bi
                    elif v != v:
                        take = True
                    elif (v > best) if sign > 0 else (v < best):
                        take = True
                    else:
                        take = v == best and vi < bi
                    if take:
                        shv[tid] = v
                        shi[tid] = vi
                cuda.syncthreads()
                w //= 2
            if ty == 0 and o < n_out:
                dst[a, c, b] = shv[tx]
                dsti[a, c, b] = shi[tx]
            cuda.syncthreads()
    return extreme_tiles


def extreme_arb(x3, out, idx=None, sign=1, stream=0):
    """out[a, b] = max (sign=1) or min (sign=-1) of x3[a, :, b]; idx[a, b] = index of its first
    occurrence (int64; None: values only). NaN wins (the first NaN), like torch. out has x3's
    dtype. Deterministic. R must be >= 1 (torch raises for an empty reduction)."""
    _check_3d("extreme_arb", x3)
    A, R, B = _shape(x3)
    dt = _dt(x3)
    _check_out("extreme_arb", out, (A, B), (dt,))
    _need(sign in (1, -1), f"extreme_arb: sign must be 1 or -1, got {sign!r}")
    if idx is not None:
        _check_out("extreme_arb (idx)", idx, (A, B), (np.dtype(np.int64),))
    if A * B == 0:
        return
    _need(R >= 1, f"extreme_arb: cannot reduce an empty axis (shape {(A, R, B)})")
    if idx is None:
        idx = _scratch((A, B), np.int64, stream)
    _extreme_into(x3, None, out.reshape(A, 1, B), idx.reshape(A, 1, B), int(sign), stream)


def _extreme_into(x3, xi3, dst3, dsti3, sign, stream):
    A, R, B = _shape(x3)
    T = THREADS
    dt = _dt(x3)
    src_idx = xi3 is not None
    bx, ry, n_tiles, C = reduce_plan(A, R, B, T)
    k = _get(("extreme", dt, T, src_idx), lambda: _build_extreme(dt, T, src_idx))
    xi = xi3 if src_idx else dsti3   # unused placeholder of the right kind when not SRC_IDX
    if C == 1:
        blocks = n_tiles if n_tiles < MAX_BLOCKS else MAX_BLOCKS
        k[blocks, T, stream](x3, xi, dst3, dsti3, sign, bx, ry, n_tiles, 1)
        return
    part = _scratch((A, C, B), dt, stream)
    parti = _scratch((A, C, B), np.int64, stream)
    nblk = n_tiles * C
    k[(nblk if nblk < MAX_BLOCKS else MAX_BLOCKS), T, stream](
        x3, xi, part, parti, sign, bx, ry, n_tiles, C)
    _extreme_into(part, parti, dst3, dsti3, sign, stream)


# ---------------------------------------------------------------------------------------------
# softmax / log_softmax / logsumexp and the softmax VJP (one block column per row)

_SOFTMAX, _LOG_SOFTMAX, _LOGSUMEXP = 0, 1, 2


def _build_softmax(dt: np.dtype, threads: int, mode: int):
    DT = _nb(dt)
    NEG_INF = np.dtype(dt).type(-np.inf)
    POS_INF = np.dtype(dt).type(np.inf)
    ZERO = np.dtype(dt).type(0)
    SZERO = np.float64(0)
    T = threads
    MODE = mode

    @cuda.jit
    def softmax_tiles(x, out, bx, ry, n_tiles):
        """Same semantics as cpu.softmax_arb / logsumexp_arb: m = max (NaN wins), an all -inf
        (or empty) row uses m = 0 for (log_)softmax; exp sums accumulate in float64."""
        A, R, B = x.shape
        n_out = A * B
        tid = cuda.threadIdx.x
        ty = tid // bx
        tx = tid - ty * bx
        shm = cuda.shared.array(T, DT)
        shs = cuda.shared.array(T, numba.float64)
        for blk in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
            o = blk * bx + tx
            a = o // B
            b = o - a * B
            ok = o < n_out
            m = NEG_INF
            if ok:
                for r in range(ty, R, ry):
                    v = x[a, r, b]
                    if v > m or v != v:
                        m = v
            shm[tid] = m
            cuda.syncthreads()
            w = ry // 2
            while w > 0:
                if ty < w:
                    v = shm[tid + w * bx]
                    if v > shm[tid] or v != v:
                        shm[tid] = v
                cuda.syncthreads()
                w //= 2
            m = shm[tx]
            special = m != m or m == POS_INF or m == NEG_INF
            if MODE != _LOGSUMEXP and m == NEG_INF:
                m = ZERO
            s = SZERO
            if ok and not (MODE == _LOGSUMEXP and special):
                for r in range(ty, R, ry):
                    s += math.exp(x[a, r, b] - m)
            shs[tid] = s
            cuda.syncthreads()
            w = ry // 2
            while w > 0:
                if ty < w:
                    shs[tid] += shs[tid + w * bx]
                cuda.syncthreads()
                w //= 2
            s = shs[tx]
            if ok:
                if MODE == _LOGSUMEXP:
                    if ty == 0:
                        if special:
                            out[a, b] = m
                        else:
                            out[a, b] = m + math.log(DT(s))   # log in the row's dtype
                elif MODE == _LOG_SOFTMAX:
                    sd = DT(s)   # 0 only for an all -inf row: log -> -inf, result NaN
                    ls = math.log(sd) if sd > ZERO else NEG_INF
                    for r in range(ty, R, ry):
                        out[a, r, b] = x[a, r, b] - m - ls
                else:
                    sd = DT(s)
                    for r in range(ty, R, ry):
                        out[a, r, b] = math.exp(x[a, r, b] - m) / sd
            cuda.syncthreads()
    return softmax_tiles


def _row_plan(A: int, R: int, B: int):
    bx, ry, n_tiles, _ = reduce_plan(A, R, B, THREADS, split=False)
    return bx, ry, n_tiles, (n_tiles if n_tiles < MAX_BLOCKS else MAX_BLOCKS)


def softmax_arb(x3, out, log, stream=0):
    """(log_)softmax of x3 over its middle axis into out (same shape and dtype, float32/64).
    Max-subtracted, float64 sums, like cpu.softmax_arb. Deterministic."""
    _check_3d("softmax_arb", x3, _FLOATS)
    A, R, B = _shape(x3)
    dt = _dt(x3)
    _check_out("softmax_arb", out, (A, R, B), (dt,))
    if A * R * B == 0:
        return
    mode = _LOG_SOFTMAX if log else _SOFTMAX
    T = THREADS
    k = _get(("softmax", dt, T, mode), lambda: _build_softmax(dt, T, mode))
    bx, ry, n_tiles, blocks = _row_plan(A, R, B)
    k[blocks, T, stream](x3, out, bx, ry, n_tiles)


def logsumexp_arb(x3, out, stream=0):
    """out[a, b] = log(sum_r exp(x3[a, r, b])), max-subtracted, float64 sum; NaN / +inf /
    all -inf (or empty) rows give that max, like cpu.logsumexp_arb. Deterministic."""
    _check_3d("logsumexp_arb", x3, _FLOATS)
    A, R, B = _shape(x3)
    dt = _dt(x3)
    _check_out("logsumexp_arb", out, (A, B), (dt,))
    if A * B == 0:
        return
    T = THREADS
    k = _get(("softmax", dt, T, _LOGSUMEXP), lambda: _build_softmax(dt, T, _LOGSUMEXP))
    bx, ry, n_tiles, blocks = _row_plan(A, R, B)
    k[blocks, T, stream](x3, out, bx, ry, n_tiles)


def _build_softmax_vjp(dt: np.dtype, threads: int, log: bool):
    DT = _nb(dt)
    SZERO = np.float64(0)
    T = threads
    LOG = log

    @cuda.jit
    def softmax_vjp_tiles(out, g, res, bx, ry, n_tiles):
        """log: res = g - exp(out) * sum(g); else res = out * (g - sum(g * out))."""
        A, R, B = out.shape
        n_out = A * B
        tid = cuda.threadIdx.x
        ty = tid // bx
        tx = tid - ty * bx
        shs = cuda.shared.array(T, numba.float64)
        for blk in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
            o = blk * bx + tx
            a = o // B
            b = o - a * B
            ok = o < n_out
            s = SZERO
            if ok:
                for r in range(ty, R, ry):
                    if LOG:
                        s += g[a, r, b]
                    else:
                        s += g[a, r, b] * out[a, r, b]
            shs[tid] = s
            cuda.syncthreads()
            w = ry // 2
            while w > 0:
                if ty < w:
                    shs[tid] += shs[tid + w * bx]
                cuda.syncthreads()
                w //= 2
            sd = DT(shs[tx])
            if ok:
                for r in range(ty, R, ry):
                    if LOG:
                        res[a, r, b] = g[a, r, b] - math.exp(out[a, r, b]) * sd
                    else:
                        res[a, r, b] = out[a, r, b] * (g[a, r, b] - sd)
            cuda.syncthreads()
    return softmax_vjp_tiles


def softmax_vjp_arb(out, g, res, log, stream=0):
    """VJP of (log_)softmax over the middle axis given its output ``out`` and the incoming
    gradient ``g`` (all (A, R, B), one float dtype) into ``res``. float64 row sums."""
    _check_3d("softmax_vjp_arb (out)", out, _FLOATS)
    shp = _shape(out)
    dt = _dt(out)
    _check_3d("softmax_vjp_arb (g)", g, (dt,))
    _need(_shape(g) == shp, f"softmax_vjp_arb: g has shape {_shape(g)}, out has {shp}")
    _check_out("softmax_vjp_arb", res, shp, (dt,))
    A, R, B = shp
    if A * R * B == 0:
        return
    T = THREADS
    lg = bool(log)
    k = _get(("softmax_vjp", dt, T, lg), lambda: _build_softmax_vjp(dt, T, lg))
    bx, ry, n_tiles, blocks = _row_plan(A, R, B)
    k[blocks, T, stream](out, g, res, bx, ry, n_tiles)


# ---------------------------------------------------------------------------------------------
# batched matmul: shared-memory tiles, register blocks, accumulation in the input dtype

def _build_matmul(dt: np.dtype, ts: int, rb: int, bk: int):
    DT = _nb(dt)
    ZERO = np.dtype(dt).type(0)
    TS, RB, BK = ts, rb, bk
    BM = TS * RB
    NT = TS * TS

    @cuda.jit
    def matmul_tiles(a, b, out):
        Bt, M, K = a.shape
        N = b.shape[2]
        tid = cuda.threadIdx.x
        ty = tid // TS
        tx = tid - ty * TS
        As = cuda.shared.array((BM, BK), DT)
        Bs = cuda.shared.array((BK, BM), DT)
        acc = cuda.local.array((RB, RB), DT)
        ar = cuda.local.array(RB, DT)
        br = cuda.local.array(RB, DT)
        nbm = (M + BM - 1) // BM
        nbn = (N + BM - 1) // BM
        per = nbm * nbn
        for t in range(cuda.blockIdx.x, Bt * per, cuda.gridDim.x):
            bt = t // per
            rem = t - bt * per
            bm = rem // nbn
            m0 = bm * BM
            n0 = (rem - bm * nbn) * BM
            for i in range(RB):
                for j in range(RB):
                    acc[i, j] = ZERO
            for k0 in range(0, K, BK):
                for l in range(tid, BM * BK, NT):
                    row = l // BK
                    col = l - row * BK
                    gm = m0 + row
                    gk = k0 + col
                    As[row, col] = a[bt, gm, gk] if (gm < M and gk < K) else ZERO
                for l in range(tid, BK * BM, NT):
                    row = l // BM
                    col = l - row * BM
                    gk = k0 + row
                    gn = n0 + col
                    Bs[row, col] = b[bt, gk, gn] if (gk < K and gn < N) else ZERO
                cuda.syncthreads()
                for kk in range(BK):
                    for i in range(RB):
                        ar[i] = As[ty + i * TS, kk]
                    for j in range(RB):
                        br[j] = Bs[kk, tx + j * TS]
                    for i in range(RB):
                        for j in range(RB):
                            acc[i, j] += ar[i] * br[j]
                cuda.syncthreads()
            for i in range(RB):
                gm = m0 + ty + i * TS
                if gm < M:
                    for j in range(RB):
                        gn = n0 + tx + j * TS
                        if gn < N:
                            out[bt, gm, gn] = acc[i, j]
    return matmul_tiles


def matmul(a, b, out, stream=0):
    """out[t] = a[t] @ b[t] for a (Bt, M, K), b (Bt, K, N), out (Bt, M, N); float32 or float64,
    one dtype, accumulated in that dtype (like cuBLAS; with FMA contraction). a and b may have
    any strides (a transposed view needs no copy); out C-contiguous. Deterministic."""
    for nm, arr in (("a", a), ("b", b), ("out", out)):
        _need(len(arr.shape) == 3, f"matmul: {nm} must be 3-D (Bt, ., .), got {_shape(arr)}")
    Bt, M, K = _shape(a)
    _need(_shape(b)[0] == Bt and _shape(b)[1] == K,
          f"matmul: shapes {_shape(a)} and {_shape(b)} do not match (Bt, M, K) @ (Bt, K, N)")
    N = _shape(b)[2]
    dt = _dt(a)
    _need(dt in _FLOATS and _dt(b) == dt,
          f"matmul: a and b must share a float dtype, got {dt} and {_dt(b)}")
    _check_out("matmul", out, (Bt, M, N), (dt,))
    if Bt * M * N == 0:
        return
    ts, rb, bk = MATMUL_TILE
    k = _get(("matmul", dt, ts, rb, bk), lambda: _build_matmul(dt, ts, rb, bk))
    bm = ts * rb
    n_t = Bt * ((M + bm - 1) // bm) * ((N + bm - 1) // bm)
    cap = 1 << 20
    k[(n_t if n_t < cap else cap), ts * ts, stream](a, b, out)


def matmul_flops(Bt: int, M: int, N: int, K: int) -> int:
    """Floating-point operations of a batched matmul (2 per multiply-add)."""
    return 2 * Bt * M * N * K


# ---------------------------------------------------------------------------------------------
# scatter-add / gather on flat arrays

@cuda.jit
def _scatter_add_k(out, idx, src):
    for i in range(cuda.grid(1), idx.size, cuda.gridsize(1)):
        cuda.atomic.add(out, idx[i], src[i])


@cuda.jit
def _gather_k(src, idx, out):
    for i in range(cuda.grid(1), idx.size, cuda.gridsize(1)):
        out[i] = src[idx[i]]


def _check_flat(name, arr, what):
    _need(len(arr.shape) == 1, f"{name}: {what} must be 1-D, got shape {_shape(arr)}")


def scatter_add_flat(out, idx, src, stream=0):
    """out[idx[i]] += src[i] with atomics (float32/float64/int32/int64, src of out's dtype);
    idx (int32/int64) must already lie in [0, out.size). Float results may differ in the last
    bits between runs (atomic order); integer results are exact."""
    for nm, arr in (("out", out), ("idx", idx), ("src", src)):
        _check_flat("scatter_add_flat", arr, nm)
    _need(_dt(out) in _ATOMIC, f"scatter_add_flat: unsupported dtype {_dt(out)} (atomics: "
                               "float32, float64, int32, int64)")
    _need(_dt(src) == _dt(out), f"scatter_add_flat: src dtype {_dt(src)} != out {_dt(out)}")
    _need(_dt(idx) in _INDEX, f"scatter_add_flat: idx must be int32/int64, got {_dt(idx)}")
    _need(_shape(idx) == _shape(src),
          f"scatter_add_flat: idx {_shape(idx)} and src {_shape(src)} differ")
    n = _shape(idx)[0]
    if n == 0:
        return
    _need(_shape(out)[0] > 0, "scatter_add_flat: empty output with a non-empty index")
    blocks, threads = grid_for(n)
    _scatter_add_k[blocks, threads, stream](out, idx, src)


def gather_flat(src, idx, out, stream=0):
    """out[i] = src[idx[i]] (cast on store); idx (int32/int64) must lie in [0, src.size)."""
    for nm, arr in (("src", src), ("idx", idx), ("out", out)):
        _check_flat("gather_flat", arr, nm)
    _need(_dt(src) in _NUMERIC and _dt(out) in _NUMERIC,
          f"gather_flat: unsupported dtypes {_dt(src)} -> {_dt(out)}")
    _need(_dt(idx) in _INDEX, f"gather_flat: idx must be int32/int64, got {_dt(idx)}")
    _need(_shape(idx) == _shape(out),
          f"gather_flat: idx {_shape(idx)} and out {_shape(out)} differ")
    n = _shape(idx)[0]
    if n == 0:
        return
    _need(_shape(src)[0] > 0, "gather_flat: empty source with a non-empty index")
    blocks, threads = grid_for(n)
    _gather_k[blocks, threads, stream](src, idx, out)


# ---------------------------------------------------------------------------------------------
# strided copy (contiguous materialisation, broadcasts, dtype casts) and fill

@cuda.jit
def _copy_flat_k(src, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[i]


def _build_copy_nd(ndim: int):
    """Kernel for an ndim-D source view of any strides (0 from broadcasting included): each
    thread decomposes its flat C-order output index into the source's N-d index."""
    ii = [f"i{d}" for d in range(ndim)]
    lines = ["def copy_nd(src, out):",
             "    shp = src.shape",
             "    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):",
             "        rem = i"]
    for d in range(ndim - 1, 0, -1):
        lines += [f"        q = rem // shp[{d}]",
                  f"        i{d} = rem - q * shp[{d}]",
                  "        rem = q"]
    lines += ["        i0 = rem", f"        out[i] = src[{', '.join(ii)}]"]
    ns = {"cuda": cuda}
    exec(compile("\n".join(lines) + "\n", f"<jitgrad cuda copy_nd {ndim}>", "exec"), ns)
    return cuda.jit(ns["copy_nd"])


def strided_copy(src, out, stream=0):
    """out[...] = src[...] for a source view of any strides (0-strides from expand included),
    ndim 0..8, into a C-contiguous out of the same shape and any dtype (cast on store)."""
    shp = _shape(src)
    _need(len(shp) <= MAX_NDIM, f"strided_copy: at most {MAX_NDIM} dims, got shape {shp}")
    _need(_dt(src) in _NUMERIC, f"strided_copy: unsupported source dtype {_dt(src)}")
    _check_out("strided_copy", out, shp)
    n = int(math.prod(shp))
    if n == 0:
        return
    blocks, threads = grid_for(n)
    if _is_c(src):   # 0-d and contiguous sources: a flat copy / cast
        _copy_flat_k[blocks, threads, stream](_flat(src), _flat(out))
        return
    k = _get(("copy_nd", len(shp)), lambda: _build_copy_nd(len(shp)))
    k[blocks, threads, stream](src, _flat(out))


@cuda.jit
def _fill_k(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


def fill(out, value, stream=0):
    """Set every element of the C-contiguous ``out`` to ``value`` (cast to out's dtype on the
    host, so the kernel stores a value of its own type)."""
    _need(_dt(out) in _NUMERIC, f"fill: unsupported dtype {_dt(out)}")
    _need(_is_c(out), f"fill: output must be C-contiguous, got strides {tuple(out.strides)}")
    n = int(out.size)
    if n == 0:
        return
    v = _dt(out).type(value)
    blocks, threads = grid_for(n)
    _fill_k[blocks, threads, stream](_flat(out), v)


# ---------------------------------------------------------------------------------------------
# PTX checks (compile without a GPU: numba.cuda.compile_ptx; never at import)

def _arr(dt, ndim, layout="C"):
    return types.Array(_nb(np.dtype(dt)), ndim, layout)


def _ptx_jobs():
    """(name, python function, signature) for every kernel family and dtype variant, built with
    the real (non-simulator) launch constants."""
    i64, f32, f64 = types.int64, np.float32, np.float64
    T = 256
    jobs = []
    for dt in (np.float32, np.float64, np.int32, np.int64, np.bool_):
        nm = np.dtype(dt).name
        acc = _acc_dtype(np.dtype(dt))
        k = _build_sum(_acc_kind(np.dtype(dt)), T)
        jobs.append((f"sum_arb[{nm}->{np.dtype(acc).name} partials]", k.py_func,
                     (_arr(dt, 3, "A"), _arr(acc, 3), i64, i64, i64, i64)))
        if np.dtype(dt).kind == "f":
            jobs.append((f"sum_arb[{nm}->{nm}]", k.py_func,
                         (_arr(dt, 3, "A"), _arr(dt, 3), i64, i64, i64, i64)))
    for dt in (np.float32, np.float64, np.int64):
        nm = np.dtype(dt).name
        for src_idx in (False, True):
            k = _build_extreme(np.dtype(dt), T, src_idx)
            jobs.append((f"extreme_arb[{nm}{', partials' if src_idx else ''}]", k.py_func,
                         (_arr(dt, 3, "A"), _arr(np.int64, 3), _arr(dt, 3), _arr(np.int64, 3),
                          i64, i64, i64, i64, i64)))
    for dt in (f32, f64):
        nm = np.dtype(dt).name
        for mode, mname in ((_SOFTMAX, "softmax"), (_LOG_SOFTMAX, "log_softmax")):
            k = _build_softmax(np.dtype(dt), T, mode)
            jobs.append((f"softmax_arb[{mname},{nm}]", k.py_func,
                         (_arr(dt, 3, "A"), _arr(dt, 3), i64, i64, i64)))
        k = _build_softmax(np.dtype(dt), T, _LOGSUMEXP)
        jobs.append((f"logsumexp_arb[{nm}]", k.py_func,
                     (_arr(dt, 3, "A"), _arr(dt, 2), i64, i64, i64)))
        for lg in (False, True):
            k = _build_softmax_vjp(np.dtype(dt), T, lg)
            jobs.append((f"softmax_vjp_arb[{'log' if lg else 'softmax'},{nm}]", k.py_func,
                         (_arr(dt, 3, "A"), _arr(dt, 3, "A"), _arr(dt, 3), i64, i64, i64)))
        k = _build_matmul(np.dtype(dt), 16, 4, 16)
        jobs.append((f"matmul[{nm}]", k.py_func,
                     (_arr(dt, 3, "A"), _arr(dt, 3, "A"), _arr(dt, 3))))
    for dt in (np.float32, np.float64, np.int32, np.int64):
        nm = np.dtype(dt).name
        jobs.append((f"scatter_add_flat[{nm}]", _scatter_add_k.py_func,
                     (_arr(dt, 1), _arr(np.int64, 1), _arr(dt, 1))))
    for dt in (np.float32, np.float64, np.int64):
        nm = np.dtype(dt).name
        jobs.append((f"gather_flat[{nm}]", _gather_k.py_func,
                     (_arr(dt, 1, "A"), _arr(np.int64, 1), _arr(dt, 1))))
    for s, o in ((f32, f32), (f64, f64), (np.int64, f32), (f64, f32), (np.int64, np.int64),
                 (np.bool_, f32), (f32, np.bool_)):
        nm = f"{np.dtype(s).name}->{np.dtype(o).name}"
        jobs.append((f"strided_copy[flat,{nm}]", _copy_flat_k.py_func,
                     (_arr(s, 1), _arr(o, 1))))
    for nd in (2, 3, 8):
        for s, o in ((f32, f32), (f64, f64), (np.int64, f32)):
            nm = f"{np.dtype(s).name}->{np.dtype(o).name}"
            jobs.append((f"strided_copy[{nd}d,{nm}]", _build_copy_nd(nd).py_func,
                         (_arr(s, nd, "A"), _arr(o, 1))))
    for dt in (np.float32, np.float64, np.int32, np.int64, np.bool_):
        nm = np.dtype(dt).name
        jobs.append((f"fill[{nm}]", _fill_k.py_func, (_arr(dt, 1), _nb(np.dtype(dt)))))
    return jobs


def ptx_check(cc=(9, 0)) -> dict:
    """{variant name: PTX} for every kernel family and dtype variant, compiled with
    ``numba.cuda.compile_ptx`` (needs NVVM, not a GPU; not under the simulator)."""
    if SIM:
        raise RuntimeError("ptx_check needs the real CUDA target (NUMBA_ENABLE_CUDASIM=0)")
    res = {}
    for name, fn, sig in _ptx_jobs():
        ptx, _ = cuda.compile_ptx(fn, sig, cc=cc)
        res[name] = ptx
    return res


_F64_OP = None


def f64_ops(ptx: str) -> list:
    """Distinct PTX instructions of the form <op>[.mods].f64 (arithmetic, conversions to or
    from f64, f64 loads/stores) found in ``ptx``; [] means no double precision at all."""
    import re
    global _F64_OP
    if _F64_OP is None:
        _F64_OP = re.compile(r"^\s*(?:@!?%p\d+\s+)?([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\.f64"
                             r"(?:\.[a-z0-9_]+)*)\b", re.M)
    return sorted(set(_F64_OP.findall(ptx)))


# float32 variants whose PTX must hold no f64 instruction at all
F32_PURE = ("strided_copy[flat,float32->float32]", "strided_copy[flat,int64->float32]",
            "strided_copy[2d,float32->float32]", "strided_copy[8d,int64->float32]",
            "matmul[float32]", "fill[float32]", "gather_flat[float32]",
            "scatter_add_flat[float32]", "extreme_arb[float32]", "extreme_arb[float32, partials]")
# float32 variants that accumulate in float64 by design: their f64 instructions may only be the
# accumulator's adds, conversions, moves and loads/stores (an f64 mul/sub/div/fma or an f64
# libdevice call would mean an untyped constant leaked into the float32 arithmetic)
F32_F64_ACC = ("sum_arb[float32->float64 partials]", "sum_arb[float32->float32]",
               "softmax_arb[softmax,float32]", "softmax_arb[log_softmax,float32]",
               "logsumexp_arb[float32]", "softmax_vjp_arb[softmax,float32]",
               "softmax_vjp_arb[log,float32]")
F64_ACC_OPS = frozenset({"add.f64", "add.rn.f64", "cvt.f64.f32", "cvt.rn.f32.f64", "mov.f64",
                         "ld.shared.f64", "st.shared.f64", "ld.global.f64", "st.global.f64"})


def ptx_f64_report(cc=(9, 0), ptx: dict | None = None) -> dict:
    """For the float32 variants: {name: unexpected f64 instructions} ([] = clean). F32_PURE
    variants may hold none; F32_F64_ACC variants only F64_ACC_OPS. ``ptx``: ptx_check's
    result, to avoid compiling twice."""
    ptx = ptx_check(cc) if ptx is None else ptx
    rep = {name: f64_ops(ptx[name]) for name in F32_PURE}
    rep.update({name: [op for op in f64_ops(ptx[name]) if op not in F64_ACC_OPS]
                for name in F32_F64_ACC})
    return rep
