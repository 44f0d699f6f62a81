"""capture: ``jitgrad.compile`` (alias ``jitgrad.jit``) -- record a step once, replay it as a
flat program of array operations (issue 18).

How a step is recorded
----------------------
The first call with a new guard key runs the function *eagerly* (so its results are eager's)
while a :class:`Recorder` is this thread's ``STATE.recorder``. The library calls it at its
array-level choke points, each behind one ``if STATE.recorder is not None`` test:

* ``lazy.run_now``            every eager elementwise kernel (forward ops, VJP kernels, grad
                              sums, in-place updates written ``into`` their target);
* ``_tensor.apply_fn``        every structural forward (matmul, reductions, views, the fused
                              linear/cross-entropy nodes): ``fn.forward(ctx, *arrays, **params)``;
* ``_engine.run_backward``    each node's first-order VJP on arrays (``ElementwiseNode`` through
                              run_now, ``FunctionNode`` through ``fn.vjp(structural.ARRAYS, ..)``)
                              and ``AccumulateGrad`` (a new ``.grad``, stolen or copied, or an
                              in-place add into the existing one);
* ``LRScheduler.step``        called again by the replay, in order (it sets the groups' lr);
* ``Optimizer.step``          the optimizer's fused CPU kernel per bucket, called directly on
                              prebound parameter/state views and the replayed gradients, its
                              scalar table from the rule's ``_prepare`` each call (lr, step
                              counts read live); when the groups, flags or state buffers are
                              not the bound ones, the real ``step()`` runs instead;
                              ``zero_grad()`` tells the recorder the ``.grad`` s become None;
* ``_tensor._filled``         zeros/ones/full (and backward's implicit ones seed): constants;
* ``lazy._run_group``         each fused kernel launch of lazy fusion (a pending group computed,
                              ``realize_into``'s in-place update of a parameter included): one
                              op reading its leaves' slots (bound kernel, laid-out leaves, call
                              form), writing its full values and finished sums; a sum of an
                              already computed array (``_realize_reduce_of_concrete``) likewise.
                              While recording, the thread's fusion switch is ``lazy.FUSE_ALL``
                              by default (``compile(fusion=...)``): every elementwise op is
                              recorded lazily whatever its size, so small chains fuse too (eager
                              runs them one kernel each because planning costs every call; a
                              replay plans nothing). Pending values the function returns, and
                              pending ``.grad`` s, are computed (recorded) before it returns.

Every array the step touches gets a *slot*: an input (a Tensor argument), an external tensor
(a parameter, a ``.grad``: tensors reachable from the function's closure cells, the globals its
code names, its defaults and its arguments, found by a bounded walk through objects, dicts and
lists -- nn.Modules and optimizers included), a constant, or the output of a recorded op. Each
op contributes a few lines of Python over the slot list ``S``: an eager kernel is *bound* at
record time (the compiled kernel of run_now's plan cache, its argument order and call form, the
operand transforms run_now would apply: no signature lookup at replay), a structural forward
calls ``fn.forward`` with a prebuilt ctx, a VJP calls its closure.

How it is replayed
------------------
The program is one generated Python function ``run(args)``: it resolves and checks the guards
of the external tensors, fills ``S`` from the arguments and the external tensors, runs every
op's lines in order -- no Tensor objects, no graph, no planning, no per-op dispatch -- and
finishes (pending values the caller made before the call are computed first: the replay
may write parameters they read). Then, as eager would leave them: each external tensor's
``.grad`` is set (None or a Tensor on its slot), in-place writes are already in the external
arrays (the ops wrote them), version counters are bumped by what the recorded call bumped;
the outputs come back as new Tensors on their slots (detached: the graph is not replayed -- a
function whose output requires grad without having run backward inside is not captured, it
runs eagerly).

Memory (``_MemoryPlan``): every buffer a replayed kernel allocates for an intermediate is
planned at record time -- buffers whose lifetimes (first write to last read, views included)
do not overlap share one -- allocated once per program and bound into the replay code, so a
replay allocates only what it hands out. Outputs and ``.grad`` s are new arrays on every call,
as in eager (a caller keeping last step's loss or gradient sees it unchanged; torch.compile's
CUDA graphs instead reuse output memory and warn when an overwritten output is read -- with
host memory allocation as cheap as it is, freshness costs little and removes that trap). A
``.grad`` copy of a gradient nothing reads afterwards is elided, and constants made in the step
that are neither written nor returned are shared between calls; a pure op (a kernel, a
structural forward, a VJP) reading only such constants is folded into constants (the backward
seed's ``1 / n`` and its expand, say), and a kernel operand transformed from a constant is
transformed once. A structural forward whose ctx no VJP reads reuses one ctx object.
``compiled.memory`` and ``jitgrad.explain`` report the pool, the bytes allocated per call, and
the replay's peak with and without the plan (the pool stays allocated between calls, so the
planned peak can exceed the unplanned one by up to the pool). A program with a pool or shared
ctxs is replayed by one thread at a time.

Guards (checked on every call, in order; a miss records again, up to ``CACHE_SIZE`` (8) entries
per function, then the function runs eagerly with one warning):

* each Tensor argument: array type (CPU ndarray), shape, dtype, strides, requires_grad, no
  grad_fn, whether ``.grad`` is None; Python scalars and strings: *specialised* (equal type and
  value); other objects: identity;
* each external tensor the program reads or changes: the path that reached it still gives the
  same object (identity: a rebound parameter records again), its array is the same object, and
  whether ``.grad`` is None -- unless the recorded call assigned its ``.grad`` before reading
  it (``p.grad = None``, ``zero_grad()``; seen through ``Tensor.grad`` watched while recording),
  so that the typical step is recorded once, not again when its first backward set ``.grad``.
  Version counters are not guarded: nothing an external tensor holds is folded into the
  program (its array is read by reference on every call), so in-place updates between calls
  are seen;
* each Python number the function reaches through its closure cells, the globals its code
  names, its defaults and the attributes / items of the objects met on the way (``lr``,
  ``self.scale``; class attributes are not walked): type and value, since recorded kernels
  hold them as constants -- a changed one records again. Not those an optimizer or LR
  scheduler holds: the bound optimizer step reads its hyperparameters live;
* grad mode, the default dtype and the fusion switch.

Graph breaks: anything the recorder cannot replay faithfully stops the recording (the call
itself finishes eagerly, so its results are right) and the function runs eagerly from then on;
``jitgrad.explain(step)`` names the reason and the source line. Breaks: reading a value in Python
(``item()``, ``bool()``, ``tolist()``, ``numpy()``/``__array__``, printing), random draws, an
array made outside the recorded operations (``tensor(data)``, ``randn``, NumPy code), a device
reduction of a computed array, a pending value
computed inside an opaque op (a node's saved output, say), in-place writes outside the
vocabulary (``setitem``, ``copy_``, ``fill_``, writes recorded into the graph under grad mode),
tensor hooks,
``autograd.grad``/``create_graph``, custom Functions, an optimizer closure.

CUDA steps: every elementwise op on a device is lazy, so a device step is fused groups plus
structural ops. A group launch (``lazy._run_plan_cuda``) is recorded as one call of its
``lazy.CudaLaunch`` -- the kernel, grid, launch configuration (numba's ``kernel[grid, block]``
object, made once) and output specs bound at record time -- on the replayed leaves: no planning,
no kernel lookup, no launch-configuration object per call; on a GPU its first replayed launch
binds numba's kernel specialised to the argument types (``Dispatcher.specialize``: later
launches skip numba's per-call type dispatch; the guards fix those types). Structural forwards
take device arrays as they are; a structural VJP on a device runs on Tensors
(``FunctionNode.apply``), so the ops it runs record themselves. An optimizer over CUDA
parameters replays as a call of its real ``step()`` on the replayed gradients (its per-step
scalars computed live; the bound fused kernel is the CPU's). The static memory plan covers
host buffers only (device buffers come from the caching allocator per call); device constants
are copied per call.
Without a GPU this runs on Numba's simulator (tests/test_capture.py), where it is checked for
values, not speed.

Not replayed: the function's own Python (a replay runs the recorded array operations, the
optimizer and LR scheduler steps, and nothing else): appending to a list, counting calls or
changing an attribute inside the step happens on the recording call only, as under JAX's jit.
Python numbers are guarded where the walk finds them (above), not those read from an
optimizer's param_groups by hand (``p -= g["lr"] * p.grad`` bakes the recorded lr: use
``opt.step()``) nor class attributes.

Safety net: every op's replay code (bound kernels, fused groups, structural forwards -- whose
run builds the replay's ctx --, VJPs) is run once at record time on the recorded arrays and must
reproduce eager's arrays exactly, else the recording stops (a replay never computes something
eager did not); an op writing into its target (an in-place update) is not run twice.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import linecache
import os
import re
import sys
import threading
import types
import warnings

import numpy as np

from . import _engine, dtypes, lazy, structural
from .nn import Module
from .optim import Optimizer
from .optim.lr_scheduler import LRScheduler
from ._state import STATE
from .backends import cpu, cpu_nn
from .backends.cuda import DeviceArray
from ._tensor import (Ctx, ElementwiseNode, FunctionNode, Tensor, _sum_to_array, _vjp_rows,
                      apply_fn)

__all__ = ["compile", "jit", "Compiled", "CACHE_SIZE"]

CACHE_SIZE = 8          # recorded programs kept per function (then: eager, one warning)
_WALK_MAX = 4000        # objects visited when looking for the tensors a function reaches
_WALK_DEPTH = 8
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_CONST_VALIDATE = {}    # structural op name -> replay validator (integer params from the step)


_ARRAY_TYPES = (np.ndarray, DeviceArray)  # (what a slot may hold: host or device arrays)
_ENV = {"_AT": _ARRAY_TYPES, "_e": np.empty, "_z": np.zeros,
        "_lk": lazy._leaf_kind, "_red": lazy._reduced,
        "_sta": _sum_to_array, "np": np, "_nd": np.ndarray, "_rsum": cpu.reduce_sum}
_ALLOC = re.compile(r"__alloc_(\d+)__")
_CONST_ARG = re.compile(r"_lk\(S\[(\d+)\], (\(.*?\)), (\d+)\)\[2\]|"
                        r"S\[(?=\d+\]\[_i_)(\d+)\]\[(_i_\d+)\](?:\.reshape\((\(.*?\))\))?")


def _compile_lines(lines, env, allocs, pool, name="_replay", args="S"):
    """One Python function ``name(S)`` running ``lines`` in the namespace ``env``; allocation
    tokens become the static plan's buffers (``pool``: slot -> name) or ``np.empty``."""
    def sub(m):
        k = int(m.group(1))
        p = pool.get(k)
        if p is not None:
            return p
        shape, dt = allocs[k]
        dn = "_dt_" + dt.name
        env.setdefault(dn, dt)
        return f"_e({shape!r}, {dn})"
    body = [_ALLOC.sub(sub, line) for line in lines] or ["pass"]
    src = f"def {name}({args}):\n" + "".join(f"    {line}\n" for line in body)
    exec(builtins.compile(src, f"<jitgrad.compile {name}>", "exec"), env)
    return env.pop(name)


class _Break(Exception):
    """Raised inside the recorder's analysis: what was just run cannot be replayed."""


def _user_line():
    """(file, line, source) of the innermost frame outside the jitgrad package."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not os.path.abspath(fn).startswith(_PKG_DIR):
            return fn, f.f_lineno, linecache.getline(fn, f.f_lineno).strip()
        f = f.f_back
    return None


class _Box:
    """A saved tensor as ``structural.ARRAYS.saved`` reads it at replay (its array only)."""
    __slots__ = ("_data",)

    def __init__(self, a):
        self._data = a


_ENV.update(_Ctx=Ctx, _Box=_Box, _mm=np.matmul, _bto=np.broadcast_to, _V=structural.ARRAYS,
            _arr=np.array, _dot=np.ndarray.dot)


# ============================================================================================
# Finding the tensors a function reaches (external state) and how to reach them again


def _code_names(code, out):
    out.update(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_names(c, out)
    return out


def _roots(fn, args):
    """(path, object) pairs the walk starts from. A path is ('arg', i) | ('cell', i) |
    ('global', name) | ('default', i) | ('self',), followed by ('attr', name) / ('item', key)
    steps."""
    out = [((("arg", i),), a) for i, a in enumerate(args)]
    out += _fn_roots(fn, ())
    return out


def _fn_roots(fn, prefix):
    out = []
    if isinstance(fn, types.MethodType):
        out.append((prefix + (("self",),), fn.__self__))
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if code is None:
        return out
    for i, cell in enumerate(fn.__closure__ or ()):
        try:
            out.append((prefix + (("cell", i),), cell.cell_contents))
        except ValueError:  # an empty cell
            pass
    g = fn.__globals__
    for name in sorted(_code_names(code, set())):
        if name in g:
            out.append((prefix + (("global", name),), g[name]))
    for i, d in enumerate(fn.__defaults__ or ()):
        out.append((prefix + (("default", i),), d))
    return out


_SCALAR_TYPES = (bool, int, float, complex)
_SKIP_TYPES = (types.ModuleType, type, str, bytes, int, float, bool, complex, type(None),
               np.ndarray, np.generic, types.BuiltinFunctionType)


def _walk(fn, args, scalars=None):
    """Breadth-first walk from the function's roots: {id(tensor): (tensor, path)} and
    {id(object): (object, path)} for the non-tensor objects met (optimizers, modules).
    ``scalars`` (a dict): filled with path -> value for the Python numbers met (not the
    arguments themselves, guarded by their key, nor what optimizers and LR schedulers hold --
    the bound optimizer step reads its hyperparameters live --, nor what jitgrad's own
    functions and objects other than nn.Modules hold: its tables and thread state)."""
    tensors, objects, seen, live = {}, {}, set(), set()
    queue = [(p, o, 0) for p, o in _roots(fn, args)]
    n = 0
    while queue and n < _WALK_MAX:
        nxt = []
        for path, o, depth in queue:
            if scalars is not None and type(o) in _SCALAR_TYPES and len(path) + \
                    (path[0][0] != "arg") > 1 and not any(p in live for p in _prefixes(path)):
                scalars[path] = o
            if id(o) in seen:
                continue
            if isinstance(o, (Optimizer, LRScheduler)) or (
                    _in_pkg(o if isinstance(o, (types.FunctionType, types.MethodType))
                            else type(o)) and not isinstance(o, Module)):
                live.add(path)
            seen.add(id(o))
            n += 1
            if isinstance(o, Tensor):
                tensors[id(o)] = (o, path)
                continue
            if isinstance(o, _SKIP_TYPES) or depth >= _WALK_DEPTH:
                continue
            objects[id(o)] = (o, path)
            if isinstance(o, dict):
                for k, v in list(o.items()):
                    if isinstance(k, (str, int)) and not isinstance(k, bool):
                        nxt.append((path + (("item", k),), v, depth + 1))
            elif isinstance(o, (list, tuple)):
                for k, v in enumerate(o):
                    nxt.append((path + (("item", k),), v, depth + 1))
            elif isinstance(o, (types.FunctionType, types.MethodType)):
                for p, v in _fn_roots(o, ()):
                    nxt.append((path + (("fn",) + p[0],) + p[1:], v, depth + 1))
            else:
                d = getattr(o, "__dict__", None)
                if isinstance(d, dict):
                    for k, v in list(d.items()):
                        nxt.append((path + (("attr", k),), v, depth + 1))
        queue = nxt
    return tensors, objects


def _in_pkg(o) -> bool:
    """Whether a function or class is jitgrad's own."""
    m = getattr(o, "__module__", None) or ""
    return m == "jitgrad" or m.startswith("jitgrad.")


def _prefixes(path):
    return [path[:i] for i in range(1, len(path))]


def _resolve_root(fn, args, kind):
    k = kind[0]
    if k == "arg":
        return args[kind[1]]
    if k == "self":
        return fn.__self__
    if isinstance(fn, types.MethodType):
        fn = fn.__func__
    if k == "cell":
        return fn.__closure__[kind[1]].cell_contents
    if k == "global":
        return fn.__globals__[kind[1]]
    return fn.__defaults__[kind[1]]


def _path_str(path) -> str:
    parts = []
    for step in path:
        k = step[0]
        if k == "arg":
            parts.append(f"arg{step[1]}")
        elif k in ("cell", "global"):
            parts.append(f"<{k} {step[1]}>")
        elif k == "default":
            parts.append(f"<default {step[1]}>")
        elif k == "self":
            parts.append("self")
        elif k == "attr":
            parts.append(f".{step[1]}")
        elif k == "item":
            parts.append(f"[{step[1]!r}]")
        else:
            parts.append(f"->{step[1:]}")
    return "".join(parts)


# ============================================================================================
# The recorder


class _Ext:
    """An external tensor the program reads or changes: how to find it, its state at entry."""
    __slots__ = ("t", "path", "arr", "grad", "grad_arr", "vc", "rg", "fn", "used", "bumps",
                 "opt", "first")

    def __init__(self, t, path):
        self.t, self.path = t, path
        self.arr = t._arr
        self.grad = t.grad
        self.grad_arr = t.grad._arr if t.grad is not None else None
        self.vc = t._vc[0]
        self.rg = t._rg
        self.fn = t.grad_fn
        self.used = False
        self.bumps = 0      # version bumps the replayed optimizer steps make themselves
        self.opt = False    # a replayed optimizer step sets its .grad (so the end must too)
        self.first = None   # the first access to its .grad in the call: 'get' or 'set'


# While a call is recorded, ``Tensor.grad`` (a slot) is reached through a property that tells
# the recording thread's Recorder about each read and assignment (grad_event): a step that
# assigns ``p.grad`` (``= None``, zero_grad(set_to_none=True)) before reading it does not
# depend on whether ``.grad`` was None at entry, so that is not guarded (else the first two
# calls of a typical step -- ``.grad`` None, then set by the first backward -- would record
# two programs). Other threads reach the slot through the property meanwhile, unchanged.
_GRAD_SLOT = Tensor.__dict__["grad"]
_WATCH: dict = {}           # thread ident -> the Recorder watching .grad accesses
_WATCH_LOCK = threading.Lock()
_get_ident = threading.get_ident


def _grad_get(t):
    if _WATCH:
        w = _WATCH.get(_get_ident())
        if w is not None:
            w.grad_event(t, False)
    return _GRAD_SLOT.__get__(t, Tensor)


def _grad_set(t, v):
    if _WATCH:
        w = _WATCH.get(_get_ident())
        if w is not None:
            w.grad_event(t, True)
    _GRAD_SLOT.__set__(t, v)


_GRAD_PROP = property(_grad_get, _grad_set, _GRAD_SLOT.__delete__,
                      "This tensor's gradient (watched while jitgrad.compile records).")


@contextlib.contextmanager
def _watching_grads(rec):
    with _WATCH_LOCK:
        if not _WATCH:
            Tensor.grad = _GRAD_PROP
        _WATCH[_get_ident()] = rec
    try:
        yield
    finally:
        with _WATCH_LOCK:
            _WATCH.pop(_get_ident(), None)
            if not _WATCH:
                Tensor.grad = _GRAD_SLOT


class Recorder:
    """Logs the array operations of one eager call as replay closures over slots."""

    def __init__(self, fn, args):
        self.fn = fn
        self.keep = []          # slot -> the array it held at record time (kept alive)
        self.slots = {}         # id(array) -> slot
        self.src = []           # slot -> ('op',) | ('const', array) | ('ext', ext, 'arr'|'grad')
        self.ops = []           # per op: the lines it adds to the replay function (see _build)
        self.descr = []         # (text, source line) per op
        self.reads = []         # per op: the slots it reads (the memory plan's lifetimes)
        self.env = dict(_ENV)   # the names the generated replay code refers to
        self.allocs = {}        # slot -> (shape, dtype): a buffer the replay allocates for it
        self.holds = {}         # ctx slot -> the slots its saved arrays and params are
        self.defs = {}          # slot -> index of the op that makes it
        self.copies = []        # (op index, slot, source slot): a new .grad copied
        self.escapes = set()    # slots an opaque op may keep (an optimizer's gradients)
        self.outs_of = []       # per op: the slots it makes
        self.pure = []          # per op: see _add_code
        self.alt = {}           # op index -> (ctx slot, lines without that ctx)
        self.broken = None      # (reason, (file, line, source) | None)
        self.written = set()    # slots written in place
        self.ctxs = {}          # id(eager ctx) -> (ctx slot, trial ctx)
        self.backward_ran = False
        self.objects_used = {}  # id(obj) -> (obj, path): optimizers whose step is replayed
        self.scalars = {}       # path -> a Python number a closure cell / global holds
        tensors, objects = _walk(fn, args, self.scalars)
        self.walk_objects = objects
        self.exts = {id(t): _Ext(t, path) for t, path in tensors.values()}
        self.ext_arrays = {}    # id(array) -> (ext, field)
        for e in self.exts.values():
            if type(e.arr) in _ARRAY_TYPES:
                self.ext_arrays[id(e.arr)] = (e, "arr")
            if e.grad_arr is not None and type(e.grad_arr) in _ARRAY_TYPES:
                self.ext_arrays.setdefault(id(e.grad_arr), (e, "grad"))
        self.draws = STATE.draws

    # --- stopping -------------------------------------------------------------------------
    def stop(self, reason: str, where=None) -> None:
        """Give up recording (this call goes on eagerly); the function runs eagerly."""
        if self.broken is None:
            self.broken = (reason, where if where is not None else _user_line())
        if STATE.recorder is self:
            STATE.recorder = None

    def observe(self, what: str) -> None:
        self.stop(f"the value of a tensor was read in Python ({what})")

    def _check_draws(self):
        if STATE.draws != self.draws:
            raise _Break("random numbers were drawn (replaying would repeat the same numbers)")

    # --- slots ----------------------------------------------------------------------------
    def slot_of(self, a) -> int:
        """The slot of an array the program reads: recorded, external, or a break."""
        k = self.slots.get(id(a))
        if k is not None and self.keep[k] is a:
            return k
        if type(a) not in _ARRAY_TYPES:
            raise _Break(f"a {type(a).__name__} array")
        e = self.ext_arrays.get(id(a))
        if e is not None:
            ext, field = e
            if (ext.arr if field == "arr" else ext.grad_arr) is a:
                ext.used = True
                return self._new(a, ("ext", ext, field))
        raise _Break("an array made outside the recorded operations (tensor(data), a random "
                     "tensor, NumPy code, or a tensor the function reaches in a way the "
                     "recorder does not follow)")

    def _new(self, a, src) -> int:
        k = len(self.keep)
        self.keep.append(a)
        self.slots[id(a)] = k
        self.src.append(src)
        if src[0] == "op":
            self.defs[k] = len(self.ops)  # (made by the op being recorded now)
        return k

    def out_slot(self, a) -> int:
        """A slot for an op's output (an alias of a known array keeps its slot)."""
        k = self.slots.get(id(a))
        if k is not None and self.keep[k] is a:
            return k
        return self._new(a, ("op",))

    def const(self, a) -> None:
        """A constant made in the step (zeros/ones/full): copied anew on each replay."""
        if type(a) in _ARRAY_TYPES and id(a) not in self.slots:
            self._new(a, ("const", a.copy()))

    def _operand(self, o):
        """('s', slot) for a Tensor or array operand, ('c', value) for a Python scalar."""
        if isinstance(o, Tensor):
            a = o._arr
            if a is None:
                raise _Break("a pending (fused) value")
            return ("s", self.slot_of(a))
        if isinstance(o, _ARRAY_TYPES):
            return ("s", self.slot_of(o))
        if isinstance(o, (np.generic, int, float, bool)):
            return ("c", o)
        raise _Break(f"an operand of type {type(o).__name__}")

    def _trial(self, op, *a):
        """Run a replay closure at record time without recording what it runs."""
        st = STATE
        st.recorder = None
        try:
            op(*a)
        except Exception as e:  # (an attribute the replay's ctx lacks, say)
            raise _Break(f"the replay of an op failed at record time ({e!r})") from None
        finally:
            st.recorder = self

    def _name(self, v, hint="v") -> str:
        """A fresh name for ``v`` in the generated replay code's namespace."""
        n = f"_{hint}_{len(self.env)}"  # (fixed names and the code's locals have no 2nd _)
        self.env[n] = v
        return n

    def _add(self, op, text, reads=(), args=""):
        """An opaque op: the closure ``op(S{args})`` called from the replay function."""
        self._add_code([f"{self._name(op, 'f')}(S{args})"], text, reads)

    def _add_code(self, lines, text, reads=(), outs=(), pure=False, alt=None):
        """An op: its replay lines, the slots it reads and makes; ``pure``: its outputs are a
        function of what it reads (no write elsewhere, nothing kept): with constant inputs it
        is folded into constants (_MemoryPlan). ``alt``: (ctx slot, lines to use when nothing
        reads that ctx)."""
        if alt is not None:
            self.alt[len(self.ops)] = alt
        self.ops.append(lines)
        self.reads.append(tuple(reads))
        self.outs_of.append(tuple(outs))
        self.pure.append(pure)
        self.descr.append((text, _user_line()))

    def _alloc(self, k, shape, dtype) -> str:
        """The expression that allocates slot ``k``'s buffer (a token _build resolves: a new
        array per call, or a buffer of the static memory plan)."""
        self.allocs[k] = (tuple(shape), np.dtype(dtype))
        return f"__alloc_{k}__"

    def _try_code(self, lines, outs, why="a bound kernel does not give eager's values again"):
        """Run generated lines once on the recorded arrays (the recorder off); each
        ``(slot, array)`` in ``outs`` must come out equal to eager's array."""
        trial = list(self.keep)
        fn = _compile_lines(lines, self.env, self.allocs, {})
        self._trial(fn, trial)
        for k, a in outs:
            if not _same(trial[k], a):
                raise _Break(why)

    def _kernel_code(self, rows, opnds, space, size, dtype, cdt, reduce, keep_full, into,
                     into_expr, slots):
        """Lines that launch the kernel ``lazy.run_now`` ran for these operands with the
        kernel and argument layout bound now (its ``_ONCE`` entry): no signature lookup at
        replay. The outputs land in locals ``_o0, _o1, ..``. ``opnds``: (expression, value at
        record time) per operand (expression None: a Python scalar, specialised); ``slots``:
        per output, the slot its buffer is allocated for (None: a temporary). None when the
        entry is not found (the op is then replayed through run_now itself). The operand
        transforms mirror run_now's: an operand's layout at replay is its layout now (the
        guards fix the inputs' layouts and every op is deterministic in them)."""
        nd = len(space)
        sig = [rows, cdt, dtype, nd, reduce, keep_full]
        exprs = []
        alias, flat = -1, True
        first = lazy._FIRST
        for expr, v in opnds:
            if type(v) is not np.ndarray:
                if v is None or isinstance(v, np.ndarray):
                    return None
                sig.append(type(v))
                exprs.append(self._name(v, "c"))
                continue
            if v.shape == space and size > 1 and v.flags.c_contiguous:
                sig.append(v.dtype)
                if v is into and alias < 0:
                    alias = len(exprs)
            elif v.size and not any(v.strides):
                if v.ndim:
                    expr = f"{expr}[{self._name((first,) * v.ndim, 'i')}]"
                    v = v[(first,) * v.ndim]
                if v.ndim < nd:
                    expr = f"{expr}.reshape({(1,) * nd!r})"
                    v = v.reshape((1,) * nd)
                sig.append(("s", v.dtype))
            else:
                kind, mask, w = lazy._leaf_kind(v, space, nd)
                c = w.flags.c_contiguous
                sig.append((kind, mask, w.dtype, c))
                if kind == "a" and (True in mask or not c):
                    flat = False
                if w is not v:
                    expr = f"_lk({expr}, {space!r}, {nd})[2]"
            exprs.append(expr)
        par = flat and lazy.runs_parallel(size, rows)
        ent = lazy._ONCE.get(tuple(sig) + (alias, par))
        if ent is None or len(ent.outs) != len(slots):
            return None
        if ent.src is not None:
            exprs = [exprs[j] for j in ent.src]
        kern = self._name(ent.kern, "k")
        dt = self._name(np.dtype(dtype), "d")
        n = len(slots)
        outs = [f"_o{i}" for i in range(n)]

        def alloc(i):
            k = slots[i]
            return f"_e({space!r}, {dt})" if k is None else self._alloc(k, space, dtype)
        lines = []
        if ent.outs is lazy._ONE_FULL:
            lines.append(f"_o0 = {alloc(0) if into is None else into_expr}")
            call = exprs if ent.alias else exprs + ["_o0"]
        elif reduce is None and into is None:
            lines += [f"_o{i} = {alloc(i)}" for i in range(n)]
            call = exprs + outs
        else:
            for i, spec in enumerate(ent.outs):
                if spec is None:
                    e = into_expr if into is not None and i == 0 else alloc(i)
                else:
                    e = f"_z(1, {self._name(np.dtype(spec), 'd')})"
                lines.append(f"_o{i} = {e}")
            form = ent.form
            call = exprs + (outs[1:] if form == "alias" else outs)
            if form == "shape":
                call.append(repr(space))
            elif form == "n":
                call.append(str(size))
        if size:
            lines.append(f"{kern}({', '.join(call)})")
        if reduce is not None and not (ent.outs is lazy._ONE_FULL):
            lines.append(f"_o{n - 1} = " + self._red_code(
                f"_o{n - 1}", ent.outs[n - 1], dtype, (), size if reduce == "mean" else None))
        return lines

    def _red_code(self, acc, acc_dtype, dtype, shape, scale) -> str:
        """``lazy._reduced(acc, dtype, shape, scale)`` as replay code with its tests done now
        (the divide, cast and reshape it would do; the helper call cost ~1.5 us of W3's
        replay). ``acc``: the accumulator's expression, ``acc_dtype`` its dtype."""
        if tuple(shape) == () and np.dtype(acc_dtype) == np.float64 and \
                np.dtype(dtype).kind == "f" and (scale is None or scale):
            # a full float sum: one Python float, rounded once to the dtype (what the
            # array divide and astype give, for ~1/6 of their time)
            v = f"{acc}.item()" if scale is None else f"({acc}.item() / {int(scale)})"
            return f"_arr({v}, {self._name(np.dtype(dtype), 'd')})"
        if scale is not None:
            if not scale:  # (the mean of nothing: NaN, left to the helper)
                return (f"_red({acc}, {self._name(np.dtype(dtype), 'd')}, {shape!r}, "
                        f"{self._name(scale, 'c')})")
            acc, acc_dtype = f"({acc} / {self._name(scale, 'c')})", np.float64
        if np.dtype(acc_dtype) != np.dtype(dtype):
            acc = f"{acc}.astype({self._name(np.dtype(dtype), 'd')})"
        return f"{acc}.reshape({tuple(shape)!r})"

    def _guarded(self, analyse, *a):
        """Run an analysis; a _Break stops the recording."""
        try:
            self._check_draws()
            analyse(*a)
        except _Break as e:
            self.stop(str(e))

    # --- hooks ----------------------------------------------------------------------------
    def run_now(self, rows, ops, space, size, dtype, cdt, reduce=None, keep_full=True,
                into=None):
        self._realize(ops)
        st = STATE
        st.recorder = None
        try:
            outs = lazy.run_now(rows, ops, space, size, dtype, cdt, reduce, keep_full, into)
        finally:
            if self.broken is None:
                st.recorder = self
        self._guarded(self._rec_run_now, rows, ops, space, size, dtype, cdt, reduce,
                      keep_full, into, outs)
        return outs

    def _rec_run_now(self, rows, ops, space, size, dtype, cdt, reduce, keep_full, into, outs):
        ins = tuple([self._operand(o) for o in ops])
        ik = None
        if into is not None:
            ik = self.slot_of(into)
        oks = []
        for o in outs:
            if into is not None and o is into:
                oks.append(ik)
                self.written.add(ik)
            else:
                oks.append(self.out_slot(o))
        oks = tuple(oks)
        opnds = [(f"S[{v}]", self.keep[v]) if kind == "s" else (None, v) for kind, v in ins]
        into_expr = None if ik is None else f"S[{ik}]"
        lines = self._kernel_code(rows, opnds, space, size, dtype, cdt, reduce, keep_full,
                                  into, into_expr,
                                  [None if k == ik else k for k in oks])
        text = (f"kernel {'+'.join(r.name for r in rows)} {space} -> slots {list(oks)}"
                + (f" (in place: slot {ik})" if ik is not None else ""))
        reads = [v for kind, v in ins if kind == "s"] + ([ik] if ik is not None else [])
        if lines is not None:
            lines += [f"S[{k}] = _o{i}" for i, k in enumerate(oks) if k != ik]
            if ik is None:
                self._try_code(lines, list(zip(oks, outs)))
            self._add_code(lines, text + " [bound]", reads, oks, ik is None)
            return
        run = lazy.run_now

        def op(S):
            args = [S[v] if kind == "s" else v for kind, v in ins]
            res = run(rows, args, space, size, dtype, cdt, reduce, keep_full,
                      None if ik is None else S[ik])
            for k, a in zip(oks, res):
                S[k] = a
        self._add_code([f"{self._name(op, 'f')}(S)"], text, reads, oks, ik is None)

    def _group_operands(self, plan, into):
        """(leaf expressions, slots read, slot of ``into`` or None) of a laid-out fused group,
        CPU or device: each leaf as the kernel got it (a constant, its slot, or its slot's
        laid-out view); ``into`` (an in-place target) is read and written."""
        space, nd = plan.space, len(plan.space)
        exprs, reads = [], []
        for lv, arg, kind in zip(plan.leaves, plan.args, plan.kinds):
            if kind == "c":
                exprs.append(self._name(arg, "c"))
                continue
            k = self.slot_of(lv)
            reads.append(k)
            exprs.append(f"S[{k}]" if arg is lv else f"_lk(S[{k}], {space!r}, {nd})[2]")
        ik = None
        if into is not None:
            ik = self.slot_of(into)
            self.written.add(ik)
            reads.append(ik)
        return exprs, reads, ik

    def fused(self, plan, kern, lzs, outs, into):
        """lazy._run_group launched one fused kernel (CPU) computing the records ``lzs``:
        replayed as one op."""
        self._guarded(self._rec_fused, plan, kern, lzs, outs, into)

    def _rec_fused(self, plan, kern, lzs, outs, into):
        space = plan.space
        exprs, reads, ik = self._group_operands(plan, into)
        lines, stores, check = [], [], []
        for i, ((kind, _, _), lz, o) in enumerate(zip(plan.outs, lzs, outs)):
            final = lz.value
            if final is None or type(final) is not np.ndarray:
                raise _Break("a fused value computed by another thread")
            if kind == "full":
                if final is not o:
                    raise _Break("a fused value computed by another thread")
                if into is not None and o is into:
                    lines.append(f"_o{i} = S[{ik}]")
                    continue
                k = self.out_slot(o)
                lines.append(f"_o{i} = {self._alloc(k, space, o.dtype)}")
                stores.append(f"S[{k}] = _o{i}")
            else:
                k = self.out_slot(final)
                lines.append(f"_o{i} = _z({o.shape!r}, {self._name(o.dtype, 'd')})")
                stores.append(f"S[{k}] = " + self._red_code(f"_o{i}", o.dtype, final.dtype,
                                                            final.shape, lz.scale))
            check.append((k, final))
        form = lazy._call_form(plan)
        os_ = [f"_o{i}" for i in range(len(outs))]
        call = exprs + (os_[1:] if form == "alias" else os_)
        if form == "shape":
            call.append(repr(space))
        elif form == "n":
            call.append(str(plan.size))
        if plan.size:
            lines.append(f"{self._name(kern, 'k')}({', '.join(call)})")
        lines += stores
        if into is None:
            self._try_code(lines, check, "a fused kernel does not give eager's values again")
        names = "+".join(lz.row.name for lz, _ in plan.nodes)
        self._add_code(lines, f"fused kernel [{names}] {space} -> slots {[k for k, _ in check]}"
                              + (f" (into slot {ik})" if ik is not None else ""), reads,
                       [k for k, _ in check], into is None)

    def fused_device(self, plan, launch, values, into):
        """lazy._run_plan_cuda launched one fused kernel on a device: replayed as one call of
        its lazy.CudaLaunch (kernel, grid and output specs bound) on the replayed leaves."""
        self._guarded(self._rec_fused_device, plan, launch, values, into)

    def _rec_fused_device(self, plan, launch, values, into):
        space = plan.space
        exprs, reads, ik = self._group_operands(plan, into)
        outs = [self.out_slot(v) for v in values]
        launch.specialize = True  # (its next launch binds numba's specialised kernel)
        lines = [f"_v = {self._name(launch, 'L')}([{', '.join(exprs)}]"
                 + (f", S[{ik}])" if ik is not None else ")")]
        lines += [f"S[{k}] = _v[{i}]" for i, k in enumerate(outs) if k != ik]
        if into is None:
            self._try_code(lines, list(zip(outs, values)),
                           "a fused device kernel does not give eager's values again")
        names = "+".join(lz.row.name for lz, _ in plan.nodes)
        self._add_code(lines, f"fused {plan.device} kernel [{names}] {space} -> slots {outs}"
                              + (f" (into slot {ik})" if ik is not None else ""), reads,
                       [k for k in outs if k != ik], into is None)

    def reduced(self, src, lz):
        """lazy computed the pending sum ``lz`` of a concrete array (no kernel): replayed as
        one op."""
        self._guarded(self._rec_reduced, src, lz, lz.value)

    def _rec_reduced(self, src, lz, final):
        if type(src) is not np.ndarray or type(final) is not np.ndarray:
            raise _Break("a device reduction")
        j = self.slot_of(src)
        k = self.out_slot(final)
        acc_t = np.float64 if src.dtype.kind == "f" else np.int64
        lines = [f"S[{k}] = " + self._red_code(
            f"_rsum(S[{j}], {lz.axes!r}, {self._name(acc_t, 'd')})", acc_t, lz.dtype,
            lz.shape, lz.scale)]
        self._try_code(lines, [(k, final)])
        self._add_code(lines, f"sum {lz.axes} of slot {j} -> slot {k}", (j,), (k,), True)

    def settle(self, result):
        """The call returned: compute (recorded) its pending outputs and the pending .grads of
        the tensors it reaches, which eager computes when they are read."""
        leaves = []
        try:
            _flatten(result, leaves)
        except _Break:
            return
        get = _GRAD_SLOT.__get__  # (not an access of the function's: not watched)
        leaves += [g for e in self.exts.values() if (g := get(e.t)) is not None]
        self._realize(leaves)

    def grads_assigned(self, groups):
        """Optimizer.zero_grad(set_to_none=True): these parameters' .grad become None whatever
        they were (its reads of .grad are not a dependence on the state at entry)."""
        for group in groups:
            for p in group["params"]:
                self.grad_event(p, True)

    def grad_event(self, t, is_set):
        e = self.exts.get(id(t))
        if e is not None and e.first is None and e.t is t:
            e.first = "set" if is_set else "get"

    def function(self, fn, inputs, grad_fn, view_of, save, ctx, params):
        pre = dict(ctx.__dict__) if ctx is not None else {}
        if ctx is None:
            ctx = Ctx()
        if fn.lazy_forward is None or not lazy.is_fusion_enabled():
            self._realize(inputs)  # (else apply_fn would compute them unrecorded)
        else:
            # what a lazy forward computes itself (functional_ops._lazy_reduce: a sum of a
            # pending sum, of a non-float value, with a dtype cast) is computed here, recorded
            self._realize([t for t in inputs if isinstance(t, Tensor) and t._arr is None and
                           t._lazy is not None and (t._lazy.row is None or
                                                    t._meta[1].kind != "f" or
                                                    params.get("dtype") is not None)])
        st = STATE
        st.recorder = None
        try:
            res = apply_fn(fn, inputs, grad_fn, view_of, save, ctx, **params)
        finally:
            if self.broken is None:
                st.recorder = self
        self._guarded(self._rec_function, fn, inputs, save, ctx, params, pre, res)
        return res

    def _realize(self, tensors):
        """Compute pending operands now, recorded (their fused kernels are replayed)."""
        pend = [t for t in tensors if isinstance(t, Tensor) and t._arr is None and
                t._lazy is not None]
        if pend:
            lazy.realize_many(pend)

    def _rec_function(self, fn, inputs, save, ctx, params, pre, res):
        for v in pre.values():
            if isinstance(v, (Tensor, np.ndarray)):
                raise _Break(f"{fn.name}: a ctx carrying arrays")
        out = res._arr
        if out is None and res._lazy is not None:
            # a lazy forward (a sum of a pending value): its kernel is recorded when its
            # group is computed; its backward reads a ctx without arrays, kept as it is now
            static = Ctx()
            for name, v in ctx.__dict__.items():
                if name == "node" or name == "saved_tensors":
                    continue
                if isinstance(v, (Tensor, np.ndarray)):
                    raise _Break(f"{fn.name}: a lazy forward leaving arrays on ctx")
                static.__dict__[name] = v
            kc = self._new(None, ("obj", static))
            self.keep[kc] = static
            self.ctxs[id(ctx)] = (kc, static)
            return
        ins = tuple([self._operand(t)[1] for t in inputs])
        pstat, pslots = {}, []
        for name, v in params.items():
            if isinstance(v, Tensor):
                raise _Break(f"{fn.name}: a tensor parameter")
            if isinstance(v, np.ndarray):
                k = self.slot_of(v)
                if v.dtype.kind in "iub" and self.src[k][0] != "const" and \
                        fn.name not in _CONST_VALIDATE:
                    raise _Break(f"{fn.name}: an index array computed from tensors (its bounds "
                                 "would not be checked again at replay)")
                pslots.append((name, k))
            elif isinstance(v, (tuple, list)) and any(isinstance(x, (np.ndarray, Tensor))
                                                      for x in v):
                raise _Break(f"{fn.name}: arrays inside a parameter")
            else:
                pstat[name] = v
        if type(out) not in _ARRAY_TYPES:
            raise _Break(f"{fn.name}: a pending result")
        init = dict(pre)
        init.update(pstat)
        init["shapes"] = ctx.shapes
        needs = ctx.__dict__.get("needs_input_grad")
        validate = _CONST_VALIDATE.get(fn.name)
        ok = self.out_slot(out)
        kc = len(self.keep)  # holds the replay's ctx of this op (record time: the trial's)
        self.keep.append(None)
        self.src.append(("ctx",))
        xs = ", ".join(f"S[{k}]" for k in ins)
        P = self._name(pstat, "p")
        lines = [f"_c = _Ctx()", f"_d = _c.__dict__", f"_d.update({self._name(init, 'p')})"]
        if pslots:
            lines.append(f"_p = dict({P})")
            for name, k in pslots:
                lines.append(f"_p[{name!r}] = _d[{name!r}] = S[{k}]")
            P = "_p"
        if validate is not None:
            lines.append(f"{self._name(validate, 'f')}([{xs}], {P})")
        lines.append(f"_r = {self._name(fn.forward, 'f')}(_c{', ' if xs else ''}{xs}, **{P})")
        lines.append("if type(_r) not in _AT: _r = np.asarray(_r)")
        if needs is not None:
            lines.append(f"_d['needs_input_grad'] = {self._name(needs, 'p')}")
        if save:
            lines.append(f"_d['saved_tensors'] = ({''.join(f'_Box(S[{k}]), ' for k in ins)})")
        lines += [f"S[{ok}] = _r", f"S[{kc}] = _c"]
        # the replay ctx, built once now on the recorded arrays: it must give eager's result
        trial = list(self.keep)
        self._trial(_compile_lines(lines, self.env, self.allocs, {}), trial)
        if not _same(trial[ok], out):
            raise _Break(f"{fn.name}: its forward does not give the same array again")
        self.keep[kc] = trial[kc]
        self.ctxs[id(ctx)] = (kc, trial[kc])
        reads = list(ins) + [k for _, k in pslots]
        self.holds[kc] = tuple(reads)
        # (without a reader of the ctx: one Ctx made now serves every call)
        shared = Ctx()
        alt = [f"_c = {self._name(shared, 'x')}"] + [
            ln for ln in lines[1:] if not ln.startswith(("_d['needs_input_grad']",
                                                          "_d['saved_tensors']", f"S[{kc}] ="))]
        if fn.name == "matmul" and not params and len(ins) == 2 and \
                all(type(self.keep[k]) is np.ndarray for k in ins) and \
                not cpu.matmul_transposes(*[self.keep[k] for k in ins]) and \
                _same(np.matmul(*[self.keep[k] for k in ins]), out):
            # its forward is NumPy's matmul: called directly (ndarray.dot, the same product
            # for operands of rank <= 2, costs a third as much on small ones). Not when
            # cpu.matmul transposes: equal bits now (exact products, e.g. zeros) would not
            # hold for the next call's data.
            a, b = (self.keep[k] for k in ins)
            mm = "_dot" if a.ndim <= 2 and b.ndim <= 2 and \
                _same(np.ndarray.dot(a, b), out) else "_mm"
            alt = [f"S[{ok}] = {mm}({xs})"]
        self._add_code(lines, f"{fn.name} {tuple(out.shape)} {out.dtype} <- slots {list(ins)} "
                              f"-> slot {ok}", reads, (ok, kc), True, (kc, alt))

    def sweep(self, create_graph, capture, accumulate):
        """A backward sweep starts; returns the recorder to pass each node to, or None."""
        if create_graph:
            self.stop("backward with create_graph=True (differentiating the backward)")
            return None
        if capture is not None or not accumulate:
            self.stop("autograd.grad / backward(inputs=) (only .backward() into .grad is "
                      "recorded)")
            return None
        self.backward_ran = True
        return self

    def node_apply(self, n, g, create_graph):
        if isinstance(n, ElementwiseNode) and (_fused_node(n, g) or
                                               _engine.device_key(g) != "cpu"):
            # its rules run on (lazy) Tensors: each op they run records itself (small eager
            # kernels, views, and the fused groups when they are computed)
            if n.retained is not None:
                self.stop(f"{n.name()}: tensor hooks or retain_grad")
            return n.apply(g, create_graph)
        if isinstance(n, FunctionNode):
            self._realize((g,))
            if type(g._arr) is DeviceArray:
                # on a device the rule runs on Tensors (FunctionNode.apply): each op it runs
                # records itself (structural forwards, fused groups)
                if n.retained is not None:
                    self.stop(f"{n.name()}: tensor hooks or retain_grad")
                return n.apply(g, create_graph)
        st = STATE
        st.recorder = None
        try:
            grads = n.apply(g, create_graph)
        finally:
            if self.broken is None:
                st.recorder = self
        if self.broken is None:
            self._guarded(self._rec_node, n, g, grads)
        return grads

    def _rec_node(self, n, g, grads):
        if n.retained is not None:
            raise _Break(f"{n.name()}: tensor hooks or retain_grad")
        gk = self._operand(g)[1]
        outs = []
        for r in grads:
            if r is None:
                outs.append(None)
                continue
            if not isinstance(r, Tensor) or type(r._arr) is not np.ndarray:
                raise _Break(f"{n.name()}: a pending or device gradient")
            outs.append(r._arr)
        oks = tuple([None if a is None else self.out_slot(a) for a in outs])
        if isinstance(n, ElementwiseNode):
            lines, reads = self._ew_vjp(n, gk, oks)
        elif isinstance(n, FunctionNode):
            lines, reads = self._fn_vjp(n, gk, oks)
        else:
            raise _Break(f"the backward of {n.name()} (custom Functions are not recorded)")
        # the code, run once on the recorded arrays, must give eager's gradients
        self._try_code(lines, [(k, a) for k, a in zip(oks, outs) if a is not None],
                       f"{n.name()}: its recorded backward does not give eager's values")
        self._add_code(lines, f"backward {n.name()} <- slot {gk} -> slots "
                              f"{[k for k in oks if k is not None]}", reads,
                       [k for k in oks if k is not None], True)

    def _ew_vjp(self, n, gk, oks):
        rows, xs, reads_out = _vjp_rows(n.row, n.need)
        vals = [self._operand(n.operands[p]) for p in xs]
        if reads_out:
            if n.out_data is None:
                raise _Break(f"{n.name()}: a pending saved output")
            vals.append(("s", self.slot_of(n.out_data)))
        vals = tuple(vals)
        reads = [v for kind, v in vals if kind == "s"] + [gk]
        mean = n.n_red if n.reduce == "mean" else None
        out_shape, size, cdt = n.out_shape, n.n_red, n.cdt.np
        need = n.need
        opnds = [(f"S[{v}]", self.keep[v]) if kind == "s" else (None, v) for kind, v in vals]
        lines = []
        gd = self.keep[gk]
        if mean:
            lines.append(f"_g = S[{gk}] / {mean}")
            opnds.append(("_g", gd / mean))
        else:
            opnds.append((f"S[{gk}]", gd))
        direct = [n.metas[i][0] == out_shape and n.metas[i][1] == cdt for i in need]
        kl = None if mean == 0 else self._kernel_code(
            rows, opnds, out_shape, size, cdt, cdt, None, True, None, None,
            [oks[i] if d else None for i, d in zip(need, direct)])
        if kl is not None:
            lines += kl
            for j, i in enumerate(need):
                e = f"_o{j}"
                shape, dt = n.metas[i]
                if shape != out_shape:
                    e = f"_sta({e}, {tuple(shape)!r})"
                if dt != cdt:
                    e = f"{e}.astype({self._name(dt, 'd')})"
                lines.append(f"S[{oks[i]}] = {e}")
            return lines, reads
        post = tuple([(n.metas[i][0] if n.metas[i][0] != out_shape else None,
                       n.metas[i][1]) for i in need])
        run = lazy.run_now

        def op(S, oks):
            gd = S[gk]
            if mean is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    gd = gd / mean
            args = [S[v] if kind == "s" else v for kind, v in vals]
            args.append(gd)
            res = run(rows, args, out_shape, size, cdt, cdt)
            for o, i, (shape, dt) in zip(res, need, post):
                if shape is not None:
                    o = _sum_to_array(o, shape)
                if o.dtype != dt:
                    o = o.astype(dt)
                S[oks[i]] = o
        return [f"{self._name(op, 'f')}(S, {oks!r})"], reads

    def _fn_vjp(self, n, gk, oks):
        fn = n.fn
        rec = self.ctxs.get(id(n.ctx))
        if rec is None or not fn.arrays:
            raise _Break(f"{n.name()}: a backward whose forward was not recorded")
        if fn.name in _TRACED_VJPS:
            traced = _VjpTrace(self).run(n, gk, oks)
            if traced is not None:
                return traced
        kc, trial_ctx = rec
        vjp, V = fn.vjp, structural.ARRAYS
        reads = [gk, kc] + list(self.holds.get(kc, ()))
        # what the public function set on ctx after apply_fn (linear's saved_tensors, say)
        extra = []
        have = trial_ctx.__dict__
        for name, v in n.ctx.__dict__.items():
            if name in have or name == "node":
                continue
            if isinstance(v, Tensor):
                extra.append((name, 1, self._operand(v)[1]))
                reads.append(extra[-1][2])
            elif isinstance(v, tuple) and v and all(isinstance(x, Tensor) for x in v):
                extra.append((name, 2, tuple([self._operand(x)[1] for x in v])))
                reads += extra[-1][2]
            elif isinstance(v, np.ndarray):
                raise _Break(f"{n.name()}: an array set on ctx outside the forward")
            else:
                extra.append((name, 0, v))
        extra = tuple(extra)

        def op(S, oks):
            c = S[kc]
            if extra:
                d = c.__dict__
                for name, kind, v in extra:
                    d[name] = v if kind == 0 else _Box(S[v]) if kind == 1 else \
                        tuple([_Box(S[k]) for k in v])
            res = vjp(V, c, S[gk])
            for k, a in zip(oks, res):
                if k is not None:
                    S[k] = a if type(a) is np.ndarray else np.asarray(a)
        return [f"{self._name(op, 'f')}(S, {oks!r})"], reads

    def accumulate(self, n, g, create_graph, deferred):
        t = n.variable
        before = t.grad
        before_arr = before._arr if before is not None else None
        if before is not None and g._arr is None and not create_graph and \
                not before.requires_grad:
            # a pending gradient into an existing .grad: eager defers ``.grad += g`` to the
            # sweep's end (_engine._add_in_place, plain NumPy the recorder does not see); here
            # g and every pending value (one may read the old .grad) are computed now,
            # recorded, so that the add is recorded in order below (a second backward with
            # retain_graph, an accumulating step)
            pend = lazy.STATE.pending
            self._realize([g] + ([r() for r in pend.refs] if pend is not None else []))
        st = STATE
        st.recorder = None
        try:
            # (steals g as eager does: the sweep's references to g, and this frame's)
            lz = _engine.accumulate_into_grad(t, g, create_graph, deferred,
                                              _engine._SWEEP_REFS + 1)
        finally:
            if self.broken is None:
                st.recorder = self
        if self.broken is None:
            self._guarded(self._rec_accumulate, n, t, g, before, before_arr, lz)
        return lz

    def _rec_accumulate(self, n, t, g, before, before_arr, lz):
        hs = n.retained
        if hs is not None and (hs.pre or hs.post):
            raise _Break("hooks on a leaf tensor")
        e = self.exts.get(id(t))
        if e is None:
            raise _Break("a gradient into a tensor made inside the function")
        if lz is not None:
            # a pending new .grad (the fused backward): the kernel computing it is recorded
            # when the sweep computes it; _finish reads the slot of its array then
            if before is not None or lz._lazy is None:
                raise _Break("a pending gradient")
            return
        gk = self._operand(g)[1]
        after = t.grad
        if before is None:
            a = after._arr
            if a is g._arr:
                self.out_slot(a)
                self._add_code([], f"grad of {_path_str(e.path)} = slot {gk}")
                return
            if type(a) not in _ARRAY_TYPES or a.dtype != g._arr.dtype:
                raise _Break("a gradient cast to its leaf's dtype")
            k = self.out_slot(a)
            self.copies.append((len(self.ops), k, gk))
            self._add_code([f"S[{k}] = S[{gk}].copy()"],
                           f"grad of {_path_str(e.path)} = copy of slot {gk} -> slot {k}",
                           (gk,))
            return
        if after is not before or before._arr is not before_arr or before.requires_grad:
            raise _Break("accumulating into a .grad that requires grad or was replaced")
        ak = self.slot_of(before_arr)
        self.written.add(ak)
        self._add_code([f"_a = S[{ak}]", f"_a += S[{gk}]"],
                       f"grad of {_path_str(e.path)} += slot {gk} (slot {ak})", (gk, ak))

    def scheduler_step(self, sched, epoch):
        """An LR scheduler's step() (Python changing the groups' lr, which the bound optimizer
        step reads live): the replay calls it again, in order."""
        o = self.walk_objects.get(id(sched))
        if epoch is not None or o is None:
            self.stop("an LR scheduler step with an epoch, or one the function reaches in a "
                      "way the recorder does not follow")
            return
        self.objects_used[id(sched)] = o
        self._add(lambda S, s=sched: s.step(), f"{type(sched).__name__}.step()")

    def optimizer_step(self, opt, closure):
        st = STATE
        if closure is not None:
            self.stop("an optimizer step with a closure")
            return opt.step(closure)
        info = None
        try:
            self._realize([p.grad for group in opt.param_groups for p in group["params"]])
            info = self._pre_opt(opt)
        except _Break as e:
            self.stop(str(e))
        st.recorder = None
        try:
            loss = opt.step()
        finally:
            if self.broken is None:
                st.recorder = self
        if info is not None and self.broken is None:
            self._guarded(self._rec_opt, opt, info)
        return loss

    def _pre_opt(self, opt):
        self._check_draws()
        o = self.walk_objects.get(id(opt))
        if o is None:
            raise _Break("an optimizer the function reaches in a way the recorder does not "
                         "follow")
        self.objects_used[id(opt)] = o
        plan, vcs = [], []
        for group in opt.param_groups:
            for p in group["params"]:
                e = self.exts.get(id(p))
                if e is None:
                    raise _Break("an optimizer parameter the function does not reach")
                gt = p.grad
                gk = None
                if gt is not None:
                    if gt.requires_grad or gt._arr is None:
                        raise _Break("an optimizer step on a gradient that requires grad")
                    gk = self.slot_of(gt._arr)
                e.used = True
                e.opt = True
                plan.append((e, gk))
                vcs.append(p._vc[0])
        return plan, vcs

    def _rec_opt(self, opt, info):
        plan, vcs = info
        for (e, gk), v in zip(plan, vcs):
            e.bumps += e.t._vc[0] - v
            if e.t._arr is not e.arr:
                raise _Break("an optimizer step replaced a parameter's array")
        plan = tuple([(e.t, gk) for e, gk in plan])
        self.escapes.update(gk for _, gk in plan if gk is not None)
        step = type(opt).step
        make = Tensor._make

        def op(S):
            for p, gk in plan:
                g = p.grad
                if gk is None:
                    if g is not None:
                        p.grad = None
                elif g is None or g._arr is not S[gk]:
                    p.grad = make(S[gk])
            step(opt)
        reads = [gk for _, gk in plan if gk is not None]
        text = f"{type(opt).__name__}.step() over {len(plan)} parameters"
        bound = self._bind_opt(opt, plan)
        if bound is None:
            self._add(op, text, reads)
            return
        cond, lines = bound
        self._add_code([f"if {cond}:"] + ["    " + ln for ln in lines] +
                       ["else:", f"    {self._name(op, 'f')}(S)"], text + " [bound]", reads)

    def _bind_opt(self, opt, plan):
        """(guard expression, lines) running the optimizer's fused CPU kernels directly: per
        call only the rule's ``_prepare`` (live learning rate, step counts) and one kernel call
        per bucket (same rule flags and dtype) on prebound flat views of the parameters and
        state buffers. The guard checks that the groups, their parameters and flags, and the
        state buffers are the ones bound; when not, the op runs ``step()`` itself. None when a
        bucket is not on the fused CPU path (CUDA, fused=False, non-contiguous arrays)."""
        name = self._name
        rule, gks = opt._rule, {id(p): gk for p, gk in plan}
        O, groups = name(opt, "x"), opt.param_groups
        PG = name(groups, "x")
        self.env.update(_ids=lambda ps: tuple(map(id, ps)), _f64=np.float64, _nparr=np.array,
                        _fk=lambda o, g: (tuple(o._flags(g).values()),
                                          g.get("fused") is not False))
        cond = [f"{O}.param_groups is {PG}", f"len({PG}) == {len(groups)}"]
        buckets = {}            # key -> (kernel, [(p, gk, state dict | None, arrays)])
        calls = []              # (bucket key, p, its state expression, group, memo)
        for j, group in enumerate(groups):
            G = name(group, "x")
            flags = opt._flags(group)
            fk = (tuple(flags.values()), group.get("fused") is not False)
            cond += [f"{PG}[{j}] is {G}",
                     f"_ids({G}['params']) == {name(tuple(map(id, group['params'])), 'x')}",
                     f"_fk({O}, {G}) == {name(fk, 'x')}"]
            names = tuple(rule.states(flags))
            for p in group["params"]:
                gk = gks.get(id(p))
                if gk is None:
                    continue
                pa = p._arr
                if not fk[1] or type(pa) is not np.ndarray or not pa.flags.c_contiguous:
                    return None
                key = (fk[0], pa.dtype)
                if key not in buckets:
                    buckets[key] = (opt._cpu_kernel(flags, pa.dtype), [])
                st = opt.state.get(p)
                P = name(p, "x")
                arrs = []
                if names:
                    if st is None:
                        return None
                    D = name(st, "x")
                    cond.append(f"{O}.state.get({P}) is {D}")
                    for n in names:
                        t = st.get(n)
                        a = getattr(t, "_arr", None)
                        if type(a) is not np.ndarray or not a.flags.c_contiguous or \
                                a.shape != pa.shape or a.dtype != pa.dtype:
                            return None
                        T = name(t, "x")
                        cond += [f"{D}.get({n!r}) is {T}", f"{T}._arr is {name(a, 'x')}"]
                        arrs.append(a.reshape(-1))
                    sx = D
                else:
                    sx = f"({O}.state.get({P}) or {{}})"
                buckets[key][1].append((p, gk, arrs))
                calls.append((key, P, sx, G, j))
        if not buckets:
            return None
        keys = list(buckets)
        prep = name(opt._prepare, "f")
        lines = [f"_m{j} = {{}}" for j in range(len(groups))]
        lines += [f"_h{b} = []" for b in range(len(keys))]
        for key, P, sx, G, j in calls:
            lines.append(f"_h{keys.index(key)}.append({prep}({P}, {sx}, {G}, _m{j}))")
        for b, key in enumerate(keys):
            kern, items = buckets[key]
            ptup = name(tuple([p._arr.reshape(-1) for p, _, _ in items]), "x")
            gs = []
            for p, gk, _ in items:
                g = self.keep[gk]
                gs.append(f"S[{gk}].reshape(-1)" if g.flags.c_contiguous else
                          f"np.ascontiguousarray(S[{gk}]).reshape(-1)")
            n_st = len(items[0][2])
            sts = [name(tuple([arrs[i] for _, _, arrs in items]), "x") for i in range(n_st)]
            lines.append(f"{name(kern, 'k')}({ptup}, ({''.join(g + ', ' for g in gs)}), "
                         + "".join(x + ", " for x in sts)
                         + f"_nparr(_h{b}, _f64).reshape({len(items)}, -1))")
            lines += [f"{name(p, 'x')}._vc[0] += 1" for p, _, _ in items]
        return " and ".join(cond), lines


# Structural rules whose array VJP is replayed as its own NumPy calls (_VjpTrace) rather than
# by calling the rule: each reads only static values from ctx besides its saved arrays, and
# passes every array through V (checked: a rule whose trace meets an array it did not hand
# out falls back to the call).
_TRACED_VJPS = frozenset(("matmul", "linear"))


# The V methods whose replay line is one NumPy view method called on their operand: _VjpTrace
# writes them so, and _fold_views (which matches such lines: _VIEW_LINE) takes the views of
# constants once.
_VIEW_FORMS = {"reshape": "{0}.reshape({1!r})", "mT": "{0}.swapaxes(-1, -2)",
               "transpose": "{0}.transpose({1!r})"}


class _VjpTrace:
    """``structural.ARRAYS`` for one run of a VJP rule at record time that also writes the
    replay's lines: every array it hands out or is given has a name (a slot ``S[k]`` or a local
    ``_vN``), each call becomes one line of NumPy with its static arguments (shapes, axes, the
    layout choice of ``matmul_as``) decided now. The matmul backward of the seed tutorial's step
    went from 4.4 to ~1 us of replay, and its forward no longer needs a ctx per call."""

    _DIRECT = {**_VIEW_FORMS, "matmul": "_mm({0}, {1})", "broadcast_to": "_bto({0}, {1!r})"}

    def __init__(self, rec):
        self.rec = rec
        self.names = {}     # id(array) -> its expression in the replay code
        self.held = []      # (keeps every named array alive: ids stay unique)
        self.lines = []
        self.reads = []
        self.nb = structural.ARRAYS.nb

    def _expr(self, a):
        e = self.names.get(id(a))
        if e is None:
            k = self.rec.slot_of(a)  # (an array made outside V: a _Break, caught by run)
            self.reads.append(k)
            e = self.names[id(a)] = f"S[{k}]"
            self.held.append(a)
        return e

    def _out(self, a, text):
        if id(a) in self.names:  # (an operand handed back unchanged)
            return a
        v = f"_v{len(self.names)}"
        self.lines.append(f"{v} = {text}")
        self.names[id(a)] = v
        self.held.append(a)
        return a

    def __getattr__(self, name):
        impl = getattr(structural.ARRAYS, name)
        if not callable(impl):
            return impl

        def call(*args):
            res = impl(*args)
            if not isinstance(res, np.ndarray):
                if any(isinstance(a, np.ndarray) for a in args) and \
                        name not in ("shape", "dtype"):
                    raise _Break(f"V.{name} returned a {type(res).__name__}")
                return res
            xs = [self._expr(a) if isinstance(a, np.ndarray) else a for a in args]
            form = self._DIRECT.get(name)
            if (name == "sum_to" and res is args[0]) or \
                    (name == "reshape" and res.shape == args[0].shape):
                return args[0]  # (no line: the operand itself)
            if name == "matmul" and cpu.matmul_transposes(args[0], args[1]):
                form = None  # (its transposed product, by name: NumPy's differs in rounding)
            elif name == "matmul" and args[0].ndim <= 2 and args[1].ndim <= 2 and \
                    _same(np.ndarray.dot(args[0], args[1]), res):
                form = "_dot({0}, {1})"  # (as the forward: the same product, cheaper)
            if name == "matmul_as":
                like = args[2]
                form = ("_mm({1}.swapaxes(-1, -2), {0}.swapaxes(-1, -2)).T"
                        if like.flags.f_contiguous and not like.flags.c_contiguous
                        else "_mm({0}, {1})")
            if form is None:  # any other V method: called by name, static arguments bound
                xs = [x if isinstance(a, np.ndarray) else self.rec._name(a, "c")
                      for x, a in zip(xs, args)]
                form = f"_V.{name}(" + ", ".join("{%d}" % i for i in range(len(args))) + ")"
            return self._out(res, form.format(*xs))
        return call

    def saved(self, ctx):
        arrs = structural.ARRAYS.saved(ctx)
        for a in arrs:
            if isinstance(a, np.ndarray):
                self._expr(a)
        return arrs

    def run(self, n, gk, oks):
        """(lines, reads) replaying ``n``'s VJP, or None to replay it by calling the rule."""
        g = self.rec.keep[gk]
        self.names[id(g)] = f"S[{gk}]"
        self.held.append(g)
        self.reads.append(gk)
        try:
            res = n.fn.vjp(self, n.ctx, g)
            if not isinstance(res, tuple):
                res = (res,)
            for k, a in zip(oks, res):
                if k is not None:
                    if type(a) is not np.ndarray or id(a) not in self.names:
                        return None
                    self.lines.append(f"S[{k}] = {self.names[id(a)]}")
        except Exception:  # (a _Break, or a rule doing what the trace does not follow)
            return None
        return self.lines, self.reads


def _fused_node(n, g) -> bool:
    """Whether ElementwiseNode ``n`` runs its rules on lazy Tensors (as its apply decides)."""
    f = STATE.fusion
    return (lazy.ENABLED if f is None else f) and (n.n_red >= lazy.FUSE_MIN or g._arr is None
                                                   or f is lazy.FUSE_ALL)


def _same(a, b) -> bool:
    """Whether two arrays hold the same values (NaNs equal), shape and dtype."""
    if type(a) is DeviceArray and type(b) is DeviceArray:
        a, b = a.copy_to_host(), b.copy_to_host()
    if not isinstance(a, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _validate_xent(xs, p):
    t = p["target"]
    n, c = xs[0].shape
    bad = cpu_nn.first_bad_target(t, p["ignore_index"], c) if n else -1
    if bad >= 0:
        raise IndexError(f"cross_entropy: target {int(t[bad])} is out of bounds for {c} classes")


_CONST_VALIDATE["cross_entropy"] = _validate_xent


# ============================================================================================
# Programs, guards and the compiled function


def _flatten(obj, leaves):
    """The structure of a return value with its Tensors (and other leaves) pulled out."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return ("t", len(leaves) - 1)
    if isinstance(obj, tuple) and type(obj) is tuple:
        return ("tuple", tuple(_flatten(x, leaves) for x in obj))
    if isinstance(obj, list):
        return ("list", tuple(_flatten(x, leaves) for x in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, _flatten(v, leaves)) for k, v in obj.items()))
    if obj is None or isinstance(obj, (int, float, bool, str)):
        return ("v", obj)
    raise _Break(f"a return value of type {type(obj).__name__}")


def _arg_key(a):
    """The guard of one argument: Tensors by metadata, scalars by value, others by identity."""
    if isinstance(a, Tensor):
        arr = a._arr
        if type(arr) not in _ARRAY_TYPES:
            return None
        return ("T", type(arr), arr.shape, arr.dtype, arr.strides, a._rg, a.grad is None)
    if a is None or isinstance(a, (bool, int, float, str)):
        return ("v", type(a), a)
    if isinstance(a, (tuple, list)) and all(not isinstance(x, (tuple, list)) for x in a):
        ks = tuple(_arg_key(x) for x in a)
        return None if None in ks else ("seq", type(a), ks)
    return ("id", id(a))


def _call_key(args):
    """The guard key of a call (None: an argument that cannot be guarded): the arguments'
    keys, grad mode, the default dtype and this thread's fusion switch. (Every replay starts
    here: a module function, with no generator.)"""
    ks = tuple([_arg_key(a) for a in args]) if args else ()
    if None in ks:
        return None
    st = STATE
    f = st.fusion
    return (ks, st.enabled, dtypes.get_default_dtype(), lazy.ENABLED if f is None else f)


_MISS = object()     # what a program's run returns when its guards do not hold
_GUARD_ERRORS = (LookupError, AttributeError, TypeError, ValueError)


def _path_expr(fn, path, name) -> str:
    """Python source reaching the object at ``path`` from ``args`` and fixed objects of
    ``fn`` (its closure cells, globals dict; ``name`` puts an object in the namespace)."""
    root = path[0]
    k = root[0]
    if k == "arg":
        e = f"args[{root[1]}]"
    elif k == "self":
        e = name(fn.__self__, "x")
    else:
        f = fn.__func__ if isinstance(fn, types.MethodType) else fn
        if k == "cell":
            e = f"{name(f.__closure__[root[1]], 'x')}.cell_contents"
        elif k == "global":
            e = f"{name(f.__globals__, 'x')}[{root[1]!r}]"
        else:
            e = f"{name(f, 'x')}.__defaults__[{root[1]}]"
    for step in path[1:]:
        if step[0] == "attr":
            e = f"{e}.__dict__[{step[1]!r}]"
        elif step[0] == "item":
            e = f"{e}[{step[1]!r}]"
        else:
            e = f"_rr({e}, None, {step[1:]!r})"
    return e


def _out_expr(spec, vals, name) -> str:
    kind, v = spec
    if kind == "t":
        return vals[v]
    if kind == "tuple":
        return "(" + "".join(_out_expr(x, vals, name) + ", " for x in v) + ")"
    if kind == "list":
        return "[" + ", ".join(_out_expr(x, vals, name) for x in v) + "]"
    if kind == "dict":
        return "{" + ", ".join(f"{name(k, 'x')}: {_out_expr(x, vals, name)}"
                               for k, x in v) + "}"
    return name(v, "x")


def _root(a):
    """The array that owns ``a``'s memory (``a`` itself, or the end of its ``.base`` chain)."""
    b = a.base
    while isinstance(b, np.ndarray):
        a, b = b, b.base
    return a


class _MemoryPlan:
    """The static memory plan of a program, made from what the recording saw.

    Arrays are grouped by the buffer that owns their memory (views join their base's group). A
    group *escapes* when the user can get hold of it: an output, a ``.grad`` (outputs and
    ``.grad`` s are always new arrays, as eager returns them: a caller may keep a loss or a
    gradient across steps, and a buffer reused under it would change it silently -- the hazard
    torch.compile's CUDA graphs document and warn about), or an array an opaque op (an
    optimizer) may keep. Every other buffer a replayed kernel allocates is *planned*: one
    buffer per lifetime-disjoint set, allocated once when the program is made and reused by
    every call (``buffers``: its views are bound into the replay code, so a planned output
    costs nothing at replay). Also decided here: a ``.grad`` copy of a gradient nothing reads
    afterwards takes the gradient itself (as eager's AccumulateGrad steals an unshared one),
    and a constant (zeros/ones/full made in the step) that is neither written nor handed out
    is shared between calls instead of copied.

    Reported (bytes): ``pool`` held between calls; ``fresh`` allocated by each call (outputs,
    ``.grad`` s, what structural forwards and the NumPy code inside VJPs return); ``peak`` the
    most the replay holds at once beyond its inputs and parameters (pool included);
    ``unplanned_peak`` the same for a replay that allocated every buffer anew, as eager does."""

    def __init__(self, rec, out_slots, finals):
        keep, n_ops = rec.keep, len(rec.ops)
        group, members, roots = {}, {}, {}
        for k, a in enumerate(keep):
            if type(a) is np.ndarray:
                r = _root(a)
                group[k] = g = id(r)
                members.setdefault(g, []).append(k)
                roots[g] = r
        first, last = {}, {}
        for i, rs in enumerate(rec.reads):
            for k in rs:
                g = group.get(k)
                if g is not None and last.get(g, -1) < i:
                    last[g] = i
        for k, i in rec.defs.items():
            g = group.get(k)
            if g is not None:
                if first.get(g, n_ops) > i:
                    first[g] = i
                if last.get(g, -1) < i:
                    last[g] = i
        # made by the call: every member is an op's result (not an input, parameter, constant)
        made = {g for g, ms in members.items() if all(rec.src[m][0] == "op" for m in ms)}
        escape = {group[v] for kind, v in out_slots if kind == "s" and v in group}
        escape |= {group[f[2]] for f in finals if f[2] not in (None, "keep") and f[2] in group}
        escape |= {group[k] for k in rec.escapes if k in group}
        written = {group[k] for k in rec.written if k in group}
        self.stolen = set()
        for i, k, gk in rec.copies:
            g, h = group.get(gk), group.get(k)
            if g is None or h is None or g == h:
                continue
            if (g in made and g not in escape and last.get(g) == i and keep[gk] is roots[g]) \
                    or (h not in escape and h not in written and g not in written):
                # the .grad becomes the gradient: its group joins the gradient's (the
                # gradient is not read afterwards, or the .grad is never handed out -- the
                # step sets it to None -- and nothing writes either: the copy changes nothing)
                self.stolen.add(i)
                for m in members.pop(h):
                    group[m] = g
                    members[g].append(m)
                last[g] = max(last.get(g, i), last.get(h, i))
                made.discard(h)
                if h in escape:
                    escape.discard(h)
                    escape.add(g)
        self.shared = {k for k, src in enumerate(rec.src) if src[0] == "const" and
                       k in group and group[k] not in escape and group[k] not in written}
        # constant folding: a pure op reading only constants makes constants (its values are
        # the recorded ones, which its record-time trial reproduced) unless they are handed out
        # or written
        self.const = set(self.shared) | {k for k, src in enumerate(rec.src) if src[0] == "obj"}
        self.folded = set()
        for i in range(n_ops):
            outs = rec.outs_of[i]
            if rec.pure[i] and outs and all(k in self.const for k in rec.reads[i]) and \
                    not any(group.get(k) in escape or group.get(k) in written for k in outs):
                self.folded.add(i)
                self.const.update(outs)
        read = set()
        for i, rs in enumerate(rec.reads):
            if i not in self.folded:
                read.update(rs)
        self.no_ctx = {i for i, (kc, _) in rec.alt.items() if kc not in read}
        read.update(v for kind, v in out_slots if kind == "s")
        read.update(f[2] for f in finals if f[2] not in (None, "keep"))
        self.read = read        # the slots something in the replay reads
        self.pool = {}          # slot -> the name of its planned buffer's view
        self.buffers = []
        active, free = [], []   # (last op, raw buffer), raw buffers
        for i, k in sorted((rec.defs[k], k) for k in rec.allocs if k in rec.defs):
            g = group.get(k)
            a = keep[k]
            if g not in made or g in escape or roots[g] is not a or i in self.folded:
                continue
            free += [raw for end, raw in active if end < i]
            active = [x for x in active if x[0] >= i]
            fit = [j for j, b in enumerate(free) if b.nbytes >= a.nbytes]
            if fit:  # (the smallest free buffer that holds it)
                raw = free.pop(min(fit, key=lambda j: free[j].nbytes))
            else:
                raw = np.empty(max(a.nbytes, 1), np.uint8)
                self.buffers.append(raw)
            view = raw[:a.nbytes].view(a.dtype).reshape(a.shape)
            self.pool[k] = rec._name(view, "b")
            active.append((last.get(g, i), raw))
        pooled = {group[k] for k in self.pool}
        self.pool_bytes = sum(b.nbytes for b in self.buffers)
        made -= {group[k] for k in self.const if k in group}
        size = {g: roots[g].nbytes for g in made}
        end = {g: (n_ops if g in escape else last.get(g, first.get(g, 0))) for g in made}
        self.fresh = sum(n for g, n in size.items() if g not in pooled) + sum(
            keep[k].nbytes for k, src in enumerate(rec.src)
            if src[0] == "const" and k not in self.shared)

        def peak(skip):
            live = [0] * (n_ops + 2)
            for g, n in size.items():
                if g not in skip:
                    live[first.get(g, 0)] += n
                    live[end[g] + 1] -= n
            best = run = 0
            for d in live:
                run += d
                best = max(best, run)
            return best
        self.peak = self.pool_bytes + peak(pooled)
        self.unplanned_peak = peak(())

    def as_dict(self):
        return {"pool_bytes": self.pool_bytes, "fresh_bytes": self.fresh,
                "peak_bytes": self.peak, "unplanned_peak_bytes": self.unplanned_peak,
                "planned_buffers": len(self.pool), "grads_stolen": len(self.stolen),
                "constants_shared": len(self.shared), "ops_folded": len(self.folded)}


class Program:
    """One recorded call: its guards, slot sources, ops and the end of a replay, generated as
    one Python function ``run(args)`` (returns _MISS when a guard fails)."""

    def __init__(self, rec: Recorder, fn, args, key, out_spec, out_slots, finals):
        self.key = key
        self.ops = tuple(rec.ops)
        self.descr = rec.descr
        self.nslots = len(rec.keep)
        self.finals = finals            # (tensor | None: an argument, path, grad, bump)
        env = rec.env
        name = rec._name
        self.memory = plan = _MemoryPlan(rec, out_slots, finals)
        paths = {}                      # path -> local name

        def local(path):
            v = paths.get(path)
            if v is None:
                v = paths[path] = f"_q{len(paths)}"
            return v
        ext_guards = []
        for e in rec.exts.values():
            if e.used or any(f[1] is e.path for f in finals):
                # (.grad None at entry is guarded unless the call assigned .grad before
                # anything read it: then its state at entry changes nothing)
                ext_guards.append((e.path, e.t, e.arr,
                                   None if e.first == "set" else e.grad is None))
        # (an argument itself is guarded by its key; what is reached through one, by path)
        self.ext_guards = tuple([g for g in ext_guards
                                 if not (len(g[0]) == 1 and g[0][0][0] == "arg")])
        self.obj_guards = tuple([(path, o) for o, path in rec.objects_used.values()])
        checks = []
        for path, t, arr, grad_none in self.ext_guards:
            x = local(path)
            checks.append(f"if {x} is not {name(t, 'x')} or {x}._arr is not {name(arr, 'x')}"
                          + ("" if grad_none is None else
                             f" or ({x}.grad is None) is not {grad_none}") + ": return _MISS")
        for path, o in self.obj_guards:
            checks.append(f"if {local(path)} is not {name(o, 'x')}: return _MISS")
        # Python numbers in closure cells, globals and defaults: the recorded kernels hold
        # them as constants (``x * lr``), so each is guarded by type and value (a changed
        # global lr records again, never a stale replay)
        self.scalar_guards = tuple(rec.scalars.items())
        for path, v in self.scalar_guards:
            x = local(path)
            checks.append(f"if type({x}) is not {type(v).__name__} or " +
                          (f"{x} != {name(v, 'x')}" if v == v else f"{x} == {x}") +
                          ": return _MISS")
        body = []
        cvals = {}                      # const slot -> the array every replay binds to it
        for k, src in enumerate(rec.src):
            if src[0] == "const":
                if k in plan.shared:
                    cvals[k] = src[1]
                if k in plan.read or k not in plan.shared:
                    body.append(f"S[{k}] = {name(src[1], 'x')}" +
                                ("" if k in plan.shared else ".copy()"))
            elif src[0] == "obj":
                cvals[k] = src[1]
                body.append(f"S[{k}] = {name(src[1], 'x')}")
            elif src[0] == "ext":
                e, field = src[1], src[2]
                x = local(e.path)
                body.append(f"S[{k}] = {x}._arr" if field == "arr" else
                            f"S[{k}] = {x}.grad._arr")
        keep = rec.keep

        def const_arg(m):  # (a kernel operand transformed from a constant: done now)
            k = int(m.group(1) or m.group(4))
            if k not in plan.const:
                return m.group(0)
            if m.group(1) is not None:  # _lk(S[k], space, nd)[2]
                v = lazy._leaf_kind(keep[k], ast.literal_eval(m.group(2)), int(m.group(3)))[2]
            else:                       # S[k][first index](.reshape(shape))
                v = keep[k][env[m.group(5)]]
                if m.group(6) is not None:
                    v = v.reshape(ast.literal_eval(m.group(6)))
            return name(v, "x")
        for i, lines in enumerate(rec.ops):
            if i in plan.folded:
                for k in rec.outs_of[i]:
                    cvals[k] = keep[k]
                body += [f"S[{k}] = {name(keep[k], 'x')}" for k in rec.outs_of[i]
                         if k in plan.read]
                continue
            if i in plan.stolen:  # (a .grad copy: the gradient itself)
                lines = [line.replace(".copy()", "") for line in lines]
            if i in plan.no_ctx:
                lines = rec.alt[i][1]
            lines = _fold_views(lines, cvals, name)
            body += [_CONST_ARG.sub(const_arg, line) for line in lines]
        for t, path, gk, bump in finals:
            x = local(path)
            if gk is None:
                body.append(f"{x}.grad = None")
            elif gk != "keep":
                body += [f"_a = S[{gk}]", f"_g = {x}.grad",
                         f"if _g is None or _g._arr is not _a: {x}.grad = _mk(_a)"]
            if bump:
                body.append(f"{x}._vc[0] += {bump}")
        vals = []
        for kind, v in out_slots:
            if kind == "s":
                vals.append(f"_mk(S[{v}])")
            elif kind == "ext":
                vals.append(local(v))
            else:
                vals.append(name(v, "x"))
        body.append(f"return {_out_expr(out_spec, vals, name)}")
        body = _drop_dead_binds(body)
        head = ["try:"] + [f"    {x} = {_path_expr(fn, p, name)}" for p, x in paths.items()]
        head += ["except _GE:", "    return _MISS"] if paths else []
        head = (head if paths else []) + checks + [f"S = [None] * {self.nslots}"]
        env.update(_MISS=_MISS, _GE=_GUARD_ERRORS, _mk=Tensor._make, _rr=_resolve_root)
        self.lines = head + body
        self.run = _compile_lines(self.lines, env, rec.allocs, plan.pool, args="args")
        # planned buffers and shared ctxs are this program's: one replay at a time uses them
        self.lock = threading.Lock() if plan.pool or plan.no_ctx else None


_VIEW_LINE = re.compile(r"(_v\d+) = (S\[(\d+)\]|_v\d+)\.(" +
                        "|".join(sorted({f[4:f.index("(")] for f in _VIEW_FORMS.values()})) +
                        r")\(([-\d, ()\[\]]*)\)")
_SLOT_GETS = re.compile(r"S\[\d+\] = (_v\d+)")


def _fold_views(lines, cvals, name):
    """An op's replay lines with the views of constants taken once, now: a VJP trace's
    ``_vN = S[k].reshape(..)`` / ``.swapaxes(-1, -2)`` / ``.transpose(..)`` of a constant slot
    (``cvals``: the array each replay binds there), or of such a view, becomes a bound name
    (the matmul backward of the seed tutorial's step reshapes and transposes its constant x
    on every call). A view handed on as a slot's value is left alone: it stays a new view per
    call, as eager gives."""
    handed = {m.group(1) for m in map(_SLOT_GETS.fullmatch, lines) if m}
    vals, names, out = {}, {}, []
    for line in lines:
        m = _VIEW_LINE.fullmatch(line)
        if m and m.group(1) not in handed:
            v, src, k, meth, arg = m.groups()
            base = cvals.get(int(k)) if k is not None else vals.get(src)
            if base is not None:
                vals[v] = getattr(base, meth)(*ast.literal_eval(f"({arg},)"))
                names[v] = name(vals[v], "x")
                continue
        if names:
            line = re.sub(r"\b_v\d+\b", lambda t: names.get(t.group(0), t.group(0)), line)
        out.append(line)
    return out


_BIND = re.compile(r"(S\[\d+\]) = _x_\d+")
_WHOLE_S = re.compile(r"\bS\b(?!\[)")


def _drop_dead_binds(body):
    """``body`` without the bindings of a bound name to a slot nothing reads (a constant
    whose one reader took it transformed, see const_arg; a view folded by _fold_views)."""
    if any(_WHOLE_S.search(line) for line in body):  # (a call given all of S may read any)
        return body
    text = "\n".join(body)
    return [line for line in body if not ((m := _BIND.fullmatch(line)) and
                                          text.count(m.group(1)) == 1)]


def _finish(rec: Recorder, fn, args, key, result):
    """Turn a finished recording into a Program (or a break)."""
    rec._check_draws()
    leaves = []
    spec = _flatten(result, leaves)
    outs = []
    for t in leaves:
        e = rec.exts.get(id(t))
        if e is not None:
            e.used = True
            outs.append(("ext", e.path))
            continue
        if t._rg and not rec.backward_ran:
            raise _Break("an output requires grad (the autograd graph is not replayed; call "
                         "it under no_grad or run backward inside the function)")
        if type(t._arr) not in _ARRAY_TYPES:
            raise _Break("a pending output")
        outs.append(("s", rec.slot_of(t._arr)))
    finals = []
    for e in rec.exts.values():
        t = e.t
        if t._arr is not e.arr:
            raise _Break(f"{_path_str(e.path)}: its array was replaced (.data = ...)")
        if t._rg != e.rg or t.grad_fn is not e.fn:
            raise _Break(f"{_path_str(e.path)}: requires_grad or grad_fn changed")
        g = t.grad
        if g is e.grad and (g is None or g._arr is e.grad_arr) and not e.opt:
            gk = "keep"
        elif g is None:
            gk = None
        else:
            if g.requires_grad or type(g._arr) not in _ARRAY_TYPES:
                raise _Break(f"{_path_str(e.path)}: a .grad that requires grad")
            gk = rec.slot_of(g._arr)
        bump = t._vc[0] - e.vc - e.bumps
        if gk != "keep" or bump:
            arg = len(e.path) == 1 and e.path[0][0] == "arg"  # (a new object on each call)
            finals.append((None if arg else t, e.path, gk, bump))
    return Program(rec, fn, args, key, spec, tuple(outs), tuple(finals))


class Compiled:
    """A function compiled by :func:`compile`: replays recorded programs whose guards match."""

    def __init__(self, fn, cache_size=CACHE_SIZE, fusion=None):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.cache_size = cache_size
        if fusion not in (None, True, False, "eager"):
            raise ValueError(f"jitgrad.compile: fusion must be None, True, False or 'eager', "
                             f"got {fusion!r}")
        self.fusion = fusion    # see compile()
        self.programs = []      # most recent first
        self.broken = None      # (reason, where): the function runs eagerly
        self.misses = 0
        self.warned = False
        self.stats = {"recorded": 0, "replayed": 0, "eager": 0}
        self._lock = threading.Lock()

    def __get__(self, obj, objtype=None):  # (a decorated method binds like a function)
        if obj is None:
            return self
        return types.MethodType(self, obj)

    def __call__(self, *args, **kwargs):
        st = STATE
        if kwargs or self.broken is not None or st.recorder is not None or \
                st.tracer is not None:
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        key = _call_key(args)
        if key is None:
            self.stats["eager"] += 1
            return self.fn(*args)
        # (no try when the program has no lock and the fusion switch stays: the replay's
        # fixed cost is this function's)
        pend = lazy.STATE.pending
        if pend is not None and pend.refs:
            lazy.flush()  # (pending values made before the call read the old parameters)
        for p in self.programs:
            if p.key == key:
                lock = p.lock
                if lock is None and self.fusion is not False:
                    r = p.run(args)
                else:
                    if lock is not None:
                        lock.acquire()
                    prev = st.fusion
                    if self.fusion is False:
                        st.fusion = False
                    try:
                        r = p.run(args)
                    finally:
                        st.fusion = prev
                        if lock is not None:
                            lock.release()
                if r is not _MISS:
                    self.stats["replayed"] += 1
                    return r
        if len(self.programs) >= self.cache_size:
            if not self.warned:
                self.warned = True
                warnings.warn(f"jitgrad.compile: {getattr(self.fn, '__name__', self.fn)} "
                              f"recorded {self.cache_size} programs (the cache size); further "
                              "guard misses run eagerly", stacklevel=2)
            self.stats["eager"] += 1
            return self.fn(*args)
        return self._record(args, key)

    def _record(self, args, key):
        st = STATE
        rec = Recorder(self.fn, args)
        if lazy.STATE.pending is not None and lazy.STATE.pending.refs:
            lazy.flush()  # (pending values made before the call are inputs, computed first)
        st.recorder = rec
        prev = st.fusion
        fu = self.fusion
        if fu is None:
            fu = lazy.is_fusion_enabled()
        if fu != "eager":  # (else the thread's own switch and FUSE_MIN, as eager runs)
            st.fusion = lazy.FUSE_ALL if fu else False
        try:
            with _watching_grads(rec):
                result = self.fn(*args)
                if st.recorder is rec:
                    rec.settle(result)
        finally:
            st.fusion = prev
            if st.recorder is rec:
                st.recorder = None
        prog = None
        if rec.broken is None:
            try:
                prog = _finish(rec, self.fn, args, key, result)
            except _Break as e:
                rec.broken = (str(e), None)
        if rec.broken is not None:
            self.broken = rec.broken
            self.stats["eager"] += 1
            return result
        with self._lock:
            self.programs.insert(0, prog)
        self.stats["recorded"] += 1
        return result

    @property
    def memory(self):
        """The static memory plan of the most recently recorded program, in bytes (see
        _MemoryPlan): pool_bytes, fresh_bytes, peak_bytes, unplanned_peak_bytes, ...; None
        before one is recorded."""
        return self.programs[0].memory.as_dict() if self.programs else None

    def explain(self) -> "Explanation":
        return Explanation(self)

    _jitgrad_explain = explain


class Explanation:
    """What :func:`jitgrad.explain` shows for a compiled function: its graph break, or each
    recorded program's guards, buffers and operations with their source lines."""

    def __init__(self, c: Compiled):
        self.compiled = c
        self.broken = c.broken
        self.programs = list(c.programs)

    @property
    def reason(self):
        return None if self.broken is None else self.broken[0]

    @property
    def line(self):
        return None if self.broken is None or self.broken[1] is None else self.broken[1]

    def __str__(self):
        c = self.compiled
        name = getattr(c.fn, "__qualname__", repr(c.fn))
        lines = [f"jitgrad.compile({name}): {len(self.programs)} recorded program(s); "
                 f"calls: {c.stats}"]
        if self.broken is not None:
            reason, where = self.broken
            lines.append(f"graph break: {reason}")
            if where is not None:
                lines.append(f"  at {where[0]}:{where[1]}: {where[2]}")
            lines.append("  the function runs eagerly")
        for i, p in enumerate(self.programs):
            m = p.memory
            lines.append(f"program {i}: {len(p.ops)} ops, {p.nslots} slots; memory: "
                         f"{len(m.pool)} planned buffers in a {m.pool_bytes}-byte pool, "
                         f"{m.fresh} bytes new per call (outputs, .grads, unplanned), peak "
                         f"{m.peak} bytes (unplanned: {m.unplanned_peak}); "
                         f"{len(m.stolen)} .grad copies elided, {len(m.shared)} constants "
                         "shared")
            lines.append(f"  guards: arguments {p.key[0]}, grad mode {p.key[1]}, "
                         f"external tensors {[_path_str(g[0]) for g in p.ext_guards]}, "
                         f"objects {[_path_str(g[0]) for g in p.obj_guards]}, "
                         f"numbers {[_path_str(g[0]) for g in p.scalar_guards]}")
            for text, where in p.descr:
                loc = f"  [{os.path.basename(where[0])}:{where[1]}]" if where else ""
                lines.append(f"  {text}{loc}")
        return "\n".join(lines)

    __repr__ = __str__


def compile(fn=None, *, cache_size: int = CACHE_SIZE, fusion=None):
    """Record ``fn`` on its first call and replay the recorded program on later calls whose
    guards match (see the module docstring). ``@jitgrad.compile`` or ``jitgrad.compile(fn)``.

    ``fusion``: how the recorded call groups elementwise ops into kernels. ``True``: every
    elementwise op is recorded lazily whatever its size (lazy.FUSE_ALL), so chains of small ops
    become one kernel too -- eager runs ops under ``lazy.FUSE_MIN`` elements one kernel each
    because planning a group costs Python time on every call, which a replay no longer pays;
    values equal eager's to the rounding of a fused evaluation order. ``None`` (the default):
    ``True`` while lazy fusion is on in the calling thread, else ``False``. ``'eager'``: the
    groups eager forms (values bitwise eager's). ``False``: one kernel per op (as
    ``JITGRAD_FUSION=0`` runs the step)."""
    if fn is None:
        return lambda f: Compiled(f, cache_size, fusion)
    return Compiled(fn, cache_size, fusion)


jit = compile
