"""W2: one MLP training step, jitgrad vs PyTorch eager, JAX jit and NumPy by hand.

784-256-256-10, batch 128, float32: ``h1 = tanh(x @ W1 + b1)``, ``h2 = tanh(h1 @ W2 + b2)``,
``z = h2 @ W3 + b3``, mean softmax cross-entropy against integer labels, backward, then an SGD
update ``p -= lr * p.grad`` of all six parameters (weights stored (in, out), as ``x @ W``, by the
jax and numpy peers; the eager peers hold the transposes, see below).

Group ``mlp``, peers:

* ``jitgrad`` -- the PyTorch idiom with ``jitgrad`` for ``torch``: weights held as ``nn.Linear``
  holds them, (out, in), applied with ``F.linear(h, W, b)``; ``F.cross_entropy``,
  ``loss.backward()``, an in-place update under ``no_grad``, ``p.grad = None``;
* ``torch`` -- the same code in PyTorch eager (its default intra-op threads, like NumPy's BLAS);
* ``jitgrad_nn`` / ``torch_nn`` -- the same step written with modules, the way a PyTorch user
  writes it: ``nn.Sequential`` of ``nn.Linear`` and ``nn.Tanh``, ``nn.CrossEntropyLoss``,
  ``optim.SGD`` (``zero_grad``, forward, ``backward``, ``step``). Same initial weights. Issue
  15's target: ``jitgrad_nn`` within 5% of ``jitgrad`` (modules add no measurable overhead);
* ``jax`` -- ``jax.jit`` of ``value_and_grad`` plus the update, parameters donated;
* ``numpy`` -- forward and backward written by hand, updating in place;
* ``gemm_floor`` -- the step's matrix products alone, NumPy into preallocated outputs: 3 forward
  and 5 backward (dW1, dW2, dW3, dh2, dh1; the input's gradient is not needed). Not a peer: the
  report shows it beside the others as the floor.

Threads: every peer runs with its library's default (one per core). On a shared machine a
2-thread BLAS whose second core is busy slows down many times over; ``JITGRAD_BENCH_BLAS_THREADS=n``
limits NumPy's BLAS (jitgrad, numpy, gemm_floor; threadpoolctl) and torch's intra-op pool to n
threads for this module (JAX's pool is fixed at start-up: ``XLA_FLAGS``). ``extra_info`` records
the thread counts.

Every peer's loss and parameter updates after one step from the same initial state are checked
against jitgrad's (and jitgrad's against float64 NumPy) outside the timed part. ``flops`` in
``extra_info`` counts the products only (2 m k n each); ``peak_bytes`` (jitgrad, numpy) is the
peak of one step's traced (tracemalloc) allocations; ``first_call_s`` is the first step in this
process (jax: trace + compile; jitgrad: kernel loads or compiles not already done by an earlier
benchmark).
"""
from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import pytest

from bench import workloads as W

LAYERS = (784, 256, 256, 10)
BATCH = 128
LR = 0.1
# jitgrad_compiled: the jitgrad step under jitgrad.compile (recorded once, replayed; issue 18)
PEERS = ["jitgrad", "jitgrad_compiled", "jitgrad_nn", "torch", "torch_nn", "jax", "numpy",
         "gemm_floor"]


def _gemm_shapes():
    """(m, k, n) of every product in one step."""
    d0, d1, d2, d3 = LAYERS
    fwd = [(BATCH, d0, d1), (BATCH, d1, d2), (BATCH, d2, d3)]
    dw = [(d0, BATCH, d1), (d1, BATCH, d2), (d2, BATCH, d3)]
    dh = [(BATCH, d3, d2), (BATCH, d2, d1)]
    return fwd + dw + dh


FLOPS = sum(2 * m * k * n for m, k, n in _gemm_shapes())


def mlp_init():
    """(params, x, labels): params = [W1, b1, W2, b2, W3, b3] float32 NumPy arrays."""
    rng = np.random.default_rng(0)
    params = []
    for din, dout in zip(LAYERS[:-1], LAYERS[1:]):
        params.append((rng.standard_normal((din, dout)) / np.sqrt(din)).astype(np.float32))
        params.append((0.1 * rng.standard_normal(dout)).astype(np.float32))
    x = rng.standard_normal((BATCH, LAYERS[0])).astype(np.float32)
    labels = rng.integers(0, LAYERS[-1], BATCH).astype(np.int64)
    return params, x, labels


# --------------------------------------------------------------------------- peers

def _eager_step(lib):
    """jitgrad or torch: (step, first, state) -- step() returns the loss tensor; state() gives
    the parameters in mlp_init's layout. Weights are stored (out, in) as ``nn.Linear`` stores
    them and applied with ``F.linear`` (torch: one ``addmm`` per layer)."""
    F = lib.nn.functional
    p0, xv, yv = mlp_init()
    params = [lib.tensor(np.ascontiguousarray(p.T) if p.ndim == 2 else p, requires_grad=True)
              for p in p0]
    x = lib.tensor(xv)
    labels = lib.tensor(yv)

    def step():
        h = x
        for i in range(3):
            h = F.linear(h, params[2 * i], params[2 * i + 1])
            if i < 2:
                h = lib.tanh(h)
        loss = F.cross_entropy(h, labels)
        loss.backward()
        with lib.no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad = None
        return loss

    def state():
        return [W.to_numpy(p).T if p.dim() == 2 else W.to_numpy(p) for p in params]

    return step, lambda: float(step().item()), state


def _module_step(lib):
    """jitgrad or torch, written with nn modules and optim.SGD: (step, first, state) as
    ``_eager_step``, from the same initial weights."""
    nn = lib.nn
    p0, xv, yv = mlp_init()
    layers = []
    for din, dout in zip(LAYERS[:-1], LAYERS[1:]):
        layers += [nn.Linear(din, dout), nn.Tanh()]
    model = nn.Sequential(*layers[:-1])
    with lib.no_grad():
        for p, v in zip(model.parameters(), p0):
            p.copy_(lib.tensor(np.ascontiguousarray(v.T) if v.ndim == 2 else v))
    crit = nn.CrossEntropyLoss()
    opt = lib.optim.SGD(model.parameters(), lr=LR)
    x = lib.tensor(xv)
    labels = lib.tensor(yv)

    def step():
        opt.zero_grad()
        loss = crit(model(x), labels)
        loss.backward()
        opt.step()
        return loss

    def state():
        return [W.to_numpy(p).T if p.dim() == 2 else W.to_numpy(p) for p in model.parameters()]

    return step, lambda: float(step().item()), state


def _jax_step():
    jax = W.import_jax()
    import jax.numpy as jnp

    def loss_fn(params, x, labels):
        h = x
        for i in range(3):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < 2:
                h = jnp.tanh(h)
        logp = jax.nn.log_softmax(h, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    def train_step(params, x, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, labels)
        return loss, tuple(p - LR * g for p, g in zip(params, grads))

    jstep = jax.jit(train_step, donate_argnums=0)
    p0, xv, yv = mlp_init()
    st = {"params": tuple(jnp.asarray(p) for p in p0)}
    x, labels = jnp.asarray(xv), jnp.asarray(yv)

    def step():
        loss, st["params"] = jstep(st["params"], x, labels)
        return jax.block_until_ready(loss)

    return step, lambda: float(step()), lambda: [np.asarray(p) for p in st["params"]]


def numpy_train_step(params, x, labels, lr=LR):
    """One SGD step by hand, updating ``params`` in place; returns the loss. Works in the
    arrays' dtype (float64 arrays give the reference)."""
    w1, b1, w2, b2, w3, b3 = params
    n = x.shape[0]
    rows = np.arange(n)
    one = x.dtype.type(1)
    h1 = x @ w1
    h1 += b1
    np.tanh(h1, out=h1)
    h2 = h1 @ w2
    h2 += b2
    np.tanh(h2, out=h2)
    z = h2 @ w3
    z += b3
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s[:, 0]).mean() - z[rows, labels].mean()
    g = e / s
    g[rows, labels] -= one
    g /= x.dtype.type(n)
    gw3 = h2.T @ g
    gb3 = g.sum(axis=0)
    d2 = g @ w3.T
    d2 *= one - h2 * h2
    gw2 = h1.T @ d2
    gb2 = d2.sum(axis=0)
    d1 = d2 @ w2.T
    d1 *= one - h1 * h1
    gw1 = x.T @ d1
    gb1 = d1.sum(axis=0)
    lr = x.dtype.type(lr)
    for p, gp in zip(params, (gw1, gb1, gw2, gb2, gw3, gb3)):
        p -= lr * gp
    return loss


def _numpy_step():
    params, x, labels = mlp_init()

    def step():
        return numpy_train_step(params, x, labels)

    return step, lambda: float(step()), lambda: [p.copy() for p in params]


def _gemm_floor_step():
    """The step's 8 products into preallocated outputs (operands laid out as in numpy_step)."""
    (w1, _, w2, _, w3, _), x, _ = mlp_init()
    rng = np.random.default_rng(1)
    h1 = rng.standard_normal((BATCH, LAYERS[1])).astype(np.float32)
    h2 = rng.standard_normal((BATCH, LAYERS[2])).astype(np.float32)
    g = rng.standard_normal((BATCH, LAYERS[3])).astype(np.float32)
    outs = {k: np.empty(s, np.float32) for k, s in (
        ("a1", h1.shape), ("a2", h2.shape), ("z", g.shape), ("gw1", w1.shape),
        ("gw2", w2.shape), ("gw3", w3.shape), ("d2", h2.shape), ("d1", h1.shape))}
    mm = np.matmul

    def step():
        mm(x, w1, out=outs["a1"])
        mm(h1, w2, out=outs["a2"])
        mm(h2, w3, out=outs["z"])
        mm(h2.T, g, out=outs["gw3"])
        mm(g, w3.T, out=outs["d2"])
        mm(h1.T, h2, out=outs["gw2"])
        mm(h2, w2.T, out=outs["d1"])
        mm(x.T, h1, out=outs["gw1"])
        return outs

    def check():
        step()
        want = x.astype(np.float64) @ w1.astype(np.float64)
        return float(np.abs(outs["a1"] - want).max() / np.abs(want).max())

    return step, check


def _peer_step(peer):
    if peer == "jitgrad":
        return _eager_step(W.import_jitgrad())
    if peer == "jitgrad_compiled":
        jg = W.import_jitgrad()
        step, _, state = _eager_step(jg)
        step = jg.compile(step)
        return step, lambda: float(step().item()), state
    if peer == "torch":
        return _eager_step(W.import_torch())
    if peer == "jitgrad_nn":
        return _module_step(W.import_jitgrad())
    if peer == "torch_nn":
        return _module_step(W.import_torch())
    if peer == "jax":
        return _jax_step()
    return _numpy_step()


@contextlib.contextmanager
def _threads(benchmark, peer):
    """Apply JITGRAD_BENCH_BLAS_THREADS (when set) and record the thread counts."""
    n = os.environ.get("JITGRAD_BENCH_BLAS_THREADS")
    with contextlib.ExitStack() as st:
        if n and peer in ("jitgrad", "jitgrad_compiled", "jitgrad_nn", "numpy", "gemm_floor"):
            from threadpoolctl import threadpool_limits
            st.enter_context(threadpool_limits(int(n), user_api="blas"))
        if peer in ("torch", "torch_nn"):
            torch = W.import_torch()
            prev = torch.get_num_threads()
            torch.set_num_threads(int(n) if n else prev)
            st.callback(torch.set_num_threads, prev)
            benchmark.extra_info["torch_threads"] = torch.get_num_threads()
        elif peer != "jax":
            try:
                from threadpoolctl import threadpool_info
                benchmark.extra_info["blas_threads"] = max(
                    (i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"),
                    default=None)
            except ImportError:
                pass
        yield


_REF: dict = {}


def _jitgrad_reference(assert_close):
    """jitgrad's loss and parameter deltas after one step from mlp_init(), checked once
    against float64 NumPy."""
    if not _REF:
        p0, _, _ = mlp_init()
        _, first, state = _eager_step(W.import_jitgrad())
        loss = first()
        deltas = [p - q for p, q in zip(state(), p0)]
        p64, x, labels = mlp_init()
        p64 = [p.astype(np.float64) for p in p64]
        loss64 = numpy_train_step(p64, x.astype(np.float64), labels)
        assert_close("jitgrad loss vs float64 numpy", loss, loss64, rtol=1e-5)
        for i, (d, p, q) in enumerate(zip(deltas, p64, p0)):
            d64 = p - q
            assert_close(f"jitgrad param {i} update vs float64 numpy", d, d64,
                         rtol=1e-3, atol=1e-4 * np.abs(d64).max())
        _REF.update(loss=loss, deltas=deltas)
    return _REF


@pytest.mark.benchmark(group="mlp")
@pytest.mark.parametrize("peer", PEERS)
def bench_mlp_step(benchmark, peer, assert_close):
    benchmark.extra_info.update(peer=peer, case="784-256-256-10 b128 f32 step", flops=FLOPS)
    ref = _jitgrad_reference(assert_close)
    with contextlib.ExitStack() as st:
        st.enter_context(_threads(benchmark, peer))
        if peer == "gemm_floor":
            step, check = _gemm_floor_step()
            assert check() < 1e-5, "gemm floor products"
        else:
            p0, _, _ = mlp_init()
            step, first, state = _peer_step(peer)
            # one step from the initial state, compared with jitgrad's (untimed; compiles)
            t0 = time.perf_counter()
            loss = first()
            benchmark.extra_info["first_call_s"] = time.perf_counter() - t0
            assert_close(f"{peer} loss", loss, ref["loss"], rtol=1e-5)
            for i, (p, q, d) in enumerate(zip(state(), p0, ref["deltas"])):
                assert_close(f"{peer} param {i} update", p - q, d,
                             rtol=1e-3, atol=1e-4 * np.abs(d).max())
            if peer in ("jitgrad", "jitgrad_compiled", "jitgrad_nn", "numpy"):
                benchmark.extra_info["peak_bytes"] = W.traced_peak_bytes(step)
        for _ in range(3):
            step()  # warm
        benchmark(step)
