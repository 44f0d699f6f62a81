"""Whole-step capture (issue 18): ``jitgrad.compile`` against eager jitgrad, torch eager and
torch.compile, interleaved in one process (``python -m bench.bench_capture [rounds]``).

Steps (each peer builds its own copy from the same initial values; every compiled peer's loss
and parameters after a few steps are checked against its eager twin before timing):

* ``w3``      -- the seed tutorial's step (bench.workloads.tutorial_eager_step): grads reset,
  ones/zeros, matmul, add, BCE-with-logits, backward;
* ``w2``      -- the W2 MLP step of bench_mlp (F.linear, tanh, cross_entropy, backward, SGD
  ``p -= lr * p.grad`` under no_grad: its 200k-element updates are fused kernels written into
  the weights, recorded like any fused group), beside bench_mlp's NumPy step by hand and
  ``gemm_floor`` (the step's 8 matrix products alone, into preallocated outputs);
* ``w2_nn``   -- the same step with nn.Sequential, CrossEntropyLoss and optim.SGD
  (``zero_grad``, forward, ``backward``, ``step``);
* ``w1_N``    -- W1 forward + backward (bench.workloads.w1: 13 elementwise ops and a sum, grads
  of the scalars a, b) on N = 1e3 (eager kernels), 1e5 and 1e6 float32 elements (fused groups),
  beside the hand-written NumPy step (w1_numpy);
* ``w5_k``    -- bench_fusion's W5 chain of k = 10, 100 ops (``y * 1.01`` / ``sin``) on 1e5
  float32 elements, then ``sum().backward()``.

Every step returns its loss tensor (the check reads it with ``.item()`` outside the step).
Compiled steps use ``jitgrad.compile``'s default (every elementwise op recorded lazily, small
ones too: fused groups planned once at record time).

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


W1_SIZES = (10**3, 10**5, 10**6)
W5_KS = (10, 100)
W5_N = 10**5


def _w1_name(n):
    return f"w1_1e{round(np.log10(n))}"


class _Loss:
    """A NumPy peer's loss, read like a tensor's."""
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def item(self):
        return float(self.v)


def _w1(lib, n, dtype="float32"):
    """W1 forward + backward on n elements (grads of the scalars a and b)."""
    xv, av, bv = W.w1_inputs(dtype, n)
    x = lib.tensor(xv)
    a = lib.tensor(av, requires_grad=True)
    b = lib.tensor(bv, requires_grad=True)

    def step():
        a.grad = None
        b.grad = None
        loss = W.w1(lib, x, a, b)
        loss.backward()
        return loss
    return step


def _w5(lib, k):
    """bench_fusion's W5: a chain of k ops on W5_N float32 elements, sum, backward."""
    x = lib.tensor(np.linspace(-1, 1, W5_N).astype(np.float32), requires_grad=True)

    def step():
        x.grad = None
        loss = W.w5(lib, x, k)
        loss.backward()
        return loss
    return step


def peers():
    import jitgrad
    out = {}
    first = {}
    out["w3"] = {"jitgrad": _w3(jitgrad)}
    t = time.perf_counter()
    c = jitgrad.compile(_w3(jitgrad))
    c()
    c()
    first["w3"] = time.perf_counter() - t
    out["w3"]["jitgrad"](), out["w3"]["jitgrad"]()  # (the same number of steps as its twin)
    out["w3"]["jitgrad_compiled"] = c
    out["w2"] = {"jitgrad": bench_mlp._eager_step(jitgrad)[0]}
    t = time.perf_counter()
    c = jitgrad.compile(bench_mlp._eager_step(jitgrad)[0])
    c()
    first["w2"] = time.perf_counter() - t
    out["w2"]["jitgrad"]()
    out["w2"]["jitgrad_compiled"] = c
    np_step = bench_mlp._numpy_step()[0]
    out["w2"]["numpy"] = lambda: _Loss(np_step())
    floor = bench_mlp._gemm_floor_step()[0]
    out["w2"]["gemm_floor"] = lambda: (floor(), _Loss(0.0))[1]
    out["w2_nn"] = {"jitgrad": bench_mlp._module_step(jitgrad)[0]}
    t = time.perf_counter()
    c = jitgrad.compile(bench_mlp._module_step(jitgrad)[0])
    c()
    c()
    first["w2_nn"] = time.perf_counter() - t
    out["w2_nn"]["jitgrad"](), out["w2_nn"]["jitgrad"]()
    out["w2_nn"]["jitgrad_compiled"] = c
    for n in W1_SIZES:
        name = _w1_name(n)
        out[name] = {"jitgrad": _w1(jitgrad, n)}
        t = time.perf_counter()
        c = jitgrad.compile(_w1(jitgrad, n))
        c()
        c()
        first[name] = time.perf_counter() - t
        out[name]["jitgrad"](), out[name]["jitgrad"]()
        out[name]["jitgrad_compiled"] = c
        xv, av, bv = W.w1_inputs("float32", n)
        out[name]["numpy"] = lambda xv=xv, av=av, bv=bv: _Loss(W.w1_numpy(xv, av, bv)[0])
    for k in W5_KS:
        name = f"w5_{k}"
        out[name] = {"jitgrad": _w5(jitgrad, k)}
        t = time.perf_counter()
        c = jitgrad.compile(_w5(jitgrad, k))
        c()
        c()
        first[name] = time.perf_counter() - t
        out[name]["jitgrad"](), out[name]["jitgrad"]()
        out[name]["jitgrad_compiled"] = c
    try:
        import torch
        torch.set_num_threads(1)  # (like the BLAS of the NumPy peers: OPENBLAS_NUM_THREADS=1)
        for n in W1_SIZES:
            out[_w1_name(n)]["torch"] = _w1(torch, n)
        for k in W5_KS:
            out[f"w5_{k}"]["torch"] = _w5(torch, k)
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
            for peer in ("numpy", "torch"):  # (W1/W5 change no state; other libraries: their
                if peer in ps and name[:2] in ("w1", "w5"):  # own summation order)
                    c = ps[peer]().item()
                    assert abs(a - c) <= 1e-4 * max(1.0, abs(a)) + 1e-2, (name, peer, a, c)
        st = ps["jitgrad_compiled"].stats
        assert st["replayed"] >= 3, (name, st, str(ps["jitgrad_compiled"].explain()))


def main(rounds=5):
    steps, first = peers()
    check(steps)
    res = {name: {p: [] for p in ps} for name, ps in steps.items()}
    for _ in range(rounds):
        for name, ps in steps.items():
            n = 2000 if name == "w3" else 400 if name == "w1_1e3" else 40
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
