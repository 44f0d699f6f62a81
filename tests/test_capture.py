"""jitgrad.compile (issue 18): recorded steps replayed as flat programs give eager's values,
gradients, parameter updates and version counters; guards re-record; graph breaks run eagerly
and jitgrad.explain names them. Every comparison is against the same code run eagerly."""
import os
import re
import sys
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn as nn
import jitgrad.nn.functional as F
from jitgrad import _engine, _tensor


def _arr(t):
    return t.detach().numpy().copy()


def _tutorial(w, b, lr=0.1):
    """The W3 step: matmul, add, BCE-with-logits, backward, SGD under no_grad."""
    def step():
        w.grad = None
        b.grad = None
        x = jitgrad.ones(5)
        y = jitgrad.zeros(3)
        z = jitgrad.matmul(x, w) + b
        loss = F.binary_cross_entropy_with_logits(z, y)
        loss.backward()
        with jitgrad.no_grad():
            w.sub_(lr * w.grad)
            b.sub_(lr * b.grad)
        return loss
    return step


def _wb(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    return (jitgrad.tensor(w, requires_grad=True), jitgrad.tensor(b, requires_grad=True))


def test_tutorial_step_replays_eager_values():
    we, be = _wb()
    wc, bc = _wb()
    eager, comp = _tutorial(we, be), jitgrad.compile(_tutorial(wc, bc))
    for _ in range(5):
        le, lc = eager(), comp()
        assert lc.item() == le.item()
        for p, q in ((we, wc), (be, bc)):
            np.testing.assert_array_equal(_arr(q), _arr(p))
            np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy())
            assert q._version == p._version
    assert comp.stats["replayed"] >= 3
    assert jitgrad.explain(comp).reason is None
    assert "matmul" in str(jitgrad.explain(comp))
    # the backward's seed (ones) / 3 and its expand are folded into constants
    assert comp.memory["ops_folded"] >= 2 and comp.memory["constants_shared"] >= 3


def test_views_of_constants_are_taken_once():
    """The tutorial's matmul backward reshapes and transposes its constant x: the replay binds
    that view once (capture._fold_views) and drops the binding of x nothing reads any more;
    a view handed on as a slot's value is still taken per call."""
    from jitgrad import capture
    wc, bc = _wb()
    we, be = _wb()
    comp, eager = jitgrad.compile(_tutorial(wc, bc)), _tutorial(we, be)
    for _ in range(3):
        assert comp().item() == eager().item()
        np.testing.assert_array_equal(wc.grad.numpy(), we.grad.numpy())
    lines = comp.programs[0].lines
    assert not [ln for ln in lines if ".swapaxes(" in ln or ".reshape((1, 5))" in ln], lines
    x = np.arange(6.0)
    names = {}

    def name(v, hint):
        names[f"_{hint}_{len(names)}"] = v
        return f"_{hint}_{len(names) - 1}"
    out = capture._fold_views(["_v1 = S[0].reshape((2, 3))", "_v2 = _v1.swapaxes(-1, -2)",
                               "_v3 = _dot(_v2, S[4])", "_v4 = S[0].reshape([3, 2])",
                               "S[5] = _v4", "_v6 = S[4].reshape((2, 3))"], {0: x}, name)
    assert out == ["_v3 = _dot(_x_1, S[4])", "_v4 = S[0].reshape([3, 2])", "S[5] = _v4",
                   "_v6 = S[4].reshape((2, 3))"]
    np.testing.assert_array_equal(names["_x_1"], x.reshape(2, 3).T)
    assert np.shares_memory(names["_x_1"], x)


def _mlp(opt_cls, **kw):
    jitgrad.manual_seed(0)
    m = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
    return m, opt_cls(m.parameters(), **kw)


def _mlp_step(m, o):
    def step(x, y):
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        o.step()
        o.zero_grad()
        return loss
    return step


@pytest.mark.parametrize("opt_cls,kw", [(jitgrad.optim.SGD, dict(lr=0.1, momentum=0.9)),
                                        (jitgrad.optim.Adam, dict(lr=1e-2))])
def test_mlp_step_with_optimizer(opt_cls, kw):
    rng = np.random.default_rng(1)
    x = jitgrad.tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = jitgrad.tensor(rng.integers(0, 4, 8))
    (m1, o1), (m2, o2) = _mlp(opt_cls, **kw), _mlp(opt_cls, **kw)
    eager, comp = _mlp_step(m1, o1), jitgrad.compile(_mlp_step(m2, o2))
    for _ in range(5):
        assert comp(x, y).item() == eager(x, y).item()
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_array_equal(_arr(q), _arr(p))
            assert q.grad is None and p.grad is None
            assert q._version == p._version
    assert comp.stats == {"recorded": 1, "replayed": 4, "eager": 0}
    for s1, s2 in zip(o1.state.values(), o2.state.values()):
        for k in s1:
            np.testing.assert_array_equal(s2[k].numpy(), s1[k].numpy())


def test_forward_only_and_output_requiring_grad():
    W = jitgrad.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))

    @jitgrad.compile
    def f(x):
        return (x @ W).tanh().sum(1), W

    x = jitgrad.tensor(np.arange(8, dtype=np.float32).reshape(2, 4) / 8)
    for _ in range(3):
        out, w = f(x)
        np.testing.assert_allclose(out.numpy(), np.tanh(x.numpy() @ W.numpy()).sum(1),
                                   rtol=1e-6)
        assert w is W and not out.requires_grad
    assert f.stats["replayed"] == 2
    x2 = jitgrad.tensor(x.numpy(), requires_grad=True)
    g = jitgrad.compile(lambda x: (x @ W).tanh().sum())
    out = g(x2)
    out.backward()  # eager: the graph is there
    assert x2.grad is not None and "requires grad" in jitgrad.explain(g).reason


def test_guard_misses_record_again():
    calls = []

    @jitgrad.compile
    def f(x, s):
        calls.append(1)
        return (x * s + 1).exp()

    a32 = jitgrad.tensor(np.ones((2, 3), np.float32))
    for _ in range(2):
        np.testing.assert_allclose(f(a32, 2.0).numpy(), np.exp(3.0) * np.ones((2, 3)),
                                   rtol=1e-6)
    assert f.stats["recorded"] == 1 and len(calls) == 1
    f(jitgrad.tensor(np.ones(4, np.float32)), 2.0)                      # new shape
    r = f(jitgrad.tensor(np.ones((2, 3), np.float64)), 2.0)             # new dtype
    assert r.dtype == jitgrad.float64
    np.testing.assert_allclose(f(a32, 3.0).numpy(), np.exp(4.0) * np.ones((2, 3)),
                               rtol=1e-6)                               # scalar specialised
    assert f.stats["recorded"] == 4 and len(calls) == 4
    f(a32, 3.0)
    assert len(calls) == 4  # replayed


def test_requires_grad_flipped_records_again():
    @jitgrad.compile
    def f(x):
        y = (x * x).sum()
        if x.requires_grad:
            y.backward()
        return y.detach() if x.requires_grad else y

    x = jitgrad.tensor(np.arange(3, dtype=np.float32))
    assert f(x).item() == 5.0 and f(x).item() == 5.0
    xr = jitgrad.tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    f(xr)
    np.testing.assert_array_equal(xr.grad.numpy(), [0, 2, 4])
    xr2 = jitgrad.tensor(np.arange(3, dtype=np.float32) + 1, requires_grad=True)
    f(xr2)
    np.testing.assert_array_equal(xr2.grad.numpy(), [2, 4, 6])
    assert f.stats["recorded"] == 2 and f.stats["replayed"] == 2


def test_rebound_parameter_is_seen():
    W = jitgrad.tensor(np.ones(3, np.float32))

    def f(x):
        return x * W

    c = jitgrad.compile(f)
    x = jitgrad.tensor(np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(c(x).numpy(), [0, 1, 2])
    np.testing.assert_array_equal(c(x).numpy(), [0, 1, 2])
    with jitgrad.no_grad():
        W.mul_(2)  # in place between calls: read by reference, no new recording
    np.testing.assert_array_equal(c(x).numpy(), [0, 2, 4])
    assert c.stats["recorded"] == 1
    W = jitgrad.tensor(np.full(3, 5, np.float32))  # the closure's cell now holds another
    np.testing.assert_array_equal(c(x).numpy(), [0, 5, 10])
    assert c.stats["recorded"] == 2


def test_graph_break_runs_eagerly_and_explain_names_it():
    we, be = _wb()
    wc, bc = _wb()
    seen = []

    def make(w, b):
        def step():
            z = jitgrad.matmul(jitgrad.ones(5), w) + b
            loss = F.binary_cross_entropy_with_logits(z, jitgrad.zeros(3))
            seen.append(loss.item())  # a value read in Python: a graph break
            loss.backward()
            with jitgrad.no_grad():
                w.sub_(0.1 * w.grad)
            w.grad = None
            b.grad = None
            return loss
        return step

    eager, comp = make(we, be), jitgrad.compile(make(wc, bc))
    for _ in range(3):
        assert comp().item() == eager().item()
        np.testing.assert_array_equal(_arr(wc), _arr(we))
    ex = jitgrad.explain(comp)
    assert "item()" in ex.reason and "seen.append(loss.item())" in str(ex)
    assert ex.line[0] == __file__ and comp.stats["eager"] == 3 and len(seen) == 6


@pytest.mark.parametrize("body,why", [
    (lambda x: x * jitgrad.randn(3), "random numbers"),
    (lambda x: x * jitgrad.tensor([1.0, 2.0, 3.0]), "made outside"),
    (lambda x: (print(x), x * 2)[1], "printing"),
    (lambda x: x * 2 if bool(x.sum() > 0) else x, "bool()"),
])
def test_other_breaks(body, why, capsys):
    c = jitgrad.compile(body)
    x = jitgrad.tensor(np.ones(3, np.float32))
    for _ in range(2):
        assert c(x).shape == (3,)
    assert why in jitgrad.explain(c).reason and c.stats["recorded"] == 0


def test_cache_size_limit_warns_once_then_eager():
    c = jitgrad.compile(lambda x: x + 1, cache_size=2)
    for n in (1, 2):
        c(jitgrad.tensor(np.zeros(n, np.float32)))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for n in (3, 4):
            np.testing.assert_array_equal(c(jitgrad.tensor(np.zeros(n, np.float32))).numpy(),
                                          np.ones(n))
    assert len(w) == 1 and "cache size" in str(w[0].message)
    assert c.stats == {"recorded": 2, "replayed": 0, "eager": 2}


def test_replay_dispatches_no_ops():
    """A replayed MLP step runs no Tensor-level op dispatch or backward sweep."""
    rng = np.random.default_rng(1)
    x = jitgrad.tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = jitgrad.tensor(rng.integers(0, 4, 8))
    m, o = _mlp(jitgrad.optim.SGD, lr=0.1)
    c = jitgrad.compile(_mlp_step(m, o))
    c(x, y)
    watched = {_tensor.apply_elementwise.__code__, _tensor.apply_fn.__code__,
               _engine.run_backward.__code__, jitgrad.optim.Optimizer.step.__code__}
    hits = []

    def prof(frame, event, arg):
        if event == "call" and frame.f_code in watched:
            hits.append(frame.f_code.co_name)
    sys.setprofile(prof)
    try:
        c(x, y)
    finally:
        sys.setprofile(None)
    assert c.stats["replayed"] == 1 and hits == []


def test_large_tensors_replay_fused_groups():
    """Tensors of FUSE_MIN elements: their fused kernels are recorded (fusion on) or the ops
    run one kernel each (fusion=False); both replay."""
    from jitgrad import lazy
    n = lazy.FUSE_MIN
    xv = np.linspace(-1, 1, n).astype(np.float32)

    def f(x):
        return (x * x + 1).sum()

    fused = jitgrad.compile(f)
    unfused = jitgrad.compile(f, fusion=False)
    x = jitgrad.tensor(xv)
    want = f(x).item()
    for _ in range(3):
        assert fused(x).item() == want
        np.testing.assert_allclose(unfused(x).item(), want, rtol=1e-6)
    assert "fused kernel" in str(jitgrad.explain(fused))
    for c in (fused, unfused):
        assert c.stats == {"recorded": 1, "replayed": 2, "eager": 0}


@pytest.fixture
def fuse_all(monkeypatch):
    """Every elementwise op is recorded lazily (FUSE_MIN 0): fused groups on small tensors."""
    from jitgrad import lazy
    monkeypatch.setattr(lazy, "FUSE_MIN", 0)
    monkeypatch.setattr(lazy, "ENABLED", True)


def _w1(x, a, b):
    """The W1 loss (bench/workloads.py): 13 elementwise ops and a sum."""
    y = (a * x + b).tanh() * (-x * x).exp() / (1 + x * x) + x.sin() * x.sigmoid()
    return y.sum()


def _w1_step(dtype):
    rng = np.random.default_rng(0)
    x = jitgrad.tensor(rng.uniform(-3, 3, 1000).astype(dtype))
    a = jitgrad.tensor(np.array(0.7, dtype), requires_grad=True)
    b = jitgrad.tensor(np.array(-0.3, dtype), requires_grad=True)

    def step():
        a.grad = None
        b.grad = None
        loss = _w1(x, a, b)
        loss.backward()
        with jitgrad.no_grad():
            a.sub_(1e-4 * a.grad)
            b.sub_(1e-4 * b.grad)
        return loss
    return step, a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_w1_fused_step_replays_eager_values(fuse_all, dtype):
    (e, ea, eb), (c, ca, cb) = _w1_step(dtype), _w1_step(dtype)
    c = jitgrad.compile(c)
    for _ in range(5):
        assert c().item() == e().item()
        for p, q in ((ea, ca), (eb, cb)):
            assert q.grad.numpy().dtype == dtype
            np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy())
            np.testing.assert_array_equal(_arr(q), _arr(p))
            assert q._version == p._version
    assert c.stats["replayed"] >= 3 and jitgrad.explain(c).reason is None
    assert "fused kernel" in str(jitgrad.explain(c))


def test_w5_chain_and_broadcast_grads_fused(fuse_all):
    """A chain of k ops (W5) and broadcast operands whose fused gradients are summed back."""
    xv = np.linspace(-1, 1, 300).astype(np.float32).reshape(30, 10)

    def make():
        x = jitgrad.tensor(xv, requires_grad=True)
        w = jitgrad.tensor(np.linspace(0.5, 1.5, 10).astype(np.float32), requires_grad=True)

        def step():
            x.grad = None
            w.grad = None
            y = x * w
            for i in range(10):
                y = y * 1.01 if i % 2 == 0 else y.sin()
            loss = y.mean()
            loss.backward()
            return loss
        return step, x, w
    (e, ex, ew), (c, cx, cw) = make(), make()
    c = jitgrad.compile(c)
    for _ in range(4):
        assert c().item() == e().item()
        np.testing.assert_array_equal(cx.grad.numpy(), ex.grad.numpy())
        np.testing.assert_array_equal(cw.grad.numpy(), ew.grad.numpy())
    assert c.stats["replayed"] >= 2


def test_fused_sgd_update_of_parameters(fuse_all):
    """``p -= lr * p.grad`` on pending values is one kernel written into p (realize_into):
    recorded; in-place changes between calls and pending values made before a call that read
    the parameters see eager's values (never a stale replay)."""
    we, be = _wb()
    wc, bc = _wb()

    def make(w, b):
        def step(x):
            loss = ((x @ w + b).tanh() ** 2).mean()
            loss.backward()
            with jitgrad.no_grad():
                for p in (w, b):
                    p -= 0.1 * p.grad
                    p.grad = None
            return loss
        return step
    x = jitgrad.tensor(np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5))
    eager, comp = make(we, be), jitgrad.compile(make(wc, bc))
    for i in range(5):
        if i == 3:
            with jitgrad.no_grad():
                we.mul_(0.5)
                wc.mul_(0.5)
        with jitgrad.no_grad():
            pe, pc = we * 2, wc * 2  # pending, reading w before the step changes it
        assert comp(x).item() == eager(x).item()
        np.testing.assert_array_equal(pc.numpy(), pe.numpy())
        for p, q in ((we, wc), (be, bc)):
            np.testing.assert_array_equal(_arr(q), _arr(p))
            assert q.grad is None and q._version == p._version
    assert comp.stats["replayed"] >= 3


def test_fused_value_read_in_the_middle_breaks(fuse_all):
    x = jitgrad.tensor(np.linspace(0, 1, 8, dtype=np.float32))
    seen = []

    def f(x):
        y = (x * 3).exp()
        seen.append(y.sum().item())
        return (y + 1).sum()
    c = jitgrad.compile(f)
    for _ in range(2):
        np.testing.assert_allclose(c(x).item(), np.sum(np.exp(3 * x.numpy()) + 1), rtol=1e-6)
    assert "item()" in jitgrad.explain(c).reason and len(seen) == 2


def _chain_step(x, w):
    def step():
        w.grad = None
        y = ((x * w).exp() + 1).log() * x
        loss = (y.tanh() * 0.5).sum()
        loss.backward()
        return loss, y.detach()
    return step


def test_static_memory_plan_reuses_intermediates_and_returns_fresh_arrays():
    """Intermediate kernel outputs live in buffers planned once and reused by every call;
    outputs and .grads are new arrays each call (kept ones never change under the caller)."""
    import threading
    import tracemalloc
    xv = np.linspace(-1, 1, 4096).astype(np.float32)
    x = jitgrad.tensor(xv)
    we = jitgrad.tensor(np.full(4096, 0.5, np.float32), requires_grad=True)
    wc = jitgrad.tensor(np.full(4096, 0.5, np.float32), requires_grad=True)
    eager, comp = _chain_step(x, we), jitgrad.compile(_chain_step(x, wc), fusion=False)
    kept = []
    for _ in range(4):
        (le, ye), (lc, yc) = eager(), comp()
        assert lc.item() == le.item()
        np.testing.assert_array_equal(yc.numpy(), ye.numpy())
        np.testing.assert_array_equal(wc.grad.numpy(), we.grad.numpy())
        kept.append((yc, wc.grad, yc.numpy().copy(), wc.grad.numpy().copy()))
    for y, g, yv, gv in kept:  # every call's output and .grad is its own, unchanged
        np.testing.assert_array_equal(y.numpy(), yv)
        np.testing.assert_array_equal(g.numpy(), gv)
    assert len({id(y.numpy()) for y, *_ in kept}) == 4
    m = comp.memory
    assert m["planned_buffers"] >= 4 and m["pool_bytes"] >= 4096 * 4
    assert m["pool_bytes"] < m["planned_buffers"] * 4096 * 4  # (disjoint lifetimes share)
    assert "planned buffers" in str(jitgrad.explain(comp))
    tracemalloc.start()
    try:
        comp()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        comp()
        grew = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # a replay allocates what it hands out (y, w.grad) and small things, not its temporaries
    assert grew <= m["fresh_bytes"] + 8192 < m["unplanned_peak_bytes"]
    # one replay at a time uses the planned buffers: threads replaying together agree
    errs = []

    def worker():
        try:
            for _ in range(20):
                loss, y = comp()
                np.testing.assert_array_equal(y.numpy(), kept[0][2])
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs


def test_grad_reset_in_the_step_records_once_accumulation_is_guarded():
    """A step that assigns .grad before reading it does not depend on .grad at entry: one
    program from the first call. A step that accumulates (no reset) records per entry state."""
    we, be = _wb()
    wc, bc = _wb()
    comp = jitgrad.compile(_tutorial(wc, bc))
    eager = _tutorial(we, be)
    for _ in range(4):
        assert comp().item() == eager().item()
        np.testing.assert_array_equal(wc.grad.numpy(), we.grad.numpy())
    assert comp.stats == {"recorded": 1, "replayed": 3, "eager": 0}
    assert type(jitgrad.Tensor.__dict__["grad"]).__name__ == "member_descriptor"

    def accumulate(w):
        def step(x):
            (x @ w).tanh().sum().backward()
        return step
    x = jitgrad.tensor(np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5))
    ea, ca = accumulate(we), jitgrad.compile(accumulate(wc))
    we.grad = wc.grad = None
    for i in range(5):
        if i == 3:
            we.grad = wc.grad = None
        ea(x)
        ca(x)
        np.testing.assert_array_equal(wc.grad.numpy(), we.grad.numpy())
    assert ca.stats == {"recorded": 2, "replayed": 3, "eager": 0}


def test_bound_optimizer_step_follows_live_hyperparameters():
    """opt.step() replays as the optimizer's fused kernel called directly (its scalars from
    _prepare each call: a changed lr is seen); changed flags (momentum switched off) take the
    step() path; zero_grad() at the start of the step records one program."""
    rng = np.random.default_rng(2)
    x = jitgrad.tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = jitgrad.tensor(rng.integers(0, 4, 8))
    (m1, o1), (m2, o2) = [_mlp(jitgrad.optim.SGD, lr=0.1, momentum=0.9) for _ in range(2)]

    def make(m, o):
        def step(x, y):
            o.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            o.step()
            return loss
        return step
    eager, comp = make(m1, o1), jitgrad.compile(make(m2, o2))
    for i in range(6):
        for o in (o1, o2):
            if i == 2:
                o.param_groups[0]["lr"] = 0.05
            if i == 4:
                o.param_groups[0]["momentum"] = 0.0
        assert comp(x, y).item() == eager(x, y).item()
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_array_equal(_arr(q), _arr(p))
            np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy())
            assert q._version == p._version
    assert comp.stats == {"recorded": 1, "replayed": 5, "eager": 0}
    assert "SGD.step() over 4 parameters [bound]" in str(jitgrad.explain(comp))


def test_long_unfused_program(monkeypatch):
    """A chain of 40 eager kernels and their VJPs: hundreds of names in one replay function."""
    from jitgrad import lazy
    monkeypatch.setattr(lazy, "ENABLED", False)  # (eager too: one kernel per op)

    def make():
        x = jitgrad.tensor(np.linspace(-1, 1, 64).astype(np.float32), requires_grad=True)

        def step():
            x.grad = None
            y = x
            for i in range(40):
                y = y * 1.01 if i % 2 == 0 else y.sin()
            loss = y.sum()
            loss.backward()
            return loss
        return step, x
    (e, ex), (c, cx) = make(), make()
    c = jitgrad.compile(c)
    for _ in range(3):
        assert c().item() == e().item()
        np.testing.assert_array_equal(cx.grad.numpy(), ex.grad.numpy())
    assert c.stats["replayed"] == 2 and len(c.programs[0].ops) > 80


def test_fusion_modes_small_tensors():
    """By default a compiled step records every elementwise op lazily (small ones too: the
    planning is paid once), 'eager' keeps eager's kernels, False one kernel per op; all give
    eager's values."""
    we, be = _wb()
    eager = _tutorial(we, be)
    want = [eager().item() for _ in range(3)]
    texts = {}
    for mode in (None, "eager", False):
        wc, bc = _wb()
        c = jitgrad.compile(_tutorial(wc, bc), fusion=mode)
        np.testing.assert_allclose([c().item() for _ in range(3)], want, rtol=1e-6)
        np.testing.assert_allclose(_arr(wc), _arr(we), rtol=1e-6)
        texts[mode] = str(jitgrad.explain(c))
    assert "fused kernel [add+" in texts[None]
    assert "fused kernel" not in texts[False]
    with pytest.raises(ValueError, match="fusion"):
        jitgrad.compile(lambda x: x, fusion="all")


# =============================================================================================
# Random DAG steps (the fusion tests' strategy): forward, backward, in-place update, replayed

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from test_fusion import (_PHASES, _evaluate, _fusion, _leaf_values,  # noqa: E402
                         _reject_ill_conditioned, _weights, dags)


def _dag_step(dag, values, w):
    """The DAG's forward on parameters, a weighted sum, backward, then ``p -= 0.01 * p.grad``
    under no_grad; returns the step and its parameters."""
    params = [jitgrad.tensor(v, requires_grad=True) for v in values]

    def step():
        for p in params:
            p.grad = None
        _, out = _evaluate(dag, params, jitgrad)
        loss = (out * w).sum()
        loss.backward()
        with jitgrad.no_grad():
            for p in params:
                if p.grad is not None:  # (None: a leaf only compared, as in where's c > u)
                    p -= 0.01 * p.grad
        return loss, out.detach()
    return step, params


# Each DAG compiles its own fused forward and backward kernels (~0.2 s each cold): 12 examples
# keep the cold cost near 10 s on 2 cores; JITGRAD_TEST_CAPTURE_DAGS overrides the count.
@settings(max_examples=int(os.environ.get("JITGRAD_TEST_CAPTURE_DAGS", "12")), deadline=None,
          derandomize=True, phases=_PHASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
@given(dags())
def test_random_dag_steps_replay_eager_values(dag):
    """Random elementwise DAGs (broadcasts, scalars, mixed dtypes) as whole training steps:
    three compiled calls (record, then replays of fused kernels) against the same step run
    eagerly on copies -- loss, output, every .grad and every updated parameter. Eager runs
    with fusion at every size (as the recording does: the same kernels, compiled once; fused
    against unfused is tests/test_fusion.py's business), so values agree to the last bit
    but for the order of a fused sum."""
    values = _leaf_values(dag)
    _reject_ill_conditioned(dag, values)
    out_shape = np.broadcast_shapes(*[np.shape(v) for v in values])
    wv = _weights(dag, out_shape)
    all64 = all(dt == "float64" for _, dt in dag["leaves"])
    rtol = 1e-12 if all64 else 1e-6
    w = jitgrad.tensor(wv, dtype=jitgrad.float64 if all64 else jitgrad.float32)
    (eager, pe), (comp, pc) = _dag_step(dag, values, w), _dag_step(dag, values, w)
    comp = jitgrad.compile(comp)
    for _ in range(3):
        with _fusion(True):
            le, oe = eager()
        lc, oc = comp()
        assert lc.dtype == le.dtype and oc.dtype == oe.dtype and oc.shape == oe.shape
        np.testing.assert_allclose(lc.item(), le.item(), rtol=rtol, atol=rtol)
        np.testing.assert_allclose(oc.numpy(), oe.numpy(), rtol=rtol, atol=rtol)
        for k, (p, q) in enumerate(zip(pe, pc)):
            np.testing.assert_allclose(_arr(q), _arr(p), rtol=rtol, atol=rtol,
                                       err_msg=f"parameter {k}")
            assert q._version == p._version
            assert (q.grad is None) == (p.grad is None), k
            if p.grad is not None:
                assert q.grad.dtype == p.grad.dtype == p.dtype == q.dtype, k
                np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=rtol,
                                           atol=rtol * (1 + np.abs(p.grad.numpy()).max()),
                                           err_msg=f"grad of parameter {k}")
    assert comp.stats == {"recorded": 1, "replayed": 2, "eager": 0}, jitgrad.explain(comp)


@pytest.mark.parametrize("f", [lambda p: p ** 3, lambda p: 2.0 ** p, lambda p: p ** 0.5])
def test_pow_with_a_scalar_replays(f):
    """pow's VJP rules compare a Python number (``y == 0``) and wrap the bool as a tensor
    (functional_ops._tt): a constant of the program, not a graph break."""
    def make():
        p = jitgrad.tensor(np.array([0.25, 1.5, 2.0], np.float32), requires_grad=True)

        def step():
            p.grad = None
            loss = f(p).sum()
            loss.backward()
            return loss
        return step, p
    (e, pe), (c, pc) = make(), make()
    c = jitgrad.compile(c)
    for _ in range(3):
        np.testing.assert_allclose(c().item(), e().item(), rtol=1e-6)
        np.testing.assert_allclose(pc.grad.numpy(), pe.grad.numpy(), rtol=1e-6)
    assert c.stats == {"recorded": 1, "replayed": 2, "eager": 0}, jitgrad.explain(c)


@pytest.mark.parametrize("fusion", [None, False])
def test_retain_graph_backward_twice(fusion):
    """backward(retain_graph=True) then a second backward through the same graph (the loss
    again, then another head sharing it): the .grads accumulate as eager's do, then the
    update; every replay gives eager's loss, .grad and parameters."""
    x = jitgrad.tensor(np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5))

    def make(w, b):
        def step():
            w.grad = None
            b.grad = None
            z = (x @ w + b).tanh()
            loss = F.binary_cross_entropy_with_logits(z, jitgrad.zeros(2, 3))
            loss.backward(retain_graph=True)
            g1 = w.grad.detach() * 1  # (the first backward's gradient, a new array)
            loss.backward(retain_graph=True)
            (z * z).sum().backward()
            with jitgrad.no_grad():
                w.sub_(0.1 * w.grad)
                b.sub_(0.1 * b.grad)
            return loss, g1
        return step
    we, be = _wb(3)
    wc, bc = _wb(3)
    eager, comp = make(we, be), jitgrad.compile(make(wc, bc), fusion=fusion)
    for _ in range(4):
        (le, ge), (lc, gc) = eager(), comp()
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-6)
        np.testing.assert_allclose(gc.numpy(), ge.numpy(), rtol=1e-6, atol=1e-7)
        for p, q in ((we, wc), (be, bc)):
            np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(_arr(q), _arr(p), rtol=1e-6, atol=1e-7)
            assert q._version == p._version
    # the second backward's .grad is the sum of both (checked against the first alone)
    assert not np.allclose(wc.grad.numpy(), 2 * gc.numpy())
    assert comp.stats == {"recorded": 1, "replayed": 3, "eager": 0}, jitgrad.explain(comp)


def _w2_small(seed=0):
    """A W2-style step (bench: MLP, tanh, cross-entropy, backward, ``p -= lr * p.grad;
    p.grad = None`` under no_grad) on small sizes: 32-64-64-8, batch 64."""
    rng = np.random.default_rng(seed)
    ps = [jitgrad.tensor((rng.standard_normal(s) * 0.3).astype(np.float32), requires_grad=True)
          for s in ((32, 64), (64,), (64, 64), (64,), (64, 8), (8,))]
    W1, b1, W2, b2, W3, b3 = ps

    def step(x, y):
        h = (x @ W1 + b1).tanh()
        h = (h @ W2 + b2).tanh()
        loss = F.cross_entropy(h @ W3 + b3, y)
        loss.backward()
        with jitgrad.no_grad():
            for p in ps:
                p -= 0.1 * p.grad
                p.grad = None
        return loss
    return step, ps


def test_w2_replay_dispatches_nothing_and_allocates_no_kernel_buffers():
    """After warm-up a replayed W2-style step: no Tensor-level dispatch, no backward sweep, no
    lazy planning or run_now call; every kernel's intermediate output is a buffer of the static
    plan (no ``np.empty``/``np.zeros`` through the replay's allocation names); the pool is the
    same buffers every call; what a replay allocates is at most the plan's fresh bytes (the
    structural ops' NumPy results and the loss) and the same on every call. Values are eager's."""
    import tracemalloc
    from jitgrad import lazy
    rng = np.random.default_rng(4)
    x = jitgrad.tensor(rng.standard_normal((64, 32)).astype(np.float32))
    y = jitgrad.tensor(rng.integers(0, 8, 64))
    (eager, pe), (comp, pc) = _w2_small(), _w2_small()
    comp = jitgrad.compile(comp)
    for _ in range(3):  # record, then warm replays
        assert comp(x, y).item() == eager(x, y).item()
    prog = comp.programs[0]
    pool = [id(b) for b in prog.memory.buffers]
    assert prog.memory.pool and pool
    env = prog.run.__globals__
    allocs = []
    real_e, real_z = env["_e"], env["_z"]
    env["_e"] = lambda *a: allocs.append(("empty", a)) or real_e(*a)
    env["_z"] = lambda *a: allocs.append(("zeros", a)) or real_z(*a)
    watched = {f.__code__ for f in (
        _tensor.apply_elementwise, _tensor.apply_fn, _tensor._filled, _engine.run_backward,
        _engine.accumulate_into_grad, lazy.run_now, lazy.realize_many, lazy._run_group,
        lazy.make_lazy)}
    hits = []

    def prof(frame, event, arg):
        if event == "call" and frame.f_code in watched:
            hits.append(frame.f_code.co_name)
    grew = []
    tracemalloc.start()
    try:
        for i in range(4):
            le = eager(x, y)
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            sys.setprofile(prof)
            try:
                lc = comp(x, y)
            finally:
                sys.setprofile(None)
                grew.append(tracemalloc.get_traced_memory()[1] - base)
            assert lc.item() == le.item()
            for p, q in zip(pe, pc):
                np.testing.assert_array_equal(_arr(q), _arr(p))
                assert q.grad is None and p.grad is None and q._version == p._version
    finally:
        tracemalloc.stop()
        env["_e"], env["_z"] = real_e, real_z
    assert hits == [] and allocs == []
    assert [id(b) for b in prog.memory.buffers] == pool
    assert comp.stats == {"recorded": 1, "replayed": 6, "eager": 0}
    m = comp.memory
    # the .grads are set to None in the step (never handed out) and nothing writes them or
    # their gradients: no .grad copy is made (each .grad is its gradient's array)
    assert m["grads_stolen"] >= 4
    assert not [ln for ln in prog.lines if re.fullmatch(r"S\[\d+\] = S\[\d+\]\.copy\(\)", ln)]
    grew = grew[1:]  # (the first traced call also allocates tracemalloc's own first-time state)
    # (the slack: the replay's Python objects -- the slot list, ctxs, the loss Tensor)
    assert max(grew) - min(grew) < 1024 and max(grew) <= m["fresh_bytes"] + 16384, (grew, m)


_LR = 0.1


class _Cfg:
    def __init__(self):
        self.scale = 2.0  # (an instance attribute: class attributes are not walked)


def test_python_numbers_the_step_reads_are_guarded():
    """A Python number from a global, a closure cell or an object's attribute is a constant of
    the recorded kernels (``x * lr``): changing it records again instead of replaying the old
    value. An optimizer's hyperparameters are read live (no new recording)."""
    global _LR
    cfg = _Cfg()
    shift = 1.0
    x = jitgrad.tensor(np.arange(3, dtype=np.float32))

    def f():
        return (x * _LR + shift) * cfg.scale

    c = jitgrad.compile(f)

    def check():
        for _ in range(2):
            np.testing.assert_allclose(c().numpy(), (x.numpy() * _LR + shift) * cfg.scale,
                                       rtol=1e-6)
    try:
        check()
        assert c.stats == {"recorded": 1, "replayed": 1, "eager": 0}
        _LR = 0.5
        check()
        shift = -2.0  # noqa: F841 (the closure cell f reads)
        check()
        cfg.scale = 3.0
        check()
        _LR = 0.1     # (back to the first program's values but for shift and scale)
        check()
        assert c.stats == {"recorded": 5, "replayed": 5, "eager": 0}
        assert "numbers ['<cell 1>', '<global _LR>', '<cell 0>.scale']" in str(jitgrad.explain(c))
    finally:
        _LR = 0.1
    # an nn.Module's number (a library class: its attributes are guarded too)
    act = nn.LeakyReLU(0.1)
    g = jitgrad.compile(lambda x: act(x - 1))
    for slope in (0.1, 0.1, 0.3, 0.3):
        act.negative_slope = slope
        np.testing.assert_allclose(g(x).numpy(), np.where(x.numpy() > 1, x.numpy() - 1,
                                                          slope * (x.numpy() - 1)), rtol=1e-6)
    assert g.stats == {"recorded": 2, "replayed": 2, "eager": 0}


def test_sum_of_a_pending_sum_is_recorded(fuse_all):
    """A sum of a pending (fused) sum: the lazy forward computes its input itself; the
    recorder computes it first, recorded, instead of breaking on an unseen array."""
    xv = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)

    def make():
        w = jitgrad.tensor(np.linspace(0.5, 1.5, 4, dtype=np.float32), requires_grad=True)

        def step(x):
            w.grad = None
            s = (x * w).sum(1, keepdim=True)
            loss = (s.sum(0) * 2).sum() + (x * w).sin().sum()
            loss.backward()
            return loss
        return step, w
    (e, we), (c, wc) = make(), make()
    c = jitgrad.compile(c)
    x = jitgrad.tensor(xv)
    for _ in range(3):
        np.testing.assert_allclose(c(x).item(), e(x).item(), rtol=1e-6)
        np.testing.assert_allclose(wc.grad.numpy(), we.grad.numpy(), rtol=1e-6)
    assert c.stats == {"recorded": 1, "replayed": 2, "eager": 0}, jitgrad.explain(c)


def test_lr_scheduler_step_inside_the_step_is_replayed():
    """scheduler.step() inside a compiled step is Python changing the groups' lr: the replay
    calls it again in order (it was silently skipped: lr stayed at its recorded value), and
    the bound optimizer step reads the new lr."""
    rng = np.random.default_rng(5)
    x = jitgrad.tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = jitgrad.tensor(rng.integers(0, 4, 8))

    def make():
        m, o = _mlp(jitgrad.optim.SGD, lr=0.1, momentum=0.9)
        s = jitgrad.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)

        def step(x, y):
            o.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            o.step()
            s.step()
            return loss
        return step, m, o, s
    (e, me, oe, se), (c, mc, oc, sc) = make(), make()
    c = jitgrad.compile(c)
    for _ in range(6):
        assert c(x, y).item() == e(x, y).item()
        assert oc.param_groups[0]["lr"] == oe.param_groups[0]["lr"]
        assert sc.last_epoch == se.last_epoch
        for p, q in zip(me.parameters(), mc.parameters()):
            np.testing.assert_array_equal(_arr(q), _arr(p))
    assert oc.param_groups[0]["lr"] == 0.1 * 0.5 ** 3
    assert c.stats == {"recorded": 1, "replayed": 5, "eager": 0}, jitgrad.explain(c)


@pytest.mark.parametrize("shapes,wT", [
    (((5,), (5, 3)), False),        # the tutorial's vector @ matrix
    (((4, 5), (5,)), False),        # matrix @ vector
    (((4, 5), (5, 3)), False),
    (((2, 4, 5), (5, 3)), False),   # batched @ matrix: the weight's grad sums the batch
    (((4, 5), (5, 3)), True),       # a transposed-view weight (matmul_as keeps its layout)
    (((6, 1), (1, 3)), False),      # an outer product (k = 1)
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_and_linear_backward_replay_as_numpy_lines(shapes, wT, dtype, monkeypatch):
    """The matmul and linear VJPs are replayed as their own NumPy calls (_VjpTrace), the rule
    itself not called, with eager's gradients and means (the Python-float finish of a full
    mean) on every call, with new values each call."""
    from jitgrad.functional_ops import _Matmul
    rng = np.random.default_rng(3)
    (sa, sb) = shapes

    def make():
        a = jitgrad.tensor(rng.standard_normal(sa).astype(dtype), requires_grad=True)
        bv = rng.standard_normal(sb[::-1] if wT else sb).astype(dtype)
        b = jitgrad.tensor(bv, requires_grad=True)
        return a, b

    def step_of(a, b):
        def step():
            a.grad = None
            b.grad = None
            w = b.T if wT else b
            loss = (jitgrad.tanh(jitgrad.matmul(a, w)) * 1.5).mean()
            if a.dim() == 2 and w.dim() == 2:
                loss = loss + F.linear(a, w.T, None).sum() * 0.25
            loss.backward()
            return loss
        return step
    ae, be = make()
    ac = jitgrad.tensor(ae.detach().numpy().copy(), requires_grad=True)
    bc = jitgrad.tensor(be.detach().numpy().copy(), requires_grad=True)
    # (fusion="eager": the replay fuses what eager fuses, so values are equal bit for bit)
    eager, comp = step_of(ae, be), jitgrad.compile(step_of(ac, bc), fusion="eager")
    comp()
    calls = []
    orig = _Matmul.vjp
    monkeypatch.setattr(_Matmul, "vjp", lambda *a: (calls.append(1), orig(*a))[1])
    for k in range(4):
        new_a = rng.standard_normal(sa).astype(dtype)  # (new values: the same arrays)
        ae.detach().numpy()[...] = new_a
        ac.detach().numpy()[...] = new_a
        le = eager()
        n_eager = len(calls)
        lc = comp()
        assert len(calls) == n_eager > 0  # (the eager twin calls the rule, the replay not)
        assert lc.item() == le.item() and lc.dtype == le.dtype
        for p, q in ((ae, ac), (be, bc)):
            np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy())
    assert comp.stats["replayed"] >= 4 and jitgrad.explain(comp).reason is None


def test_module_zero_grad_at_the_start_records_once():
    """nn.Module.zero_grad() (set_to_none) at the top of a step assigns every .grad whatever it
    was: the step records once (not again after its first backward set the .grads) and every
    replay gives the eager twin's loss and parameters."""
    def build():
        jitgrad.manual_seed(0)
        m = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
        o = jitgrad.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            m.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            o.step()
            return loss
        return m, step
    x = jitgrad.tensor(np.random.default_rng(0).standard_normal((8, 12)).astype(np.float32))
    y = jitgrad.tensor(np.arange(8) % 4)
    me, eager = build()
    mc, step = build()
    comp = jitgrad.compile(step, fusion="eager")
    for _ in range(5):
        assert comp(x, y).item() == eager(x, y).item()
    for p, q in zip(me.parameters(), mc.parameters()):
        np.testing.assert_array_equal(_arr(q), _arr(p))
        np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy())
    assert comp.stats["recorded"] == 1 and comp.stats["replayed"] == 4


# --- CUDA steps (Numba's simulator without a GPU: tiny tensors) ------------------------------

_cuda = pytest.mark.skipif(not jitgrad.cuda.is_available(),
                           reason="numba.cuda is not available (no GPU, no NUMBA_ENABLE_CUDASIM)")


def _dev(a, rg=False):
    return jitgrad.tensor(np.asarray(a), device="cuda", requires_grad=rg)


def _host(t):
    return t.detach().cpu().numpy()


@_cuda
def test_cuda_w1_step_replays_fused_device_kernels():
    """W1 forward+backward on CUDA tensors: recorded once (the forward+backward is one fused
    device kernel, the backward seed's expand a structural op), replayed with the eager twin's
    loss and gradients; a new input shape records again."""
    from bench import workloads as W

    def make(n):
        xv, av, bv = W.w1_inputs("float32", n)
        x, a, b = _dev(xv), _dev(av, True), _dev(bv, True)

        def step(x):
            a.grad = None
            b.grad = None
            loss = W.w1(jitgrad, x, a, b)
            loss.backward()
            return loss
        return step, x, a, b
    se, xe, ae, be = make(40)
    sc, xc, ac, bc = make(40)
    comp = jitgrad.compile(sc)
    for k in range(3):
        xv = np.random.default_rng(k).uniform(-3, 3, 40).astype(np.float32)
        le, lc = se(_dev(xv)), comp(_dev(xv))  # (new values in each call)
        assert lc.device.type == "cuda" and lc.item() == le.item()
        for p, q in ((ae, ac), (be, bc)):
            np.testing.assert_array_equal(_host(q.grad), _host(p.grad))
    assert comp.stats == {"recorded": 1, "replayed": 2, "eager": 0}
    assert "fused cuda kernel" in str(jitgrad.explain(comp))
    xv = np.linspace(-2, 2, 24).astype(np.float32)  # a guard miss: records again
    assert comp(_dev(xv)).item() == se(_dev(xv)).item()
    assert comp.stats["recorded"] == 2


@_cuda
def test_cuda_sgd_step_with_matmul_updates_parameters_in_place():
    """A linear model on CUDA: matmul forward and backward (structural ops on device arrays),
    a mean loss, and ``w.sub_(lr * w.grad)`` computed straight into the parameter (the device
    kernel writing its target): the parameters after every replay equal the eager twin's."""
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((6, 4)).astype(np.float32)
    yv = rng.standard_normal((6, 3)).astype(np.float32)
    wv = rng.standard_normal((4, 3)).astype(np.float32)

    def make():
        x, y, w = _dev(xv), _dev(yv), _dev(wv, True)

        def step():
            w.grad = None
            loss = ((jitgrad.matmul(x, w) - y) ** 2).mean()
            loss.backward()
            with jitgrad.no_grad():
                w.sub_(0.1 * w.grad)
            return loss
        return step, w
    (se, we), (sc, wc) = make(), make()
    comp = jitgrad.compile(sc, fusion="eager")
    for _ in range(4):
        assert comp().item() == se().item()
        np.testing.assert_array_equal(_host(wc), _host(we))
        np.testing.assert_array_equal(_host(wc.grad), _host(we.grad))
    assert comp.stats["replayed"] == 3, str(jitgrad.explain(comp))
    assert wc._version == we._version


@_cuda
def test_cuda_optimizer_step_replays_the_real_step():
    """optim.SGD (momentum) over CUDA parameters after zero_grad(): replayed as a call of the
    real step() on the replayed gradients (per-step scalars live), so parameters, gradients
    and momentum follow the eager twin's on every call."""
    def make():
        w = _dev(np.linspace(-1, 1, 5).astype(np.float32), True)
        opt = jitgrad.optim.SGD([w], lr=0.1, momentum=0.9)

        def step():
            opt.zero_grad()
            loss = (jitgrad.sin(w) * w).sum()
            loss.backward()
            opt.step()
            return loss
        return step, w, opt
    (se, we, oe), (sc, wc, oc) = make(), make()
    comp = jitgrad.compile(sc)
    for _ in range(4):
        assert comp().item() == se().item()
        np.testing.assert_array_equal(_host(wc), _host(we))
        np.testing.assert_array_equal(_host(wc.grad), _host(we.grad))
    np.testing.assert_array_equal(_host(oc.state[wc]["momentum_buffer"]),
                                  _host(oe.state[we]["momentum_buffer"]))
    assert comp.stats["replayed"] == 3, str(jitgrad.explain(comp))
    assert "SGD.step()" in str(jitgrad.explain(comp))


@_cuda
def test_cuda_replay_specialises_the_kernel_once(monkeypatch):
    """On a GPU a replayed group launch binds numba's kernel specialised to its argument types
    once (later launches skip the per-call type dispatch). The simulator has no
    specialisation, so it is stood in for here: the control flow runs, the values stay."""
    from jitgrad import lazy
    calls = []

    class Spec:  # (numba's Dispatcher.specialize stand-in: the same kernel, counted)
        def __init__(self, k):
            self.k = k

        def specialize(self, *args):
            calls.append(len(args))
            return self.k

        def __getitem__(self, cfg):
            return self.k[cfg]
    made = []
    orig = lazy.CudaLaunch.__init__

    def init(self, plan, kern, lzs):
        orig(self, plan, Spec(kern), lzs)
        made.append(self)
    monkeypatch.setattr(lazy.CudaLaunch, "__init__", init)
    monkeypatch.setattr(lazy, "_can_specialize", lambda: True)
    x = _dev(np.linspace(-1, 2, 12).astype(np.float32), True)

    def step():
        x.grad = None
        loss = (jitgrad.tanh(x) * 3.0).sum()
        loss.backward()
        return loss
    comp = jitgrad.compile(step)
    want = float(np.sum(np.tanh(np.linspace(-1, 2, 12)) * 3.0))
    for _ in range(4):
        assert comp().item() == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(_host(x.grad), 3.0 * (1 - np.tanh(np.linspace(-1, 2, 12)) ** 2),
                               rtol=1e-5)
    assert comp.stats["replayed"] == 3
    assert len(calls) == 1  # (one recorded group: specialised at its first replayed launch)
