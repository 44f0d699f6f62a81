"""Chunked launches (backends/cpu: ``_Pool``, ``ChunkedKernel``; the claims in backends/_atomics).

Every thread of a launch calls the same chunk-form kernel, which claims chunks atomically; the
launching thread ("lead") then waits natively for the workers, boundedly. These tests drive the
protocol's pieces one at a time from one thread, so that each outcome is deterministic."""
import threading
import time

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import lazy
from jitgrad.backends import cpu
from jitgrad.backends._atomics import SPIN_LEAD


@pytest.fixture
def chunked_call(monkeypatch):
    """Runs ``f`` with every flat kernel in chunk form; returns (result, [(kernel, args)])."""
    monkeypatch.setattr(lazy, "PAR_MIN", 0)
    monkeypatch.setattr(lazy, "PAR_MIN_WORK", 0)
    monkeypatch.setattr(lazy, "FUSE_MIN", 0)  # (one fused kernel per loss)
    calls = []
    orig = cpu.ChunkedKernel.__call__

    def spy(self, *args):
        calls.append((self, args))
        return orig(self, *args)
    monkeypatch.setattr(cpu.ChunkedKernel, "__call__", spy)

    def run(f):
        calls.clear()
        return f(), list(calls)
    return run


def _loss(x):
    return (jg.sin(x) * x + 1).sum()


def test_a_worker_call_claims_every_chunk_and_the_lead_then_finds_none(chunked_call):
    xv = np.random.default_rng(0).uniform(-2, 2, 5 * cpu.PAR_BLOCK + 123)
    want = np.sum(np.sin(xv) * xv + 1)
    got, calls = chunked_call(lambda: _loss(jg.tensor(xv)).item())
    np.testing.assert_allclose(got, want, rtol=1e-12)
    (kern, args), = calls
    (at,) = kern.sums
    n_par = -(-xv.size // cpu.PAR_BLOCK)
    args = list(args)
    args[at] = part = np.full(n_par, np.nan)
    state = np.zeros(1, np.int64)
    ctl = np.array([0, 0, 0, 0, 4], np.int64)
    kern.dispatcher(*args, ctl, state, 0)      # a worker alone: takes every chunk
    assert ctl[0] >= n_par and ctl[1] == n_par and ctl[2] == 1 and state[0] == 0
    np.testing.assert_allclose(part.sum(), want, rtol=1e-12)
    assert ctl[3] == 0
    assert not cpu._idle_wait(state, 0, ctl, True, 0)  # it leaves: no longer inside
    assert ctl[2] == 0
    part[:] = np.nan
    kern.dispatcher(*args, ctl, state, 1)      # the lead: nothing left to claim or wait for
    assert state[0] == 1 and ctl[1] == n_par and ctl[3] == 1 and np.isnan(part).all()
    assert cpu._idle_wait(state, 0, cpu._NO_LAUNCH, False, 10)  # a launch started: wakes
    assert (cpu._NO_LAUNCH == 0).all()


@pytest.mark.parametrize("done", [3, 2])
def test_the_lead_stops_waiting_for_a_worker_that_is_not_scheduled(chunked_call, done):
    """A worker counted inside (done == 3: after its last chunk; done == 2: holding one) but
    not scheduled cannot hold the launching thread forever: ``chunk_finish`` gives up after
    SPIN_LEAVE / SPIN_LEAD pauses; ``ctl[3]`` says whether it saw every chunk done (if not,
    the Python side waits on the launch's event, which that worker sets)."""
    xv = np.linspace(-1, 1, 3 * cpu.PAR_BLOCK)
    _, calls = chunked_call(lambda: _loss(jg.tensor(xv)).item())
    (kern, args), = calls
    args = list(args)
    args[kern.sums[0]] = np.zeros(3)
    ctl = np.array([3, done, 1, 0, 4], np.int64)
    t0 = time.perf_counter()
    kern.dispatcher(*args, ctl, np.zeros(1, np.int64), 1)
    took = time.perf_counter() - t0
    assert took < 5.0 and ctl[2] == 1 and ctl[3] == (1 if done == 3 else 0), (took, ctl)
    assert SPIN_LEAD >= 1 << 10  # (long enough to cover a worker's last chunk)


def test_a_failing_worker_leaves_its_launch_to_the_caller_which_raises_its_error():
    pool = cpu._Pool()
    pool.size = 2
    n_par = 5
    done_by = []

    def call(ctl, state, lead):
        if not lead:
            raise RuntimeError("the worker's dispatch failed")
        t0 = time.perf_counter()  # wait until the worker has failed
        while not (pool.jobs and pool.jobs[0].error) and time.perf_counter() - t0 < 10:
            time.sleep(1e-3)
        while ctl[0] < n_par:  # then take every chunk: the launch stayed open
            done_by.append(int(ctl[0]))
            ctl[0] += 1
            ctl[1] += 1
    with pytest.raises(RuntimeError, match="worker's dispatch failed"):
        pool.launch(call, n_par)
    assert done_by == list(range(n_par))


def test_a_failing_worker_with_a_real_kernel_leaves_every_chunk_written_and_its_error(
        chunked_call, monkeypatch):
    xv = np.random.default_rng(2).uniform(-2, 2, 9 * cpu.PAR_BLOCK)
    x = jg.tensor(xv)
    _, calls = chunked_call(lambda: (jg.sin(x) * x + 1).numpy())  # (a full output)
    (kern, args), = calls
    assert not kern.sums
    pool = cpu._Pool()
    pool.size = 2
    monkeypatch.setattr(cpu, "POOL", pool)
    disp = kern.dispatcher

    def flaky(*a):
        if not a[-1]:
            raise RuntimeError("worker failed")
        t0 = time.perf_counter()
        while not (pool.jobs and pool.jobs[0].error) and time.perf_counter() - t0 < 10:
            time.sleep(1e-3)
        return disp(*a)
    (out,) = [a for a in args if isinstance(a, np.ndarray) and a.shape == xv.shape
              and not np.shares_memory(a, x.numpy())]
    out[:] = np.nan
    with pytest.raises(RuntimeError, match="worker failed"):
        cpu.ChunkedKernel(flaky, kern.sums, kern.size_at)(*args)
    np.testing.assert_allclose(out, np.sin(xv) * xv + 1, rtol=1e-12)  # every chunk


def test_a_failing_caller_waits_for_the_chunks_workers_took_before_it_raises():
    pool = cpu._Pool()
    pool.size = 2
    n_par = 6
    events = []
    worker_took_one = threading.Event()

    def call(ctl, state, lead):
        if lead:
            assert worker_took_one.wait(10)
            raise ValueError("the caller's dispatch failed")
        c = int(ctl[0])
        ctl[0] += 1
        worker_took_one.set()
        while ctl[0] < n_par:  # holds its chunk until the caller has closed the launch
            time.sleep(1e-4)
        time.sleep(0.05)
        events.append(f"chunk {c} written")
        ctl[1] += 1
    with pytest.raises(ValueError, match="caller's dispatch failed"):
        pool.launch(call, n_par)
    events.append("raised")
    assert events == ["chunk 0 written", "raised"]


def test_a_worker_joins_a_launch_and_finishes_the_chunks_it_took():
    """A Python ``call`` standing in for a kernel: the worker takes chunk 0 and holds it
    until the lead has taken the rest, so both threads must have worked."""
    pool = cpu._Pool()
    pool.size = 2
    n_par = 4
    who = [None] * n_par
    lock = threading.Lock()
    worker_has_one = threading.Event()

    def claim(ctl):
        with lock:
            c = ctl[0]
            ctl[0] += 1
        return c

    def call(ctl, state, lead):
        name = "lead" if lead else threading.current_thread().name
        if lead:
            assert worker_has_one.wait(10), "no worker joined the launch"
        while True:
            c = claim(ctl)
            if c >= n_par:
                break
            who[c] = name
            if not lead:
                worker_has_one.set()
                while ctl[0] < n_par:  # hold chunk 0 until the lead has claimed the rest
                    time.sleep(1e-4)
            with lock:
                ctl[1] += 1
    pool.launch(call, n_par)
    assert who[0].startswith("jitgrad-worker") and who[1:] == ["lead"] * 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_do_not_depend_on_the_number_of_threads(chunked_call, monkeypatch, dtype):
    xv = np.random.default_rng(1).uniform(-3, 3, 40 * cpu.PAR_BLOCK + 7).astype(dtype)
    res = []
    for size in (1, 2, 3):
        pool = cpu._Pool()
        pool.size = size
        monkeypatch.setattr(cpu, "POOL", pool)
        x = jg.tensor(xv, requires_grad=True)
        (loss, g), calls = chunked_call(lambda: (lambda l: (l.backward(), l.item(),
                                                            x.grad.numpy())[1:])(_loss(x)))
        assert calls
        res.append((loss, g))
    assert res[0][0] == res[1][0] == res[2][0]   # bitwise: per-chunk sums in chunk order
    np.testing.assert_array_equal(res[0][1], res[1][1])
    ref = xv.astype(np.float64)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(res[0][0], np.sum(np.sin(ref) * ref + 1), rtol=rtol)
    np.testing.assert_allclose(res[0][1], np.sin(ref) + ref * np.cos(ref), rtol=rtol * 10,
                               atol=rtol)


def test_large_outputs_are_populated_without_touching_operands(chunked_call, monkeypatch):
    """Outputs of 2 MB and more get one write per huge page before the launch (cpu._populate);
    a fresh output must still come back whole, and an in-place target (an operand) must not
    be written by it: its old values feed the update."""
    n = 3 << 19  # 6 MB of float32
    xv = np.random.default_rng(3).uniform(-1, 1, n).astype(np.float32)
    gv = np.random.default_rng(4).uniform(-1, 1, n).astype(np.float32)
    written = []
    populate = cpu._populate
    monkeypatch.setattr(cpu, "_populate", lambda a: (written.append(a.nbytes), populate(a)))
    x, g = jg.tensor(xv), jg.tensor(gv)
    y, calls = chunked_call(lambda: (x * 2 + g).numpy())
    assert calls and written == [n * 4]
    np.testing.assert_array_equal(y, xv * np.float32(2) + gv)
    written.clear()
    with jg.no_grad():
        _, calls = chunked_call(lambda: x.sub_(g * 0.5))
    assert calls and written == []  # (the target is an operand: not populated)
    np.testing.assert_allclose(x.numpy(), xv - gv * np.float32(0.5), rtol=1e-6)


def test_which_flat_kernels_run_in_parallel():
    """Compute-bound kernels (a transcendental row) from half the work of light ones."""
    from types import SimpleNamespace as R
    exp, mul, add = R(name="exp"), R(name="mul"), R(name="add")
    assert lazy.runs_parallel(1 << 18, [exp])             # 2^21 with a heavy row
    assert not lazy.runs_parallel(1 << 17, [exp])         # 2^20
    assert not lazy.runs_parallel(1 << 20, [mul, add])    # light: 2^21 < PAR_MIN_WORK
    assert lazy.runs_parallel(1 << 21, [mul, add])        # light: 2^22
    assert not lazy.runs_parallel(lazy.PAR_MIN - 1, [exp] * 100)  # too few chunks
