"""trace: records the primitives a function runs, for autograd.functional and jitgrad.func.

While a :class:`Tracer` is active (``grad_mode.STATE.tracer``), ``tensor.apply_elementwise`` and
``tensor.apply_fn`` hand every primitive to it: it runs the op as usual and appends a
:class:`TOp` (registry row or structural Function, operand value indices, params, output value
index). The function runs eagerly, so the record is this call's exact computation; the batched
interpreter (forward.py) and the compiler (compile.py) work from it.

A record can be

* **inexact** (``inexact`` set): a traced or constant tensor was modified in place, or its array
  replaced, while tracing, or an op wrote into ``out=``. Its dependencies are not all in the
  record: autograd.functional falls back to the autograd engine.
* **not replayable** (``observed`` set): the function read the value of a traced tensor
  (``item``, ``bool``, ``numpy``, ``tolist``, ``repr``, ``detach``, a value-dependent op such as
  ``nonzero``, a first-order ``autograd.grad``...) or drew random numbers.

Fusion (lazy.py) is switched off in the tracing thread while a tracer is active, so every op
runs eagerly and every value has its array. The record is right
  for this call but another call could take another path: nothing is cached for it.

Value reads are caught by :class:`_Traced`, the class traced tensors wear while a tracer knows
them: its ``_data`` property reports every read except from the few functions that read shapes
and dtypes only (``_structural_readers``: a few core functions plus the ``readers`` each
ops.STRUCTURAL record names).
"""
from __future__ import annotations

import sys

from .. import _tensor, lazy
from .. import functional_ops as F
from .._state import STATE
from .._tensor import Ctx, Tensor, apply_elementwise, apply_fn
from ..ops import STRUCTURAL

__all__ = ["Tracer", "TOp", "trace"]


class TOp:
    """One recorded primitive. kind 'ew': ``prim`` is an ops.Elementwise row; 'fn': a structural
    Function class. ``args``: per operand a value index (int) or ``(number,)`` for a Python
    scalar. ``out``: the output value index."""

    __slots__ = ("kind", "prim", "args", "params", "out", "ctx")

    def __init__(self, kind, prim, args, params, out, ctx=None):
        self.kind, self.prim, self.args, self.params, self.out, self.ctx = \
            kind, prim, args, params, out, ctx

    @property
    def name(self):
        return self.prim.name if self.kind == "ew" else getattr(self.prim, "op_name",
                                                                 self.prim.__name__)

    def __repr__(self):
        return f"TOp({self.name}, {self.args}, {self.params}) -> {self.out}"


_Tensor = None
_TracedCls = None
_readers = None


def _classes():
    global _Tensor, _TracedCls
    if _Tensor is None:

        class _Traced(Tensor):
            """A tensor some active tracer knows: reports reads of its values."""
            __slots__ = ()

            @property
            def _data(self):
                if STATE.tracer is not None:
                    _observed(self, sys._getframe(1).f_code)
                a = self._arr
                if a is None:
                    a = lazy.realize(self)
                return a

        _Tensor, _TracedCls = Tensor, _Traced
    return _Tensor, _TracedCls


def _structural_readers():
    """Code objects that read ``_data`` only for shapes, dtypes, layout or to run a recorded
    primitive; any other read of a traced tensor is a value observation."""
    global _readers
    if _readers is None:
        T = _tensor
        codes = {T.apply_elementwise, T.apply_fn, T.Tensor.contiguous,
                 T.Tensor.is_contiguous, T.Tensor.__iter__, T.Tensor.to}
        # the public functions each structural record names as shape-only readers
        codes.update(getattr(F, name) for rec in STRUCTURAL.values() for name in rec.readers)
        _readers = frozenset(getattr(f, "__code__", None) or f.fget.__code__ for f in codes)
    return _readers


def _observed(t, code):
    if code in _structural_readers():
        return
    tr = STATE.tracer
    while tr is not None:
        if id(t) in tr.index and tr.observed is None:
            tr.observed = f"the value of a traced tensor was read (in {code.co_name})"
        tr = tr.parent


class Tracer:
    """Records the primitives run while it is active (a context manager). Nested tracers (a
    transform inside a transform) record into every enclosing tracer too."""

    def __init__(self):
        self.parent = None
        self.values = []      # Tensor per value index (kept alive: ids stay unique)
        self.kinds = []       # 'in' | 'const' | 'op'
        self.index = {}       # id(tensor) -> value index
        self.by_arr = {}      # id(ndarray) -> value index of the op output holding it
        self.ops: list[TOp] = []
        self.producer = {}    # value index -> TOp
        self.inputs = []      # value indices of the inputs, in order
        self.observed = None  # why the record is not replayable, or None
        self.inexact = None   # why the record misses dependencies, or None
        self._snap = []       # (version cell, version, array) per value, checked at the end
        self._rng = None
        self._fusion = False

    # --- lifetime -------------------------------------------------------------------------
    def __enter__(self):
        _classes()
        st = STATE
        self._rng = st.draws  # (random draws this thread makes, any generator)
        self.parent = st.tracer
        # eager ops while tracing: fusion's pending values would hide arrays (and dependencies)
        # from the record; switched off for this thread only, and back
        self._fusion = st.fusion
        st.fusion = False
        st.tracer = self
        return self

    def __exit__(self, *exc):
        st = STATE
        st.tracer = self.parent
        st.fusion = self._fusion
        if st.draws != self._rng:
            self.observed = self.observed or "random numbers were drawn"
        for t, (cell, version, arr) in zip(self.values, self._snap):
            if cell[0] != version or (arr is not None and t._arr is not None
                                      and t._arr is not arr):
                self.inexact = self.inexact or \
                    "a tensor used by the function was modified in place"
                break
        par = self.parent
        for t in self.values:
            if type(t) is _TracedCls and (par is None or id(t) not in par.index):
                t.__class__ = _Tensor
        return False

    # --- values ---------------------------------------------------------------------------
    def _add(self, t, kind):
        k = len(self.values)
        self.values.append(t)
        self.kinds.append(kind)
        self.index[id(t)] = k
        self._snap.append((t._vc, t._vc[0], t._arr))
        if kind != "const" and type(t) is _Tensor:
            t.__class__ = _TracedCls
        if kind == "op" and t._arr is not None:
            self.by_arr[id(t._arr)] = k
        return k

    def add_input(self, t):
        k = self._add(t, "in")
        self.inputs.append(k)
        return k

    def ref(self, t):
        """Value index of tensor ``t`` (registering it as a constant when unknown)."""
        k = self.index.get(id(t))
        if k is not None:
            return k
        # a tensor sharing the array and grad_fn of a traced output is that value: the saved
        # ``out`` an elementwise node rebuilds for a differentiable (create_graph) backward
        if t.grad_fn is not None and t._arr is not None:
            k = self.by_arr.get(id(t._arr))
            if k is not None and self.values[k].grad_fn is t.grad_fn:
                self.index[id(t)] = k
                return k
        return self._add(t, "const")

    def _record(self, kind, prim, operands, params, res, ctx=None):
        args = tuple(self.ref(o) if isinstance(o, _Tensor) else (o,) for o in operands)
        k = self.index.get(id(res))
        if k is not None:  # an op returned an operand unchanged
            return
        k = self._add(res, "op")
        op = TOp(kind, prim, args, params, k, ctx)
        self.ops.append(op)
        self.producer[k] = op

    # --- hooks called by tensor.apply_elementwise / tensor.apply_fn -----------------------
    def elementwise(self, row, ops, grad_fn, reduce, out):
        st = STATE
        below = _below(self)
        st.tracer = below
        try:
            res = apply_elementwise(row, ops, grad_fn, reduce, out)
        finally:
            st.tracer = self
        tr = self
        while tr is not below:
            if out is not None:
                tr.inexact = tr.inexact or "an elementwise op wrote into out="
            tr._record("ew", row, ops, {"reduce": reduce}, res)
            tr = tr.parent
        return res

    def function(self, fn, inputs, grad_fn, view_of, save, ctx, params):
        st = STATE
        if ctx is None:
            ctx = Ctx()
        below = _below(self)
        st.tracer = below
        try:
            res = apply_fn(fn, inputs, grad_fn, view_of, save, ctx, **params)
        finally:
            st.tracer = self
        tr = self
        while tr is not below:
            tr._record("fn", fn, inputs, params, res, ctx)
            tr = tr.parent
        return res


def _below(tr):
    """The interpreter under a chain of tracers: the nearest enclosing one that is not a Tracer
    (a vmap layer, jitgrad/batching.py, which runs the op batched) or None. The tracers up to it
    record the op as their function called it; those beyond it see the ops it runs."""
    tr = tr.parent
    while tr is not None and type(tr) is Tracer:
        tr = tr.parent
    return tr


def trace(func, inputs):
    """Run ``func(*inputs)`` under a new tracer; returns (tracer, outputs)."""
    with Tracer() as tr:
        for x in inputs:
            tr.add_input(x)
        outs = func(*inputs)
    return tr, outs
