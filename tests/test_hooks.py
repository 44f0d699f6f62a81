"""Tensor.register_hook / register_post_accumulate_grad_hook / retain_grad against torch: the
order hooks run in, replacement of the gradient, removal, leaves and non-leaves, which hooks
autograd.grad runs (only nodes on a path to the requested inputs, like torch), create_graph,
torch's errors; and the same with lazy fusion on every op."""
from __future__ import annotations

import numpy as np
import pytest

import jitgrad
from jitgrad import lazy

torch = pytest.importorskip("torch")


@pytest.fixture(params=["eager", "fused"])
def mode(request):
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    if request.param == "fused":
        lazy.set_fusion(True, 0)
    yield request.param
    lazy.set_fusion(prev, prev_min)


def scenario(lib):
    """Hooks on a leaf and a non-leaf, a replacing hook, retain_grad between two hooks."""
    log = []
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    h1 = x.register_hook(lambda g: log.append(("x1", g.tolist())) or g * 2)
    x.register_hook(lambda g: log.append(("x2", g.tolist())))
    y = x * 3
    y.register_hook(lambda g: log.append(("y1", g.tolist())) or g + 1)
    y.retain_grad()
    y.register_hook(lambda g: log.append(("y2", g.tolist())) or g * 10)
    (y * y).sum().backward()
    res = [list(log), x.grad.tolist(), y.grad.tolist()]
    # removed hook: no longer called; the others still are
    log.clear()
    h1.remove()
    h1.remove()  # (twice is fine)
    x.grad = None
    (x * 3).sum().backward()
    res += [list(log), x.grad.tolist()]
    return res


def test_order_replacement_removal_retain_grad_vs_torch(mode):
    assert scenario(jitgrad) == scenario(torch)


def test_autograd_grad_runs_only_the_hooks_on_the_way_vs_torch(mode):
    def run(lib):
        log = []
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: log.append("x") or g * 5)
        w = lib.tensor([1.0, 1.0], requires_grad=True)
        w.register_hook(lambda g: log.append("w"))
        y = x * 3 * w
        y.register_hook(lambda g: log.append("y") or g * 7)
        y.retain_grad()
        out = [lib.autograd.grad(y.sum(), x, retain_graph=True)[0].tolist(), list(log), w.grad,
               y.grad.tolist()]
        log.clear()
        out += [lib.autograd.grad((y * 2).sum(), y)[0].tolist(), list(log)]
        log.clear()
        (y * 1).sum().backward(inputs=[w])
        out += [w.grad.tolist(), x.grad, list(log)]
        return out
    assert run(jitgrad) == run(torch)


def test_hook_sees_the_summed_gradient_once_and_create_graph(mode):
    for lib in (jitgrad, torch):
        seen = []
        x = lib.ones(2, requires_grad=True)
        y = x * 2
        y.register_hook(lambda g: seen.append(g.tolist()))
        (y * y + y).sum().backward()
        assert seen == [[5.0, 5.0]]
    res = []
    for lib in (jitgrad, torch):
        x = lib.tensor([0.5, 1.5], dtype=lib.float64, requires_grad=True)
        flags = []
        # the replacement is itself differentiable: d/dx of (2x * x) summed
        x.register_hook(lambda g: flags.append(g.requires_grad) or g * x)
        g, = lib.autograd.grad((x ** 2).sum(), x, create_graph=True)
        gg, = lib.autograd.grad(g.sum(), x)
        res.append((flags, g.tolist(), gg.tolist()))
    assert res[0] == res[1]


def test_post_accumulate_grad_hook_vs_torch():
    def run(lib):
        log = []
        x = lib.ones(2, requires_grad=True)
        x.register_post_accumulate_grad_hook(lambda t: log.append(t.grad.tolist()))
        x.register_hook(lambda g: g * 3)
        (x * 2).sum().backward()
        (x * 1).sum().backward()
        lib.autograd.grad((x * 2).sum(), x)  # leaves .grad alone: no post hook
        return log
    assert run(jitgrad) == run(torch) == [[6.0, 6.0], [9.0, 9.0]]
    for lib in (jitgrad, torch):
        with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered "
                                               "on non-leaf tensors"):
            (lib.ones(2, requires_grad=True) * 2).register_post_accumulate_grad_hook(print)


def test_errors_like_torch():
    for lib in (jitgrad, torch):
        with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't "
                                               "require gradient"):
            lib.ones(2).register_hook(lambda g: g)
        x = lib.ones(2, requires_grad=True)
        h = x.register_hook(lambda g: g.sum())
        with pytest.raises(RuntimeError, match="hook '<lambda>' has changed the size of value"):
            (x * 2).sum().backward()
        h.remove()

        def to_double(g):
            return g.double()
        with x.register_hook(to_double):  # (a handle is a context manager)
            with pytest.raises(RuntimeError, match="hook 'to_double' has changed the type of "
                                                   "value"):
                (x * 2).sum().backward()
        x.grad = None
        (x * 2).sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]


def test_hooks_on_parameters_and_function_outputs():
    lin = jitgrad.nn.Linear(3, 2)
    got = []
    lin.weight.register_hook(lambda g: got.append(g.shape) or g * 0)
    lin(jitgrad.ones(4, 3)).sum().backward()
    assert got == [jitgrad.Size([2, 3])] and lin.weight.grad.abs().sum().item() == 0.0
    assert lin.bias.grad.tolist() == [4.0, 4.0]

    class Two(jitgrad.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2, a * 3

        @staticmethod
        def backward(ctx, g1, g2):
            return g1 * 2 + g2 * 3
    a = jitgrad.ones(2, requires_grad=True)
    p, q = Two.apply(a)
    q.register_hook(lambda g: g * 10)
    p.retain_grad()
    (p + q).sum().backward()
    assert a.grad.tolist() == [32.0, 32.0] and p.grad.tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(q.detach().numpy(), [3.0, 3.0])


def test_module_full_backward_hooks_vs_torch():
    def run(lib):
        nn = lib.nn
        m = nn.Linear(3, 2).double()
        with lib.no_grad():
            m.weight.copy_(lib.tensor(np.arange(6.0).reshape(2, 3) / 7, dtype=lib.float64))
            m.bias.fill_(0.1)
        log = []

        def lst(gs):
            return [None if g is None else g.tolist() for g in gs]

        def pre(mod, go):
            log.append(("pre", lst(go)))
            return (go[0] * 2,)

        def full(mod, gi, go):
            log.append(("full", lst(gi), lst(go)))
            return None if gi[0] is None else (gi[0] * 3,)
        h1 = m.register_full_backward_pre_hook(pre)
        h2 = m.register_full_backward_hook(full)
        x = lib.tensor([[1.0, 2.0, 3.0]], dtype=lib.float64, requires_grad=True)
        y = m(x)
        out = [type(y.grad_fn).__name__]
        (y * y).sum().backward()
        out += [log[:], x.grad.tolist(), m.weight.grad.tolist()]
        log.clear()
        m(lib.ones(1, 3, dtype=lib.float64)).sum().backward()  # no input requires grad
        out.append(log[:])
        h1.remove()
        h2.remove()
        log.clear()
        x.grad = None
        m(x).sum().backward()
        out += [log[:], x.grad.tolist()]
        # two inputs, one without grad: None in its grad_input slot
        bil = nn.Bilinear(2, 2, 1).double()
        bil.register_full_backward_hook(lambda mod, gi, go: log.append(lst(gi)))
        a = lib.ones(1, 2, dtype=lib.float64, requires_grad=True)
        bil(a, lib.ones(1, 2, dtype=lib.float64)).sum().backward()
        out.append(log[-1][1])  # zeros for the input without grad (torch materialises them)

        class Two(nn.Module):
            def forward(self, a, b):
                return a * 2, b * 3
        two = Two()
        two.register_full_backward_hook(lambda mod, gi, go: log.append((lst(gi), lst(go))))
        o1, o2 = two(lib.ones(1, requires_grad=True), lib.ones(1, requires_grad=True))
        o1.sum().backward()
        out.append(log[-1])  # an unused output's grad_output is None, an input's is zeros
        return out
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch warns when no input requires grad)
        want = run(torch)
    assert run(jitgrad) == want
