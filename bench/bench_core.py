"""Core overhead benchmarks: jitgrad vs PyTorch eager (vs jax.jit, vs a hand-fused njit floor).

Groups
* ``tutorial`` -- the first tutorial's forward+backward on tiny tensors
  (x=ones(5), y=zeros(3), w[5,3], b[3], BCE-with-logits loss).
* ``per-op``   -- elementwise ops on a 5-element float32 tensor with requires_grad:
  a chain of 10 ops then ``.sum().backward()`` (``ops=10``: the summary divides
  by 10), and a single op then ``y.backward(ones)`` (``ops=1``).
* ``import``   -- ``import X`` in a fresh interpreter; the ``python`` peer is
  ``python -c pass`` (start-up baseline), subtracted in the summary.

Each benchmark checks its values against a reference outside the timed part
(torch when installed, else float64 numpy); no benchmark asserts on time.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from bench import workloads as W

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- helpers

def _lib(peer):
    return W.import_jitgrad() if peer == "jitgrad" else W.import_torch()


def _note_threads(benchmark, peer):
    # torch's intra-op pool (default: one thread per core) stalls for milliseconds
    # when the machine is loaded, even on 5-element tensors; record it with the result.
    if peer == "torch":
        benchmark.extra_info["torch_threads"] = W.import_torch().get_num_threads()


# --------------------------------------------------------------------------- tutorial

@njit(error_model="numpy", cache=False)
def _tutorial_floor(x, w, b, y, gw, gb):
    """Hand-fused forward+backward: returns the loss, writes dL/dw, dL/db into gw, gb."""
    n_in, n_out = w.shape
    loss = 0.0
    for j in range(n_out):
        z = np.float64(b[j])
        for i in range(n_in):
            z += x[i] * w[i, j]
        loss += max(z, 0.0) - z * y[j] + math.log1p(math.exp(-abs(z)))
        if z >= 0:
            s = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
        dz = (s - y[j]) / n_out
        gb[j] = dz
        for i in range(n_in):
            gw[i, j] = x[i] * dz
    return loss / n_out


def _tutorial_floor_step():
    x, y, w, b = W.tutorial_inputs()
    gw = np.empty_like(w)
    gb = np.empty_like(b)

    def step():
        return _tutorial_floor(x, w, b, y, gw, gb)

    def result():
        loss = step()
        return loss, gw.copy(), gb.copy()

    return step, result


@pytest.mark.benchmark(group="tutorial")
@pytest.mark.parametrize("peer", ["jitgrad", "jitgrad_compiled", "torch", "jax", "njit_floor"])
def bench_tutorial(benchmark, peer, assert_close):
    benchmark.extra_info.update(peer=peer, case="bce fwd+bwd 5x3")
    _note_threads(benchmark, peer)
    if peer in ("jitgrad", "jitgrad_compiled", "torch"):
        lib = _lib("torch" if peer == "torch" else "jitgrad")
        _, _, w, b = W.tutorial_inputs()
        wt, bt = lib.tensor(w, requires_grad=True), lib.tensor(b, requires_grad=True)
        step, result = W.tutorial_eager_step(lib, wt, bt)
        if peer == "jitgrad_compiled":  # (jitgrad.compile: recorded once, replayed)
            step = lib.compile(step)

            def result():
                return step().item(), W.to_numpy(wt.grad), W.to_numpy(bt.grad)
    elif peer == "jax":
        step, result = W.tutorial_jax_step(W.import_jax())
    else:
        step, result = _tutorial_floor_step()

    # Correctness outside the timed part (this also warms up any JIT).
    want = W.tutorial_reference()
    for _ in range(2):
        got = result()
    for name, g, r in zip(("loss", "w.grad", "b.grad"), got, want):
        assert_close(f"{peer} {name}", g, r)

    benchmark(step)


# --------------------------------------------------------------------------- per-op

OPS = {
    "mul": lambda y, x: y * x,
    "add": lambda y, x: y + x,
    "tanh": lambda y, x: y.tanh(),
}


def _perop_input():
    return np.random.default_rng(1).uniform(0.5, 1.0, 5).astype(np.float32)


def _perop_step(lib, op, n, x):
    f = OPS[op]
    if n == 1:
        ones = lib.ones(5)

        def step():
            x.grad = None
            y = f(x, x)
            y.backward(ones)
    else:
        def step():
            x.grad = None
            y = x
            for _ in range(n):
                y = f(y, x)
            y.sum().backward()

    return step


def _perop_result(peer, op, n):
    lib = _lib(peer)
    x = lib.tensor(_perop_input(), requires_grad=True)
    step = _perop_step(lib, op, n, x)
    step()
    return step, W.to_numpy(x.grad)


@pytest.mark.benchmark(group="per-op")
@pytest.mark.parametrize("peer", ["jitgrad", "torch"])
@pytest.mark.parametrize("n", [1, 10])
@pytest.mark.parametrize("op", list(OPS))
def bench_per_op(benchmark, op, n, peer, assert_close):
    benchmark.extra_info.update(peer=peer, case=f"{op} x{n} f32[5]", ops=n)
    _note_threads(benchmark, peer)
    step, got = _perop_result(peer, op, n)
    step()  # warm
    if W.has("torch") and peer != "torch":
        _, want = _perop_result("torch", op, n)
        assert_close(f"{peer} {op} x{n} grad", got, want)
    benchmark(step)


# --------------------------------------------------------------------------- import

_IMPORT_STMT = ("import time, sys; t = time.perf_counter(); import {mod}; "
                "sys.stdout.write(repr(time.perf_counter() - t))")


def _subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.benchmark(group="import")
@pytest.mark.parametrize("peer", ["python", "numpy", "numba", "jitgrad", "torch", "jax"])
def bench_import(benchmark, peer, pedantic_kwargs):
    benchmark.extra_info.update(peer=peer, case="import (fresh process)")
    if peer == "jitgrad":
        W.import_jitgrad()
    elif peer != "python" and not W.has(peer):
        pytest.skip(f"{peer} not installed")
    code = "pass" if peer == "python" else _IMPORT_STMT.format(mod=peer)
    cmd = [sys.executable, "-c", code]
    env = _subprocess_env()
    in_process = []

    def run():
        out = subprocess.run(cmd, env=env, cwd=REPO_ROOT, check=True,
                             capture_output=True, text=True).stdout
        if peer != "python":
            in_process.append(float(out))

    benchmark.pedantic(run, **pedantic_kwargs)
    if in_process:
        benchmark.extra_info["in_process_s"] = min(in_process)
