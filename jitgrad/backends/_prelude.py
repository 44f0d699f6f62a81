"""Scalar helpers that generated kernel modules import (``from jitgrad.backends._prelude import *``).

Transcendentals come from :mod:`jitgrad.vmath` (branch-free, SIMD-friendly) when it provides
them, else from ``math`` wrapped as inline njit functions. Nothing here compiles at import.
"""
import math

import numba
import numpy as np

_inline = dict(inline="always", error_model="numpy")


def _wrap(f):
    return numba.njit(**_inline)(f)


vm_exp = _wrap(lambda x: math.exp(x))
vm_log = _wrap(lambda x: math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan))
vm_log1p = _wrap(lambda x: math.log1p(x) if x > -1 else (-math.inf if x == -1 else math.nan))
vm_expm1 = _wrap(lambda x: math.expm1(x))
vm_sin = _wrap(lambda x: math.sin(x))
vm_cos = _wrap(lambda x: math.cos(x))
vm_tan = _wrap(lambda x: math.tan(x))
vm_tanh = _wrap(lambda x: math.tanh(x))
vm_sin_fast, vm_cos_fast, vm_tan_fast = vm_sin, vm_cos, vm_tan
vm_sin_lane, vm_cos_lane, vm_tan_lane = vm_sin, vm_cos, vm_tan
vm_trig_big = _wrap(lambda x: False)


@numba.njit(**_inline)
def vm_sigmoid(x):
    return 1 / (1 + vm_exp(-x))


from jitgrad.codegen import polygamma_py  # noqa: E402  (plain Python, njit-able)

vm_polygamma = _wrap(polygamma_py)


SUM_BLOCK = 512

from jitgrad.backends._atomics import (PAR_BLOCK, atomic_add, chunk_claim,  # noqa: E402,F401
                                       chunk_enter, chunk_finish)


@numba.njit(**_inline)
def block_sum(buf, n):
    """Sum buf[:n] with eight independent float64 lanes (vectorises without reassociation)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    k = 0
    while k + 8 <= n:
        s0 += buf[k]
        s1 += buf[k + 1]
        s2 += buf[k + 2]
        s3 += buf[k + 3]
        s4 += buf[k + 4]
        s5 += buf[k + 5]
        s6 += buf[k + 6]
        s7 += buf[k + 7]
        k += 8
    while k < n:
        s0 += buf[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


try:  # prefer the vectorizable implementations when jitgrad.vmath provides them
    from jitgrad.vmath import TRIG_FAST_FUNCS as _VMF, VMATH_FUNCS as _VM
    _VM = {**_VM, **_VMF}
except Exception:  # pragma: no cover - vmath is optional during development
    _VM = {}
from jitgrad.backends.cpu import use_disk_cache as _use_disk_cache  # noqa: E402

for _name, _fn in _VM.items():
    # jitgrad's disk cache (JITGRAD_CACHE_DIR, off with JITGRAD_CACHE=0, self-repairing)
    # rather than Numba's cache=True in the package's __pycache__
    globals()["vm_" + _name] = _use_disk_cache(_fn)

__all__ = ["math", "np", "numba", "SUM_BLOCK", "PAR_BLOCK", "block_sum", "atomic_add",
           "chunk_claim", "chunk_enter", "chunk_finish"] + \
    [n for n in dict(globals()) if n.startswith("vm_")]
