"""vmap: per-sample gradients of the W2 MLP, jitgrad.vmap(grad) vs a loop of grad vs torch.func.

784-256-256-10, tanh, cross-entropy, float32, a batch of 128: the gradient of each sample's
loss with respect to all six parameters (weights held (out, in) as nn.Linear holds them),
``vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)``.

Group ``vmap-per-sample-grads``, peers:

* ``jitgrad`` -- ``jitgrad.func.vmap(jitgrad.func.grad(loss))``: one batched pass;
* ``jitgrad_loop`` -- a Python loop of ``jitgrad.func.grad(loss)`` over the 128 samples, the
  results stacked (what vmap replaces);
* ``torch_func`` -- ``torch.func.vmap(torch.func.grad(loss))`` on the same values.

Issue 16's targets: ``jitgrad`` at least 5x faster than ``jitgrad_loop`` and within 2x of
``torch_func`` (run in the same session: compare the medians). Every peer's gradients are
checked against torch.func's outside the timed part.
"""
from __future__ import annotations

import numpy as np
import pytest

LAYERS = (784, 256, 256, 10)
BATCH = 128
PEERS = ["jitgrad", "jitgrad_loop", "torch_func"]


def _data():
    rng = np.random.default_rng(0)
    P = []
    for i, o in zip(LAYERS[:-1], LAYERS[1:]):
        P += [(rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32),
              (rng.standard_normal(o) * 0.1).astype(np.float32)]
    X = rng.standard_normal((BATCH, LAYERS[0])).astype(np.float32)
    Y = rng.integers(0, LAYERS[-1], BATCH)
    return P, X, Y


def _loss(F, tanh):
    def loss(params, x, y):
        h = x.unsqueeze(0)
        n = len(params) // 2
        for k in range(n):
            h = F.linear(h, params[2 * k], params[2 * k + 1])
            if k < n - 1:
                h = tanh(h)
        return F.cross_entropy(h, y.unsqueeze(0))
    return loss


def _make(peer, P, X, Y):
    """(call, result -> list of ndarrays) for one peer."""
    if peer.startswith("jitgrad"):
        import jitgrad
        import jitgrad.nn.functional as F
        from jitgrad.func import grad, vmap
        loss = _loss(F, jitgrad.tanh)
        jp = tuple(jitgrad.tensor(p) for p in P)
        jx, jy = jitgrad.tensor(X), jitgrad.tensor(Y)
        if peer == "jitgrad":
            vg = vmap(grad(loss), in_dims=(None, 0, 0))
            return (lambda: vg(jp, jx, jy)), (lambda r: [g.numpy() for g in r])
        g1 = grad(loss)
        xs = [jx[b] for b in range(BATCH)]
        ys = [jy[b] for b in range(BATCH)]

        def loop():
            per = [g1(jp, xs[b], ys[b]) for b in range(BATCH)]
            return [jitgrad.stack([p[k] for p in per]) for k in range(len(jp))]
        return loop, (lambda r: [g.numpy() for g in r])
    torch = pytest.importorskip("torch", reason="torch not installed")
    loss = _loss(torch.nn.functional, torch.tanh)
    tp = tuple(torch.from_numpy(p) for p in P)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    vg = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    return (lambda: vg(tp, tx, ty)), (lambda r: [g.numpy() for g in r])


@pytest.fixture(scope="module")
def reference():
    P, X, Y = _data()
    call, to_np = _make("torch_func", P, X, Y)
    return to_np(call())


@pytest.mark.benchmark(group="vmap-per-sample-grads")
@pytest.mark.parametrize("peer", PEERS)
def bench_per_sample_grads(benchmark, peer, reference, assert_close):
    case = f"MLP {'-'.join(map(str, LAYERS))} per-sample grads, batch {BATCH}"
    benchmark.extra_info.update(peer=peer, case=case, n=BATCH)
    P, X, Y = _data()
    call, to_np = _make(peer, P, X, Y)
    for _ in range(2):  # first calls compile / load kernels: outside the timed part
        got = to_np(call())
    for k, (g, w) in enumerate(zip(got, reference)):
        assert_close(f"{peer} grad {k}", g, w, rtol=2e-4, atol=2e-5)
    benchmark(call)
