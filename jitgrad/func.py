"""jitgrad.func: composable function transforms with torch.func's semantics (and JAX's names).

``grad``, ``grad_and_value`` (torch order: gradient first), ``value_and_grad`` (JAX order: value
first), ``jacrev``, ``jacfwd``, ``hessian`` (= ``jacfwd(jacrev(f))``), ``vjp``, ``jvp``.
Arguments and outputs may be pytrees (nested tuples, lists and dicts of tensors); ``argnums``
selects the positional arguments to differentiate. Transforms nest (``jacfwd(jacrev(f))``,
``grad(grad(f))``): an inner transform inside an outer one records its own computation as
ordinary tensor ops, which the outer one differentiates. When an input requires grad (and grad
mode is on) the results stay in the autograd graph, like torch.func.

They run on the same machinery as ``jitgrad.autograd.functional`` (trace, batched interpreter,
compiled replay for ``jacrev``/``jacfwd``/``grad`` of plain tensor arguments).
"""
from __future__ import annotations

import functools

from .autograd import functional as _AF
from .autograd import compile as _compile
from ._state import STATE
from ._tensor import Tensor
from .batching import vmap

__all__ = ["grad", "grad_and_value", "value_and_grad", "jacrev", "jacfwd", "hessian", "vjp",
           "jvp", "vmap"]


# --- pytrees ---------------------------------------------------------------------------------

def _is_tensor(x):
    return isinstance(x, Tensor)


def tree_flatten(tree):
    """(leaves, spec): tensors in tuples/lists/dicts, depth first; other leaves are kept in the
    spec as constants."""
    leaves = []

    def go(t):
        if _is_tensor(t):
            leaves.append(t)
            return ("T",)
        if isinstance(t, (tuple, list)):
            return (type(t), [go(x) for x in t])
        if isinstance(t, dict):
            keys = list(t)
            return (dict, keys, [go(t[k]) for k in keys])
        return ("C", t)
    return leaves, go(tree)


def tree_unflatten(spec, leaves):
    it = iter(leaves)

    def go(s):
        if s[0] == "T":
            return next(it)
        if s[0] == "C":
            return s[1]
        if s[0] is dict:
            return {k: go(c) for k, c in zip(s[1], s[2])}
        return s[0](go(c) for c in s[1])
    return go(spec)


def _map_tensors(fn, tree):
    leaves, spec = tree_flatten(tree)
    return tree_unflatten(spec, [fn(x) for x in leaves])


# --- shared helpers --------------------------------------------------------------------------

def _argnums(argnums, n_args, name):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise RuntimeError(f"{name}: argnums must be non-empty")
    out = []
    for a in nums:
        if not isinstance(a, int):
            raise RuntimeError(f"{name}: argnums must be int or Tuple[int, ...], got "
                               f"{type(a).__name__}")
        if not -n_args <= a < n_args:
            raise RuntimeError(f"{name}: Got argnums={argnums}, but only {n_args} positional "
                               "inputs")
        out.append(a % n_args)
    if len(set(out)) != len(out):
        raise RuntimeError(f"{name}: argnums must be unique, got {argnums}")
    return single, tuple(out)


class _Split:
    """The differentiated leaves of ``args[argnums]`` and how to put them back."""

    def __init__(self, args, argnums, name):
        self.args = list(args)
        self.single, self.nums = _argnums(argnums, len(args), name)
        self.specs, self.counts, self.leaves = [], [], []
        for n in self.nums:
            lv, spec = tree_flatten(args[n])
            if not lv:
                raise RuntimeError(f"{name}: argument {n} (selected by argnums) contains no "
                                   "Tensor to differentiate")
            for k, x in enumerate(lv):
                if not x.is_floating_point():
                    raise TypeError(f"{name}: argument {n} (leaf {k}) has dtype {x.dtype}; only "
                                    "floating point tensors can be differentiated")
            self.specs.append(spec)
            self.counts.append(len(lv))
            self.leaves += lv

    def call_args(self, xs):
        args = list(self.args)
        k = 0
        for n, spec, c in zip(self.nums, self.specs, self.counts):
            args[n] = tree_unflatten(spec, xs[k:k + c])
            k += c
        return args

    def regroup(self, per_leaf):
        """per-leaf results -> structured like args[argnums] (a tuple when argnums is)."""
        res, k = [], 0
        for spec, c in zip(self.specs, self.counts):
            res.append(tree_unflatten(spec, per_leaf[k:k + c]))
            k += c
        return res[0] if self.single else tuple(res)


def _connect(leaves):
    """Results stay differentiable when an input requires grad (like torch.func)."""
    return STATE.enabled and any(x.requires_grad for x in leaves)


def _split_aux(out, has_aux, name):
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise RuntimeError(f"{name}(f, ...)(*args): output of function f should be a tuple: "
                           "(output, aux) if has_aux is True")
    return out[0], out[1]


def _plain(tree, keep):
    return _map_tensors(lambda t: _AF._finish(t, keep), tree)


# --- grad ------------------------------------------------------------------------------------

def _grad_impl(func, argnums, has_aux, args, kwargs, name):
    sp = _Split(args, argnums, name)
    box = {}

    def flat(*xs):
        out, aux = _split_aux(func(*sp.call_args(xs), **kwargs), has_aux, name)
        if not _is_tensor(out):
            raise RuntimeError(f"{name}(f)(*args): Expected f(*args) to return a Tensor, got "
                               f"{type(out).__name__}")
        if out.dim() != 0:
            raise RuntimeError(f"{name}(f)(*args): Expected f(*args) to return a scalar Tensor, "
                               f"got tensor with {out.dim()} dims. Maybe you wanted to use the "
                               "vjp or jacrev APIs instead?")
        box["out"], box["aux"] = out, aux
        return out

    cg = _connect(sp.leaves)
    keep = _AF._differentiable(cg)
    tr, xi, out = _AF.trace_call(flat, sp.leaves, cg, name)
    g = _AF.vjp_traced(tr, xi, (out,), (_AF._ones_like(out),), keep, False)
    return sp.regroup(g), _AF._finish(out, keep), _plain(box["aux"], keep)


def grad(func, argnums=0, has_aux=False):
    """``grad(f)(*args)``: the gradient of scalar ``f`` with respect to ``args[argnums]``
    (``(gradient, aux)`` with ``has_aux``)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if not has_aux and not kwargs and argnums == 0 and len(args) == 1:
            r = _compile.replay(func, args[0], "reverse-mode", "grad")
            if r is not _compile.MISS:
                return r
            r = _AF.func_call(func, args, "grad")
            if r is not None:
                return r
        g, _, aux = _grad_impl(func, argnums, has_aux, args, kwargs, "grad")
        return (g, aux) if has_aux else g
    return wrapper


def grad_and_value(func, argnums=0, has_aux=False):
    """torch.func.grad_and_value: ``(gradient, value)`` or ``(gradient, (value, aux))``."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        g, v, aux = _grad_impl(func, argnums, has_aux, args, kwargs, "grad_and_value")
        return (g, (v, aux)) if has_aux else (g, v)
    return wrapper


def value_and_grad(func, argnums=0, has_aux=False):
    """jax.value_and_grad: ``(value, gradient)`` or ``((value, aux), gradient)``."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        g, v, aux = _grad_impl(func, argnums, has_aux, args, kwargs, "value_and_grad")
        return ((v, aux), g) if has_aux else (v, g)
    return wrapper


# --- jacobians -------------------------------------------------------------------------------

def _jac_impl(func, argnums, has_aux, args, kwargs, mode, name):
    sp = _Split(args, argnums, name)
    box = {}

    def flat(*xs):
        out, aux = _split_aux(func(*sp.call_args(xs), **kwargs), has_aux, name)
        leaves, spec = tree_flatten(out)
        if not leaves or spec[0] == "C":
            raise RuntimeError(f"{name}(f)(*args): Expected f(*args) to return a Tensor or a "
                               f"pytree of Tensors, got {type(out).__name__}")
        box["spec"], box["aux"] = spec, aux
        return tuple(leaves)

    cg = _connect(sp.leaves)
    keep = _AF._differentiable(cg)
    tr, xi, outs = _AF.trace_call(flat, sp.leaves, cg, name)
    rows = _AF.jacobian_traced(tr, xi, list(outs), mode, keep, False)
    jac = tree_unflatten(box["spec"], [sp.regroup(r) for r in rows])
    return jac, _plain(box["aux"], keep)


def _jac_transform(mode, name):
    def transform(func, argnums=0, has_aux=False, **unused):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if not has_aux and not kwargs and argnums == 0 and len(args) == 1:
                r = _compile.replay(func, args[0], mode, mode)
                if r is not _compile.MISS:
                    return r
                r = _AF.func_call(func, args, mode)
                if r is not None:
                    return r
            jac, aux = _jac_impl(func, argnums, has_aux, args, kwargs, mode, name)
            return (jac, aux) if has_aux else jac
        return wrapper
    return transform


jacrev = _jac_transform("reverse-mode", "jacrev")
jacrev.__name__ = "jacrev"
jacrev.__doc__ = ("``jacrev(f, argnums=0, has_aux=False)(*args)``: the Jacobian by reverse mode "
                  "(one batched pass over the output basis), shaped out.shape + in.shape.")
jacfwd = _jac_transform("forward-mode", "jacfwd")
jacfwd.__name__ = "jacfwd"
jacfwd.__doc__ = ("``jacfwd(f, argnums=0, has_aux=False)(*args)``: the Jacobian by forward mode "
                  "(one batched pass over the input basis), shaped out.shape + in.shape.")


def hessian(func, argnums=0):
    """``jacfwd(jacrev(f, argnums), argnums)`` (torch.func.hessian)."""
    return jacfwd(jacrev(func, argnums), argnums)


# --- vjp / jvp -------------------------------------------------------------------------------

def _trace_flat(func, sp, has_aux, name, bad_output):
    """Trace ``func`` on the split primals with its outputs flattened to a tuple of Tensors.
    Returns (box with the output spec and aux, keep-graph flag, trace, input ids, outputs)."""
    box = {}

    def flat(*xs):
        out, aux = _split_aux(func(*sp.call_args(xs)), has_aux, name)
        leaves, spec = tree_flatten(out)
        if not leaves or spec[0] == "C":
            raise RuntimeError(f"{bad_output}, got {type(out).__name__}")
        box["spec"], box["aux"] = spec, aux
        return tuple(leaves)

    cg = _connect(sp.leaves)
    keep = _AF._differentiable(cg)
    tr, xi, outs = _AF.trace_call(flat, sp.leaves, cg, name)
    return box, keep, tr, xi, list(outs)


def vjp(func, *primals, has_aux=False):
    """``(output, vjp_fn)`` (``(output, vjp_fn, aux)`` with has_aux); ``vjp_fn(cotangents)``
    returns one gradient per primal, as a tuple."""
    sp = _Split(primals, tuple(range(len(primals))), "vjp")
    box, keep, tr, xi, outs = _trace_flat(
        func, sp, has_aux, "vjp", "vjp(f, *primals): Expected f to be a function that has "
        "Tensor or pytree-of-Tensor outputs")

    def vjp_fn(cotangents):
        cl, cspec = tree_flatten(cotangents)
        if cspec != box["spec"] and not (len(outs) == 1 and len(cl) == 1):
            raise RuntimeError("vjp_fn: Expected cotangents to have the same python structure "
                               "as the output of f")
        for k, (c, o) in enumerate(zip(cl, outs)):
            if tuple(c.shape) != tuple(o.shape):
                raise RuntimeError(f"vjp_fn: Mismatch in shape: cotangent {k} has a shape of "
                                   f"{tuple(c.shape)} and output {k} has a shape of "
                                   f"{tuple(o.shape)}.")
        g = _AF.vjp_traced(tr, xi, outs, cl, keep, False)
        res, k = [], 0
        for spec, c in zip(sp.specs, sp.counts):
            res.append(tree_unflatten(spec, g[k:k + c]))
            k += c
        return tuple(res)

    out = tree_unflatten(box["spec"], [_AF._finish(o, keep) for o in outs])
    if has_aux:
        return out, vjp_fn, _plain(box["aux"], keep)
    return out, vjp_fn


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """``(output, jvp_out)`` (plus aux): the forward-mode Jacobian-vector product."""
    if not isinstance(primals, (tuple, list)):
        raise RuntimeError("jvp(f, primals, tangents): Expected primals to be a tuple. E.g. it "
                           "should be valid to call f(*primals).")
    pl, pspec = tree_flatten(tuple(primals))
    tl, tspec = tree_flatten(tuple(tangents) if isinstance(tangents, (tuple, list))
                             else tangents)
    if pspec != tspec:
        raise RuntimeError("jvp(f, primals, tangents): Expected primals and tangents to have "
                           "the same python structure.")
    for k, (p, t) in enumerate(zip(pl, tl)):
        if tuple(p.shape) != tuple(t.shape):
            raise RuntimeError(f"jvp(f, primals, tangents): Expected primals and tangents to "
                               f"have the same shape: primal {k} has shape {tuple(p.shape)}, "
                               f"tangent {k} has shape {tuple(t.shape)}")
    sp = _Split(primals, tuple(range(len(primals))), "jvp")
    box, keep, tr, xi, outs = _trace_flat(
        func, sp, has_aux, "jvp", "jvp(f, primals, tangents): Expected f to return a Tensor or "
        "a pytree of Tensors")
    t = _AF.jvp_traced(tr, xi, outs, tl, keep, strict)
    out = tree_unflatten(box["spec"], [_AF._finish(o, keep) for o in outs])
    res = tree_unflatten(box["spec"], t)
    if has_aux:
        return out, res, _plain(box["aux"], keep)
    return out, res
