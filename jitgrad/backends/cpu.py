"""CPU backend: compiles generated kernel source with Numba (memory + disk cache) and holds the
hand-written njit kernels (reductions, scatter-add) that are not generated from rules.

Disk cache (``JITGRAD_CACHE_DIR``, default ``~/.cache/jitgrad``, one ``numba-<version>``
directory under it; ``JITGRAD_CACHE=0`` compiles in memory only). Each generated kernel is
written as a real module ``k_<sha>.py`` there and executed from that file, so that Numba can
cache its machine code (Numba caches nothing for exec'd source); the machine code lives in
``__pycache__`` beside it. The hand-written kernels (``njit_cached`` here and in ``cpu_nn``;
``vmath``'s via ``use_disk_cache`` in the prelude) cache under ``lib/`` of the same directory,
not inside the installed package.

Every cache file jitgrad writes carries a SHA-256 of its contents: a truncated, garbled or
flipped file is detected, reported once under ``JITGRAD_DEBUG``, deleted and rebuilt, never
raised. A directory that cannot be written is reported by one warning per process and kernels
then compile in memory. The in-memory table ``_kernels`` is an LRU of at most
``JITGRAD_KERNEL_CACHE_SIZE`` kernels.
"""
from __future__ import annotations

from collections import OrderedDict
import hashlib
from math import prod
import os
import pickle
import sys
import tempfile
import threading
import time
import types
import warnings

from llvmlite import ir
import numba
from numba.core import caching as _nc
from numba.core import types as _nbt
from numba.core.serialize import dumps as _nb_dumps
from numba.extending import intrinsic
import numpy as np

from .. import _debug, codegen
from ._atomics import PAR_BLOCK, atomic_add, atomic_load, spin_pause

# =============================================================================================
# Disk cache


def cache_dir() -> str | None:
    """The disk cache directory, or None when ``JITGRAD_CACHE=0``. (A directory found
    unwritable is still read from; see ``_cache_unusable``.)"""
    if os.environ.get("JITGRAD_CACHE", "1") == "0":
        return None
    base = os.environ.get("JITGRAD_CACHE_DIR")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                            "jitgrad")
    return os.path.join(base, f"numba-{numba.__version__}")


_READ_ONLY: set = set()    # cache directories a write failed in (this process writes no more)
_warned_unusable = False
_reported: set = set()     # corrupt files already reported (each once per process)


def _cache_unusable(d: str, err: BaseException) -> None:
    """A write under cache directory ``d`` failed: stop writing there (kernels compile in memory
    from now on, whatever is already cached still loads); warn once per process."""
    global _warned_unusable
    _READ_ONLY.add(d)
    _debug.log(f"disk cache: cannot write under {d} ({type(err).__name__}: {err})")
    if not _warned_unusable:
        _warned_unusable = True
        warnings.warn(f"jitgrad: kernel cache directory {d!r} is not writable "
                      f"({type(err).__name__}: {err}); new kernels compile in memory in this "
                      "process (set JITGRAD_CACHE_DIR to a writable directory, or "
                      "JITGRAD_CACHE=0)", RuntimeWarning, stacklevel=2)


def _discard_corrupt(path: str, err) -> None:
    """Delete a corrupt cache file (it is rebuilt by the compile that follows); report it once."""
    _debug.count("cache_corrupt")
    if path not in _reported:
        _reported.add(path)
        _debug.log(f"disk cache: corrupt {path} ({err}); deleted, rebuilding")
    try:
        os.unlink(path)
    except OSError:
        pass


_MAGIC = b"jgcache1"  # then the SHA-256 of the payload, then the payload (a pickle)


class _Corrupt(Exception):
    pass


class _CheckedCacheFile(_nc.IndexDataCacheFile):
    """Numba's index/data files (``<fn>.nbi``, ``<fn>.<n>.nbc``), each framed with a checksum:
    whatever fails the checksum or does not unpickle is deleted and treated as a miss."""

    def _read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            blob = f.read()
        body = blob[len(_MAGIC) + 32:]
        if blob[:len(_MAGIC)] != _MAGIC or \
                hashlib.sha256(body).digest() != blob[len(_MAGIC):len(_MAGIC) + 32]:
            raise _Corrupt(f"checksum mismatch ({len(blob)} bytes)")
        return body

    def _write(self, path: str, payload: bytes) -> None:
        with self._open_for_write(path) as f:  # (a temporary file, then os.replace)
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)

    def _load_index(self):
        try:
            version, stamp, overloads = pickle.loads(self._read(self._index_path))
            if not isinstance(overloads, dict):
                raise _Corrupt("not an index")
        except OSError:  # missing, or the directory is unreadable: empty
            return {}
        except Exception as e:
            _discard_corrupt(self._index_path, e)
            return {}
        if version != self._version or stamp != self._source_stamp:
            return {}  # stale: its data files get overwritten
        return overloads

    def _save_index(self, overloads):
        self._write(self._index_path,
                    _nb_dumps((self._version, self._source_stamp, overloads)))

    def load(self, key):
        name = self._load_index().get(key)
        if name is None:
            return None
        path = self._data_path(name)
        try:
            return pickle.loads(self._read(path))
        except OSError:  # removed meanwhile
            return None
        except Exception as e:
            _discard_corrupt(path, e)
            return None

    def _save_data(self, name, data):
        self._write(self._data_path(name), self._dump(data))

    def discard(self, key, err) -> None:
        """The entry ``key`` passed its checksum but could not be rebuilt: delete it."""
        name = self._load_index().get(key)
        if name is not None:
            _discard_corrupt(self._data_path(name), err)


class _Locator(_nc._SourceFileBackedLocatorMixin, _nc._CacheLocator):
    """Numba's source-file locator (the stamp is the source file's hash), at a fixed path."""

    def __init__(self, py_func, py_file: str, path: str):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = path

    def get_cache_path(self):
        return self._cache_path


class _Impl(_nc.CompileResultCacheImpl):
    def __init__(self, py_func, locator):  # CacheImpl.__init__ without its locator search
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = locator
        modname = os.path.splitext(os.path.basename(locator._py_file))[0]
        qualname = getattr(py_func, "__qualname__", py_func.__name__)
        self._filename_base = self.get_filename_base(f"{modname}.{qualname}",
                                                     getattr(sys, "abiflags", ""))


class _NumbaCache(_nc.FunctionCache):
    """Numba's per-function cache at ``path`` with checksummed files; a loaded entry that fails
    to rebuild is deleted (and compiled again) instead of raised."""

    def __init__(self, py_func, py_file: str, path: str, extra_stamp=None):
        self._name = repr(py_func)
        self._py_func = py_func
        self._impl = _Impl(py_func, _Locator(py_func, py_file, path))
        self._cache_path = path
        stamp = self._impl.locator.get_source_stamp()
        if extra_stamp is not None:  # (the source of what it calls: see njit_cached)
            stamp = (stamp, extra_stamp())
        self._cache_file = _CheckedCacheFile(path, self._impl.filename_base, stamp)
        self.enable()

    def _load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        key = self._index_key(sig, target_context.codegen())
        data = self._cache_file.load(key)
        if data is None:
            return None
        try:
            return self._impl.rebuild(target_context, data)
        except Exception as e:
            self._cache_file.discard(key, e)
            return None


class _DiskCache:
    """What a ``njit_cached`` dispatcher holds as its Numba cache: decides where (and whether)
    to cache at its first compile, never lets a cache failure fail the compile."""

    def __init__(self, py_func, extra_stamp=None):
        self._py_func = py_func
        self._extra_stamp = extra_stamp
        self._cache = None
        self._base = None
        self._off = False
        # a generated module must be importable while Numba rebuilds its cached code
        # (numba.core.environment imports it by name); _kernels' LRU may have dropped it
        mod = sys.modules.get(py_func.__module__)
        self._module = mod if py_func.__module__.startswith("jitgrad_kernels.") else None

    def _get(self):
        if self._cache is None and not self._off:
            base = cache_dir()
            if base is None:
                return None  # (JITGRAD_CACHE=0; decided again at the next compile)
            py_file = self._py_func.__code__.co_filename
            if not os.path.isfile(py_file):  # exec'd in memory
                self._off = True
                return None
            if self._module is not None:  # generated: beside its module
                path = os.path.join(os.path.dirname(py_file), "__pycache__")
            else:
                path = os.path.join(base, "lib", _nc._CacheLocator.get_suitable_cache_subpath(
                    py_file))
            try:
                self._cache = _NumbaCache(self._py_func, py_file, path, self._extra_stamp)
            except Exception as e:  # the source file vanished or is unreadable
                _debug.log(f"disk cache: cannot cache {self._py_func.__qualname__}: {e}")
                self._off = True
                return None
            self._base = base
        return self._cache

    @property
    def cache_path(self):
        c = self._get()
        return None if c is None else c.cache_path

    def load_overload(self, sig, target_context):
        c = self._get()
        if c is None or cache_dir() is None:
            return None
        mod = self._module
        if mod is not None and sys.modules.get(mod.__name__) is None:
            sys.modules[mod.__name__] = mod
        try:
            return c.load_overload(sig, target_context)
        except Exception as e:  # (corrupt files are handled inside; this is anything else)
            _debug.log(f"disk cache: load of {self._py_func.__qualname__} failed: {e!r}")
            return None

    def save_overload(self, sig, cres):
        c = self._get()
        if c is None or cache_dir() is None or self._base in _READ_ONLY:
            return
        try:
            c.save_overload(sig, cres)
        except OSError as e:
            _cache_unusable(self._base, e)
        except Exception as e:
            _debug.log(f"disk cache: save of {self._py_func.__qualname__} failed: {e!r}")

    def flush(self):
        c = self._get()
        if c is not None:
            try:
                c.flush()
            except OSError:
                pass

    def enable(self):
        self._off = False

    def disable(self):
        self._off = True


def use_disk_cache(dispatcher):
    """Give an existing njit dispatcher (one made with Numba's ``cache=True``, say) jitgrad's
    disk cache instead; returns it."""
    if not isinstance(getattr(dispatcher, "_cache", None), (_DiskCache, type(None))):
        dispatcher._cache = _DiskCache(dispatcher.py_func)
    return dispatcher


def njit_cached(**options):
    """``numba.njit(**options)`` with jitgrad's disk cache instead of Numba's ``cache=True``:
    under ``cache_dir()`` rather than the package's ``__pycache__``, off with
    ``JITGRAD_CACHE=0``, and self-repairing (see the module docstring).

    ``noalias=True`` (not a Numba decorator option; Numba's own compiler flag) marks every
    pointer argument LLVM ``noalias``: the caller promises that memory written through one
    array argument is not read or written through another in a different element order.
    Generated kernels need it to vectorise without runtime overlap checks (vmath.flat_view).

    ``calls_vmath=True``: the function calls the prelude's ``vm_*`` functions. Numba's cache
    checks only the function's own source file, so the cached code would keep an old vmath
    after an upgrade; with this the prelude's and vmath's source are part of its stamp.

    ``interleave=N`` (N > 1): LLVM's loop vectoriser runs N vector iterations interleaved in
    this function's loops (see ``_interleaved``)."""
    options.pop("cache", None)
    noalias = options.pop("noalias", False)
    interleave = options.pop("interleave", 0)
    stamp = _prelude_hash if options.pop("calls_vmath", False) else None

    def deco(f):
        d = numba.njit(**options)(f)
        d._cache = _DiskCache(f, stamp)
        if noalias:
            d._compiler._customize_flags = _set_noalias
        if interleave > 1:
            d._compiler.compile = _interleaved(d._compiler.compile, interleave)
        return d
    return deco


def _set_noalias(flags):
    flags.noalias = True
    return flags


def _interleaved(compile_fn, count: int):
    """``compile_fn`` (a dispatcher's compile step) with LLVM's ``-force-vector-interleave``
    at ``count`` while it runs (``codegen.llvm_interleave``).

    Why: LLVM's cost model interleaves a vectorised loop only when its body is small, so a
    loop with a vmath call in it runs one vector iteration at a time, at the latency of the
    call's dependency chain (an exp is ~15 dependent instructions), with the core's other
    execution ports idle. Interleaving several iterations fills them: float32 ``sigmoid(x)``
    0.35 -> 0.26 ns/element at 4, ``log(sigmoid(x) + y)`` 0.90 -> 0.54, W1's 45-row body 1.75
    -> 1.62 (njit loops / one thread, Zen 4). There is no per-loop switch Numba exposes (LLVM's
    ``llvm.loop.interleave.count`` metadata would need the loop's latch, and a forced option
    overrides it anyway), so the option is set for this compile only, under Numba's compiler
    lock (no other compile runs meanwhile), and set back after. A disk-cache hit compiles
    nothing. Callees compiled on the way see it too: vmath's helpers are loop-free but for the
    float32 trig path's ``_batch_fn``, which vmath compiles at 0 (it is compiled once and
    shared by every later compile, and runs over a single vector); interleaving never changes
    a float result (no reassociation)."""
    from numba.core.compiler_lock import global_compiler_lock

    def compile(args, return_type):
        with global_compiler_lock, codegen.llvm_interleave(count):
            return compile_fn(args, return_type)
    return compile


# =============================================================================================
# Generated kernels


class KernelCache(OrderedDict):
    """key -> compiled kernel, the least recently used dropped beyond ``maxsize`` (0: no
    bound). Dropping releases jitgrad's references (and the generated module); a kernel needed
    again is loaded again, from the disk cache when there is one. (Numba keeps the machine
    code of everything it compiled until the process exits, so this bounds the Python-side
    objects, not the JIT's memory.)"""

    def __init__(self, maxsize: int):
        super().__init__()
        self.maxsize = maxsize

    def get(self, key, default=None):
        v = OrderedDict.get(self, key)
        if v is None:
            return default
        try:
            self.move_to_end(key)
        except KeyError:  # (dropped meanwhile by another thread)
            pass
        return v

    def __setitem__(self, key, value):
        OrderedDict.__setitem__(self, key, value)
        while 0 < self.maxsize < len(self):
            try:
                _, old = self.popitem(last=False)
            except KeyError:
                break
            _debug.count("kernels_evicted")
            name = getattr(getattr(old, "py_func", None), "__module__", "")
            if name.startswith("jitgrad_kernels."):
                sys.modules.pop(name, None)


def _table_size() -> int:
    v = os.environ.get("JITGRAD_KERNEL_CACHE_SIZE", "1024")
    try:
        return int(v)
    except ValueError:
        raise ValueError("JITGRAD_KERNEL_CACHE_SIZE must be an integer (0: no limit), "
                         f"got {v!r}") from None


_kernels = KernelCache(_table_size())
_PRELUDE_HASH = None


def _prelude_hash() -> str:
    """Kernels call into the prelude/vmath: their source is part of every kernel's identity."""
    global _PRELUDE_HASH
    if _PRELUDE_HASH is None:
        h = hashlib.sha256(numba.__version__.encode())
        here = os.path.dirname(os.path.dirname(__file__))
        for rel in ("backends/_prelude.py", "backends/_atomics.py", "vmath.py", "codegen.py"):
            p = os.path.join(here, rel)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    h.update(f.read())
        _PRELUDE_HASH = h.hexdigest()[:16]
    return _PRELUDE_HASH


def module_source(fn_source: str, fn_name: str, compute_dtype: str,
                  parallel: bool = False, noalias: bool = False, interleave: int = 0) -> str:
    """The kernel module: the decorator options are in its text (they are part of its hash)."""
    opts = (", parallel=True" if parallel else "") + (", noalias=True" if noalias else "") + \
        (f", interleave={interleave}" if interleave > 1 else "")
    return (
        "# generated by jitgrad.codegen; safe to delete\n"
        "from jitgrad.backends._prelude import *\n"
        "from jitgrad.backends.cpu import njit_cached\n"
        "from jitgrad.vmath import flat_view, lane_sum, stack_empty\n"
        f"T = np.{compute_dtype}\n\n"
        f"{fn_source}\n"
        f"{fn_name} = njit_cached(error_model='numpy', nogil=True{opts})({fn_name})\n"
    )


# Building a kernel (writing and executing its module, filling _kernels) happens under one
# lock, so two threads asking for the same new kernel get one dispatcher, and no thread sees a
# module another is still executing. Re-entrant: the CUDA backend's compile_source takes it
# too and calls load_generated. (Numba compiles a dispatcher at its first call, under its own
# global compiler lock; looking a kernel up in _kernels takes no lock.)
COMPILE_LOCK = threading.RLock()


def compile_source(key, fn_source: str, fn_name: str, compute_dtype: str,
                   parallel: bool = False, noalias: bool = False, wrap=None,
                   interleave: int = 0):
    """Return the njit dispatcher for generated source, compiling (or loading) it once; a
    ``parallel`` (Numba prange) kernel comes wrapped in ParallelKernel, and ``wrap(disp)``
    wraps it otherwise (the wrapper is what is kept). ``noalias``, ``interleave``: see
    njit_cached (the caller guarantees noalias; ``key`` must tell the two apart)."""
    disp = _kernels.get(key)
    if disp is not None:
        return disp
    with COMPILE_LOCK:
        disp = _kernels.get(key)
        if disp is not None:  # built by another thread meanwhile
            return disp
        src = module_source(fn_source, fn_name, compute_dtype, parallel, noalias, interleave)
        disp, where = load_generated(src, fn_name, "k", cache_dir() is not None)
        if parallel:
            disp = ParallelKernel(disp)
        elif wrap is not None:
            disp = wrap(disp)
        _debug.count("kernels_built")
        _debug.log(f"kernel {fn_name} ({where}) key={key!r}\n{fn_source}")
        _kernels[key] = disp
    return disp


def load_generated(src: str, fn_name: str, prefix: str, use_cache: bool) -> tuple:
    """(function ``fn_name`` of the generated module ``src``, where it came from): executed
    from the real module file ``<prefix>_<sha>.py`` in the cache directory (so that Numba's
    disk cache can work), or exec'd in memory when ``use_cache`` is off or that file cannot be
    written. Both backends' kernels are loaded here (under COMPILE_LOCK)."""
    with COMPILE_LOCK:
        return _load_generated(src, fn_name, prefix, use_cache)


def _load_generated(src: str, fn_name: str, prefix: str, use_cache: bool) -> tuple:
    sha = hashlib.sha256((src + _prelude_hash()).encode()).hexdigest()[:24]
    modname = f"jitgrad_kernels.{prefix}_{sha}"
    where = "disk cache off"
    d = cache_dir() if use_cache else None
    if d is not None:
        ns = _import_kernel_module(d, modname, f"{prefix}_{sha}", src)
        if ns is not None:
            path = os.path.join(d, f"{prefix}_{sha}.py")
            return ns[0][fn_name], f"disk cache {'hit' if ns[1] else 'miss'}: {path}"
        where = f"in memory: {d} is not writable"
        # (a CUDA kernel's source asks Numba for its own disk cache, impossible without a file)
        src = src.replace("(cache=True)", "(cache=False)")
    ns = {"__name__": modname}
    exec(compile(src, f"<jitgrad kernel {fn_name}>", "exec"), ns)
    return ns[fn_name], where


def _import_kernel_module(d: str, modname: str, stem: str, src: str):
    """Execute the kernel module ``<d>/<stem>.py`` (written first if missing or different) as
    module ``modname``; returns (its namespace, whether the file was already right), or None
    when the file is not there and cannot be written (``_cache_unusable``)."""
    path = os.path.join(d, f"{stem}.py")
    data = src.encode()
    ok = False
    try:
        with open(path, "rb") as f:
            old = f.read()
        ok = old == data
        if not ok:
            _discard_corrupt(path, f"{len(old)} bytes differ from the kernel source")
    except OSError:
        pass
    if not ok:
        if d in _READ_ONLY:
            return None
        try:  # atomically, so that concurrent writers never clash
            os.makedirs(d, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp_k_", suffix=".py")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as e:
            _cache_unusable(d, e)
            return None
    mod = sys.modules.get(modname)
    if mod is not None:
        return vars(mod), ok
    # compiled from ``src`` itself (what the file now holds) rather than imported: no .pyc
    mod = types.ModuleType(modname)
    mod.__file__ = path
    sys.modules[modname] = mod  # before executing: Numba finds the module by name
    try:
        exec(compile(src, path, "exec"), vars(mod))
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return vars(mod), ok


# =============================================================================================
# Parallel launches
#
# Numba's ``workqueue`` threading layer (chosen by NUMBA_THREADING_LAYER=workqueue, and Numba's
# fallback when neither TBB nor OpenMP is available) aborts the whole process when two threads
# run parallel kernels at once. Parallel kernels therefore run under one lock until Numba's
# active layer is known to be another one (it is known after the first parallel launch).

_PAR_LOCK = threading.Lock()
_par_threadsafe = None  # None: not known yet; True: tbb/omp; False: workqueue


class ParallelKernel:
    """A ``parallel=True`` dispatcher whose launches are serialised under the workqueue
    layer; attributes (``stats``, ``py_func``...) are the dispatcher's."""

    __slots__ = ("dispatcher",)

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    def __call__(self, *args):
        global _par_threadsafe
        if _par_threadsafe:
            return self.dispatcher(*args)
        with _PAR_LOCK:
            r = self.dispatcher(*args)
        if _par_threadsafe is None:
            try:
                _par_threadsafe = numba.threading_layer() != "workqueue"
            except ValueError:  # no parallel region has run yet
                pass
        return r

    def __getattr__(self, name):
        return getattr(self.dispatcher, name)


# ---------------------------------------------------------------------------------------------
# Chunked launches: jitgrad's own thread pool for large flat generated kernels
#
# A Numba ``parallel=True`` kernel splits its range statically over its thread team and waits
# for every member at the end. On a machine whose cores are shared (2 cores, other processes
# busy) a member that is not scheduled holds the whole kernel, while the others spin at the
# barrier: W1 at 1e6 float32 took 15.8 ms per launch (CPU time = wall time) in some runs and
# 1.9 ms in others, against 4.1 ms on one thread. Generated kernels are instead compiled
# serially (nogil) in a chunk form (codegen.render_fused ``parallel``) that every thread of a
# launch calls: it claims PAR_BLOCK-element chunks from the launch's counter atomically until
# none is left, so the caller never waits for a worker that has not started, only for chunks
# already taken, and a launch is never much slower than the serial loop. Per-chunk sums are
# added in chunk order: the result does not depend on which thread ran which chunk. No Numba
# threading layer is involved (no OpenMP/TBB/workqueue hazards, and the kernel compiles in a
# quarter of the time).
#
# Everything between a launch's start and its end happens in native code, without the GIL:
# on this 2-core VM every hand-over between threads that sleeps costs 10-25 us (a futex wake
# of an idle vCPU; measured: posting a job with a wake took the caller 8.5 us, and the worker
# started 18-25 us later). So workers wait for the next launch natively (``_idle_wait``, up to
# SPIN_IDLE pauses, ~0.2 ms, then they sleep on the condition), a launch wakes them by a
# counter its leading kernel bumps once it has released the GIL, and the leading kernel waits
# natively for the chunks workers hold and then, briefly, until they are back in
# ``_idle_wait`` (``chunk_finish``), so that normally neither thread sleeps on the other's
# Python (when another Python thread holds the GIL, the brief wait runs out and the launching
# thread goes on). W1 float32 replayed at 1e5 on 2 threads: 139 -> 107 us (1 thread: 176).
# A worker whose call fails leaves its launch open: the launching thread computes the chunks
# still unclaimed and raises the worker's error; a launching thread whose call fails closes
# its launch and waits for the chunks already claimed before it raises.


def _pool_size() -> int:
    v = os.environ.get("JITGRAD_NUM_THREADS")
    if v:
        return max(1, int(v))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


SPIN_IDLE = 1 << 13  # pauses (~0.2 ms here) a worker waits natively for the next launch


@njit_cached(nogil=True)
def _idle_wait(state, seen, left, leave, spins):
    """A worker leaves its last launch (if ``leave``: ``left`` is that launch's ctl, see
    _atomics) and waits up to ``spins`` pauses for ``state[0]`` (launches started) to move
    past ``seen``."""
    if leave:
        atomic_add(left, 2, -1)
    for _ in range(spins):
        if atomic_load(state, 0) != seen:
            return True
        spin_pause()
    return False


@njit_cached(nogil=True)
def _close_launch(ctl, n_par):
    """No chunk can be claimed after this; returns how many were claimed before."""
    return min(atomic_add(ctl, 0, n_par), n_par)


class _Launch:
    """One chunked launch: ``call(ctl, state, lead)`` runs the kernel on the calling thread."""
    __slots__ = ("call", "ctl", "n_par", "done", "error")

    def __init__(self, call, n_par, split):
        self.call, self.n_par, self.error = call, n_par, None
        self.ctl = np.array([0, 0, 0, 0, split], np.int64)  # (see _atomics)
        self.done = threading.Event()

    def work(self, state) -> bool:
        """A worker's part; False when the call raised (the error is kept for the launching
        thread, which computes the chunks still unclaimed)."""
        try:
            self.call(self.ctl, state, 0)
        except BaseException as e:
            self.error = e
            self.done.set()
            return False
        if self.ctl[1] >= self.n_par:  # (the worker that did the last chunk sees it)
            self.done.set()
        return True


_NO_LAUNCH = np.zeros(5, np.int64)  # (_idle_wait's ``left`` when the worker left none)


class _Pool:
    """Daemon worker threads (started on first use, again after a fork) that join the posted
    launches; the launching thread works on its own launch too (see the comment above)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.jobs = []
        self.pid = None
        self.size = _pool_size()
        self.state = np.zeros(1, np.int64)
        self.sleeping = 0

    def _start(self):
        self.cv = threading.Condition()
        self.jobs = []
        self.state = np.zeros(1, np.int64)
        self.sleeping = 0
        # compiled (or loaded from the disk cache) here, once: a worker doing it holds the GIL
        # for milliseconds, which the launching thread waits for after its kernel
        _idle_wait(self.state, 0, _NO_LAUNCH, False, 0)
        for k in range(self.size - 1):
            threading.Thread(target=self._worker, name=f"jitgrad-worker-{k}",
                             daemon=True).start()
        self.pid = os.getpid()

    def _worker(self):
        cv, jobs, state = self.cv, self.jobs, self.state
        left = _NO_LAUNCH
        while True:
            seen = int(state[0])
            with cv:
                while jobs and jobs[0].ctl[0] >= jobs[0].n_par:
                    jobs.pop(0)
                job = jobs[0] if jobs else None
            if job is not None:
                if left is not _NO_LAUNCH:
                    _idle_wait(state, seen, left, True, 0)
                left = job.ctl if job.work(state) else _NO_LAUNCH
                continue
            if _idle_wait(state, seen, left, left is not _NO_LAUNCH, SPIN_IDLE):
                left = _NO_LAUNCH
                continue
            left = _NO_LAUNCH
            with cv:
                self.sleeping += 1
                while not jobs:
                    cv.wait()
                self.sleeping -= 1

    def launch(self, call, n_par):
        """Run a chunk-form kernel ``call(ctl, state, lead)`` on this thread and the workers;
        returns when every chunk is done (re-raising a worker's error)."""
        if self.size == 1 or n_par < 2:
            call(np.array([0, 0, 0, 0, 1], np.int64), self.state, 1)  # (one run: all)
            return
        if self.pid != os.getpid():
            with COMPILE_LOCK:
                if self.pid != os.getpid():
                    self._start()
        job = _Launch(call, n_par, 2 * self.size)
        with self.cv:
            self.jobs.append(job)
            if self.sleeping:
                self.cv.notify(self.sleeping)
        try:
            call(job.ctl, self.state, 1)
        except BaseException:
            claimed = _close_launch(job.ctl, n_par)
            while job.ctl[1] < claimed and job.error is None:  # (workers finish theirs)
                time.sleep(1e-4)
            raise
        if job.ctl[3] != 1:  # a worker still held a chunk when chunk_finish stopped waiting
            job.done.wait()
        if job.error is not None:
            raise job.error


POOL = _Pool()


_HUGE = 2 << 20  # bytes of a transparent huge page (x86-64)


def _populate(out):
    """Write one element per huge page of a kernel's output before its threads write it all.
    NumPy asks for transparent huge pages for arrays of 4 MB and more, but a fresh one has
    no pages yet: the threads' first writes then fault page by page (2^23 float32 ``x * a +
    y`` into a fresh output: 17.5-21 ms on two threads, 3.4 ms on one, 2.1-2.5 ms on two when
    the output was touched first). One write per 2 MB here maps its huge pages (1.4-1.6 ms
    for 32 MB, fresh; ~1 us when they are there). A write, not a read-back: reading first
    maps the shared zero page, and a write to that splits it into small pages again."""
    out.reshape(-1)[::_HUGE // out.itemsize] = 0


class ChunkedKernel:
    """A generated kernel in chunk form, called like the serial kernel (leaves, outputs[,
    n_iter]): runs its PAR_BLOCK chunks on POOL and adds each sum output's per-chunk slots
    into the output's ``[0]`` in chunk order.
    ``sums``: the argument positions of the sum outputs; ``size_at``: the position of the
    argument whose ``.size`` is the loop length (an int argument: the length itself);
    ``outs``: the positions of the output arrays it writes whole, none of them an operand
    (see ``_populate``)."""

    __slots__ = ("dispatcher", "sums", "size_at", "outs")

    def __init__(self, dispatcher, sums, size_at, outs=()):
        self.dispatcher, self.sums, self.size_at = dispatcher, tuple(sums), size_at
        self.outs = tuple(outs)

    def __call__(self, *args):
        n = args[self.size_at]
        n = n if isinstance(n, (int, np.integer)) else n.size
        n_par = -(-n // PAR_BLOCK)
        for p in self.outs:
            if args[p].nbytes >= _HUGE:
                _populate(args[p])
        parts = []
        if self.sums:
            args = list(args)
            for p in self.sums:
                parts.append((args[p], np.empty(n_par)))
                args[p] = parts[-1][1]
        disp = self.dispatcher
        POOL.launch(lambda ctl, state, lead: disp(*args, ctl, state, lead), n_par)
        for out, part in parts:
            out[0] = out[0] + part.sum()  # (pairwise, in a fixed order; casts to int64)

    def __getattr__(self, name):
        return getattr(self.dispatcher, name)


# ---------------------------------------------------------------------------------------------
# Hand-written kernels. Reductions work on a (A, R, B) view: reduce the middle axis.
# Float32 sums accumulate in float64 (NumPy-like accuracy without pairwise trees).
# Disk-cached: a fresh process loads these instead of compiling them again (reduce_sum alone
# cost 1.2-1.6 s of every cold start, bench W6).
_NJIT = dict(error_model="numpy", nogil=True)

@njit_cached(**_NJIT)
def sum_arb(x, out):
    A, R, B = x.shape
    acc = np.zeros(B, np.float64)
    for a in range(A):
        acc[:] = 0.0
        for r in range(R):
            for b in range(B):
                acc[b] += x[a, r, b]
        for b in range(B):
            out[a, b] = acc[b]


@njit_cached(**_NJIT)
def isum_arb(x, out):
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            out[a, b] = 0
        for r in range(R):
            for b in range(B):
                out[a, b] += x[a, r, b]


@njit_cached(**_NJIT)
def prod_arb(x, out):
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            out[a, b] = 1
        for r in range(R):
            for b in range(B):
                out[a, b] *= x[a, r, b]


@njit_cached(**_NJIT)
def argmax_arb(x, out, idx, sign):
    """First index of the max (sign=1) or min (sign=-1); NaN wins, like torch."""
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            best = x[a, 0, b]
            bi = 0
            if best == best:
                for r in range(1, R):
                    v = x[a, r, b]
                    if v != v:
                        best = v
                        bi = r
                        break
                    if (v > best) if sign > 0 else (v < best):
                        best = v
                        bi = r
            out[a, b] = best
            idx[a, b] = bi


@njit_cached(**_NJIT)
def prod_others_arb(x, out):
    """out[a, r, b] = prod of x[a, :, b] except r (exact with zeros): prefix * suffix products."""
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            p = 1.0
            for r in range(R):
                out[a, r, b] = p
                p *= x[a, r, b]
            p = 1.0
            for r in range(R - 1, -1, -1):
                out[a, r, b] *= p
                p *= x[a, r, b]


@njit_cached(**_NJIT)
def scatter_add_flat(out, idx, src):
    """out[idx[i]] += src[i]; idx must already be validated to lie in [0, out.size)."""
    for i in range(idx.size):
        out[idx[i]] += src[i]


@njit_cached(**_NJIT)
def logsumexp_arb(x, out):
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            m = -np.inf
            for r in range(R):
                v = x[a, r, b]
                if v > m or v != v:
                    m = v
            if m != m or m == np.inf or m == -np.inf:  # NaN, +inf, or all -inf / empty
                out[a, b] = m
                continue
            s = 0.0
            for r in range(R):
                s += np.exp(x[a, r, b] - m)
            out[a, b] = m + np.log(s)


@njit_cached(**_NJIT)
def softmax_arb(x, out, log):
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            m = -np.inf
            for r in range(R):
                v = x[a, r, b]
                if v > m or v != v:
                    m = v
            if m == -np.inf:
                m = 0.0
            s = 0.0
            for r in range(R):
                s += np.exp(x[a, r, b] - m)
            if log:
                ls = np.log(s)
                for r in range(R):
                    out[a, r, b] = x[a, r, b] - m - ls
            else:
                for r in range(R):
                    out[a, r, b] = np.exp(x[a, r, b] - m) / s


@njit_cached(**_NJIT)
def softmax_vjp_arb(out, g, res, log):
    """VJP of (log_)softmax over the middle axis given its output."""
    A, R, B = out.shape
    for a in range(A):
        for b in range(B):
            s = 0.0
            if log:
                for r in range(R):
                    s += g[a, r, b]
                for r in range(R):
                    res[a, r, b] = g[a, r, b] - np.exp(out[a, r, b]) * s
            else:
                for r in range(R):
                    s += g[a, r, b] * out[a, r, b]
                for r in range(R):
                    res[a, r, b] = out[a, r, b] * (g[a, r, b] - s)


@njit_cached(**_NJIT)
def var_arb(x, out, correction):
    """Two-pass variance in float64 over the middle axis."""
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            mu = 0.0
            for r in range(R):
                mu += x[a, r, b]
            mu /= R
            s = 0.0
            for r in range(R):
                d = x[a, r, b] - mu
                s += d * d
            out[a, b] = s / (R - correction)


# ---------------------------------------------------------------------------------------------
# Helpers that bring any reduction over a set of axes into (A, R, B) form.

def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array (the backend interface's name)."""
    return np.empty(shape, dtype)


def arb_view(x: np.ndarray, axes: tuple):
    """Return (x3, keep_shape) with x3 of shape (A, R, B) reducing ``axes`` (sorted, unique).

    Contiguous axis blocks are free reshapes of a C-contiguous array; other axis sets are
    moved to the middle with a transpose and one copy."""
    nd = x.ndim
    if not axes:
        return x.reshape(-1, 1, 1) if x.size else x.reshape(x.size, 1, 1), x.shape
    lo, hi = axes[0], axes[-1]
    if hi - lo + 1 != len(axes):
        keep = [d for d in range(nd) if d not in axes]
        x = np.transpose(x, keep + list(axes))
        axes = tuple(range(len(keep), nd))
        lo, hi = axes[0], axes[-1]
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    shp = x.shape
    return x.reshape(prod(shp[:lo]), prod(shp[lo:hi + 1]), prod(shp[hi + 1:])), \
        shp[:lo] + shp[hi + 1:]


def reduce_sum(x: np.ndarray, axes: tuple, out_dtype) -> np.ndarray:
    """Sum over ``axes``; result has the kept dims (no keepdim)."""
    x3, keep = arb_view(x, axes)
    out = np.empty((x3.shape[0], x3.shape[2]), out_dtype)
    if x3.shape[0] and x3.shape[2]:
        if out.dtype.kind == "f":
            sum_arb(x3, out)
        else:
            isum_arb(x3, out)
    return out.reshape(keep)


# =============================================================================================
# The backend interface (backends/__init__.py INTERFACE): the array operations code above this
# layer asks a backend for, so that one forward serves every device. NumPy does the work here;
# the CUDA backend provides the same names over DeviceArray with numba.cuda kernels.

DEVICE = "cpu"
ARRAY_TYPE = np.ndarray


def is_available() -> bool:
    return True


def require() -> None:
    """Nothing to check: the CPU is always there."""


def full(shape, value, dtype) -> np.ndarray:
    return np.full(shape, value, dtype)


def from_host(a) -> np.ndarray:
    """A host (NumPy) array as this backend's storage: the array itself."""
    return np.asarray(a)


def to_host(a: np.ndarray) -> np.ndarray:
    return a


def contiguous(a: np.ndarray, dtype=None) -> np.ndarray:
    """A C-contiguous copy (optionally cast to ``dtype``) of any view."""
    return np.array(a, dtype=dtype, order="C", copy=True)


def concatenate(arrays, axis: int, dtype) -> np.ndarray:
    return np.concatenate([a.astype(dtype, copy=False) for a in arrays], axis=axis)


def matmul_transposes(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether :func:`matmul` computes ``a @ b`` as ``(b.T @ a.T).T``: ``b`` the transpose of
    a C-contiguous float32 W and prefers_transposed. (A replay that calls NumPy's product
    instead must ask this: the two differ in rounding, see capture.)"""
    return a.ndim == 2 and b.ndim == 2 and b.dtype == np.float32 and b.flags.f_contiguous and \
        not b.flags.c_contiguous and prefers_transposed(a, b.T)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul; ``x @ w.T`` (float32, w C-contiguous, many outputs) as ``(w @ x.T).T``,
    which OpenBLAS runs up to 2x faster (prefers_transposed)."""
    if matmul_transposes(a, b):
        return product_t(a, b.T)
    return np.matmul(a, b)


# The 8x8 float32 transpose as three rounds of shuffles (unpack pairs of rows, then pairs of
# pairs, then 128-bit halves): LLVM gives vunpcklps/vshufps/vperm2f128-class code. A loop of
# scalar copies transposing 256 x 128 float32 ran at 0.55-0.66 ns/element here, this at 0.14
# (the row-wise bias add alone: 0.12).
_T8 = ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15],
       [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15],
       [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])


def _c_f32(t, ndim):
    return isinstance(t, _nbt.Array) and t.dtype == _nbt.float32 and t.ndim == ndim and \
        t.layout == "C"


def _mk_tile8(bias):
    """The intrinsic ``f(src, j0, i0, out, b)``: ``out[i0 + r, j0 + c] = src[j0 + c, i0 + r]``
    (``+ b[j0 + c]`` if ``bias``; else b is not read) for r, c < 8 (float32, C layout, no
    bounds checks: the caller keeps the tile inside the arrays)."""
    @intrinsic
    def tile(typingctx, src, j0, i0, out, b):
        if not (_c_f32(src, 2) and _c_f32(out, 2) and _c_f32(b, 1)):
            return None
        sig = _nbt.void(src, _nbt.intp, _nbt.intp, out, b)

        def codegen(context, builder, sig, args):
            sa, oa, ba = (context.make_array(t)(context, builder, a)
                          for t, a in zip((sig.args[0], sig.args[3], sig.args[4]),
                                          (args[0], args[3], args[4])))
            i64, v8 = ir.IntType(64), ir.VectorType(ir.FloatType(), 8)
            j0, i0 = args[1], args[2]
            m, n = builder.extract_value(sa.shape, 1), builder.extract_value(oa.shape, 1)

            def vec_at(base, row, stride, col):
                off = builder.add(builder.mul(builder.add(row[0], ir.Constant(i64, row[1])),
                                              stride), col)
                return builder.bitcast(builder.gep(base, [off]), v8.as_pointer())

            def load(ptr):
                v = builder.load(ptr)
                v.align = 4
                return v

            def shuf(a, c, k):
                return builder.shuffle_vector(a, c, ir.Constant(
                    ir.VectorType(ir.IntType(32), 8), _T8[k]))
            r = [load(vec_at(sa.data, (j0, k), m, i0)) for k in range(8)]
            t = [shuf(r[k - k % 2], r[k - k % 2 + 1], k % 2) for k in range(8)]
            u = [shuf(t[q], t[q + 2], 2 + h) for q in (0, 1, 4, 5) for h in (0, 1)]
            o = [shuf(u[k % 4], u[k % 4 + 4], 4 + k // 4) for k in range(8)]
            if bias:
                bv = load(builder.bitcast(builder.gep(ba.data, [j0]), v8.as_pointer()))
                o = [builder.fadd(v, bv) for v in o]
            for k in range(8):
                builder.store(o[k], vec_at(oa.data, (i0, k), n, j0)).align = 4
            return context.get_dummy_value()
        return sig, codegen
    return tile


_tile8_t_bias, _tile8_t = _mk_tile8(True), _mk_tile8(False)


@njit_cached(error_model="numpy", nogil=True)
def transpose_add(src, b, out, with_bias):
    """out[i, j] = src[j, i] (+ b[j] if ``with_bias``; else b, any float32 vector, is not read):
    the epilogue of the transposed product (src is ``w @ x.T``, (M, N); out (N, M), b (M,)),
    float32, all C-contiguous."""
    M, N = src.shape
    m8, n8 = M - M % 8, N - N % 8
    for i0 in range(0, n8, 8):  # (row blocks of out: its stores stay in a few cache lines)
        for j0 in range(0, m8, 8):
            if with_bias:
                _tile8_t_bias(src, j0, i0, out, b)
            else:
                _tile8_t(src, j0, i0, out, b)
    for i in range(N):
        for j in range(m8, M):
            out[i, j] = src[j, i] + b[j] if with_bias else src[j, i]
    for i in range(n8, N):
        for j in range(m8):
            out[i, j] = src[j, i] + b[j] if with_bias else src[j, i]


_NO_BIAS = np.zeros(8, np.float32)


def prefers_transposed(x, w) -> bool:
    """Whether ``x @ w.T`` (x (rows, K), w (N, K)) is computed as ``(w @ x.T).T``: float32
    with at least twice as many outputs as rows, and at least 64. OpenBLAS's sgemm here, one
    thread, time of ``w @ x.T`` over ``x @ w.T`` (K from 64 to 2048; ``python -m
    bench.linear_layout``): rows 8, N >= 256: 0.38-0.54; rows 32, N = 64: 0.74-0.82, N >= 256:
    0.52-0.62; rows 128, N = 256: 0.84-0.89; rows 512, N = 1024: 0.93-0.97; but 1.1-1.9 where
    N <= rows (W2's 10-way last layer), and about 1 in float64. The transpose back costs what
    a row-wise bias add does (transpose_add: 3.7 against 3.6 us for 128 x 256)."""
    rows, n = x.shape[0], w.shape[0]
    return x.dtype == np.float32 and w.dtype == np.float32 and n >= max(2 * rows, 64) and \
        rows > 0 and x.shape[1] > 0


def product_t(x, w, b=None):
    """``x @ w.T`` (``+ b``, a C-contiguous (N,) float32 vector) as ``(w @ x.T).T``, into a new
    C-contiguous array (see prefers_transposed)."""
    out = np.empty((x.shape[0], w.shape[0]), np.float32)
    transpose_add(np.matmul(w, x.T), _NO_BIAS if b is None else b, out, b is not None)
    return out


def basic_view(x: np.ndarray, idx) -> np.ndarray:
    """x[idx] for a basic index (ints, slices, None, Ellipsis): a view."""
    return x[idx]


def gather(x: np.ndarray, idx, out_dtype=None) -> np.ndarray:
    """x[idx] for any NumPy index, as a new array."""
    out = np.array(x[idx], order="C")
    return out if out_dtype is None else out.astype(out_dtype, copy=False)


def index_add(shape, idx, g: np.ndarray) -> np.ndarray:
    """zeros(shape) with g scatter-added at idx (duplicates accumulate)."""
    out = np.zeros(shape, g.dtype)
    lin = np.arange(out.size, dtype=np.int64).reshape(shape)[idx]
    if lin.size:
        src = np.ascontiguousarray(np.broadcast_to(g, lin.shape)).reshape(-1)
        scatter_add_flat(out.reshape(-1), np.ascontiguousarray(lin).reshape(-1), src)
    return out


def broadcast_to(x: np.ndarray, shape) -> np.ndarray:
    """A read-only stride-0 view (np.broadcast_to)."""
    return np.broadcast_to(x, shape)


def flip(x: np.ndarray, dims) -> np.ndarray:
    """A C-contiguous copy with ``dims`` reversed (0-d stays 0-d)."""
    return np.array(np.flip(x, dims), order="C")


def getitem(x: np.ndarray, idx) -> np.ndarray:
    """x[idx] with NumPy's rules: a view for a basic index, a copy for an advanced one."""
    return x[idx]
