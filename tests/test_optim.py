"""jitgrad.optim against torch.optim: 20-step trajectories of every optimizer and option (both
dtypes), param groups, state_dict round trips (also from torch's state dicts), schedulers' lr
sequences, zero_grad, the unfused and non-contiguous paths, and bad input.

Gradients come from one NumPy function of the current parameter values, the same for both
libraries, so the comparison sees the optimizers' arithmetic only (one end-to-end test uses
each library's own backward). Each (optimizer flags, dtype) compiles one kernel (~0.2 s cold):
configurations are chosen to share kernels."""
import copy
import math
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import lazy
from jitgrad.optim import _fused

SHAPES = [(4, 3), (3,), ()]


def _init(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


_C = [np.random.default_rng(99).standard_normal(s) for s in SHAPES]


def _grads(values):
    """A non-trivial gradient field, computed in float64 from the parameter values."""
    return [np.sin(3 * np.asarray(v, np.float64)) + 0.1 * v + c for v, c in zip(values, _C)]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def _run(torch, name, kwargs, dtype, steps=20, groups=None, jkw=None):
    """Run jitgrad's and torch's optimizer side by side; return (jitgrad opt, torch opt,
    jitgrad params, torch params) after asserting every step's parameters agree."""
    init = _init(dtype)
    J = [jitgrad.tensor(a, requires_grad=True) for a in init]
    T = [torch.tensor(a, requires_grad=True) for a in init]

    def build(lib, ps, extra):
        arg = ps if groups is None else [dict(g, params=[ps[i] for i in g["params"]])
                                         for g in groups]
        return getattr(lib.optim, name)(arg, **kwargs, **extra)
    oj, ot = build(jitgrad, J, jkw or {}), build(torch, T, {})
    for it in range(steps):
        for ps, lib, o in ((J, jitgrad, oj), (T, torch, ot)):
            vals = [p.detach().numpy() for p in ps]
            for p, g in zip(ps, _grads(vals)):
                p.grad = lib.tensor(g.astype(dtype))
            o.step()
        for j, t in zip(J, T):
            np.testing.assert_allclose(j.detach().numpy(), t.detach().numpy(), **_tol(dtype),
                                       err_msg=f"{name}{kwargs} step {it + 1}")
    return oj, ot, J, T


def _assert_state_matches(oj, ot, dtype, ignore=()):
    sj, st = oj.state_dict(), ot.state_dict()
    assert [{k: v for k, v in g.items() if k not in ignore} for g in sj["param_groups"]] == \
        [{k: v for k, v in g.items() if k not in ignore} for g in st["param_groups"]]
    assert sj["state"].keys() == st["state"].keys()
    for k in st["state"]:
        assert sj["state"][k].keys() == st["state"][k].keys()
        for name, v in st["state"][k].items():
            got = sj["state"][k][name]
            if v is None:
                assert got is None
                continue
            if name == "step":
                assert got.dtype == jitgrad.float32 and got.shape == ()
            np.testing.assert_allclose(got.numpy(), v.numpy(), **_tol(dtype), err_msg=name)


CASES = [  # (optimizer, kwargs, dtypes)
    ("SGD", dict(lr=0.1), (np.float32,)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1), (np.float32,)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05, maximize=True),
     (np.float32, np.float64)),
    ("Adam", dict(lr=0.05), (np.float32,)),
    ("Adam", dict(lr=0.05, betas=(0.3, 0.9), weight_decay=0.1, amsgrad=True, maximize=True),
     (np.float32, np.float64)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2, amsgrad=True), (np.float32, np.float64)),
    ("RMSprop", dict(lr=0.01), (np.float32,)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1,
                     maximize=True), (np.float32, np.float64)),
    ("Adagrad", dict(lr=0.1), (np.float32,)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2,
                     eps=1e-6, maximize=True), (np.float32, np.float64)),
]


@pytest.mark.parametrize("name,kwargs,dtype", [
    pytest.param(n, kw, d, id=f"{n}-{'-'.join(kw)}-{np.dtype(d).name}")
    for n, kw, ds in CASES for d in ds])
def test_trajectory_matches_torch(torch, name, kwargs, dtype):
    oj, ot, _, _ = _run(torch, name, kwargs, dtype)
    _assert_state_matches(oj, ot, dtype)


def test_param_groups_different_lr_one_launch(torch, monkeypatch):
    """Groups that differ only in hyper-parameter values share one kernel launch; a group
    with other flags (weight decay on) gets its own."""
    calls = []
    real = _fused.run_cpu
    monkeypatch.setattr(_fused, "run_cpu", lambda r, d, b: (calls.append(len(b.ps)),
                                                            real(r, d, b)))
    groups = [{"params": [0], "lr": 0.2}, {"params": [1, 2], "momentum": 0.5}]
    _run(torch, "SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1),
         np.float32, steps=5, groups=groups)
    assert calls == [3] * 5
    calls.clear()
    groups = [{"params": [0], "lr": 0.1}, {"params": [1, 2], "weight_decay": 0.0}]
    oj, ot, _, _ = _run(torch, "Adam", dict(lr=0.05, weight_decay=0.1), np.float32, steps=5,
                        groups=groups)
    assert calls == [1, 2] * 5
    _assert_state_matches(oj, ot, np.float32)


@pytest.mark.parametrize("name,kwargs", [
    ("Adam", dict(lr=0.05, betas=(0.3, 0.9), weight_decay=0.1, amsgrad=True, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05, maximize=True)),
])
def test_unfused_path_matches_torch(torch, name, kwargs):
    """fused=False (the path CUDA parameters take): jitgrad elementwise ops, same numbers."""
    oj, ot, _, _ = _run(torch, name, kwargs, np.float32, steps=6, jkw=dict(fused=False))
    _assert_state_matches(oj, ot, np.float32, ignore=("fused",))


def test_non_contiguous_param(torch):
    """A parameter whose array is not C-contiguous is updated through a contiguous copy."""
    a = np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32)
    j = jitgrad.from_numpy(np.asfortranarray(a)).requires_grad_()
    assert not j.detach().numpy().flags.c_contiguous
    t = torch.tensor(a, requires_grad=True)
    oj = jitgrad.optim.Adam([j], lr=0.05)
    ot = torch.optim.Adam([t], lr=0.05)
    for _ in range(4):
        g = np.cos(j.detach().numpy()).astype(np.float32)
        j.grad, t.grad = jitgrad.tensor(g), torch.tensor(g)
        v0 = j._version
        oj.step()
        ot.step()
        assert j._version == v0 + 1
        np.testing.assert_allclose(j.detach().numpy(), t.detach().numpy(), rtol=2e-5, atol=2e-6)


@pytest.mark.cuda
def test_cuda_params_match_cpu():
    """CUDA parameters take the elementwise-op path (state on the GPU); same numbers as the
    CPU kernel. (On Numba's simulator without a GPU.)"""
    if not jitgrad.cuda.is_available():
        pytest.skip("numba.cuda is not available")
    init = np.array([1.0, -2.0, 0.5], np.float32)
    res = []
    for dev in ("cpu", "cuda"):
        w = jitgrad.tensor(init, device=dev, requires_grad=True)
        opt = jitgrad.optim.Adam([w], lr=0.1, amsgrad=True, weight_decay=0.1)
        for _ in range(3):
            w.grad = w.detach() * 2 + 1
            opt.step()
        assert opt.state[w]["exp_avg"].device == w.device
        res.append(w.detach().cpu().numpy())
    np.testing.assert_allclose(res[1], res[0], rtol=1e-6)


def test_end_to_end_with_backward(torch):
    """A least-squares fit with each library's own autograd: losses agree over 20 steps."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal(8).astype(
        np.float32)
    w0 = rng.standard_normal(4).astype(np.float32)
    losses = {}
    for lib in (jitgrad, torch):
        w = lib.tensor(w0, requires_grad=True)
        b = lib.zeros((), requires_grad=True)
        opt = lib.optim.Adam([w, b], lr=0.05)
        ls = []
        for _ in range(20):
            opt.zero_grad()
            loss = ((lib.tensor(x) @ w + b - lib.tensor(y)) ** 2).mean()
            loss.backward()
            opt.step()
            ls.append(loss.item())
        losses[lib.__name__] = ls
    np.testing.assert_allclose(losses["jitgrad"], losses["torch"], rtol=1e-5)
    assert losses["jitgrad"][-1] < 0.8 * losses["jitgrad"][0]


def test_closure_and_none_grads(torch):
    """step(closure) returns the closure's loss; a parameter without a gradient (or that does
    not require grad) is left alone and gets no state, like torch."""
    w = jitgrad.tensor([1.0, -2.0], requires_grad=True)
    idle = jitgrad.tensor([5.0], requires_grad=True)
    frozen = jitgrad.tensor([3.0])
    opt = jitgrad.optim.SGD([w, idle, frozen], lr=0.1, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(w.detach().numpy(), [0.8, -1.6], rtol=1e-6)
    assert idle.detach().numpy().tolist() == [5.0] and frozen.numpy().tolist() == [3.0]
    assert list(opt.state_dict()["state"]) == [0]


@pytest.mark.parametrize("name,kwargs", [
    ("Adam", dict(lr=0.05, betas=(0.3, 0.9), weight_decay=0.1, amsgrad=True, maximize=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1,
                     maximize=True)),
])
def test_state_dict_round_trip(torch, name, kwargs):
    """Save mid-run, load into a fresh optimizer (over copies of the parameters), continue:
    the same trajectory as the uninterrupted run. torch's state dict loads too."""
    dtype = np.float32
    ref = _run(torch, name, kwargs, dtype, steps=10)
    oj, ot, J, T = _run(torch, name, kwargs, dtype, steps=5)
    sd = oj.state_dict()
    assert sd["param_groups"] == ot.state_dict()["param_groups"]
    snap = copy.deepcopy(sd)
    for src, opt_sd in (("jitgrad", sd), ("torch", ot.state_dict())):
        J2 = [jitgrad.tensor(p.detach().numpy(), requires_grad=True) for p in J]
        o2 = getattr(jitgrad.optim, name)(J2, lr=123.0)  # hyper-parameters come from the dict
        o2.load_state_dict(opt_sd)
        assert o2.param_groups[0]["lr"] == kwargs["lr"]
        for _ in range(5):
            vals = [p.detach().numpy() for p in J2]
            for p, g in zip(J2, _grads(vals)):
                p.grad = jitgrad.tensor(g.astype(dtype))
            o2.step()
        for a, b in zip(J2, ref[2]):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=2e-5,
                                       atol=2e-6, err_msg=f"continued from {src}'s state dict")
    # loading copies: the saved dict's tensors did not move on with the loaded optimizer
    for k, st in snap["state"].items():
        for n, v in st.items():
            np.testing.assert_array_equal(sd["state"][k][n].numpy(), v.numpy())


def test_state_dict_load_errors():
    w = jitgrad.zeros(3, requires_grad=True)
    opt = jitgrad.optim.Adam([w])
    w.grad = jitgrad.ones(3)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        jitgrad.optim.Adam([{"params": [w]}, {"params": [jitgrad.zeros(1, requires_grad=True)]}
                            ]).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        jitgrad.optim.Adam([w, jitgrad.zeros(1, requires_grad=True)]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"shape \[3\] does not match .* shape \[2\]"):
        jitgrad.optim.Adam([jitgrad.zeros(2, requires_grad=True)]).load_state_dict(sd)
    # float64 parameter: the loaded buffers take its dtype, step stays float32
    w64 = jitgrad.zeros(3, dtype=jitgrad.float64, requires_grad=True)
    o64 = jitgrad.optim.Adam([w64])
    o64.load_state_dict(sd)
    assert o64.state[w64]["exp_avg"].dtype == jitgrad.float64
    assert o64.state[w64]["step"].dtype == jitgrad.float32


def test_zero_grad():
    w = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    opt = jitgrad.optim.SGD([w], lr=0.1)
    (w * 3).sum().backward()
    g = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is g and w.grad.numpy().tolist() == [0.0, 0.0]
    (w * 3).sum().backward()
    assert w.grad.numpy().tolist() == [3.0, 3.0]
    opt.zero_grad()
    assert w.grad is None
    opt.step()  # nothing to do
    assert w.detach().numpy().tolist() == [1.0, 2.0]


def test_pending_readers_see_old_values():
    """With fusion on, a value recorded from a parameter before step() keeps the old value;
    a graph that saved the parameter refuses backward after the in-place update."""
    prev, prev_min = lazy.ENABLED, lazy.FUSE_MIN
    lazy.set_fusion(True, 0)
    try:
        w = jitgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
        opt = jitgrad.optim.SGD([w], lr=0.5)
        with jitgrad.no_grad():
            y = w * 2
        loss = (w * w).sum()
        w.grad = jitgrad.ones(3)
        opt.step()
        np.testing.assert_array_equal(y.numpy(), [2.0, 4.0, 6.0])
        np.testing.assert_array_equal(w.detach().numpy(), [0.5, 1.5, 2.5])
        with pytest.raises(RuntimeError, match="inplace"):
            loss.backward()
    finally:
        lazy.set_fusion(prev, prev_min)


def test_bad_input():
    w = jitgrad.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        jitgrad.optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        jitgrad.optim.Adam([{"params": [w], "lr": -0.5}])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        jitgrad.optim.SGD([w * 2], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        jitgrad.optim.SGD(w, lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors.*float"):
        jitgrad.optim.SGD([1.0], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        jitgrad.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        jitgrad.optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        jitgrad.optim.SGD([w, w], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        jitgrad.optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid momentum value"):
        jitgrad.optim.SGD([w], lr=0.1, momentum=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        jitgrad.optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid epsilon value"):
        jitgrad.optim.RMSprop([w], eps=-1)
    with pytest.raises(ValueError, match="Invalid weight_decay value"):
        jitgrad.optim.AdamW([w], weight_decay=-1)
    with pytest.raises(ValueError, match="Invalid lr_decay value"):
        jitgrad.optim.Adagrad([w], lr_decay=-1)
    with pytest.raises(NotImplementedError, match="differentiable"):
        jitgrad.optim.Adam([w], differentiable=True)
    # a parameter that does not require grad is accepted (and skipped), like torch
    jitgrad.optim.SGD([jitgrad.zeros(2)], lr=0.1).step()
    # gradients that do not fit their parameter are refused before anything changes
    opt = jitgrad.optim.Adam([w])
    w.grad = jitgrad.ones(4)
    with pytest.raises(RuntimeError, match=r"shape \[3\].*has shape \[4\]"):
        opt.step()
    w.grad = jitgrad.ones(3, dtype=jitgrad.float64)
    with pytest.raises(RuntimeError, match="float32.*float64"):
        opt.step()
    assert opt.state_dict()["state"] == {} and w.detach().numpy().tolist() == [0.0] * 3
    # a state buffer replaced by hand must still fit (the kernel indexes it like the param)
    w.grad = jitgrad.ones(3)
    opt.step()
    opt.state[w]["exp_avg"] = jitgrad.zeros(2)
    with pytest.raises(RuntimeError, match=r"state buffer of shape \[2\].*shape \[3\]"):
        opt.step()


# --------------------------------------------------------------------------- schedulers


def _lr_sequences(torch, make, n=15, groups=2):
    out = []
    for lib in (jitgrad, torch):
        ps = [lib.zeros(1, requires_grad=True) for _ in range(groups)]
        opt = lib.optim.SGD([{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(ps)],
                            lr=0.1)
        sched = make(lib.optim.lr_scheduler, opt)
        seq = [sched.get_last_lr()]
        for _ in range(n):
            opt.step()
            sched.step()
            seq.append(sched.get_last_lr())
            assert [g["lr"] for g in opt.param_groups] == seq[-1]
        out.append((seq, sched.state_dict()))
    return out


@pytest.mark.parametrize("make", [
    lambda S, o: S.StepLR(o, step_size=3, gamma=0.5),
    lambda S, o: S.ExponentialLR(o, gamma=0.9),
    lambda S, o: S.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
    lambda S, o: S.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.95 ** e]),
], ids=["StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR"])
def test_scheduler_matches_torch(torch, make):
    (sj, dj), (st, dt) = _lr_sequences(torch, make)
    np.testing.assert_allclose(np.array(sj), np.array(st), rtol=1e-12, atol=1e-15)
    for k in ("base_lrs", "last_epoch", "_step_count", "_last_lr", "step_size", "gamma",
              "T_max", "eta_min", "lr_lambdas"):
        assert dj.get(k) == dt.get(k), k


def test_scheduler_state_dict_resume():
    """A scheduler rebuilt from its state dict (with the optimizer's) continues the same
    sequence; resuming without 'initial_lr' raises like torch."""
    def make():
        w = jitgrad.zeros(1, requires_grad=True)
        o = jitgrad.optim.SGD([w], lr=1.0)
        return o, jitgrad.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7)
    o, s = make()
    for _ in range(4):
        s.step()
    osd, ssd = o.state_dict(), s.state_dict()
    rest = []
    for _ in range(6):
        s.step()
        rest.append(s.get_last_lr()[0])
    o2, s2 = make()
    o2.load_state_dict(osd)
    s2.load_state_dict(ssd)
    assert [s2.step() or s2.get_last_lr()[0] for _ in range(6)] == rest
    assert math.isclose(rest[2], 0.0, abs_tol=1e-15)  # epoch 7 = T_max: the minimum
    w = jitgrad.zeros(1, requires_grad=True)
    with pytest.raises(KeyError, match="initial_lr"):
        jitgrad.optim.lr_scheduler.StepLR(jitgrad.optim.SGD([w], lr=0.1), 2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        jitgrad.optim.lr_scheduler.StepLR(object(), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.step(2)  # closed form at epoch 2
    assert math.isclose(s.get_last_lr()[0], (1 + math.cos(math.pi * 2 / 7)) / 2)
