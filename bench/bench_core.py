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

import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- helpers

def _import_jitgrad():
    try:
        import jitgrad
    except ImportError as e:  # a real failure, not a skip: jitgrad is what we measure
        pytest.fail(f"cannot import jitgrad: {e!r}")
    return jitgrad


def _import_torch():
    return pytest.importorskip("torch", reason="torch not installed (pip install -e '.[bench]')")


def _import_jax():
    jax = pytest.importorskip("jax", reason="jax not installed (pip install jax jaxlib)")
    return jax


def _lib(peer):
    return _import_jitgrad() if peer == "jitgrad" else _import_torch()


def _note_threads(benchmark, peer):
    # torch's intra-op pool (default: one thread per core) stalls for milliseconds
    # when the machine is loaded, even on 5-element tensors; record it with the result.
    if peer == "torch":
        benchmark.extra_info["torch_threads"] = _import_torch().get_num_threads()


def _np(t):
    """Tensor (jitgrad or torch) -> numpy array."""
    if hasattr(t, "detach"):
        t = t.detach()
    return np.asarray(t.numpy())


# --------------------------------------------------------------------------- tutorial

N_IN, N_OUT = 5, 3


def _tutorial_inputs():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((N_IN, N_OUT)).astype(np.float32)
    b = rng.standard_normal(N_OUT).astype(np.float32)
    x = np.ones(N_IN, dtype=np.float32)
    y = np.zeros(N_OUT, dtype=np.float32)
    return x, y, w, b


def _tutorial_numpy_reference(x, y, w, b):
    """loss, dL/dw, dL/db in float64: mean BCE-with-logits of z = x @ w + b."""
    x, y, w, b = (a.astype(np.float64) for a in (x, y, w, b))
    z = x @ w + b
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    dz = (1.0 / (1.0 + np.exp(-z)) - y) / z.size
    return loss, np.outer(x, dz), dz


def _tutorial_reference():
    x, y, w, b = _tutorial_inputs()
    if importlib.util.find_spec("torch") is None:
        return _tutorial_numpy_reference(x, y, w, b)
    import torch
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    z = torch.matmul(torch.tensor(x), wt) + bt
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(y))
    loss.backward()
    return loss.item(), wt.grad.numpy(), bt.grad.numpy()


def _tutorial_eager_step(lib, w, b):
    """The tutorial verbatim with ``torch`` replaced by ``lib``."""
    bce = lib.nn.functional.binary_cross_entropy_with_logits

    def step():
        w.grad = None
        b.grad = None
        x = lib.ones(5)
        y = lib.zeros(3)
        z = lib.matmul(x, w) + b
        loss = bce(z, y)
        loss.backward()
        return loss

    def result():
        loss = step()
        return loss.item(), _np(w.grad), _np(b.grad)

    return step, result


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
    x, y, w, b = _tutorial_inputs()
    gw = np.empty_like(w)
    gb = np.empty_like(b)

    def step():
        return _tutorial_floor(x, w, b, y, gw, gb)

    def result():
        loss = step()
        return loss, gw.copy(), gb.copy()

    return step, result


def _tutorial_jax_step():
    jax = _import_jax()
    import jax.numpy as jnp

    def loss_fn(w, b, x, y):
        z = jnp.matmul(x, w) + b
        return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))

    vg = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
    x, y, w, b = (jnp.asarray(a) for a in _tutorial_inputs())

    def step():
        return jax.block_until_ready(vg(w, b, x, y))

    def result():
        loss, (gw, gb) = step()
        return float(loss), np.asarray(gw), np.asarray(gb)

    return step, result


@pytest.mark.benchmark(group="tutorial")
@pytest.mark.parametrize("peer", ["jitgrad", "torch", "jax", "njit_floor"])
def bench_tutorial(benchmark, peer, assert_close):
    benchmark.extra_info.update(peer=peer, case="bce fwd+bwd 5x3")
    _note_threads(benchmark, peer)
    if peer in ("jitgrad", "torch"):
        lib = _lib(peer)
        _, _, w, b = _tutorial_inputs()
        step, result = _tutorial_eager_step(
            lib, lib.tensor(w, requires_grad=True), lib.tensor(b, requires_grad=True))
    elif peer == "jax":
        step, result = _tutorial_jax_step()
    else:
        step, result = _tutorial_floor_step()

    # Correctness outside the timed part (this also warms up any JIT).
    want = _tutorial_reference()
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
    return step, _np(x.grad)


@pytest.mark.benchmark(group="per-op")
@pytest.mark.parametrize("peer", ["jitgrad", "torch"])
@pytest.mark.parametrize("n", [1, 10])
@pytest.mark.parametrize("op", list(OPS))
def bench_per_op(benchmark, op, n, peer, assert_close):
    benchmark.extra_info.update(peer=peer, case=f"{op} x{n} f32[5]", ops=n)
    _note_threads(benchmark, peer)
    step, got = _perop_result(peer, op, n)
    step()  # warm
    if importlib.util.find_spec("torch") is not None and peer != "torch":
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
        _import_jitgrad()
    elif peer != "python" and importlib.util.find_spec(peer) is None:
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
