"""jitgrad.autograd.function: user-defined differentiable operations (torch's
``torch.autograd.Function``).

A subclass gives static ``forward`` and ``backward``; ``MyFn.apply(*args)`` runs ``forward``
under ``no_grad`` and, when an input requires grad, makes the outputs' ``grad_fn`` a node of
class ``MyFnBackward``. That node *is* the ``ctx`` the user's methods receive (as in torch), so
attributes set on ``ctx`` are readable as ``out.grad_fn.attr``. The engine runs ``backward``
with grad mode set to ``create_graph``: a backward written with jitgrad ops is differentiable
again (double backward, ``autograd.grad(..., create_graph=True)``, hessians).

Differences from torch (documented in the README):

* With two or more differentiable outputs, each output's ``grad_fn`` is its own
  ``MyFnBackward`` node that forwards to the shared one (attributes, ``saved_tensors``,
  ``next_functions``); ``y1.grad_fn is y2.grad_fn`` is False where torch says True. The engine
  keys gradients by node, so per-output nodes are how several outputs' gradients reach one
  ``backward`` call; ``backward`` still runs once with one gradient per output.
* autograd.functional / jitgrad.func cannot see inside a Function: the tracer records it as an
  opaque op and the transform falls back to the autograd engine (one backward per output
  element), which runs the user's ``backward`` (and differentiates it for hessians).
* No forward-mode ``jvp`` and no ``vmap`` rule for Functions.
"""
from __future__ import annotations

import functools
import inspect

from .. import _tensor
from .._engine import _FREED_MSG, Node, grad_edge
from .._state import STATE, is_grad_enabled, no_grad
from ..creation import zeros
from .trace import TOp

__all__ = ["Function", "FunctionCtx", "BackwardCFunction", "once_differentiable"]


class FunctionCtx:
    """The methods ``forward``/``setup_context`` call on ``ctx`` (the backward node)."""

    def save_for_backward(self, *tensors):
        """Keep tensors for ``backward`` (read back as ``ctx.saved_tensors``). Their versions
        are recorded when ``apply`` returns: an in-place change afterwards makes
        ``saved_tensors`` raise, like torch."""
        Tensor = _tensor.Tensor
        for k, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument {k} "
                                f"is of type {type(t).__name__}")
        self.to_save = tensors

    def mark_dirty(self, *tensors):
        """Declare inputs that ``forward`` modified in place (and returns): they become outputs
        of this node, like torch."""
        self.dirty_tensors = tensors

    def mark_non_differentiable(self, *tensors):
        """Outputs that get no ``grad_fn``; ``backward`` still receives a (zero) gradient for
        each of them."""
        self.non_differentiable = tensors

    def set_materialize_grads(self, value: bool):
        """Whether an output that received no gradient is passed to ``backward`` as zeros
        (True, the default) or as None."""
        self.materialize_grads = bool(value)


class _OutGrads:
    """Gradients of a Function's outputs on their way to its one node (several outputs):
    the engine sums what meets at a node with ``+``, which this merges slot by slot."""

    __slots__ = ("g",)

    def __init__(self, g):
        self.g = g

    def __add__(self, other):
        merged = list(self.g)
        for k, b in enumerate(other.g):
            if b is not None:
                a = merged[k]
                merged[k] = b if a is None else a + b
        return _OutGrads(merged)


class BackwardCFunction(Node, FunctionCtx):
    """Base of every ``<Name>Backward`` node made by ``Function.apply``; it is also the ctx.
    (No ``__slots__``: user attributes live in the instance dict.)"""

    _forward_cls = None

    def __init__(self, next_edges):
        super().__init__(next_edges)
        self.materialize_grads = True
        self.to_save = None
        self.dirty_tensors = ()
        self.non_differentiable = ()
        self.needs_input_grad = ()
        self._saved = None
        self._outs = ()        # per forward output: (shape, np dtype, cuda) or None (no tensor)
        self._single = None    # the output slot when only one output is differentiable
        self._is_input = ()    # per forward positional arg: whether it is a Tensor

    def name(self) -> str:
        return type(self).__name__

    @property
    def saved_tensors(self):
        if self.released:
            raise RuntimeError(_FREED_MSG)
        if self._saved is None:
            return tuple(self.to_save) if self.to_save is not None else ()
        self.check_saved()
        return self._saved

    saved_variables = saved_tensors

    def release(self):
        if self._saved is not None:
            self.released = True
            self._saved = None
            self.saved_versions = None

    def apply(self, g, create_graph):
        cls = self._forward_cls
        if isinstance(g, _OutGrads):
            grads = list(g.g)
        else:
            grads = [None] * len(self._outs)
            grads[self._single] = g
        if self.materialize_grads:
            for k, meta in enumerate(self._outs):
                if grads[k] is None and meta is not None:
                    shape, dt, cuda = meta
                    grads[k] = zeros(shape, dtype=dt, device="cuda" if cuda else None)
        user = _user_backward(cls)
        res = user(self, *grads)
        return self._check_grads(res)

    def _check_grads(self, res):
        """torch's validation of what ``backward`` returned: one gradient per forward
        argument (extra trailing Nones allowed), None for non-tensor arguments, each shaped like
        its input (a broadcast-compatible one is summed down) and cast to its dtype."""
        T = _tensor
        if not isinstance(res, tuple):
            res = (res,)
        n = len(self._is_input)
        if len(res) != n:
            if len(res) < n or any(r is not None for r in res[n:]):
                raise RuntimeError(f"function {self.name()} returned an incorrect number of "
                                   f"gradients (expected {n}, got {len(res)})")
            res = res[:n]
        out = []
        for k, (gi, is_t, e) in enumerate(zip(res, self._is_input, self.next_edges)):
            if gi is None:
                out.append(None)
                continue
            if not is_t:
                raise RuntimeError(f"function {self.name()} returned a gradient different than "
                                   f"None at position {k + 1}, but the corresponding forward "
                                   "input was not a Variable")
            if not isinstance(gi, T.Tensor):
                raise TypeError(f"function {self.name()} returned a {type(gi).__name__} as the "
                                f"gradient at position {k + 1}; expected a Tensor or None")
            if e is None:  # the input does not require grad: dropped, like torch
                out.append(None)
                continue
            shape, dt, cuda = self._in_meta[k]
            gshape = gi._meta[0]
            if gshape != shape:
                if not _expandable(shape, gshape):
                    raise RuntimeError(f"Function {self.name()} returned an invalid gradient at "
                                       f"index {k} - got {list(gshape)} but expected shape "
                                       f"compatible with {list(shape)}")
                gi = T.sum_to(gi, shape)
            if T._is_cuda(gi) != cuda:
                raise RuntimeError(f"Function {self.name()} returned an invalid gradient at "
                                   f"index {k} - expected device "
                                   f"{'cuda:0' if cuda else 'cpu'} but got {gi.device}")
            if gi._meta[1] != dt:
                gi = gi.to(T.dtypes.from_numpy(dt))
            out.append(gi)
        return out


def _expandable(shape, gshape) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``gshape`` (torch's is_expandable_to)."""
    if len(shape) > len(gshape):
        return False
    for s, t in zip(reversed(shape), reversed(gshape)):
        if s != t and s != 1:
            return False
    return True


class _OutputNode(Node):
    """The grad_fn of one output of a Function with several differentiable outputs: hands its
    gradient to the shared node in that output's slot. Reads of other attributes (ctx
    attributes, ``saved_tensors``) go to the shared node."""

    __slots__ = ("slot", "n_out")

    def apply(self, g, create_graph):
        grads = [None] * self.n_out
        grads[self.slot] = g
        return (_OutGrads(grads),)

    def __getattr__(self, name):
        return getattr(self.next_edges[0], name)

    @property
    def next_functions(self):
        return self.next_edges[0].next_functions

    @property
    def saved_tensors(self):
        return self.next_edges[0].saved_tensors


def _user_backward(cls):
    bw = cls.backward
    vjp = cls.vjp
    if bw is not Function.backward and vjp is not Function.vjp:
        raise RuntimeError("Implementing both 'backward' and 'vjp' for a custom Function is not "
                           "allowed. You should only implement one of them.")
    return vjp if vjp is not Function.vjp else bw


class FunctionMeta(type):
    """Gives each Function subclass its backward node classes (``<Name>Backward``)."""

    def __init__(cls, name, bases, attrs):
        cls._backward_cls = type(name + "Backward", (BackwardCFunction,),
                                 {"_forward_cls": cls, "__module__": cls.__module__})
        cls._output_cls = type(name + "Backward", (_OutputNode,),
                               {"__slots__": (), "__module__": cls.__module__})
        super().__init__(name, bases, attrs)


def _bind_default_args(func, args, kwargs):
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.args


class Function(FunctionCtx, metaclass=FunctionMeta):
    """Base of user-defined autograd operations (see the module docstring). Subclasses write

    * ``forward(ctx, *args, **kwargs)`` with ``ctx.save_for_backward(...)`` etc. inside, or
      ``forward(*args)`` plus ``setup_context(ctx, inputs, output)`` (torch 2.x style);
    * ``backward(ctx, *grad_outputs)`` returning one gradient (or None) per ``forward``
      argument;

    and call ``MyFn.apply(*args)``."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is "
                           "deprecated. Please use new-style autograd function with static "
                           "forward method. (Example: https://pytorch.org/docs/stable/"
                           "autograd.html#torch.autograd.Function)")

    @staticmethod
    def forward(*args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    @staticmethod
    def vjp(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    @staticmethod
    def jvp(ctx, *grad_inputs):
        raise NotImplementedError("jitgrad has no forward-mode AD for custom autograd.Function "
                                  "(jvp through autograd.functional uses the backward "
                                  "instead)")

    @classmethod
    def apply(cls, *args, **kwargs):
        return _apply(cls, args, kwargs)


def _apply(cls, args, kwargs):
    T = _tensor
    Tensor = T.Tensor
    setup = cls.setup_context is not Function.setup_context
    if setup:
        args = _bind_default_args(cls.forward, args, kwargs)
        kwargs = {}
    is_t = tuple(isinstance(a, Tensor) for a in args)
    needs = tuple(i and a._rg for i, a in zip(is_t, args))
    record = STATE.enabled and any(needs)
    # the inputs' edges as they are before forward (mark_dirty rebinds an input's grad_fn)
    edges = tuple(grad_edge(a) if i else None for i, a in zip(is_t, args)) if record else \
        (None,) * len(args)
    ctx = cls._backward_cls(edges)
    ctx.needs_input_grad = needs
    ctx._is_input = is_t
    tracer = STATE.tracer
    STATE.tracer = None  # opaque to autograd.functional: its ops are not recorded one by one
    try:
        with no_grad():
            if setup:
                out = cls.forward(*args)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
    finally:
        STATE.tracer = tracer
    is_tuple = isinstance(out, tuple)
    outs = list(out) if is_tuple else [out]
    _wrap_outputs(ctx, args, outs, record, T)
    if ctx.to_save is not None:
        ctx._saved = tuple(ctx.to_save)
        ctx.to_save = None
        if record:
            sv = tuple((t._vc, t._vc[0], t) for t in ctx._saved if t is not None)
            ctx.saved_versions = sv or None
        else:
            ctx._saved = None  # nothing will run backward: keep no references
    if tracer is not None:
        _record_opaque(tracer, cls, args, outs, Tensor)
    return tuple(outs) if is_tuple else outs[0]


def _wrap_outputs(ctx, args, outs, record, T):
    """Give the outputs their grad_fn (torch's _wrap_outputs): an input returned as it is
    becomes an alias (a new tensor sharing its storage and version counter), a dirty input
    becomes an output of this node in place, non-differentiable and non-float outputs get no
    grad_fn."""
    Tensor = T.Tensor
    arg_ids = {id(a): k for k, a in enumerate(args) if isinstance(a, Tensor)}
    dirty = {id(t) for t in ctx.dirty_tensors}
    for t in ctx.dirty_tensors:
        if id(t) not in arg_ids:
            raise RuntimeError("mark_dirty: only inputs of forward can be marked dirty (got a "
                               f"tensor of shape {tuple(t.shape)} that is not an input)")
    nondiff = {id(t) for t in ctx.non_differentiable}
    metas, diff = [], []
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            metas.append(None)
            continue
        orig = id(o)
        if orig in dirty:
            if record and o.grad_fn is None and o._rg:
                raise RuntimeError("a leaf Variable that requires grad has been used in an "
                                   "in-place operation.")
            if record and o._base is not None:
                raise NotImplementedError(
                    "jitgrad: mark_dirty on a view (an input of shape "
                    f"{tuple(o.shape)} that looks into another tensor) is not supported; pass "
                    "the base tensor, or clone() the view before the call")
            o._vc[0] += 1
        elif orig in arg_ids or o._rg:
            # an input returned as is (or a tensor from outside that has its own history)
            o = outs[k] = o.detach()
        shape, dt = o._meta
        metas.append((shape, dt, T._is_cuda(o)))
        if record and orig not in nondiff and dt.kind == "f":
            diff.append(k)
    for t in ctx.dirty_tensors:
        if id(t) not in {id(o) for o in outs}:
            raise RuntimeError("mark_dirty: a tensor marked dirty must be returned by forward")
    ctx._outs = tuple(metas)
    ctx._in_meta = tuple((a._meta[0], a._meta[1], T._is_cuda(a)) if isinstance(a, Tensor)
                         else None for a in args)
    if not diff:
        return
    if len(diff) == 1:
        ctx._single = diff[0]
        nodes = {diff[0]: ctx}
    else:
        nodes = {}
        for k in diff:
            n = type(ctx)._forward_cls._output_cls((ctx,))
            n.slot, n.n_out = k, len(outs)
            nodes[k] = n
    for k, n in nodes.items():
        o = outs[k]
        o.grad_fn = n
        o._rg = True
        if id(o) in dirty and o._views:
            T.rebase_views(o)


def _record_opaque(tracer, cls, args, outs, Tensor):
    """Tell every active tracer that an opaque Function ran: the record misses what happened
    inside, so the transforms use the autograd engine (which runs the user's backward)."""
    why = (f"a custom autograd.Function ({cls.__name__}) ran: the tracer cannot see inside it, "
           "so the autograd engine differentiates it")
    tr = tracer
    while tr is not None:
        tr.inexact = tr.inexact or why
        ins = tuple(tr.ref(a) if isinstance(a, Tensor) else (a,) for a in args)
        for o in outs:
            if isinstance(o, Tensor) and id(o) not in tr.index:
                k = tr._add(o, "op")
                op = TOp("custom", cls, ins, {}, k)
                tr.ops.append(op)
                tr.producer[k] = op
        tr = tr.parent


# =============================================================================================
# once_differentiable


class DelayedError(Node):
    """grad_fn of what a ``@once_differentiable`` backward returns under create_graph:
    differentiating through it raises (torch's DelayedError)."""

    __slots__ = ()

    def apply(self, g, create_graph):
        raise RuntimeError("trying to differentiate twice a function that was marked with "
                           "@once_differentiable")


def once_differentiable(fn):
    """Decorate a Function's ``backward`` that is not itself differentiable (it may use NumPy):
    it runs under ``no_grad``; under ``create_graph`` its results still require grad but
    differentiating them raises, like torch."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            outputs = fn(ctx, *args)
        if not is_grad_enabled():
            return outputs
        Tensor = _tensor.Tensor
        if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            return outputs
        tup = outputs if isinstance(outputs, tuple) else (outputs,)
        err = DelayedError(())
        res = []
        for o in tup:
            if isinstance(o, Tensor):
                o = o.detach()
                if o._meta[1].kind == "f":
                    o.grad_fn, o._rg = err, True
            res.append(o)
        return tuple(res) if isinstance(outputs, tuple) else res[0]
    return wrapper

