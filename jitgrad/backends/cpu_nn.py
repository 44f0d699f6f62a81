"""Hand-written njit kernels for the fused ``nn.functional`` ops (``linear``, ``cross_entropy``).

Every kernel is compiled lazily on first call (disk-cached by ``cpu.njit_cached``: a later
process loads machine code) and does no bounds checking: callers in ``jitgrad/nn/functional.py``
validate shapes, dtypes and class indices before launching. Sums accumulate in float64 like the
reductions in ``cpu.py``.
"""
from __future__ import annotations

import numpy as np

from .cpu import njit_cached

_NJIT = dict(error_model="numpy", nogil=True)  # disk-cached (cpu.njit_cached)


@njit_cached(**_NJIT)
def add_rows(out, b):
    """out[i, j] += b[j] (the bias epilogue of ``linear``); out is (N, M), b is (M,)."""
    N, M = out.shape
    for i in range(N):
        for j in range(M):
            out[i, j] += b[j]


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
def cross_entropy_fwd(x, t, w, has_w, ignore_index, probs, losses, coef):
    """Softmax cross-entropy over the rows of x (N, C) against class indices t (N,).

    Writes softmax(x) into ``probs`` (what the backward needs), the per-row loss
    ``-w[t] * log_softmax(x)[t]`` into ``losses`` and the per-row weight ``w[t]`` (1 without a
    weight, 0 for an ignored row) into ``coef``. Returns (sum of losses, sum of weights) in
    float64. The caller checks first (``first_bad_target``) that every target that is not
    ``ignore_index`` lies in [0, C), and that w has C entries when has_w."""
    N, C = x.shape
    total = 0.0
    denom = 0.0
    for i in range(N):
        m = -np.inf
        for j in range(C):
            v = x[i, j]
            if v > m or v != v:
                m = v
        if m == -np.inf:
            m = 0.0
        s = 0.0
        for j in range(C):
            e = np.exp(np.float64(x[i, j]) - m)
            probs[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(C):
            probs[i, j] = probs[i, j] * inv
        ti = t[i]
        if ti == ignore_index:
            losses[i] = 0.0
            coef[i] = 0.0
            continue
        wi = np.float64(w[ti]) if has_w else 1.0
        losses[i] = -(np.float64(x[i, ti]) - m - np.log(s)) * wi
        coef[i] = wi
        total += np.float64(losses[i])
        denom += wi
    return total, denom


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
