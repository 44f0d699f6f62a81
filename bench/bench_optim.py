"""Optimizer step for the W2 MLP's parameters: jitgrad's fused kernels vs torch.optim and NumPy.

Parameters: the six tensors of the 784-256-256-10 MLP as ``nn.Linear`` holds them (weights
(out, in), biases), 269,322 float32 values, each with a fixed random gradient. One benchmark
call is one ``step()`` over all six (no backward, no zero_grad).

Groups (``optim-adam``, ``optim-sgd``), peers:

* ``jitgrad`` -- ``jitgrad.optim.Adam(params, lr=1e-3)`` / ``SGD(params, lr=1e-2,
  momentum=0.9)``: one generated njit kernel per step updates every parameter and buffer;
* ``torch_foreach`` -- ``torch.optim.Adam(..., foreach=True)`` (the multi-tensor path; the
  issue's target is jitgrad <= 0.5x its time);
* ``torch_fused`` -- ``fused=True`` (torch's fused CPU kernel);
* ``torch`` -- torch's default on CPU tensors (the per-parameter loop, ``foreach=False``);
* ``numpy`` -- the same update written by hand with in-place NumPy ufuncs and one scratch
  buffer per parameter.

Every peer's parameters after one step from the same state are checked against jitgrad's
(outside the timed part; under ``--quick`` that check is all that runs). Timings: torch at its
default intra-op threads, jitgrad's kernel on one thread.

Peers interleaved (one step of each per round, medians; what the README quotes, as the VM's
speed drifts between the seconds pytest-benchmark gives each peer)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench_optim --rounds 500
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest

from bench import workloads as W

LAYERS = (784, 256, 256, 10)
LR = {"adam": 1e-3, "sgd": 1e-2}
MOMENTUM = 0.9
BETAS = (0.9, 0.999)
EPS = 1e-8
PEERS = ["jitgrad", "torch_foreach", "torch_fused", "torch", "numpy"]


def shapes():
    out = []
    for din, dout in zip(LAYERS[:-1], LAYERS[1:]):
        out += [(dout, din), (dout,)]
    return out


N_PARAMS = sum(int(np.prod(s)) for s in shapes())


def init():
    """(params, grads): float32 NumPy arrays, the same for every peer."""
    rng = np.random.default_rng(0)
    ps = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes()]
    gs = [(rng.standard_normal(s) * 0.01).astype(np.float32) for s in shapes()]
    return ps, gs


def _lib_step(lib, kind, **kw):
    ps, gs = init()
    params = [lib.tensor(p, requires_grad=True) for p in ps]
    for p, g in zip(params, gs):
        p.grad = lib.tensor(g)
    if kind == "adam":
        opt = lib.optim.Adam(params, lr=LR[kind], betas=BETAS, eps=EPS, **kw)
    else:
        opt = lib.optim.SGD(params, lr=LR[kind], momentum=MOMENTUM, **kw)
    return opt.step, lambda: [p.detach().numpy().copy() for p in params]


def _numpy_step(kind):
    ps, gs = init()
    bufs = [np.zeros_like(p) for p in ps]
    sq = [np.zeros_like(p) for p in ps]
    tmp = [np.empty_like(p) for p in ps]
    t = [0]
    b1, b2 = BETAS
    lr = LR[kind]

    def adam():
        t[0] += 1
        bc1, bc2s = 1 - b1 ** t[0], np.sqrt(1 - b2 ** t[0])
        for p, g, m, v, s in zip(ps, gs, bufs, sq, tmp):
            m *= b1
            np.multiply(g, np.float32(1 - b1), out=s)
            m += s
            v *= b2
            np.multiply(g, g, out=s)
            s *= np.float32(1 - b2)
            v += s
            np.sqrt(v, out=s)
            s /= np.float32(bc2s)
            s += np.float32(EPS)
            np.divide(m, s, out=s)
            s *= np.float32(-lr / bc1)
            p += s

    def sgd():
        first = t[0] == 0
        t[0] += 1
        for p, g, m, s in zip(ps, gs, bufs, tmp):
            if first:
                m[...] = g
            else:
                m *= MOMENTUM
                m += g
            np.multiply(m, np.float32(-lr), out=s)
            p += s
    return (adam if kind == "adam" else sgd), lambda: [p.copy() for p in ps]


def peer_step(peer, kind):
    """(step, params) for a peer; params() gives its current parameters as arrays."""
    if peer == "jitgrad":
        return _lib_step(W.import_jitgrad(), kind)
    if peer == "numpy":
        return _numpy_step(kind)
    torch = W.import_torch()
    kw = {"torch_foreach": dict(foreach=True), "torch_fused": dict(fused=True),
          "torch": dict(foreach=False)}[peer]
    return _lib_step(torch, kind, **kw)


def check_one_step(peer, kind, assert_close=None):
    """One step of ``peer`` from the shared initial state gives jitgrad's parameters."""
    ref_step, ref = peer_step("jitgrad", kind)
    ref_step()
    step, params = peer_step(peer, kind)
    step()
    for i, (a, b) in enumerate(zip(params(), ref())):
        if assert_close is not None:
            assert_close(f"{peer} {kind} param {i}", a, b, rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _bench(benchmark, peer, kind, assert_close):
    benchmark.extra_info.update(peer=peer, case=f"{kind} step, W2 params ({N_PARAMS} f32)",
                                elements=N_PARAMS)
    check_one_step(peer, kind, assert_close)
    step, _ = peer_step(peer, kind)
    t0 = time.perf_counter()
    step()  # (jitgrad: the kernel's load or compile)
    benchmark.extra_info["first_call_s"] = time.perf_counter() - t0
    if peer.startswith("torch"):
        benchmark.extra_info["torch_threads"] = W.import_torch().get_num_threads()
    benchmark(step)


@pytest.mark.benchmark(group="optim-adam")
@pytest.mark.parametrize("peer", PEERS)
def bench_optim_adam(benchmark, peer, assert_close):
    _bench(benchmark, peer, "adam", assert_close)


@pytest.mark.benchmark(group="optim-sgd")
@pytest.mark.parametrize("peer", PEERS)
def bench_optim_sgd_momentum(benchmark, peer, assert_close):
    _bench(benchmark, peer, "sgd", assert_close)


def main(argv=None) -> dict:
    """Interleaved rounds; prints medians and each peer's ratio to jitgrad's time."""
    ap = argparse.ArgumentParser(description="optimizer steps, peers interleaved")
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--kinds", default="adam,sgd")
    ap.add_argument("--threads", type=int, default=None,
                    help="limit torch's intra-op pool to N threads (jitgrad's kernel uses one)")
    args = ap.parse_args(argv)
    if args.threads:
        try:
            W.import_torch().set_num_threads(args.threads)
        except BaseException:  # noqa: BLE001 - torch is optional
            pass
    out = {}
    for kind in args.kinds.split(","):
        steps = {}
        for peer in PEERS:
            try:
                check_one_step(peer, kind)
                steps[peer] = peer_step(peer, kind)[0]
            except BaseException as e:  # noqa: BLE001 - a missing peer is reported
                print(f"{kind} {peer}: skipped ({type(e).__name__}: {e})")
        for s in steps.values():
            s()
        times = {p: [] for p in steps}
        for _ in range(args.rounds):
            for p, s in steps.items():
                t0 = time.perf_counter()
                s()
                times[p].append(time.perf_counter() - t0)
        med = {p: float(np.median(v)) for p, v in times.items()}
        print(f"{kind} ({N_PARAMS} float32 params, {args.rounds} interleaved rounds):")
        for p, m in med.items():
            r = "" if p == "jitgrad" else \
                f"   jitgrad / {p} = {med['jitgrad'] / m:.2f}"
            print(f"  {p:14s} median {m * 1e6:8.1f} us  min {min(times[p]) * 1e6:8.1f} us{r}")
        out[kind] = med
    return out


if __name__ == "__main__":
    main()
