"""The two seed tutorials (shared/seeds/*.txt) run on jitgrad, asserting the articles' printed
values (and, where the article's values are random, agreement with torch on the same inputs)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import jitgrad
from jitgrad.autograd.functional import jacobian

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIRST = ("tensor([[4., 2., 2., 2., 2.],\n"
         "        [2., 4., 2., 2., 2.],\n"
         "        [2., 2., 4., 2., 2.],\n"
         "        [2., 2., 2., 4., 2.],\n"
         "        [2., 2., 2., 2., 4.]])")
SECOND = ("tensor([[8., 4., 4., 4., 4.],\n"
          "        [4., 8., 4., 4., 4.],\n"
          "        [4., 4., 8., 4., 4.],\n"
          "        [4., 4., 4., 8., 4.],\n"
          "        [4., 4., 4., 4., 8.]])")


# --- Tutorial 1 -------------------------------------------------------------------------------

def _tutorial1(seed=0):
    jitgrad.manual_seed(seed)
    x = jitgrad.ones(5)
    y = jitgrad.zeros(3)
    w = jitgrad.randn(5, 3, requires_grad=True)
    b = jitgrad.randn(3, requires_grad=True)
    z = jitgrad.matmul(x, w) + b
    loss = jitgrad.nn.functional.binary_cross_entropy_with_logits(z, y)
    return x, y, w, b, z, loss


def test_grad_fn_names_and_repr():
    *_, z, loss = _tutorial1()
    assert type(z.grad_fn).__name__ == "AddBackward0"
    assert type(loss.grad_fn).__name__ == "BinaryCrossEntropyWithLogitsBackward0"
    assert re.fullmatch(r"<AddBackward0 object at 0x[0-9a-f]+>", repr(z.grad_fn))
    assert re.fullmatch(r"<BinaryCrossEntropyWithLogitsBackward0 object at 0x[0-9a-f]+>",
                        f"{loss.grad_fn}")
    assert f"Gradient function for z = {z.grad_fn}".startswith(
        "Gradient function for z = <AddBackward0 object at 0x")
    assert loss.shape == () and loss.dtype == jitgrad.float32


def test_tutorial1_grads_match_torch():
    torch = pytest.importorskip("torch")
    x, y, w, b, z, loss = _tutorial1(seed=1)
    tw = torch.tensor(w.detach().numpy(), requires_grad=True)
    tb = torch.tensor(b.detach().numpy(), requires_grad=True)
    tz = torch.matmul(torch.ones(5), tw) + tb
    tloss = torch.nn.functional.binary_cross_entropy_with_logits(tz, torch.zeros(3))
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    loss.backward()
    tloss.backward()
    assert w.grad.shape == (5, 3) and b.grad.shape == (3,)
    assert w.grad.dtype == jitgrad.float32
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-5, atol=1e-7)
    # analytic: d/db mean(bce(z, 0)) = sigmoid(z) / 3, every row of w.grad equals b.grad
    zs = z.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(b.grad.numpy(), 1 / (1 + np.exp(-zs)) / 3, rtol=1e-5)
    np.testing.assert_allclose(w.grad.numpy(), np.tile(b.grad.numpy(), (5, 1)), rtol=1e-6)


def test_tutorial1_no_grad_and_detach():
    x, y, w, b, z, loss = _tutorial1()
    assert z.requires_grad
    with jitgrad.no_grad():
        z2 = jitgrad.matmul(x, w) + b
    assert z2.requires_grad is False and z2.grad_fn is None
    z_det = (jitgrad.matmul(x, w) + b).detach()
    assert z_det.requires_grad is False
    np.testing.assert_array_equal(z_det.numpy(), z2.numpy())


def test_tutorial1_sum_backward_equals_ones_vector():
    x = jitgrad.ones(5, requires_grad=True)
    x.grad = jitgrad.zeros(5)
    x.grad.zero_()
    y = x * x
    y.sum().backward()
    assert repr(x.grad) == "tensor([2., 2., 2., 2., 2.])"
    x2 = jitgrad.ones(5, requires_grad=True)
    (x2 * x2).backward(jitgrad.ones(len(x2)))
    np.testing.assert_array_equal(x2.grad.numpy(), x.grad.numpy())


def test_eye_pow_retain_graph_accumulation():
    inp = jitgrad.eye(5, requires_grad=True)
    out = (inp + 1).pow(2)
    out.backward(jitgrad.ones_like(inp), retain_graph=True)
    assert f"First call\n{inp.grad}" == "First call\n" + FIRST
    expected = 2 * (np.eye(5) + 1)
    np.testing.assert_array_equal(inp.grad.numpy(), expected)
    out.backward(jitgrad.ones_like(inp), retain_graph=True)
    assert f"\nSecond call\n{inp.grad}" == "\nSecond call\n" + SECOND
    np.testing.assert_array_equal(inp.grad.numpy(), 2 * expected)
    inp.grad.zero_()
    out.backward(jitgrad.ones_like(inp), retain_graph=True)
    assert str(inp.grad) == FIRST
    np.testing.assert_array_equal(inp.grad.numpy(), expected)


def exp_reducer(x):
    return x.exp().sum(dim=1)


def test_jacobian_exp_reducer():
    jitgrad.manual_seed(3)
    inputs = jitgrad.rand(2, 2)
    J = jacobian(exp_reducer, inputs)
    assert tuple(J.shape) == (2, 2, 2)
    e = np.exp(inputs.numpy())
    expected = np.zeros((2, 2, 2), np.float32)
    expected[0, 0] = e[0]
    expected[1, 1] = e[1]
    np.testing.assert_allclose(J.numpy(), expected, rtol=1e-6)
    # "oneslike * jacobian equals .grad"
    x = inputs.clone().requires_grad_()
    exp_reducer(x).backward(jitgrad.ones(2))
    np.testing.assert_allclose(x.grad.numpy(), J.numpy().sum(axis=0), rtol=1e-6)
    # the article's printed layout (values differ: torch.rand)
    s = str(J)
    assert s.startswith("tensor([[[") and "[0.0000, 0.0000]]," in s and "\n\n" in s


def test_jacobian_against_article_values():
    # the article's printed Jacobian is exp of its (unprinted) inputs: invert it and check
    printed = np.array([[1.4917, 2.4352], [2.4369, 2.3799]], np.float32)
    inputs = jitgrad.tensor(np.log(printed))
    J = jacobian(exp_reducer, inputs)
    assert str(J) == ("tensor([[[1.4917, 2.4352],\n"
                      "         [0.0000, 0.0000]],\n\n"
                      "        [[0.0000, 0.0000],\n"
                      "         [2.4369, 2.3799]]])")


# --- Tutorial 2 -------------------------------------------------------------------------------

def test_implicit_jacobian_article_values():
    # the article's x: tensor([-0.9238,  0.4353, -1.3626])
    x = jitgrad.tensor([-0.9238, 0.4353, -1.3626], requires_grad=True)
    assert repr(x) == "tensor([-0.9238,  0.4353, -1.3626], requires_grad=True)"
    y = x ** 2
    y.backward(jitgrad.ones(3))
    assert repr(x.grad) == "tensor([-1.8476,  0.8706, -2.7252])"
    assert repr(x) == "tensor([-0.9238,  0.4353, -1.3626], requires_grad=True)"


@pytest.mark.parametrize("v, expected", [
    (None, (5.0, 18.0, 34.0)),
    ([3, 2, 1], (10.0, 34.0, 42.0)),
])
def test_explicit_jacobian_vjp(v, expected):
    x1 = jitgrad.tensor(1, requires_grad=True, dtype=jitgrad.float)
    x2 = jitgrad.tensor(2, requires_grad=True, dtype=jitgrad.float)
    x3 = jitgrad.tensor(3, requires_grad=True, dtype=jitgrad.float)
    y = jitgrad.randn(3)
    y[0] = x1 ** 2 + 2 * x2 + x3
    y[1] = x1 + x2 ** 3 + x3 ** 2
    y[2] = 2 * x1 + x2 ** 2 + x3 ** 3
    assert type(y.grad_fn).__name__ == "CopySlices"
    np.testing.assert_array_equal(y.detach().numpy(), [8.0, 18.0, 33.0])
    vv = jitgrad.ones(3) if v is None else jitgrad.tensor(v, dtype=jitgrad.float)
    y.backward(vv)
    got = (x1.grad, x2.grad, x3.grad)
    for g, e in zip(got, expected):
        assert g.shape == () and g.dtype == jitgrad.float32
        assert g.item() == e
        assert repr(g) == f"tensor({e:.0f}.)"


# --- examples/tutorial.py ---------------------------------------------------------------------

def test_example_script_runs():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, os.path.join(REPO, "examples", "tutorial.py")],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert re.search(r"^Gradient function for z = <AddBackward0 object at 0x[0-9a-f]+>$", out,
                     re.M)
    assert re.search(r"^Gradient function for loss = <BinaryCrossEntropyWithLogitsBackward0 "
                     r"object at 0x[0-9a-f]+>$", out, re.M)
    assert "\nFalse\nFalse\ntensor([2., 2., 2., 2., 2.])\n" in out
    assert "First call\n" + FIRST + "\n" in out
    assert "\nSecond call\n" + SECOND + "\n" in out
    assert "\nCall after zeroing gradients\n" + FIRST + "\n" in out
    assert out.endswith("tensor(5.)\ntensor(18.)\ntensor(34.)\n"
                        "tensor(10.)\ntensor(34.)\ntensor(42.)\n")
