"""Registry rules on plain floats (ops.FLOAT_MATH): each VJP rule against a central difference of
the forward rule, at a few points of the row's OpInfo domain. No Numba: milliseconds."""
import math

import numpy as np
import pytest

from jitgrad import ops
from jitgrad.testing.opinfo import OPINFOS

M = ops.FLOAT_MATH
H = 1e-6
N_POINTS = 4


def _points(info, rng):
    """N_POINTS tuples of Python scalars for the row's inputs (bools for bool inputs)."""
    pts = []
    for _ in range(N_POINTS):
        arrays = info.arrays([()] * len(info.kinds), rng)
        pts.append([bool(a) if k == "bool" else float(a) for a, k in zip(arrays, info.kinds)])
    return pts


def _public_arity_matches(name):
    """Rows whose public op takes exactly the registry row's inputs (rsub takes 1 tensor)."""
    return len(OPINFOS[name].kinds) == ops.ELEMENTWISE[name].arity


ROWS = sorted(ops.ELEMENTWISE)
VJPS = [(name, i) for name in ROWS for i, v in enumerate(ops.ELEMENTWISE[name].vjps)
        if v is not None]


def _row_points(name, rng):
    row = ops.ELEMENTWISE[name]
    if _public_arity_matches(name):
        return _points(OPINFOS[name], rng)
    # rsub: x - y with the roles swapped; draw every input from the public op's domain
    lo, hi = OPINFOS[name].domain[0]
    return [[float(v) for v in rng.uniform(lo, hi, row.arity)] for _ in range(N_POINTS)]


@pytest.mark.parametrize("name,i", VJPS, ids=[f"{n}-d{i}" for n, i in VJPS])
def test_vjp_rule_matches_central_difference(name, i, rng):
    row = ops.ELEMENTWISE[name]
    assert i not in row.bool_inputs
    for xs in _row_points(name, rng):
        out = row.fwd(M, *xs)
        plus, minus = list(xs), list(xs)
        plus[i] += H
        minus[i] -= H
        numeric = (row.fwd(M, *plus) - row.fwd(M, *minus)) / (2 * H)
        analytic = float(row.vjps[i](M, *xs, out, 1.0))
        assert math.isclose(analytic, numeric, rel_tol=1e-5, abs_tol=1e-6), (
            f"{name}: d/dx{i} at {xs}: rule {analytic!r}, central difference {numeric!r}")
        # a VJP is linear in the incoming gradient g
        scaled = float(row.vjps[i](M, *xs, out, -2.5))
        assert math.isclose(scaled, -2.5 * analytic, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("name", ROWS)
def test_fwd_rule_matches_reference(name, rng):
    """The float twin of the forward rule agrees with the OpInfo's NumPy reference."""
    row, info = ops.ELEMENTWISE[name], OPINFOS[name]
    for xs in _row_points(name, rng):
        got = row.fwd(M, *xs)
        if _public_arity_matches(name):
            want = info.ref(*[np.asarray(x) for x in xs])
        else:  # rsub(x, y) = y - x
            want = np.subtract(xs[1], xs[0])
        if info.out_dtype == "bool":
            assert bool(got) == bool(want), f"{name}{tuple(xs)}: {got!r} != {want!r}"
        else:
            assert math.isclose(float(got), float(want), rel_tol=1e-12, abs_tol=1e-12), (
                f"{name}{tuple(xs)}: {got!r} != {want!r}")


@pytest.mark.parametrize("name", ROWS)
def test_differentiable_inputs_match_table(name):
    """The rows with a VJP are exactly the inputs the OpInfo calls differentiable."""
    row, info = ops.ELEMENTWISE[name], OPINFOS[name]
    has_vjp = tuple(v is not None for v in row.vjps)
    assert len(has_vjp) == row.arity
    if info.out_dtype == "bool":
        assert not any(has_vjp) and row.dtype_rule == "compare"
    elif _public_arity_matches(name):
        assert has_vjp == tuple(info.diff)
    else:
        assert all(has_vjp)
    for k in row.bool_inputs:
        assert not has_vjp[k] or row.dtype_rule == "compare"
