"""Whole-step capture (issue 18): ``jitgrad.compile`` against eager jitgrad, torch eager and
torch.compile, interleaved in one process (``python -m bench.bench_capture [rounds]``).

Steps (each peer builds its own copy from the same initial values; every compiled peer's loss
and parameters after a few steps are checked against its eager twin before timing):

* ``w3``      -- the seed tutorial's step (bench.workloads.tutorial_eager_step): grads reset,
  ones/zeros, matmul, add, BCE-with-logits, backward;
* ``w2``      -- the W2 MLP step of bench_mlp (F.linear, tanh, cross_entropy, backward, SGD
  ``p -= lr * p.grad`` under no_grad). Its update reads 200k-element gradients, which lazy
  fusion records, so it is compiled with ``fusion=False`` (fused groups are not recorded yet);
* ``w2_nn``   -- the same step with nn.Sequential, CrossEntropyLoss and optim.SGD
  (``zero_grad``, forward, ``backward``, ``step``): compiled with fusion on.

Run with ``OPENBLAS_NUM_THREADS=1`` (torch is set to one thread here): on a shared 2-core
machine a second BLAS thread on a busy core slows every peer down many times over.
Each figure is the median over rounds of the best of 5 batches; the peers of one step run
back to back in each round so that machine drift hits all of them. Also printed: the first
call of each compiled step (record + whatever kernels were not loaded yet) and the ratios.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from bench import bench_mlp, workloads as W


def _best(f, n):
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def _w3(lib):
    x, y, w, b = W.tutorial_inputs()
    return W.tutorial_eager_step(lib, lib.tensor(w, requires_grad=True),
                                 lib.tensor(b, requires_grad=True))[0]


def peers():
    import jitgrad
    out = {}
    first = {}
    out["w3"] = {"jitgrad": _w3(jitgrad)}
    t = time.perf_counter()
    c = jitgrad.compile(_w3(jitgrad))
    c()
    c()  # (the second call records again: .grad was None at the first call's entry only)
    first["w3"] = time.perf_counter() - t
    out["w3"]["jitgrad"](), out["w3"]["jitgrad"]()  # (the same number of steps as its twin)
    out["w3"]["jitgrad_compiled"] = c
    out["w2"] = {"jitgrad": bench_mlp._eager_step(jitgrad)[0]}
    t = time.perf_counter()
    c = jitgrad.compile(bench_mlp._eager_step(jitgrad)[0], fusion=False)
    c()
    first["w2"] = time.perf_counter() - t
    out["w2"]["jitgrad"]()
    out["w2"]["jitgrad_compiled"] = c
    out["w2_nn"] = {"jitgrad": bench_mlp._module_step(jitgrad)[0]}
    t = time.perf_counter()
    c = jitgrad.compile(bench_mlp._module_step(jitgrad)[0])
    c()
    c()
    first["w2_nn"] = time.perf_counter() - t
    out["w2_nn"]["jitgrad"](), out["w2_nn"]["jitgrad"]()
    out["w2_nn"]["jitgrad_compiled"] = c
    try:
        import torch
        torch.set_num_threads(1)  # (like the BLAS of the NumPy peers: OPENBLAS_NUM_THREADS=1)
        out["w3"]["torch"] = _w3(torch)
        out["w2"]["torch"] = bench_mlp._eager_step(torch)[0]
        out["w2_nn"]["torch"] = bench_mlp._module_step(torch)[0]
        try:
            tc = torch.compile(bench_mlp._module_step(torch)[0])
            t = time.perf_counter()
            tc()
            first["torch.compile w2_nn"] = time.perf_counter() - t
            out["w2_nn"]["torch_compile"] = tc
        except Exception as e:  # (no compiler toolchain, say)
            print(f"torch.compile unavailable: {e!r:.120}")
    except ImportError:
        print("torch not installed")
    return out, first


def check(steps):
    """Compiled and eager jitgrad agree over a few steps (their own copies of the state)."""
    for name, ps in steps.items():
        for _ in range(3):
            a = ps["jitgrad"]().item()
            b = ps["jitgrad_compiled"]().item()
            assert abs(a - b) <= 1e-6 * max(1.0, abs(a)), (name, a, b)
        st = ps["jitgrad_compiled"].stats
        assert st["replayed"] >= 3, (name, st, str(ps["jitgrad_compiled"].explain()))


def main(rounds=5):
    steps, first = peers()
    check(steps)
    res = {name: {p: [] for p in ps} for name, ps in steps.items()}
    for _ in range(rounds):
        for name, ps in steps.items():
            n = 2000 if name == "w3" else 40
            for p, f in ps.items():
                res[name][p].append(_best(f, n))
    for name, r in res.items():
        med = {p: statistics.median(v) for p, v in r.items()}
        comp = med["jitgrad_compiled"]
        line = ", ".join(f"{p} {v * 1e6:.1f} us ({v / comp:.2f}x)" for p, v in med.items())
        print(f"{name}: {line}")
    for k, v in first.items():
        print(f"first call {k}: {v * 1e3:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
