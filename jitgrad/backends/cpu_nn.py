"""Hand-written njit kernels for the fused ``nn.functional`` ops (``linear``, ``cross_entropy``).

Every kernel is compiled lazily on first call (disk-cached by ``cpu.njit_cached``: a later
process loads machine code) and does no bounds checking: callers in ``jitgrad/nn/functional.py``
validate shapes, dtypes and class indices before launching. Sums accumulate in float64 like the
reductions in ``cpu.py``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .cpu import njit_cached

_NJIT = dict(error_model="numpy", nogil=True)  # disk-cached (cpu.njit_cached)
_IN_CPU_VM = ("cross_entropy_fwd",)  # (kernels that call vmath: see cpu_vm)


def __getattr__(name):
    """The kernels of ``cpu_vm``, imported on first use (vmath is not imported with jitgrad)."""
    if name in _IN_CPU_VM:
        from . import cpu_vm
        return getattr(cpu_vm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@njit_cached(**_NJIT)
def add_rows(out, b):
    """out[i, j] += b[j] (the bias epilogue of ``linear``); out is (N, M), b is (M,)."""
    N, M = out.shape
    for i in range(N):
        for j in range(M):
            out[i, j] += b[j]


# The 8x8 float32 transpose as three rounds of shuffles (unpack pairs of rows, then pairs of
# pairs, then 128-bit halves): LLVM gives vunpcklps/vshufps/vperm2f128-class code. A loop of
# scalar copies transposing 256 x 128 float32 ran at 0.55-0.66 ns/element here, this at 0.14
# (the row-wise bias add alone: 0.12).
_T8 = ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15],
       [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15],
       [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])


def _c_f32_2d(t, ndim=2):
    return isinstance(t, types.Array) and t.dtype == types.float32 and t.ndim == ndim and \
        t.layout == "C"


@intrinsic
def _tile8_t_bias(typingctx, src, j0, i0, out, b):
    """``out[i0 + r, j0 + c] = src[j0 + c, i0 + r] + b[j0 + c]`` for r, c < 8 (float32, C
    layout, no bounds checks: the caller keeps the tile inside both arrays)."""
    if not (_c_f32_2d(src) and _c_f32_2d(out) and _c_f32_2d(b, 1)):
        return None
    sig = types.void(src, types.intp, types.intp, out, b)

    def codegen(context, builder, sig, args):
        sa, oa, ba = (context.make_array(t)(context, builder, a)
                      for t, a in zip((sig.args[0], sig.args[3], sig.args[4]),
                                      (args[0], args[3], args[4])))
        i64, v8 = ir.IntType(64), ir.VectorType(ir.FloatType(), 8)
        j0, i0 = args[1], args[2]
        m, n = builder.extract_value(sa.shape, 1), builder.extract_value(oa.shape, 1)

        def vec_at(base, row, stride, col):
            off = builder.add(builder.mul(builder.add(row[0], ir.Constant(i64, row[1])), stride),
                              col)
            return builder.bitcast(builder.gep(base, [off]), v8.as_pointer())

        def load(ptr):
            v = builder.load(ptr)
            v.align = 4
            return v

        def shuf(a, c, k):
            return builder.shuffle_vector(a, c, ir.Constant(ir.VectorType(ir.IntType(32), 8),
                                                            _T8[k]))
        r = [load(vec_at(sa.data, (j0, k), m, i0)) for k in range(8)]
        t = [shuf(r[k - k % 2], r[k - k % 2 + 1], k % 2) for k in range(8)]
        u = [shuf(t[q], t[q + 2], 2 + h) for q in (0, 1, 4, 5) for h in (0, 1)]
        o = [shuf(u[k % 4], u[k % 4 + 4], 4 + k // 4) for k in range(8)]
        bias = load(builder.bitcast(builder.gep(ba.data, [j0]), v8.as_pointer()))
        for k in range(8):
            builder.store(builder.fadd(o[k], bias), vec_at(oa.data, (i0, k), n, j0)).align = 4
        return context.get_dummy_value()
    return sig, codegen


@njit_cached(**_NJIT)
def add_rows_t(src, b, out):
    """out[i, j] = src[j, i] + b[j]: the bias epilogue of ``linear``'s transposed product (src
    is ``w @ x.T``, (M, N); out (N, M) and b (M,)), float32, all C-contiguous."""
    M, N = src.shape
    m8, n8 = M - M % 8, N - N % 8
    for i0 in range(0, n8, 8):  # (row blocks of out: its stores stay in a few cache lines)
        for j0 in range(0, m8, 8):
            _tile8_t_bias(src, j0, i0, out, b)
    for i in range(N):
        for j in range(m8, M):
            out[i, j] = src[j, i] + b[j]
    for i in range(n8, N):
        for j in range(m8):
            out[i, j] = src[j, i] + b[j]


@njit_cached(**_NJIT)
def col_sum(g, out):
    """out[j] = sum_i g[i, j] (the bias gradient of ``linear``), float64 accumulation."""
    N, M = g.shape
    acc = np.zeros(M, np.float64)
    for i in range(N):
        for j in range(M):
            acc[j] += g[i, j]
    for j in range(M):
        out[j] = acc[j]


@njit_cached(**_NJIT)
def first_bad_target(t, ignore_index, C):
    """Index of the first target that is neither ``ignore_index`` nor in [0, C), or -1."""
    for i in range(t.shape[0]):
        ti = t[i]
        if ti != ignore_index and (ti < 0 or ti >= C):
            return i
    return -1


@njit_cached(**_NJIT)
def cross_entropy_bwd(probs, t, coef, g, per_row, out):
    """out[i, j] = g_i * coef[i] * (probs[i, j] - [j == t[i]]): the gradient of the loss with
    respect to the logits; g_i is g[i] (per_row, reduction='none') or g[0]."""
    N, C = probs.shape
    for i in range(N):
        gi = g[i] if per_row else g[0]
        c = gi * coef[i]
        for j in range(C):
            out[i, j] = c * probs[i, j]
        if coef[i] != 0:
            out[i, t[i]] -= c
