"""lazy: deferred elementwise ops and their realisation as fused kernels.

With fusion on (the default; ``JITGRAD_FUSION=0`` or ``set_fusion(False)`` turns it off), an
elementwise op returns a Tensor whose ``_arr`` is None and whose ``_lazy`` records the registry
row and the operands. Nothing runs until a value is observed (``_data``): then
:func:`realize_many` schedules every requested tensor whose iteration space is the same into
one generated kernel — a DAG of rows rendered through ``codegen`` (a value used twice is
computed once), leaves read with broadcast masks, and full or reduced outputs (``sum``/``mean``
over all or some dims folded into the same loop).

The backward of elementwise nodes is recorded the same way (their rules applied to lazy
Tensors), so a chain of VJPs becomes one kernel that recomputes the forward intermediates from
the group's inputs instead of saving them. In-place writes flush every pending lazy tensor first
so that eager semantics hold.
"""
from __future__ import annotations

import os
import weakref
from math import prod

import numpy as np

from . import _debug, codegen
from .backends import cpu

ENABLED = os.environ.get("JITGRAD_FUSION", "0") != "0"
MAX_GROUP = 256          # rows per fused kernel; a larger DAG realises an operand first
_pending: list = []      # weakrefs to lazy tensors not yet realised (flushed on in-place writes)


def set_fusion(enabled: bool) -> None:
    """Turn lazy fusion on or off (pending values are realised first)."""
    global ENABLED
    flush()
    ENABLED = bool(enabled)


def is_fusion_enabled() -> bool:
    return ENABLED


class Lazy:
    """One deferred op: an elementwise row over operands, or a sum over ``axes`` of one operand
    (``row`` None). ``shape``/``dtype`` describe the result; ``size`` bounds the group."""

    __slots__ = ("row", "operands", "shape", "dtype", "cdt", "size", "axes", "keepdim", "scale")

    def __init__(self, row, operands, shape, dtype, cdt, axes=None, keepdim=False, scale=None):
        self.row = row
        self.operands = operands
        self.shape = shape
        self.dtype = dtype        # numpy dtype of the result
        self.cdt = cdt            # numpy dtype the row computes in
        self.axes = axes
        self.keepdim = keepdim
        self.scale = scale        # mean: divide the sum by this
        n = 1
        for o in operands:
            lz = getattr(o, "_lazy", None)
            if lz is not None:
                n += lz.size
        self.size = n


def make_lazy(tensor_cls, lazy: Lazy):
    t = tensor_cls._make(None)
    t._lazy = lazy
    _pending.append(weakref.ref(t))
    if len(_pending) > 4096:
        _pending[:] = [r for r in _pending if (x := r()) is not None and x._arr is None]
    return t


def flush() -> None:
    """Realise every pending lazy tensor (before an in-place write, say)."""
    if not _pending:
        return
    live = [x for r in _pending if (x := r()) is not None and x._arr is None]
    _pending.clear()
    if live:
        realize_many(live)


def _unbroadcast_leaf(a: np.ndarray) -> np.ndarray:
    """A stride-0 (expanded) view becomes the small array it was expanded from, keeping dims,
    so the kernel reads it through a broadcast mask instead of an N-d strided walk."""
    st = a.strides
    if a.size > 1 and 0 in st:
        a = a[tuple(slice(0, 1) if s == 0 else slice(None) for s in st)]
    return a


class _Plan:
    """The canonical form of one fused group: leaves, rows and outputs (and its cache key)."""

    def __init__(self, roots, space):
        self.space = space
        self.leaves = []          # arrays / scalars passed to the kernel
        self.leaf_ids = {}
        self.nodes = []           # (Lazy, operand refs)
        self.node_ids = {}
        for r in roots:
            lz = r._lazy
            src = lz.operands[0] if lz.row is None else r
            self._visit(src)
        self.outs = []
        for r in roots:
            lz = r._lazy
            if lz.row is None:
                self.outs.append(("sum", self._ref(lz.operands[0]), lz.axes))
            else:
                self.outs.append(("full", self._ref(r), None))

    def _ref(self, o):
        lz = getattr(o, "_lazy", None) if not isinstance(o, (int, float, bool)) else None
        if lz is not None and o._arr is None:
            return ("n", self.node_ids[id(lz)])
        if isinstance(o, (int, float, bool, np.number)):
            k = len(self.leaves)
            self.leaves.append(o)
            return ("l", k)
        k = self.leaf_ids.get(id(o))
        if k is None:
            k = self.leaf_ids[id(o)] = len(self.leaves)
            self.leaves.append(o)
        return ("l", k)

    def _visit(self, root):
        """Iterative post-order over the lazy DAG below ``root``."""
        stack = [(root, False)]
        while stack:
            t, done = stack.pop()
            lz = t._lazy
            if lz is None or t._arr is not None or id(lz) in self.node_ids:
                continue
            if done:
                refs = tuple(self._ref(o) for o in lz.operands)
                self.node_ids[id(lz)] = len(self.nodes)
                self.nodes.append((lz, refs))
                continue
            stack.append((t, True))
            for o in reversed(lz.operands):
                if hasattr(o, "_lazy") and o._lazy is not None and o._arr is None:
                    stack.append((o, False))


def realize(t) -> np.ndarray:
    realize_many([t])
    return t._arr


def realize_many(tensors) -> None:
    """Compute every lazy tensor in ``tensors``; those sharing an iteration space share a kernel."""
    groups: dict = {}
    seen = set()
    for t in tensors:
        if t._arr is not None or id(t) in seen:
            continue
        seen.add(id(t))
        lz = t._lazy
        space = lz.operands[0]._lazy.shape if lz.row is None and lz.operands[0]._arr is None \
            else lz.shape
        if lz.row is None and lz.operands[0]._arr is not None:
            _realize_reduce_of_concrete(t)
            continue
        groups.setdefault(space, []).append(t)
    for space, roots in groups.items():
        _run_group(roots, space)


def _realize_reduce_of_concrete(t):
    lz = t._lazy
    src = lz.operands[0]._arr
    out = cpu.reduce_sum(src, lz.axes, np.float64 if src.dtype.kind == "f" else np.int64)
    _finish_reduce(t, out)


def _finish_reduce(t, acc):
    lz = t._lazy
    if lz.scale is not None:
        acc = acc / lz.scale if lz.scale else np.full(acc.shape, np.nan)
    out = np.asarray(acc).astype(lz.dtype, copy=False).reshape(lz.shape)
    t._arr = out
    t._lazy = None


def _leaf_kind(a, space, nd):
    if not isinstance(a, np.ndarray):
        return "c", None, a
    a = _unbroadcast_leaf(a)
    if a.ndim < nd:
        a = a.reshape((1,) * (nd - a.ndim) + a.shape)
    if a.size == 1:
        return "s", None, a
    mask = tuple(a.shape[d] == 1 and space[d] != 1 for d in range(nd))
    return "a", mask, a


def _run_group(roots, space):
    plan = _Plan(roots, space)
    nd = len(space)
    leaves, kinds, masks = [], [], []
    for lv in plan.leaves:
        arr = lv._arr if hasattr(lv, "_arr") else lv
        kind, mask, arr = _leaf_kind(arr, space, nd)
        leaves.append(arr)
        kinds.append(kind)
        masks.append(mask)
    partial = any(o[0] == "sum" and len(o[2]) != nd for o in plan.outs)
    flat = not partial and all(
        k != "a" or (not any(m) and a.flags.c_contiguous)
        for k, m, a in zip(kinds, masks, leaves))
    if flat:
        masks = [None] * len(masks)
    key = ("fused", nd, flat,
           tuple((k, m, a.dtype.str if isinstance(a, np.ndarray) else type(a).__name__)
                 for k, m, a in zip(kinds, masks, leaves)),
           tuple((lz.row.name, lz.cdt.str, refs) for lz, refs in plan.nodes),
           tuple((kind, ref, axes) for kind, ref, axes in plan.outs))
    kern = cpu._kernels.get(key)
    if kern is None:
        kern = _build(key, plan, kinds, masks, leaves, nd, flat, space)
    outs = []
    for (kind, ref, axes), r in zip(plan.outs, roots):
        if kind == "full":
            outs.append(np.empty(space, r._lazy.dtype))
        elif len(axes) == nd:
            outs.append(np.zeros(1, np.float64 if r._lazy.dtype.kind == "f" else np.int64))
        else:
            kshape = tuple(1 if d in axes else s for d, s in enumerate(space))
            outs.append(np.zeros(kshape, np.float64 if r._lazy.dtype.kind == "f"
                                 else np.int64))
    if prod(space):
        _debug.COUNTERS["kernel_launches"] += 1
        no_full = all(k != "full" for k, _, _ in plan.outs)
        if not flat and nd and no_full:
            kern(*leaves, *outs, space)
        elif flat and no_full and "a" not in kinds:  # only scalar leaves: pass the length
            kern(*leaves, *outs, prod(space))
        else:
            kern(*leaves, *outs)
    for (kind, _, axes), r, o in zip(plan.outs, roots, outs):
        if kind == "full":
            r._arr = o
            r._lazy = None
        else:
            _finish_reduce(r, o)


def _build(key, plan, kinds, masks, leaves, nd, flat, space):
    em = codegen.Emitter()
    loads = []
    leaf_syms = []
    for k, (kind, mask, a) in enumerate(zip(kinds, masks, leaves)):
        loads.append(codegen.Load(f"a{k}", f"x{k}", kind, False, mask))
        leaf_syms.append(codegen.Sym(em, f"x{k}"))
    node_vals = []
    for lz, refs in plan.nodes:
        cast = f"np.{lz.cdt.name}"
        args = []
        for j, ref in enumerate(refs):
            if ref[0] == "n":
                v, vdt = node_vals[ref[1]], plan.nodes[ref[1]][0].dtype
            else:
                v = leaf_syms[ref[1]]
                a = leaves[ref[1]]
                vdt = a.dtype if isinstance(a, np.ndarray) else None
            if j in lz.row.bool_inputs:
                args.append(v)
            elif vdt is None or vdt != lz.cdt:
                args.append(em.let(f"{cast}({v.name})"))
            else:
                args.append(v)
        em.T = cast
        res = lz.row.fwd(codegen.SYM_MATH, *args)
        if not isinstance(res, codegen.Sym):
            res = em.let(em.operand(res))
        if lz.dtype != lz.cdt:  # comparisons: bool out
            res = em.let(f"np.{lz.dtype.name}({res.name})")
        node_vals.append(res)
    em.T = "T"
    results = []
    for kind, ref, axes in plan.outs:
        v = node_vals[ref[1]] if ref[0] == "n" else leaf_syms[ref[1]]
        results.append((kind, v.name, axes))
    name = "fused_fwd"
    src = codegen.render_fused(name, loads, em.lines, results, None if flat else nd)
    return cpu.compile_source(key, src, name, "float64")
