"""Hand-written njit kernels of the sliding-window records (``im2col`` / ``col2im`` in
``jitgrad/nn/_functional_extra.py``): conv, unfold/fold and pooling gather their windows with
them. Compiled lazily on first call and disk-cached (``cpu.njit_cached``); no bounds checks:
the callers build the (K, L) index maps themselves (entries in [0, S) or -1 for padding)."""
from __future__ import annotations

from .cpu import njit_cached

_NJIT = dict(error_model="numpy", nogil=True)


@njit_cached(**_NJIT)
def im2col(x, idx, fill, out):
    """out[m, k, l] = x[m, idx[k, l]], or ``fill`` where idx[k, l] < 0; x (M, S), out (M, K, L)."""
    M = x.shape[0]
    K, L = idx.shape
    for m in range(M):
        for k in range(K):
            for j in range(L):
                i = idx[k, j]
                out[m, k, j] = x[m, i] if i >= 0 else fill


@njit_cached(**_NJIT)
def col2im(g, idx, out):
    """out[m, idx[k, l]] += g[m, k, l] for idx >= 0 (out zeroed by the caller); g (M, K, L),
    out (M, S)."""
    M = g.shape[0]
    K, L = idx.shape
    for m in range(M):
        for k in range(K):
            for j in range(L):
                i = idx[k, j]
                if i >= 0:
                    out[m, i] += g[m, k, j]


@njit_cached(**_NJIT)
def im2col_lck(x, idx, fill, out):
    """out[n, l, c, k] = x[n, c, idx[k, l]] (``fill`` where idx < 0): the (N * L, C * K)
    operand of one 2-D GEMM per convolution; x (N, C, S), out (N, L, C, K)."""
    N, C = x.shape[0], x.shape[1]
    K, L = idx.shape
    for n in range(N):
        for j in range(L):
            for c in range(C):
                for k in range(K):
                    i = idx[k, j]
                    out[n, j, c, k] = x[n, c, i] if i >= 0 else fill


@njit_cached(**_NJIT)
def col2im_lck(g, idx, out):
    """out[n, c, idx[k, l]] += g[n, l, c, k] for idx >= 0 (out zeroed by the caller)."""
    N, L, C, K = g.shape
    for n in range(N):
        for j in range(L):
            for c in range(C):
                for k in range(K):
                    i = idx[k, j]
                    if i >= 0:
                        out[n, c, i] += g[n, j, c, k]
