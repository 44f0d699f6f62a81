"""Names that generated CUDA kernel modules import (``from jitgrad.backends._cuda_prelude import *``).

The same registry rules render here as for the CPU (codegen.FUNC_SRC_CUDA maps the rule
vocabulary to these names); transcendentals are CUDA's own (libdevice) ``math`` functions.
Imported only when a CUDA tensor is used: it loads numba.cuda.
"""
import math  # noqa: F401  (used by generated kernels)

import numba
import numpy as np  # noqa: F401
from numba import cuda

# Threads per block of every generated kernel (the shared-memory sum trees are this wide). The
# simulator runs each thread as a Python thread, so it gets narrow blocks.
THREADS = 32 if numba.config.ENABLE_CUDASIM else 256


def _finish_sum(acc_t):
    @cuda.jit
    def finish_sum_kernel(part, n, out, scale, has_scale):
        """out[0] = sum(part[:n]) (/ scale): the second, fixed-order pass over per-block
        partials; one block."""
        tx = cuda.threadIdx.x
        sh = cuda.shared.array(THREADS, acc_t)
        acc = acc_t(0)
        for i in range(tx, n, THREADS):
            acc += part[i]
        sh[tx] = acc
        cuda.syncthreads()
        w = THREADS // 2
        while w > 0:
            if tx < w:
                sh[tx] += sh[tx + w]
            cuda.syncthreads()
            w //= 2
        if tx == 0:
            s = sh[0]
            if has_scale:
                out[0] = s / scale if scale != 0 else math.nan
            else:
                out[0] = s
    return finish_sum_kernel


finish_sum_f = _finish_sum(numba.float64)
finish_sum_i = _finish_sum(numba.int64)


@cuda.jit
def scale_cast_kernel(src, out, scale, has_scale):
    """out = src (/ scale), cast on store (mean over some dims; float64 sums to the result
    dtype)."""
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        if has_scale:
            out[i] = src[i] / scale if scale != 0 else math.nan
        else:
            out[i] = src[i]


@cuda.jit
def add_into_kernel(acc, g):
    for i in range(cuda.grid(1), acc.size, cuda.gridsize(1)):
        acc[i] += g[i]


@cuda.jit
def scatter_set_kernel(out, idx, src):
    """out[idx[i]] = src[i] (positions are distinct: basic or advanced NumPy indices that the
    caller turned into flat positions)."""
    for i in range(cuda.grid(1), idx.size, cuda.gridsize(1)):
        out[idx[i]] = src[i]


@cuda.jit
def prod_arb_kernel(x, out, one):
    """out[a, b] = prod over r of x[a, r, b]: one thread per output, in order (like the CPU);
    ``one`` is 1 in the accumulation dtype (a typed constant)."""
    A, R, B = x.shape
    for k in range(cuda.grid(1), A * B, cuda.gridsize(1)):
        a = k // B
        b = k - a * B
        p = one
        for r in range(R):
            p *= x[a, r, b]
        out[a, b] = p


@cuda.jit
def prod_others_arb_kernel(x, out, one):
    """out[a, r, b] = product of x[a, :, b] except r (exact with zeros): prefix * suffix."""
    A, R, B = x.shape
    for k in range(cuda.grid(1), A * B, cuda.gridsize(1)):
        a = k // B
        b = k - a * B
        p = one
        for r in range(R):
            out[a, r, b] = p
            p *= x[a, r, b]
        p = one
        for r in range(R - 1, -1, -1):
            out[a, r, b] *= p
            p *= x[a, r, b]
