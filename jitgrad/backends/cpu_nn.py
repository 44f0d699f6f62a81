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
