"""jitgrad.autograd.functional: torch's functional API — jacobian, hessian, vjp, jvp, hvp, vhp.

How a call runs (see README "Functional transforms"):

1. **Compiled replay** (``jacobian`` without ``create_graph``, outside other transforms): the
   first call traces ``func`` (trace.py) and compiles the whole Jacobian into one Numba kernel
   (compile.py), cached per (func, input shapes/dtypes, strategy). Later calls validate the
   inputs, call the kernel once and wrap its result.
2. **Batched interpreter** (everything else, and whatever the compiler does not support): the
   traced record is walked once with all basis vectors as a leading batch axis (forward.py),
   forward mode over the inputs or reverse mode over the outputs. Its ops are jitgrad Tensor
   ops, so ``create_graph=True`` and nested transforms (``hessian``, ``jacfwd(jacrev(f))``) are
   differentiable.
3. **Autograd engine**: when the record misses dependencies (in-place writes while tracing) or a
   primitive has no batched rule, one ``autograd.grad`` per output element, like torch's
   ``vectorize=False``.

``strategy`` picks the mode exactly as in torch; ``vectorize`` is accepted and ignored (every
path above batches, or is exact per row). Unlike torch, ``strategy="forward-mode"`` needs
neither ``vectorize=True`` nor ``create_graph=False``/``strict=False``.
"""
from __future__ import annotations

import numpy as np

from .._state import STATE, enable_grad, no_grad, set_grad_enabled
from .._tensor import Tensor
from ..creation import ones_like
from ..functional_ops import permute, stack
from . import compile as _compile
from ._grad import grad as _grad
from .forward import Unsupported, depends, run_forward, run_reverse
from .trace import Tracer

__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]

_STRATEGIES = ("reverse-mode", "forward-mode")


# ============================================================================================
# argument checks (torch's wording)


def _as_tuple(x, arg_name, fn_name):
    is_tuple = isinstance(x, (tuple, list))
    xs = tuple(x) if is_tuple else (x,)
    for k, el in enumerate(xs):
        if not isinstance(el, Tensor):
            if is_tuple:
                raise TypeError(f"The {arg_name} given to {fn_name} must be either a Tensor or a "
                                f"tuple of Tensors but the value at index {k} has type "
                                f"{type(el).__name__}.")
            raise TypeError(f"The {arg_name} given to {fn_name} must be either a Tensor or a "
                            f"tuple of Tensors but the given {arg_name} has type "
                            f"{type(el).__name__}.")
    return xs, is_tuple


def _check_float_inputs(xs, fn_name, what="inputs"):
    for k, x in enumerate(xs):
        if not x.is_floating_point():
            raise TypeError(f"{fn_name}: {what}[{k}] has dtype {x.dtype}; only floating point "
                            f"inputs can be differentiated (convert it with .float() or "
                            f".double())")


def _validate_v(v, other, other_tuple, v_name="v"):
    if len(v) != len(other):
        if other_tuple:
            raise RuntimeError(f"{v_name} is a tuple of invalid length: should be {len(other)} "
                               f"but got {len(v)}.")
        raise RuntimeError(f"The given {v_name} should contain a single Tensor.")
    for k, (a, b) in enumerate(zip(v, other)):
        if tuple(a.shape) != tuple(b.shape):
            pre = f"Entry {k} in " if other_tuple else ""
            raise RuntimeError(f"{pre}{v_name} has invalid size: should be {tuple(b.shape)} but "
                               f"got {tuple(a.shape)}.")


def _nest(rows, out_tuple, in_tuple):
    """rows[i][j] -> torch's nesting: tuple of tuples / tuple / Tensor."""
    res = [tuple(r) if in_tuple else r[0] for r in rows]
    return tuple(res) if out_tuple else res[0]


def _independent(i, j, fn_name="jacobian"):
    return RuntimeError(f"Output {i} of the user-provided function is independent of input {j}. "
                        "This is not allowed in strict mode.")


# ============================================================================================
# tracing a call


def _traced_inputs(xs, create_graph):
    """The tensors func is called with: views of the inputs when the result must stay
    connected to them (create_graph, or an enclosing transform that traced them), fresh leaves
    otherwise. They require grad, as in torch (the function may call autograd itself)."""
    outer = STATE.tracer
    res = []
    for x in xs:
        if outer is not None and getattr(outer, "batches", False):
            # inside vmap (batching.py): a view, left as it is (the interpreter needs no
            # requires_grad; the batched ops keep a graph only where the vmap inputs have one)
            res.append(x.reshape(tuple(x.shape)))
            continue
        if (outer is not None and id(x) in outer.index) or (create_graph and x.requires_grad):
            xi = x.reshape(tuple(x.shape))
            if not xi.requires_grad:
                xi.requires_grad_(True)
        else:
            xi = x.detach().requires_grad_(True)
        res.append(xi)
    return res


def trace_call(func, xs, create_graph, fn_name, out_flatten=None):
    """Run func on traced copies of xs. Returns (tracer, traced inputs, raw outputs)."""
    if any(x.is_cuda for x in xs):
        raise NotImplementedError(f"{fn_name}: the functional transforms (jacobian, hessian, "
                                  "vjp, jvp, jitgrad.func) are not implemented for CUDA tensors "
                                  "yet; pass CPU tensors (.cpu())")
    xi = _traced_inputs(xs, create_graph)
    with enable_grad():
        with Tracer() as tr:
            for x in xi:
                tr.add_input(x)
            outs = func(*xi)
    return tr, xi, outs


def _differentiable(create_graph):
    """Whether results must stay in the graph: asked for, or inside another transform."""
    return create_graph or STATE.tracer is not None


def _out_ref(tr, o):
    return tr.ref(o) if o is not None else None


def _finish(t, keep):
    """A result tensor: kept in the graph, or detached (a plain Tensor)."""
    if keep:
        return t
    return Tensor._make(t._data)


def _zeros(shape, dtype):
    return Tensor._make(np.zeros(tuple(shape), dtype))


def _eye_block(n_total, off, n, shape, dtype):
    """Batched seeds: (n_total,) + shape with seed[b].flat[q] = (b == off + q)."""
    e = np.zeros((n_total, n), dtype)
    e[np.arange(off, off + n), np.arange(n)] = 1
    return Tensor._make(e.reshape((n_total,) + tuple(shape)))


# ============================================================================================
# the batched interpreter and the autograd fallback


def jacobian_traced(tr, xi, outs_t, mode, keep, strict):
    """rows[i][j] = d outs_t[i] / d xi[j] from a traced record (interpreter or autograd)."""
    ins = tr.inputs
    refs = [tr.ref(o) for o in outs_t]
    dep = {j: depends(tr, [k]) for j, k in enumerate(ins)}
    if strict:
        for i, r in enumerate(refs):
            for j in range(len(ins)):
                if r not in dep[j]:
                    raise _independent(i, j)
    rows = None
    if tr.inexact is None:
        try:
            with set_grad_enabled(keep):
                rows = _jac_interp(tr, xi, outs_t, refs, mode)
        except Unsupported:
            rows = None
    if rows is None:
        _engine_fallback_under_tracer()
        rows = _jac_autograd(xi, outs_t, keep, strict)
    return [[_finish(J, keep) for J in r] for r in rows]


def _engine_fallback_under_tracer():
    """An inner transform (hessian's inner jacobian, say) runs the autograd engine while an
    outer transform is tracing: the outer record then holds ops of the engine's backward,
    whose saved values it cannot always relate to its own record, so it must not be
    interpreted (a reverse-over-reverse hessian through log_softmax then nll_loss lost its
    second-order term); the outer transform runs the engine too."""
    tr = STATE.tracer
    while tr is not None:
        tr.inexact = tr.inexact or "an inner transform ran the autograd engine"
        tr = tr.parent


def _jac_interp(tr, xi, outs_t, refs, mode):
    ins = tr.inputs
    if mode == "forward-mode":
        N = sum(x.numel() for x in xi)
        seeds, offs, off = {}, [], 0
        for k, x in zip(ins, xi):
            n = x.numel()
            seeds[k] = _eye_block(N, off, n, x.shape, x._meta[1])
            offs.append(off)
            off += n
        tan = run_forward(tr, seeds, N)
        rows = []
        for o, r in zip(outs_t, refs):
            row = []
            for j, x in enumerate(xi):
                t = tan.get(r)
                oshape, ishape = tuple(o.shape), tuple(x.shape)
                if t is None or not o.is_floating_point():
                    row.append(_zeros(oshape + ishape, o._meta[1]))
                    continue
                n = x.numel()
                blk = t[offs[j]:offs[j] + n] if len(ins) > 1 else t
                blk = permute(blk, tuple(range(1, blk.dim())) + (0,))
                row.append(blk.reshape(oshape + ishape))
            rows.append(row)
        return rows
    M = sum(o.numel() for o in outs_t)
    seeds, offs, off = {}, [], 0
    for o, r in zip(outs_t, refs):
        n = o.numel()
        offs.append(off)
        if o.is_floating_point():
            s = _eye_block(M, off, n, o.shape, o._meta[1])
            seeds[r] = s if r not in seeds else seeds[r] + s
        off += n
    cot = run_reverse(tr, seeds, M, ins)
    rows = []
    for i, o in enumerate(outs_t):
        row = []
        n = o.numel()
        for k, x in zip(ins, xi):
            g = cot.get(k)
            shape = tuple(o.shape) + tuple(x.shape)
            if g is None:
                row.append(_zeros(shape, x._meta[1]))
                continue
            blk = g[offs[i]:offs[i] + n] if len(outs_t) > 1 else g
            row.append(blk.reshape(shape))
        rows.append(row)
    return rows


def _jac_autograd(xi, outs_t, keep, strict):
    """One autograd.grad per output element on the graph the traced call built."""
    rows = []
    for i, o in enumerate(outs_t):
        per = [[] for _ in xi]
        flat = o.reshape(-1)
        for e in range(flat.numel()):
            if o.requires_grad:
                gs = _grad(flat[e], xi, retain_graph=True, create_graph=keep, allow_unused=True)
            else:
                gs = (None,) * len(xi)
            for j, g in enumerate(gs):
                if g is None:
                    if strict:
                        raise _independent(i, j)
                    g = _zeros(xi[j].shape, xi[j]._meta[1])
                per[j].append(g)
        row = []
        for j, x in enumerate(xi):
            shape = tuple(o.shape) + tuple(x.shape)
            row.append(stack(per[j]).reshape(shape) if per[j] else _zeros(shape, x._meta[1]))
        rows.append(row)
    return rows


def vjp_traced(tr, xi, outs_t, vs, keep, strict):
    """(v^T J_j for each input j) from a traced record; vs[i] has outs_t[i]'s shape."""
    refs = [tr.ref(o) for o in outs_t]
    res = None
    if tr.inexact is None:
        try:
            with set_grad_enabled(keep):
                seeds = {}
                for r, o, v in zip(refs, outs_t, vs):
                    if o.is_floating_point():
                        s = v.to(o.dtype).unsqueeze(0)
                        seeds[r] = s if r not in seeds else seeds[r] + s
                cot = run_reverse(tr, seeds, 1, tr.inputs)
                res = [cot[k][0] if k in cot else None for k in tr.inputs]
        except Unsupported:
            res = None
    if res is None:
        _engine_fallback_under_tracer()
        pairs = [(o, v) for o, v in zip(outs_t, vs) if o.requires_grad]
        if pairs:
            res = list(_grad([o for o, _ in pairs], xi, [v for _, v in pairs],
                             retain_graph=True, create_graph=keep, allow_unused=True))
        else:
            res = [None] * len(xi)
    out = []
    for j, (g, x) in enumerate(zip(res, xi)):
        if g is None:
            if strict:
                raise RuntimeError(f"The output of the user-provided function is independent of "
                                   f"input {j}. This is not allowed in strict mode.")
            g = _zeros(x.shape, x._meta[1])
        out.append(_finish(g, keep))
    return out


def jvp_traced(tr, xi, outs_t, ts, keep, strict):
    """(J_i v for each output i) from a traced record; ts[j] has xi[j]'s shape."""
    refs = [tr.ref(o) for o in outs_t]
    res = None
    if tr.inexact is None:
        try:
            with set_grad_enabled(keep):
                seeds = {k: t.to(x.dtype).unsqueeze(0) for k, x, t in zip(tr.inputs, xi, ts)}
                tan = run_forward(tr, seeds, 1)
                res = [tan[r][0] if r in tan and o.is_floating_point() else None
                       for r, o in zip(refs, outs_t)]
        except Unsupported:
            res = None
    if res is None:  # contract the autograd Jacobian with the tangents
        _engine_fallback_under_tracer()
        rows = _jac_autograd(xi, outs_t, keep, False)
        res = []
        for o, row in zip(outs_t, rows):
            acc = None
            for J, t, x in zip(row, ts, xi):
                n = x.numel()
                c = (J.reshape(tuple(o.shape) + (n,)) * t.reshape(n)).sum(dim=-1)
                acc = c if acc is None else acc + c
            res.append(acc)
    out = []
    for i, (t, o) in enumerate(zip(res, outs_t)):
        if t is None:
            if strict:
                raise RuntimeError(f"Output {i} of the user-provided function is independent of "
                                   "the inputs. This is not allowed in strict mode.")
            t = _zeros(o.shape, o._meta[1])
        out.append(_finish(t, keep))
    return out


# ============================================================================================
# public API


def _check_strategy(strategy, name="strategy"):
    if strategy not in _STRATEGIES:
        raise ValueError(f"Expected {name} to be either \"forward-mode\" or \"reverse-mode\", "
                         f"got {strategy!r}")


def _outputs(outs, fn_name):
    return _as_tuple(outs, "outputs of the user-provided function", fn_name)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """Jacobian of ``func`` at ``inputs``: ``J[i][j]`` has shape ``outputs[i].shape +
    inputs[j].shape``, nested like torch (a Tensor, a tuple, or a tuple of tuples).

    ``strategy`` picks reverse mode (one batched pass over the outputs) or forward mode (one
    batched pass over the inputs). Without ``create_graph`` the whole Jacobian is compiled into
    one kernel on the first call and replayed afterwards (see module docstring)."""
    if not create_graph and not strict:  # compiled replay: checks, one kernel call, wrap
        r = _compile.replay(func, inputs, strategy)
        if r is not _compile.MISS:
            return r
    _check_strategy(strategy)
    xs, in_tuple = _as_tuple(inputs, "inputs", "jacobian")
    _check_float_inputs(xs, "jacobian")
    keep = _differentiable(create_graph)
    if not keep:
        hit = _compile.lookup(func, xs, strategy, strict)
        if hit is not None and hit is not _compile.SKIP:
            rows, out_tuple = hit
            return _nest(rows, out_tuple, in_tuple)
    tr, xi, outs = trace_call(func, xs, create_graph, "jacobian")
    outs_t, out_tuple = _outputs(outs, "jacobian")
    if not keep:
        rows = _compile.build(func, xs, strategy, strict, tr, outs_t, out_tuple,
                              in_tuple=in_tuple)
        if rows is not None:
            return _nest(rows, out_tuple, in_tuple)
    rows = jacobian_traced(tr, xi, outs_t, strategy, keep, strict)
    return _nest(rows, out_tuple, in_tuple)


def _single_scalar(out, fn_name):
    if isinstance(out, (tuple, list)) or not isinstance(out, Tensor):
        if isinstance(out, (tuple, list)) and len(out) == 1 and isinstance(out[0], Tensor):
            out = out[0]
        else:
            raise RuntimeError(f"The function given to {fn_name} should return a single Tensor")
    if out.numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {fn_name} should "
                           "contain a single element")
    return out


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """Hessian of a scalar ``func``: ``H[i][j]`` has shape ``inputs[i].shape +
    inputs[j].shape`` (a Tensor for a single input). The jacobian of the (differentiable,
    reverse-mode) jacobian, like torch."""
    _check_strategy(outer_jacobian_strategy, "outer_jacobian_strategy")
    xs, in_tuple = _as_tuple(inputs, "inputs", "hessian")
    _check_float_inputs(xs, "hessian")

    def ensure_single_output(*inp):
        return _single_scalar(func(*inp), "hessian").reshape(())

    def jac_func(*inp):
        return jacobian(ensure_single_output, inp, create_graph=True, strict=strict)

    res = jacobian(jac_func, xs, create_graph=create_graph, strict=strict,
                   strategy=outer_jacobian_strategy)
    return res if in_tuple else res[0][0]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product, shaped like ``inputs``."""
    xs, in_tuple = _as_tuple(inputs, "inputs", "vjp")
    _check_float_inputs(xs, "vjp")
    keep = _differentiable(create_graph)
    tr, xi, outs = trace_call(func, xs, create_graph, "vjp")
    outs_t, out_tuple = _outputs(outs, "vjp")
    if v is not None:
        vs, _ = _as_tuple(v, "v", "vjp")
        _validate_v(vs, outs_t, out_tuple)
    else:
        if len(outs_t) != 1 or outs_t[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the user-provided function "
                               "returns a single Tensor with a single element.")
        vs = (ones_like(outs_t[0]),)
    res = vjp_traced(tr, xi, outs_t, vs, keep, strict)
    outs_r = tuple(_finish(o, keep) for o in outs_t)
    return (outs_r if out_tuple else outs_r[0]), (tuple(res) if in_tuple else res[0])


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product (forward mode), shaped like the
    outputs."""
    xs, in_tuple = _as_tuple(inputs, "inputs", "jvp")
    _check_float_inputs(xs, "jvp")
    if v is not None:
        vs, _ = _as_tuple(v, "v", "jvp")
        _validate_v(vs, xs, in_tuple)
    else:
        if len(xs) != 1 or xs[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the input to the user-provided "
                               "function is a single Tensor with a single element.")
        vs = (ones_like(xs[0]),)
    keep = _differentiable(create_graph)
    tr, xi, outs = trace_call(func, xs, create_graph, "jvp")
    outs_t, out_tuple = _outputs(outs, "jvp")
    res = jvp_traced(tr, xi, outs_t, vs, keep, strict)
    outs_r = tuple(_finish(o, keep) for o in outs_t)
    return (outs_r if out_tuple else outs_r[0]), (tuple(res) if out_tuple else res[0])


def _grad_and_output(func, fn_name, strict):
    """g(*inp) -> (gradient tuple, output) of a scalar func, differentiable (for hvp/vhp)."""
    box = {}

    def g(*inp):
        tr, xi, out = trace_call(func, inp, True, fn_name)
        out = _single_scalar(out, fn_name)
        box["out"] = out
        return tuple(vjp_traced(tr, xi, (out,), (_ones_like(out),), True, strict))
    return g, box


def _ones_like(t):
    return ones_like(t)


def _hv(func, inputs, v, create_graph, strict, fn_name, mode):
    xs, in_tuple = _as_tuple(inputs, "inputs", fn_name)
    _check_float_inputs(xs, fn_name)
    if v is not None:
        vs, _ = _as_tuple(v, "v", fn_name)
        _validate_v(vs, xs, in_tuple)
    else:
        if len(xs) != 1 or xs[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the input to the user-provided "
                               "function is a single Tensor with a single element.")
        vs = (_ones_like(xs[0]),)
    keep = _differentiable(create_graph)
    g, box = _grad_and_output(func, fn_name, strict)
    tr, xi, grads = trace_call(g, xs, create_graph, fn_name)
    grads = tuple(grads)
    if mode == "forward":   # hvp = forward-over-reverse: H v
        res = jvp_traced(tr, xi, grads, vs, keep, strict)
    else:                   # vhp = reverse-over-reverse: v^T H
        res = vjp_traced(tr, xi, grads, vs, keep, strict)
    out = _finish(box["out"], keep)
    return out, (tuple(res) if in_tuple else res[0])


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar func, computed forward-over-reverse."""
    return _hv(func, inputs, v, create_graph, strict, "hvp", "forward")


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a scalar func, computed reverse-over-reverse."""
    return _hv(func, inputs, v, create_graph, strict, "vhp", "reverse")


def func_call(func, args, mode):
    """jitgrad.func.jacrev/jacfwd/grad of one plain tensor argument through the Jacobian
    compiler's cache (compile.py):
    the result, or None (then the caller runs the general path)."""
    if not _compile._ENABLED or STATE.tracer is not None or len(args) != 1:
        return None
    a = args[0]
    if type(a) is not Tensor or not a.is_floating_point() or (STATE.enabled and a._rg):
        return None
    strategy = "reverse-mode" if mode in ("grad", "reverse-mode") else "forward-mode"
    hit = _compile.lookup(func, (a,), strategy, False, extra=mode)
    if hit is _compile.SKIP:
        return None
    if hit is not None:
        return hit[0][0][0]
    tr, xi, outs = trace_call(func, (a,), False, mode)
    if type(outs) is not Tensor or (mode == "grad" and outs.dim() != 0):
        return None
    rows = _compile.build(func, (a,), strategy, False, tr, [outs], False, extra=mode)
    return None if rows is None else rows[0][0]
