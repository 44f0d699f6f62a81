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

Threads (README "Threading model"): each thread records into its own pending lists and has its
own fusion and depth-limit overrides (grad_mode.STATE); a record needed by several threads is
computed once (claims, below); in-place writes still compute every thread's pending readers.

Scheduling policy, all in this module: small ops run eagerly (FUSE_MIN); a pending sum whose
operand a kernel computes anyway rides along in it (``_add_free_riders``); pending depth is
bounded at record time (MAX_DEPTH) and a DAG over MAX_GROUP rows runs in post-order chunks
(``_realize_in_chunks``); large, heavy flat loops run in parallel (``_layout``).
"""
from __future__ import annotations

import contextlib
import os
import threading
import weakref
from math import prod

import numpy as np

from . import _debug, codegen
from ._state import STATE
from .backends import ARRAY_TYPES, BACKENDS, backend_of, cpu, device_of
from .backends.cuda import DeviceArray

_SCALAR = object()  # (marks an operand without ``_arr``: a Python or NumPy scalar)
_ARRAYS = ARRAY_TYPES  # what a leaf that is an array (not a Python scalar) can be
cb = BACKENDS["cuda"]  # (its kernels import numba.cuda on first use only)

ENABLED = os.environ.get("JITGRAD_FUSION", "1") != "0"
# Ops on fewer elements than this run eagerly unless an operand is already pending: below it,
# planning a fused group costs more Python time than the kernels it saves (W3 tutorial: 1.7x
# slower fused). ``JITGRAD_FUSE_MIN=0`` fuses everything (the test suite runs both ways).
# Measured: W2's 128x256 tanh(a + b) took 125 us fused vs 79 us eager (fusion made the MLP step
# 25% slower), while W1 at 1e5 elements is even and wins from there on.
FUSE_MIN = int(os.environ.get("JITGRAD_FUSE_MIN", 1 << 16))
# A thread's fusion switch (grad_mode.STATE.fusion) set to FUSE_ALL records every elementwise op
# lazily whatever its size: jitgrad.compile while it records a step (planning is paid once there,
# so FUSE_MIN's reason does not hold for the replays).
FUSE_ALL = "all"
MAX_GROUP = 256          # rows per fused kernel; a larger DAG runs as several (in post-order)
# An op whose pending operand is MAX_DEPTH rows deep computes that operand first. A long chain
# so becomes segments whose ends are stored; the fused backward of a segment recomputes it from
# its stored start (few rows, few kernel operands) instead of storing every value in it.
MAX_DEPTH = 64
# During a backward sweep the limit is higher: a VJP chain's depth includes the forward segment
# it recomputes (up to MAX_DEPTH), so a lower limit would cut it every few steps near the top of
# a segment and recompute that segment each time.
MAX_DEPTH_BACKWARD = 2 * MAX_DEPTH
depth_limit = MAX_DEPTH
# A segment cut on a unary elementwise chain (sin(y * 1.01)...) also computes the chain's
# derivative, so the backward multiplies by it instead of recomputing the segment
# (_tensor._chain_derivatives, _engine.ChainDerivative). False: every segment recomputes.
CHAIN_DERIVATIVES = True

# Large flat kernels run on all cores (chunks of PAR_BLOCK = 4096 elements on cpu.POOL; at
# least 8 chunks) ...
PARALLEL = os.environ.get("JITGRAD_PARALLEL", "1") != "0"
PAR_MIN = int(os.environ.get("JITGRAD_PAR_MIN", 1 << 15))
# ... and only when the kernel has enough work (elements x rows, a transcendental row counting
# HEAVY_ROW): waking the thread pool costs up to milliseconds on a loaded 2-core machine, so an
# SGD update of 200k weights (two arithmetic rows) ran 10x slower in parallel than serially.
# (A sleeping worker joins a launch 18-100 us after it is posted, a spinning one at once; the
# caller takes chunks meanwhile, so a late worker costs nothing.) At 1 << 22 a kernel's serial
# time is ~0.2 ms and up: W1 at 1e5 (f32 / f64) went 476 -> 423 / 777 -> 564 us per step when
# it began to run in parallel.
PAR_MIN_WORK = 1 << 22
# A kernel with a transcendental row is compute-bound: two threads pay from half that work
# (on 2 cores, 3 alternating processes: W1 replayed at 65,536 elements, weight 48, float32
# 116 -> 69 us, float64 274 -> 153; exp over 2^18 float32 79 -> 54 us). Light kernels keep
# PAR_MIN_WORK: memory-bound, they gain little or lose (an axpy over 2^20 float32 took
# 128 us serially and 160 in parallel).
PAR_MIN_WORK_HEAVY = 1 << 21
HEAVY_ROW = 8
_HEAVY = frozenset(("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sigmoid",
                    "gelu", "silu", "erf", "pow", "bce_with_logits", "bce", "erfc",
                    "log2", "log10", "exp2", "sinh", "cosh", "asinh", "acosh", "atanh",
                    "asin", "acos", "atan", "atan2", "hypot", "logaddexp", "fmod",
                    "remainder", "floor_divide", "div_trunc", "xlogy", "xlog1py", "logit",
                    "sinc", "lgamma", "digamma", "polygamma", "erfinv"))


def runs_parallel(size: int, rows) -> bool:
    """Whether a flat CPU kernel of ``rows`` over ``size`` elements takes the chunk form."""
    if not PARALLEL or size < PAR_MIN:
        return False
    heavy = sum(r.name in _HEAVY for r in rows)
    work = size * (len(rows) + (HEAVY_ROW - 1) * heavy)
    return work >= PAR_MIN_WORK or (heavy > 0 and work >= PAR_MIN_WORK_HEAVY)


# --- per-thread state ----------------------------------------------------------------------
# Each thread records into its own pending lists (grad_mode.STATE.pending, a _Pending): a
# thread's kernels take only its own pending sums along (_add_free_riders), and flush/compaction
# touch only its own lists. In-place writes must still see every thread's pending values
# (eager semantics), so every thread's _Pending is also listed in _THREADS (read-only for the
# other threads: they copy a list before scanning it).


class _Pending:
    """One thread's weakrefs to its lazy tensors not yet realised (``refs``) and to the pending
    reductions among them (``sums``, candidates to ride along in a kernel)."""

    __slots__ = ("refs", "sums", "thread")

    def __init__(self):
        self.refs: list = []
        self.sums: list = []
        self.thread = weakref.ref(threading.current_thread())

    def live(self) -> bool:
        """Whether this entry is still needed in _THREADS: its thread runs, or it holds pending
        tensors (a thread that ended may have handed them to others)."""
        th = self.thread()
        if th is not None and th.is_alive():
            return True
        return any((x := r()) is not None and x._arr is None for r in list(self.refs))


# every thread's _Pending (kept while live()); replaced, never changed in place, so a reader
# iterates a consistent list without a lock
_THREADS: list = []
_THREADS_LOCK = threading.Lock()


def _thread_pending() -> _Pending:
    """This thread's _Pending (made and registered on its first record)."""
    global _THREADS
    p = STATE.pending
    if p is None:
        p = STATE.pending = _Pending()
        with _THREADS_LOCK:
            _THREADS = [q for q in _THREADS if q.live()] + [p]
    return p


def _all_pending() -> tuple:
    """(this thread's pending tensors, other threads' pending tensors); this thread's list is
    compacted on the way. Other threads' tensors are computed but never settled here (their
    records get the values; see realize_many's ``settle``)."""
    own_p = STATE.pending
    own, others = [], []
    for p in _THREADS:
        refs = list(p.refs)
        live = [r for r in refs if (x := r()) is not None and x._arr is None]
        if p is own_p:
            p.refs[:] = live  # (keeps the scans short in a loop of in-place updates)
        (own if p is own_p else others).extend(x for r in live if (x := r()) is not None)
    return own, others


def current_depth_limit() -> int:
    """The pending depth at which an op computes its operand first, for the calling thread."""
    d = STATE.depth_limit
    return depth_limit if d is None else d


@contextlib.contextmanager
def backward_depth(limit=None):
    """Use MAX_DEPTH_BACKWARD (or ``limit``) in this thread while VJPs are recorded: by the
    engine's sweep, or by a depth cut's chain derivative (``limit`` MAX_GROUP)."""
    st = STATE
    prev, st.depth_limit = st.depth_limit, MAX_DEPTH_BACKWARD if limit is None else limit
    try:
        yield
    finally:
        st.depth_limit = prev


def set_fusion(enabled: bool, min_size: int | None = None) -> None:
    """Turn lazy fusion on or off for the whole process (pending values are realised first);
    ``min_size`` sets FUSE_MIN, the element count from which ops are recorded (0: fuse
    everything). A thread inside a tracer or ``recording_only`` keeps its own switch until it
    leaves them."""
    global ENABLED, FUSE_MIN
    flush()
    ENABLED = bool(enabled)
    if min_size is not None:
        FUSE_MIN = int(min_size)


def is_fusion_enabled() -> bool:
    """Whether ops in the calling thread are recorded lazily: its own switch (a tracer or
    ``recording_only`` in this thread) or else the process-wide ``ENABLED``."""
    f = STATE.fusion
    return ENABLED if f is None else f


@contextlib.contextmanager
def recording_only():
    """Record elementwise ops lazily inside the block even when fusion is off (used by
    ``jitgrad.explain`` to see the backward groups without running them); this thread only."""
    st = STATE
    prev, st.fusion = st.fusion, True
    try:
        yield
    finally:
        st.fusion = prev


class Lazy:
    """One deferred op: an elementwise row over operands, or a sum over ``axes`` of one operand
    (``row`` None). ``shape``/``dtype`` describe the result. ``value`` holds the array once
    computed, so every Tensor sharing this record (a saved output, a lazy ``.grad``) sees it.
    ``claim``: the _Claim of the realisation computing it now (other threads wait for it)."""

    __slots__ = ("row", "operands", "shape", "dtype", "cdt", "axes", "keepdim", "scale",
                 "value", "depth", "device", "claim")

    def __init__(self, row, operands, shape, dtype, cdt, axes=None, keepdim=False, scale=None):
        self.row = row
        self.operands = operands
        self.shape = shape
        self.dtype = dtype        # numpy dtype of the result
        self.cdt = cdt            # numpy dtype the row computes in
        self.axes = axes
        self.keepdim = keepdim
        self.scale = scale        # mean: divide the sum by this
        self.value = None
        self.claim = None
        d = 0
        device = "cpu"
        for o in operands:
            lz = getattr(o, "_lazy", None)  # (operands may be Python scalars)
            if lz is not None and o._arr is None:
                if lz.value is None and lz.depth > d:  # pending
                    d = lz.depth
                if lz.device != "cpu":
                    device = lz.device
            else:
                a = getattr(o, "_arr", None)
                if a is not None and type(a) is not np.ndarray:
                    device = device_of(a)
        self.depth = d + 1        # longest pending path below (bounds recompute, see MAX_DEPTH)
        self.device = device      # the backend that computes it (operands were checked to agree)


def make_lazy(tensor_cls, lazy: Lazy):
    t = tensor_cls._make(None)
    t._lazy = lazy
    ref = weakref.ref(t)
    p = STATE.pending
    if p is None:
        p = _thread_pending()
    refs = p.refs
    refs.append(ref)
    if lazy.row is None:
        p.sums.append(ref)
    if len(refs) > 4096:
        refs[:] = [r for r in refs if (x := r()) is not None and x._arr is None]
    return t


def flush() -> None:
    """Realise every pending lazy tensor, this thread's and other threads' (before an in-place
    write, say: eager semantics), and wait for the kernels other threads are running."""
    if STATE.recorder is not None:  # (jitgrad.compile: every caller writes outside run_now)
        STATE.recorder.stop("an in-place write outside the recorded operations (setitem, "
                            "copy_, fill_, an in-place op on a tensor that requires grad)")
    if any(p.refs for p in _THREADS):
        mine, others = _all_pending()
        own = STATE.pending
        if own is not None:
            own.refs.clear()
            own.sums.clear()
        if mine:
            realize_many(mine)
        if others:
            realize_many(others, settle=False)
    _wait_for_others()


def _unbroadcast_leaf(a: np.ndarray) -> np.ndarray:
    """A stride-0 (expanded) view becomes the small array it was expanded from, keeping dims,
    so the kernel reads it through a broadcast mask instead of an N-d strided walk."""
    st = a.strides
    if a.size > 1 and 0 in st:
        if any(st):
            a = a[tuple(slice(0, 1) if s == 0 else slice(None) for s in st)]
        else:  # one element seen everywhere (a gradient of a sum, say): quickly
            a = a[(_FIRST,) * len(st)]
    return a


_FIRST = slice(0, 1)


def _pending_node(o):
    """The Lazy record of ``o`` if it is a Tensor whose value is still to be computed."""
    lz = getattr(o, "_lazy", None)  # (operands may be Python scalars)
    if lz is None or lz.value is not None or o._arr is not None:
        return None
    return lz


class _Computed(Exception):
    """A sum root got its value from another thread while being planned (its operands are
    gone): plan again without it."""


class _Plan:
    """The canonical form of one fused group: leaves, rows and outputs (and its cache key).

    ``nodes`` are the pending rows in post-order (operands first), each with operand refs
    ``("n", node index)`` or ``("l", leaf index)``; ``leaves`` are the arrays and Python
    scalars the kernel reads (an array used twice is passed once)."""

    def __init__(self, roots, space):
        self.space = space
        self.device = roots[0]._lazy.device
        self.leaves = []
        self.leaf_ids = {}
        self.nodes = []           # (Lazy, operand refs)
        self.node_ids = {}
        self.outs = []
        self.alias = None         # {0: leaf param} when the first output is written into a leaf
        self.riders = []          # the pending sums riding along (settled with the roots)
        for r in roots:
            self.add_root(r)

    def add_root(self, r):
        lz = r._lazy
        if lz.row is None:
            ops = lz.operands
            if not ops:  # computed meanwhile by another thread (nothing added yet)
                raise _Computed
            self._visit(ops[0])
            self.outs.append(("sum", self._ref(ops[0]), lz.axes))
        else:
            self._visit(r)
            self.outs.append(("full", self._ref(r), None))

    def try_add_root(self, r, max_new: int) -> bool:
        """Add ``r`` only if that adds at most ``max_new`` rows and no new array operand."""
        n_nodes, n_leaves = len(self.nodes), len(self.leaves)
        self.add_root(r)
        if len(self.nodes) - n_nodes <= max_new and not any(
                isinstance(a, _ARRAYS) and a.size > 1 for a in self.leaves[n_leaves:]):
            return True
        for lz, _ in self.nodes[n_nodes:]:
            del self.node_ids[id(lz)]
        for a in self.leaves[n_leaves:]:
            self.leaf_ids.pop(id(a), None)
        del self.nodes[n_nodes:], self.leaves[n_leaves:]
        self.outs.pop()
        return False

    def _ref(self, o):
        a = getattr(o, "_arr", _SCALAR)
        if a is _SCALAR:  # a Python or NumPy scalar operand
            k = len(self.leaves)
            self.leaves.append(o)
            return ("l", k)
        if a is None:
            lz = o._lazy
            if lz is None:  # (settled by another thread meanwhile)
                a = o._arr
            elif lz.value is None:
                return ("n", self.node_ids[id(lz)])
            else:
                a = lz.value
        k = self.leaf_ids.get(id(a))
        if k is None:
            k = self.leaf_ids[id(a)] = len(self.leaves)
            self.leaves.append(a)
        return ("l", k)

    def _visit(self, root):
        """Iterative post-order over the pending DAG below ``root``: records are pushed (scalar
        operands are leaves), each opened once, and a record's operand refs are taken inline
        (``_ref``'s cases, without a call per operand: W1's backward group plans ~20% faster)."""
        node_ids, nodes, leaves, leaf_ids = self.node_ids, self.nodes, self.leaves, self.leaf_ids
        lz = root._lazy
        if lz is None or lz.value is not None or root._arr is not None or id(lz) in node_ids:
            return
        stack = [lz]
        opened = set()
        while stack:
            lz = stack[-1]
            k = id(lz)
            if k in node_ids or lz.value is not None:  # (a shared operand; or computed meanwhile
                stack.pop()                              # by another thread: a leaf then)
                continue
            ops = lz.operands
            if k not in opened:  # push the pending operands, first operand on top
                opened.add(k)
                n = len(stack)
                for o in reversed(ops):
                    if getattr(o, "_arr", 0) is None:
                        olz = o._lazy
                        if olz is not None and olz.value is None and id(olz) not in node_ids:
                            stack.append(olz)
                if len(stack) > n:
                    continue
            stack.pop()
            refs = []
            for o in ops:  # (as _ref)
                a = getattr(o, "_arr", _SCALAR)
                if a is None:
                    olz = o._lazy
                    if olz is None:  # (settled by another thread meanwhile)
                        a = o._arr
                    elif olz.value is None:
                        refs.append(("n", node_ids[id(olz)]))
                        continue
                    else:
                        a = olz.value
                elif a is _SCALAR:  # a Python or NumPy scalar operand
                    refs.append(("l", len(leaves)))
                    leaves.append(o)
                    continue
                j = leaf_ids.get(id(a))
                if j is None:
                    j = leaf_ids[id(a)] = len(leaves)
                    leaves.append(a)
                refs.append(("l", j))
            node_ids[k] = len(nodes)
            nodes.append((lz, tuple(refs)))

def realize(t) -> np.ndarray:
    realize_many([t])
    return t._arr


def _settle(t) -> bool:
    """Take a computed record's value into ``t``; True when ``t`` is now concrete. (Another
    thread may settle ``t`` at the same time: the record is read once, and a record's value,
    once set, never changes.)"""
    if t._arr is not None:
        return True
    lz = t._lazy
    if lz is None:  # settled by another thread just now
        return t._arr is not None
    v = lz.value
    if v is None:
        return False
    t._arr = v
    t._lazy = None
    return True


def _value_of(t):
    """The array of a computed tensor, without settling it (it may be another thread's)."""
    a = t._arr
    if a is None:
        lz = t._lazy
        a = t._arr if lz is None else lz.value
    return a


def _space(lz):
    """The iteration space of a pending record's kernel: its own shape, or for a sum the shape
    of the pending value it sums; None for a sum of an already computed array (no kernel)."""
    if lz.row is not None:
        return lz.shape
    ops = lz.operands
    src = _pending_node(ops[0]) if ops else None  # (no operands: computed meanwhile)
    return None if src is None else src.shape


# --- realising once across threads ----------------------------------------------------------
# A realisation claims the records it will store (the roots it was asked for, the pending sums
# that ride along, the rows _realize_in_chunks stores) before planning; another thread that
# needs one of them waits for its value instead of computing it again. Only a thread that holds
# no claim waits: a thread inside a realisation that meets a record claimed elsewhere computes
# it as well (the first value stored wins, ``_give_value``), so no two threads ever wait for
# each other. Kernels run outside every lock (they release the GIL): threads realising
# different records run in parallel.


class _Claim:
    """One realisation in progress: its thread and the records it claimed."""

    __slots__ = ("thread", "records")

    def __init__(self):
        self.thread = threading.get_ident()
        self.records = []


_CLAIM_LOCK = threading.Lock()  # guards Lazy.claim, _ACTIVE and _waiters
_CLAIMS = threading.Condition(_CLAIM_LOCK)  # (the same lock) waited on for values
_ACTIVE: set = set()   # the _Claims of realisations in progress (any thread)
_waiters = 0           # threads waiting on _CLAIMS (notified when a realisation ends)


def _private(t, lz):
    """A tensor of ``t``'s class on record ``lz`` that only this realisation sees: what it
    plans and stores through, so that another thread settling ``t`` meanwhile changes nothing
    here (``t`` itself is settled from the record afterwards). Only ``_arr`` and ``_lazy`` are
    set: nothing else is read here."""
    p = object.__new__(type(t))
    p._arr = None
    p._lazy = lz
    return p


def _release(claim) -> None:
    with _CLAIM_LOCK:
        for lz in claim.records:
            if lz.claim is claim:
                lz.claim = None
        _ACTIVE.discard(claim)
        if _waiters:
            _CLAIMS.notify_all()


def _wait_for(records) -> None:
    """Wait until each record has a value or nobody computes it any more."""
    global _waiters
    with _CLAIMS:
        _waiters += 1
        try:
            for lz in records:
                while lz.value is None and lz.claim is not None:
                    _CLAIMS.wait()
        finally:
            _waiters -= 1


def _wait_for_others() -> None:
    """Before an in-place write: wait for every realisation other threads are running now (a
    kernel planned before this write may still be reading the memory it overwrites)."""
    global _waiters
    if not _ACTIVE or STATE.claim is not None:  # (holding claims: never wait)
        return
    me = threading.get_ident()
    with _CLAIMS:
        running = [c for c in _ACTIVE if c.thread != me]
        if not running:
            return
        _waiters += 1
        try:
            while any(c in _ACTIVE for c in running):
                _CLAIMS.wait()
        finally:
            _waiters -= 1


def realize_many(tensors, settle: bool = True) -> None:
    """Compute every lazy tensor in ``tensors``; those sharing an iteration space share a kernel.
    A record another thread is computing is waited for (see "realising once" above).
    ``settle=False`` (other threads' tensors): only their records get values; each tensor
    takes it when its own thread next looks (``_settle``), so no thread sees its tensors
    change under it."""
    while True:
        wait = _realize_claimed(tensors)
        if settle:
            for t in tensors:
                if t._arr is None:
                    _settle(t)
        if not wait:
            return
        _wait_for(wait)
        # (not "still pending": a record that got its value while this thread waited must be
        # settled by the next round here -- its computing thread may not have settled the
        # shared tensor yet, and ``realize`` returns ``t._arr``)
        tensors = [t for t in tensors if t._arr is None]


def _realize_claimed(tensors) -> list:
    """Claim and compute what ``tensors`` need; returns the records other threads are
    computing, for the caller to wait for."""
    st = STATE
    outer = st.claim
    claim = _Claim()
    mine, wait, seen, records = [], [], set(), claim.records
    with _CLAIM_LOCK:
        for t in tensors:
            lz = t._lazy
            if lz is None or t._arr is not None or lz.value is not None or id(lz) in seen:
                continue
            seen.add(id(lz))
            c = lz.claim
            if c is None:
                lz.claim = claim
                records.append(lz)
            elif outer is None and c.thread != claim.thread:
                wait.append(lz)
                continue
            mine.append((t, lz))  # (claimed by an outer realisation of this thread, or by
            # another thread while this one holds claims: computed here too)
        if records:
            _ACTIVE.add(claim)
    if not mine:
        return wait
    if records:
        st.claim = claim
    try:
        groups: dict = {}
        for t, lz in mine:
            p = _private(t, lz)
            space = _space(lz)
            if space is None:
                _realize_reduce_of_concrete(p)
                continue
            groups.setdefault((space, lz.device), []).append(p)
        for (space, _), roots in groups.items():
            _run_group(roots, space)
    finally:
        if records:
            st.claim = outer
            with _CLAIM_LOCK:  # (_release, inlined: this is every realisation's path)
                for lz in records:
                    if lz.claim is claim:
                        lz.claim = None
                _ACTIVE.discard(claim)
                if _waiters:
                    _CLAIMS.notify_all()
    return wait


def _realize_reduce_of_concrete(t):
    lz = t._lazy
    ops = lz.operands
    if lz.value is not None:  # (computed meanwhile by another thread)
        _give_value(t, lz.value)
        return
    src = _value_of(ops[0])
    acc_t = np.float64 if src.dtype.kind == "f" else np.int64
    _finish_reduce(t, backend_of(src).reduce_sum(src, lz.axes, acc_t))
    if STATE.recorder is not None:  # (jitgrad.compile: replayed as one op)
        STATE.recorder.reduced(src, lz)


def _give_value(t, value):
    """Make the pending ``t`` concrete: its record keeps the value (for other tensors that share
    the record) and lets go of its operands (and what they keep alive). A record another
    thread computed first keeps that thread's value: every tensor sharing it sees one value."""
    lz = t._lazy
    if lz is None:
        return
    if lz.value is None:
        lz.value = value
        lz.operands = ()
    t._arr = lz.value
    t._lazy = None


def _finish_reduce(t, acc):
    """Store a reduction's float64/int64 accumulator as the record's value (divided by the
    mean's count, cast and shaped). (A fused CUDA group finishes its per-block partial sums
    itself: CudaLaunch.)"""
    lz = t._lazy
    if type(acc) is DeviceArray:
        out = cb.empty(lz.shape, lz.dtype)
        cb.scale_cast(acc, out, lz.scale)
        _give_value(t, out)
        return
    _give_value(t, _reduced(acc, lz.dtype, lz.shape, lz.scale))


def _reduced(acc, dtype, shape, scale):
    """A CPU reduction's float64/int64 accumulator as the result: divided by the mean's count
    (``scale``; 0 elements: NaN like torch), cast and shaped."""
    if scale is not None:
        acc = acc / scale if scale else np.full(acc.shape, np.nan)
    return np.asarray(acc).astype(dtype, copy=False).reshape(shape)


def _leaf_kind(a, space, nd):
    if not isinstance(a, _ARRAYS):
        return "c", None, a
    if a.shape == space and a.flags.c_contiguous and a.size > 1:  # the common case, quickly
        return "a", (False,) * nd, a
    a = _unbroadcast_leaf(a)
    if a.ndim < nd:
        a = a.reshape((1,) * (nd - a.ndim) + a.shape)
    if a.size == 1:
        return "s", None, a
    mask = tuple(a.shape[d] == 1 and space[d] != 1 for d in range(nd))
    return "a", mask, a


def _realize_in_chunks(plan, tensor_cls):
    """A DAG larger than MAX_GROUP rows runs as several kernels of at most MAX_GROUP rows, in
    post-order; a row read by a later chunk is stored (its record gets a value), so no row is
    computed twice and compile time per kernel stays bounded."""
    n = len(plan.nodes)
    last = list(range(n))
    for j, (_, refs) in enumerate(plan.nodes):
        for r in refs:
            if r[0] == "n":
                last[r[1]] = j
    for _, ref, _ in plan.outs:  # a root (or a summed root) is stored where it is computed
        if ref[0] == "n":
            last[ref[1]] = n
    for s in range(0, n - MAX_GROUP, MAX_GROUP):
        e = s + MAX_GROUP
        temps = []
        for i in range(s, e):
            if last[i] >= e:
                t = tensor_cls._make(None)
                t._lazy = plan.nodes[i][0]
                temps.append(t)
        realize_many(temps)


RIDER_MAX_NEW = 8  # rows a pending sum may add to a kernel to ride along


def _add_free_riders(plan, roots, nd):
    """Pending full sums (a loss, say) of values this kernel can compute from what it reads
    anyway are added to it: one accumulator and a few rows here, instead of a second pass
    over the data later. Only this thread's pending sums ride, and none that another
    realisation claimed; those added are claimed by this thread's realisation. Returns the
    tensors added (private ones, see _private; ``plan.riders`` lists the originals)."""
    found = []
    live = []
    taken = {id(r._lazy) for r in roots}
    own = STATE.pending
    for ref in own.sums:
        t = ref()
        if t is None:
            continue
        lz = t._lazy
        if lz is None or lz.value is not None or t._arr is not None:
            continue
        live.append(ref)
        ops = lz.operands
        if lz.claim is not None or not ops:  # another realisation is computing it
            continue
        src = _pending_node(ops[0])
        if src is not None and len(lz.axes) == nd and src.shape == plan.space \
                and id(lz) not in taken and lz.device == plan.device:
            p = _private(t, lz)
            try:
                ok = plan.try_add_root(p, min(RIDER_MAX_NEW, MAX_GROUP - len(plan.nodes)))
            except _Computed:
                ok = False
            if ok:
                taken.add(id(lz))
                found.append(p)
                plan.riders.append(t)
    own.sums[:] = live
    claim = STATE.claim
    if found and claim is not None:
        with _CLAIM_LOCK:
            for p in found:
                lz = p._lazy
                if lz.claim is None:  # (else: claimed meanwhile; computed here as well)
                    lz.claim = claim
                    claim.records.append(lz)
    return found


def _layout(plan):
    """Decide how the kernel reads each leaf and which loop it runs; sets the plan's cache key.

    Flat (1-D loop) when every array leaf is C-contiguous with the iteration space's shape
    or has one element and no output is a partial sum; otherwise an N-d loop with broadcast
    masks. Large flat loops run in parallel."""
    space = plan.space
    nd = len(space)
    leaves, kinds, masks, sig = [], [], [], []
    flat = True
    for lv in plan.leaves:
        kind, mask, arr = _leaf_kind(lv, space, nd)
        leaves.append(arr)
        kinds.append(kind)
        masks.append(mask)
        if kind == "a":
            sig.append((kind, mask, arr.dtype))
            if flat and (True in mask or not arr.flags.c_contiguous):
                flat = False
        else:
            sig.append((kind, mask, arr.dtype if kind == "s" else type(arr)))
    for o in plan.outs:
        if o[0] == "sum" and len(o[2]) != nd:  # a partial sum needs the N-d loop
            flat = False
    if flat:
        masks = [None] * len(masks)
        sig = [(k, None, d) for k, _, d in sig]
    plan.size = size = prod(space)
    plan.par = par = flat and plan.device == "cpu" and \
        runs_parallel(size, [lz.row for lz, _ in plan.nodes])
    plan.args, plan.kinds, plan.masks, plan.flat = leaves, kinds, masks, flat
    plan.key = ("fused" if plan.device == "cpu" else plan.device, nd, flat, par, tuple(sig),
                tuple([(lz.row.name, lz.cdt, refs) for lz, refs in plan.nodes]),
                tuple(plan.outs))


def _finish_plan(plan, roots):
    """Let pending sums ride along and lay the plan out; returns the roots with the riders."""
    own = STATE.pending
    if own is not None and own.sums:
        roots = list(roots) + _add_free_riders(plan, roots, len(plan.space))
    _layout(plan)
    return roots


def _claim_one(lz):
    """A new _Claim holding the one record ``lz`` (registered as active), or None when ``lz`` is
    computed already or another realisation is computing it."""
    claim = _Claim()
    with _CLAIM_LOCK:
        if lz.value is not None or lz.claim is not None:
            return None
        lz.claim = claim
        claim.records.append(lz)
        _ACTIVE.add(claim)
    return claim


def realize_into(t, out) -> bool:
    """Compute the pending elementwise value ``t`` straight into the array ``out`` (an ndarray,
    or a DeviceArray for a GPU value), the target of an in-place op (``p -= lr * p.grad``
    becomes one kernel that reads p and writes p, with no temporary and no copy). Every other
    pending value that reads ``out``'s memory is computed first, from the old contents.
    Returns False, computing nothing, when that is not safe: another array the kernel reads
    overlaps ``out`` (a view of it), or the layout or dtype differ."""
    lz = _pending_node(t)
    if lz is None or lz.row is None or lz.device != device_of(out) or \
            not isinstance(out, _ARRAYS) or lz.shape != out.shape or lz.dtype != out.dtype or \
            not out.flags.c_contiguous or not out.flags.writeable:
        return False
    realize_readers(out, skip=t)
    st = STATE
    claim = _claim_one(lz)
    if claim is None:
        return False
    outer, st.claim = st.claim, claim
    try:
        p = _private(t, lz)
        plan = _Plan([p], lz.shape)  # (elementwise: never _Computed)
        if len(plan.nodes) > MAX_GROUP:
            return False
        for a in plan.leaves:  # reading out itself is safe: each element is read before it is
            if a is not out and _overlaps(a, out):  # written
                return False
        _run_group([p], lz.shape, into=out, plan=plan)
    finally:
        st.claim = outer
        with _CLAIM_LOCK:  # (_release, inlined: every in-place update of a pending value)
            for r in claim.records:
                if r.claim is claim:
                    r.claim = None
            _ACTIVE.discard(claim)
            if _waiters:
                _CLAIMS.notify_all()
    _settle(t)
    return True


# An in-place update below this many elements whose pending operand is one elementwise record
# over computed operands (``p -= lr * g``) computes that operand as one eager kernel
# (realize_now) and then runs the update eagerly into its target, instead of planning the two
# rows as a fused group: planning costs ~25 us, more than the temporary saves below ~2^18
# float32 elements (p -= 0.01 * g: 65,536 elements 34 -> 16 us; 200,704: 44 -> 40 us; at
# 2^20 the fused kernel wins, 105 against 148 us).
INPLACE_NOW_MAX = 1 << 18


def realize_now(t) -> bool:
    """Compute the pending ``t`` now with one eager kernel (``run_now``) when it is a single
    elementwise CPU record whose operands are all computed and nobody else is computing it;
    False (nothing done) otherwise."""
    lz = _pending_node(t)
    if lz is None or lz.row is None or lz.device != "cpu":
        return False
    ops = lz.operands
    for o in ops:
        if _pending_node(o) is not None:
            return False
    claim = _claim_one(lz)
    if claim is None:
        return False
    outer, STATE.claim = STATE.claim, claim
    try:
        (v,) = run_now((lz.row,), ops, lz.shape, prod(lz.shape), lz.dtype, lz.cdt)
        _give_value(_private(t, lz), v)
    finally:
        STATE.claim = outer
        _release(claim)
    _settle(t)
    return True


def realize_readers(arr, skip=None) -> None:
    """Compute every pending value (but ``skip``) that reads memory ``arr`` overlaps, from its
    current contents: ``arr`` is about to be overwritten in place."""
    # (_all_pending, inlined and fused with the filter: this runs before every in-place write,
    # so lists that are empty, the common case, cost one truthiness test each)
    own_p = STATE.pending
    mine = others = None
    for p in _THREADS:
        refs = p.refs
        if not refs:
            continue
        if p is own_p:  # compacted on the way (keeps a loop of in-place updates' scans short)
            live = [r for r in refs if (x := r()) is not None and x._arr is None]
            refs[:] = live
            mine = [x for r in live if (x := r()) is not None and x is not skip
                    and _pending_node(x) is not None and _reads(x, arr)]
        else:  # another thread's list: copied before the scan, never changed here
            found = [x for r in list(refs) if (x := r()) is not None and x is not skip
                     and _pending_node(x) is not None and _reads(x, arr)]
            if found:
                others = found if others is None else others + found
    if mine:
        realize_many(mine)
    if others:
        realize_many(others, settle=False)
    if _ACTIVE:  # (_wait_for_others' own first test, here to save the call)
        _wait_for_others()


def _overlaps(a, b) -> bool:
    """Whether two leaves may share memory (GPU arrays: views of the same root array)."""
    if type(a) is DeviceArray and type(b) is DeviceArray:
        return (a if a._owner is None else a._owner) is (b if b._owner is None else b._owner)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.may_share_memory(a, b)
    return False


def _reads(t, arr) -> bool:
    """Whether computing the pending ``t`` reads memory that ``arr`` overlaps."""
    stack, seen = [t], set()
    while stack:
        lz = _pending_node(stack.pop())
        if lz is None or id(lz) in seen:
            continue
        seen.add(id(lz))
        for o in lz.operands:
            if _pending_node(o) is not None:
                stack.append(o)
                continue
            a = getattr(o, "_arr", None)
            olz = getattr(o, "_lazy", None)
            if a is None and olz is not None:
                a = olz.value
            if isinstance(a, _ARRAYS) and _overlaps(a, arr):
                return True
    return False


def _new_plan(roots, space):
    """(the roots still pending, their _Plan), or (.., None) when none is left."""
    while True:
        roots = [r for r in roots if not _settle(r)]
        if not roots:
            return roots, None
        try:
            return roots, _Plan(roots, space)
        except _Computed:
            pass


def _run_group(roots, space, into=None, plan=None):
    """Plan, compile (once) and launch one fused kernel for ``roots``; ``into``: an array the
    first root is computed into (realize_into, which passes the plan of its one pending root,
    at most MAX_GROUP rows)."""
    if plan is None:
        roots, plan = _new_plan(roots, space)  # an earlier group may have computed some
        if plan is None:
            return
    if len(plan.nodes) > MAX_GROUP:
        _realize_in_chunks(plan, type(roots[0]))
        roots, plan = _new_plan(roots, space)
        if plan is None:
            return
    roots = _finish_plan(plan, roots)
    if plan.device != "cpu":
        _DEVICE_RUNNERS[plan.device](plan, roots, into)
        for t in plan.riders:
            _settle(t)
        return
    _set_alias(plan, into)
    kern = _cpu_kernel(plan)
    outs = _new_outs(plan, [r._lazy.dtype for r in roots], into)
    if plan.size:
        _launch(kern, _call_form(plan), plan.args, outs, plan.space, plan.size)
    rec = STATE.recorder
    lzs = [r._lazy for r in roots] if rec is not None else None
    for (kind, _, axes), r, o in zip(plan.outs, roots, outs):
        if kind == "full":
            _give_value(r, o)
        else:
            _finish_reduce(r, o)
    if rec is not None:  # (jitgrad.compile: this launch is one replayed op)
        rec.fused(plan, kern, lzs, outs, into)
    for t in plan.riders:
        _settle(t)


def _set_alias(plan, into):
    """The kernel writes its first (full) output into the leaf that is ``into`` (codegen's
    ``alias``: an in-place update), when ``into`` is a leaf read per element unbroadcast."""
    if into is None:
        return
    for k, a in enumerate(plan.args):
        if a is into and plan.kinds[k] == "a" and \
                (plan.masks[k] is None or True not in plan.masks[k]):
            plan.alias = {0: f"a{k}"}
            plan.key = plan.key + (("into", k),)
            return


def _cpu_kernel(plan):
    """The compiled CPU kernel of a laid-out plan (rendered and compiled once per key)."""
    kern = cpu._kernels.get(plan.key)
    if kern is None:
        wrap = None
        if plan.par:  # the chunk form, run on cpu.POOL (see cpu.ChunkedKernel)
            n_loads = len(plan.args)
            params = [j for j in range(len(plan.outs)) if not plan.alias or j not in plan.alias]
            sums = [n_loads + k for k, j in enumerate(params) if plan.outs[j][0] == "sum"]
            outs = [n_loads + k for k, j in enumerate(params) if plan.outs[j][0] == "full"]
            full = outs
            if plan.alias:  # (the aliased output is its leaf)
                full = [int(plan.alias[0][1:])] + full
            arrays = [k for k, kind in enumerate(plan.kinds) if kind == "a"]
            size_at = (full or arrays or [n_loads + len(params)])[0]
            wrap = lambda d: cpu.ChunkedKernel(d, sums, size_at, outs)  # noqa: E731
        src = _render(plan)
        kern = cpu.compile_source(plan.key, src, "fused_fwd", "float64", noalias=True,
                                  wrap=wrap, interleave=plan.interleave)
    return kern


def _call_form(plan) -> str:
    """How the kernel is called beyond its leaves and outputs (see codegen.render_fused):
    'shape' (N-d, no full output), 'n' (flat, scalar leaves only: the length), 'alias' (the
    first output is a leaf it already has) or '' (leaves, outputs)."""
    no_full = all(k != "full" for k, _, _ in plan.outs)
    if not plan.flat and plan.space and no_full:
        return "shape"
    if plan.flat and no_full and "a" not in plan.kinds:
        return "n"
    return "alias" if plan.alias is not None else ""


def _new_outs(plan, dtypes, into=None):
    """Fresh output arrays for a CPU plan's outputs (``into`` for the first full one): full
    values of the iteration space, float64/int64 accumulators for sums (keepdim-shaped for
    partial sums)."""
    space = plan.space
    nd = len(space)
    outs = []
    for (kind, _, axes), dt in zip(plan.outs, dtypes):
        if kind == "full":
            outs.append(into if into is not None and not outs else np.empty(space, dt))
        else:
            acc_t = np.float64 if dt.kind == "f" else np.int64
            outs.append(np.zeros(1 if len(axes) == nd else
                                 tuple(1 if d in axes else s for d, s in enumerate(space)),
                                 acc_t))
    return outs


def _launch(kern, form, leaves, outs, space, size):
    _debug.COUNTERS["kernel_launches"] += 1
    if form == "":
        kern(*leaves, *outs)
    elif form == "alias":  # outs[0] is a leaf the kernel already has
        kern(*leaves, *outs[1:])
    elif form == "shape":
        kern(*leaves, *outs, space)
    else:  # only scalar leaves: pass the length
        kern(*leaves, *outs, size)


# ---------------------------------------------------------------------------------------------
# Eager execution: records realised at once, through the same planner and codegen.


class _Leaf:
    """What the planner reads of a Tensor, for records realised at once: a concrete operand
    (``_arr``) or a root standing for a record (``_lazy``)."""

    __slots__ = ("_arr", "_lazy")

    def __init__(self, arr, lz=None):
        self._arr = arr
        self._lazy = lz


class _Once:
    """A laid-out plan of records realised at once, replayable for operands of the same
    signature: its kernel, call form, which operand each kernel leaf is (None: in order), its
    outputs (None: a full value; else a sum's accumulator dtype)."""

    __slots__ = ("kern", "form", "alias", "src", "outs")


_ONCE: dict = {}  # signature (run_now) -> _Once
ONCE_MAX = 4096
_ONE_FULL = (None,)
_COUNTERS = _debug.COUNTERS
_once_evicted = 0  # cpu._kernels' eviction count when _ONCE was last valid


def run_now(rows, ops, space, size, dtype, cdt, reduce=None, keep_full=True,
            into=None) -> list:
    """Eager execution: records of ``rows`` (registry rows, or VJP rows) that all read
    ``ops`` (Tensors, arrays, Python scalars) over ``space`` (``size`` elements), realised at
    once.

    The first time a signature is seen (rows, dtypes, each operand's kind/broadcast
    mask/contiguity, ndim, in-place alias, reduce), real records are planned, laid out and
    rendered like a fused group (``_Plan``, ``_layout``, ``render_fused``); later calls replay
    that plan, so an eager op costs one pass over its operands plus the kernel call. (Every
    operand is a leaf of its own here, an array read twice too: telling repeats apart would
    cost every call more than the extra kernel argument costs the rare repeat.) Returns the
    rows' full values (without them when not ``keep_full``), then the first row's reduction
    (``reduce`` 'sum'|'mean', over all dims). ``into``: an array the first full value is
    written into (in place when it is an operand). A pending Tensor operand is computed first.

    The replay holds its kernel: when cpu._kernels (an LRU) drops any kernel, every replay is
    forgotten and planned again on its next use (so a dropped kernel is loaded again)."""
    rec = STATE.recorder
    if rec is not None:  # (jitgrad.compile is recording: it runs this and logs the kernel)
        return rec.run_now(rows, ops, space, size, dtype, cdt, reduce, keep_full, into)
    nd = len(space)
    sig = [rows, cdt, dtype, nd, reduce, keep_full]
    args = []  # what the kernel reads per operand (a broadcast one as its small array)
    alias = -1
    flat = True
    for o in ops:
        v = getattr(o, "_arr", o)  # (a Tensor's array; arrays and scalars are themselves)
        if type(v) is not np.ndarray:
            if v is None:
                v = realize(o)
            elif not isinstance(v, np.ndarray):  # a Python scalar
                sig.append(type(v))
                args.append(v)
                continue
        if v.shape == space and size > 1 and v.flags.c_contiguous:  # (as _leaf_kind)
            sig.append(v.dtype)
            if v is into and alias < 0:
                alias = len(args)
        elif v.size and not any(v.strides):  # one element, seen everywhere (as _leaf_kind)
            if v.ndim:
                v = v[(_FIRST,) * v.ndim]
            if v.ndim < nd:
                v = v.reshape((1,) * nd)
            sig.append(("s", v.dtype))
        else:
            kind, mask, v = _leaf_kind(v, space, nd)
            c = v.flags.c_contiguous
            sig.append((kind, mask, v.dtype, c))
            if kind == "a" and (True in mask or not c):
                flat = False
        args.append(v)
    par = flat and runs_parallel(size, rows)
    sig += (alias, par)
    sig = tuple(sig)
    ent = _ONCE.get(sig)
    if ent is None or _COUNTERS.get("kernels_evicted", 0) != _once_evicted:
        ent = _replan(sig, rows, args, space, dtype, cdt, reduce, keep_full, into)
    if ent.src is not None:
        args = [args[j] for j in ent.src]
    if ent.outs is _ONE_FULL:  # (the common case, quickly)
        o = np.empty(space, dtype) if into is None else into
        if size:
            _COUNTERS["kernel_launches"] += 1
            if ent.alias:
                ent.kern(*args)
            else:
                ent.kern(*args, o)
        return [o]
    if reduce is None and into is None:  # full values only (a node's VJPs)
        outs = [np.empty(space, dtype)]
        for _ in range(1, len(ent.outs)):
            outs.append(np.empty(space, dtype))
        if size:
            _COUNTERS["kernel_launches"] += 1
            ent.kern(*args, *outs)
        return outs
    outs = []
    for spec in ent.outs:
        if spec is None:
            outs.append(into if into is not None and not outs else np.empty(space, dtype))
        else:
            outs.append(np.zeros(1, spec))
    if size:
        _launch(ent.kern, ent.form, args, outs, space, size)
    if reduce is not None:
        outs[-1] = _reduced(outs[-1], dtype, (), size if reduce == "mean" else None)
    return outs


def _replan(sig, rows, args, space, dtype, cdt, reduce, keep_full, into):
    """Plan, lay out and compile the records of :func:`run_now` (a group of one record, or of
    a node's VJP records, with a reduction riding along) and remember the replay. ``args``:
    the operands as the kernel reads them (every array a leaf of its own)."""
    global _once_evicted
    ev = _COUNTERS.get("kernels_evicted", 0)
    if ev != _once_evicted or len(_ONCE) >= ONCE_MAX:
        _ONCE.clear()  # (their kernels may be gone from cpu._kernels)
        _once_evicted = ev
    leaves, seen = [], set()
    for v in args:
        if isinstance(v, np.ndarray):
            if id(v) in seen:  # (a view of its own, so that the planner keeps it apart)
                v = v.view()
            seen.add(id(v))
            v = _Leaf(v)
        leaves.append(v)
    roots = [_Leaf(None, Lazy(r, leaves, space, dtype, cdt)) for r in rows]
    if reduce is not None:
        red = Lazy(None, (roots[0],), (), dtype, cdt, axes=tuple(range(len(space))))
        roots = (roots if keep_full else []) + [_Leaf(None, red)]
    plan = _Plan(roots, space)
    _layout(plan)  # (no pending sums ride along: this group is not pending work)
    _set_alias(plan, into)
    ent = _Once()
    ent.form = _call_form(plan)
    ent.alias = ent.form == "alias"
    src = [None] * len(plan.leaves)
    for _, refs in plan.nodes:  # every record reads the operands in order
        for j, ref in enumerate(refs):
            if ref[0] == "l":
                src[ref[1]] = j
    ent.src = None if src == list(range(len(args))) else tuple(src)
    outs = tuple([None if kind == "full" else (np.float64 if dtype.kind == "f" else np.int64)
                  for kind, _, _ in plan.outs])
    ent.outs = _ONE_FULL if outs == _ONE_FULL else outs
    ent.kern = _cpu_kernel(plan)
    if _COUNTERS.get("kernels_evicted", 0) == _once_evicted:
        _ONCE[sig] = ent  # (else compiling it dropped another: _ONCE is cleared next call)
    return ent


def _ref_dtype(plan, ref) -> np.dtype:
    """The dtype of a row or leaf of a laid-out plan (a Python scalar leaf counts as float64)."""
    if ref[0] == "n":
        return plan.nodes[ref[1]][0].dtype
    a = plan.args[ref[1]]
    return a.dtype if isinstance(a, _ARRAYS) else np.dtype(np.float64)


def _render(plan) -> str:
    """The kernel source of a laid-out plan (rows rendered through the registry rules), for the
    CPU (render_fused) or the GPU (render_cuda)."""
    if plan.device == "cuda":
        loads, lines, results = _render_parts(plan, codegen.FUNC_SRC_CUDA)
        return codegen.render_cuda("fused_fwd", loads, lines, results,
                                   None if plan.flat else len(plan.space))
    dtypes = {}
    loads, lines, results = _render_parts(plan, codegen.FUNC_SRC, dtypes)
    ndim = None if plan.flat else len(plan.space)
    plan.interleave = codegen.loop_interleave(loads, lines, results, ndim, dtypes)
    return codegen.render_fused("fused_fwd", loads, lines, results, ndim, parallel=plan.par,
                                alias=plan.alias, var_dtypes=dtypes)


def _render_parts(plan, funcs, dtypes=None):
    """(loads, body lines, results) of a laid-out plan, for either target's renderer;
    ``dtypes`` (a dict) gets each row's result variable -> its dtype name."""
    kinds, masks, leaves, nd = plan.kinds, plan.masks, plan.args, len(plan.space)
    em = codegen.Emitter(funcs)
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
                vdt = a.dtype if isinstance(a, _ARRAYS) else None
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
        if dtypes is not None and res.name not in dtypes:
            dtypes[res.name] = lz.dtype.name
        node_vals.append(res)
    em.T = "T"
    results = []
    for kind, ref, axes in plan.outs:
        v = node_vals[ref[1]] if ref[0] == "n" else leaf_syms[ref[1]]
        results.append((kind, v.name, axes, _ref_dtype(plan, ref).name))
    return loads, em.lines, results


def _run_plan_cuda(plan, roots, into=None):
    """Launch a laid-out plan as one numba.cuda kernel (codegen.render_cuda) and store its
    results; full sums come back as per-block partials and finish in a second small kernel."""
    kern = cb._kernels.get(plan.key)
    if kern is None:
        kern = cb.compile_source(plan.key, _render(plan), "fused_fwd", "float64")
    launch = CudaLaunch(plan, kern, [r._lazy for r in roots])
    values = launch(plan.args, into)
    for r, v in zip(roots, values):
        _give_value(r, v)
    rec = STATE.recorder
    if rec is not None:  # (jitgrad.compile: this launch is one replayed op)
        rec.fused_device(plan, launch, values, into)


def _can_specialize() -> bool:
    """Whether numba can specialise a CUDA kernel to argument types here (not the simulator)."""
    return not cb.simulated()


class CudaLaunch:
    """Everything static about one laid-out CUDA plan (kernel, grid, operand kinds, output
    specs): called with the plan's leaves it launches the kernel, finishes its sums and returns
    each root's value. The eager runner calls it once; jitgrad.compile's replay calls the same
    object with the replayed leaves (no planning, no kernel lookup)."""

    __slots__ = ("kern", "kinds", "flat", "space", "size", "outs", "nblocks", "specs", "launch",
                 "specialize")

    def __init__(self, plan, kern, lzs):
        space, nd, flat = plan.space, len(plan.space), plan.flat  # (a 0-d space is flat)
        self.kern, self.kinds, self.flat, self.space, self.size = \
            kern, tuple(plan.kinds), flat, space, plan.size
        self.outs = tuple(plan.outs)
        red = {d for kind, _, axes in plan.outs if kind == "sum" and len(axes) != nd
               for d in axes}
        n_loop = plan.size if flat else prod(s for d, s in enumerate(space) if d not in red)
        self.nblocks = cb.blocks_for(n_loop)
        # the launch configuration, made once (numba's kernel[grid, block] object: a replay
        # calls it directly)
        self.launch = kern[self.nblocks, cb.threads()]
        self.specialize = False  # (set by jitgrad.compile's recorder: see __call__)
        # per root: (result shape, dtype, mean's scale)
        self.specs = tuple((lz.shape, lz.dtype, lz.scale) for lz in lzs)

    def __call__(self, leaves, into=None):
        space, nd, flat, size, nblocks = self.space, len(self.space), self.flat, self.size, \
            self.nblocks
        args = []
        for kind, a in zip(self.kinds, leaves):
            if kind == "c":
                args.append(a)
            elif kind == "s":
                args.append(a.reshape(1).dev)
            else:
                args.append(a.reshape(a.size).dev if flat else a.dev)
        outs = []
        for (kind, ref, axes), (_, dtype, _) in zip(self.outs, self.specs):
            acc_t = np.float64 if dtype.kind == "f" else np.int64
            if kind == "full":
                outs.append(into if into is not None and not outs else cb.empty(space, dtype))
            elif len(axes) == nd:
                outs.append(cb.empty((nblocks,), acc_t))
            else:
                outs.append(cb.full(tuple(1 if d in axes else s for d, s in enumerate(space)),
                                    0, acc_t))
        if size:
            # flat: full outputs as 1-D; N-d: full and partial-sum outputs keep their shapes;
            # per-block partials are 1-D anyway
            kargs = [o.reshape(o.size).dev if flat and k == "full" else o.dev
                     for o, (k, _, _) in zip(outs, self.outs)]
            extent = (size,) if flat else space
            _debug.COUNTERS["kernel_launches"] += 1
            if self.specialize:
                # a replayed launch: numba's kernel specialised to these argument types once
                # (the program's guards fix them), so later calls skip its per-call type
                # dispatch; where numba cannot (the simulator) the plain launch stays
                self.specialize = False
                spec = getattr(self.kern, "specialize", None)
                if spec is not None and _can_specialize():
                    try:
                        self.launch = spec(*args, *kargs, *extent)[nblocks, cb.threads()]
                    except Exception:  # noqa: BLE001 (keep the launch that works)
                        pass
            self.launch(*args, *kargs, *extent)
        values = [None] * len(outs)
        full_sums = []  # float ones: finished together (an int64 sum has its own kernel)
        for i, ((kind, _, axes), (shape, dtype, scale), o) in enumerate(
                zip(self.outs, self.specs, outs)):
            if kind == "full":
                values[i] = o
                continue
            if len(axes) == nd and not size:
                o = outs[i] = cb.full((1,), 0, o.dtype)
            if len(axes) == nd and o.dtype.kind == "f":
                full_sums.append(i)
                continue
            v = values[i] = cb.empty(shape, dtype)
            if len(axes) == nd:
                cb.finish_sums([o], nblocks if size else 1, [v], [scale])
            else:
                cb.scale_cast(o, v, scale)
        if full_sums:
            vs = [cb.empty(self.specs[i][0], self.specs[i][1]) for i in full_sums]
            cb.finish_sums([outs[i] for i in full_sums], nblocks if size else 1, vs,
                           [self.specs[i][2] for i in full_sums])
            for i, v in zip(full_sums, vs):
                values[i] = v
        return values


# device key -> the runner of a laid-out plan on that device (the CPU's is _run_group's body);
# a new backend that fuses elementwise chains adds its runner (and its renderer in _render)
_DEVICE_RUNNERS = {"cuda": _run_plan_cuda}
