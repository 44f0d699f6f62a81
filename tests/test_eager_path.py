"""Eager elementwise ops are records realised at once (lazy.run_now): planned and rendered by the
fused path's planner and codegen, their plan replayed by signature. These tests check that the
replay never mixes up operands that share a signature, that an eager op and its fused twin are
one kernel, and the cases the signature must tell apart (one array read twice, broadcast,
non-contiguous, 0-d, 0-size, ints, bool results, in-place alias, folded reductions)."""
import numpy as np
import pytest

import jitgrad as jg
from jitgrad import _debug, lazy
import jitgrad.nn.functional as F


@pytest.fixture
def eager():
    """Small shapes run eagerly (the default FUSE_MIN), whatever the environment says."""
    prev = (lazy.ENABLED, lazy.FUSE_MIN)
    lazy.set_fusion(True, 1 << 16)
    yield
    lazy.set_fusion(*prev)


def _cases(rng):
    x = rng.standard_normal((3, 4))
    y = rng.standard_normal((3, 4))
    X, Y = jg.tensor(x), jg.tensor(y)
    r = jg.tensor(y[0])
    i = jg.tensor(np.arange(6).reshape(2, 3))
    return [
        (lambda: X * X, x * x),                        # one array read twice
        (lambda: X * Y, x * y),
        (lambda: X * r, x * y[0]),                     # broadcast row
        (lambda: X.t() * Y.t(), (x * y).T),            # non-contiguous: the N-d loop
        (lambda: X * jg.tensor(2.5), x * 2.5),         # 0-d operand
        (lambda: jg.clamp(X, 0, 0), np.clip(x, 0, 0)),  # same signature as the next:
        (lambda: jg.clamp(X, 0, 1), np.clip(x, 0, 1)),  # the replay reads this call's scalars
        (lambda: i * 3 + 1, np.arange(6).reshape(2, 3) * 3 + 1),   # int64 stays int64
        (lambda: X > Y, x > y),                        # bool result
        (lambda: jg.tensor(np.zeros((0, 3))) + 1, np.zeros((0, 3)) + 1),
    ]


def test_eager_replays_plans_by_signature(eager, rng):
    cases = _cases(rng)
    for rnd in range(2):
        built = _debug.COUNTERS["kernels_built"]
        for f, want in cases:
            got = f()
            assert got._arr is not None  # ran at once, not recorded
            np.testing.assert_array_equal(got.numpy().dtype, want.dtype)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-15)
        if rnd:  # the second round replays every plan
            assert _debug.COUNTERS["kernels_built"] == built


def test_eager_op_and_its_fused_twin_are_one_kernel(eager, rng):
    x = rng.standard_normal(7).astype(np.float32)
    y = rng.standard_normal(7).astype(np.float32)
    X, Y = jg.tensor(x), jg.tensor(y)
    np.testing.assert_allclose((X - Y * 0.25).numpy(), x - y * np.float32(0.25), rtol=1e-6)
    e = X * Y
    assert e._arr is not None
    built = _debug.COUNTERS["kernels_built"]
    lazy.set_fusion(True, 0)
    f = X * Y
    assert f._arr is None  # recorded
    np.testing.assert_array_equal(f.numpy(), e.numpy())
    assert _debug.COUNTERS["kernels_built"] == built


def test_inplace_eager_writes_its_target(eager, rng):
    x = rng.standard_normal((4, 5))
    y = rng.standard_normal((4, 5))
    X = jg.tensor(x.copy())
    storage = X._arr
    X.mul_(jg.tensor(y))
    X.add_(1.5)
    assert X._arr is storage
    np.testing.assert_allclose(X.numpy(), x * y + 1.5, rtol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_folded_reduction_and_its_vjp(eager, rng, reduction, torch):
    a = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    A = jg.tensor(a, requires_grad=True)
    loss = F.mse_loss(A, jg.tensor(b), reduction=reduction)
    loss.backward()
    At = torch.tensor(a, requires_grad=True)
    lt = torch.nn.functional.mse_loss(At, torch.tensor(b), reduction=reduction)
    lt.backward()
    assert loss.dtype == jg.float32 and loss.shape == ()
    np.testing.assert_allclose(loss.item(), lt.item(), rtol=1e-6)
    np.testing.assert_allclose(A.grad.numpy(), At.grad.numpy(), rtol=1e-6)
