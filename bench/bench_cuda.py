"""GPU benchmarks (issue 5): jitgrad's CUDA backend against PyTorch CUDA eager (and JAX jit on
the GPU when its CUDA build is installed), with the device-to-device copy bandwidth as the floor.

Groups
* ``cuda-w1-float32`` -- W1 forward+backward+``loss.item()`` (bench/workloads.w1) with x (N,)
  and 0-d a, b requiring grad on the GPU; N = 1e6, 1e7, 1e8 (``--quick``: 1e6 only).
  ``extra_info["bytes"]`` is the least traffic possible (one read of x), so GB/s ÷ floor is
  the share of HBM bandwidth reached. Targets: ≥ 5x torch eager at 1e8, ≥ 70% of the copy floor.
* ``cuda-copy-floor`` -- a device-to-device copy of N float32 (bytes = read + write): the
  bandwidth floor the report draws.
* ``cuda-matmul-float32`` -- the tiled matmul against cuBLAS (torch), n = 512, 2048, 4096
  (``extra_info["flops"]``: the report gives GFLOP/s).
* ``cuda-launch`` -- per-op overhead on a tiny tensor: a chain of 10 ``y * 1.01`` on
  float32[16] then ``.item()`` (``ops=10``): jitgrad fused (one kernel), jitgrad with fusion
  off (one kernel per op, like torch), torch eager.

``jitgrad_compiled`` (W1 and cuda-launch): the same step under ``jitgrad.compile`` -- the CUDA
replay of issue 18 (prebound, specialised launches; no planning per call).

Everything here needs a real GPU: without one (or under NUMBA_ENABLE_CUDASIM) every benchmark
is skipped with that reason. Values of every peer are checked against jitgrad's outside the
timed part; no benchmark asserts on time.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from bench import workloads as W

W1_SIZES = [10**6, 10**7, 10**8]
CHAIN = 10


def _gpu_or_skip():
    jg = W.import_jitgrad()
    from jitgrad.backends import cuda as cb
    if cb.simulated() or not jg.cuda.is_available():
        pytest.skip("no CUDA GPU here (numba.cuda finds no device): GPU benchmarks need one")
    return jg


def _torch_cuda_or_skip():
    torch = W.import_torch()
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA (or sees no GPU)")
    return torch


def _jax_gpu_or_skip():
    jax = W.import_jax()
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("jax has no GPU backend here (install jax[cuda12/13] to compare)")
    return jax


def _nid(n):
    return f"N1e{int(round(np.log10(n)))}"


def _w1_step(peer, n):
    xv, av, bv = W.w1_inputs("float32", n)
    if peer in ("jitgrad", "jitgrad_compiled", "torch"):
        lib = _gpu_or_skip() if peer.startswith("jitgrad") else _torch_cuda_or_skip()
        dev = "cuda"
        x = lib.tensor(xv, device=dev)
        a = lib.tensor(av, device=dev, requires_grad=True)
        b = lib.tensor(bv, device=dev, requires_grad=True)

        def fwd_bwd():
            a.grad = b.grad = None
            loss = W.w1(lib, x, a, b)
            loss.backward()
            return loss
        # jitgrad_compiled: the same step under jitgrad.compile (CUDA replay, issue 18)
        run = lib.compile(fwd_bwd) if peer == "jitgrad_compiled" else fwd_bwd

        def step():
            return run().item()  # observes the value: waits for the GPU

        def result():
            loss = step()
            return loss, a.grad.cpu().numpy(), b.grad.cpu().numpy()
        return step, result
    jax = _jax_gpu_or_skip()
    import jax.numpy as jnp
    from jax.nn import sigmoid
    lib = type("jl", (), {"tanh": jnp.tanh, "exp": jnp.exp, "sin": jnp.sin,
                          "sigmoid": sigmoid})
    f = jax.jit(jax.value_and_grad(lambda a, b, x: W.w1(lib, x, a, b), argnums=(0, 1)))
    x, a, b = (jax.device_put(v) for v in (xv, av, bv))

    def step():
        v, g = f(a, b, x)
        return float(v)

    def result():
        v, (ga, gb) = f(a, b, x)
        return float(v), np.asarray(ga), np.asarray(gb)
    return step, result


@pytest.mark.parametrize("n", W1_SIZES, ids=_nid)
@pytest.mark.parametrize("peer", ["jitgrad", "jitgrad_compiled", "torch", "jax"])
def bench_cuda_w1(benchmark, peer, n, quick, assert_close):
    if quick and n > 10**6:
        pytest.skip("N > 1e6 runs only without --quick")
    _gpu_or_skip()
    benchmark.group = "cuda-w1-float32"
    benchmark.extra_info.update(peer=peer, case=f"W1 fwd+bwd cuda float32[{_nid(n)}]", n=n,
                                bytes=n * 4)
    step, result = _w1_step(peer, n)
    step()  # first call (compile) outside the timed part
    got = result()
    xv, av, bv = W.w1_inputs("float64", n)
    want = W.w1_numpy(xv, av, bv)
    for name, g, w in zip(("loss", "dL/da", "dL/db"), got, want):
        assert_close(f"{peer} {name}", g, w, rtol=1e-3, atol=1e-5 * n)
    benchmark(step)


@pytest.mark.parametrize("n", W1_SIZES, ids=_nid)
def bench_cuda_copy_floor(benchmark, n, quick):
    if quick and n > 10**6:
        pytest.skip("N > 1e6 runs only without --quick")
    _gpu_or_skip()
    from numba import cuda
    benchmark.group = "cuda-copy-floor"
    benchmark.extra_info.update(peer="d2d_copy", case=f"device copy float32[{_nid(n)}]", n=n,
                                bytes=2 * n * 4)
    src = cuda.to_device(np.ones(n, np.float32))
    dst = cuda.device_array(n, np.float32)

    def step():
        dst.copy_to_device(src)
        cuda.synchronize()
    step()
    assert float(dst[:1].copy_to_host()[0]) == 1.0
    benchmark(step)


@pytest.mark.parametrize("peer", ["jitgrad", "jitgrad_compiled", "jitgrad_eager", "torch"])
def bench_cuda_launch(benchmark, peer):
    _gpu_or_skip()
    benchmark.group = "cuda-launch"
    benchmark.extra_info.update(peer=peer, case=f"chain of {CHAIN} mul on float32[16]",
                                ops=CHAIN)
    lib = W.import_jitgrad() if peer.startswith("jitgrad") else _torch_cuda_or_skip()
    x = lib.tensor(np.linspace(-1, 1, 16).astype(np.float32), device="cuda")

    def chain():
        y = x
        for _ in range(CHAIN):
            y = y * 1.01
        return y.sum()
    run = lib.compile(chain) if peer == "jitgrad_compiled" else chain  # (CUDA replay)

    def step():
        return run().item()
    with W.fusion(peer != "jitgrad_eager") if peer.startswith("jitgrad") else \
            contextlib.nullcontext():
        got = step()
        np.testing.assert_allclose(got, (np.linspace(-1, 1, 16) * 1.01 ** CHAIN).sum(),
                                   rtol=1e-5, atol=1e-6)
        benchmark(step)


MM_SIZES = [512, 2048, 4096]


@pytest.mark.parametrize("n", MM_SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("peer", ["jitgrad", "torch"])
def bench_cuda_matmul(benchmark, peer, n, quick):
    """The tiled shared-memory matmul against cuBLAS (through torch): float32 n x n @ n x n."""
    if quick and n > 512:
        pytest.skip("n > 512 runs only without --quick")
    _gpu_or_skip()
    benchmark.group = "cuda-matmul-float32"
    benchmark.extra_info.update(peer=peer, case=f"matmul float32 {n}x{n}", flops=2 * n ** 3)
    lib = W.import_jitgrad() if peer == "jitgrad" else _torch_cuda_or_skip()
    rng = np.random.default_rng(0)
    av, bv = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    a, b = lib.tensor(av, device="cuda"), lib.tensor(bv, device="cuda")
    sync = (lambda: W.import_jitgrad().cuda.synchronize()) if peer == "jitgrad" else \
        lib.cuda.synchronize

    def step():
        c = a @ b
        sync()
        return c
    got = step().cpu().numpy()
    ref = av[:64].astype(np.float64) @ bv.astype(np.float64)
    np.testing.assert_allclose(got[:64], ref, rtol=1e-3, atol=1e-3 * np.sqrt(n))
    benchmark(step)
