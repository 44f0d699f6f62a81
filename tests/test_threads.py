"""Threads: jitgrad used from several Python threads at once (README "Threading model").

Each scenario starts its threads together (a barrier), repeats for several trials and compares
every thread's result with a single-threaded run of the same code and with torch (float64)
where it is installed; fused (fusion on every op) and unfused modes. Before the runtime state
was made per-thread these failed in most trials: a pending value read by two threads raised in
``lazy._give_value``, another thread's loss rode in this thread's kernel, overlapping tracers
left fusion off for the whole process, two threads importing one new kernel module raised
``KeyError``, and leaf gradients from concurrent backward calls were lost.
"""
import sys
import threading
import time
import traceback

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import _debug, lazy
from jitgrad.autograd.functional import jacobian
from jitgrad.backends import cpu

TRIALS = 20
N = 1 << 17  # large enough for the fused path at the default FUSE_MIN, small enough for CI

try:
    import torch
except ImportError:  # the comparisons with torch are skipped; the others still run
    torch = None


@pytest.fixture(autouse=True)
def frequent_switches():
    """Threads take turns every few microseconds instead of every 5 ms, so that they really
    interleave inside jitgrad (races show up in most trials instead of a few)."""
    prev = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(prev)


@pytest.fixture(params=["fused", "unfused"])
def mode(request):
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    if request.param == "fused":
        lazy.set_fusion(True, 0)
    else:
        lazy.set_fusion(False)
    try:
        yield request.param
    finally:
        lazy.set_fusion(prev, prev_min)


def run_threads(fns, timeout=120):
    """Run each of ``fns`` in its own thread, released together; (results, errors)."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)
    errors = []

    def body(i):
        try:
            barrier.wait()
            results[i] = fns[i]()
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            where = traceback.extract_tb(e.__traceback__)[-1]
            errors.append(f"thread {i}: {type(e).__name__}: {e} ({where.name}:{where.lineno})")

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if any(t.is_alive() for t in threads):
        errors.append("a thread did not finish (deadlock?)")
    return results, errors


def _report(failures, trials):
    return f"{len({f[0] for f in failures})} of {trials} trials failed: {failures[:3]}"


def _x(n=N, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# 1. two threads read one pending value


def test_two_threads_read_one_pending_value(mode):
    xs = _x()
    x = jg.tensor(xs)
    ref = (x * 1.5 + 0.25).tanh().numpy()  # single-threaded
    if torch is not None:
        want = torch.tanh(torch.tensor(xs, dtype=torch.float64) * 1.5 + 0.25).numpy()
        np.testing.assert_allclose(ref, want, rtol=2e-6, atol=1e-7)
    failures = []
    for trial in range(TRIALS):
        y = (x * 1.5 + 0.25).tanh()
        assert (y._arr is None) == (mode == "fused")
        launches = _debug.COUNTERS["kernel_launches"]
        res, errs = run_threads([y.numpy, y.numpy])
        if errs:
            failures.append((trial, errs))
            continue
        if mode == "fused" and _debug.COUNTERS["kernel_launches"] - launches != 1:
            failures.append((trial, "the pending value was computed more than once"))
        for r in res:
            if not np.array_equal(r, ref):
                failures.append((trial, "value differs from the single-threaded run"))
    assert not failures, _report(failures, trial + 1)


# ---------------------------------------------------------------------------------------------
# 2. two threads, each its own loss over one shared read-only input


def test_own_losses_over_a_shared_input(mode):
    xs = _x(seed=1)
    x = jg.tensor(xs)
    ks = (0.5, 2.0)

    def loss(k):
        return (jg.tanh(x * k) * jg.exp(x)).sum().item()

    ref = [loss(k) for k in ks]
    if torch is not None:
        xt = torch.tensor(xs, dtype=torch.float64)
        for k, r in zip(ks, ref):
            assert r == pytest.approx((torch.tanh(xt * k) * torch.exp(xt)).sum().item(),
                                      rel=1e-5)
    failures = []
    for trial in range(TRIALS):
        res, errs = run_threads([lambda k=k: loss(k) for k in ks])
        if errs:
            failures.append((trial, errs))
        elif res != pytest.approx(ref, rel=1e-6):
            failures.append((trial, res, ref))
    assert not failures, _report(failures, trial + 1)


def test_pending_values_of_other_threads_see_eager_in_place_writes():
    """A value another thread recorded (pending) is computed from the old contents before an
    in-place write here, as in eager execution."""
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    lazy.set_fusion(True, 0)
    try:
        xs = _x(1000, seed=2)
        for _ in range(5):
            x = jg.tensor(xs.copy())
            box = {}
            t = threading.Thread(target=lambda: box.setdefault("y", (x * 2.0).exp()))
            t.start()
            t.join()
            y = box["y"]
            assert y._arr is None  # still pending: recorded by the other thread
            x.add_(1.0)
            np.testing.assert_allclose(y.numpy(), np.exp(xs.astype(np.float64) * 2.0),
                                       rtol=2e-6)
            np.testing.assert_array_equal(x.numpy(), xs + np.float32(1.0))
    finally:
        lazy.set_fusion(prev, prev_min)


# ---------------------------------------------------------------------------------------------
# 3. overlapping jacobian() calls (the tracer switches fusion off for its own thread only)


def _jac_fns():
    """Fresh function objects (the compiled Jacobian is cached per function: a new one is
    traced again), with their analytic diagonal Jacobians and torch twins."""
    return [
        (lambda x: jg.tanh(x * 2.0) * x,
         lambda v: np.tanh(2 * v) + 2 * v * (1 - np.tanh(2 * v) ** 2),
         lambda x: torch.tanh(x * 2.0) * x),
        (lambda x: jg.exp(x) * 0.5 + x * x,
         lambda v: 0.5 * np.exp(v) + 2 * v,
         lambda x: torch.exp(x) * 0.5 + x * x),
        (lambda x: jg.sigmoid(x) - x * 3.0,
         lambda v: np.exp(-v) / (1 + np.exp(-v)) ** 2 - 3.0,
         lambda x: torch.sigmoid(x) - x * 3.0),
        (lambda x: jg.sin(x) * jg.cos(x),
         lambda v: np.cos(2 * v),
         lambda x: torch.sin(x) * torch.cos(x)),
    ]


@pytest.mark.parametrize("n_threads", [2, 4])
def test_overlapping_jacobians(mode, n_threads):
    vals = [np.linspace(-1.0, 1.0, 5) + 0.1 * i for i in range(n_threads)]
    xs = [jg.tensor(v) for v in vals]
    if torch is not None:  # the analytic references agree with torch's jacobian
        for (_, d, tf), v in zip(_jac_fns(), vals):
            np.testing.assert_allclose(
                torch.autograd.functional.jacobian(tf, torch.tensor(v)).numpy(),
                np.diag(d(v)), rtol=1e-10, atol=1e-12)
    big = jg.tensor(_x(seed=3))
    failures = []
    for trial in range(TRIALS // 2):
        fns = _jac_fns()[:n_threads]
        res, errs = run_threads([lambda f=f, x=x: jacobian(f, x) for (f, _, _), x in
                                 zip(fns, xs)])
        if errs:
            failures.append((trial, errs))
            continue
        for J, (_, d, _), v in zip(res, fns, vals):
            if not np.allclose(J.numpy(), np.diag(d(v)), rtol=1e-10, atol=1e-12):
                failures.append((trial, "wrong Jacobian"))
        # fusion is as it was before the calls
        if lazy.is_fusion_enabled() != (mode == "fused"):
            failures.append((trial, "fusion switched by the tracers"))
        if ((big * 2.0)._arr is None) != (mode == "fused"):
            failures.append((trial, "ops no longer recorded as before"))
    assert not failures, _report(failures, trial + 1)


# ---------------------------------------------------------------------------------------------
# 4. two threads compile (and import) one new kernel at once


def test_two_threads_compile_one_new_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("JITGRAD_CACHE_DIR", str(tmp_path))
    xs = np.arange(8, dtype=np.float64)
    failures = []
    for trial in range(10):
        c = 1.0 + trial / 1024 + np.random.default_rng().integers(1 << 30) / 2.0 ** 52
        # a constant in the source: a kernel nobody has compiled (a new module) each trial
        src = (f"def k_thr(x, out):\n"
               f"    for i in range(x.shape[0]):\n"
               f"        out[i] = x[i] * {c!r}\n")
        key = ("test_threads", trial, c)

        def build_and_run():
            kern = cpu.compile_source(key, src, "k_thr", "float64")
            out = np.empty_like(xs)
            kern(xs, out)
            return kern, out

        res, errs = run_threads([build_and_run, build_and_run])
        cpu._kernels.pop(key, None)
        if errs:
            failures.append((trial, errs))
            continue
        if res[0][0] is not res[1][0]:
            failures.append((trial, "compiled twice"))
        for _, out in res:
            if not np.array_equal(out, xs * c):
                failures.append((trial, "wrong values"))
    assert not failures, _report(failures, trial + 1)


def test_two_threads_build_the_same_new_op_kernel(tmp_path, monkeypatch, mode):
    """The same through ops: each trial starts from an empty kernel table and no kernel
    module imported, so both threads build and import the op chain's kernels at once."""
    monkeypatch.setenv("JITGRAD_CACHE_DIR", str(tmp_path))
    a = jg.tensor(np.linspace(0.5, 2.0, 7))
    b = jg.tensor(np.linspace(-1.0, 1.0, 7))

    def run():
        return ((a * b).exp() - a / 3.0).numpy()

    want = np.exp(a.numpy() * b.numpy()) - a.numpy() / 3.0
    failures = []
    for trial in range(6):
        monkeypatch.setattr(cpu, "_kernels", cpu.KernelCache(0))
        for name in [m for m in sys.modules if m.startswith("jitgrad_kernels.")]:
            sys.modules.pop(name, None)  # (a dispatcher still holding one puts it back)
        res, errs = run_threads([run, run])
        if errs:
            failures.append((trial, errs))
            continue
        for r in res:
            if not np.allclose(r, want, rtol=1e-14):
                failures.append((trial, "wrong values"))
    assert not failures, _report(failures, trial + 1)


# ---------------------------------------------------------------------------------------------
# 5. backward from several threads into one leaf


@pytest.mark.parametrize("n", [1000, N])
def test_backward_from_threads_accumulates_into_one_leaf(mode, n):
    n_threads = 4
    failures = []
    for trial in range(TRIALS if n < N else 5):
        w = jg.tensor(np.ones(n, np.float32), requires_grad=True)
        _, errs = run_threads([lambda: (w * 3.0).sum().backward()] * n_threads)
        if errs:
            failures.append((trial, errs))
        elif w.grad is None or not np.array_equal(w.grad.numpy(),
                                                  np.full(n, 3.0 * n_threads, np.float32)):
            failures.append((trial, None if w.grad is None else np.unique(w.grad.numpy())))
    if torch is not None:  # torch accumulates the same way
        wt = torch.ones(n, requires_grad=True)
        for _ in range(n_threads):
            (wt * 3.0).sum().backward()
        assert np.array_equal(wt.grad.numpy(), np.full(n, 3.0 * n_threads, np.float32))
    assert not failures, _report(failures, trial + 1)


def test_threads_train_their_own_models_on_one_shared_input(mode):
    """Forward and backward of separate parameters over one shared input, in parallel."""
    xs = _x(4096, seed=4)
    x = jg.tensor(xs)

    def step(k):
        w = jg.tensor(np.full(4096, k, np.float32), requires_grad=True)
        loss = (jg.tanh(x * w) * x).sum()
        loss.backward()
        return loss.item(), w.grad.numpy()

    ref = [step(k) for k in (0.5, 1.5, 2.5)]
    for trial in range(5):
        res, errs = run_threads([lambda k=k: step(k) for k in (0.5, 1.5, 2.5)])
        assert not errs, errs
        for (l, g), (rl, rg) in zip(res, ref):
            assert l == pytest.approx(rl, rel=1e-6)
            np.testing.assert_allclose(g, rg, rtol=1e-6)


def test_inplace_updates_while_another_thread_reads_the_shared_step(mode):
    """Thread A reads a pending ``u = g * 0.5`` while threads B and C each do ``p -= u`` on
    their own p (in fused mode, below INPLACE_NOW_MAX: u is computed by whichever thread
    claims it first, by an eager kernel or by A's realisation): every thread sees u's one value
    and each p ends at p0 - u."""
    gs = _x(1 << 16, seed=5)
    p0 = _x(1 << 16, seed=6)
    want_u = gs * np.float32(0.5)
    failures = []
    for trial in range(TRIALS):
        g = jg.tensor(gs)
        u = g * 0.5
        ps = [jg.tensor(p0.copy()) for _ in range(2)]

        def update(p):
            with jg.no_grad():
                p -= u
            return p.numpy()
        res, errs = run_threads([u.numpy, lambda: update(ps[0]), lambda: update(ps[1])])
        if errs:
            failures.append((trial, errs))
            continue
        if not np.array_equal(res[0], want_u):
            failures.append((trial, "u differs"))
        for r in res[1:]:
            if not np.array_equal(r, p0 - want_u):
                failures.append((trial, "an update differs"))
    assert not failures, _report(failures, TRIALS)


# ---------------------------------------------------------------------------------------------
# per-thread switches


def test_recording_only_and_depth_limit_are_per_thread():
    prev = lazy.is_fusion_enabled()
    lazy.set_fusion(False)
    try:
        inside = threading.Event()
        leave = threading.Event()
        seen = {}

        def other():
            with lazy.recording_only(), lazy.backward_depth():
                seen["fusion"] = lazy.is_fusion_enabled()
                seen["depth"] = lazy.current_depth_limit()
                inside.set()
                leave.wait(10)

        t = threading.Thread(target=other)
        t.start()
        assert inside.wait(10)
        try:  # this thread is unaffected by the other's switches
            assert not lazy.is_fusion_enabled()
            assert lazy.current_depth_limit() == lazy.MAX_DEPTH
            assert (jg.tensor(_x(100)) * 2.0)._arr is not None
        finally:
            leave.set()
            t.join()
        assert seen == {"fusion": True, "depth": lazy.MAX_DEPTH_BACKWARD}
    finally:
        lazy.set_fusion(prev)


# ---------------------------------------------------------------------------------------------
# RNG: one global generator (torch's semantics), thread-safe draws, ``generator=``


def test_generator_is_honoured_and_leaves_the_global_stream_alone():
    jg.manual_seed(3)
    want = jg.rand(6).numpy()
    jg.manual_seed(3)
    g = jg.Generator().manual_seed(11)
    assert g.initial_seed() == 11
    a = jg.rand(4, generator=g).numpy()
    n = jg.randn(3, dtype=jg.float64, generator=g).numpy()
    i = jg.randint(0, 10, (5,), generator=g).numpy()
    p = jg.randperm(7, generator=g).numpy()
    np.testing.assert_array_equal(jg.rand(6).numpy(), want)  # the global stream did not move
    g.manual_seed(11)
    np.testing.assert_array_equal(jg.rand(4, generator=g).numpy(), a)
    np.testing.assert_array_equal(jg.randn(3, dtype=jg.float64, generator=g).numpy(), n)
    np.testing.assert_array_equal(jg.randint(0, 10, (5,), generator=g).numpy(), i)
    np.testing.assert_array_equal(jg.randperm(7, generator=g).numpy(), p)
    assert sorted(p.tolist()) == list(range(7)) and 0 <= i.min() and i.max() < 10


def test_generator_state_round_trip_and_seed():
    g = jg.Generator()
    s = g.seed()
    assert isinstance(s, int) and g.initial_seed() == s
    state = g.get_state()
    a = jg.randn(5, generator=g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(jg.randn(5, generator=g).numpy(), a)
    # the global generator: manual_seed returns it, get/set_rng_state round-trip
    assert jg.manual_seed(5) is jg.default_generator and jg.initial_seed() == 5
    st = jg.get_rng_state()
    b = jg.rand(3).numpy()
    jg.set_rng_state(st)
    np.testing.assert_array_equal(jg.rand(3).numpy(), b)
    with pytest.raises(TypeError, match="generator"):
        jg.rand(3, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="state"):
        g.set_state([1, 2, 3])


def test_draws_from_threads_are_whole_chunks_of_one_stream():
    """Concurrent draws from the global generator each take a contiguous chunk of its stream
    (none lost, none repeated), as one thread drawing them in some order would."""
    jg.manual_seed(123)
    n_threads, per, size = 4, 25, 64
    ref = jg.rand(n_threads * per * size, dtype=jg.float64).numpy().reshape(-1, size)
    jg.manual_seed(123)
    res, errs = run_threads([lambda: [jg.rand(size, dtype=jg.float64).numpy()
                                      for _ in range(per)]] * n_threads)
    assert not errs, errs
    got = sorted(tuple(c) for r in res for c in r)
    assert got == sorted(tuple(c) for c in ref)


# ---------------------------------------------------------------------------------------------
# settling seen half-way: another thread sets ``_arr`` and then clears ``_lazy`` between a
# reader's two attribute reads (the interleaving, made deterministic)


class _SettledBetweenReads:
    """A tensor as a reader sees it when another thread settles it between the reader's
    ``_arr`` read (None: still pending) and its ``_lazy`` read (None: already settled)."""

    def __init__(self, arr):
        self.arr, self.reads = arr, 0

    @property
    def _arr(self):
        self.reads += 1
        return None if self.reads == 1 else self.arr

    _lazy = None


def test_metadata_reads_survive_a_concurrent_settle():
    """device_key and Tensor._meta read ``_arr`` then ``_lazy``; a settle in between (which
    sets ``_arr`` before clearing ``_lazy``) must give the settled array's metadata, not an
    AttributeError on None (seen as a failed thread in test_two_threads_read_one_pending_value
    under load)."""
    from jitgrad._engine import device_key
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert device_key(_SettledBetweenReads(a)) == "cpu"
    assert jg.Tensor._meta.fget(_SettledBetweenReads(a)) == ((2, 3), np.dtype(np.float32))


def test_waiting_reader_gets_the_value_before_the_computing_thread_settles(monkeypatch):
    """Thread A computes a pending value that thread B is waiting for; B wakes when A's record
    has its value, before A has settled the shared tensor. B must take the value itself: it
    used to drop the tensor from its list as no longer pending and return its ``_arr``, still
    None (``y.numpy()`` gave None: the "value differs" failure seen once in CI)."""
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    lazy.set_fusion(True, 0)
    try:
        x = jg.tensor(_x(1 << 12))
        y = (x * 1.5 + 0.25).tanh()
        assert y._arr is None
        ref = np.tanh(_x(1 << 12) * np.float32(1.5) + np.float32(0.25))
        a_claimed, b_done = threading.Event(), threading.Event()
        a_id = []
        run_group, settle = lazy._run_group, lazy._settle

        def slow_group(*args):  # A holds the claim until B is waiting for it (or 10 s)
            a_id.append(threading.get_ident())
            a_claimed.set()
            deadline = time.monotonic() + 10.0
            while not lazy._waiters and time.monotonic() < deadline:
                time.sleep(1e-3)
            return run_group(*args)

        def late_settle(t):  # A settles only after B has returned (or 2 s)
            if a_id and threading.get_ident() == a_id[0]:
                b_done.wait(2.0)
            return settle(t)
        monkeypatch.setattr(lazy, "_run_group", slow_group)
        monkeypatch.setattr(lazy, "_settle", late_settle)
        got = {}

        def b():
            a_claimed.wait(5.0)
            try:
                got["b"] = y.numpy()
            finally:
                b_done.set()
        tb = threading.Thread(target=b)
        tb.start()
        got["a"] = y.numpy()
        tb.join(10)
        assert got["b"] is not None, "the waiting thread got None"
        np.testing.assert_array_equal(got["b"], got["a"])
        np.testing.assert_allclose(got["a"], ref, rtol=2e-6, atol=1e-7)
    finally:
        lazy.set_fusion(prev, prev_min)
