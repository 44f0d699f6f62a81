"""jitgrad.autograd.Function against torch.autograd.Function: the examples of torch's docs
(Exp, LinearFunction in the setup_context style, MyReLU with once_differentiable, MulConstant
with a non-tensor argument, a double-backward Cube) written once and run by both libraries;
first and second derivatives, gradcheck/gradgradcheck, ctx features (needs_input_grad,
saved-tensor version checks, mark_dirty, mark_non_differentiable, set_materialize_grads,
several outputs), torch's error messages, and the functional transforms (which treat a Function
as opaque and use the engine, so a custom backward that is not the true derivative is
honoured)."""
from __future__ import annotations

import numpy as np
import pytest

import jitgrad

torch = pytest.importorskip("torch")


def fns(lib):
    """The same Function definitions for jitgrad and torch."""
    Function = lib.autograd.Function
    once_differentiable = lib.autograd.function.once_differentiable

    class Exp(Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            ctx.grad_mode_in_forward = lib.is_grad_enabled()
            return result

        @staticmethod
        def backward(ctx, grad_output):
            result, = ctx.saved_tensors
            return grad_output * result

    class LinearFunction(Function):
        @staticmethod
        def forward(input, weight, bias=None):
            output = input.mm(weight.t())
            if bias is not None:
                output += bias.unsqueeze(0).expand_as(output)
            return output

        @staticmethod
        def setup_context(ctx, inputs, output):
            input, weight, bias = inputs
            ctx.save_for_backward(input, weight, bias)

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output.mm(weight)
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.t().mm(input)
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias

    class MyReLU(Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return input.clamp(min=0)

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            grad_input = grad_output.clone()
            grad_input[input < 0] = 0
            return grad_input

    class MulConstant(Function):
        @staticmethod
        def forward(ctx, tensor, constant):
            ctx.constant = constant
            return tensor * constant

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.constant, None

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_out):
            x, = ctx.saved_tensors
            ctx.grad_mode_in_backward = lib.is_grad_enabled()
            return grad_out * 3 * x ** 2

    class SinCosArgmax(Function):
        """Three outputs: two differentiable, one marked non-differentiable."""
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            idx = x.argmax()
            ctx.mark_non_differentiable(idx)
            return x.sin(), x.cos(), idx

        @staticmethod
        def backward(ctx, gs, gc, gi):
            x, = ctx.saved_tensors
            ctx.seen = (gs, gc, gi)
            return gs * x.cos() - gc * x.sin()

    class SignSTE(Function):
        """Straight-through sign: the backward is NOT the derivative of the forward."""
        @staticmethod
        def forward(ctx, x):
            return x.sign()

        @staticmethod
        def backward(ctx, g):
            return g

    return dict(Exp=Exp, LinearFunction=LinearFunction, MyReLU=MyReLU,
                MulConstant=MulConstant, Cube=Cube, SinCosArgmax=SinCosArgmax,
                SignSTE=SignSTE)


JF, TF = fns(jitgrad), fns(torch)
X = np.array([[0.3, -1.2, 0.7], [1.5, -0.4, 0.2]])


def pair(a, rg=True, dtype=np.float64):
    a = np.asarray(a, dtype)
    return (jitgrad.tensor(a.copy(), requires_grad=rg),
            torch.tensor(a.copy(), requires_grad=rg))


def close(j, t, **kw):
    np.testing.assert_allclose(j.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12,
                               **kw)


def test_exp_first_and_second_derivatives_and_node_name():
    (xj, xt), (wj, wt) = pair(X), pair(X[::-1].copy(), rg=False)
    yj, yt = JF["Exp"].apply(xj), TF["Exp"].apply(xt)
    close(yj, yt)
    assert type(yj.grad_fn).__name__ == type(yt.grad_fn).__name__ == "ExpBackward"
    assert yj.grad_fn.grad_mode_in_forward is False and yj.requires_grad and not yj.is_leaf
    assert repr(yj).endswith("grad_fn=<ExpBackward>)")
    gj, = jitgrad.autograd.grad((yj * wj).sum(), xj, create_graph=True)
    gt, = torch.autograd.grad((yt * wt).sum(), xt, create_graph=True)
    close(gj, gt)
    assert gj.requires_grad
    hj, = jitgrad.autograd.grad((gj ** 2).sum(), xj)
    ht, = torch.autograd.grad((gt ** 2).sum(), xt)
    close(hj, ht)


def test_linear_function_setup_context_vs_torch_and_gradcheck():
    rng = np.random.default_rng(0)
    (ij, it), (wj, wt), (bj, bt) = (pair(rng.standard_normal(s)) for s in ((4, 3), (2, 3), (2,)))
    for with_bias in (True, False):
        args_j = (ij, wj, bj) if with_bias else (ij, wj)
        args_t = (it, wt, bt) if with_bias else (it, wt)
        oj, ot = JF["LinearFunction"].apply(*args_j), TF["LinearFunction"].apply(*args_t)
        close(oj, ot)
        assert type(oj.grad_fn).__name__ == "LinearFunctionBackward"
        gj = jitgrad.autograd.grad((oj ** 2).sum(), args_j)
        gt = torch.autograd.grad((ot ** 2).sum(), args_t)
        for a, b in zip(gj, gt):
            close(a, b)
    # needs_input_grad: an input that does not require grad gets None and is not computed
    cj = jitgrad.tensor(rng.standard_normal((4, 3)))
    o = JF["LinearFunction"].apply(cj, wj, bj)
    assert o.grad_fn.needs_input_grad == (False, True, True)
    o.sum().backward()
    assert cj.grad is None and wj.grad is not None
    # keyword arguments are bound to forward's signature (setup_context style)
    close(JF["LinearFunction"].apply(ij, wj, bias=bj),
          TF["LinearFunction"].apply(it, wt, bias=bt))
    lin = JF["LinearFunction"].apply
    assert jitgrad.autograd.gradcheck(lin, (ij, wj, bj))
    assert jitgrad.autograd.gradgradcheck(lin, (ij, wj, bj))


def test_cube_double_backward_runs_the_user_backward_under_create_graph():
    xj, xt = pair([0.5, -1.5, 2.0])
    yj, yt = JF["Cube"].apply(xj), TF["Cube"].apply(xt)
    gj, = jitgrad.autograd.grad(yj.sum(), xj, create_graph=True)
    gt, = torch.autograd.grad(yt.sum(), xt, create_graph=True)
    assert yj.grad_fn.grad_mode_in_backward is True
    close(gj, gt)
    gj.sum().backward()
    gt.sum().backward()
    close(xj.grad, xt.grad)                      # 6x
    assert jitgrad.autograd.gradgradcheck(JF["Cube"].apply, (xj,))
    # without create_graph the backward runs with grad mode off
    yj = JF["Cube"].apply(xj)
    yj.sum().backward()
    assert yj.grad_fn.grad_mode_in_backward is False


def test_once_differentiable_relu():
    xj, xt = pair(X)
    yj, yt = JF["MyReLU"].apply(xj), TF["MyReLU"].apply(xt)
    close(yj, yt)
    (yj * yj).sum().backward()
    (yt * yt).sum().backward()
    close(xj.grad, xt.grad)
    # first order under create_graph works; differentiating that again raises, like torch
    msg = "trying to differentiate twice a function that was marked with @once_differentiable"
    for lib, x in ((jitgrad, xj), (torch, xt)):
        y = (JF if lib is jitgrad else TF)["MyReLU"].apply(x)
        g, = lib.autograd.grad((y * y).sum(), x, create_graph=True)
        assert g.requires_grad
        with pytest.raises(RuntimeError, match=msg):
            g.sum().backward()
    # grad_outputs that do not require grad: a plain result, as in torch
    g, = jitgrad.autograd.grad(JF["MyReLU"].apply(xj).sum(), xj, create_graph=True)
    assert not g.requires_grad


def test_non_tensor_argument_and_torch_error_messages():
    xj, xt = pair([1.0, 2.0])
    yj, yt = JF["MulConstant"].apply(xj, 3.0), TF["MulConstant"].apply(xt, 3.0)
    yj.sum().backward()
    yt.sum().backward()
    close(xj.grad, xt.grad)
    assert yj.grad_fn.constant == 3.0

    def bad(lib, ret):
        class Bad(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a, n):
                return a * n

            @staticmethod
            def backward(ctx, g):
                return ret(g)
        return Bad

    cases = [lambda g: g,                       # too few
             lambda g: (g, g),                  # a gradient for the number
             lambda g: (g[:1], None),           # wrong shape
             lambda g: (g, None, None)]         # extra trailing None: fine
    for ret in cases:
        errs = []
        for lib, x in ((jitgrad, xj), (torch, xt)):
            try:
                bad(lib, ret).apply(x, 3).sum().backward()
                errs.append(None)
            except RuntimeError as e:
                errs.append(str(e))
        assert errs[0] == errs[1], errs
    assert errs == [None, None]
    # a gradient with broadcast dims is summed down to the input's shape (torch does too)
    class Bc(jitgrad.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.sum(0)

        @staticmethod
        def backward(ctx, g):
            return g.expand(2, 3)[None]
    a = jitgrad.ones(2, 3, requires_grad=True)
    Bc.apply(a).sum().backward()
    assert a.grad.tolist() == [[1.0] * 3] * 2


def test_saved_tensor_version_check_and_freed_buffers():
    Exp = JF["Exp"]
    xj, xt = pair([0.1, 0.2])

    class Keep(jitgrad.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * 2

        @staticmethod
        def backward(ctx, g):
            a, = ctx.saved_tensors
            return g * a

    c = xj * 1
    o = Keep.apply(c)
    with jitgrad.no_grad():
        c.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*KeepBackward.*"
                                           "is at version 1; expected version 0"):
        o.sum().backward()
    # buffers freed after backward (retain_graph keeps them), like torch
    y = Exp.apply(xj)
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.grad_fn.saved_tensors
    yt = TF["Exp"].apply(xt)
    yt.sum().backward(retain_graph=True)
    yt.sum().backward()
    close(xj.grad, xt.grad)


def test_several_outputs_non_differentiable_and_materialized_grads():
    xj, xt = pair([0.3, 1.1, -0.4])
    sj, cj, ij = JF["SinCosArgmax"].apply(xj)
    st, ct, it = TF["SinCosArgmax"].apply(xt)
    assert not ij.requires_grad and ij.grad_fn is None and ij.item() == it.item() == 1
    assert type(sj.grad_fn).__name__ == type(cj.grad_fn).__name__ == "SinCosArgmaxBackward"
    # only the sine is used: the cosine's gradient is materialised as zeros, and so is the
    # non-differentiable index's (int64 zeros)
    (sj * 2).sum().backward(retain_graph=True)
    (st * 2).sum().backward(retain_graph=True)
    close(xj.grad, xt.grad)
    gs, gc, gi = sj.grad_fn.seen
    assert gc.tolist() == [0.0] * 3 and gi.dtype == jitgrad.int64 and gi.item() == 0
    # both used, several times: their gradients are summed per output before one backward
    (sj.sum() + (cj * 3).sum() + sj.sum()).backward()
    (st.sum() + (ct * 3).sum() + st.sum()).backward()
    close(xj.grad, xt.grad)
    assert sj.grad_fn.seen[0].tolist() == [2.0] * 3 and sj.grad_fn.seen[1].tolist() == [3.0] * 3

    for lib in (jitgrad, torch):
        seen = []

        class NoMat(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                ctx.set_materialize_grads(False)
                return a * 2, a * 3

            @staticmethod
            def backward(ctx, g1, g2):
                seen.append(g2)
                return g1 * 2
        a = lib.ones(2, requires_grad=True)
        NoMat.apply(a)[0].sum().backward()
        assert seen == [None] and a.grad.tolist() == [2.0, 2.0]


def test_mark_dirty_input_returned_and_no_grad():
    def inplace(lib):
        class MulTwo_(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                a.mul_(2)
                ctx.mark_dirty(a)
                return a

            @staticmethod
            def backward(ctx, g):
                return g * 2
        return MulTwo_

    for lib in (jitgrad, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad has been used "
                                               "in an in-place operation"):
            inplace(lib).apply(x)
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        c = x * 3
        r = inplace(lib).apply(c)
        assert r is c and type(c.grad_fn).__name__ == "MulTwo_Backward" and c._version == 2
        assert c.tolist() == [6.0, 12.0]
        (c * c).sum().backward()
        assert x.grad.tolist() == [72.0, 144.0]

    # an input returned as it is comes back as an alias with the node as grad_fn; the input
    # stays a leaf
    for lib in (jitgrad, torch):
        class Ident(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):
                return a, b * 2

            @staticmethod
            def backward(ctx, ga, gb):
                return ga, gb * 2
        a = lib.ones(2, requires_grad=True)
        b = lib.ones(2, requires_grad=True)
        oa, ob = Ident.apply(a, b)
        assert oa is not a and a.is_leaf and oa.grad_fn is not None
        with lib.no_grad():
            oa[0] = 5.0  # shares storage (and version counter) with a, as torch's view does
        assert a[0].item() == 5.0 and oa._version == a._version
        ob.sum().backward()
        assert a.grad.tolist() == [0.0, 0.0] and b.grad.tolist() == [2.0, 2.0]

    # no input requires grad, or grad mode off: a plain result
    Exp = JF["Exp"]
    assert Exp.apply(jitgrad.ones(2)).grad_fn is None
    x = jitgrad.ones(2, requires_grad=True)
    with jitgrad.no_grad():
        y = Exp.apply(x)
    assert y.grad_fn is None and not y.requires_grad


def test_functional_transforms_treat_a_function_as_opaque():
    """jacobian/hessian/jitgrad.func cannot see inside a Function: they use the engine, which
    runs the user's backward (so a straight-through estimator's gradient is 1, not 0) and
    differentiates it for second derivatives."""
    xj, xt = pair([0.4, 1.6, -0.7])
    for fn_name in ("SignSTE", "Cube"):
        fj, ft = JF[fn_name].apply, TF[fn_name].apply

        def f_j(x):
            return fj(x) * x.sin()

        def f_t(x):
            return ft(x) * x.sin()
        close(jitgrad.autograd.functional.jacobian(f_j, xj),
              torch.autograd.functional.jacobian(f_t, xt))
        close(jitgrad.autograd.functional.jacobian(f_j, xj, strategy="forward-mode"),
              torch.autograd.functional.jacobian(f_t, xt))
        if fn_name == "Cube":  # (torch.func needs setup_context-style Functions)
            ht = torch.autograd.functional.hessian(lambda x: f_t(x).sum(), xt)
            close(jitgrad.autograd.functional.hessian(lambda x: f_j(x).sum(), xj), ht)
            close(jitgrad.func.hessian(lambda x: f_j(x).sum())(xj.detach()), ht)
        close(jitgrad.func.grad(lambda x: f_j(x).sum())(xj.detach()),
              torch.autograd.grad(f_t(xt).sum(), xt)[0])


def test_legacy_and_missing_methods():
    class NoBackward(jitgrad.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2
    y = NoBackward.apply(jitgrad.ones(2, requires_grad=True))
    with pytest.raises(NotImplementedError, match="must implement either the backward"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="Legacy autograd function with non-static forward"):
        NoBackward()(jitgrad.ones(2))
    with pytest.raises(TypeError, match="save_for_backward can only save variables, but "
                                        "argument 0 is of type int"):
        class S(jitgrad.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                ctx.save_for_backward(3)
                return a
        S.apply(jitgrad.ones(1))
