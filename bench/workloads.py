"""Workload definitions shared by the bench suites (and by their fresh-process children).

* W1 -- ``y = tanh(a*x+b) * exp(-x*x) / (1 + x*x) + sin(x) * sigmoid(x)``, ``loss = y.sum()``
  (``w1``, ``w1_inputs``, ``w1_numpy``): bench_fusion.py.
* W3 -- the first seed tutorial's tiny example: ``x = ones(5)``, ``y = zeros(3)``, ``w[5,3]``,
  ``b[3]``, ``z = x @ w + b``, BCE-with-logits, ``backward()`` (``tutorial_*``): bench_core.py
  and bench_coldstart.py.

Only NumPy is imported at module level (jitgrad, torch, jax and pytest lazily), so a
cold-start child process can import this module after the library it measures without paying
for anything else.
"""
from __future__ import annotations

import contextlib
import importlib.util
import tracemalloc

import numpy as np

TORCH_MISSING = "torch not installed (pip install -e '.[bench]')"
JAX_MISSING = "jax not installed (pip install jax jaxlib)"


# --------------------------------------------------------------------------- peers

def import_jitgrad():
    """jitgrad, or a test *failure* (not a skip): jitgrad is what every suite measures."""
    try:
        import jitgrad
    except ImportError as e:
        import pytest
        pytest.fail(f"cannot import jitgrad: {e!r}")
    return jitgrad


def import_torch():
    import pytest
    return pytest.importorskip("torch", reason=TORCH_MISSING)


def import_jax():
    import pytest
    return pytest.importorskip("jax", reason=JAX_MISSING)


@contextlib.contextmanager
def fusion(flag: bool):
    """jitgrad's lazy fusion on or off inside the block (restored after)."""
    from jitgrad import lazy
    prev = lazy.is_fusion_enabled()
    lazy.set_fusion(flag)
    try:
        yield
    finally:
        lazy.set_fusion(prev)


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def to_numpy(t):
    """Tensor (jitgrad or torch), jax array or array-like -> numpy array."""
    if hasattr(t, "detach"):
        t = t.detach()
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def traced_peak_bytes(fn) -> int:
    """Peak bytes allocated during one call of ``fn`` beyond what was live before, as
    tracemalloc sees them: NumPy's buffers (so jitgrad's and NumPy's), not torch's or XLA's.
    Call it outside the timed part: tracing slows allocation down."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- W1

def w1(lib, x, a, b):
    """W1 loss; ``lib`` provides tanh, exp, sin, sigmoid (jitgrad, torch, or a namespace)."""
    y = lib.tanh(a * x + b) * lib.exp(-x * x) / (1 + x * x) + lib.sin(x) * lib.sigmoid(x)
    return y.sum()


def w1_inputs(dtype, n):
    x = np.random.default_rng(0).uniform(-3, 3, n).astype(dtype)
    return x, np.array(0.7, dtype), np.array(-0.3, dtype)


def w1_numpy(x, a, b):
    """Hand-written W1 forward + backward (loss, dL/da, dL/db), in the inputs' dtype."""
    one = x.dtype.type(1)
    xx = x * x
    t = np.tanh(a * x + b)
    e = np.exp(-xx)
    r = one / (one + xx)
    y = t * e * r + np.sin(x) * (one / (one + np.exp(-x)))
    du = (one - t * t) * e * r  # dL/du, u = a*x + b
    return y.sum(), (du * x).sum(), du.sum()


# --------------------------------------------------------------------------- W5

def w5(lib, x, k):
    """W5 loss: a chain of k ops on x alternating ``y * 1.01`` and ``sin(y)``, summed."""
    y = x
    for i in range(k):
        y = y * 1.01 if i % 2 == 0 else lib.sin(y)
    return y.sum()


# --------------------------------------------------------------------------- W3

TUTORIAL_IN, TUTORIAL_OUT = 5, 3


def tutorial_inputs():
    """x, y, w, b (float32): the tutorial's ones(5), zeros(3) and fixed 'randn' w, b."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((TUTORIAL_IN, TUTORIAL_OUT)).astype(np.float32)
    b = rng.standard_normal(TUTORIAL_OUT).astype(np.float32)
    x = np.ones(TUTORIAL_IN, dtype=np.float32)
    y = np.zeros(TUTORIAL_OUT, dtype=np.float32)
    return x, y, w, b


def tutorial_numpy_reference(x, y, w, b):
    """loss, dL/dw, dL/db in float64: mean BCE-with-logits of z = x @ w + b."""
    x, y, w, b = (a.astype(np.float64) for a in (x, y, w, b))
    z = x @ w + b
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    dz = (1.0 / (1.0 + np.exp(-z)) - y) / z.size
    return loss, np.outer(x, dz), dz


def tutorial_reference():
    """(loss, dL/dw, dL/db) from torch when installed, else float64 NumPy."""
    x, y, w, b = tutorial_inputs()
    if not has("torch"):
        return tutorial_numpy_reference(x, y, w, b)
    import torch
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    z = torch.matmul(torch.tensor(x), wt) + bt
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(y))
    loss.backward()
    return loss.item(), wt.grad.numpy(), bt.grad.numpy()


def tutorial_eager_step(lib, w, b):
    """The tutorial verbatim with ``torch`` replaced by ``lib``: (step, result)."""
    bce = lib.nn.functional.binary_cross_entropy_with_logits

    def step():
        w.grad = None
        b.grad = None
        x = lib.ones(5)
        y = lib.zeros(3)
        z = lib.matmul(x, w) + b
        loss = bce(z, y)
        loss.backward()
        return loss

    def result():
        loss = step()
        return loss.item(), to_numpy(w.grad), to_numpy(b.grad)

    return step, result


def tutorial_jax_loss(jnp):
    def loss_fn(w, b, x, y):
        z = jnp.matmul(x, w) + b
        return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))
    return loss_fn


def tutorial_jax_step(jax):
    """jax.jit(value_and_grad) of the tutorial loss: (step, result)."""
    import jax.numpy as jnp

    vg = jax.jit(jax.value_and_grad(tutorial_jax_loss(jnp), argnums=(0, 1)))
    x, y, w, b = (jnp.asarray(a) for a in tutorial_inputs())

    def step():
        return jax.block_until_ready(vg(w, b, x, y))

    def result():
        loss, (gw, gb) = step()
        return float(loss), np.asarray(gw), np.asarray(gb)

    return step, result
