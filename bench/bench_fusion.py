"""Lazy-fusion benchmarks: jitgrad with fusion on vs jitgrad eager, torch eager, torch.compile,
jax.jit and hand-written NumPy.

Groups
* ``fusion-w1-float32`` / ``fusion-w1-float64`` -- W1 forward+backward+``loss.item()``:
  ``y = tanh(a*x+b) * exp(-x*x) / (1 + x*x) + sin(x) * sigmoid(x); y.sum().backward()``
  with x (N,) and 0-d a, b requiring grad; N = 1e3, 1e5, 1e6 (1e7 only without --quick;
  ids ``N1e3`` ... ``N1e7``, so ``-k "not N1e7"`` leaves it out).
* ``fusion-w5`` -- a chain of k = 1, 10, 100, 1000 ops alternating ``y * 1.01`` and ``sin(y)``
  on x float32 (1e5,), then ``.sum().backward()`` (``ops=k``: the summary prints time per op).
* ``fusion-compile`` -- W1 float32[1e3] and W5 k = 24 (staged kernels) first call (trace +
  compile + run) in a fresh process: jitgrad with an empty kernel cache, jitgrad with a warm
  disk cache, torch.compile with its caches disabled, jax.jit. The timed quantity is the whole subprocess (imports included); the
  first call alone is ``extra_info["in_process_s"]`` (printed by the summary).

W1 records ``extra_info["n"]``, ``["bytes"]`` (the least traffic possible: one read of x) and,
for jitgrad and NumPy, ``["peak_bytes"]`` (one call's peak of traced NumPy allocations, taken
outside the timed part) for the report; W5 records ``n`` and ``bytes`` (read x, write x.grad).

Peers: ``jitgrad`` is jitgrad with fusion on (the reference every ratio is taken to),
``jitgrad_eager`` the same code with fusion off. Every W1/W5 benchmark also records its first
call in this process as ``extra_info["first_call_s"]`` (and, for jitgrad,
``first_call_kernels_built``). That is compile time only when nothing was cached: jitgrad reuses
kernels across N in memory and from its disk cache, torch.compile from inductor's on-disk
caches, so cold compile times are the ``fusion-compile`` group's job.

torch runs with ``torch.set_num_threads(1)`` by default, like jitgrad's serial kernels and NumPy
(its intra-op pool is very slow on a loaded machine); ``JITGRAD_BENCH_TORCH_THREADS=n`` changes
that. Values of every peer are checked against jitgrad's outside the timed part; no benchmark
asserts on time.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import types

import numpy as np
import pytest

from bench import workloads as W

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

W1_SIZES = [10**3, 10**5, 10**6, 10**7]
W5_N = 10**5
W5_KS = [1, 10, 100, 1000]
# jitgrad_compiled: the same step under jitgrad.compile (recorded once, replayed; issue 18)
W1_PEERS = ["jitgrad", "jitgrad_compiled", "jitgrad_eager", "torch", "torch_compile", "jax",
            "numpy"]
W5_PEERS = ["jitgrad", "jitgrad_compiled", "jitgrad_eager", "torch", "torch_compile"]


# --------------------------------------------------------------------------- helpers

_jitgrad = W.import_jitgrad
_torch = W.import_torch
_jax = W.import_jax
_np = W.to_numpy


_fusion = W.fusion


@contextlib.contextmanager
def _torch_threads(benchmark):
    torch = _torch()
    prev = torch.get_num_threads()
    n = int(os.environ.get("JITGRAD_BENCH_TORCH_THREADS", "1"))
    torch.set_num_threads(n)
    benchmark.extra_info["torch_threads"] = n
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@contextlib.contextmanager
def _peer_context(peer, benchmark, dtype=None):
    """Global state a peer runs under: fusion on/off, torch threads, jax x64."""
    with contextlib.ExitStack() as st:
        if peer.startswith("jitgrad"):
            st.enter_context(_fusion(peer != "jitgrad_eager"))
        elif peer.startswith("torch"):
            st.enter_context(_torch_threads(benchmark))
        elif peer == "jax":
            st.enter_context(_jax().enable_x64(dtype == "float64"))
        yield


def _first_call(benchmark, fn):
    """Time the first call in this process; for jitgrad also record how many kernels it had to
    build (0: an earlier benchmark already built them; loads from the disk cache count too)."""
    from jitgrad import _debug
    built = _debug.COUNTERS["kernels_built"]
    t0 = time.perf_counter()
    out = fn()
    benchmark.extra_info["first_call_s"] = time.perf_counter() - t0
    benchmark.extra_info["first_call_kernels_built"] = _debug.COUNTERS["kernels_built"] - built
    return out


def _first_call_or_skip(benchmark, peer, step):
    """``_first_call``; a torch.compile failure skips the benchmark with its message."""
    try:
        return _first_call(benchmark, step)
    except Exception as e:  # noqa: BLE001
        if peer == "torch_compile":
            pytest.skip(f"torch.compile failed: {type(e).__name__}: {e}"[:500])
        raise


def _tol(dtype, n):
    """(rtol, atol) for a sum of n terms of size ~1 accumulated in different orders."""
    eps = np.finfo(dtype).eps
    return 1e3 * eps, 10 * eps * n


def _nid(n):
    return f"N1e{int(round(np.log10(n)))}"


# --------------------------------------------------------------------------- W1

_w1 = W.w1
_w1_inputs = W.w1_inputs
_w1_numpy = W.w1_numpy


def _w1_step(peer, dtype, n):
    """(step, result): step() runs one forward+backward; result() -> (loss, ga, gb)."""
    xv, av, bv = _w1_inputs(dtype, n)
    if peer in ("jitgrad", "jitgrad_compiled", "jitgrad_eager", "torch", "torch_compile"):
        lib = _jitgrad() if peer.startswith("jitgrad") else _torch()
        x = lib.tensor(xv)
        a = lib.tensor(av, requires_grad=True)
        b = lib.tensor(bv, requires_grad=True)
        if peer == "torch_compile":
            import torch._dynamo
            torch._dynamo.reset()
            f = lib.compile(functools.partial(_w1, lib))
        else:
            f = functools.partial(_w1, lib)

        def fwd_bwd():
            a.grad = None
            b.grad = None
            loss = f(x, a, b)
            loss.backward()
            return loss
        run = lib.compile(fwd_bwd) if peer == "jitgrad_compiled" else fwd_bwd

        def step():
            return run().item()

        def result():
            return step(), _np(a.grad), _np(b.grad)

        return step, result
    if peer == "jax":
        jax = _jax()
        import jax.numpy as jnp

        jns = types.SimpleNamespace(tanh=jnp.tanh, exp=jnp.exp, sin=jnp.sin,
                                    sigmoid=jax.nn.sigmoid)
        vg = jax.jit(jax.value_and_grad(functools.partial(_w1, jns), argnums=(1, 2)))
        x, a, b = jnp.asarray(xv), jnp.asarray(av), jnp.asarray(bv)

        def step():
            return jax.block_until_ready(vg(x, a, b))

        def result():
            loss, (ga, gb) = step()
            return float(loss), np.asarray(ga), np.asarray(gb)

        return step, result
    assert peer == "numpy"

    def step():
        return _w1_numpy(xv, av, bv)

    return step, step


@functools.lru_cache(maxsize=None)
def _w1_reference(dtype, n):
    _, result = _w1_step("jitgrad", dtype, n)
    with _fusion(True):
        return result()


@pytest.mark.parametrize("peer", W1_PEERS)
@pytest.mark.parametrize("n", W1_SIZES, ids=_nid)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def bench_w1(benchmark, dtype, n, peer, quick, assert_close):
    if quick and n > 10**6:
        pytest.skip("N=1e7 runs only without --quick")
    benchmark.group = f"fusion-w1-{dtype}"
    benchmark.extra_info.update(peer=peer, case=f"W1 fwd+bwd {dtype}[{_nid(n)}]")
    # for the report: size, and the least memory traffic possible (one read of x)
    benchmark.extra_info.update(n=n, bytes=n * np.dtype(dtype).itemsize)
    with _peer_context(peer, benchmark, dtype):
        step, result = _w1_step(peer, dtype, n)
        _first_call_or_skip(benchmark, peer, step)
        got = result()  # correctness outside the timed part
        want = _w1_reference(dtype, n)
        rtol, atol = _tol(dtype, n)
        for name, g, w in zip(("loss", "dL/da", "dL/db"), got, want):
            if name != "loss":  # loss comes back as a Python float from .item()
                assert np.asarray(g).dtype == np.dtype(dtype), f"{peer} {name} dtype"
            assert_close(f"{peer} {name}", g, w, rtol=rtol, atol=atol)
        if peer in ("jitgrad", "jitgrad_eager", "numpy"):  # NumPy-allocated buffers only
            benchmark.extra_info["peak_bytes"] = W.traced_peak_bytes(step)
        benchmark(step)


# --------------------------------------------------------------------------- W5

def _w5_step(peer, k):
    xv = np.linspace(-1, 1, W5_N).astype(np.float32)
    lib = _jitgrad() if peer.startswith("jitgrad") else _torch()
    x = lib.tensor(xv, requires_grad=True)
    f = functools.partial(W.w5, lib, k=k)
    if peer == "torch_compile":
        import torch._dynamo
        torch._dynamo.reset()
        f = lib.compile(f)

    def fwd_bwd():
        x.grad = None
        loss = f(x)
        loss.backward()
        return loss
    run = lib.compile(fwd_bwd) if peer == "jitgrad_compiled" else fwd_bwd

    def step():
        return run().item()

    def result():
        return step(), _np(x.grad)

    return step, result


_W5_REF: dict = {}


def _w5_reference(k):
    if k not in _W5_REF:
        _, result = _w5_step("jitgrad", k)
        with _fusion(True):
            _W5_REF[k] = result()
    return _W5_REF[k]


@pytest.mark.benchmark(group="fusion-w5")
@pytest.mark.parametrize("peer", W5_PEERS)
@pytest.mark.parametrize("k", W5_KS)
def bench_w5_chain(benchmark, k, peer, quick, pedantic_kwargs, assert_close):
    benchmark.extra_info.update(peer=peer, case=f"chain k={k} f32[1e5]", ops=k)
    benchmark.extra_info.update(n=W5_N, bytes=2 * W5_N * 4)  # read x, write x.grad
    with _peer_context(peer, benchmark):
        step, result = _w5_step(peer, k)
        _first_call_or_skip(benchmark, peer, step)
        got = result()
        if peer == "jitgrad":
            _W5_REF.setdefault(k, got)
    want = _w5_reference(k)
    assert_close(f"{peer} loss", got[0], want[0], rtol=1e-4, atol=10 * 1.2e-7 * W5_N)
    assert_close(f"{peer} x.grad", got[1], want[1], rtol=1e-4, atol=1e-5)
    with _peer_context(peer, benchmark):
        if k >= 100:  # up to seconds per call: a few fixed rounds
            kw = dict(pedantic_kwargs, warmup_rounds=0)
            if not quick:
                kw["rounds"] = 5 if k <= 100 else 3
            benchmark.pedantic(step, **kw)
        else:
            benchmark(step)


# --------------------------------------------------------------------------- compile

_COMPILE_CHILD = textwrap.dedent("""
    import sys, time, json
    import numpy as np
    peer, case = sys.argv[1], sys.argv[2]
    x = np.random.default_rng(0).uniform(-3, 3, 1000).astype(np.float32)
    av, bv = np.float32(0.7), np.float32(-0.3)
    if case != "w1":  # W5: a chain of k ops on 1e5 elements (staged kernels)
        k = int(case[3:])
        x = np.linspace(-1, 1, 10 ** 5).astype(np.float32)
    if peer.startswith("jitgrad"):
        import jitgrad as L
        L.lazy.set_fusion(True)
    elif peer == "torch_compile":
        import torch as L
        import torch._inductor.config
        L.set_num_threads(1)
        L._inductor.config.force_disable_caches = True
    else:
        import types, jax, jax.numpy as jnp
        jns = types.SimpleNamespace(tanh=jnp.tanh, exp=jnp.exp, sin=jnp.sin,
                                    sigmoid=jax.nn.sigmoid)
    from bench.workloads import w1, w5
    t0 = time.perf_counter()
    if case != "w1":
        def chain(lib, y):
            return w5(lib, y, k)
        if peer == "jax":
            vg = jax.jit(jax.value_and_grad(lambda x: chain(jnp, x)))
            loss, gx = jax.block_until_ready(vg(jnp.asarray(x)))
            res = [float(loss), float(gx[0]), float(gx[-1]), float(np.asarray(gx).sum())]
        else:
            f = (lambda y: chain(L, y)) if peer.startswith("jitgrad") else L.compile(
                lambda y: chain(L, y))
            xt = L.tensor(x, requires_grad=True)
            loss = f(xt)
            loss.backward()
            g = xt.grad
            res = [loss.item(), g[0].item(), g[-1].item(), g.sum().item()]
    elif peer == "jax":
        vg = jax.jit(jax.value_and_grad(lambda x, a, b: w1(jns, x, a, b), argnums=(1, 2)))
        loss, (ga, gb) = jax.block_until_ready(vg(jnp.asarray(x), jnp.asarray(av),
                                                  jnp.asarray(bv)))
        res = [float(loss), float(ga), float(gb)]
    else:
        f = (lambda *a: w1(L, *a)) if peer.startswith("jitgrad") else L.compile(
            lambda *a: w1(L, *a))
        a = L.tensor(av, requires_grad=True)
        b = L.tensor(bv, requires_grad=True)
        loss = f(L.tensor(x), a, b)
        loss.backward()
        res = [loss.item(), a.grad.item(), b.grad.item()]
    print(json.dumps(dict(first_call_s=time.perf_counter() - t0, res=res)))
""")


def _compile_env(cache_dir):
    env = dict(os.environ)
    env.pop("JITGRAD_CACHE", None)
    env["JITGRAD_CACHE_DIR"] = cache_dir
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env


def _run_compile_child(peer, cache_dir, case="w1"):
    out = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, peer, case], cwd=REPO_ROOT,
                         env=_compile_env(cache_dir), capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _w5_numpy_reference(k):
    """W5's loss and x.grad (first, last, sum) in float64 NumPy."""
    y = np.linspace(-1, 1, W5_N).astype(np.float32).astype(np.float64)
    g = np.ones_like(y)
    for i in range(k):
        if i % 2 == 0:
            y, g = y * 1.01, g * 1.01
        else:
            y, g = np.sin(y), g * np.cos(y)
    return [y.sum(), g[0], g[-1], g.sum()]


# W1 float32[1e3]; W5 k = 24 on 1e5 (its kernels are staged, see codegen.stage_split: the
# case that shows a warm disk cache reaching a staged kernel in a new process)
COMPILE_CASES = {"w1": "W1 f32[1e3] first call, fresh process",
                 "w5_24": "W5 k=24 f32[1e5] first call, fresh process"}


@pytest.mark.benchmark(group="fusion-compile")
@pytest.mark.parametrize("peer", ["jitgrad", "jitgrad_diskcache", "torch_compile", "jax"])
@pytest.mark.parametrize("case", list(COMPILE_CASES))
def bench_compile_first_call(benchmark, case, peer, quick, tmp_path, assert_close):
    """First call (compile + run) of W1 float32[1e3] or W5 k = 24 in a fresh process."""
    benchmark.extra_info.update(peer=peer, case=COMPILE_CASES[case])
    if peer == "torch_compile":
        _torch()
    elif peer == "jax":
        _jax()
    warm = str(tmp_path / "warm")
    if peer == "jitgrad_diskcache":
        _run_compile_child(peer, warm, case)  # fill the cache (untimed)
    firsts, results = [], []

    def run():
        # jitgrad: a new empty kernel cache each round; diskcache: the warm one
        d = warm if peer == "jitgrad_diskcache" else tempfile.mkdtemp(dir=tmp_path)
        try:
            r = _run_compile_child(peer, d, case)
        except RuntimeError as e:
            if peer == "torch_compile":
                pytest.skip(f"torch.compile failed in a fresh process: {e}"[:500])
            raise
        firsts.append(r["first_call_s"])
        results.append(r["res"])

    benchmark.pedantic(run, rounds=1 if quick else 3, iterations=1, warmup_rounds=0)
    benchmark.extra_info["in_process_s"] = min(firsts)
    if case == "w1":
        want = [float(np.asarray(v)) for v in _w1_reference("float32", 1000)]
        for r in results:
            assert_close(f"{peer} loss/ga/gb", r, want, rtol=1e-4, atol=1e-3)
        return
    want = _w5_numpy_reference(int(case[3:]))
    for r in results:  # (float32 sums of 1e5 terms)
        assert_close(f"{peer} loss/grad", r, want, rtol=1e-4, atol=10 * 1.2e-7 * W5_N)
