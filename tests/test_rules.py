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


# --- structural records (ops.STRUCTURAL): the batched rules derived from each record -----------
import jitgrad  # noqa: E402
from jitgrad.autograd import compile as C  # noqa: E402
from jitgrad.autograd import functional as AF  # noqa: E402
from jitgrad.autograd.forward import run_forward, run_reverse  # noqa: E402
from jitgrad.autograd.trace import trace  # noqa: E402

STRUCT = sorted(ops.STRUCTURAL)
BATCHED_RECORDS = [n for n in STRUCT if ops.STRUCTURAL[n].batch is not None
                   and n not in ("to_device", "index_backward")]  # (rows exercise other ops)
GATHER_OR_REDUCE = [n for n in STRUCT if ops.STRUCTURAL[n].index_map in ("gather", "reduce")
                    and n != "to_device"]


@pytest.mark.parametrize("name", STRUCT)
def test_structural_record_is_complete(name):
    """Every record has a forward (or is recorded by its public op itself), one VJP, a linear
    marker consistent with its JVP source, a known index map, readers that exist, and a row
    in the op table."""
    rec = ops.STRUCTURAL[name]
    from jitgrad import functional_ops
    assert rec.name == name and rec.grad_fn.endswith(("Backward0", "Backward1", "CopySlices"))
    assert rec.forward is not None or name == "setitem"
    assert (rec.vjp is not None) == rec.differentiable
    assert rec.linear in ((), "all") or (isinstance(rec.linear, tuple) and rec.vmap is not None)
    if rec.batch is not None and rec.linear == ():
        assert rec.jvp is not None, f"{name}: non-linear with a batch rule needs a jvp"
    assert rec.index_map in (None, "gather", "reduce", "bilinear")
    for r in rec.readers:
        assert callable(getattr(functional_ops, r))
    assert name in OPINFOS, f"structural record {name} has no OpInfo row"


def _sample(name, rng):
    info = OPINFOS[name]
    shapes = next(s for s in info.shapes if all(math.prod(x) > 0 for x in s))
    xs = [jitgrad.tensor(a) for a in info.arrays(shapes, rng)]
    return info, xs


@pytest.mark.parametrize("name", BATCHED_RECORDS)
def test_batched_jvp_and_vjp_rules_are_adjoint(name, rng):
    """The record's derived JVP (its forward on the tangents / bespoke jvp) and its batched VJP
    (its one vjp rule with a leading batch axis B = 2) satisfy <J t, g> = <t, J^T g> for every
    batch row, and J^T g matches the autograd engine."""
    info, xs = _sample(name, rng)
    diff = [k for k, d in enumerate(info.diff) if d]
    tr, out = trace(info.op, xs)
    assert tr.observed is None and tr.inexact is None
    B = 2
    ts = {tr.inputs[k]: jitgrad.tensor(rng.standard_normal((B,) + tuple(xs[k].shape)))
          for k in diff}
    tan = run_forward(tr, ts, B)
    ref = tr.ref(out)
    g = jitgrad.tensor(rng.standard_normal((B,) + tuple(out.shape)))
    cot = run_reverse(tr, {ref: g}, B, [tr.inputs[k] for k in diff])
    jt = tan[ref].numpy().reshape(B, -1)
    for b in range(B):
        lhs = float(np.sum(jt[b] * g.numpy()[b].reshape(-1)))
        rhs = sum(float(np.sum(ts[tr.inputs[k]].numpy()[b] * cot[tr.inputs[k]].numpy()[b]))
                  for k in diff)
        assert math.isclose(lhs, rhs, rel_tol=1e-6, abs_tol=1e-6), (name, b, lhs, rhs)
    # the engine's VJP of the same function, row 0
    xr = [x.detach().requires_grad_(k in diff) for k, x in enumerate(xs)]
    o = info.op(*xr)
    eng = jitgrad.autograd.grad(o, [xr[k] for k in diff], grad_outputs=g[0])
    for k, e in zip(diff, eng):
        np.testing.assert_allclose(cot[tr.inputs[k]].numpy()[0], e.numpy(), rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize("name", GATHER_OR_REDUCE)
def test_compiled_index_map_matches_the_batched_rules(name, rng):
    """Records with an index map compile into one Jacobian kernel whose result matches the
    interpreter's (forward mode from the record's batched rules)."""
    info, xs = _sample(name, rng)
    if len(xs) != 1:
        pytest.skip("one-input rows only (cat/stack compile through test_functional)")
    x = xs[0]

    def f(v):
        return info.op(v)

    Jc = AF.jacobian(f, x)
    assert C._LAST_REASON[0] is None, C._LAST_REASON[0]
    C.set_enabled(False)
    try:
        Ji = AF.jacobian(f, x, strategy="forward-mode")
    finally:
        C.set_enabled(True)
    np.testing.assert_allclose(Jc.numpy(), Ji.numpy(), rtol=1e-6, atol=1e-7)
