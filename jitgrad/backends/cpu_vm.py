"""Hand-written njit kernels that call :mod:`jitgrad.vmath` (through the prelude's ``vm_*``).

Their own module because importing vmath takes ~28 ms, which ``import jitgrad`` must not pay:
``cpu_nn`` hands these out on first use (its module ``__getattr__``). ``calls_vmath=True`` puts
vmath's source into their disk-cache stamp, so an upgraded vmath is compiled in.
"""
from __future__ import annotations

import numpy as np

from ._prelude import vm_exp, vm_log
from .cpu import njit_cached

_NJIT = dict(error_model="numpy", nogil=True, calls_vmath=True)


@njit_cached(**_NJIT)
def cross_entropy_fwd(x, t, w, has_w, ignore_index, probs, losses, coef):
    """Softmax cross-entropy over the rows of x (N, C) against class indices t (N,).

    Writes softmax(x) into ``probs`` (what the backward needs), the per-row loss
    ``-w[t] * log_softmax(x)[t]`` into ``losses`` and the per-row weight ``w[t]`` (1 without a
    weight, 0 for an ignored row) into ``coef``. Returns (sum of losses, sum of weights) in
    float64. The caller checks first (``first_bad_target``) that every target that is not
    ``ignore_index`` lies in [0, C), and that w has C entries when has_w.

    Exponentials are float64 ``vm_exp`` (vectorised over a row): libm's scalar exp made this
    13 us of W2's 128 x 10 logits."""
    N, C = x.shape
    mx = np.empty(N, np.float64)   # row maxima (0 for a row of -inf)
    e = np.empty((N, C), np.float64)
    ls = np.empty(N, np.float64)   # log of each row's sum of exponentials
    for i in range(N):
        m = -np.inf
        for j in range(C):
            v = x[i, j]
            if v > m or v != v:
                m = v
        mx[i] = 0.0 if m == -np.inf else m
    for i in range(N):  # (each loop without a sum in it vectorises)
        m = mx[i]
        for j in range(C):
            e[i, j] = vm_exp(np.float64(x[i, j]) - m)
    for i in range(N):
        s = 0.0
        for j in range(C):
            s += e[i, j]
        ls[i] = s
        inv = 1.0 / s
        for j in range(C):
            probs[i, j] = e[i, j] * inv
    for i in range(N):
        ls[i] = vm_log(ls[i])
    total = 0.0
    denom = 0.0
    for i in range(N):
        ti = t[i]
        if ti == ignore_index:
            losses[i] = 0.0
            coef[i] = 0.0
            continue
        wi = np.float64(w[ti]) if has_w else 1.0
        losses[i] = -(np.float64(x[i, ti]) - mx[i] - ls[i]) * wi
        coef[i] = wi
        total += np.float64(losses[i])
        denom += wi
    return total, denom
