"""Where a CUDA W1 step spends its time (run on a GPU machine; prints a report).

python -m bench.gpu_profile [--n 1e6] [--steps 50]

* wall time per W1 step (forward + backward + .item()) at each N, kernel launches per step;
* the cost of one numba.cuda launch through the dispatcher (``k[g, b](*args)``) against a
  launch of the already-compiled kernel object, and of ``synchronize`` / a 4-byte read back;
* a cProfile of the steps at the smallest N (launch overhead dominates there).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
from numba import cuda  # a GPU script: numba.cuda is what it measures

from bench import workloads as W


def _w1(jg, n):
    xv, av, bv = W.w1_inputs("float32", n)
    x = jg.tensor(xv, device="cuda")
    a = jg.tensor(av, device="cuda", requires_grad=True)
    b = jg.tensor(bv, device="cuda", requires_grad=True)

    def step():
        a.grad = b.grad = None
        loss = W.w1(jg, x, a, b)
        loss.backward()
        return loss.item()
    return step


def _per_call(f, reps):
    f()
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / reps * 1e6


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=float, nargs="*", default=[1e6, 1e7, 1e8])
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args(argv)
    jg = W.import_jitgrad()
    assert jg.cuda.is_available()  # jitgrad imports numba.cuda first (its shims apply)
    from jitgrad import _debug

    @cuda.jit
    def inc(a):
        i = cuda.grid(1)
        if i < a.size:
            a[i] += 1.0
    d = cuda.to_device(np.zeros(256, np.float32))
    inc[1, 256](d)
    cuda.synchronize()
    us = _per_call(lambda: inc[1, 256](d), 2000)
    cuda.synchronize()
    try:
        kern = next(iter(inc.overloads.values()))
        stream = cuda.default_stream()  # (numba-cuda refuses 0 for the default stream)
        us_direct = _per_call(lambda: kern.launch((d,), (1, 1, 1), (256, 1, 1), stream, 0),
                              2000)
    except Exception as e:  # an internal API: report, go on
        print("compiled kernel .launch failed:", repr(e))
        us_direct = float("nan")
    cuda.synchronize()
    us_sync = _per_call(cuda.synchronize, 2000)
    us_read = _per_call(lambda: d[:1].copy_to_host(), 2000)
    print(f"numba.cuda launch via dispatcher {us:.1f} us; compiled kernel .launch {us_direct:.1f} us;"
          f" synchronize {us_sync:.1f} us; 4-byte read back {us_read:.1f} us")

    for n in args.n:
        n = int(n)
        step = _w1(jg, n)
        step()
        c0 = _debug.COUNTERS["kernel_launches"]
        step()
        launches = _debug.COUNTERS["kernel_launches"] - c0
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        print(f"W1 N={n:.0e}: min {min(times)*1e3:.3f} ms, median {np.median(times)*1e3:.3f} ms,"
              f" {launches} kernel launches per step")
    n = int(min(args.n))
    step = _w1(jg, n)
    step()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(args.steps):
        step()
    pr.disable()
    st = pstats.Stats(pr).sort_stats("tottime")
    st.print_stats(30)
    print(jg.explain_kernels())


if __name__ == "__main__":
    main()
