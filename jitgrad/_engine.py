"""_engine: graph nodes (``grad_fn`` objects) and the iterative backward sweep.

A node's ``next_edges`` holds, per input, the input's ``grad_fn`` node, an ``AccumulateGrad`` node
for a leaf that requires grad, or ``None``. The sweep counts dependencies with an explicit stack
(a 100,000-op chain never touches the recursion limit) and then runs nodes in Kahn order,
summing gradients that meet at a node before running it.
"""
from __future__ import annotations

import sys
import threading
import weakref

import numpy as np

from . import _state as grad_mode
from . import _debug, lazy
from .backends import BACKENDS, _DEVICE_OF_TYPE
from .ops import ELEMENTWISE

# The Tensor class, registered by _tensor.py when it defines it (the engine sits below the class
# in the layer order: it makes gradient Tensors and checks hook results, nothing more).
Tensor = None


def register_tensor_class(cls) -> None:
    global Tensor
    Tensor = cls


def device_key(t) -> str:
    """The key in ``backends.BACKENDS`` of the device a Tensor's value lives (or will be
    computed) on: "cpu" or "cuda"."""
    a = t._arr
    if a is None:
        lz = t._lazy
        if lz is not None:
            return lz.device
        a = t._arr  # (another thread settled t just now: it sets _arr before clearing _lazy)
    return "cpu" if type(a) is np.ndarray else _DEVICE_OF_TYPE.get(type(a), "cpu")


def all_on_cpu(*ts) -> bool:
    """Whether every Tensor in ``ts`` lives (or will be computed) on the CPU: the condition of
    the CPU-only fused nodes and njit records (GPU tensors take their composed paths)."""
    for t in ts:
        if device_key(t) != "cpu":
            return False
    return True


def _is_cuda(t) -> bool:
    """Whether a Tensor's value lives (or will be computed) on the GPU."""
    return device_key(t) == "cuda"

_FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward.")


class Node:
    """Base of every ``grad_fn``. Subclasses are named after torch's nodes (``MulBackward0``)."""

    __slots__ = ("next_edges", "saved_versions", "released", "retained", "chain",
                 "__weakref__")

    def __init__(self, next_edges):
        self.next_edges = next_edges
        self.saved_versions = None    # ((version_cell, version, tensor), ...) checked at backward
        self.released = False
        self.retained = None          # the tensor's hooks and retain_grad (TensorHooks)
        self.chain = None             # a ChainDerivative when this node tops a unary chain

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__} object at {id(self):#x}>"

    @property
    def next_functions(self):
        return tuple((e, 0) for e in self.next_edges)

    def check_saved(self):
        if self.released:
            raise RuntimeError(_FREED_MSG)
        sv = self.saved_versions
        if sv:
            for cell, version, t in sv:
                if cell[0] != version:
                    arr = t._meta
                    raise RuntimeError(
                        "one of the variables needed for gradient computation has been modified "
                        f"by an inplace operation: [{arr[1]} tensor of shape {list(arr[0])}], "
                        f"which is needed "
                        f"by {self.name()}, is at version {cell[0]}; expected version {version} "
                        "instead.")

    def release(self):
        """Free what backward needed (called after backward unless retain_graph)."""

    def apply(self, g, create_graph: bool):  # pragma: no cover - abstract
        raise NotImplementedError


class ChainDerivative:
    """What the top node of a unary elementwise chain holds when the forward computed the
    chain's derivative along with its value (``_tensor._chain_derivatives``, at a depth cut):
    ``d`` = d(top's output)/d(start), elementwise; ``start`` the edge below the chain's bottom
    node; ``inner`` the chain's other nodes, top down. The sweep then sends ``g * d`` to
    ``start`` at once instead of running every node of the chain, whose VJPs would recompute
    the chain from the stored segment start (see lazy.MAX_DEPTH) -- but only while the chain
    is private to this sweep: every inner node has this chain as its one consumer, no
    gradient from elsewhere, no hooks (``_chain_holds``)."""

    __slots__ = ("d", "start", "inner")

    def __init__(self, d, start, inner):
        self.d, self.start, self.inner = d, start, inner


def _chain_holds(ch, deps, pending) -> bool:
    for m in ch.inner:
        if deps.get(m) != 1 or m in pending or m.retained is not None:
            return False
    return True


_node_classes: dict = {}


def node_class(base: type, name: str) -> type:
    """The subclass of ``base`` called ``name`` (so that repr shows ``<AddBackward0 ...>``)."""
    key = (base, name)
    cls = _node_classes.get(key)
    if cls is None:
        cls = type(name, (base,), {"__slots__": ()})
        _node_classes[key] = cls
    return cls


class AccumulateGrad(Node):
    """Sink for a leaf tensor: adds the incoming gradient into ``variable.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        super().__init__(())
        self.variable = variable

    def apply(self, g, create_graph, deferred=None):
        rec = grad_mode.STATE.recorder
        if rec is not None:  # (jitgrad.compile is recording: it runs and logs the .grad update)
            return rec.accumulate(self, g, create_graph, deferred)
        return accumulate_into_grad(self.variable, g, create_graph, deferred, _SWEEP_REFS)

    def __call__(self):
        """A leaf with hooks holds its AccumulateGrad itself in ``_accum`` (else a weakref to
        it): calling either gives the node, so grad_edge reads both alike."""
        return self


class TensorHooks:
    """A tensor's hooks, kept in its node's ``retained`` slot (the grad_fn of a non-leaf, the
    AccumulateGrad of a leaf): ``pre`` — ``register_hook`` functions, run in order on the
    gradient before it is used (a returned tensor replaces it); ``retain`` — a weakref to the
    non-leaf whose ``.grad`` is kept (``retain_grad``; filled after the hooks, like torch);
    ``post`` — a leaf's post-accumulate-grad hooks, called with the leaf after its ``.grad``
    is updated. Nodes without hooks keep ``retained`` None: the sweep pays one attribute read."""

    __slots__ = ("pre", "retain", "post")

    def __init__(self):
        from collections import OrderedDict
        self.pre = OrderedDict()
        self.retain = None
        self.post = OrderedDict()

    def run(self, g):
        for hook in tuple(self.pre.values()):
            r = hook(g)
            if r is None:
                continue
            if not isinstance(r, Tensor):
                raise TypeError(f"hook '{_hook_name(hook)}' returned a {type(r).__name__}; "
                                "expected a Tensor or None")
            (shape, dt), (rshape, rdt) = g._meta, r._meta
            if rshape != shape:
                raise RuntimeError(f"hook '{_hook_name(hook)}' has changed the size of value "
                                   f"(was {list(shape)}, got {list(rshape)})")
            if rdt != dt:
                raise RuntimeError(f"hook '{_hook_name(hook)}' has changed the type of value "
                                   f"(was {dt}, got {rdt})")
            if device_key(r) != device_key(g):
                raise RuntimeError(f"hook '{_hook_name(hook)}' has changed the device of value "
                                   f"(was {g.device}, got {r.device})")
            g = r
        return g


def _hook_name(hook) -> str:
    return getattr(hook, "__name__", type(hook).__name__)


def hooks_of(node) -> TensorHooks:
    """The node's TensorHooks, made on first use."""
    hs = node.retained
    if hs is None:
        hs = node.retained = TensorHooks()
    return hs


# References to the gradient Tensor while run_backward hands it to a leaf: run_backward's local,
# AccumulateGrad.apply's and accumulate_into_grad's arguments, and getrefcount's own (CPython
# 3.11 counting; tests/test_autograd.py checks both outcomes). More means somebody else (the
# caller's ``gradient=``, another pending edge, a capture) holds it.
_SWEEP_REFS = 4


def _unshared(g, arr, refs) -> bool:
    """Whether ``g`` (seen by ``refs`` references: its callers' frames) and its ndarray ``arr``
    are held by nothing else, so that the new ``.grad`` may take ``arr`` instead of a copy (as
    torch's AccumulateGrad steals a gradient nobody else holds). ``arr`` must own its memory:
    no view of another array, and no other array viewing it (that would add a reference).
    Counted here: one more reference to ``g`` (this call's argument); ``arr`` is held by g,
    the caller's local, this call's argument and getrefcount's."""
    return (type(arr) is np.ndarray and arr.base is None and arr.flags.writeable
            and sys.getrefcount(g) <= refs + 1 and sys.getrefcount(arr) <= 4)


# One lock per leaf, like torch's AccumulateGrad mutex, so that backward calls from several
# threads into one leaf add up: striped by the leaf's id (Tensor has no slot for a lock; two
# leaves sharing a stripe only take turns). Re-entrant: accumulate_into_grad and _add_in_place
# call each other under it.
_LEAF_LOCKS = tuple(threading.RLock() for _ in range(64))


def _leaf_lock(t):
    return _LEAF_LOCKS[(id(t) >> 4) & 63]


def accumulate_into_grad(t, g, create_graph, deferred=None, steal_refs=0):
    """Add ``g`` into ``t.grad`` (in place when it exists, like torch). Returns a pending new
    ``.grad`` for the caller to compute; a pending ``g`` into an existing ``.grad`` is appended
    to ``deferred`` (when given) so that every leaf of one backward is computed together.
    ``steal_refs``: how many references the callers hold to ``g``; when nothing else does, a
    new ``.grad`` takes g's array without copying it (0: always copy). Under the leaf's lock."""
    with _LEAF_LOCKS[(id(t) >> 4) & 63]:  # (_leaf_lock, inlined: every leaf's path)
        gshape, gdt = g._meta
        tshape, tdt = t._meta
        if gshape != tshape:
            raise RuntimeError(f"gradient of shape {tuple(gshape)} does not match tensor of shape "
                               f"{tuple(tshape)}")
        if gdt != tdt:
            g = g.to(t.dtype)
        if t.grad is None:
            if create_graph:
                t.grad = g
            elif g._arr is None and g._lazy.value is None:
                if steal_refs and sys.getrefcount(g) <= steal_refs:
                    # pending and held by nobody but the sweep (steal_refs counts this frame's
                    # argument and getrefcount's): it becomes the .grad (no second record, so no
                    # second accumulator in the kernel that computes it)
                    t.grad = g
                    _debug.count("grads_stolen")
                    return g
                # pending: a record of its own (g * 1, or a second accumulator of the same sum;
                # free inside the fused kernel), so the new .grad never shares storage with g,
                # which other inputs' grads may be
                lz = g._lazy
                ops = lz.operands  # (read before value: another thread may compute g meanwhile)
                if lz.row is None and lz.value is None and ops:
                    own = lazy.Lazy(None, ops, lz.shape, lz.dtype, lz.cdt, lz.axes,
                                    lz.keepdim, lz.scale)
                else:
                    own = lazy.Lazy(ELEMENTWISE["mul"], (g, 1), lz.shape, lz.dtype, lz.cdt)
                t.grad = lazy.make_lazy(Tensor, own)
                return t.grad
            else:
                arr = g._data
                if steal_refs and _unshared(g, arr, steal_refs):
                    t.grad = Tensor._make(arr)
                    _debug.count("grads_stolen")
                else:
                    t.grad = Tensor._make(arr.copy())
        elif create_graph or t.grad.requires_grad:
            t.grad = t.grad + g
        elif deferred is not None and g._arr is None and g._lazy.value is None:
            deferred.append((t, g))
        else:
            _add_in_place([(t, g)])


def _add_in_place(pairs):
    """``t.grad += g`` for each pair (under the leaf's lock), after computing every pending
    value that may still read the old ``.grad``."""
    lazy.flush()
    for t, g in pairs:
        gd = g._data
        with _leaf_lock(t):
            cur = t.grad
            if cur is None or cur.requires_grad:  # (reset or replaced by another thread)
                accumulate_into_grad(t, g, False)
                continue
            acc = cur._data
            acc += gd


def grad_edge(t):
    """The edge a consumer of ``t`` records: its grad_fn, its AccumulateGrad, or None."""
    fn = t.grad_fn
    if fn is not None:
        return fn
    if not t.requires_grad:
        return None
    ref = t._accum
    acc = ref() if ref is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._accum = weakref.ref(acc)
    return acc


def run_backward(roots, retain_graph: bool, create_graph: bool, capture=None, accumulate=True):
    """roots: [(node, grad Tensor)]. capture: {node: slot} whose incoming grads are returned
    (``autograd.grad``); with ``accumulate=False`` leaves' ``.grad`` are left alone and, like
    torch, only the nodes on a path to a captured node run (no other leaf's hooks, no
    gradients nobody asked for)."""
    rec = grad_mode.STATE.recorder  # (jitgrad.compile recording: it logs each node's VJP)
    if rec is not None:
        rec = rec.sweep(create_graph, capture, accumulate)
    deps: dict = {}
    stack = []
    for n, _ in roots:
        if n not in deps:
            deps[n] = 0
            stack.append(n)
    # parents: each node's consumers, kept only when autograd.grad needs the nodes on the way
    parents = {} if capture is not None and not accumulate else None
    while stack:
        n = stack.pop()
        for e in n.next_edges:
            if e is None:
                continue
            c = deps.get(e)
            if c is None:
                deps[e] = 1
                stack.append(e)
                if parents is not None:
                    parents[e] = [n]
            else:
                deps[e] = c + 1
                if parents is not None:
                    parents.setdefault(e, []).append(n)  # (e may be a root: no list yet)
    execute = needed = None  # the nodes to run / to pass a gradient on to (None: all)
    if parents is not None:
        execute = set()
        stack = [n for n in capture if n in deps]
        while stack:  # every ancestor of a captured node runs
            for p in parents.get(stack.pop(), ()):
                if p not in execute:
                    execute.add(p)
                    stack.append(p)
        needed = execute.union(capture)
    pending: dict = {}
    for n, g in roots:
        _add_pending(pending, n, g)
    captured = {}
    lazy_grads = []
    deferred = []  # (leaf, pending gradient) to add into an existing .grad at the end
    ready = [n for n in dict.fromkeys(n for n, _ in roots) if deps[n] == 0]
    with grad_mode.set_grad_enabled(create_graph), lazy.backward_depth():
        while ready:
            n = ready.pop()
            edges = n.next_edges  # (where grads go: a contracted chain's start instead)
            g = pending.pop(n, None)
            hs = n.retained  # the tensor's hooks (TensorHooks), or None
            if hs is not None and g is not None and hs.pre:
                g = hs.run(g)
            if capture is not None and n in capture and g is not None:
                captured[capture[n]] = g
            if g is None or (execute is not None and n not in execute):
                grads = (None,) * len(n.next_edges)
                if g is not None and hs is not None and hs.retain is not None:
                    _retain(hs, g, create_graph, deferred, lazy_grads)
            elif isinstance(n, AccumulateGrad):
                if accumulate:
                    if hs is not None and hs.post:  # added now: the hooks see the new .grad
                        lz = n.apply(g, create_graph)
                        for hook in tuple(hs.post.values()):
                            hook(n.variable)
                    else:
                        lz = n.apply(g, create_graph, deferred)
                    if lz is not None:
                        lazy_grads.append(lz)
                grads = ()
            else:
                if hs is not None and hs.retain is not None:  # (autograd.grad too, like torch)
                    _retain(hs, g, create_graph, deferred, lazy_grads)
                ch = n.chain
                if ch is not None and capture is None and not create_graph and \
                        (rec is None or hs is None) and lazy.CHAIN_DERIVATIVES and \
                        _chain_holds(ch, deps, pending):
                    # (under jitgrad.compile a hooked node goes to rec.node_apply, which stops
                    # the recording: hooks are not replayed)
                    n.check_saved()  # (the errors the chain's own VJPs would raise)
                    for m in ch.inner:
                        m.check_saved()
                    edges, grads = (ch.start,), (g * ch.d,)
                    if not retain_graph:
                        for m in ch.inner:
                            m.release()
                else:
                    grads = n.apply(g, create_graph) if rec is None else \
                        rec.node_apply(n, g, create_graph)
                if not retain_graph:
                    n.release()
            for e, gi in zip(edges, grads):
                if e is None:
                    continue
                if gi is not None and (needed is None or e in needed):
                    _add_pending(pending, e, gi)
                c = deps[e] - 1
                deps[e] = c
                if c == 0:
                    ready.append(e)
            grads = gi = g = None  # (no stale reference to a gradient: see _SWEEP_REFS)
    if lazy_grads or deferred:  # every leaf gradient of this sweep in as few kernels as possible
        lazy.realize_many(lazy_grads + [g for _, g in deferred])
        if deferred:
            _add_in_place(deferred)
    return captured


def _retain(hs, g, create_graph, deferred, lazy_grads):
    """Accumulate ``g`` into the ``.grad`` of the non-leaf that called retain_grad()."""
    t = hs.retain()
    if t is not None:
        lz = accumulate_into_grad(t, g, create_graph, deferred)
        if lz is not None:
            lazy_grads.append(lz)


def _add_pending(pending, n, g):
    prev = pending.get(n)
    pending[n] = g if prev is None else prev + g
