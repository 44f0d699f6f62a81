"""The two seed tutorials (shared/seeds/) with ``torch`` replaced by ``jitgrad``.

Run: python examples/tutorial.py  — prints what the articles print (random values differ:
jitgrad's generator is not torch's, so w.grad/b.grad/x differ, the fixed examples match).
"""
import jitgrad

# --- Tutorial 1: "PyTorch autograd" (zhuanlan.zhihu.com/p/548364684) ------------------------
x = jitgrad.ones(5)  # input tensor
y = jitgrad.zeros(3)  # expected output
w = jitgrad.randn(5, 3, requires_grad=True)
b = jitgrad.randn(3, requires_grad=True)
z = jitgrad.matmul(x, w) + b
loss = jitgrad.nn.functional.binary_cross_entropy_with_logits(z, y)

print(f"Gradient function for z = {z.grad_fn}")
print(f"Gradient function for loss = {loss.grad_fn}")

loss.backward()
print(w.grad)
print(b.grad)

with jitgrad.no_grad():
    z = jitgrad.matmul(x, w) + b
print(z.requires_grad)
z_det = (jitgrad.matmul(x, w) + b).detach()
print(z_det.requires_grad)

x = jitgrad.ones(5, requires_grad=True)
x.grad = jitgrad.zeros(5)
x.grad.zero_()
y = x * x
y.sum().backward()  # same as y.backward(jitgrad.ones(len(x)))
print(x.grad)

inp = jitgrad.eye(5, requires_grad=True)
out = (inp + 1).pow(2)
out.backward(jitgrad.ones_like(inp), retain_graph=True)
print(f"First call\n{inp.grad}")
out.backward(jitgrad.ones_like(inp), retain_graph=True)
print(f"\nSecond call\n{inp.grad}")
inp.grad.zero_()
out.backward(jitgrad.ones_like(inp), retain_graph=True)
print(f"\nCall after zeroing gradients\n{inp.grad}")

from jitgrad.autograd.functional import jacobian  # noqa: E402


def exp_reducer(x):
    return x.exp().sum(dim=1)


inputs = jitgrad.rand(2, 2)
print(jacobian(exp_reducer, inputs))

# --- Tutorial 2: "详解Pytorch 自动微分" (vector-Jacobian products) --------------------------------
x = jitgrad.randn(3, requires_grad=True)
print(x)
y = x**2
y.backward(jitgrad.ones(3))
print(x.grad)
print(x)

for v in (jitgrad.ones(3), jitgrad.tensor([3, 2, 1], dtype=jitgrad.float)):
    x1 = jitgrad.tensor(1, requires_grad=True, dtype=jitgrad.float)
    x2 = jitgrad.tensor(2, requires_grad=True, dtype=jitgrad.float)
    x3 = jitgrad.tensor(3, requires_grad=True, dtype=jitgrad.float)
    y = jitgrad.randn(3)  # produce a random vector for vector function define
    y[0] = x1**2 + 2 * x2 + x3  # define each vector function
    y[1] = x1 + x2**3 + x3**2
    y[2] = 2 * x1 + x2**2 + x3**3
    y.backward(v)
    print(x1.grad)
    print(x2.grad)
    print(x3.grad)
