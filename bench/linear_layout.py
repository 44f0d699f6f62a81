"""Which product ``linear`` should ask BLAS for: ``x @ w.T`` or ``w @ x.T`` (then transposed).

``python -m bench.linear_layout [float32|float64]`` prints, for rows B, inputs K and outputs N,
the time of ``w @ x.T`` over that of ``x @ w.T`` (NumPy's BLAS, best of 5 runs of ~2 ms each;
below 1: the transposed product is faster). ``jitgrad.backends.cpu.prefers_transposed``
is the rule drawn from this table on OpenBLAS (one thread, unset OPENBLAS_CORETYPE).
"""
import sys

import numpy as np

from bench.vs_compile import _best


def main(dtype="float32"):
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    outs = (10, 32, 64, 256, 1024)
    print(f"{dtype}: time(w @ x.T) / time(x @ w.T); columns N = {outs}")
    for b in (8, 32, 128, 512):
        for k in (64, 256, 784, 2048):
            row = []
            for n in outs:
                x = rng.standard_normal((b, k)).astype(dt)
                w = rng.standard_normal((n, k)).astype(dt)
                row.append(_best(lambda: w @ x.T, 0.01) / _best(lambda: x @ w.T, 0.01))
            print(f"B={b:4d} K={k:5d}  " + "  ".join(f"{r:5.2f}" for r in row), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:2])
